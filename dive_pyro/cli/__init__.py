"""Command-line interface ``dive-pyro`` (also ``python -m dive_pyro``): :mod:`.parser` parses,
:mod:`.commands` calls the library."""

from dive_pyro.cli.parser import main

__all__ = ["main"]
