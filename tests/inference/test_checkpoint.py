"""Checkpoint files: RNG round trip, atomic writes, rotation, weights-only loading, clear errors."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import dive_pyro
from dive_pyro.inference.checkpoint import (
    check_compatible,
    check_finite_weights,
    content_checksum,
    ensure_writable_dir,
    get_rng_state,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_rng_state,
)


def _draws():
    return (
        torch.rand(3).tolist(),
        np.random.rand(3).tolist(),
        np.random.randn(),
        [random.random() for _ in range(3)],
    )


def _state(step=3, variant="dive", model=None):
    return {
        "step": step,
        "variant": variant,
        "config": {"model": model or {"hidden": 8}, "lr": 1e-3, "clip_norm": None},
        "model": {"w": torch.arange(4.0)},
        "guide": {"b": torch.ones(2)},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "betas": (0.5, 0.999), "params": [0]}]},
        "scheduler": {"kind": "step", "base_lr": 1e-3, "step": step},
        "rng": get_rng_state(),
    }


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    np.random.randn()  # leave a cached gaussian in numpy's state
    random.gauss(0, 1)
    state = get_rng_state()
    expected = _draws()
    save_checkpoint(_state() | {"rng": state}, tmp_path / "c.pt")
    _draws()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert _draws() == expected


def test_save_then_load_returns_the_same_tensors(tmp_path):
    path = save_checkpoint(_state(step=7), tmp_path / "checkpoint.pt")
    got = load_checkpoint(path)
    assert got["step"] == 7 and got["format"] == "dive-pyro-checkpoint" and got["version"] == 1
    assert torch.equal(got["model"]["w"], torch.arange(4.0))
    assert got["config"]["clip_norm"] is None
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(_state(step=1), tmp_path / "checkpoint.pt")
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_state(step=2), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_rotation_keeps_the_newest_numbered_copies(tmp_path):
    path = tmp_path / "checkpoint.pt"
    for step in range(1, 6):
        save_checkpoint(_state(step=step), path, keep=2)
    numbered = sorted(p.name for p in tmp_path.glob("checkpoint-*.pt"))
    assert numbered == ["checkpoint-00000004.pt", "checkpoint-00000005.pt"]
    assert load_checkpoint(tmp_path / "checkpoint-00000004.pt")["step"] == 4
    assert load_checkpoint(path)["step"] == 5


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


def test_truncated_and_garbage_files_are_reported_as_corrupt(tmp_path):
    good = save_checkpoint(_state(), tmp_path / "good.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip" * 10)
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=f"checkpoint '{path}' is corrupt"):
            load_checkpoint(path)


class _NotAllowed:
    pass


def test_weights_only_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "dive-pyro-checkpoint", "obj": _NotAllowed()}, path)
    with pytest.raises(ValueError, match="corrupt or not a dive-pyro checkpoint"):
        load_checkpoint(path)


def test_foreign_or_incomplete_files_are_rejected(tmp_path):
    torch.save({"weights": torch.ones(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a dive-pyro checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "dive-pyro-checkpoint", "version": 1, "step": 1}, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="incomplete: missing variant, config"):
        load_checkpoint(tmp_path / "partial.pt")
    torch.save({"format": "dive-pyro-checkpoint", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")


def test_compatibility_checks_variant_and_model_config():
    state = _state(variant="dive", model={"hidden": 8, "frame_size": 32})
    check_compatible(state, "dive", {"frame_size": 32, "hidden": 8})
    with pytest.raises(ValueError, match="for variant 'dive', but this run builds 'ddpae'"):
        check_compatible(state, "ddpae", {"hidden": 8, "frame_size": 32})
    with pytest.raises(ValueError, match=r"different model config .*hidden: 8 vs 16"):
        check_compatible(state, "dive", {"hidden": 16, "frame_size": 32})
    with pytest.raises(ValueError, match=r"object_size: 32 vs 8"):  # unset = DiveConfig's default, 32
        check_compatible(state, "dive", {"hidden": 8, "frame_size": 32, "object_size": 8})
    # a key left out equals the same key set to its default (tuples as TOML lists)
    check_compatible(state, "dive", {"hidden": 8, "frame_size": 32, "likelihood_scale": 0.3})
    check_compatible(state, "dive", {"hidden": 8, "frame_size": 32, "initial_pose_scale": [0.2, 1.0, 1.0]})
    with pytest.raises(ValueError, match=r"likelihood_scale: 0.3 vs 0.05"):
        check_compatible(state, "dive", {"hidden": 8, "frame_size": 32, "likelihood_scale": 0.05})


def test_unwritable_out_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="out_dir .* is not a writable folder"):
        ensure_writable_dir(blocker / "run")
    assert ensure_writable_dir(tmp_path / "a" / "b") == Path(tmp_path / "a" / "b")


# --------------------------------------------------------------------------- integrity
def _flip_byte_in(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_tensor_data_fails_the_checksum(tmp_path):
    state = _state()
    state["model"]["w"] = torch.arange(100, 200, dtype=torch.float32)
    path = save_checkpoint(state, tmp_path / "checkpoint.pt")
    assert load_checkpoint(path)["checksum"].startswith("sha256:")
    _flip_byte_in(path, torch.arange(100, 200, dtype=torch.float32).numpy().tobytes()[40:48])
    with pytest.raises(ValueError, match=f"checkpoint '{path}' failed its integrity check"):
        load_checkpoint(path)


def test_checksum_covers_tensors_primitives_and_keys():
    base = _state()
    digest = content_checksum(base)
    assert content_checksum({**base, "checksum": "anything"}) == digest  # the checksum excludes itself
    changed = [
        {**base, "step": 4},
        {**base, "model": {"w": torch.arange(4.0) + 1e-6}},
        {**base, "model": {"w": torch.arange(4.0).double()}},
        {**base, "model": {"v": torch.arange(4.0)}},
        {**base, "config": {**base["config"], "lr": 1e-3 + 1e-12}},
    ]
    assert all(content_checksum(s) != digest for s in changed)


def test_legacy_checkpoints_without_a_checksum_load_with_a_note(tmp_path, caplog):
    path = tmp_path / "old.pt"
    torch.save({"format": "dive-pyro-checkpoint", "version": 1, **_state()}, path)
    with caplog.at_level("WARNING"):
        assert load_checkpoint(path)["step"] == 3
    (note,) = caplog.messages
    assert "has no content checksum" in note and str(path) in note and "\n" not in note


def test_the_shipped_model_is_checksummed():
    shipped = Path(dive_pyro.__file__).parent / "pretrained" / "tiny-cpu" / "checkpoint.pt"
    state = load_checkpoint(shipped)
    assert state["checksum"] == content_checksum(state)


def test_missing_unexpected_and_missized_weights_name_the_key_and_file(tmp_path):
    net = torch.nn.Linear(2, 3)
    weights = net.state_dict()
    with pytest.raises(ValueError, match=r"checkpoint 'c.pt': its model weights lack key 'bias' that this network"):
        load_weights(net, {"weight": weights["weight"]}, part="model", path="c.pt")
    with pytest.raises(ValueError, match=r"its guide weights have key 'extra' that this network lacks"):
        load_weights(net, {**weights, "extra": torch.ones(1)}, part="guide", path="c.pt")
    with pytest.raises(ValueError, match=r"its model weights do not fit this run's network"):
        load_weights(net, {**weights, "bias": torch.ones(4)}, part="model", path="c.pt")
    load_weights(net, weights, part="model", path="c.pt")


def test_non_finite_weights_are_named(tmp_path):
    state = _state()
    check_finite_weights(state)
    state["guide"]["b"] = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match=r"checkpoint 'x.pt' holds non-finite guide weights \('b'"):
        check_finite_weights(state, path="x.pt")
