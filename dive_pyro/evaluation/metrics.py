"""Per-frame video metrics in the conventions of DIVE's Table 1 and its peers.

All functions take ``pred`` and ``target`` of shape ``(B, T, 1, H, W)`` with values in ``[0, 1]``
and an optional bool ``scored`` mask of the same shape (pixels that count; default all), and
return one value per frame, ``(B, T)``. They are pure, batched and device-agnostic; arithmetic is
in the inputs' dtype (at least float32; pass float64 for reference-grade precision).

Conventions (DIVE's ``eval.py`` and ``utils/metrics.py``, docs/official_code.md §5; OpenSTL's for
``ssim_openstl``):

* ``bce``, ``mse``, ``mae``: SUMS over the frame's scored pixels ("per frame" in DDPAE/DIVE/
  OpenSTL); BCE clamps ``pred`` to ``[1e-4, 1 - 1e-4]`` and uses the natural log (nats);
* ``psnr``: 10·log10(1 / per-pixel MSE) of the frame, capped at ``PSNR_CAP`` dB (a frame with
  zero error has infinite PSNR); ``psnr_sequence`` is DIVE's per-sequence variant;
* ``ssim``: Wang et al. (2004) as scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1)`` computes it: 11×11 Gaussian, mean over
  the interior that is 5 pixels away from every border;
* ``ssim_dive``: DIVE's vendored pytorch-ssim: 11×11 Gaussian σ=1.5, zero "same" padding,
  population statistics, range 1, mean over the full map including borders;
* ``ssim_openstl``: OpenSTL / PhyDNet / SVG (scikit-image ≤ 0.19 defaults for floats): 7×7 uniform
  window, sample covariance, data range 2, mean over the interior 3 pixels away from the borders.

SSIM on a masked region: each frame's SSIM is computed on the crop given by the bounding box of its
scored pixels (DIVE scores Scenario 1 on the 32×64 bottom crop), so ``scored`` must be a filled
rectangle in every frame for SSIM (``ValueError`` otherwise). The 'valid' conventions need a crop of
at least 11×11 (``ssim``) or 7×7 (``ssim_openstl``). Frames with no scored pixels get ``pixels = 0``,
zero sums and NaN PSNR / SSIM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dive_pyro.data.batch import check_frames

__all__ = [
    "BCE_EPS",
    "FRAME_METRIC_KEYS",
    "PSNR_CAP",
    "SSIM_KINDS",
    "bce",
    "frame_metrics",
    "mae",
    "mse",
    "psnr",
    "psnr_sequence",
    "ssim",
    "ssim_dive",
    "ssim_openstl",
]

PSNR_CAP = 100.0
BCE_EPS = 1e-4
SSIM_KINDS = ("ssim", "ssim_dive", "ssim_openstl")
FRAME_METRIC_KEYS = ("bce", "mse", "mae", "psnr", "ssim", "ssim_dive", "ssim_openstl", "pixels")


# --------------------------------------------------------------------------- input checks
def _check_mask(mask: torch.Tensor, like: torch.Tensor, name: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool, got {mask.dtype}")
    if mask.shape != like.shape:
        raise ValueError(f"{name} must have the frames' shape {tuple(like.shape)}, got {tuple(mask.shape)}")
    if mask.device != like.device:
        raise ValueError(f"{name} is on {mask.device} but the frames are on {like.device}")


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate inputs; return (pred, target) in the work dtype and the bool mask."""
    check_frames(pred, "pred")
    check_frames(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    if scored is None:
        scored = torch.ones(pred.shape, dtype=torch.bool, device=pred.device)
    else:
        _check_mask(scored, pred, "scored")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype), scored


def _masked_sum(values: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    return torch.where(scored, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(dim=(2, 3, 4))


# --------------------------------------------------------------------------- pixel sums
def bce(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame binary cross-entropy in nats, summed over scored pixels, ``(B, T)``.

    ``pred`` is clamped to ``[BCE_EPS, 1 - BCE_EPS]`` as DDPAE/DIVE do before ``nn.BCELoss``.
    """
    p, t, m = _prepare(pred, target, scored)
    p = p.clamp(BCE_EPS, 1.0 - BCE_EPS)
    return _masked_sum(-(t * torch.log(p) + (1.0 - t) * torch.log1p(-p)), m)


def mse(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame sum of squared errors over scored pixels ("MSE per frame"), ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _masked_sum((p - t) ** 2, m)


def mae(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame sum of absolute errors over scored pixels ("MAE per frame"), ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _masked_sum((p - t).abs(), m)


def _psnr_from_sums(sse: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """10·log10(1 / (sse / pixels)) capped at ``PSNR_CAP``; NaN where ``pixels == 0``."""
    return (
        (10.0 * torch.log10(pixels.to(sse.dtype) / sse))
        .clamp(max=PSNR_CAP)
        .where(pixels > 0, torch.full((), math.nan, dtype=sse.dtype, device=sse.device))
    )


def psnr(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame PSNR in dB (peak 1) over scored pixels, capped at ``PSNR_CAP``, ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _psnr_from_sums(_masked_sum((p - t) ** 2, m), m.sum(dim=(2, 3, 4)))


def psnr_sequence(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """DIVE's PSNR: 10·log10(1 / mean pixel MSE over the whole sequence), capped, ``(B,)``."""
    p, t, m = _prepare(pred, target, scored)
    return _psnr_from_sums(_masked_sum((p - t) ** 2, m).sum(1), m.sum(dim=(1, 2, 3, 4)))


# --------------------------------------------------------------------------- SSIM
def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """11 taps of a normalised Gaussian with σ = 1.5 (scikit-image: truncate 3.5; pytorch-ssim)."""
    x = torch.arange(11, dtype=dtype, device=device) - 5
    w = torch.exp(-(x**2) / (2 * 1.5**2))
    return w / w.sum()


def _ssim_map(stats: torch.Tensor, cov_norm: float, data_range: float) -> torch.Tensor:
    """SSIM map from filtered (N, 5, h, w) statistics [E x, E y, E x², E y², E xy] (Wang 2004, Eq. 13)."""
    ux, uy, uxx, uyy, uxy = stats.unbind(1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def _ssim_crops(x: torch.Tensor, y: torch.Tensor, kinds: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Mean SSIM of each image pair in ``x``, ``y`` of shape (N, h, w) per convention in ``kinds``."""
    h, w = x.shape[-2:]
    need = {"ssim": 11, "ssim_openstl": 7}
    for kind in kinds:
        if kind in need and (h < need[kind] or w < need[kind]):
            n = need[kind]
            raise ValueError(f"{kind} needs a scored region of at least {n}x{n} pixels, got {h}x{w}")
    raw = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (N, 5, h, w)
    out = {}
    if "ssim" in kinds or "ssim_dive" in kinds:
        # one zero-padded ("same") Gaussian pass serves both: its interior 5 px from every border
        # equals the 'valid' filtering scikit-image keeps after cropping
        g = _gaussian_window(x.dtype, x.device)
        stats = F.conv2d(raw, g.view(1, 1, 11, 1).expand(5, 1, 11, 1), padding=(5, 0), groups=5)
        stats = F.conv2d(stats, g.view(1, 1, 1, 11).expand(5, 1, 1, 11), padding=(0, 5), groups=5)
        s = _ssim_map(stats, cov_norm=1.0, data_range=1.0)
        if "ssim_dive" in kinds:
            out["ssim_dive"] = s.mean(dim=(-2, -1))
        if "ssim" in kinds:
            out["ssim"] = s[..., 5 : h - 5, 5 : w - 5].mean(dim=(-2, -1))
    if "ssim_openstl" in kinds:
        stats = F.avg_pool2d(raw, kernel_size=7, stride=1)  # uniform 7x7, 'valid' = skimage's crop
        out["ssim_openstl"] = _ssim_map(stats, cov_norm=49.0 / 48.0, data_range=2.0).mean(dim=(-2, -1))
    return out


def _bounding_boxes(region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame (r0, r1, c0, c1) inclusive boxes of a (F, H, W) bool mask, and a non-empty flag.

    Raises ``ValueError`` if a non-empty frame's mask is not a filled rectangle.
    """
    n, H, W = region.shape
    rows, cols = region.any(dim=2), region.any(dim=1)
    nonempty = rows.any(dim=1)
    r0 = rows.to(torch.uint8).argmax(dim=1)
    r1 = H - 1 - rows.flip(1).to(torch.uint8).argmax(dim=1)
    c0 = cols.to(torch.uint8).argmax(dim=1)
    c1 = W - 1 - cols.flip(1).to(torch.uint8).argmax(dim=1)
    area = (r1 - r0 + 1) * (c1 - c0 + 1)
    bad = nonempty & (region.sum(dim=(1, 2)) != area)
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            "SSIM needs the scored pixels of each frame to form a filled rectangle (it is computed "
            f"on their bounding-box crop); flattened frame {first} is not rectangular"
        )
    return torch.stack([r0, r1, c0, c1], dim=1), nonempty


def _ssim_region(
    p: torch.Tensor, t: torch.Tensor, region: torch.Tensor, kinds: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """SSIM of every frame on the bounding-box crop of ``region``; frames are grouped by box."""
    B, T, _, H, W = p.shape
    x, y, m = p.reshape(B * T, H, W), t.reshape(B * T, H, W), region.reshape(B * T, H, W)
    boxes, nonempty = _bounding_boxes(m)
    out = {k: torch.full((B * T,), math.nan, dtype=p.dtype, device=p.device) for k in kinds}
    idx_nonempty = nonempty.nonzero().squeeze(1)
    if idx_nonempty.numel():
        unique, inverse = torch.unique(boxes[idx_nonempty], dim=0, return_inverse=True)
        for k, (r0, r1, c0, c1) in enumerate(unique.tolist()):
            idx = idx_nonempty[inverse == k]
            xc, yc = x[idx, r0 : r1 + 1, c0 : c1 + 1], y[idx, r0 : r1 + 1, c0 : c1 + 1]
            for kind, value in _ssim_crops(xc, yc, kinds).items():
                out[kind][idx] = value
    return {k: v.reshape(B, T) for k, v in out.items()}


def ssim(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame SSIM, Wang et al. (2004) / scikit-image Gaussian convention, range 1, ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _ssim_region(p, t, m, ("ssim",))["ssim"]


def ssim_dive(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame SSIM in DIVE's convention (11×11 Gaussian, zero padding, full-map mean), ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _ssim_region(p, t, m, ("ssim_dive",))["ssim_dive"]


def ssim_openstl(pred: torch.Tensor, target: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Per-frame SSIM in OpenSTL's convention (7×7 uniform, sample cov., range 2), ``(B, T)``."""
    p, t, m = _prepare(pred, target, scored)
    return _ssim_region(p, t, m, ("ssim_openstl",))["ssim_openstl"]


# --------------------------------------------------------------------------- all at once
def frame_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    scored: torch.Tensor | None = None,
    ssim_region: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """All per-frame metrics, ``{key: (B, T)}`` for ``FRAME_METRIC_KEYS``.

    ``pixels`` is the number of scored pixels per frame. SSIM is computed on the bounding box of
    ``ssim_region`` (default ``scored``), which must be a filled rectangle per frame; pass a
    rectangular ``ssim_region`` when ``scored`` is not one (e.g. visible pixels only, with the
    unscored pixels set equal in ``pred`` and ``target``).
    """
    p, t, m = _prepare(pred, target, scored)
    if ssim_region is None:
        ssim_region = m
    else:
        _check_mask(ssim_region, pred, "ssim_region")
    err = p - t
    pc = p.clamp(BCE_EPS, 1.0 - BCE_EPS)
    pixels = m.sum(dim=(2, 3, 4))
    sse = _masked_sum(err**2, m)
    out = {
        "bce": _masked_sum(-(t * torch.log(pc) + (1.0 - t) * torch.log1p(-pc)), m),
        "mse": sse,
        "mae": _masked_sum(err.abs(), m),
        "psnr": _psnr_from_sums(sse, pixels),
    }
    out.update(_ssim_region(p, t, ssim_region, SSIM_KINDS))
    out["pixels"] = pixels
    return out
