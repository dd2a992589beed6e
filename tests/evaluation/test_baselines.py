"""Baselines on a hand-made SceneBatch with known frame values."""

import pytest
import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.evaluation.baselines import BASELINES, baseline_predict

B, T, K, N, H, W = 2, 5, 3, 2, 4, 4


def _batch() -> SceneBatch:
    """Frame t of video b is the constant (t + 1) / 10 + b / 100, top row hidden (observed 0)."""
    values = (torch.arange(T) + 1).view(1, T, 1, 1, 1) / 10 + torch.arange(B).view(B, 1, 1, 1, 1) / 100
    complete = values.expand(B, T, 1, H, W).clone()
    visible = torch.ones(B, T, 1, H, W, dtype=torch.bool)
    visible[..., 0, :] = False
    return SceneBatch(
        observed=complete * visible,
        visible=visible,
        complete=complete,
        missing=torch.zeros(B, N, T, dtype=torch.bool),
        positions=torch.zeros(B, N, T, 2),
        objects=torch.zeros(B, N, T, 1, H, W),
        num_observed=K,
        scenario="occlusion",
    )


def test_registry_names():
    assert set(BASELINES) == {"zeros", "copy-last", "mean"}


def test_zeros():
    batch = _batch()
    pred = baseline_predict("zeros", batch)
    assert pred.shape == (B, T, 1, H, W) and torch.all(pred == 0)


def test_copy_last_keeps_inputs_and_repeats_frame_k_minus_1():
    batch = _batch()
    pred = baseline_predict("copy-last", batch)
    assert pred.shape == (B, T, 1, H, W)
    assert torch.equal(pred[:, :K], batch.observed[:, :K])  # no imputation: hidden row stays 0
    for t in range(K, T):
        assert torch.equal(pred[:, t], batch.observed[:, K - 1])
    # hand value: video 1, future frame, visible pixel = frame K-1 = (3/10 + 1/100)
    assert pred[1, T - 1, 0, 2, 2].item() == pytest.approx(0.31)
    assert pred[1, T - 1, 0, 0, 2].item() == 0.0


def test_mean_of_observed_inputs_for_all_frames():
    batch = _batch()
    pred = baseline_predict("mean", batch)
    assert pred.shape == (B, T, 1, H, W)
    # video 0: mean of 0.1, 0.2, 0.3 = 0.2 on visible pixels, 0 on the hidden row, every frame
    torch.testing.assert_close(pred[0, :, 0, 1:], torch.full((T, H - 1, W), 0.2))
    torch.testing.assert_close(pred[1, :, 0, 1:], torch.full((T, H - 1, W), 0.21))
    assert torch.all(pred[:, :, 0, 0] == 0)


def test_bad_name_and_batch():
    with pytest.raises(ValueError, match=r"baseline name must be one of \['copy-last', 'mean', 'zeros'\]"):
        baseline_predict("last", _batch())
    with pytest.raises(TypeError, match="batch must be a SceneBatch"):
        baseline_predict("zeros", torch.zeros(1, T, 1, H, W))
