"""Training progress: tqdm bar, per-step JSONL log, optional TensorBoard, ELBO-curve PNG."""

from __future__ import annotations

import io
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from dive_pyro.inference.files import atomic_write, atomic_write_text, disk_full_error, is_disk_full

__all__ = ["RunLog", "read_log", "truncate_log", "plot_elbo", "LOG_NAME", "PLOT_NAME"]

LOG_NAME = "log.jsonl"
PLOT_NAME = "elbo.png"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/inf; `skipped`/`reason` say what happened
    return value


class RunLog:
    """Writes one JSON object per logged step to ``out_dir/log.jsonl`` (appending, one ``write`` per
    line, so a killed run loses at most the line being written; a line that a full disk cuts short is
    cut off again, leaving whole lines only, and :class:`DiskFullError` is raised), mirrors scalars
    to TensorBoard when ``torch.utils.tensorboard`` imports (events from ``start_step`` on, left by
    an earlier attempt, are purged), and drives a tqdm bar. Disabled (no files, no bar) on ranks
    other than 0.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        progress: bool = True,
        tensorboard: bool = True,
    ) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / LOG_NAME
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if enabled else None
        self._tb_dir = Path(out_dir) / "tensorboard" if enabled and tensorboard else None
        self._writer = _tensorboard_writer(self._tb_dir, start_step) if self._tb_dir else None
        self._bar = None
        if enabled and progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)

    def record(self, rec: dict) -> None:
        """Append ``rec`` (must have ``step``) to the log and TensorBoard."""
        if not self.enabled:
            return
        line = (json.dumps({k: _clean(v) for k, v in rec.items()}, allow_nan=False) + "\n").encode()
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            os.ftruncate(self._fd, end)  # whole lines only
            if is_disk_full(exc):
                raise disk_full_error(self.path, len(line), exc) from exc
            raise
        if self._writer is not None and "loss" in rec:
            for key in ("loss", "loss_per_pixel", "lr", "kl_scale", "grad_norm", "seq_per_s"):
                v = rec.get(key)
                if isinstance(v, float) and math.isfinite(v):
                    self._writer.add_scalar(f"train/{key}", v, rec["step"])

    def truncate(self, before_step: int) -> None:
        """Drop records with ``step >= before_step`` (rollback) and keep appending to the new file."""
        if not self.enabled:
            return
        os.close(self._fd)
        truncate_log(self.path, before_step)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self._writer is not None:  # later points replace the rolled-back ones
            self._writer.close()
            self._writer = _tensorboard_writer(self._tb_dir, before_step)

    def update(self, steps: int = 1, **postfix: Any) -> None:
        """Advance the bar and show ``postfix`` (e.g. loss per pixel, sequences/s)."""
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(steps)

    def message(self, text: str) -> None:
        """Print a line without breaking the bar (rank 0 only)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tensorboard_writer(log_dir: Path, start_step: int = 0):
    """A ``SummaryWriter`` that purges earlier events at steps ``>= start_step`` (after a resume or
    rollback), or ``None`` when TensorBoard is not installed (silently skipped)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=start_step if start_step > 0 else None)


def read_log(path: str | Path) -> list[dict]:
    """All records of a ``log.jsonl``. A torn last line (a killed run) is ignored; any other line
    that is not UTF-8 JSON raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines):  # no newline after it: the line a killed run was writing
                continue
            what = "is not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "is not valid JSON"
            raise ValueError(
                f"{path}:{number}: log line {what} ({exc}); the log is damaged - fix or delete that line"
            ) from None
        if isinstance(rec, dict):
            out.append(rec)
    return out


def truncate_log(path: str | Path, before_step: int) -> None:
    """Keep only the records with ``step < before_step`` (used on resume and rollback, so the log
    matches the restored state and has one record per step)."""
    path = Path(path)
    if not path.is_file():
        return
    keep = [r for r in read_log(path) if int(r.get("step", -1)) < before_step]
    atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in keep))


def plot_elbo(log_path: str | Path, png_path: str | Path, *, window: int = 50) -> Path | None:
    """Plot -ELBO per pixel against step (raw and a moving average) to a PNG; ``None`` if no data."""
    import numpy as np
    from matplotlib.figure import Figure

    recs = [r for r in read_log(log_path) if r.get("loss_per_pixel") is not None and "event" not in r]
    if not recs:
        return None
    steps = np.array([r["step"] for r in recs])
    loss = np.array([r["loss_per_pixel"] for r in recs], dtype=float)
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="-ELBO / pixel")
    if len(loss) >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, lw=1.5, label=f"moving mean ({window} logs)")
    ax.set_xlabel("step")
    ax.set_ylabel("-ELBO per pixel (nats)")
    ax.set_title("training loss")
    ax.legend(loc="upper right")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    data = png.getvalue()
    return atomic_write(png_path, lambda f: f.write(data), needed=len(data))
