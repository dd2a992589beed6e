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
        (dict(positions=torch.full((2, 2, 4, 2), float("nan"))), "positions contains NaN or inf"),
        (dict(positions=torch.zeros(2, 2, 4, 2, dtype=torch.uint8)), "positions must be a floating-point tensor"),
        (dict(objects=torch.full((2, 2, 4, 1, 8, 8), float("nan"))), "objects contains NaN"),
        (dict(objects=torch.full((2, 2, 4, 1, 8, 8), 1.5)), r"objects must lie in \[0, 1\], got values in \[1.5"),
        (dict(objects=torch.zeros(2, 2, 4, 1, 8, 8, dtype=torch.uint8)), "objects must be a floating-point"),
        (dict(num_observed=5.5), r"num_observed \(K\) must be an integer, got 5.5"),
        (dict(num_observed=2.0), r"num_observed \(K\) must be an integer, got 2.0"),
        (dict(num_observed=True), r"num_observed \(K\) must be an integer, got True"),
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


def test_indexing_follows_python_sequences():
    b = SceneBatch(**_batch(B=3))
    assert torch.equal(b[-1].observed, b.observed[2:3]) and torch.equal(b[-3].observed, b.observed[:1])
    for bad in (3, -4, 10):
        with pytest.raises(IndexError, match=rf"video index {bad} is out of range for a batch of 3 videos"):
            b[bad]
    with pytest.raises(IndexError, match=r"video indices 0..5 are out of range for a batch of 3"):
        b[torch.tensor([0, 5])]
    assert torch.equal(b[[2, -1]].observed, b.observed[[2, 2]])
    assert b[1:].batch_size == 2 and b[5:].batch_size == 0  # slices clip, as for lists
    assert b[torch.tensor([True, False, True])].batch_size == 2


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
