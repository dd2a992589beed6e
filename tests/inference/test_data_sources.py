"""Real-video scenarios (mots, pedestrians) as training and test data for the runner."""

import numpy as np
import pycocotools.mask as mask_api
import pytest
import torch
from PIL import Image

from dive_pyro.data.pedestrians import default_vtest_path
from dive_pyro.inference import load_config, train
from dive_pyro.inference.data_sources import real_batch_fn, window_pool
from dive_pyro.inference.train import default_batch_fn
from dive_pyro.inference.trained import fixed_test_set_for

H = W = 24
FRAMES = 30


def _write_mots(root):
    """Two pedestrians (class 2) walking right and down over 30 frames, MOTS text format."""
    (root / "images").mkdir(parents=True)
    lines = []
    for t in range(1, FRAMES + 1):
        Image.fromarray(np.full((H, W), 40, np.uint8)).save(root / "images" / f"{t:06d}.png")
        for tid, (x, y) in ((2001, (1 + t // 3, 4)), (2002, (12, 2 + t // 3))):
            mask = np.zeros((H, W), np.uint8)
            mask[y : y + 6, x : x + 3] = 1
            rle = mask_api.encode(np.asfortranarray(mask))["counts"].decode()
            lines.append(f"{t} {tid} 2 {H} {W} {rle}")
    (root / "gt.txt").write_text("\n".join(lines) + "\n")
    return root


OPTIONS = dict(
    num_objects=2,
    num_frames=6,
    num_observed=3,
    frame_size=16,
    stride=2,
    image_pattern="{frame:06d}.png",
    train_fraction=0.8,
    test_stride=3,
)


def test_windows_split_in_time_and_batches_are_pure_functions_of_the_seed(tmp_path):
    options = dict(OPTIONS, path=str(_write_mots(tmp_path)))
    train_pool, test_pool = window_pool("mots", options, "train"), window_pool("mots", options, "test")
    assert train_pool.frame_size == (16, 16) and train_pool.num_objects == 2 and train_pool.num_frames == 6
    assert train_pool.batch_size == (24 - 6) // 2 + 1 and test_pool.batch_size == 1  # frames 1-24 / 25-30
    fn = real_batch_fn("mots", options, 5)
    a, b, c = fn(7), fn(7), fn(8)
    assert torch.equal(a.observed, b.observed) and not torch.equal(a.observed, c.observed)
    with pytest.raises(ValueError, match="needs data.path"):
        window_pool("mots", dict(OPTIONS, path=""), "train")


def test_a_validation_split_is_held_out_of_training_between_train_and_test(tmp_path):
    options = dict(OPTIONS, path=str(_write_mots(tmp_path)), validation_fraction=0.3)
    pools = {split: window_pool("mots", options, split) for split in ("train", "validation", "test")}
    # frames 1-15 train, 16-24 validation (test_stride 3, its own corruption seed), 25-30 test
    assert pools["train"].meta["frames"][-1] == list(range(9, 15)) and pools["train"].batch_size == 5
    assert pools["validation"].meta["frames"] == [list(range(16, 22)), list(range(19, 25))]
    assert pools["test"].meta["frames"] == [list(range(25, 31))]
    assert pools["validation"].meta["seed"] != pools["test"].meta["seed"]
    unsplit = window_pool("mots", dict(options, validation_fraction=0), "test")
    assert torch.equal(unsplit.observed, pools["test"].observed)
    with pytest.raises(ValueError, match="no validation split"):
        window_pool("mots", dict(OPTIONS, path=options["path"]), "validation")
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        window_pool("mots", dict(options, validation_fraction=0.8), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        window_pool("mots", options, "val")


def test_train_and_evaluate_on_a_mots_folder(tmp_path):
    root = _write_mots(tmp_path / "mots")
    overrides = [
        f"data.path={root}",
        "data.image_pattern={frame:06d}.png",
        "data.stride=2",
        "data.test_stride=3",
        "data.frame_step=1",
        "steps=2",
        "batch_size=2",
        "progress=false",
        "tensorboard=false",
        "model.frame_size=16",
        "model.object_size=8",
        "model.num_objects=2",
        "model.num_frames=6",
        "model.num_observed=3",
        "model.hidden=8",
        "model.appearance_dim=4",
        "device=cpu",
        f"out_dir={tmp_path / 'run'}",
    ]
    config = load_config("mots", overrides)
    assert default_batch_fn(config)(0).observed.shape == (2, 6, 1, 16, 16)
    result = train(config)
    assert result.step == 2
    test = fixed_test_set_for(config)
    assert test.batch_size == 1 and test.scenario == "mots"


@pytest.mark.skipif(not default_vtest_path().is_file(), reason="vtest.avi not fetched (make data/vtest.avi)")
def test_pedestrians_preset_loads_the_offline_video():
    config = load_config("pedestrians", ["batch_size=4", "data.stride=40"])  # a few training windows: fast
    batch = default_batch_fn(config)(0)
    assert batch.observed.shape == (4, 20, 1, 32, 32) and batch.num_objects == 3
    test = fixed_test_set_for(config)
    assert test.batch_size >= 5 and test.missing.any()  # one blanked input frame per clip
    assert config.data["stride"] == 40 and window_pool("pedestrians", config.data_options()).batch_size <= 16
