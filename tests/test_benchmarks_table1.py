"""``benchmarks/table1.py`` end to end at toy size: train, validation curve, test scores, report,
resume, collect, and a same-seed re-run that reproduces its numbers."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from dive_pyro.data.pedestrians import default_vtest_path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
spec = importlib.util.spec_from_file_location("table1", BENCH / "table1.py")
table1 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table1)

ONE = ["--size", "toy", "--scenario", "out_of_scene", "--seed", "0"]


def test_table1_toy_run_report_resume_collect_and_reproduce(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "runs"
    assert table1.main(["run", *ONE, "--root", str(root)]) == 0
    run = root / "toy" / "out_of_scene-dive-s0"
    for name in (
        "checkpoint.pt",
        "config.toml",
        "validation.jsonl",
        "metrics.json",
        "per_sequence.json",
        "per_frame.json",
        "provenance.json",
    ):
        assert (run / name).is_file(), name
    # the by-frame curve is the per-sequence scores taken apart: its input-frame mean is Rec's, its future Pred's
    per_seq, per_frame = (json.loads((run / n).read_text())["model"] for n in ("per_sequence.json", "per_frame.json"))
    K = len(per_frame) - 3  # toy: 5 input + 3 future frames
    for group, frames in (("rec", per_frame[:K]), ("pred", per_frame[K:])):
        assert sum(frames) / len(frames) == pytest.approx(sum(per_seq[group]) / len(per_seq[group]), rel=1e-9)
    curve = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
    assert [p["step"] for p in curve] == [8, 16] and curve[-1]["sequences"] == 32
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 16 and metrics["model"]["num_sequences"] == 16
    report = (root / "toy" / "report" / "table1.md").read_text()
    assert "| Rec (missing steps) MSE |" in report and "Paired DIVE − DDPAE" in report
    assert "published Table 1 is not shown" in report and (root / "toy" / "report" / "curves.png").is_file()
    assert "| DIVE − DDPAE |" in report
    for picture in ("worst_out_of_scene.png", "worst_out_of_scene_pred.png", "by_frame.png"):
        assert (root / "toy" / "report" / picture).is_file() and picture in report
    assert "| out_of_scene copy-last | — |" in report and "| out_of_scene-dive-s0 | 32 |" in report
    # --resume on finished runs trains nothing more and reports the same numbers
    capsys.readouterr()
    assert table1.main(["run", *ONE, "--root", str(root), "--resume"]) == 0
    assert "steps 0 ->" not in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text()) == metrics
    # a same-seed re-run elsewhere reproduces the numbers exactly
    other = tmp_path / "again"
    assert table1.main(["train", *ONE, "--variant", "dive", "--root", str(other)]) == 0
    again = other / "toy" / "out_of_scene-dive-s0"
    assert json.loads((again / "metrics.json").read_text()) == metrics
    assert (again / "validation.jsonl").read_text() == (run / "validation.jsonl").read_text()
    # collect: checkpoint, config, curves, metrics per run, and the table
    dest = tmp_path / "results"
    assert (
        table1.main(
            ["collect", "--size", "toy", "--root", str(root), "--dest", str(dest), "--scenario", "out_of_scene"]
        )
        == 0
    )
    for name in ("checkpoint.pt", "config.toml", "log.jsonl", "validation.jsonl", "metrics.json", "provenance.json"):
        assert (dest / "toy-out_of_scene-ddpae-s0" / name).is_file(), name
    assert (dest / "table1.md").is_file() and (dest / "curves.png").is_file()
    assert "| out_of_scene (n=1) | Rec |" in (dest / "readme_table.md").read_text()
    # restore: a lost run folder comes back from the collected files, and a present one is left alone
    shutil.rmtree(run)
    assert table1.main(["restore", "--size", "toy", "--root", str(root), "--dest", str(dest)]) == 0
    assert json.loads((run / "metrics.json").read_text()) == metrics and (run / "checkpoint.pt").is_file()
    capsys.readouterr()
    assert table1.main(["restore", "--size", "toy", "--root", str(root), "--dest", str(dest)]) == 0
    assert "restored 0 run(s)" in capsys.readouterr().out


def test_a_resume_with_another_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    args = ["train", *ONE, "--variant", "ddpae", "--root", str(tmp_path)]
    assert table1.main(args) == 0
    with pytest.raises(ValueError, match="was started with 16 steps"):
        table1.main([*args, "--resume", "--sequences", "64"])


@pytest.mark.parametrize("size", ["cpu", "paper"])
@pytest.mark.parametrize("scenario", ["occlusion", "out_of_scene", "elastic"])
def test_configs_share_budget_schedule_and_data_across_models(size, scenario, tmp_path):
    dive, ddpae = (
        table1.make_config(size, scenario, v, 1, tmp_path / v, table1.SIZES[size]["sequences"], False)
        for v in ("dive", "ddpae")
    )
    frame = {"cpu": 32, "paper": 64}[size]
    assert dive.model.frame_size == frame and dive.scenario == scenario and dive.seed == 1
    assert (
        dive.num_steps() * dive.batch_size <= table1.SIZES[size]["sequences"] < (dive.num_steps() + 1) * dive.batch_size
    )
    for key in ("steps", "batch_size", "lr", "lr_decay_at", "seed", "data", "kl_warmup_steps", "appearance_dropout_p"):
        assert getattr(dive, key) == getattr(ddpae, key), key
    assert dive.data_options() == ddpae.data_options()
    if scenario == "occlusion":  # the official extra missing step, so that Rec measures imputation
        assert dive.data["num_missing"] == 1 and dive.data["start_range"] == "official"


@pytest.mark.skipif(not default_vtest_path().is_file(), reason="vtest.avi not fetched (make data/vtest.avi)")
def test_table1_toy_pedestrians_pair_trains_with_a_held_out_validation_split(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "runs"
    assert table1.main(["run", "--size", "toy", "--scenario", "pedestrians", "--seed", "0", "--root", str(root)]) == 0
    for variant in ("dive", "ddpae"):
        run = root / "toy" / f"pedestrians-{variant}-s0"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["model"]["num_sequences"] == 16 and metrics["step"] == 16
        assert metrics["imputed"]["rec_missing"]["mse"] >= 0  # the blanked input frame is scored
        curve = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
        assert [p["step"] for p in curve] == [8, 16]
    report = (root / "toy" / "report" / "table1.md").read_text()
    assert "### pedestrians" in report and "Table 2 is MOTSChallenge" in report and "Paired DIVE − DDPAE" in report


def test_pedestrians_configs_share_schedule_and_hold_out_validation_frames(tmp_path):
    dive, ddpae = (
        table1.make_config("cpu", "pedestrians", v, 0, tmp_path / v, 1_000_000, False) for v in ("dive", "ddpae")
    )
    assert dive.scenario == "pedestrians" and dive.model.num_objects == 3 and dive.num_steps() == 62_500
    assert dive.data["validation_fraction"] == 0.1 and dive.data_options() == ddpae.data_options()
    with pytest.raises(ValueError, match="--size cpu"):
        table1.make_config("paper", "pedestrians", "dive", 0, tmp_path / "p", 1_000_000, False)


def test_plateau_exit_is_the_first_validation_point_below_the_zeros_baseline():
    import table1_report

    points = [{"sequences": 40_000 * k, "model_rec_mse": v} for k, v in enumerate([18.3, 18.24, 17.9, 15.1, 18.0], 1)]
    assert table1_report.plateau_exit(points, zeros_rec=18.24) == 160_000  # 17.9 is within 5 % of 18.24
    assert table1_report.plateau_exit(points[:3], zeros_rec=18.24) is None


def test_paired_difference_weighted_by_missing_frames_equals_the_difference_of_pooled_means():
    import math

    import table1_report

    counts = [1, 2, 0, 3]  # frames with a missing object per sequence
    dive = [[2.0, 1.0, None, 4.0]]  # per-sequence mean MSE over those frames
    ddpae = [[3.0, 5.0, None, 4.5]]
    pooled = {
        name: sum(c * v for c, v in zip(counts, runs[0], strict=True) if v is not None) / sum(counts)
        for name, runs in (("dive", dive), ("ddpae", ddpae))
    }
    mean, se, n = table1_report._paired(dive, ddpae, counts)
    assert n == 3 and math.isclose(mean, pooled["dive"] - pooled["ddpae"])
    d = [-1.0, -4.0, -0.5]
    w = [1, 2, 3]
    expected = math.sqrt(sum(wi * wi * (di - mean) ** 2 for wi, di in zip(w, d, strict=True)) * 3 / 2) / 6
    assert math.isclose(se, expected)
    plain = table1_report._paired(dive, ddpae)  # unweighted: the plain mean of per-sequence differences
    assert math.isclose(plain[0], sum(d) / 3) and plain[2] == 3


def test_beyond_seed_spread_needs_one_sign_and_a_mean_above_both_sds():
    import table1_report

    assert table1_report.beyond_seed_spread([-0.9, -0.8], [0.3, 0.5]) is True
    assert table1_report.beyond_seed_spread([-0.9, -0.8], [0.3, 0.9]) is False  # DDPAE's seeds spread more
    assert table1_report.beyond_seed_spread([-2.0, 0.1], [0.1, 0.1]) is False  # the seeds disagree in sign
    assert table1_report.beyond_seed_spread([-2.0], [None, None]) is None  # one seed: no spread to compare


def test_the_table_compares_only_seeds_finished_for_both_variants():
    import table1_report

    runs = [
        {"name": f"elastic-{v}-s{s}", "variant": v, "seed": s}
        for v, s in (("dive", 0), ("ddpae", 0), ("dive", 1), ("ddpae", 2))
    ]
    kept, waiting = table1_report._matched_seeds(runs)
    assert [r["name"] for r in kept] == ["elastic-dive-s0", "elastic-ddpae-s0"]
    assert waiting == ["elastic-dive-s1", "elastic-ddpae-s2"]
    alone = [r for r in runs if r["variant"] == "dive"]  # no seed of both: a one-variant table
    assert table1_report._matched_seeds(alone) == (alone, [])


def test_rendering_floor_splits_input_frames_into_nothing_missing_and_missing():
    import math

    import table1_report

    # K = 4 input frames; per-frame MSE of sequence 0: [1, 1, 5, 5] (frames 2, 3 missing an object),
    # sequence 1: [2, 2, 2, 6] (frame 3), sequence 2: [3, 3, 3, 3] (nothing missing)
    per_seq = {"rec": [3.0, 3.0, 3.0], "rec_missing": [5.0, 6.0, None]}
    got = table1_report.rendering_floor(per_seq, [2, 1, 0], num_input=4)
    floor = (1 + 1 + 2 + 2 + 2 + 3 * 4) / 9
    assert math.isclose(got["floor"], floor) and math.isclose(got["rec_missing"], 16 / 3)
    assert math.isclose(got["excess"], 16 / 3 - floor)


def test_the_status_table_shows_a_scored_runs_own_step_not_its_last_log_row(tmp_path):
    import table1_report

    for name, scored in (("elastic-dive-s0", True), ("elastic-ddpae-s0", False)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.toml").write_text("[svi]\nsteps = 100\nbatch_size = 16\n")
        rows = [{"step": s, "loss": 1.0, "seq_per_s": 200.0, "time": 36.0 * (s + 1)} for s in (0, 10, 90)]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if scored:
            (run / "metrics.json").write_text(json.dumps({"step": 100, "sequences": 1600}))
    lines = {line.split(" | ")[0][2:]: line for line in table1_report.status_table(tmp_path).splitlines()[2:]}
    assert lines["elastic-dive-s0"].startswith("| elastic-dive-s0 | 100 | 100 | 1,600 | 200 | 0.91 | yes |")
    assert lines["elastic-ddpae-s0"].startswith("| elastic-ddpae-s0 | 91 | 100 | 1,456 | 200 | 0.91 | no |")


def test_an_ablation_arm_trains_with_its_setting_recorded_and_is_refused_outside_train(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    arm = ["--variant", "dive", "--root", str(tmp_path), "--set", "model.dynamic_appearance=true"]
    assert table1.main(["train", *ONE, *arm]) == 0  # out_of_scene runs with a static appearance
    run = tmp_path / "toy" / "out_of_scene-dive-s0"
    assert "dynamic_appearance = true" in (run / "config.toml").read_text()
    sessions = json.loads((run / "provenance.json").read_text())["sessions"]
    assert sessions[0]["settings"] == ["model.dynamic_appearance=true"]
    with pytest.raises(SystemExit):
        table1.main(["run", *ONE, *arm])


def test_the_collected_log_is_thinned_by_step_so_a_resumed_run_is_not_thinned_twice():
    import table1_report as report

    full = [json.dumps({"step": s, "loss": float(s)}) for s in range(0, 1000, 10)]
    once = report.subsample_log(full, 200)
    assert [json.loads(x)["step"] for x in once] == [0, 200, 400, 600, 800, 990]
    assert report.subsample_log(once, 200) == once
    # restored (subsampled) then resumed at full resolution: the old part keeps its rows
    resumed = once[:-1] + [json.dumps({"step": s, "loss": 0.0}) for s in range(1000, 1400, 10)]
    again = [json.loads(x)["step"] for x in report.subsample_log(resumed, 200)]
    assert again == [0, 200, 400, 600, 800, 1000, 1200, 1390]
    # a row-stride thinning (the old rule) would have dropped most of them
    assert len(again) > len(resumed[::20])
    event = json.dumps({"event": "lr_decay", "step": 5})
    assert event in report.subsample_log([*full[:3], event, *full[3:]], 200)
