"""CLI commands for training, sampling, checks and the demo (registered into ``dive_pyro.cli``)."""

from __future__ import annotations


def register(sub) -> None:
    """Add the ``train``, ``sample``, ``check`` and ``demo`` sub-commands to ``sub``."""
