"""An honest likelihood power for spatially correlated pixel residuals (tempered posterior).

DIVE's likelihood (paper Eq. 9) treats the ``n`` pixels of a frame as independent Normal draws
with sd ``σ``. The residuals of a fitted model are neither that small nor independent (a blurry
decoder leaves smooth, spatially correlated errors), so the posterior is far too confident. The
power posterior ``p(z | y) ∝ p(z) p(y | z)^λ`` (config ``likelihood_power``) with ``λ = n_eff / n``
counts the correlated pixels as ``n_eff`` independent ones. Two ways to choose ``λ``:

* **From the residuals** (:func:`residual_power`): the magnitude adjustment of a misspecified
  Gaussian likelihood. For a linear-Gaussian model ``y = Xθ + e`` with ``e ~ N(0, s² R)`` fitted with
  the working likelihood ``N(Xθ, σ² I)``, the working posterior covariance is ``σ² (X'X)⁻¹`` while
  the sampling covariance of the estimate is ``s² (X'X)⁻¹ X'RX (X'X)⁻¹``; for a constant regressor
  (and approximately for any regressor smooth on the residuals' correlation length) the ratio is
  ``(s²/σ²) · A`` with ``A = Σ_h ρ(h)`` the residuals' correlation area in pixels (the design
  effect: one independent pixel per ``A``). Raising the likelihood to ``λ = (σ/s)² / A`` makes the
  two agree. ``s`` and ``ρ`` are estimated from the posterior-mean residuals of *validation* videos
  (:func:`residual_autocorrelation`, :func:`correlation_area`).
* **From coverage** (:func:`calibrate_power`): the power at which a central interval of an
  identifiable quantity (the object's centre of mass) covers the truth at its nominal rate on
  validation videos, interpolated in ``log λ`` between measured powers.

The first is a property of the residuals only; the second also absorbs what the residuals cannot
see (tracking failures, slot swaps, the guide's own errors). Their disagreement measures how much of
the miscalibration is *not* explained by the pixel-noise model.
"""

from __future__ import annotations

import math

import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import reconstruct

__all__ = [
    "calibrate_power",
    "correlation_area",
    "residual_autocorrelation",
    "residual_power",
    "sandwich_power",
]


def residual_autocorrelation(residuals: torch.Tensor, max_lag: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Spatial autocorrelation ``ρ(dy, dx)`` of residual images ``(..., H, W)``, pooled over the
    leading dims, for lags ``|dy|, |dx| ≤ max_lag``: a ``(2L+1, 2L+1)`` tensor with ``ρ(0, 0) = 1`` at
    its centre. Pixels outside ``mask`` (same shape, bool) are left out of every pair; the pooled mean
    is removed first. Computed with zero-padded FFTs (exact sums over the valid pairs of each lag)."""
    if residuals.dim() < 2:
        raise ValueError(f"residuals must be (..., H, W), got {tuple(residuals.shape)}")
    H, W = residuals.shape[-2:]
    if not 0 <= max_lag < min(H, W):
        raise ValueError(f"max_lag must lie in [0, {min(H, W) - 1}], got {max_lag}")
    r = residuals.double().reshape(-1, H, W)
    m = torch.ones_like(r) if mask is None else mask.reshape(-1, H, W).to(r.dtype)
    if m.sum() < 2:
        raise ValueError("fewer than 2 pixels inside the mask")
    r = (r - (r * m).sum() / m.sum()) * m
    size = (2 * H, 2 * W)  # zero padding: no wrap-around

    def _auto(x: torch.Tensor) -> torch.Tensor:
        f = torch.fft.rfft2(x, s=size)
        return torch.fft.irfft2(f * f.conj(), s=size).sum(0)  # Σ_i x_i x_{i+h}, lag h at index h mod size

    cov, pairs = _auto(r), _auto(m).round()
    lags = torch.arange(-max_lag, max_lag + 1)
    iy, ix = lags % size[0], lags % size[1]
    cov, pairs = cov[iy][:, ix], pairs[iy][:, ix]
    acov = torch.where(pairs > 0, cov / pairs.clamp(min=1), torch.zeros_like(cov))
    if not acov[max_lag, max_lag] > 0:
        raise ValueError("the residuals have zero variance inside the mask")
    return acov / acov[max_lag, max_lag]


def correlation_area(acf: torch.Tensor) -> float:
    """``A = Σ_h ρ(h)`` in pixels (the design effect, module doc) from a ``(2L+1, 2L+1)``
    autocorrelation: summed ring by ring (Chebyshev distance 0, 1, …, L) while a ring's mean stays
    positive (Geyer's initial positive sequence in 2-D), so that noise at long lags is not summed.
    1 for independent pixels; ``4πℓ²`` for white noise smoothed by a Gaussian kernel of sd ``ℓ``."""
    if acf.dim() != 2 or acf.shape[0] != acf.shape[1] or acf.shape[0] % 2 != 1:
        raise ValueError(f"acf must be square with an odd side, got {tuple(acf.shape)}")
    L = acf.shape[0] // 2
    lags = torch.arange(-L, L + 1)
    ring = torch.maximum(lags.abs()[:, None], lags.abs()[None, :])
    total = 0.0
    for k in range(L + 1):
        values = acf[ring == k]
        if k > 0 and not values.mean() > 0:
            break
        total += float(values.sum())
    return max(total, 1.0)


def sandwich_power(model_sd: float, residual_sd: float, area: float) -> float:
    """``λ = (σ / s)² / A`` (module doc): the likelihood power that gives the working Gaussian
    likelihood with sd ``model_sd`` the curvature of the true sampling variance of residuals with sd
    ``residual_sd`` and correlation area ``area`` pixels."""
    if not (model_sd > 0 and residual_sd > 0 and area >= 1):
        raise ValueError(f"need model_sd > 0, residual_sd > 0, area >= 1; got {model_sd}, {residual_sd}, {area}")
    return (model_sd / residual_sd) ** 2 / area


def _model_sd(model) -> float:
    kind = model.config.pixel_scale
    if kind == "fixed":
        return float(model.config.likelihood_scale)
    if kind == "global":
        return float(model.pixel_scale.detach())
    raise ValueError(f"residual_power needs one pixel sd (pixel_scale 'fixed' or 'global'), got {kind!r}")


@torch.no_grad()
def residual_power(model, guide, batch: SceneBatch, *, max_lag: int = 6, chunk: int = 32) -> dict:
    """:func:`sandwich_power` from the residuals ``y − E[y | ẑ]`` of the posterior-mean frames (the
    model's frames, objects judged missing left out; paper Eq. 10) on the visible pixels of the
    *input* frames of ``batch`` (use validation videos, not the test set). Returns the model's and the
    residuals' sd, the autocorrelation, the correlation area ``A``, ``n_eff`` per frame and ``λ``."""
    if model.config.likelihood != "normal":
        raise ValueError(f"residual_power needs the Normal likelihood, got {model.config.likelihood!r}")
    K = batch.num_observed
    residuals, masks = [], []
    for start in range(0, batch.batch_size, chunk):
        sub = batch[start : start + chunk]
        frames = reconstruct(model, guide, sub, use_mean=True, complete=False)[:, :K, 0]
        residuals.append(sub.observed[:, :K, 0] - frames)
        masks.append(sub.visible[:, :K, 0])
    r, m = torch.cat(residuals), torch.cat(masks).bool()
    acf = residual_autocorrelation(r, max_lag, m)
    area = correlation_area(acf)
    s = float(r[m].double().pow(2).mean().sqrt())  # RMS: the ML sd of a zero-mean Normal
    sigma = _model_sd(model)
    H, W = r.shape[-2:]
    return {
        "model_sd": sigma,
        "residual_sd": s,
        "acf": acf,
        "correlation_area_px": area,
        "effective_pixels_per_frame": H * W / area,
        "power": sandwich_power(sigma, s, area),
        "num_videos": int(batch.batch_size),
    }


def calibrate_power(powers, coverages, level: float) -> dict:
    """The power at which measured interval coverage equals ``level``: ``coverages[i]`` is the
    coverage of the central ``level`` interval under ``powers[i]``; coverage falls as the power rises
    (a larger power is a narrower posterior). Linear interpolation in ``log λ`` between the two
    measured powers that bracket ``level``; returns ``power`` (``nan`` if no pair brackets it),
    ``attainable`` and, for every power, its coverage error ``coverage − level`` (a power whose
    error is large is miscalibrated; the sign tells over- (< 0) from under-confidence (> 0))."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    pairs = sorted(zip((float(p) for p in powers), (float(c) for c in coverages), strict=True))
    if len(pairs) < 2 or any(p <= 0 for p, _ in pairs):
        raise ValueError("need at least two positive powers")
    errors = {p: c - level for p, c in pairs}
    power = math.nan
    for (p0, c0), (p1, c1) in zip(pairs, pairs[1:], strict=False):
        if (c0 - level) * (c1 - level) <= 0 and c0 != c1:
            t = (c0 - level) / (c0 - c1)
            power = math.exp(math.log(p0) + t * (math.log(p1) - math.log(p0)))
            break
    return {"power": power, "attainable": not math.isnan(power), "level": level, "coverage_error": errors}
