"""Training batches without the per-object buffer: :func:`generate_training_batch`.

``generate(...).downsample(f)`` renders every object alone into a zero-filled ``(B, N, T, 1, H, W)``
float buffer (``SceneBatch.objects``), composites by a maximum over it, validates, and pools it.
Training needs none of that. Here each object's 28×28 patch is max-composited straight into the
frames, one object at a time, as whole windows of a sliding-window view (as the official generator
pastes with ``np.maximum``; no per-pixel index, no per-object frames); ``observed`` is ``complete``
with the occluded rows cleared, re-rendered only in the frames where an object is removed; frames
are pooled by ``f`` in integers (uint8 digits; for f = 2 four pixels per int32 word), and the
batch is built without re-validation. On CPU the windows are moved by numpy fancy indexing on a
view of the same memory, and uint8 frames become float32 in one buffered numpy division.

Same layout (same seed → same digits, trajectories, removals) and the same ``observed``,
``complete``, ``visible``, ``scored``, ``missing`` and ``positions`` as
``generate(...).downsample(f)``: bit-identical for ``f = 1``; for ``f > 1`` the pooled pixel of
uint8 digits is ``(sum of the f² values) / (255 f²)``, rounded once, where ``downsample`` averages
the f² float32 quotients (at most 1 ulp apart; Sc. 3's float patches pool exactly as ``downsample``).
``objects`` is None. ``tests/data/test_fast_render.py`` checks all of this.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.moving_mnist import DIGIT_SIZE, SceneLayout, draw_layout

__all__ = ["generate_training_batch", "render_training_batch"]


def _paste(
    frames: torch.Tensor,
    patches: torch.Tensor,
    corner: torch.Tensor,
    slot: torch.Tensor,
    select: torch.Tensor | None = None,
) -> torch.Tensor:
    """Max-composite object patches into the zero ``frames`` ``(M, H, W)`` in place and return them.

    ``patches`` ``(B, N, T or 1, S, S)`` (values >= 0); ``corner`` ``(B, N, T)`` flat index of each
    patch's top-left pixel inside its frame; ``slot`` ``(B, T)`` the row of ``frames`` that holds
    frame ``(b, t)``; ``select`` ``(B, N, T)`` bool, the (object, frame) pairs to paste (None: all,
    then ``slot`` must cover every frame). Per object, one gather, maximum and ``index_copy_`` of
    whole S×S windows of a sliding-window view of ``frames`` (a window per top-left pixel), as
    ``np.maximum`` on a slice; one object writes a frame at most once, so writes never collide, and
    the first object needs no maximum (the frames are zero).
    """
    _, H, W = frames.shape
    B, N, _, S, _ = patches.shape
    T = corner.shape[-1]
    shape = (frames.numel() - (S - 1) * (W + 1), S, S)
    on_cpu = frames.device.type == "cpu"
    if on_cpu:  # numpy's fancy indexing copies the 28-element rows 2-4x faster than index_copy_
        size = frames.element_size()
        windows = np.lib.stride_tricks.as_strided(frames.numpy().reshape(-1), shape, (size, W * size, size))
    else:
        windows = frames.as_strided(shape, (1, W, 1))
    base = slot * (H * W)
    for n in range(N):
        index, values = base + corner[:, n], patches[:, n].expand(B, T, S, S)
        if select is None:
            index, values = index.reshape(-1), values.reshape(B * T, S, S)
        else:
            keep = select[:, n]
            index, values = index[keep], values[keep]
        if on_cpu:
            index, values = index.numpy(), values.numpy()
            windows[index] = np.maximum(windows[index], values) if n else values
        else:
            if n:
                values = torch.maximum(windows.index_select(0, index), values)
            windows.index_copy_(0, index, values)
    return frames


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Zero frames; on CPU from numpy's ``calloc``, whose fresh pages are zero already (no memset
    pass over memory that the paste overwrites in large part)."""
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    return torch.from_numpy(np.zeros(shape, dtype=torch.empty((), dtype=dtype).numpy().dtype))


def _pool(frames: torch.Tensor, factor: int, overwrite: bool = False) -> torch.Tensor:
    """``(M, H, W)`` uint8 or float → float32 ``(M, 1, H/f, W/f)`` in [0, 1], averaged over f×f
    (``overwrite``: ``frames`` is a scratch buffer that may be changed)."""
    M, H, W = frames.shape
    if (
        frames.dtype == torch.uint8
        and factor == 2
        and W % 4 == 0
        and sys.byteorder == "little"
        and frames.is_contiguous()
    ):
        # SWAR: each int32 holds 4 pixels; adding its bytes pairwise gives two 16-bit column sums,
        # adding two rows gives the 2×2 sums (<= 1020, no carry between the 16-bit lanes), which
        # read back as int16 are the pooled pixels in order (in place: fresh buffers cost page faults)
        v = frames.view(torch.int32)
        if overwrite:  # no temporaries: the output's memory holds the column sums, frames' the 2×2 sums
            out = torch.empty(M, H // 2, W // 2, device=frames.device)
            pairs = torch.bitwise_right_shift(v, 8, out=out.view(torch.int32).view(M, H, W // 4))
            pairs &= 0x00FF00FF
            pairs += v.bitwise_and_(0x00FF00FF)  # bytes 0+1 and 2+3
            rows = pairs.view(M, H // 2, 2, W // 4)
            half = v.view(-1)[: out.numel() // 2].view(M, H // 2, W // 4)
            total = torch.add(rows[:, :, 0], rows[:, :, 1], out=half)
            return out.copy_(total.view(torch.int16).view(M, H // 2, W // 2)).div_(1020.0).unsqueeze(1)
        pairs = v >> 8
        pairs &= 0x00FF00FF
        pairs += v & 0x00FF00FF  # (M, H, W/4): bytes 0+1 and 2+3
        rows = pairs.view(M, H // 2, 2, W // 4)
        total = rows[:, :, 0]
        total += rows[:, :, 1]
        return total.view(torch.int16).to(torch.float32).div_(1020.0).unsqueeze(1)
    if frames.dtype == torch.uint8 and factor == 1 and frames.device.type == "cpu":
        # one buffered pass (numpy casts in cache-sized chunks), the float32 quotient of torch.div
        out = np.empty((M, 1, H, W), np.float32)
        np.divide(frames.numpy()[:, None], np.float32(255.0), out=out)
        return torch.from_numpy(out)
    if frames.dtype == torch.uint8:
        scale = 255.0
        if factor > 1:  # sum of the f×f values in int16: f row adds, then f column adds (strided)
            rows = frames.view(M, H // factor, factor, W)
            total = rows[:, :, 0].to(torch.int16)
            for i in range(1, factor):
                total += rows[:, :, i]
            cols = total.view(M, H // factor, W // factor, factor)
            frames = cols[..., 0].clone()
            for j in range(1, factor):
                frames += cols[..., j]
            scale = 255.0 * factor * factor
        # convert, then divide in place: the float32 quotient of torch.div(frames, scale), faster
        return frames.to(torch.float32).div_(scale).unsqueeze(1)
    out = frames.unsqueeze(1)
    return F.avg_pool2d(out, factor) if factor > 1 else out  # as SceneBatch.downsample


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
    corner = top_left[..., 1] * W + top_left[..., 0]  # (B, N, T)
    slot = torch.arange(B * T, device=device).reshape(B, T)
    full = _paste(_zeros((B * T, H, W), patches.dtype, device), patches, corner, slot)

    # observed = complete with rows < R cleared, except in frames with a removed object, which are
    # re-rendered without it (only those frames); when R is a multiple of f > 1 this is done after
    # pooling (f = 1: on the uint8 frames, 4x smaller than the float ones)
    with_removal = removed.any(dim=1)  # (B, T)
    frames = with_removal.reshape(-1).nonzero().squeeze(1)
    if len(frames):
        sub = _zeros((len(frames), H, W), patches.dtype, device)
        slot_sub = (with_removal.reshape(-1).cumsum(0) - 1).reshape(B, T)
        _paste(sub, patches, corner, slot_sub, ~removed & with_removal[:, None])
        sub[:, :R] = 0
    if R % f == 0 and f > 1:
        complete = _pool(full, f, overwrite=True)
        observed = complete.clone()
        observed[..., : R // f, :] = 0
        if len(frames):
            observed.index_copy_(0, frames, _pool(sub, f))
    else:  # f = 1, or a pooled row straddles the occlusion boundary: clear at full resolution
        observed = full.clone()
        observed[:, :R] = 0
        if len(frames):
            observed.index_copy_(0, frames, sub)
        complete, observed = _pool(full, f), _pool(observed, f)
    h = w = H // f
    complete, observed = complete.view(B, T, 1, h, w), observed.view(B, T, 1, h, w)

    # visible and scored are one read-only expanded mask (not B·T copies); a consumer that writes
    # into them must clone first
    visible = (torch.arange(h, device=device) * f >= R)[:, None].expand(B, T, 1, h, w)
    missing = removed.clone()
    if R > 0:  # completely hidden: no ink pixel of the object in a visible row (as render_layout)
        ink_rows = (patches > 0).any(-1)  # (B, N, T or 1, S)
        lowest = torch.where(ink_rows, torch.arange(S, device=device), -(H + S)).amax(-1)  # far up if no ink
        missing |= top_left[..., 1] + lowest < R
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
