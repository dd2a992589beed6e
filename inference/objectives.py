"""Multi-sample objectives with one importance weight per *video* (``DiveConfig.objective``).

Pyro's ``RenyiELBO(alpha=0)`` is the IWAE bound of Burda et al. (2016), but it sums each particle's
log weight over the whole batch: for a batch of B videos that is one importance-sampling problem in
B times the dimension, whose weights degenerate far sooner than B separate ones. The videos of a
batch are independent (the ``videos`` plate), so the bound factorises per video::

    log p(y_b) ≥ E[ log (1/K) Σ_k w_kb ],   log w_kb = log p(y_b, z_kb) − log q(z_kb | y_b)

:func:`per_video_log_weights` returns the ``(K, B)`` log weights (also the input of importance
diagnostics such as PSIS k̂); :class:`VideoIWAE` is the negative bound as a Pyro ``ELBO``, for
guides whose latent sites are all reparameterised (``dive``, ``dive-markov``, ``dive-calibrated``).
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.subsample_messenger import _Subsample

__all__ = ["VideoIWAE", "per_video_log_weights"]


def _per_video(site: dict, num_videos: int) -> torch.Tensor:
    """A site's (scaled, masked) ``log_prob`` summed over every dim but the ``videos`` plate's."""
    lp = site["log_prob"]
    frames = [f for f in site["cond_indep_stack"] if f.name == "videos"]
    if not frames:
        raise ValueError(f"site {site['name']!r} is outside the 'videos' plate; no per-video weight exists")
    dim = frames[0].dim
    if lp.dim() < -dim:
        lp = lp.reshape((1,) * (-dim - lp.dim()) + lp.shape)
    lp = lp.movedim(dim, 0)
    if lp.shape[0] != num_videos:
        raise ValueError(f"site {site['name']!r}: videos dim has size {lp.shape[0]}, expected {num_videos}")
    return lp.reshape(num_videos, -1).sum(-1)


def per_video_log_weights(
    model, guide, batch, num_particles: int = 1, *, guide_sites: tuple[str, ...] | None = None
) -> torch.Tensor:
    """``(K, B)`` log importance weights ``log p(y_b, z) − log q(z | y_b)`` of ``K`` guide draws.

    ``guide_sites``: score only these guide sites in ``log q`` (e.g. a pose block when the guide is
    run under ``poutine.condition`` for the rest; the model terms are always all included).
    Differentiable (call under ``torch.no_grad()`` for diagnostics).
    """
    if not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"num_particles must be a positive integer, got {num_particles!r}")
    B = batch.batch_size
    out = []
    for _ in range(num_particles):
        guide_trace = poutine.trace(guide).get_trace(batch)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch)
        lw = batch.observed.new_zeros(B)
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            trace.compute_log_prob()
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or isinstance(site["fn"], _Subsample):
                    continue  # plates are recorded as subsample sites
                if site["infer"].get("_deterministic"):
                    continue  # pyro.deterministic: log density 0
                if sign < 0 and site["is_observed"]:
                    continue
                if sign < 0 and guide_sites is not None and name not in guide_sites:
                    continue
                if sign < 0 and not site["fn"].has_rsample and torch.is_grad_enabled():
                    raise NotImplementedError(
                        f"VideoIWAE needs reparameterised guide sites; {name!r} ({type(site['fn']).__name__}) is not"
                    )
                lw = lw + sign * _per_video(site, B)
        out.append(lw)
    return torch.stack(out)


class VideoIWAE(ELBO):
    """Negative per-video IWAE bound ``−Σ_b log (1/K) Σ_k w_kb`` with ``K = num_particles``
    (K = 1 is the ELBO). Particles run one after the other (the guide's networks take plain batches)."""

    def __init__(self, num_particles: int = 8, max_plate_nesting: int = float("inf"), **kwargs) -> None:
        if kwargs.get("vectorize_particles"):
            raise ValueError("VideoIWAE runs its particles one after the other (vectorize_particles=False)")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, **kwargs)

    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("VideoIWAE computes its own per-video weights (per_video_log_weights)")

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        (batch,) = args
        lw = per_video_log_weights(model, guide, batch, self.num_particles)
        return -(torch.logsumexp(lw, 0) - math.log(self.num_particles)).sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())
