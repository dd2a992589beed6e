"""Evaluation mode for the duration of a block (posterior draws, refinement, scoring)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(*fns) -> Iterator[None]:
    """Put the ``nn.Module``s among ``fns`` in eval mode (BatchNorm statistics, no imputation or
    appearance dropout) for the block; their modes are restored after it."""
    modules = [m for m in fns if isinstance(m, torch.nn.Module)]  # e.g. not a handler-wrapped guide
    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, was, strict=True):
            m.train(mode)
