"""Per-video importance weights of the guide as a proposal for the model's posterior.

``log w = log p(y, z) − log q(z | y)`` with ``z ~ q``; the mean of ``log w`` is the ELBO, the
log-mean-exp over ``S`` draws the IWAE bound (Burda et al. 2016, Eq. 8), and their difference
lower-bounds ``KL(q ‖ p(z | y))`` as S grows. The Pareto k̂ of the weights' tail (Yao et al. 2018,
"Yes, but did it work?", §2; PSIS, Vehtari et al. 2024) says whether the guide is usable as a
proposal: k̂ < 0.7 is reliable. Pyro's ``pyro.infer.importance.psis_diagnostic`` returns one k̂ for
the whole batch (one joint log weight); here the weights are kept per video (the ``videos``
plate is dim 0 of every site's log-density).

Two blocks: ``"all"`` (every latent) and ``"pose"`` (``z_p_0``, ``beta``; ``x_m`` and ``z_a``
held at values fixed beforehand, by default the guide's mean at the guide's mean pose).
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import PosteriorMean
from dive_pyro.inference.refine import POSE_SITES

__all__ = ["POSE_SITES", "FixSites", "log_weights", "fixed_non_pose"]


class FixSites(Messenger):
    """Give the named latent sites preset values; unlike ``poutine.condition`` they stay latent
    (not observed), so ``poutine.replay`` carries them into the model."""

    def __init__(self, values: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg) -> None:
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"] = self.values[msg["name"]]


def _latent(site) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)


def _scored(site) -> bool:
    """An observed site that carries likelihood (not a plate's subsample or a deterministic record)."""
    return not site_is_subsample(site) and not site["infer"].get("_deterministic", False)


def _per_video(trace, names, B: int) -> torch.Tensor:
    total = torch.zeros(B, dtype=torch.float64)
    for name in names:
        lp = trace.nodes[name]["log_prob"]
        if lp.dim() == 0 or lp.shape[0] != B:
            raise ValueError(f"site {name!r} has log-density shape {tuple(lp.shape)}: no video dim 0")
        total += lp.reshape(B, -1).sum(1).double().cpu()
    return total


@torch.no_grad()
def fixed_non_pose(model, guide, batch: SceneBatch) -> dict[str, torch.Tensor]:
    """``x_m`` and ``z_a`` at the guide's posterior mean (``x_m`` at its mean, so ``z_m`` at its
    mode), computed at the guide's mean pose: the conditioning of the ``"pose"`` block."""
    trace = poutine.trace(PosteriorMean()(guide)).get_trace(batch)
    return {name: trace.nodes[name]["value"] for name in ("x_m", "z_a") if name in trace.nodes}


@torch.no_grad()
def log_weights(
    model,
    guide,
    batch: SceneBatch,
    num_particles: int,
    *,
    block: str = "all",
    fixed: dict[str, torch.Tensor] | None = None,
    particles_per_pass: int = 1,
) -> torch.Tensor:
    """``(num_particles, B)`` float64 log importance weights (module doc). ``particles_per_pass``
    tiles the batch to run several particles in one pass (memory grows with it)."""
    if block not in ("all", "pose"):
        raise ValueError(f"block must be 'all' or 'pose', got {block!r}")
    if num_particles < 1 or particles_per_pass < 1:
        raise ValueError(
            f"need num_particles >= 1 and particles_per_pass >= 1, got {num_particles}, {particles_per_pass}"
        )
    B = batch.batch_size
    modes = guide.training, model.training
    guide.eval()
    model.eval()
    if block == "pose" and fixed is None:
        fixed = fixed_non_pose(model, guide, batch)
    out = []
    try:
        done = 0
        while done < num_particles:
            P = min(particles_per_pass, num_particles - done)
            tiled = SceneBatch.cat([batch] * P) if P > 1 else batch
            g = guide
            if block == "pose":
                g = FixSites({k: v.repeat(P, *([1] * (v.dim() - 1))) for k, v in fixed.items()})(guide)
            guide_trace = poutine.trace(g).get_trace(tiled)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(tiled)
            guide_trace.compute_log_prob()
            model_trace.compute_log_prob()
            latent = [n for n, s in guide_trace.nodes.items() if _latent(s)]
            if block == "pose":
                latent = [n for n in latent if n in POSE_SITES]
            observed = [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]]
            observed = [n for n in observed if _scored(model_trace.nodes[n])]
            # auxiliary guide sites (dive-markov's pose_path) are in q only: log q(v) with Delta sites
            in_model = [n for n in latent if n in model_trace.nodes]
            lw = _per_video(model_trace, [*in_model, *observed], P * B) - _per_video(guide_trace, latent, P * B)
            out.append(lw.reshape(P, B))
            done += P
    finally:
        guide.train(modes[0])
        model.train(modes[1])
    return torch.cat(out, 0)
