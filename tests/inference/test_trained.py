import math
from pathlib import Path

import pytest
import torch

from dive_pyro.evaluation.tables import evaluate_frames
from dive_pyro.inference.trained import evaluate_checkpoint, fixed_test_set_for, load_trained, predict_frames


def test_checkpoint_evaluation_layout_and_consistency(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    trained = load_trained(tiny_checkpoint)
    batch = fixed_test_set_for(trained.config, num_sequences=6)
    assert batch.frame_size == (16, 16) and batch.num_frames == 8
    res = evaluate_checkpoint(tiny_checkpoint, batch, num_samples=3, chunk_size=4, name="m")
    assert set(res) == {"m", "m best-of-3", "m mean-of-3"}
    for r in res.values():
        assert math.isfinite(r["nelbo"]) and r["num_sequences"] == 6
    # the posterior-mode prediction is deterministic and equals a direct evaluation
    frames = predict_frames(trained.model, trained.guide, batch, use_mean=True)
    again = predict_frames(trained.model, trained.guide, batch, use_mean=True)
    assert torch.equal(frames, again)
    direct = evaluate_frames(frames, batch)
    assert direct["pred"]["mse"] == pytest.approx(res["m"]["pred"]["mse"], rel=1e-5)


def test_best_of_k_is_no_worse_than_single_samples(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    trained = load_trained(tiny_checkpoint)
    batch = fixed_test_set_for(trained.config, num_sequences=4)
    torch.manual_seed(0)
    res = evaluate_checkpoint(tiny_checkpoint, batch, num_samples=4, use_mean=False, name="m")
    # per-sequence minimum over 4 draws <= their mean
    assert res["m best-of-4"]["pred"]["mse"] <= res["m mean-of-4"]["pred"]["mse"] * 4


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_trained(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_trained(bad)


def test_progress_bar_on_request_and_quiet_off_a_terminal(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    from dive_pyro.inference.trained import evaluate_trained

    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    trained = load_trained(tiny_checkpoint)
    batch = fixed_test_set_for(trained.config, num_sequences=4)
    evaluate_trained(trained, batch, chunk_size=2, progress=True)
    err = capsys.readouterr().err
    assert "evaluating" in err and "4/4" in err
    for quiet in (None, False):  # None: a bar only when stderr is a terminal (it is not under pytest)
        evaluate_trained(trained, batch, chunk_size=2, progress=quiet)
        assert capsys.readouterr().err == ""


def test_shipped_checkpoint_gives_the_same_metrics_with_reference_kernels():
    # kernels="fast" (default) and the official affine_grid path load the same shipped weights
    # and give the same Table-1 metrics and NELBO up to float rounding
    import dataclasses
    from pathlib import Path

    import pyro

    import dive_pyro
    from dive_pyro.inference.trained import evaluate_trained

    path = Path(dive_pyro.__file__).parent / "pretrained" / "tiny-cpu" / "checkpoint.pt"
    fast, ref = load_trained(path), load_trained(path)
    for module in (ref.model, ref.guide):
        module.config = dataclasses.replace(module.config, kernels="reference")
    ref.guide.object_encoder.channels_last = False  # as built with kernels="reference"
    ref.guide.object_encoder.subpixel = ref.guide.frame_encoder.subpixel = ref.model.decoder.subpixel = False
    batch = fixed_test_set_for(fast.config, num_sequences=16)
    results = []
    for trained in (fast, ref):
        pyro.set_rng_seed(0)
        results.append(next(iter(evaluate_trained(trained, batch, name="x").values())))
    compared = 0
    for key, value in results[1].items():
        for sub, number in value.items() if isinstance(value, dict) else [("", value)]:
            if isinstance(number, float):
                got = results[0][key][sub] if sub else results[0][key]
                assert got == pytest.approx(number, rel=1e-4, abs=1e-5), (key, sub)
                compared += 1
    assert compared >= 30 and results[0]["rec"]["mse"] > 0


def test_validation_split_is_another_fixed_set(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    config = load_trained(tiny_checkpoint).config
    test = fixed_test_set_for(config, num_sequences=3)
    val = fixed_test_set_for(config, num_sequences=3, split="validation")
    assert val.observed.shape == test.observed.shape and not torch.equal(val.observed, test.observed)
    assert torch.equal(val.observed, fixed_test_set_for(config, num_sequences=3, split="validation").observed)
    with pytest.raises(ValueError, match="split must be"):
        fixed_test_set_for(config, split="train")


SCENARIO_MODELS = ("occlusion", "out_of_scene", "elastic")  # the Table-1 campaign's DIVE seed 0
SHIPPED = ("tiny-cpu", "tiny-cpu-markov", "tiny-cpu-calibrated", *(f"tiny-cpu-{s}" for s in SCENARIO_MODELS))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_has_its_config_log_and_metrics_and_loads(name):
    import json

    from dive_pyro.inference import load_config
    from dive_pyro.inference.config import config_to_dict
    from dive_pyro.inference.trained import shipped_checkpoint

    path = shipped_checkpoint(name)
    folder = path.parent
    needed = {"checkpoint.pt", "config.toml", "log.jsonl", "metrics.json", "metrics.md"}
    assert needed <= {p.name for p in folder.iterdir()}
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 5_000_000
    trained = load_trained(path)
    assert config_to_dict(load_config(folder / "config.toml"))["model"] == config_to_dict(trained.config)["model"]
    metrics = json.loads((folder / "metrics.json").read_text())
    row = next(v for k, v in metrics.items() if k.startswith(f"DIVE {name} "))
    assert math.isfinite(row["rec_missing"]["mse"]) and math.isfinite(row["pred"]["mse"])
    lines = (folder / "log.jsonl").read_text().splitlines()
    steps = [step for line in lines if (step := json.loads(line).get("step")) is not None]
    # the log reaches the checkpoint: its last logged step is the last multiple of log_every before it
    last = (trained.step - 1) // trained.config.log_every * trained.config.log_every
    assert steps == sorted(steps) and steps[-1] == last


def test_the_shipped_folders_are_exactly_the_listed_ones():
    from dive_pyro.inference.trained import shipped_checkpoint

    root = shipped_checkpoint().parent.parent
    assert {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("__")} == set(SHIPPED)


@pytest.mark.parametrize("scenario", SCENARIO_MODELS)
def test_shipped_scenario_model_is_the_campaign_run_and_its_metrics_match(scenario):
    """README "One shipped model per scenario": the bytes and test scores of benchmarks/table1.py's run."""
    import json

    from dive_pyro.inference.trained import shipped_checkpoint

    path = shipped_checkpoint(f"tiny-cpu-{scenario}")
    run = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "table1" / f"cpu-{scenario}-dive-s0"
    assert path.read_bytes() == (run / "checkpoint.pt").read_bytes()
    trained = load_trained(path)
    assert trained.config.scenario == scenario and trained.config.variant == "dive"
    assert trained.step * trained.config.batch_size >= 1_000_000
    shipped = json.loads((path.parent / "metrics.json").read_text())
    (row,) = [v for k, v in shipped.items() if k.startswith(f"DIVE tiny-cpu-{scenario} ")]
    campaign = json.loads((run / "metrics.json").read_text())["model"]
    for group in ("rec", "rec_missing", "pred"):
        assert math.isclose(row[group]["mse"], campaign[group]["mse"], rel_tol=1e-6), group
