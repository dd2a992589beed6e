"""Console entry point of ``dive-pyro``.

A Ctrl-C while the package is still being imported (torch, Pyro, xarray: a few seconds) ends with
a one-line message and exit status 130 instead of a traceback. This module lives outside the
``dive_pyro`` package because importing ``dive_pyro.cli`` first runs the package's ``__init__``,
which imports everything; once imported, :func:`dive_pyro.cli.main` handles Ctrl-C itself.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from dive_pyro.cli import main as cli_main
    except KeyboardInterrupt:
        print("dive-pyro: interrupted while starting", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
