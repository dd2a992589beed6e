"""Training batches without the per-object buffer: :func:`generate_training_batch`.

``generate(...).downsample(f)`` renders every object alone into a zero-filled ``(B, N, T, 1, H, W)``
float buffer (``SceneBatch.objects``), composites by a maximum over it, validates, and pools it.
Training needs none of that: here the patches are pasted straight into the frames with one
``scatter_reduce(amax)`` over all objects (uint8 for MNIST digits, as the official generator pastes
with ``np.maximum``), pooled by ``f`` in integers, and the batch is built without re-validation.

Same layout (same seed → same digits, trajectories, removals) and the same ``observed``,
``complete``, ``visible``, ``scored``, ``missing`` and ``positions`` as
``generate(...).downsample(f)``: bit-identical for ``f = 1``; for ``f > 1`` the pooled pixel of
uint8 digits is ``(sum of the f² values) / (255 f²)``, rounded once, where ``downsample`` averages
the f² float32 quotients (at most 1 ulp apart; Sc. 3's float patches pool exactly as ``downsample``).
``objects`` is None. ``tests/data/test_fast_render.py`` checks all of this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.moving_mnist import DIGIT_SIZE, SceneLayout, draw_layout

__all__ = ["generate_training_batch", "render_training_batch"]


def _paste(values: torch.Tensor, pix: torch.Tensor, frames: int, pixels: int) -> torch.Tensor:
    """Max-composite ``values`` ``(F, P)`` at flat pixel indices ``pix`` ``(F, P)`` into ``(F, pixels)``
    zero frames (values are >= 0, so the zero start is neutral)."""
    out = torch.zeros(frames, pixels, dtype=values.dtype, device=values.device)
    return out.scatter_reduce_(1, pix, values, reduce="amax")


def _pool(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """``(B, T, H, W)`` uint8 or float → float32 ``(B, T, 1, H/f, W/f)`` in [0, 1], averaged over f×f."""
    B, T, H, W = frames.shape
    if frames.dtype == torch.uint8:
        if factor > 1:  # sum of the f×f values, by strided adds (faster than a reduction over small dims)
            blocks = frames.reshape(B, T, H // factor, factor, W // factor, factor)
            total = blocks[:, :, :, 0, :, 0].to(torch.int16)
            for i in range(factor):
                for j in range(factor):
                    if i or j:
                        total += blocks[:, :, :, i, :, j]
            frames = total
        return torch.div(frames, 255.0 * factor * factor).unsqueeze(2)  # one pass, float32 result
    out = frames.reshape(B * T, 1, H, W)
    if factor > 1:
        out = F.avg_pool2d(out, factor)  # as SceneBatch.downsample
    return out.reshape(B, T, 1, H // factor, W // factor)


def render_training_batch(layout: SceneLayout, downsample: int = 1) -> SceneBatch:
    """``render_layout(layout).downsample(downsample)`` without ``objects`` (see the module docstring)."""
    patches, top_left, removed = layout.patches, layout.top_left, layout.removed
    B, N, T, _ = top_left.shape
    H = W = layout.frame_size
    S, R, f = DIGIT_SIZE, layout.occluded_rows, downsample
    if not isinstance(f, int) or f < 1 or H % f:
        raise ValueError(f"downsample must be a positive integer dividing the frame size {H}, got {f!r}")
    device = top_left.device
    if patches.dtype != torch.uint8:
        patches = patches.float()
    # (B, T, N, S*S): frame-major, so each frame's pixels of all objects are one row of the scatter
    values = patches.expand(B, N, T, S, S).permute(0, 2, 1, 3, 4).reshape(B * T, N * S * S)
    ar = torch.arange(S, device=device)
    offsets = (ar[:, None] * W + ar[None, :]).reshape(-1)
    corner = (top_left[..., 1] * W + top_left[..., 0]).transpose(1, 2)  # (B, T, N)
    pix = (corner[..., None] + offsets).reshape(B * T, N * S * S)
    complete = _paste(values, pix, B * T, H * W)
    observed = complete.clone()
    frames_with_removal = removed.any(dim=1).reshape(-1).nonzero(as_tuple=True)[0]
    if frames_with_removal.numel():
        keep = ~removed.transpose(1, 2).reshape(B * T, N)[frames_with_removal]  # (F, N)
        sub = values[frames_with_removal].reshape(-1, N, S * S) * keep[..., None].to(values.dtype)
        pasted = _paste(sub.reshape(-1, N * S * S), pix[frames_with_removal], len(sub), H * W)
        observed.index_copy_(0, frames_with_removal, pasted)
    observed = observed.reshape(B, T, H, W)
    observed[..., :R, :] = 0
    complete, observed = _pool(complete.reshape(B, T, H, W), f), _pool(observed, f)

    # visible and scored are one read-only expanded mask (not B·T copies); a consumer that writes
    # into them must clone first
    visible = (torch.arange(H // f, device=device) * f >= R)[:, None].expand(B, T, 1, H // f, W // f)
    missing = removed.clone()
    if R > 0:  # completely hidden: no ink pixel of the object in a visible row (as render_layout)
        row_visible = (top_left[..., 1, None] + ar) >= R
        ink = patches.expand(B, N, T, S, S) > 0
        missing |= ~(ink & row_visible[..., None]).flatten(3).any(-1)
    positions = top_left.to(torch.float32) + (S - 1) / 2
    meta = dict(layout.meta)
    if f > 1:
        positions = (positions + 0.5) / f - 0.5
        meta["downsample"] = f
    return SceneBatch._trusted(
        observed=observed,
        visible=visible,
        complete=complete,
        missing=missing,
        positions=positions,
        objects=None,
        num_observed=layout.num_observed,
        scenario=layout.scenario,
        scored=visible,
        meta=meta,
    )


def generate_training_batch(
    scenario: str, num_sequences: int, *, seed: int, downsample: int = 1, **kwargs
) -> SceneBatch:
    """``generate(scenario, num_sequences, seed=seed, **kwargs).downsample(downsample)`` for training:
    the same videos, without ``objects`` and faster (see the module docstring)."""
    return render_training_batch(draw_layout(scenario, num_sequences, seed=seed, **kwargs), downsample)
