"""Posterior-quality statistics against the generator's ground truth.

Pure functions on tensors (any device):

* :func:`auroc` and :func:`expected_calibration_error` / :func:`reliability_curve` for the
  posterior probability that object *i* is missing at *t* (the paper's ``z_m = 1``);
* :func:`match_objects` (Hungarian assignment of model objects to true objects) and
  :func:`position_rmse` for poses;
* :func:`interval_coverage` for central posterior intervals;
* :func:`sbc_ranks` and :func:`rank_uniformity` for simulation-based calibration.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment

__all__ = [
    "auroc",
    "expected_calibration_error",
    "reliability_curve",
    "match_objects",
    "position_rmse",
    "interval_coverage",
    "sbc_ranks",
    "rank_uniformity",
]


def _flat_probs_labels(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if probs.shape != labels.shape:
        raise ValueError(
            f"probs and labels must have the same shape, got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    p = probs.detach().reshape(-1).double()
    if torch.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probs must be probabilities in [0, 1] without NaN")
    return p, labels.detach().reshape(-1).bool()


def auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted ½.

    Computed from average ranks (the Mann–Whitney U statistic). Returns NaN when one class is absent.
    """
    p, y = _flat_probs_labels(probs, labels)
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = torch.as_tensor(stats.rankdata(p.cpu().numpy()), dtype=torch.float64)
    u = ranks[y.cpu()].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def reliability_curve(probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins on [0, 1]: mean predicted probability, observed frequency and count per bin."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    p, y = _flat_probs_labels(probs, labels)
    idx = torch.clamp((p * num_bins).long(), max=num_bins - 1)
    count = torch.bincount(idx, minlength=num_bins).double()
    sum_p = torch.bincount(idx, weights=p, minlength=num_bins)
    sum_y = torch.bincount(idx, weights=y.double(), minlength=num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = (sum_p / count).cpu().numpy()
        freq = (sum_y / count).cpu().numpy()
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    return {"edges": edges, "confidence": conf, "frequency": freq, "count": count.cpu().numpy()}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10) -> float:
    """ECE = Σ_bins (n_b / n) |frequency_b − confidence_b| over equal-width probability bins."""
    curve = reliability_curve(probs, labels, num_bins)
    n = curve["count"].sum()
    used = curve["count"] > 0
    gap = np.abs(curve["frequency"][used] - curve["confidence"][used])
    return float((curve["count"][used] * gap).sum() / n)


def match_objects(
    pred_positions: torch.Tensor, true_positions: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Hungarian assignment of model objects to true objects, per video.

    ``pred_positions`` (B, M, T, 2) and ``true_positions`` (B, N, T, 2); the cost of a pair is the
    mean squared distance over frames where ``weights`` (B, N, T, default all ones) is positive.
    Returns ``perm`` (B, N) long: true object ``n`` is matched to model object ``perm[b, n]``.
    """
    if pred_positions.dim() != 4 or true_positions.dim() != 4:
        raise ValueError("positions must have shape (B, objects, T, 2)")
    B, M, T, _ = pred_positions.shape
    if true_positions.shape[0] != B or true_positions.shape[2] != T:
        raise ValueError(
            f"pred_positions {tuple(pred_positions.shape)} and true_positions "
            f"{tuple(true_positions.shape)} disagree on batch or time"
        )
    N = true_positions.shape[1]
    if M < N:
        raise ValueError(f"need at least as many model objects as true objects, got {M} < {N}")
    w = torch.ones(B, N, T) if weights is None else weights.detach().cpu().double()
    d2 = (
        (true_positions.detach().cpu().double()[:, :, None] - pred_positions.detach().cpu().double()[:, None]) ** 2
    ).sum(-1)  # (B, N, M, T)
    cost = (d2 * w[:, :, None]).sum(-1) / w[:, :, None].sum(-1).clamp_min(1e-12)
    perm = torch.empty(B, N, dtype=torch.long)
    for b in range(B):
        rows, cols = linear_sum_assignment(cost[b].numpy())
        perm[b, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm


def position_rmse(
    pred_positions: torch.Tensor, true_positions: torch.Tensor, mask: torch.Tensor | None = None
) -> float:
    """Root mean squared Euclidean distance (pixels) over the (b, n, t) entries where ``mask`` is True.

    Positions must already be matched (same object order). NaN if the mask selects nothing.
    """
    if pred_positions.shape != true_positions.shape:
        raise ValueError(f"shapes differ: {tuple(pred_positions.shape)} vs {tuple(true_positions.shape)}")
    d2 = ((pred_positions.double() - true_positions.double()) ** 2).sum(-1)
    m = torch.ones_like(d2, dtype=torch.bool) if mask is None else mask.bool()
    if m.sum() == 0:
        return float("nan")
    return float(d2[m].mean().sqrt())


def interval_coverage(
    samples: torch.Tensor, truth: torch.Tensor, level: float, mask: torch.Tensor | None = None
) -> float:
    """Fraction of ``truth`` inside the central ``level`` interval of ``samples`` (sample dim first)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {tuple(samples.shape)} must be (S, *truth.shape) with truth {tuple(truth.shape)}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype, device=samples.device)
    lo, hi = torch.quantile(samples, q, dim=0)
    inside = (truth >= lo) & (truth <= hi)
    if mask is not None:
        inside = inside[mask.bool()]
    return float(inside.double().mean()) if inside.numel() else float("nan")


def sbc_ranks(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Rank of each true value among its posterior draws: #(draws < truth), in {0, …, S}."""
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {tuple(samples.shape)} must be (S, *truth.shape) with truth {tuple(truth.shape)}")
    return (samples < truth.unsqueeze(0)).sum(0)


def rank_uniformity(ranks: torch.Tensor, num_samples: int, num_bins: int | None = None) -> dict[str, object]:
    """χ² test that SBC ranks in {0, …, num_samples} are uniform; returns statistic, p-value, histogram."""
    r = ranks.reshape(-1).long().cpu()
    if r.numel() == 0:
        raise ValueError("ranks is empty")
    if (r < 0).any() or (r > num_samples).any():
        raise ValueError(f"ranks must lie in [0, {num_samples}]")
    L = num_samples + 1
    num_bins = num_bins or min(L, max(2, r.numel() // 5))
    if L % num_bins:
        # fold ranks into equal-width bins of the L possible values
        edges = np.linspace(0, L, num_bins + 1)
        hist = np.histogram(r.numpy() + 0.5, bins=edges)[0]
        expected = r.numel() * np.diff(edges) / L
    else:
        hist = torch.bincount(r // (L // num_bins), minlength=num_bins).numpy()
        expected = np.full(num_bins, r.numel() / num_bins)
    stat, p = stats.chisquare(hist, expected)
    return {"chi2": float(stat), "p_value": float(p), "histogram": hist, "num_bins": num_bins}
