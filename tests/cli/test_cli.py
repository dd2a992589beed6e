"""The CLI end to end on tiny inputs (subcommands run in-process through ``main``)."""

import json

import pytest

from dive_pyro.cli.parser import main


def test_generate_writes_one_png_per_scenario_and_sequence(tmp_path):
    assert main(["generate", "--scenario", "all", "--num-sequences", "1", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "complete_0.png",
        "elastic_0.png",
        "occlusion_0.png",
        "out_of_scene_0.png",
    ]


def test_evaluate_baseline_json_layout(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "copy_last.json"
    rc = main(
        [
            "evaluate",
            "--scenario",
            "out_of_scene",
            "--baseline",
            "copy-last",
            "--num-sequences",
            "8",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert {"rec", "pred", "num_sequences", "scored_pixels"} <= set(res)
    assert {"bce", "mse", "mae", "psnr", "ssim", "ssim_dive", "ssim_openstl"} <= set(res["pred"])
    assert res["num_sequences"] == 8 and res["scored_pixels"] == 4096
    assert "| copy-last |" in capsys.readouterr().out


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit):
        main(["generate", "--out", str(blocker / "sub")])
    assert "cannot create output folder" in capsys.readouterr().err


def test_unknown_scenario_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--scenario", "nope", "--baseline", "zeros"])
    assert "invalid choice" in capsys.readouterr().err


def test_demo_finetunes_evaluates_and_writes_report(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--checkpoint",
        str(tiny_checkpoint),
        "--finetune-steps",
        "2",
        "--num-sequences",
        "4",
        "--grids",
        "1",
        "--baseline-sequences",
        "2",
    ]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "report.md",
        "metrics.json",
        "elbo.png",
        "sequence_0.png",
        "baselines.md",
        "scenario_elastic.png",
    } <= names
    metrics = json.loads((out / "metrics.json").read_text())
    model = next(k for k in metrics if k.startswith("DIVE tiny-cpu"))
    assert "(step 6)" in model  # 4 shipped steps + 2 fine-tuning steps
    assert "Does the shipped model visibly work?" in (out / "report.md").read_text()


def test_train_then_evaluate_checkpoint(tmp_path, monkeypatch, capsys, tiny_checkpoint):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ckpt.json"
    rc = main(
        [
            "evaluate",
            "--scenario",
            "out_of_scene",
            "--checkpoint",
            str(tiny_checkpoint),
            "--num-sequences",
            "4",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    names = set(res)
    assert {"zeros", "copy-last"} <= names and any(n.startswith("dive (step") for n in names)
    ckpt = next(v for k, v in res.items() if k.startswith("dive"))
    assert "nelbo" in ckpt and ckpt["pred"]["mse"] is not None
    # a 16x16 model is not scored in the paper's setting: no published rows beside it, and why
    captured = capsys.readouterr()
    printed = captured.out
    assert "scoring dive (step 4) on the first 4 of the 1,024 fixed out_of_scene test sequences (16x16)" in captured.err
    assert "evaluating" not in captured.err  # no progress bar when stderr is not a terminal
    assert "(published) |" not in printed and "rows hidden" in printed and "frame size 16x16" in printed
    assert "Rec-missing MSE" in printed


def test_train_cli_runs_and_rejects_unknown_keys(tmp_path, capsys):
    overrides = [
        "steps=2",
        "batch_size=2",
        "progress=false",
        "tensorboard=false",
        "model.frame_size=16",
        "model.object_size=8",
        "model.hidden=8",
        "model.appearance_dim=4",
        "data.downsample=4",
    ]
    # overrides may come before or after the options
    assert main(["train", "tiny-cpu", *overrides[:4], "--out-dir", str(tmp_path / "run"), *overrides[4:]]) == 0
    assert {"checkpoint.pt", "config.toml", "log.jsonl", "elbo.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
    assert main(["train", "tiny-cpu", "bogus=1"]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "tiny-cpu", "--print-config", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    from dive_pyro.inference.files import RunLock

    with RunLock(tmp_path / "run"):  # another live run holds the folder
        assert main(["train", "tiny-cpu", *overrides, "--out-dir", str(tmp_path / "run"), "--resume", "steps=3"]) == 2
    err = capsys.readouterr().err
    assert "dive-pyro train: error: out_dir" in err and "in use by another run (pid" in err and "Traceback" not in err


def test_sample_and_check_commands(tmp_path, monkeypatch, tiny_checkpoint):
    from dive_pyro.posterior.export import load_posterior

    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "posterior.nc"
    args = ["--checkpoint", str(tiny_checkpoint), "--num-sequences", "3", "--num-samples", "4"]
    assert main(["sample", *args, "--out", str(out)]) == 0
    tree = load_posterior(out)
    assert tree["posterior"].sizes["sample"] == 4 and tree["posterior"].sizes["video"] == 3
    report = tmp_path / "check"
    extra = ["--sbc", "8", "--sbc-sleep-steps", "2", "--psis-videos", "2", "--psis-particles", "6"]
    assert main(["check", *args, *extra, "--out", str(report)]) == 0
    data = json.loads((report / "checks.json").read_text())
    assert {"missingness", "positions", "identity"} <= set(data["checks"]) and {"sbc", "psis"} <= set(data)
    assert data["sbc"]["sleep"]["steps"] == 2 and data["checks"]["missingness"]["source"] == "exact"
    assert {"reliability.png", "sbc.png", "coverage.png", "psis.png"} <= {p.name for p in report.iterdir()}
    assert "centre of mass" in (report / "summary.md").read_text()
    tempered = tmp_path / "check-tempered"
    assert main(["check", *args, "--refine", "1", "--refine-power", "0.1", "--out", str(tempered)]) == 0
    data = json.loads((tempered / "checks.json").read_text())
    assert data["refine_steps"] == 1 and data["refine_power"] == 0.1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--checkpoint", "no/such/checkpoint.pt"], "no such file: no/such/checkpoint.pt"),
        (["demo", "--finetune-steps", "-5"], "expected an integer >= 0, got -5"),
        (["check", "--checkpoint", "missing.pt", "--sbc", "1"], "no such file: missing.pt"),
        (["check", "--refine-power", "0", "--checkpoint", "missing.pt"], "expected a number > 0, got 0.0"),
        (["check", "--refine-power", "x", "--checkpoint", "missing.pt"], "expected a number > 0, got 'x'"),
        (["evaluate", "--scenario", "out_of_scene", "--baseline", "zeros", "--num-sequences", "0"], ">= 1, got 0"),
        (["train", "tiny-cpu", "--steps", "ten"], "expected an integer >= 1, got 'ten'"),
    ],
)
def test_bad_numbers_and_paths_fail_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_check_rejects_negative_sbc(tiny_checkpoint, capsys):
    with pytest.raises(SystemExit):
        main(["check", "--checkpoint", str(tiny_checkpoint), "--sbc", "-1"])
    assert "--sbc: expected an integer >= 0, got -1" in capsys.readouterr().err


def test_print_config_rejects_unknown_data_keys(capsys):
    assert main(["train", "tiny-cpu", "data.bogus=1", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown data key 'bogus'" in err and "valid data keys: downsample" in err


def test_resume_to_fewer_steps_than_done_is_an_error(tmp_path, capsys):
    run = ["train", "tiny-cpu", "steps=3", "batch_size=2", "progress=false", "tensorboard=false"]
    sizes = ["model.frame_size=16", "model.object_size=8", "model.hidden=8", "model.appearance_dim=4"]
    run += [*sizes, "data.downsample=4", "--out-dir", str(tmp_path / "run")]
    assert main(run) == 0
    capsys.readouterr()
    assert main([*run, "--resume", "steps=2"]) == 2
    assert "at step 3 to steps=2: the run is already past it; give steps > 3" in capsys.readouterr().err


def test_train_restarts_itself_with_passive_wait_for_several_threads(tmp_path, monkeypatch):
    import sys

    from dive_pyro.cli import commands
    from dive_pyro.inference import threads

    calls = []

    def fake_execve(path, argv, env):
        calls.append((argv, env.get("OMP_WAIT_POLICY")))
        raise SystemExit(0)

    monkeypatch.setattr(commands.os, "execve", fake_execve)
    monkeypatch.setattr(threads, "free_cores", lambda: 4)
    monkeypatch.setattr(threads, "uses_openmp", lambda: True)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    argv = ["train", "tiny-cpu", "num_threads=2", "device=cpu", "--out-dir", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", ["dive-pyro", *argv])
    with pytest.raises(SystemExit):
        main()
    assert calls == [([sys.executable, "-m", "dive_pyro", *argv], "PASSIVE")]
    # main() called as a function, the variable already set, or one thread: no restart
    from dive_pyro.inference import load_config

    config = load_config("tiny-cpu", ["num_threads=2", "device=cpu"])
    commands._restart_with_passive_wait(config, None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    commands._restart_with_passive_wait(config, ["train"])
    commands._restart_with_passive_wait(load_config("tiny-cpu", ["num_threads=1", "device=cpu"]), ["train"])
    assert len(calls) == 1
