"""Videos simulated from a DIVE model itself, with the latents that generated them.

``simulate(model, batch_size, latents={...})`` samples every latent from the prior unless given
(``poutine.condition``), renders the frames and returns a :class:`SceneBatch` whose ground truth
(``missing``, ``positions``, ``objects``, ``complete``) comes from those latents, plus the
latents themselves in ``meta["latents"]``. Useful for recovery tests and prior predictive checks.
"""

from __future__ import annotations

import torch
from pyro import poutine

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.data.batch import SceneBatch
from dive_pyro.models.dive import DiveModel

__all__ = ["empty_batch", "simulate"]

_LATENTS = ("x_m", "z_m", "present", "z_p_0", "beta", "z_p", "z_a")


def empty_batch(config: DiveConfig, batch_size: int, device: torch.device | str = "cpu") -> SceneBatch:
    """A batch of blank, fully *invisible* videos with the config's shape: the likelihood then
    contributes nothing, so running the model on it samples from the prior."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    B, N, T, S = batch_size, config.num_objects, config.num_frames, config.frame_size
    frames = torch.zeros(B, T, 1, S, S, device=device)
    return SceneBatch(
        observed=frames,
        visible=torch.zeros_like(frames, dtype=torch.bool),
        complete=frames.clone(),
        missing=torch.zeros(B, N, T, dtype=torch.bool, device=device),
        positions=torch.zeros(B, N, T, 2, device=device),
        objects=torch.zeros(B, N, T, 1, S, S, device=device),
        num_observed=config.num_observed,
        scenario="model_prior",
    )


def simulate(
    model: DiveModel,
    batch_size: int,
    latents: dict[str, torch.Tensor] | None = None,
    noise: bool = False,
    device: torch.device | str = "cpu",
) -> SceneBatch:
    """Sample ``batch_size`` videos from ``model`` (latents in ``latents`` are held fixed).

    ``observed`` is the rendered frame (the likelihood's mean) or, with ``noise=True``, a draw
    ``y ~ p(y | z)`` of the pixel likelihood, *not* clipped (clipping would change the likelihood
    and break simulation-based calibration). A Normal draw leaves [0, 1]; the batch is then marked
    ``bounded=False`` (relaxed range validation, see :class:`SceneBatch`). Every pixel is visible.
    """
    blank = empty_batch(model.config, batch_size, device)
    with torch.no_grad():
        trace = poutine.trace(poutine.condition(model, data=latents or {})).get_trace(blank)
        frames = trace.nodes["frames"]["value"]
        z_p = trace.nodes["z_p"]["value"]
        z_a = trace.nodes["z_a"]["value"]
        z_a = z_a.expand(*z_p.shape[:-1], z_a.shape[-1])  # DDPAE: one z_a per object
        objects = model.render_objects(z_a, z_p).clamp(0, 1)
        present = trace.nodes["present"]["value"]  # (B, N, K)
        observed = model.pixel_likelihood(frames).sample() if noise else frames.clamp(0, 1)
    B, N, K = present.shape
    T = frames.shape[1]
    missing = torch.cat([present < 0.5, present.new_zeros(B, N, T - K, dtype=torch.bool)], -1)
    found = {name: trace.nodes[name]["value"].detach() for name in _LATENTS if name in trace.nodes}
    bounded = bool(((observed >= 0) & (observed <= 1)).all())
    return SceneBatch(
        observed=observed,
        visible=torch.ones_like(frames, dtype=torch.bool),
        complete=objects.sum(1).clamp(max=1.0),
        missing=missing,
        positions=pose_to_pixels(z_p, model.config.frame_size),
        objects=objects,
        num_observed=K,
        scenario="model_simulation",
        meta={"latents": found},
        bounded=bounded,
    )
