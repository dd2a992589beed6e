"""The imputed video: a user's input frames repaired, plus the model's prediction of the future.

For the K input frames every observed pixel is kept, and the model's rendering adds only what the
posterior says is missing::

    added[b,t]   = min(1, Σ_i z_m[b,i,t] · T(f_dec(z_a[b,i,t]); z_p[b,i,t]))   objects judged missing
    imputed[b,t] = max(observed[b,t], added[b,t])    where the pixel is visible
                 = complete[b,t]                     where it is hidden (e.g. Scenario 1's occluder)

with ``complete`` the rendering of every object (paper Eq. 10 with ``z_m = 0``). Objects are
composited with a pixel-wise max, as the scenes themselves are (official generator,
Rose-STL-Lab/DIVE ``data/moving_mnist.py`` lines 166-173). Frames ``t >= K`` are the model's
prediction (``complete``). So where the posterior marks nothing missing and every pixel is
visible, the input frames are returned exactly as observed; a model without a missingness latent
(``ddpae``) only fills hidden pixels.
"""

from __future__ import annotations

import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import posterior_trace

__all__ = ["batch_from_frames", "impute_frames", "impute_video", "missing_weight"]


def missing_weight(trace, batch: SceneBatch) -> torch.Tensor:
    """``z_m`` ``(B, N, K)`` (1 = missing) from a replayed model trace: the ``present`` site, or the
    per-object ``z_m_{i}`` sites of ``dive-enum``."""
    B, N, K = batch.batch_size, batch.num_objects, batch.num_observed
    if "present" in trace.nodes:
        return 1 - trace.nodes["present"]["value"].reshape(B, N, K)
    if "z_m_0" in trace.nodes:
        return torch.cat([trace.nodes[f"z_m_{i}"]["value"].reshape(B, 1, K) for i in range(N)], 1)
    raise ValueError("the model trace has neither a 'present' site nor 'z_m_<i>' sites; cannot tell what is missing")


@torch.no_grad()
def impute_video(model, guide, batch: SceneBatch, *, use_mean: bool = True) -> torch.Tensor:
    """The imputed video ``(B, T, 1, H, W)`` in [0, 1] (module docstring) from the posterior mean
    (``use_mean``, the official test-time rule) or one posterior draw. Call ``model.eval()`` and
    ``guide.eval()`` first."""
    if not isinstance(batch, SceneBatch):
        raise TypeError(f"batch must be a SceneBatch, got {type(batch).__name__}")
    trace = posterior_trace(model, guide, batch, use_mean=use_mean)
    z_p = trace.nodes["z_p"]["value"]
    z_a = model.appearance_per_frame(trace.nodes["z_a"]["value"], z_p.shape[-2])
    components = model.render_objects(z_a, z_p)  # (B, N, T, 1, H, W)
    complete = model.composite(components, None).clamp(0.0, 1.0)
    K = batch.num_observed
    added = model.composite(components[:, :, :K], missing_weight(trace, batch)).clamp(0.0, 1.0)
    observed, visible = batch.observed[:, :K], batch.visible[:, :K]
    inputs = torch.where(visible, torch.maximum(observed, added), complete[:, :K])
    return torch.cat([inputs, complete[:, K:]], 1)


def batch_from_frames(frames: torch.Tensor, model_config, visible: torch.Tensor | None = None) -> SceneBatch:
    """A :class:`SceneBatch` holding a user's video for a model with config ``model_config``
    (a ``DiveConfig``): ``frames`` ``(T', H, W)``, ``(T', 1, H, W)``, ``(B, T', H, W)`` or
    ``(B, T', 1, H, W)`` floats in [0, 1] with ``T' >= K`` (only the first K frames are read), and
    optionally ``visible`` of the same shape (False = pixel not observed; default: all observed).
    Ground-truth fields are placeholders (the observed frames, nothing missing)."""
    K, T, N, S = model_config.num_observed, model_config.num_frames, model_config.num_objects, model_config.frame_size

    def as_video(x: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() == 3:
            x = x[None, :, None]
        elif x.dim() == 4:
            x = x[None] if x.shape[1] == 1 else x[:, :, None]  # (T, 1, H, W) or (B, T, H, W)
        if x.dim() != 5 or x.shape[2] != 1:
            raise ValueError(
                f"{name} must be (T, H, W), (T, 1, H, W), (B, T, H, W) or (B, T, 1, H, W), got {tuple(x.shape)}"
            )
        if tuple(x.shape[-2:]) != (S, S):
            raise ValueError(f"{name} frames are {x.shape[-2]}x{x.shape[-1]} but the model expects {S}x{S}")
        if x.shape[1] < K:
            raise ValueError(f"{name} has {x.shape[1]} frames but the model reads K = {K} input frames")
        return x[:, :K]

    observed = as_video(frames, "frames").float()
    seen = torch.ones_like(observed, dtype=torch.bool) if visible is None else as_video(visible, "visible").bool()
    if seen.shape != observed.shape:
        raise ValueError(
            f"visible has shape {tuple(seen.shape)} after selecting K frames, frames {tuple(observed.shape)}"
        )
    B = observed.shape[0]
    pad = observed.new_zeros(B, T - K, 1, S, S)
    observed = torch.cat([torch.where(seen, observed, 0.0), pad], 1)
    seen = torch.cat([seen, torch.zeros_like(pad, dtype=torch.bool)], 1)
    return SceneBatch(
        observed=observed,
        visible=seen,
        complete=observed.clone(),
        missing=torch.zeros(B, N, T, dtype=torch.bool),
        positions=observed.new_zeros(B, N, T, 2),
        objects=observed.new_zeros(B, N, T, 1, S, S),
        num_observed=K,
        scenario="user",
    )


def impute_frames(trained, frames: torch.Tensor, visible: torch.Tensor | None = None, *, use_mean: bool = True):
    """:func:`impute_video` of a user's video (see :func:`batch_from_frames`) with a loaded
    ``TrainedModel``; returns ``(B, T, 1, H, W)`` (K repaired input frames, T − K predicted)."""
    batch = batch_from_frames(frames, trained.model.config, visible)
    device = next(trained.guide.parameters()).device
    return impute_video(trained.model, trained.guide, batch.to(device), use_mean=use_mean)
