"""What a trainer or evaluator needs from a fitted (model, guide) pair.

* :func:`posterior_trace`: the model's trace with latents replayed from the posterior;
* :func:`reconstruct`: frames ``(B, T, 1, H, W)`` -- reconstructions of the K input frames and
  predictions of the rest -- from the guide's posterior mean (the official evaluation,
  ``sample=False``) or from one posterior draw, via ``poutine.replay``;
* :func:`sample_posterior`: posterior draws of chosen sites, stacked as ``(S, *site shape)``
  (unlike ``Predictive``, no left-padding to ``max_plate_nesting``);
* :func:`missing_probability`: posterior ``P(z_m = 1)`` per video, object and input frame;
* :class:`PosteriorMean`: an effect handler that replaces latent draws by their means.

Call ``model.eval(); guide.eval()`` first for evaluation (BatchNorm statistics, no imputation or
appearance dropout).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, infer_discrete
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from dive_pyro.core.structure import MAX_PLATE_NESTING
from dive_pyro.data.batch import SceneBatch
from dive_pyro.models.dive import DiveModel
from dive_pyro.models.variants import EnumDiveModel

__all__ = ["PosteriorMean", "missing_probability", "posterior_trace", "reconstruct", "sample_posterior"]


class PosteriorMean(Messenger):
    """Use each latent site's mean instead of a draw; discrete (Bernoulli) sites take their mode
    ``1[p ≥ 1/2]``. For the Heaviside missingness this gives ``z_m = H(µ_m)``, the official
    test-time rule."""

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or isinstance(msg["fn"], _Subsample):
            return  # observed, already fixed, or a plate's subsample site
        fn = msg["fn"]
        mean = fn.mean
        msg["value"] = (mean >= 0.5).to(mean.dtype) if fn.support.is_discrete else mean


def _replayed(model: DiveModel, guide_trace, use_mean: bool):
    model_fn = poutine.replay(model, trace=guide_trace)
    if isinstance(model, EnumDiveModel):  # missingness: exact posterior mode or draw given the rest
        return infer_discrete(model_fn, first_available_dim=-1 - MAX_PLATE_NESTING, temperature=0 if use_mean else 1)
    return model_fn


def posterior_trace(model: DiveModel, guide: torch.nn.Module, batch: SceneBatch, use_mean: bool = True):
    """The model's trace on ``batch`` with its latents replayed from the guide's posterior means
    (``use_mean``) or from one guide draw (``dive-enum``: missingness at its exact posterior mode or
    a draw, given the rest)."""
    with torch.no_grad():
        guide_trace = poutine.trace(PosteriorMean()(guide) if use_mean else guide).get_trace(batch)
        return poutine.trace(_replayed(model, guide_trace, use_mean)).get_trace(batch)


def reconstruct(
    model: DiveModel, guide: torch.nn.Module, batch: SceneBatch, use_mean: bool = True, complete: bool = False
) -> torch.Tensor:
    """Rendered frames ``(B, T, 1, H, W)`` for ``batch`` under the posterior: guide means
    (``use_mean=True``) or one guide draw, replayed through the model. For ``dive-enum`` the
    missingness is then set to its exact posterior mode (or a posterior draw) given those latents.

    ``complete=False``: the model's frames (input frames without the objects it judged missing,
    paper Eq. 10). ``complete=True``: every object rendered in every frame, i.e. the imputed
    complete video, to compare with ``batch.complete``.
    """
    with torch.no_grad():
        trace = posterior_trace(model, guide, batch, use_mean=use_mean)
        if not complete:
            return trace.nodes["frames"]["value"]
        z_p = trace.nodes["z_p"]["value"]
        z_a = trace.nodes["z_a"]["value"]
        z_a = z_a.expand(*z_p.shape[:-1], z_a.shape[-1])  # DDPAE: one appearance per object
        return model.composite(model.render_objects(z_a, z_p), None)


def sample_posterior(
    model: DiveModel,
    guide: torch.nn.Module,
    batch: SceneBatch,
    num_samples: int = 1,
    sites: tuple[str, ...] = ("frames", "present", "z_p", "z_a"),
) -> dict[str, torch.Tensor]:
    """``num_samples`` guide draws replayed through the model; returns ``{site: (S, *shape)}``
    with each site's trace shape (e.g. ``frames`` ``(S, B, T, 1, H, W)``)."""
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    draws: dict[str, list[torch.Tensor]] = {name: [] for name in sites}
    with torch.no_grad():
        for _ in range(num_samples):
            guide_trace = poutine.trace(guide).get_trace(batch)
            trace = poutine.trace(_replayed(model, guide_trace, use_mean=False)).get_trace(batch)
            missing = [name for name in sites if name not in trace.nodes]
            if missing:
                known = [n for n, s in trace.nodes.items() if s["type"] == "sample"]
                raise ValueError(f"unknown site(s) {missing}; this model has {known}")
            for name in sites:
                draws[name].append(trace.nodes[name]["value"])
    return {name: torch.stack(values) for name, values in draws.items()}


def missing_probability(model: DiveModel, guide: torch.nn.Module, batch: SceneBatch) -> torch.Tensor:
    """Posterior probability that object i is missing at input frame t, ``(B, N, K)``.

    For guides with a missingness posterior this is ``q(z_m = 1 | y)``. For ``dive-enum`` it is the
    exact conditional posterior ``p(z_m = 1 | y, z_p, z_a)`` at the guide's posterior means.
    """
    with torch.no_grad():
        if not isinstance(model, EnumDiveModel):
            return guide.missing_probability(batch)
        elbo = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
        marginals = elbo.compute_marginals(model, PosteriorMean()(guide), batch)
        probs = []
        for i in range(batch.num_objects):
            marginal: dist.Bernoulli = marginals[f"z_m_{i}"]
            probs.append(marginal.probs.reshape(batch.batch_size, batch.num_observed))
        return torch.stack(probs, 1)
