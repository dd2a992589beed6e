"""Batched elastic deformation of digit patches (Simard et al. 2003; DIVE paper §4.2, Scenario 3).

A deformation is a pair of displacement fields ``(dx, dy)`` obtained by smoothing two uniform
``U(-1, 1)`` fields with a Gaussian of width ``sigma`` and scaling them by ``alpha``. DIVE draws the
fields once per object and sequence and only changes ``alpha`` from frame to frame; since the
smoothing is linear, we smooth once and scale per frame (identical to re-smoothing every frame).

The smoothing reproduces ``scipy.ndimage.gaussian_filter(field, sigma)`` (``mode="reflect"``,
``truncate=4``) exactly: on a ``S x S`` field it is the matrix product ``G @ field @ G.T`` with the
``S x S`` operator :func:`gaussian_smoothing_matrix`. The warp reproduces
``scipy.ndimage.map_coordinates(image, coords, order=1, mode="reflect")`` through
``torch.nn.functional.grid_sample`` (bilinear, ``padding_mode="reflection"``,
``align_corners=False``: both reflect about the pixel edges, then clamp).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["alpha_schedule", "gaussian_smoothing_matrix", "smooth_fields", "warp_patches"]


def gaussian_smoothing_matrix(
    size: int, sigma: float, *, truncate: float = 4.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``(size, size)`` matrix ``G`` with ``G @ v`` = 1-D Gaussian smoothing of ``v`` as scipy does it.

    Kernel: ``exp(-x^2 / (2 sigma^2))`` on ``x in [-r, r]``, ``r = int(truncate * sigma + 0.5)``,
    normalised to sum 1; boundary: half-sample symmetric reflection (``d c b a | a b c d``).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = weights / weights.sum()
    rows = torch.arange(size).repeat_interleave(2 * radius + 1)
    src = (torch.arange(size)[:, None] + torch.arange(-radius, radius + 1)[None, :]).reshape(-1)
    src = src.remainder(2 * size)  # half-sample symmetric reflection has period 2 * size
    src = torch.where(src < size, src, 2 * size - 1 - src)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.index_put_((rows, src), weights.repeat(size), accumulate=True)
    return matrix.to(dtype)


def smooth_fields(uniform: torch.Tensor, sigma: float) -> torch.Tensor:
    """Map ``U[0, 1)`` fields ``(..., S, S)`` to ``G(2 u - 1)``: smoothed fields in ``(-1, 1)``."""
    if uniform.dim() < 2 or uniform.shape[-1] != uniform.shape[-2]:
        raise ValueError(f"uniform must have shape (..., S, S), got {tuple(uniform.shape)}")
    g = gaussian_smoothing_matrix(uniform.shape[-1], sigma, dtype=uniform.dtype).to(uniform.device)
    return g @ (2.0 * uniform - 1.0) @ g.T


def warp_patches(patches: torch.Tensor, displacement: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elastically warp square patches with per-frame scaled displacement fields.

    Output pixel ``(r, c)`` of frame ``t`` is the bilinear sample of the patch at
    ``(r + scale[t] * dy[r, c], c + scale[t] * dx[r, c])``, reflecting at the borders.

    Args:
        patches: ``(M, S, S)`` floats, one image per object.
        displacement: ``(M, 2, S, S)`` smoothed fields, channel 0 = ``dx`` (columns),
            channel 1 = ``dy`` (rows), in pixels per unit ``scale``.
        scale: ``(M, T)`` or ``(T,)`` per-frame multipliers ``alpha_t``.

    Returns:
        ``(M, T, S, S)`` warped patches (same dtype as ``patches``).
    """
    if patches.dim() != 3 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"patches must have shape (M, S, S), got {tuple(patches.shape)}")
    m, s, _ = patches.shape
    if displacement.shape != (m, 2, s, s):
        raise ValueError(f"displacement must have shape {(m, 2, s, s)}, got {tuple(displacement.shape)}")
    scale = scale.to(device=patches.device, dtype=patches.dtype).expand(m, -1)
    t = scale.shape[1]
    # pixel coordinate p -> normalised (2 p + 1) / S - 1 (align_corners=False); grid[..., 0] = column
    ident = (2.0 * torch.arange(s, device=patches.device, dtype=patches.dtype) + 1.0) / s - 1.0
    base = torch.stack(torch.broadcast_tensors(ident[None, :], ident[:, None]), dim=-1)  # (S, S, 2)
    disp = displacement.to(device=patches.device, dtype=patches.dtype).permute(0, 2, 3, 1) * (2.0 / s)
    grid = torch.addcmul(base, scale[:, :, None, None, None], disp[:, None])  # (M, T, S, S, 2)
    images = patches[:, None, None].expand(m, t, 1, s, s).reshape(m * t, 1, s, s)
    out = F.grid_sample(
        images, grid.reshape(m * t, s, s, 2), mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return out.reshape(m, t, s, s)


def alpha_schedule(alpha: float, num_frames: int, *, official: bool = False) -> torch.Tensor:
    """Per-frame deformation strength, float64 ``(T,)``.

    Paper (default): ``alpha_t = alpha (1 - t / (T - 1))``, from ``alpha`` down to 0 at the last frame.
    Official code (``official=True``): ``alpha_t = alpha - (alpha / T) t``, from ``alpha`` to ``alpha / T``.
    """
    t = torch.arange(num_frames, dtype=torch.float64)
    if official:
        return alpha - (alpha / num_frames) * t
    return alpha * (1.0 - t / max(num_frames - 1, 1))
