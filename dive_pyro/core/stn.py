"""The spatial transformer of DIVE: :func:`place_sprites` (``T`` in paper Eq. 10) and
:func:`crop_objects` (``T⁻¹`` in paper Eq. 6), both driven by a pose ``(s, x, y)``.

The transform is a scale plus a translation, so the sampling grid of ``F.affine_grid`` is the outer
sum of one row and one column of coordinates; the faster methods use that:

* ``"affine_grid"``: ``F.affine_grid`` + ``F.grid_sample`` (the reference, as the official code);
* ``"grid"``: the same ``grid_sample`` on a grid built by broadcasting (no ``affine_grid`` and its
  slow backward);
* ``"separable"`` (placement only): bilinear sampling with zero padding is a product of one
  interpolation matrix per axis, so a placed sprite is ``A_y · S · A_xᵀ`` (two small matmuls).
  The weights follow ``grid_sample``'s convention (``floor`` corner, fractional weight), so values
  *and* gradients equal the reference up to rounding (float64 tests in ``tests/core/test_stn.py``).

:func:`place_and_sum` fuses the object sum of the composite (paper Eq. 10) into the second matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ALIGN_CORNERS", "PLACE_METHODS", "CROP_METHODS", "crop_objects", "place_and_sum", "place_sprites"]

# The official code calls affine_grid/grid_sample without align_corners, whose meaning changed in
# PyTorch 1.3 (docs/official_code.md §6). We choose False explicitly: normalised coordinates then refer to
# pixel *edges*, so a sprite of o pixels placed at scale s = H / o covers exactly o frame pixels and
# crop(place(sprite)) is exact when pixel centres line up (tests/core/test_nets.py checks both).
ALIGN_CORNERS = False
PLACE_METHODS = ("separable", "grid", "affine_grid")
CROP_METHODS = ("grid", "affine_grid")


def _theta(pose: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Affine matrices ``(M, 2, 3)`` from poses ``(M, 3)``.

    Placement samples the sprite at ``q = s·p + (x, y)`` for frame location ``p`` (normalised
    coordinates), i.e. ``[[s, 0, x], [0, s, y]]``; cropping is the inverse map
    ``[[1/s, 0, −x/s], [0, 1/s, −y/s]]`` (docs/official_code.md §2-3, official ``utils/utils.py:23-32``).
    """
    s, x, y = pose.unbind(-1)
    zero = torch.zeros_like(s)
    if inverse:
        rows = [torch.stack([1 / s, zero, -x / s], -1), torch.stack([zero, 1 / s, -y / s], -1)]
    else:
        rows = [torch.stack([s, zero, x], -1), torch.stack([zero, s, y], -1)]
    return torch.stack(rows, -2)


def _axis(scale: torch.Tensor, shift: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised sampling coordinates ``(M, size)`` of one axis: ``scale · p + shift`` at the
    output pixel centres ``p = (2j + 1)/size − 1`` (``affine_grid`` with align_corners=False)."""
    base = torch.arange(size, dtype=scale.dtype, device=scale.device).mul_(2).add_(1).div_(size).sub_(1)
    return scale[:, None] * base + shift[:, None]


def _grid(pose: torch.Tensor, size: int, inverse: bool) -> torch.Tensor:
    """The ``(M, size, size, 2)`` grid of ``F.affine_grid(_theta(pose, inverse))``, by broadcasting."""
    s, x, y = pose.unbind(-1)
    if inverse:
        s, x, y = 1 / s, -x / s, -y / s
    gx, gy = _axis(s, x, size), _axis(s, y, size)
    return torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), -1)


def _interpolation(coords: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear weights ``(M, out, size)`` with zero padding for normalised ``coords`` ``(M, out)``,
    as ``grid_sample`` computes them: corner ``floor(u)`` gets ``1 − f``, ``floor(u) + 1`` gets
    ``f``, for the pixel coordinate ``u = ((c + 1)·size − 1)/2`` and ``f = u − floor(u)``."""
    u = ((coords + 1) * size - 1) / 2
    u0 = u.detach().floor()
    frac = u - u0
    # two scatter-adds into zeros instead of full-size one-hot comparisons: corners outside
    # 0..size-1 are clamped to the border with weight 0 (the add keeps a border pixel's own weight)
    lo = u0.long()
    weights = u.new_zeros(*u.shape, size)
    for corner, weight in ((lo, 1 - frac), (lo + 1, frac)):
        inside = (corner >= 0) & (corner < size)
        weights.scatter_add_(-1, corner.clamp(0, size - 1)[..., None], (weight * inside)[..., None])
    return weights


def _check(method: str, allowed: tuple[str, ...], name: str) -> None:
    if method not in allowed:
        raise ValueError(f"{name}: method must be one of {allowed}, got {method!r}")


def place_sprites(
    sprites: torch.Tensor, pose: torch.Tensor, frame_size: int, method: str = "separable"
) -> torch.Tensor:
    """Spatial transformer ``T(sprite; pose)`` (paper Eq. 10): sprites ``(..., C, o, o)`` placed
    at poses ``(..., 3)`` in frames ``(..., C, H, H)`` (bilinear, zero outside the sprite).

    The object appears ``H/s`` pixels wide (``o`` pixels when ``s = H/o``), centred at normalised
    coordinates ``−(x, y)/s`` (see :func:`dive_pyro.core.nets.pose_to_pixels`). ``method`` is one of
    :data:`PLACE_METHODS` (same result up to rounding).
    """
    _check(method, PLACE_METHODS, "place_sprites")
    lead = sprites.shape[:-3]
    c, o = sprites.shape[-3], sprites.shape[-1]
    flat = sprites.reshape(-1, c, o, o)
    pose = pose.reshape(-1, 3).to(flat.dtype)
    if method == "separable":
        s, x, y = pose.unbind(-1)
        ax = _interpolation(_axis(s, x, frame_size), o)  # (M, H, o)
        ay = _interpolation(_axis(s, y, frame_size), o)
        out = ay[:, None] @ flat @ ax[:, None].transpose(-1, -2)
    else:
        if method == "grid":
            grid = _grid(pose, frame_size, inverse=False)
        else:
            grid = F.affine_grid(
                _theta(pose, inverse=False), [flat.shape[0], c, frame_size, frame_size], align_corners=ALIGN_CORNERS
            )
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)
    return out.reshape(*lead, c, frame_size, frame_size)


def place_and_sum(
    sprites: torch.Tensor, pose: torch.Tensor, weight: torch.Tensor | None, frame_size: int
) -> torch.Tensor:
    """``Σ_i weight_i · T(sprite_i; pose_i)`` over the object axis (paper Eq. 10 before the clamp):
    sprites ``(B, N, t, C, o, o)``, poses ``(B, N, t, 3)``, weight ``(B, N, t)`` or None →
    ``(B, t, C, H, H)``, with the object sum inside the second (separable) matmul."""
    B, N, t, c, o = sprites.shape[:4] + sprites.shape[-1:]
    H = frame_size
    pose = pose.to(sprites.dtype)
    s, x, y = pose.reshape(-1, 3).unbind(-1)
    ax = _interpolation(_axis(s, x, H), o).reshape(B, N, t, H, o)
    ay = _interpolation(_axis(s, y, H), o).reshape(B, N, t, H, o)
    if weight is not None:
        ay = ay * weight[..., None, None].to(ay.dtype)
    rows = ay[:, :, :, None] @ sprites  # (B, N, t, C, H, o)
    rows = rows.permute(0, 2, 3, 4, 1, 5).reshape(B, t, c, H, N * o)
    cols = ax.permute(0, 2, 1, 4, 3).reshape(B, t, 1, N * o, H)
    return rows @ cols


def crop_objects(frames: torch.Tensor, pose: torch.Tensor, object_size: int, method: str = "grid") -> torch.Tensor:
    """Inverse spatial transformer ``T⁻¹(y; pose)`` (paper Eq. 6): frames ``(..., C, H, W)`` and
    poses ``(..., 3)`` → rectified object crops ``(..., C, o, o)``; ``method`` in :data:`CROP_METHODS`."""
    _check(method, CROP_METHODS, "crop_objects")
    lead = frames.shape[:-3]
    c, h, w = frames.shape[-3:]
    flat = frames.reshape(-1, c, h, w)
    pose = pose.reshape(-1, 3).to(flat.dtype)
    if method == "grid":
        grid = _grid(pose, object_size, inverse=True)
    else:
        size = [flat.shape[0], c, object_size, object_size]
        grid = F.affine_grid(_theta(pose, inverse=True), size, align_corners=ALIGN_CORNERS)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=ALIGN_CORNERS)
    return out.reshape(*lead, c, object_size, object_size)
