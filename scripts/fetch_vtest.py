"""Fetch OpenCV's pedestrian video ``vtest.avi`` from the Debian package ``opencv-doc`` (no install).

Runs ``apt-get download opencv-doc`` in a temporary folder and extracts only
``usr/share/doc/opencv-doc/examples/data/vtest.avi`` with ``dpkg-deb --fsys-tarfile``; checks its
sha256. With ``--mots DIR`` it also writes the MOTS annotations (``gt.txt``, ``images/``) there.

Usage::

    .venv/bin/python scripts/fetch_vtest.py                    # -> data/vtest.avi (or $DIVE_PYRO_DATA)
    .venv/bin/python scripts/fetch_vtest.py data/vtest.avi --mots data/vtest_mots

Exit status 1 with a one-line reason when no Debian registry is reachable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dive_pyro.data.pedestrians import default_vtest_path, fetch_vtest, video_to_mots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", nargs="?", type=Path, default=None, help="where to put vtest.avi")
    parser.add_argument("--mots", type=Path, default=None, help="also write MOTS annotations to this folder")
    args = parser.parse_args(argv)
    dest = args.dest or default_vtest_path()
    try:
        path = fetch_vtest(dest)
    except RuntimeError as err:
        print(f"fetch_vtest: {err}", file=sys.stderr)
        return 1
    print(f"vtest.avi: {path}")
    if args.mots is not None:
        print(f"MOTS annotations: {video_to_mots(path, args.mots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
