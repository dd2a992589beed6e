"""benchmarks/posterior_compare.py: its PSIS k̂ recovers known tail indices; the table runs end to end."""

import importlib.util
import json
import math
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location(
    "posterior_compare", Path(__file__).resolve().parents[1] / "benchmarks" / "posterior_compare.py"
)
posterior_compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(posterior_compare)


def test_pareto_khat_recovers_the_tail_index():
    g = torch.Generator().manual_seed(0)
    u = torch.rand(20000, generator=g, dtype=torch.float64)
    for xi in (0.3, 0.9, 1.5):  # generalised Pareto weights with shape xi: k̂ ≈ xi
        weights = ((1 - u).pow(-xi) - 1) / xi
        assert abs(posterior_compare.pareto_khat(weights.log()) - xi) < 0.2
    # the check can fail: light-tailed (log-normal, small sd) weights give a small k̂, heavy ones a large k̂
    light = 0.1 * torch.randn(4000, generator=g, dtype=torch.float64)
    heavy = 20.0 * torch.randn(4000, generator=g, dtype=torch.float64)
    assert posterior_compare.pareto_khat(light) < 0.5 < 0.7 < posterior_compare.pareto_khat(heavy)


def test_table_runs_end_to_end(tiny_checkpoint, tmp_path):
    out = tmp_path / "cmp"
    args = ["--checkpoints", str(tiny_checkpoint), str(tiny_checkpoint), "--names", "a", "b"]
    args += ["--num-videos", "4", "--num-samples", "2", "--num-draws", "10", "--khat-videos", "4", "--refine", "1"]
    assert posterior_compare.main([*args, "--out", str(out)]) == 0
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    assert set(results) == {"a", "b", "b refined 1"}
    assert results["a"]["mse"] == results["b"]["mse"]  # same checkpoint, same videos
    assert 0 <= results["a"]["com_coverage"]["visible_90"] <= 1
    assert math.isfinite(results["a"]["pose_iwae_gap_nats_median"])
    assert "| a |" in out.with_suffix(".md").read_text()


def test_calibration_on_validation_videos_adds_the_chosen_powers(tiny_checkpoint, tmp_path):
    out = tmp_path / "cal"
    args = ["--checkpoints", str(tiny_checkpoint), "--names", "a", "--num-videos", "2", "--num-samples", "4"]
    args += ["--num-draws", "5", "--khat-videos", "0", "--refine", "1", "--tempered-init"]
    args += ["--calibrate-powers", "1", "0.01", "--calibrate-videos", "2", "--likelihood-power", "1"]
    assert posterior_compare.main([*args, "--out", str(out)]) == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    cal = payload["calibration"]
    assert cal["videos"] == "validation" and set(cal["sweep"]) == {"1", "0.01"}
    assert 0 < cal["residual"]["power"] and cal["residual"]["correlation_area_px"] >= 1
    rows = [r for r in payload["results"] if "residual λ" in r]
    assert len(rows) == 1 and payload["results"][rows[0]]["tempered_init"]
    assert all(0 <= cal["sweep"][p]["visible_90"] <= 1 for p in ("1", "0.01"))
    assert set(cal["coverage"]["coverage_error"]) == {"1", "0.01"}
