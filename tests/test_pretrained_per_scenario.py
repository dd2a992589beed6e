"""The per-scenario shipped models are the Table-1 campaign's DIVE seed-0 runs, scored on their own
scenario's test set (README "One shipped model per scenario")."""

import json
import math
from pathlib import Path

import pytest

from dive_pyro.inference import load_trained, shipped_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ("occlusion", "out_of_scene", "elastic")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_shipped_scenario_model_is_the_campaign_run_and_its_metrics_match(scenario):
    path = shipped_checkpoint(f"tiny-cpu-{scenario}")
    run = ROOT / "benchmarks" / "results" / "table1" / f"cpu-{scenario}-dive-s0"
    assert path.read_bytes() == (run / "checkpoint.pt").read_bytes()
    trained = load_trained(path)
    assert trained.config.scenario == scenario and trained.config.variant == "dive"
    assert trained.step * trained.config.batch_size >= 1_000_000
    shipped = json.loads((path.parent / "metrics.json").read_text())
    (row,) = [v for k, v in shipped.items() if k.startswith(f"DIVE tiny-cpu-{scenario}")]
    campaign = json.loads((run / "metrics.json").read_text())["model"]
    for group in ("rec", "rec_missing", "pred"):
        assert math.isclose(row[group]["mse"], campaign[group]["mse"], rel_tol=1e-6), group
