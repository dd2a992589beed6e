"""Argument types of the CLI: output folders and files that are checked before any work starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["writable_dir", "writable_file"]


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
