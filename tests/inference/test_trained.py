import math

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
