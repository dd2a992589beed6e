"""Scoring predicted frames: metrics (:mod:`.metrics`), baselines (:mod:`.baselines`), the
published numbers (:mod:`.published`) and result tables (:mod:`.tables`). Pure, batched torch;
nothing here knows about models or guides.
"""

from dive_pyro.evaluation.baselines import BASELINES, baseline_predict
from dive_pyro.evaluation.metrics import frame_metrics
from dive_pyro.evaluation.published import TABLE1, published
from dive_pyro.evaluation.tables import evaluate_baseline, evaluate_frames, markdown_table

__all__ = [
    "BASELINES",
    "TABLE1",
    "baseline_predict",
    "evaluate_baseline",
    "evaluate_frames",
    "frame_metrics",
    "markdown_table",
    "published",
]
