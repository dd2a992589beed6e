"""Training and test batches from real video (paper §4.2, MOTS pedestrians).

Scenarios besides the Moving-MNIST generator's:

* ``pedestrians``: OpenCV's ``vtest.avi`` (Debian ``opencv-doc``, fetched by ``make data/vtest.avi``)
  turned into MOTS annotations by background subtraction (:mod:`dive_pyro.data.pedestrians`);
* ``mots``: a user's own MOTSChallenge-format copy, ``data.path`` (and ``data.name``,
  ``data.image_pattern``) naming it; nothing is downloaded.

Frames are split in time: the first ``train_fraction`` of the frames give training windows, the
rest test windows. ``validation_fraction = v > 0`` (of all frames) moves the last ``v`` of the
training part into a validation split, built like the test split (``test_stride``, the same
corruption, its own draws) and never trained on: train ``[0, f - v)``, validation ``[f - v, f)``,
test ``[f, 1]`` of the frames, ``f = train_fraction``. All windows of a split are built once per
process (:func:`window_pool`); the training batch of a step is ``batch_size`` windows drawn with
``torch.Generator(seed)``, so it is a pure function of the step seed (resume reproduces a run step
for step, as with the generator).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import torch

from dive_pyro.data.batch import SceneBatch

__all__ = ["REAL_SCENARIOS", "window_pool", "real_batch_fn"]

REAL_SCENARIOS = ("mots", "pedestrians")
# options that choose the source and its split; the rest go to dive_pyro.data.mots.build_sequences
SOURCE_KEYS = (
    "path",
    "name",
    "image_pattern",
    "train_fraction",
    "validation_fraction",
    "test_stride",
    "test_camera_occlusion",
)
SPLITS = ("train", "validation", "test")


def _sequence(scenario: str, options: dict):
    from dive_pyro.data.mots import open_mots_sequence

    if scenario == "pedestrians":
        from dive_pyro.data.pedestrians import load_pedestrian_sequence

        return load_pedestrian_sequence(options.get("path") or None)
    if scenario == "mots":
        if not options.get("path"):
            raise ValueError("scenario 'mots' needs data.path: the folder of your MOTSChallenge-format copy")
        kwargs = {"image_pattern": options["image_pattern"]} if options.get("image_pattern") else {}
        return open_mots_sequence(options["path"], options.get("name") or None, **kwargs)
    raise ValueError(f"unknown real-video scenario {scenario!r}; expected one of {REAL_SCENARIOS}")


@functools.lru_cache(maxsize=4)
def _pool(scenario: str, options_json: str, split: str) -> SceneBatch:
    from dive_pyro.data.mots import build_sequences

    options = json.loads(options_json)
    seq = _sequence(scenario, options)
    frames = sorted(seq.frames)
    fraction = float(options.get("train_fraction", 0.8))
    held = float(options.get("validation_fraction", 0) or 0)
    if not 0 <= held < fraction:
        raise ValueError(f"data.validation_fraction must be in [0, train_fraction = {fraction}), got {held}")
    if split == "validation" and held == 0:
        raise ValueError(
            f"{scenario!r} has no validation split: set data.validation_fraction (e.g. 0.1) to hold out "
            "the end of the training frames"
        )
    cut = frames[int(len(frames) * fraction) - 1]
    train_end = frames[int(len(frames) * (fraction - held)) - 1] if held else cut
    build = {k: v for k, v in options.items() if k not in SOURCE_KEYS}
    if split == "train":
        part = seq.between(frames[0], train_end)
    else:
        part = seq.between(train_end + 1, cut) if split == "validation" else seq.between(cut + 1, frames[-1])
        build["stride"] = options.get("test_stride", build.get("stride"))
        build["camera_occlusion"] = bool(options.get("test_camera_occlusion", build.get("camera_occlusion", False)))
        build["seed"] = 1 if split == "test" else 2  # the corruption of each held-out split is fixed
    batch = build_sequences(part, **{k: v for k, v in build.items() if v is not None})
    if batch.batch_size == 0:
        raise ValueError(f"the {split} part of {scenario!r} gives no windows: lower data.stride or num_frames")
    return batch


def window_pool(scenario: str, options: dict, split: str = "train") -> SceneBatch:
    """Every window of the ``split`` ("train", "validation" or "test") part of a real-video scenario."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return _pool(scenario, json.dumps(options, sort_keys=True), split)


def real_batch_fn(scenario: str, options: dict, batch_size: int) -> Callable[[int], SceneBatch]:
    """``seed -> batch_size`` training windows drawn uniformly with a ``torch.Generator(seed)``."""
    pool = window_pool(scenario, options, "train")

    def batch_fn(seed: int) -> SceneBatch:
        g = torch.Generator().manual_seed(seed)
        return pool[torch.randint(pool.batch_size, (batch_size,), generator=g)]

    return batch_fn
