"""Trivial baselines that give every Table-1 metric a floor to beat.

Each baseline maps a ``SceneBatch`` to a full-length prediction ``(B, T, 1, H, W)`` in ``[0, 1]``
using only what a model may see: the first K = ``batch.num_observed`` frames of ``observed``.

* ``zeros``: an empty (black) video;
* ``copy-last``: Rec = the observed input frames as they are (no imputation), Pred = the last
  observed frame (K − 1) repeated;
* ``mean``: the per-pixel mean of the K observed input frames, for all T frames.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dive_pyro.data.batch import SceneBatch

__all__ = ["BASELINES", "baseline_predict"]


def _zeros(batch: SceneBatch) -> torch.Tensor:
    return torch.zeros_like(batch.observed)


def _copy_last(batch: SceneBatch) -> torch.Tensor:
    K, T = batch.num_observed, batch.num_frames
    inputs = batch.observed[:, :K]
    future = inputs[:, K - 1 : K].expand(-1, T - K, -1, -1, -1)
    return torch.cat([inputs, future], dim=1)


def _mean(batch: SceneBatch) -> torch.Tensor:
    K, T = batch.num_observed, batch.num_frames
    return batch.observed[:, :K].mean(dim=1, keepdim=True).expand(-1, T, -1, -1, -1).contiguous()


BASELINES: dict[str, Callable[[SceneBatch], torch.Tensor]] = {
    "zeros": _zeros,
    "copy-last": _copy_last,
    "mean": _mean,
}


def baseline_predict(name: str, batch: SceneBatch) -> torch.Tensor:
    """Prediction ``(B, T, 1, H, W)`` of baseline ``name`` (a key of ``BASELINES``) for ``batch``."""
    if name not in BASELINES:
        raise ValueError(f"baseline name must be one of {sorted(BASELINES)}, got {name!r}")
    if not isinstance(batch, SceneBatch):
        raise TypeError(f"batch must be a SceneBatch, got {type(batch).__name__}")
    return BASELINES[name](batch)
