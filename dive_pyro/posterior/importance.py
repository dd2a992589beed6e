"""PSIS diagnostics of the guide per video, and an importance-resampled posterior where valid.

:func:`psis_summary` turns log weights ``(S, B)`` (:func:`dive_pyro.inference.importance.log_weights`)
into, per video: the Pareto k̂ (``arviz.psislw``), the effective sample size
``1 / Σ w̃²`` of the self-normalised weights, and the gap ``IWAE(S) − ELBO`` in nats (a lower
bound on ``KL(q ‖ p(z | y))`` that tightens with S). Yao et al. 2018 §2.2: k̂ < 0.5 good,
0.5–0.7 usable, > 0.7 the guide cannot be trusted as a proposal and no importance correction
should be used. :func:`sir_indices` resamples draws with the smoothed weights only for videos
with k̂ < 0.7.
"""

from __future__ import annotations

import numpy as np
import torch

from dive_pyro.inference.importance import log_weights
from dive_pyro.posterior.arviz_view import psis

__all__ = ["K_HAT_OK", "psis_summary", "psis_check", "sir_indices"]

K_HAT_OK = 0.7


def psis_summary(lw: torch.Tensor) -> dict:
    """Per-video k̂, ESS and IWAE − ELBO gap of log weights ``(S, B)`` (module doc)."""
    if lw.dim() != 2 or lw.shape[0] < 2:
        raise ValueError(f"log weights must have shape (S >= 2, B), got {tuple(lw.shape)}")
    x = lw.double().T.cpu().numpy()  # (B, S)
    smoothed, k = psis(x)
    w = np.exp(x - x.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    ess = 1.0 / (w**2).sum(1)
    iwae = torch.logsumexp(lw.double(), 0) - np.log(lw.shape[0])
    gap = (iwae - lw.double().mean(0)).numpy()
    ok = k < K_HAT_OK
    return {
        "num_particles": int(lw.shape[0]),
        "k_hat": k.tolist(),
        "ess": ess.tolist(),
        "iwae_minus_elbo": gap.tolist(),
        "k_hat_median": float(np.median(k)),
        "k_hat_max": float(np.max(k)),
        "ess_median": float(np.median(ess)),
        "gap_median": float(np.median(gap)),
        "videos_k_hat_below_0_7": int(ok.sum()),
        "num_videos": int(k.size),
        "smoothed_log_weights": smoothed,
    }


def psis_check(
    model, guide, batch, num_particles: int = 1000, *, blocks=("all", "pose"), particles_per_pass: int = 8
) -> dict:
    """:func:`psis_summary` for each latent block (``"all"``; ``"pose"`` with appearance and
    missingness at the guide mean)."""
    out = {}
    for block in blocks:
        lw = log_weights(model, guide, batch, num_particles, block=block, particles_per_pass=particles_per_pass)
        out[block] = psis_summary(lw)
    return out


def sir_indices(summary: dict, num_draws: int, seed: int = 0) -> dict[int, np.ndarray]:
    """Sampling-importance-resampling: ``{video: draw indices}`` drawn with the Pareto-smoothed
    weights, only for the videos whose k̂ < 0.7 (elsewhere no corrected posterior is offered)."""
    rng = np.random.default_rng(seed)
    lw = np.asarray(summary["smoothed_log_weights"])
    out = {}
    for b, k in enumerate(summary["k_hat"]):
        if k < K_HAT_OK:
            p = np.exp(lw[b] - lw[b].max())
            out[b] = rng.choice(p.size, size=num_draws, replace=True, p=p / p.sum())
    return out
