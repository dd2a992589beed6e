"""Tests for the disk-cached fixed test/validation sets and the on-the-fly training dataset."""

import pytest
import torch
from torch.utils.data import DataLoader

from dive_pyro.data.dataset import MovingMNISTDataset, batch_seed
from dive_pyro.data.moving_mnist import draw_layout, generate, render_layout
from dive_pyro.data.testsets import (
    SET_SIZE,
    TEST_SEEDS,
    VALIDATION_SEEDS,
    _first,
    cache_dir,
    fixed_test_set,
    validation_set,
)

FIELDS = ("observed", "visible", "complete", "missing", "positions", "objects", "scored")


def same(a, b) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in FIELDS)


def only_file(root, suffix=".pt"):
    files = sorted(p for p in root.iterdir() if p.name.endswith(suffix))
    assert len(files) == 1, files
    return files[0]


# --------------------------------------------------------------------------- fixed sets
def test_round_trip_loads_from_disk_and_equals_generator(tmp_path):
    first = fixed_test_set("out_of_scene", root=tmp_path, num_sequences=6)
    path = only_file(tmp_path)
    stamp = path.stat().st_mtime_ns
    second = fixed_test_set("out_of_scene", root=tmp_path, num_sequences=6)
    assert path.stat().st_mtime_ns == stamp  # loaded, not rewritten
    assert same(first, second)
    # non-elastic sets are exact: the first 6 of the generator's 1,024 with the fixed seed on the test digits
    # (rendering is per sequence, so the first 6 of the layout render as the first 6 of the batch)
    layout = draw_layout("out_of_scene", SET_SIZE, seed=TEST_SEEDS["out_of_scene"], split="test")
    assert same(first, render_layout(_first(layout, 6)))
    few = draw_layout("out_of_scene", 20, seed=1)
    assert same(render_layout(_first(few, 6)), generate("out_of_scene", 20, seed=1)[:6])
    assert (first.meta["first"], first.meta["of"]) == (6, SET_SIZE)
    assert first.meta["kind"] == "test" and first.meta["digit_source"] == "mnist:test"
    payload = torch.load(path, weights_only=True)
    assert payload["patches"].dtype == torch.uint8 and payload["patches"].shape == (SET_SIZE, 2, 1, 28, 28)
    assert only_file(tmp_path, ".sha256").read_text().strip() != ""


def test_corrupt_or_missing_checksum_regenerates_with_warning(tmp_path):
    first = fixed_test_set("occlusion", root=tmp_path, num_sequences=4)
    path = only_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="checksum"):
        again = fixed_test_set("occlusion", root=tmp_path, num_sequences=4)
    assert same(first, again)
    only_file(tmp_path, ".sha256").unlink()
    with pytest.warns(UserWarning, match="checksum"):
        third = fixed_test_set("occlusion", root=tmp_path, num_sequences=4)
    assert same(first, third)
    path.unlink()  # absent file: silently regenerated
    assert same(first, fixed_test_set("occlusion", root=tmp_path, num_sequences=4))


def test_num_sequences_takes_the_first_n_of_the_same_set(tmp_path):
    small = fixed_test_set("occlusion", root=tmp_path, num_sequences=3)
    larger = fixed_test_set("occlusion", root=tmp_path, num_sequences=10)
    assert same(small, larger[:3]) and larger.batch_size == 10
    assert len(list(tmp_path.glob("*.pt"))) == 1  # one cached set serves every N
    for bad in (0, SET_SIZE + 1, 2.0):
        with pytest.raises(ValueError, match=r"num_sequences must be an int in \[1, 1024\] \(the first N"):
            fixed_test_set("occlusion", root=tmp_path, num_sequences=bad)


def test_elastic_set_is_uint8_rounded_generator_output(tmp_path):
    cached = fixed_test_set("elastic", root=tmp_path, num_sequences=3)
    direct = render_layout(_first(draw_layout("elastic", SET_SIZE, seed=TEST_SEEDS["elastic"], split="test"), 3))
    assert torch.equal(cached.missing, direct.missing) and torch.equal(cached.positions, direct.positions)
    assert (cached.objects - direct.objects).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(cached.objects * 255, (cached.objects * 255).round())
    assert same(cached, fixed_test_set("elastic", root=tmp_path, num_sequences=3))


def test_cache_key_covers_parameters_and_validation_differs(tmp_path):
    a = fixed_test_set("complete", root=tmp_path, num_sequences=2)
    b = fixed_test_set("complete", root=tmp_path, num_sequences=2, step_length=0.1)
    v = validation_set("complete", root=tmp_path, num_sequences=2)
    assert len(list(tmp_path.glob("*.pt"))) == 3
    assert not torch.equal(a.positions, b.positions) and not torch.equal(a.complete, v.complete)
    assert VALIDATION_SEEDS["complete"] != TEST_SEEDS["complete"] and v.meta["kind"] == "validation"
    assert b.meta["step_length"] == 0.1


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env" / "testsets"
    assert cache_dir(tmp_path) == tmp_path
    fixed_test_set("complete", num_sequences=1)
    assert len(list((tmp_path / "env" / "testsets").glob("test-complete-*.pt"))) == 1


@pytest.mark.parametrize("bad", [{"seed": 1}, {"split": "train"}])
def test_fixed_set_rejects_seed_and_split(tmp_path, bad):
    with pytest.raises(TypeError, match="seed|split"):
        fixed_test_set("complete", root=tmp_path, num_sequences=1, **bad)


def test_fixed_set_rejects_unknown_scenario(tmp_path):
    with pytest.raises(ValueError, match="scenario"):
        fixed_test_set("sc2", root=tmp_path)


# --------------------------------------------------------------------------- training stream
def _positions(batches):
    return torch.stack([b.positions for b in batches])


def test_dataset_streams_deterministic_distinct_and_worker_independent():
    digits = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kwargs = {"seed": 3, "num_batches": 4, "digits": digits}
    ds = MovingMNISTDataset("out_of_scene", 2, **kwargs)
    epoch0 = list(ds)
    assert len(epoch0) == len(ds) == 4
    assert torch.equal(_positions(epoch0), _positions(MovingMNISTDataset("out_of_scene", 2, **kwargs)))
    assert torch.equal(
        epoch0[1].positions, generate("out_of_scene", 2, seed=batch_seed(3, 0, 0, 1), digits=digits).positions
    )
    seeds = {batch_seed(3, e, r, j) for e in range(2) for r in range(2) for j in range(4)}
    assert len(seeds) == 16
    ds.set_epoch(1)
    assert not torch.equal(_positions(epoch0), _positions(list(ds)))
    other_rank = MovingMNISTDataset("out_of_scene", 2, rank=1, **kwargs)
    assert not torch.equal(_positions(epoch0), _positions(list(other_rank)))
    # two worker processes produce the same stream, in order, as a single process
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    assert torch.equal(_positions(list(loader)), _positions(epoch0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "batch_size"), ({"num_batches": 0}, "num_batches"), ({"rank": -1}, "rank")],
)
def test_dataset_bad_input(kwargs, match):
    args = {"scenario": "complete", "batch_size": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        MovingMNISTDataset(**args)
    with pytest.raises(TypeError, match="unknown option"):
        MovingMNISTDataset("complete", 2, seed=0, alpha=3.0)
