"""Argument types of the CLI: output folders and files that are checked before any work starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["existing_file", "nonnegative_int", "positive_float", "positive_int", "writable_dir", "writable_file"]


def writable_dir(path: str) -> Path:
    """Create ``path`` (and parents) or fail with a clear message."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot create output folder {p}: {exc.strerror}") from exc
    if not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"output folder {p} is not writable")
    return p


def writable_file(path: str) -> Path:
    p = Path(path)
    writable_dir(str(p.parent if str(p.parent) else "."))
    if p.exists() and not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"output file {p} is not writable")
    return p


def _int(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int(text, 1, "an integer >= 1")


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def existing_file(path: str) -> Path:
    """A file that exists (e.g. a checkpoint), so a typo fails before any work starts."""
    p = Path(path)
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {p}" + (" (it is a folder)" if p.is_dir() else ""))
    return p
