"""Posterior-quality statistics against the generator's ground truth.

Pure functions on tensors (any device; the results are Python floats or CPU arrays):

* missingness, scored from the posterior probability ``q(z_m = 1 | y)`` (paper Eq. 4):
  :func:`auroc`, :func:`brier_score`, :func:`log_loss` (scikit-learn's implementations),
  :func:`reliability_curve` / :func:`expected_calibration_error` with equal-width or adaptive
  (equal-count) bins, and :func:`missingness_scores` (all of them at once);
* positions: :func:`centre_of_mass` of rendered objects, :func:`match_objects` (one Hungarian
  assignment per video) and :func:`match_per_frame` / :func:`identity_switches` (one per frame),
  :func:`position_rmse`, :func:`distance_summary` (median, p90, failure rate), and the calibration
  of the draws: :func:`interval_coverage`, :func:`coverage_curve`, :func:`crps`.

Simulation-based calibration (ranks, χ², ECDF bands) lives in :mod:`dive_pyro.posterior.calibration`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

__all__ = [
    "auroc",
    "brier_score",
    "log_loss",
    "expected_calibration_error",
    "reliability_curve",
    "missingness_scores",
    "centre_of_mass",
    "match_objects",
    "match_per_frame",
    "identity_switches",
    "position_rmse",
    "distance_summary",
    "interval_coverage",
    "coverage_curve",
    "crps",
]


def _flat_probs_labels(probs: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    if probs.shape != labels.shape:
        raise ValueError(
            f"probs and labels must have the same shape, got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    p = probs.detach().reshape(-1).double().cpu().numpy()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probs must be probabilities in [0, 1] without NaN")
    return p, labels.detach().reshape(-1).bool().cpu().numpy()


def _two_classes(y: np.ndarray) -> bool:
    return 0 < y.sum() < y.size


def auroc(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve, P(score of a positive > score of a negative) with ties counted ½
    (``sklearn.metrics.roc_auc_score``). NaN when one class is absent."""
    p, y = _flat_probs_labels(probs, labels)
    return float(skm.roc_auc_score(y, p)) if _two_classes(y) else float("nan")


def brier_score(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean squared error of the probabilities, ``mean (p − y)²`` (0 is perfect; 0.25 is p = ½)."""
    p, y = _flat_probs_labels(probs, labels)
    return float(skm.brier_score_loss(y, p, pos_label=True)) if p.size else float("nan")


def log_loss(probs: torch.Tensor, labels: torch.Tensor, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to ``[eps, 1 − eps]``."""
    p, y = _flat_probs_labels(probs, labels)
    if not p.size:
        return float("nan")
    return float(skm.log_loss(y, np.clip(p, eps, 1 - eps), labels=[False, True]))


def _bin_edges(p: np.ndarray, num_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, num_bins + 1)
    if strategy == "quantile":  # adaptive: equal counts (ties may merge bins)
        edges = np.unique(np.quantile(p, np.linspace(0, 1, num_bins + 1))) if p.size else np.array([0.0, 1.0])
        edges[0], edges[-1] = 0.0, 1.0
        return edges if edges.size > 1 else np.array([0.0, 1.0])
    raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def reliability_curve(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10, strategy: str = "uniform"
) -> dict[str, np.ndarray]:
    """Mean predicted probability, observed frequency and count per bin; ``strategy="uniform"``:
    equal-width bins on [0, 1]; ``"quantile"``: adaptive bins holding equal numbers of predictions."""
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    p, y = _flat_probs_labels(probs, labels)
    edges = _bin_edges(p, num_bins, strategy)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    n = len(edges) - 1
    count = np.bincount(idx, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=p, minlength=n) / count
        freq = np.bincount(idx, weights=y.astype(float), minlength=n) / count
    return {"edges": edges, "confidence": conf, "frequency": freq, "count": count}


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10, strategy: str = "uniform"
) -> float:
    """ECE = Σ_bins (n_b / n) |frequency_b − confidence_b| (bins as in :func:`reliability_curve`)."""
    curve = reliability_curve(probs, labels, num_bins, strategy)
    used = curve["count"] > 0
    if not used.any():
        return float("nan")
    gap = np.abs(curve["frequency"][used] - curve["confidence"][used])
    return float((curve["count"][used] * gap).sum() / curve["count"].sum())


def missingness_scores(probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10) -> dict[str, float]:
    """AUROC, adaptive-bin and equal-width ECE, Brier score, log-loss, base rate and count."""
    return {
        "auroc": auroc(probs, labels),
        "ece_adaptive": expected_calibration_error(probs, labels, num_bins, "quantile"),
        "ece_uniform": expected_calibration_error(probs, labels, num_bins, "uniform"),
        "brier": brier_score(probs, labels),
        "log_loss": log_loss(probs, labels),
        "base_rate": float(labels.double().mean()) if labels.numel() else float("nan"),
        "mean_probability": float(probs.double().mean()) if probs.numel() else float("nan"),
        "count": int(labels.numel()),
    }


# --------------------------------------------------------------------------- positions
def centre_of_mass(images: torch.Tensor, min_mass: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Ink-weighted centre ``(..., 2)`` as ``(x, y)`` pixels (pixel ``j`` centred at ``j``, as
    ``SceneBatch.positions``) of non-negative images ``(..., H, W)``, and the ink mass ``(...)``.
    The centre is NaN where the mass is below ``min_mass`` (nothing drawn)."""
    if images.dim() < 2:
        raise ValueError(f"images must have shape (..., H, W), got {tuple(images.shape)}")
    img = images.detach().double().clamp_min(0)
    H, W = img.shape[-2:]
    mass = img.sum((-2, -1))
    xs = torch.arange(W, dtype=img.dtype, device=img.device)
    ys = torch.arange(H, dtype=img.dtype, device=img.device)
    cx = (img.sum(-2) * xs).sum(-1) / mass.clamp_min(min_mass)
    cy = (img.sum(-1) * ys).sum(-1) / mass.clamp_min(min_mass)
    com = torch.stack([cx, cy], -1)
    return com.masked_fill((mass < min_mass)[..., None], float("nan")), mass


def _check_positions(pred: torch.Tensor, true: torch.Tensor) -> tuple[int, int, int, int]:
    if pred.dim() != 4 or true.dim() != 4:
        raise ValueError("positions must have shape (B, objects, T, 2)")
    B, M, T, _ = pred.shape
    if true.shape[0] != B or true.shape[2] != T:
        raise ValueError(f"pred {tuple(pred.shape)} and true {tuple(true.shape)} positions disagree on batch or time")
    N = true.shape[1]
    if M < N:
        raise ValueError(f"need at least as many model objects as true objects, got {M} < {N}")
    return B, M, N, T


def _pair_d2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Squared distances ``(B, N, M, T)``; NaN coordinates count as far away (1e12)."""
    d2 = ((true.detach().cpu().double()[:, :, None] - pred.detach().cpu().double()[:, None]) ** 2).sum(-1)
    return torch.nan_to_num(d2, nan=1e12)


def match_objects(
    pred_positions: torch.Tensor, true_positions: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """One Hungarian assignment of model objects to true objects per video.

    ``pred_positions`` (B, M, T, 2) and ``true_positions`` (B, N, T, 2); the cost of a pair is the
    mean squared distance over frames where ``weights`` (B, N, T, default all ones) is positive.
    Returns ``perm`` (B, N) long: true object ``n`` is matched to model object ``perm[b, n]``.
    """
    B, _, N, T = _check_positions(pred_positions, true_positions)
    w = torch.ones(B, N, T, dtype=torch.float64) if weights is None else weights.detach().cpu().double()
    d2 = _pair_d2(pred_positions, true_positions)
    cost = (d2 * w[:, :, None]).sum(-1) / w[:, :, None].sum(-1).clamp_min(1e-12)
    perm = torch.empty(B, N, dtype=torch.long)
    for b in range(B):
        rows, cols = linear_sum_assignment(cost[b].numpy())
        perm[b, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return perm


def match_per_frame(pred_positions: torch.Tensor, true_positions: torch.Tensor) -> torch.Tensor:
    """A Hungarian assignment in every frame: ``(B, N, T)`` long, true object ``n`` at frame ``t``
    is matched to model object ``assign[b, n, t]`` (cost: squared distance at that frame)."""
    B, _, N, T = _check_positions(pred_positions, true_positions)
    d2 = _pair_d2(pred_positions, true_positions).permute(0, 3, 1, 2).numpy()  # (B, T, N, M)
    assign = np.empty((B, N, T), dtype=np.int64)
    for b in range(B):
        for t in range(T):
            rows, cols = linear_sum_assignment(d2[b, t])
            assign[b, rows, t] = cols
    return torch.as_tensor(assign)


def identity_switches(assign: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Identity switches per video, ``(B,)`` long, as in the CLEAR-MOT metrics (Bernardin &
    Stiefelhagen 2008): a true object counts one switch at each frame where it is matched to a
    different model object than at the last frame where it was matched. ``assign`` ``(B, N, T)``
    from :func:`match_per_frame`; ``valid`` ``(B, N, T)`` bool marks the frames where a match counts
    (e.g. frames where the match is closer than a gate); other frames are skipped."""
    if assign.dim() != 3:
        raise ValueError(f"assign must have shape (B, N, T), got {tuple(assign.shape)}")
    ok = torch.ones_like(assign, dtype=torch.bool) if valid is None else valid.bool()
    if ok.shape != assign.shape:
        raise ValueError(f"valid {tuple(ok.shape)} must match assign {tuple(assign.shape)}")
    last = torch.full(assign.shape[:2], -1, dtype=torch.long)
    switches = torch.zeros(assign.shape[0], dtype=torch.long)
    for t in range(assign.shape[2]):
        a, v = assign[:, :, t].long().cpu(), ok[:, :, t].cpu()
        switches += (v & (last >= 0) & (a != last)).sum(1)
        last = torch.where(v, a, last)
    return switches


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


def distance_summary(distances: torch.Tensor, failure_px: float) -> dict[str, float]:
    """Median, 90th percentile, mean and RMS of Euclidean errors (pixels), and the failure rate
    ``P(distance > failure_px)``; NaN entries are ignored."""
    d = distances.detach().double().reshape(-1).cpu()
    d = d[~torch.isnan(d)]
    if not d.numel():
        return {k: float("nan") for k in ("median", "p90", "mean", "rmse", "failure_rate")} | {"count": 0}
    return {
        "median": float(d.median()),
        "p90": float(torch.quantile(d, 0.9)),
        "mean": float(d.mean()),
        "rmse": float(d.pow(2).mean().sqrt()),
        "failure_rate": float((d > failure_px).double().mean()),
        "failure_px": float(failure_px),
        "count": int(d.numel()),
    }


def _samples_truth(samples: torch.Tensor, truth: torch.Tensor) -> None:
    if samples.shape[1:] != truth.shape:
        raise ValueError(f"samples {tuple(samples.shape)} must be (S, *truth.shape) with truth {tuple(truth.shape)}")


def interval_coverage(
    samples: torch.Tensor, truth: torch.Tensor, level: float, mask: torch.Tensor | None = None
) -> float:
    """Fraction of ``truth`` inside the central ``level`` interval of ``samples`` (sample dim first)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(coverage_curve(samples, truth, [level], mask)[0])


def coverage_curve(
    samples: torch.Tensor, truth: torch.Tensor, levels=None, mask: torch.Tensor | None = None
) -> np.ndarray:
    """Empirical coverage of the central intervals at each nominal ``level`` (default 0.05 … 0.95):
    the fraction of the (masked, non-NaN) ``truth`` values inside the interval of ``samples``
    ``(S, *truth.shape)``. A calibrated posterior lies on the diagonal; below it is over-confident."""
    _samples_truth(samples, truth)
    levels = np.arange(0.05, 0.96, 0.05) if levels is None else np.asarray(levels, dtype=float)
    if ((levels <= 0) | (levels >= 1)).any():
        raise ValueError(f"levels must lie in (0, 1), got {levels.tolist()}")
    m = ~torch.isnan(truth) if mask is None else mask.bool() & ~torch.isnan(truth)
    x, y = samples.double()[:, m], truth.double()[m]
    if not y.numel():
        return np.full(levels.shape, np.nan)
    q = torch.as_tensor(np.concatenate([(1 - levels) / 2, (1 + levels) / 2]), dtype=x.dtype)
    bounds = torch.quantile(x, q, dim=0)  # (2L, n)
    lo, hi = bounds[: len(levels)], bounds[len(levels) :]
    return ((y >= lo) & (y <= hi)).double().mean(1).numpy()


def crps(samples: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Continuous ranked probability score of an ensemble, per element: ``E|X − y| − ½ E|X − X'|``
    with the unbiased ("fair") estimate of ``E|X − X'|`` over ``S ≥ 2`` draws (Gneiting & Raftery
    2007, Eq. 20; lower is better, 0 only for a point mass at the truth; same units as ``y``)."""
    _samples_truth(samples, truth)
    S = samples.shape[0]
    if S < 2:
        raise ValueError("crps needs at least 2 samples")
    x = samples.double()
    term1 = (x - truth.double()).abs().mean(0)
    xs = x.sort(0).values
    i = torch.arange(1, S + 1, dtype=x.dtype).reshape(S, *([1] * truth.dim()))
    pair = (2 * (2 * i - S - 1) * xs).sum(0) / (S * (S - 1))  # Σ_{i≠j}|x_i − x_j| / (S(S−1))
    return term1 - 0.5 * pair
