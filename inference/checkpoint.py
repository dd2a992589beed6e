"""One-file training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and primitive containers::

    {"format": "dive-pyro-checkpoint", "version": 1, "step": int, "variant": str,
     "config": dict (TrainConfig as plain dict), "model": state_dict, "guide": state_dict,
     "optimizer": state_dict, "scheduler": state_dict, "rng": {...tensors...}, "extra": dict}

``step`` is the number of optimisation steps already taken (the next step to run).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_NAME",
    "get_rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "check_compatible",
    "check_variant",
    "ensure_writable_dir",
    "remove_stale_temp_files",
]

FORMAT = "dive-pyro-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("step", "variant", "config", "model", "guide", "optimizer", "scheduler", "rng")


# --------------------------------------------------------------------------- RNG
def get_rng_state() -> dict:
    """States of the torch (CPU and CUDA), numpy and ``random`` generators — Pyro's RNGs — as tensors."""
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "random": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    r = state["random"]
    random.setstate((r["version"], tuple(int(x) for x in r["state"].tolist()), r["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


# --------------------------------------------------------------------------- files
def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (with parents) and check a file can be written there; ``ValueError`` otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"out_dir {str(path)!r} is not a writable folder: {exc.strerror or exc}") from exc
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict, path: str | Path, *, keep: int = 0) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    A reader (or a process killed mid-write) sees either the old file or the new one, never a
    partial one. With ``keep > 0`` a numbered copy ``<stem>-<step>.pt`` is also kept, and only the
    ``keep`` newest numbered copies survive.
    """
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # honours the umask, unlike mkstemp's 0600
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    if keep > 0:
        numbered = path.with_name(f"{path.stem}-{int(state['step']):08d}{path.suffix}")
        numbered.unlink(missing_ok=True)
        try:
            os.link(path, numbered)  # the next os.replace gives `path` a new inode; this one stays
        except OSError:  # pragma: no cover - filesystems without hard links
            shutil.copyfile(path, numbered)
        for old in sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))[:-keep]:
            old.unlink(missing_ok=True)
    return path


def remove_stale_temp_files(folder: str | Path) -> None:
    """Delete temp files left by a process killed while writing a checkpoint."""
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and sanity-check a checkpoint (``weights_only=True``: no code runs on load).

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` if it is corrupt, truncated or
    not a dive-pyro checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or not a dive-pyro checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not a dive-pyro checkpoint (no format tag {FORMAT!r})")
    if state.get("version") != VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format version {state.get('version')!r}; this code reads {VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} is incomplete: missing {', '.join(missing)}")
    return state


def _diff(a: dict, b: dict) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k, '<unset>')!r} vs {b.get(k, '<unset>')!r}" for k in keys if a.get(k) != b.get(k)]


def check_variant(state: dict, variant: str, *, path: str | Path = "") -> None:
    """``ValueError`` unless the checkpoint was written for ``variant``."""
    if state["variant"] != variant:
        where = f" {str(path)!r}" if path else ""
        raise ValueError(f"checkpoint{where} is for variant {state['variant']!r}, but this run builds {variant!r}")


def check_compatible(state: dict, variant: str, model_config: dict[str, Any], *, path: str | Path = "") -> None:
    """``ValueError`` unless the checkpoint was written for the same variant and model config."""
    check_variant(state, variant, path=path)
    where = f" {str(path)!r}" if path else ""
    saved, now = _with_defaults(variant, state["config"].get("model") or {}), _with_defaults(variant, model_config)
    if saved != now:
        raise ValueError(
            f"checkpoint{where} was trained with a different model config (saved vs now): "
            + "; ".join(_diff(saved, now))
        )


def _with_defaults(variant: str, model_config: dict[str, Any]) -> dict[str, Any]:
    """``model_config`` (a checkpoint's, possibly written before configs were stored in full) with
    every unset field at the variant's default (so leaving a key out and setting it to its default
    compare equal); tuples as lists, as TOML reads them."""
    from dive_pyro.inference.config import resolve_model

    merged = dataclasses.asdict(resolve_model(variant, dict(model_config)))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}
