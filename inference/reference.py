"""A non-amortised reference posterior for the poses: NUTS with the decoder fixed.

For one or a few videos, NUTS (Hoffman & Gelman 2014, Pyro's ``NUTS``) samples the continuous
pose latents of the fitted model with everything else held fixed: the decoder, the appearance
``z_a`` at the guide's mean and the missingness ``z_m`` at the guide's mode. The sampler runs on
the *position path* ``raw^t = z_p_0 + Σ_{k≤t} β^k`` (the pose before its constraint, paper Eq. 5)
rather than on the ``z_p_0``/``β`` sites: with the Gaussian priors of the model,
``raw^0 ~ N(µ_0, (sd_0² + sd_β²)^½)`` and ``raw^t − raw^{t−1} ~ N(0, sd_β)``, the same path
distribution, but the ``z_p_0``/``β^0`` split that only the prior identifies is integrated out.
(On the raw sites a diagonal mass matrix cannot follow the ridge along that split and NUTS froze.)

The target is ``p(raw | y_{1:K}, z_a, z_m)`` (``target="input"``, what the guide conditions on)
or ``p(raw | y_{1:T}, …)`` (``"all"``, the ELBO's target).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.mcmc import MCMC, NUTS

from dive_pyro.core.nets import constrain_pose
from dive_pyro.core.structure import missingness_from_gaussian
from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.importance import fixed_non_pose
from dive_pyro.inference.posterior import PosteriorMean

__all__ = ["guide_mean_path", "nuts_poses", "pose_potential"]


@torch.no_grad()
def guide_mean_path(guide, batch: SceneBatch) -> torch.Tensor:
    """The guide's mean position path ``raw = z_p_0 + cumsum(β)`` ``(B, N, T, 3)``."""
    trace = poutine.trace(PosteriorMean()(guide)).get_trace(batch)
    return trace.nodes["z_p_0"]["value"] + trace.nodes["beta"]["value"].cumsum(-2)


def pose_potential(model, batch: SceneBatch, z_a: torch.Tensor, x_m: torch.Tensor | None, target: str = "input"):
    """``U(raw) = −log p(raw, y | z_a, z_m)`` for raw paths ``(B, N, T, 3)`` (module doc)."""
    if target not in ("input", "all"):
        raise ValueError(f"target must be 'input' or 'all', got {target!r}")
    cfg, K = model.config, batch.num_observed
    T = batch.num_frames
    sd0 = (model.pose_scale**2 + cfg.beta_scale**2).sqrt()
    first = dist.Normal(model.pose_loc, sd0)
    step = dist.Normal(0.0, cfg.beta_scale)
    z_a = z_a.expand(*z_a.shape[:2], T, z_a.shape[-1])
    weight = None
    if x_m is not None:
        _, weight = missingness_from_gaussian(x_m, cfg.missingness, cfg.temperature)
    frames_to = K if target == "input" else T

    def potential(params: dict) -> torch.Tensor:
        raw = params["raw"]
        log_prior = first.log_prob(raw[..., 0, :]).sum() + step.log_prob(raw.diff(dim=-2)).sum()
        components = model.render_objects(z_a, constrain_pose(raw, cfg.s0, cfg.scale_range))
        frames_in = model.composite(components[:, :, :K], weight)
        frames = torch.cat([frames_in, model.composite(components[:, :, K:], None)], -4)[:, :frames_to]
        visible = batch.visible[:, :frames_to]
        log_lik = model.likelihood(frames, visible, event_dim=4).log_prob(batch.observed[:, :frames_to]).sum()
        return -(log_prior + log_lik)

    return potential


def nuts_poses(
    model,
    guide,
    batch: SceneBatch,
    *,
    num_warmup: int = 100,
    num_samples: int = 100,
    num_chains: int = 2,
    target: str = "input",
    max_tree_depth: int = 8,
    seed: int = 0,
    jitter: float = 0.01,
) -> dict:
    """NUTS draws of the position paths of ``batch`` (module doc). Returns ``raw``
    ``(chains, draws, B, N, T, 3)``, the fixed ``x_m``/``z_a``, the guide's mean path and the
    sampler's divergences and acceptance rates. The chains start at the guide's mean path plus
    ``jitter``; the global RNG state is restored."""
    modes = guide.training, model.training
    guide.eval()
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)  # the decoder is fixed
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            fixed = fixed_non_pose(model, guide, batch)
            start = guide_mean_path(guide, batch)
            U = pose_potential(model, batch, fixed["z_a"], fixed.get("x_m"), target)
            chains, divergences, acceptance = [], {}, {}
            for c in range(num_chains):  # one chain at a time: no worker processes, reproducible
                kernel = NUTS(
                    potential_fn=U, adapt_step_size=True, adapt_mass_matrix=True, max_tree_depth=max_tree_depth
                )
                init = start + jitter * torch.randn(start.shape)
                mcmc = MCMC(
                    kernel,
                    num_samples=num_samples,
                    warmup_steps=num_warmup,
                    initial_params={"raw": init},
                    disable_progbar=True,
                )
                mcmc.run()
                chains.append(mcmc.get_samples()["raw"].detach())
                diag = mcmc.diagnostics()
                divergences[f"chain {c}"] = sum(len(v) for v in diag.get("divergences", {}).values())
                acceptance[f"chain {c}"] = float(next(iter(diag.get("acceptance rate", {0: float("nan")}).values())))
            raw = torch.stack(chains)
            with torch.no_grad():
                u_guide = float(U({"raw": start}))
                u_nuts = float(U({"raw": raw.reshape(-1, *start.shape).mean(0)}))
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        guide.train(modes[0])
        model.train(modes[1])
    return {
        "raw": raw,
        "guide_mean_raw": start,
        "fixed": fixed,
        "divergences": divergences,
        "acceptance_rate": acceptance,
        "potential_at_guide_mean": u_guide,
        "potential_at_nuts_mean": u_nuts,
        "target": target,
    }
