"""``benchmarks/table1_ablation.py`` at toy size: an arm that changes nothing reproduces its
reference exactly (paired difference 0), and a run that is no arm is refused."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table1, ablation = _load("table1"), _load("table1_ablation")
ONE = ["--size", "toy", "--scenario", "out_of_scene", "--seed", "0"]


def test_an_arm_equal_to_its_reference_differs_by_exactly_zero_and_a_plain_run_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    ref, arm = tmp_path / "ref", tmp_path / "arm"
    assert table1.main(["run", *ONE, "--root", str(tmp_path / "ref-runs")]) == 0
    assert table1.main(["collect", *ONE, "--root", str(tmp_path / "ref-runs"), "--dest", str(ref)]) == 0
    # out_of_scene already has a static appearance: this arm is the reference run, step for step
    setting = ["--set", "model.dynamic_appearance=false", "--variant", "dive"]
    assert table1.main(["train", *ONE, *setting, "--root", str(tmp_path / "arm-runs")]) == 0
    assert table1.main(["collect", *ONE, "--root", str(tmp_path / "arm-runs"), "--dest", str(arm)]) == 0
    assert ablation.main(["--arm", str(arm), "--ref", str(ref), "--tracking", "4"]) == 0
    text = (arm / "comparison.md").read_text()
    assert "dive with `model.dynamic_appearance=false`" in text
    paired = {line.split(" | ")[0]: line for line in text.splitlines() if "±" in line and line.startswith("| D")}
    assert paired["| DIVE s0"] == "| DIVE s0 | +0.00 ± 0.00 | +0.00 ± 0.00 | +0.00 ± 0.00 |"
    assert "+0.00 ± 0.00" not in paired["| DDPAE s0"]  # another model does differ
    assert "| test Pred MSE by frame | +1 | +2 | +3 |" in text and "Tracking error" in text
    # the across-seeds summary: arm and DIVE equal, arm − DIVE exactly 0, arm − DDPAE not
    summary = [line for line in text.splitlines() if line.startswith(("| Rec |", "| Pred |"))][:2]
    for line in summary:
        arm_mean, dive_mean, ddpae_mean, minus_dive, minus_ddpae = line.split(" | ")[1:6]
        assert arm_mean == dive_mean != ddpae_mean and minus_dive == "+0.00 ± 0.00" != minus_ddpae.rstrip(" |")
    assert "| | arm (n=1) | DIVE (n=1) | DDPAE (n=1) | arm − DIVE | arm − DDPAE |" in text
    assert (arm / "comparison.png").is_file()
    # an arm that does differ (a dynamic appearance on out_of_scene): every paired difference is the
    # difference of its columns (all test sequences scored), so the arm is never read as its reference
    other = tmp_path / "other"
    setting = ["--set", "model.dynamic_appearance=true", "--variant", "dive"]
    assert table1.main(["train", *ONE, *setting, "--root", str(tmp_path / "other-runs")]) == 0
    assert table1.main(["collect", *ONE, "--root", str(tmp_path / "other-runs"), "--dest", str(other)]) == 0
    assert ablation.main(["--arm", str(other), "--ref", str(ref)]) == 0
    rows = {}  # first row of each label: the summary's Rec, then the paired "| DIVE s0" (before the by-frame one)
    for line in (other / "comparison.md").read_text().splitlines():
        rows.setdefault(line.split(" | ")[0], line.split(" | ")[1:])
    arm_rec, dive_rec = (float(x) for x in rows["| Rec"][:2])
    assert arm_rec != dive_rec
    assert float(rows["| DIVE s0"][0].split(" ± ")[0].replace("−", "-")) == pytest.approx(arm_rec - dive_rec, abs=0.011)
    summary = next(line for line in (other / "comparison.md").read_text().splitlines() if line.startswith("| Rec |"))
    assert float(summary.split(" | ")[4].split(" ± ")[0].replace("−", "-")) == pytest.approx(
        arm_rec - dive_rec, abs=0.011
    )
    with pytest.raises(ValueError, match="not an ablation arm"):
        ablation.main(["--arm", str(ref), "--ref", str(ref)])
