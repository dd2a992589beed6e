"""Fixed, disk-cached evaluation sets: 1,024 sequences per scenario from fixed seeds (paper §4.2).

``num_sequences=N`` gives the first N of those 1,024 (the same videos whatever N), so a small
evaluation scores a subset of the full one.

Design. What is cached is the batch's *layout* (:class:`~dive_pyro.data.moving_mnist.SceneLayout`):
the per-object 28x28 patches as uint8 (``(B, N, 1, 28, 28)``, or ``(B, N, T, 28, 28)`` for the
elastic scenario), their top-left pixels and the removal flags, saved with ``torch.save`` as a
dict of tensors and plain Python values and loaded with ``weights_only=True``. Frames are rendered
from it on load (integer pasting + max: exact, fast). A ``<file>.sha256`` sidecar holds the
sha256 of the ``.pt`` bytes; when the file or the sidecar is absent, or the checksum fails
(warning), the set is regenerated from its seed and rewritten. Files are small (about 1.6 MB,
or 32 MB for ``elastic``), and a saved set stays fixed even if a later torch version changed its
random streams.

Non-elastic patches are the uint8 digits, so those sets equal ``generate(...)`` exactly. Elastic
patches are rounded to the nearest 1/255 (as DIVE's ``map_coordinates`` on uint8 images does);
the returned set is always the rounded one, on the first call as on later ones.

The cache key (file name) hashes every generator parameter (scenario, seed, size, all keyword
arguments; explicit ``digits`` by content) plus a format version. Digits come from the TEST split.
The validation set uses the same held-out digits with other seeds: select models and
hyper-parameters on it, never on the test set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.mnist import array_sha256, file_sha256
from dive_pyro.data.moving_mnist import SCENARIOS, SceneLayout, draw_layout, render_layout

__all__ = ["SET_SIZE", "TEST_SEEDS", "VALIDATION_SEEDS", "cache_dir", "describe", "fixed_test_set", "validation_set"]

SET_SIZE = 1024  # sequences per fixed set; num_sequences=N takes the first N

TEST_SEEDS = {name: 20260 + i for i, name in enumerate(SCENARIOS)}
VALIDATION_SEEDS = {name: 20270 + i for i, name in enumerate(SCENARIOS)}
FORMAT_VERSION = 1
_RESERVED = ("seed", "split")


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$DIVE_PYRO_CACHE/testsets``, else ``~/.cache/dive_pyro/testsets``."""
    if root is not None:
        return Path(root)
    base = os.environ.get("DIVE_PYRO_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "dive_pyro") / "testsets"


def _cache_key(params: dict) -> str:
    def encode(value):
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous()
            digest = array_sha256(data.numpy())
            return f"tensor:{data.dtype}:{tuple(data.shape)}:{digest}"
        return str(value)

    text = json.dumps(params, sort_keys=True, default=encode)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save(layout: SceneLayout, path: Path) -> None:
    patches = layout.patches.cpu()
    if patches.dtype != torch.uint8:
        patches = (patches * 255.0).round().clamp(0, 255).to(torch.uint8)
    payload = {
        "format": FORMAT_VERSION,
        "patches": patches,
        "top_left": layout.top_left.cpu(),
        "removed": layout.removed.cpu(),
        "scenario": layout.scenario,
        "frame_size": layout.frame_size,
        "num_observed": layout.num_observed,
        "occluded_rows": layout.occluded_rows,
        "meta": layout.meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(file_sha256(path) + "\n")


def _load(path: Path) -> SceneLayout:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return SceneLayout(
        patches=payload["patches"],
        top_left=payload["top_left"],
        removed=payload["removed"],
        scenario=payload["scenario"],
        frame_size=payload["frame_size"],
        num_observed=payload["num_observed"],
        occluded_rows=payload["occluded_rows"],
        meta=payload["meta"],
    )


def _first(layout: SceneLayout, n: int) -> SceneLayout:
    return dataclasses.replace(
        layout, patches=layout.patches[:n], top_left=layout.top_left[:n], removed=layout.removed[:n]
    )


def _cached_set(kind: str, seeds: dict, scenario: str, root, num_sequences: int, gen_kwargs: dict) -> SceneBatch:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
    if isinstance(num_sequences, bool) or not isinstance(num_sequences, int) or not 1 <= num_sequences <= SET_SIZE:
        raise ValueError(
            f"num_sequences must be an int in [1, {SET_SIZE}] (the first N of the fixed {SET_SIZE:,}), "
            f"got {num_sequences!r}"
        )
    reserved = sorted(set(gen_kwargs) & set(_RESERVED))
    if reserved:
        raise TypeError(f"{kind} sets fix {reserved} themselves (seed per scenario, split='test'); remove them")
    device = gen_kwargs.pop("device", "cpu")
    seed = seeds[scenario]
    params = {"kind": kind, "scenario": scenario, "seed": seed, "num_sequences": SET_SIZE}
    params.update(split="test", format=FORMAT_VERSION, **gen_kwargs)
    path = cache_dir(root) / f"{kind}-{scenario}-{_cache_key(params)}.pt"
    checksum = path.with_name(path.name + ".sha256")

    if path.exists() and checksum.exists() and checksum.read_text().strip() == file_sha256(path):
        layout = _load(path)
    else:
        if path.exists():
            warnings.warn(f"checksum of cached {kind} set {path} is missing or wrong; regenerating it", stacklevel=3)
        fresh = draw_layout(scenario, SET_SIZE, seed=seed, split="test", **gen_kwargs)
        _save(fresh, path)
        layout = _load(path)  # the stored (uint8-rounded) version, identical to later loads
    batch = render_layout(_first(layout, num_sequences))  # render only what is asked for
    batch.meta.update(kind=kind, cache_file=str(path), first=num_sequences, of=SET_SIZE)
    return batch.to(device)


def fixed_test_set(
    scenario: str, *, root: str | os.PathLike | None = None, num_sequences: int = 1024, **gen_kwargs
) -> SceneBatch:
    """The fixed test set of ``scenario``: the first ``num_sequences`` (1..1024) of the 1,024 videos
    from ``TEST_SEEDS[scenario]`` on the test digit split, cached under :func:`cache_dir` (see the
    module docstring).

    ``gen_kwargs`` go to :func:`~dive_pyro.data.moving_mnist.generate` (not ``seed`` or ``split``);
    ``device`` only says where the returned batch lives.
    """
    return _cached_set("test", TEST_SEEDS, scenario, root, num_sequences, dict(gen_kwargs))


def validation_set(
    scenario: str, *, root: str | os.PathLike | None = None, num_sequences: int = 1024, **gen_kwargs
) -> SceneBatch:
    """Like :func:`fixed_test_set` with ``VALIDATION_SEEDS``: held-out digits, different videos. Use it
    (not the test set) for model selection and early stopping."""
    return _cached_set("validation", VALIDATION_SEEDS, scenario, root, num_sequences, dict(gen_kwargs))


def describe(batch: SceneBatch) -> str:
    """Which sequences ``batch`` holds, for messages: e.g. "the first 64 of the 1,024 fixed out_of_scene
    test sequences (32x32)", "all 1,024 fixed ..." or, for other batches, "8 elastic sequences (64x64)"."""
    size = f"({batch.frame_size[0]}x{batch.frame_size[1]})"
    total, kind = batch.meta.get("of"), batch.meta.get("kind")
    if total is None or kind is None:
        return f"{batch.batch_size} {batch.scenario} sequences {size}"
    first = f"all {total:,}" if batch.batch_size == total else f"the first {batch.batch_size} of the {total:,}"
    return f"{first} fixed {batch.scenario} {kind} sequences {size}"
