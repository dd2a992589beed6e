import pytest
import torch

from dive_pyro.data import SceneBatch


def _batch(B=2, N=2, T=4, H=8, W=8, K=2):
    frames = torch.rand(B, T, 1, H, W)
    return dict(
        observed=frames,
        visible=torch.ones(B, T, 1, H, W, dtype=torch.bool),
        complete=frames.clone(),
        missing=torch.zeros(B, N, T, dtype=torch.bool),
        positions=torch.zeros(B, N, T, 2),
        objects=torch.zeros(B, N, T, 1, H, W),
        num_observed=K,
    )


def test_valid_batch_roundtrip():
    b = SceneBatch(**_batch())
    assert b.batch_size == 2 and b.num_objects == 2 and b.num_frames == 4
    assert b[0].batch_size == 1
    assert SceneBatch.cat([b, b]).batch_size == 4
    assert b.scored.all()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(observed=torch.rand(2, 4, 8, 8)), "observed must have shape"),
        (dict(observed=torch.full((2, 4, 1, 8, 8), 2.0)), r"observed must lie in \[0, 1\]"),
        (dict(observed=torch.full((2, 4, 1, 8, 8), float("nan"))), "observed contains NaN"),
        (dict(observed=torch.zeros(2, 4, 1, 8, 8, dtype=torch.uint8)), "floating-point"),
        (dict(missing=torch.zeros(2, 0, 4, dtype=torch.bool)), "N = 0"),
        (dict(num_observed=4), "num_observed"),
        (dict(visible=torch.ones(2, 4, 1, 8, 8)), "visible must be a bool"),
    ],
)
def test_bad_batches_raise_named_errors(change, match):
    kwargs = _batch()
    if "missing" in change:
        kwargs["positions"] = torch.zeros(2, 0, 4, 2)
        kwargs["objects"] = torch.zeros(2, 0, 4, 1, 8, 8)
    kwargs.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        SceneBatch(**kwargs)


def test_downsample_pools_frames_and_rescales_positions():
    kw = _batch(H=8, W=8)
    kw["visible"][:, :, :, 0, 0] = False  # one hidden fine pixel hides its coarse pixel
    kw["positions"] = torch.full((2, 2, 4, 2), 3.5)  # centre of the 8x8 grid
    b = SceneBatch(**kw).downsample(2)
    assert b.frame_size == (4, 4)
    assert torch.allclose(b.observed[0, 0, 0, 0, 0], kw["observed"][0, 0, 0, :2, :2].mean())
    assert not b.visible[:, :, :, 0, 0].any() and b.visible[:, :, :, 0, 1].all()
    assert torch.allclose(b.positions, torch.full_like(b.positions, 1.5))  # centre of the 4x4 grid
    assert b.meta["downsample"] == 2
    with pytest.raises(ValueError, match="not divisible"):
        SceneBatch(**_batch(H=8, W=8)).downsample(3)
