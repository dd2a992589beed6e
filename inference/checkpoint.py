"""One-file training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors and primitive containers::

    {"format": "dive-pyro-checkpoint", "version": 1, "step": int, "variant": str,
     "config": dict (TrainConfig as plain dict), "model": state_dict, "guide": state_dict,
     "optimizer": state_dict, "scheduler": state_dict, "rng": {...tensors...}, "extra": dict,
     "checksum": "sha256:..."}

``checksum`` covers every other entry (:func:`content_checksum`) and is verified on every load.

``step`` is the number of optimisation steps already taken (the next step to run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dive_pyro.inference.files import atomic_write, remove_stale_temp_files

__all__ = [
    "CHECKPOINT_NAME",
    "get_rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "check_compatible",
    "check_variant",
    "check_finite_weights",
    "content_checksum",
    "ensure_writable_dir",
    "load_weights",
    "remove_stale_temp_files",
]

FORMAT = "dive-pyro-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("step", "variant", "config", "model", "guide", "optimizer", "scheduler", "rng")
_log = logging.getLogger(__name__)


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


def content_checksum(state: dict) -> str:
    """``"sha256:<hex>"`` of every tensor's dtype, shape and bytes and every primitive, in key order
    (``"checksum"`` itself excluded): a flipped bit anywhere in the content changes it."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"})
    return "sha256:" + h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)};".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"S{len(data)};".encode() + data)
    elif isinstance(obj, bytes):
        h.update(f"Y{len(obj)};".encode() + obj)
    elif isinstance(obj, float):
        h.update(f"F{obj.hex()};".encode())
    else:  # None, bool, int, torch.dtype, ...
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_nbytes(v) for v in obj)
    return 0


def save_checkpoint(state: dict, path: str | Path, *, keep: int = 0) -> Path:
    """Write ``state`` (plus its :func:`content_checksum`) to ``path`` atomically: temp file in the
    same folder, fsync, ``os.replace``.

    A reader (or a process killed mid-write) sees either the old file or the new one, never a
    partial one; a full disk raises :class:`~dive_pyro.inference.files.DiskFullError` naming the
    folder and the space needed, and leaves the old file. With ``keep > 0`` a numbered copy
    ``<stem>-<step>.pt`` is also kept, and only the ``keep`` newest numbered copies survive.
    """
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **{k: v for k, v in state.items() if k != "checksum"}}
    state["checksum"] = content_checksum(state)
    atomic_write(path, lambda f: torch.save(state, f), needed=_nbytes(state) + 64_000)
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read and verify a checkpoint (``weights_only=True``: no code runs on load).

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming the file if it is
    corrupt, truncated, fails its content checksum, or is not a dive-pyro checkpoint. A checkpoint
    written before checksums existed loads with a one-line note (logged) that it is unverified.
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
    if "checksum" not in state:
        _log.warning(
            "note: checkpoint %r has no content checksum (written by an older dive-pyro): not verified", str(path)
        )
    elif state["checksum"] != content_checksum(state):
        raise ValueError(
            f"checkpoint {str(path)!r} failed its integrity check: the content checksum does not match, so "
            "the file was changed or damaged after it was written; use another copy (e.g. a numbered "
            "checkpoint-*.pt) or retrain"
        )
    return state


def check_finite_weights(state: dict, *, path: str | Path = "") -> None:
    """``ValueError`` naming the first model/guide tensor with NaN or inf values."""
    for part in ("model", "guide"):
        for key, value in state[part].items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(
                    f"checkpoint {str(path)!r} holds non-finite {part} weights ({key!r} has NaN or inf "
                    "values); it is not a usable model"
                )


def load_weights(module: torch.nn.Module, weights: dict, *, part: str, path: str | Path = "") -> None:
    """``module.load_state_dict(weights)`` with a ``ValueError`` naming the missing, unexpected or
    mis-sized key and the checkpoint file instead of torch's raw ``RuntimeError``."""
    own = module.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    where = f"checkpoint {str(path)!r}" if path else "checkpoint"

    def listed(keys: list[str]) -> str:
        return repr(keys[0]) + (f" (and {len(keys) - 1} more)" if len(keys) > 1 else "")

    if missing:
        raise ValueError(f"{where}: its {part} weights lack key {listed(missing)} that this network has")
    if unexpected:
        raise ValueError(f"{where}: its {part} weights have key {listed(unexpected)} that this network lacks")
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(
            f"{where}: its {part} weights do not fit this run's network "
            f"(different sizes in [model]?): {str(exc).splitlines()[-1].strip()}"
        ) from exc


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
    compare equal); tuples as lists, as TOML reads them. Fields that change only how the numbers
    are computed (``NUMERICS_ONLY``, e.g. ``kernels``) are left out."""
    from dive_pyro.core.config import NUMERICS_ONLY
    from dive_pyro.inference.config import resolve_model

    merged = dataclasses.asdict(resolve_model(variant, dict(model_config)))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items() if k not in NUMERICS_ONLY}
