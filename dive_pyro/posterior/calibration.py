"""Simulation-based calibration (Talts et al. 2018): rank statistics and their uniformity tests.

If ``θ ~ p(θ)``, ``y ~ p(y | θ)`` and ``θ_1..θ_S ~ q(θ | y)``, the rank ``#{s: θ_s < θ}`` is
uniform on ``{0, …, S}`` for every simulation exactly when ``q`` is the posterior (for the
statistic considered). Two tests of uniformity:

* :func:`rank_uniformity`: Pearson χ² on a rank histogram;
* :func:`ecdf_test`: the ECDF of the ranks against *simultaneous* 1 − α bands (Säilynoja,
  Bürkner & Vehtari 2022, "Graphical test for discrete uniformity", Statistics and Computing 32:32,
  §2.2, the simulation-adjusted pointwise level γ), which also tell *how* a posterior is wrong:
  an ∪-shaped histogram / S-shaped ECDF difference means over-confident, ∩-shaped means
  under-confident, a shifted ECDF means biased.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from scipy import stats

__all__ = ["sbc_ranks", "rank_uniformity", "ecdf_band", "ecdf_test"]


def sbc_ranks(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Rank of each true value among its posterior draws: #(draws < truth), in {0, …, S}."""
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {tuple(samples.shape)} must be (S, *truth.shape) with truth {tuple(truth.shape)}")
    return (samples < truth.unsqueeze(0)).sum(0)


def _check_ranks(ranks: torch.Tensor, num_samples: int) -> np.ndarray:
    r = np.asarray(ranks.reshape(-1).long().cpu().numpy())
    if r.size == 0:
        raise ValueError("ranks is empty")
    if (r < 0).any() or (r > num_samples).any():
        raise ValueError(f"ranks must lie in [0, {num_samples}]")
    return r


def rank_uniformity(ranks: torch.Tensor, num_samples: int, num_bins: int | None = None) -> dict[str, object]:
    """χ² test that SBC ranks in {0, …, num_samples} are uniform; returns statistic, p-value, histogram."""
    r = _check_ranks(ranks, num_samples)
    L = num_samples + 1
    num_bins = num_bins or min(L, max(2, r.size // 5))
    if L % num_bins:  # fold ranks into equal-width bins of the L possible values
        edges = np.linspace(0, L, num_bins + 1)
        hist = np.histogram(r + 0.5, bins=edges)[0]
        expected = r.size * np.diff(edges) / L
    else:
        hist = np.bincount(r // (L // num_bins), minlength=num_bins)
        expected = np.full(num_bins, r.size / num_bins)
    stat, p = stats.chisquare(hist, expected)
    return {"chi2": float(stat), "p_value": float(p), "histogram": hist, "num_bins": num_bins}


def _pointwise_tail(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Two-sided binomial tail probability of each ECDF count ``n·F(z_i)`` under uniformity."""
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(2 * np.minimum(lower, upper), 1.0)


@functools.lru_cache(maxsize=64)
def _band(num_ranks: int, num_samples: int, prob: float, num_trials: int, seed: int) -> tuple[np.ndarray, ...]:
    L = num_samples + 1
    z = np.arange(1, L) / L
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, L, size=(num_trials, num_ranks))
    flat = (sims + L * np.arange(num_trials)[:, None]).ravel()
    counts = np.bincount(flat, minlength=num_trials * L).reshape(num_trials, L).cumsum(1)[:, :-1]
    gamma = float(np.quantile(_pointwise_tail(counts, num_ranks, z).min(1), 1 - prob))
    lower = stats.binom.ppf(gamma / 2, num_ranks, z) / num_ranks
    upper = stats.binom.ppf(1 - gamma / 2, num_ranks, z) / num_ranks
    return z, lower, upper, gamma


def ecdf_band(
    num_ranks: int, num_samples: int, prob: float = 0.95, num_trials: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Simultaneous ``prob`` band for the ECDF of ``num_ranks`` ranks on {0, …, num_samples}.

    Evaluated at ``z_i = (i + 1) / (S + 1)``, i = 0 … S − 1 (the CDF of the discrete uniform at
    rank i). Säilynoja et al. 2022 §2.2: simulate ``num_trials`` uniform rank samples, take each
    one's smallest pointwise two-sided binomial tail probability; the (1 − prob) quantile of those
    is the adjusted pointwise level γ, and the band is the binomial γ/2 and 1 − γ/2 quantiles.
    Returns ``z``, ``lower``, ``upper`` (ECDF values) and ``gamma``.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    if num_ranks < 1 or num_samples < 1:
        raise ValueError(f"need num_ranks >= 1 and num_samples >= 1, got {num_ranks}, {num_samples}")
    z, lower, upper, gamma = _band(int(num_ranks), int(num_samples), float(prob), int(num_trials), int(seed))
    return {"z": z.copy(), "lower": lower.copy(), "upper": upper.copy(), "gamma": gamma}


def ecdf_test(ranks: torch.Tensor, num_samples: int, prob: float = 0.95, seed: int = 0) -> dict[str, object]:
    """ECDF of ``ranks`` against the simultaneous band of :func:`ecdf_band`. ``passed`` is True when
    the whole ECDF lies inside the band (a level-(1 − prob) test of uniformity); ``max_excess`` is
    how far (in ECDF units) it leaves the band at worst, 0 when inside."""
    r = _check_ranks(ranks, num_samples)
    band = ecdf_band(r.size, num_samples, prob, seed=seed)
    ecdf = np.bincount(r, minlength=num_samples + 1).cumsum()[:-1] / r.size
    excess = np.maximum(band["lower"] - ecdf, ecdf - band["upper"]).clip(min=0)
    return {
        "passed": bool((excess == 0).all()),
        "max_excess": float(excess.max()),
        "ecdf": ecdf,
        "ecdf_minus_z": ecdf - band["z"],
        **band,
        "prob": prob,
    }
