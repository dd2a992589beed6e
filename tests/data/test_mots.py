"""MOTS reader, sequences and DIVE-style windows on a tiny fixture written in MOTS format by hand."""

import math
import re
import shutil

import numpy as np
import pycocotools.mask as mask_api
import pytest
import torch
from PIL import Image

from dive_pyro.data import SceneBatch
from dive_pyro.data.mots import (
    MotsAnnotation,
    MotsSequence,
    build_sequences,
    open_mots_sequence,
    read_mots_instances,
    read_mots_txt,
    rle_run_lengths,
    write_mots_txt,
)

H, W = 32, 48
PATTERN = "{frame:06d}.png"  # lossless images, so pixel values are exact


def _rle(mask: np.ndarray) -> str:
    return mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def _rect(x0, y0, x1, y1, h=H, w=W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _image(t: int) -> np.ndarray:
    """Frame t: a linear ramp (so a 2x2 block mean is the value at the block centre), < 256."""
    y, x = np.mgrid[0:H, 0:W]
    return (2 * x + 3 * y + 10 * t).astype(np.uint8)


def _masks(t: int) -> dict[int, np.ndarray]:
    """Frames 1-4: pedestrian 2001 (4x6, moving 2 px right per frame; only its top 2 rows visible in
    frame 2), pedestrian 2002 (2x2, absent in frame 3), a car 1001 and an ignore region 10000."""
    i = t - 1
    out = {2001: _rect(10 + 2 * i, 8, 14 + 2 * i, 10 if t == 2 else 14)}
    if t != 3:
        out[2002] = _rect(20, 18, 22, 20)
    out[1001] = _rect(30, 2, 46, 8)
    out[10000] = _rect(0, 28, 6, 32)
    return out


def _line(t, tid, mask, h=H, w=W) -> str:
    return f"{t} {tid} {tid // 1000} {h} {w} {_rle(mask)}"


def _write(root, lines, frames=(1, 2, 3, 4)):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for t in frames:
        Image.fromarray(_image(t)).save(root / "images" / PATTERN.format(frame=t))
    (root / "gt.txt").write_text("\n".join(lines) + "\n")
    return root / "gt.txt"


@pytest.fixture
def fixture(tmp_path):
    lines = [_line(t, tid, m) for t in (1, 2, 3, 4) for tid, m in _masks(t).items()]
    return _write(tmp_path, lines), lines


def _sequence(txt):
    return MotsSequence(read_mots_txt(txt), txt.parent / "images", image_pattern=PATTERN)


# ------------------------------------------------------------------------------------------ reader


def test_read_decodes_masks_with_lines_area_and_box(fixture):
    txt, lines = fixture
    anns = read_mots_txt(txt)
    assert len(anns) == len(lines) == 15
    for i, a in enumerate(anns, start=1):
        assert a.line == i and a.source == str(txt)
        assert a.class_id == a.track_id // 1000 and (a.height, a.width) == (H, W)
        assert np.array_equal(a.decode(), _masks(a.frame)[a.track_id])
    first = anns[0]  # frame 1, track 2001: x 10..13, y 8..13
    assert (first.frame, first.track_id, first.area(), first.bbox()) == (1, 2001, 24, (10.0, 8.0, 4.0, 6.0))


def test_write_then_read_roundtrips_exactly(fixture, tmp_path):
    txt, _ = fixture
    anns = read_mots_txt(txt)
    out = write_mots_txt(tmp_path / "copy" / "gt.txt", anns[::-1])
    again = read_mots_txt(out)
    assert again == sorted(anns, key=lambda a: (a.frame, a.track_id))
    assert write_mots_txt(tmp_path / "copy2.txt", again).read_text() == out.read_text()


def test_instances_png_variant_matches_text(fixture, tmp_path):
    txt, _ = fixture
    folder = tmp_path / "instances"
    folder.mkdir()
    for t in (1, 2, 3, 4):
        ids = np.zeros((H, W), np.uint16)
        for tid, m in _masks(t).items():
            ids[m] = tid
        Image.fromarray(ids).save(folder / f"{t:06d}.png")
    key = lambda a: (a.frame, a.track_id)  # noqa: E731
    assert sorted(read_mots_instances(folder), key=key) == sorted(read_mots_txt(txt), key=key)
    ids = np.zeros((H, W), np.uint16)
    ids[3:5, 3:5] = 5001  # class 5 does not exist
    Image.fromarray(ids).save(folder / "000009.png")
    with pytest.raises(ValueError, match=r"000009\.png: unknown class_id 5"):
        read_mots_instances(folder)


def _bad_lines():
    ok = _rect(10, 8, 14, 14)
    big = _rect(40, 30, 46, 38, h=40, w=48)  # encoded for a 40-row image, declared 32 rows
    return {
        "fields": ("1 2001 2 32 48", r"expected 6 fields"),
        "integer": (f"1 2001 2 3x2 48 {_rle(ok)}", r"img_height must be an integer, got '3x2'"),
        "class": (f"1 7001 7 32 48 {_rle(ok)}", r"unknown class_id 7 \(known: 1 car, 2 pedestrian"),
        "id": (f"1 1001 2 32 48 {_rle(ok)}", r"track_id 1001 must be class_id \* 1000 \+ instance"),
        "outside": (
            f"1 2001 2 32 48 {_rle(big)}",
            r"mask box x=48 y=0 w=10 h=32 lies outside the 32x48 image",
        ),
        "rle": ("1 2005 2 32 48 ab!", r"invalid COCO RLE: characters outside '0'..'o'"),
        "duplicate": (f"1 2002 2 32 48 {_rle(ok)}", r"track_id 2002 already has a mask in frame 1"),
    }


@pytest.mark.parametrize("case", sorted(_bad_lines()))
def test_malformed_line_names_file_and_line(fixture, case):
    txt, lines = fixture
    bad, message = _bad_lines()[case]
    txt.write_text("\n".join(lines[:5] + [bad] + lines[5:]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{txt}:6: ") + message):
        read_mots_txt(txt)


def test_truncated_rle_is_rejected_on_read_naming_the_line(fixture):
    txt, lines = fixture
    short = _rect(10, 8, 14, 14, h=16, w=48)  # runs cover 16x48 pixels, line declares 32x48
    txt.write_text("\n".join(lines + [_line(4, 2099, short)]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{txt}:16: ") + "invalid COCO RLE .*cover 768 pixels"):
        read_mots_txt(txt)
    ann = MotsAnnotation(4, 2099, 2, 32, 48, _rle(short).encode())  # built in code, not read: decode checks too
    with pytest.raises(ValueError, match="the RLE's run lengths do not cover"):
        ann.decode()


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("0", "cover 0 pixels, the 32x48 image has 1536"),
        ("PPPP", "the string ends inside a run length"),
        ("11", "cover 2 pixels"),
    ],
)
def test_invalid_masks_are_rejected_naming_file_and_line(fixture, counts, message):
    txt, lines = fixture
    txt.write_text("\n".join(lines[:2] + [f"1 2003 2 32 48 {counts}"] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{txt}:3: invalid COCO RLE") + ".*" + message):
        read_mots_txt(txt)


def test_a_line_torn_inside_its_mask_is_rejected(fixture):
    txt, lines = fixture
    torn = lines[0][: lines[0].rindex(" ") + 4]  # the RLE cut to 3 characters
    txt.write_text("\n".join([torn] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{txt}:1: invalid COCO RLE")):
        read_mots_txt(txt)


def test_run_lengths_match_pycocotools_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 300, 2))
        mask = rng.random((h, w)) < rng.random() ** 3
        runs = rle_run_lengths(_rle(mask).encode())
        flat = np.concatenate([np.full(r, i % 2, bool) for i, r in enumerate(runs)])
        assert np.array_equal(flat, mask.T.reshape(-1))


def test_a_utf8_bom_and_windows_line_endings_are_read(fixture):
    txt, lines = fixture
    expected = read_mots_txt(txt)
    txt.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert read_mots_txt(txt) == expected


def test_a_truncated_image_is_an_error_naming_the_file(fixture):
    txt, _ = fixture
    seq = _sequence(txt)
    image = txt.parent / "images" / "000002.png"
    image.write_bytes(image.read_bytes()[:-40])
    with pytest.raises(ValueError, match=re.escape(f"{image}: cannot read image")):
        seq.frame(2)


def test_mask_size_differs_from_image(fixture):
    txt, lines = fixture
    m = _rect(1, 1, 3, 3, h=20, w=40)
    txt.write_text("\n".join(lines + [_line(4, 2050, m, h=20, w=40)]) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{txt}:16: mask is 20x40") + r".*lies outside the image"):
        _sequence(txt)


def test_missing_image_names_line_and_file(fixture):
    txt, _ = fixture
    (txt.parent / "images" / "000003.png").unlink()
    # 4 masks in frame 1 and 4 in frame 2: frame 3 starts on line 9
    with pytest.raises(FileNotFoundError, match=re.escape(f"{txt}:9: image for frame 3 not found: ")):
        _sequence(txt)
    with pytest.raises(FileNotFoundError, match="MOTS annotation file not found"):
        read_mots_txt(txt.parent / "nope.txt")


def test_overlapping_masks_are_rejected(fixture):
    txt, lines = fixture
    txt.write_text("\n".join(lines + [_line(4, 2003, _rect(17, 9, 19, 11))]) + "\n")
    seq = _sequence(txt)
    with pytest.raises(
        ValueError,
        match=r"masks of frame 4 overlap \(.*gt\.txt:12, .*gt\.txt:16\); MOTS masks must be disjoint",
    ):
        seq.masks(4)


# ---------------------------------------------------------------------------------------- sequence


def test_sequence_frames_and_masks(fixture):
    txt, _ = fixture
    seq = _sequence(txt)
    assert seq.frames == [1, 2, 3, 4] and (seq.height, seq.width) == (H, W)
    for t in seq.frames:
        assert torch.equal(seq.frame(t), torch.from_numpy(_image(t).astype(np.float32) / 255))
        got = seq.masks(t, class_id=2)
        assert sorted(got) == sorted(k for k in _masks(t) if k // 1000 == 2)
        for k, m in got.items():
            assert torch.equal(m, torch.from_numpy(_masks(t)[k]))
    part = seq.between(2, 3)
    assert part.frames == [2, 3] and {a.frame for a in part.annotations} == {2, 3}
    with pytest.raises(KeyError, match="frame 9 is not in sequence"):
        seq.frame(9)


def test_open_finds_all_three_layouts(fixture, tmp_path):
    txt, _ = fixture
    ours = open_mots_sequence(txt.parent, image_pattern=PATTERN)
    assert len(ours.annotations) == 15
    mots20 = tmp_path / "MOTS20-02"
    (mots20 / "gt").mkdir(parents=True)
    shutil.copy(txt, mots20 / "gt" / "gt.txt")
    shutil.copytree(txt.parent / "images", mots20 / "img1")
    assert open_mots_sequence(mots20, image_pattern=PATTERN).annotations == ours.annotations
    challenge = tmp_path / "challenge"
    (challenge / "instances_txt").mkdir(parents=True)
    shutil.copy(txt, challenge / "instances_txt" / "0002.txt")
    shutil.copytree(txt.parent / "images", challenge / "images" / "0002")
    named = open_mots_sequence(challenge, "0002", image_pattern=PATTERN)
    assert named.name == "0002" and named.annotations == ours.annotations
    with pytest.raises(FileNotFoundError, match=r"no MOTS annotations under .*tried .*gt\.txt"):
        open_mots_sequence(tmp_path / "empty")


# ---------------------------------------------------------------------------------- build_sequences


def _expected_binary():
    """Hand-computed window: union box x 10..22, y 8..20 -> 12 px square at (10, 8), 2x2 blocks."""
    obj = torch.zeros(3, 4, 6, 6)
    for i in range(4):
        obj[0, i, : 1 if i == 1 else 3, i : i + 2] = 1  # 2001: cols i, i+1; frame 2 only row 0
        if i != 2:
            obj[1, i, 5, 5] = 1  # 2002
    return obj


def test_build_sequences_exact_window(fixture):
    seq = _sequence(fixture[0])
    b = build_sequences(seq, num_objects=3, num_frames=4, num_observed=2, frame_size=6, padding=0.0)
    assert isinstance(b, SceneBatch) and b.observed.shape == (1, 4, 1, 6, 6) and b.num_observed == 2
    assert b.meta["track_ids"] == [[2001, 2002, -1]] and b.meta["crop_boxes"] == [(10, 8, 12)]
    assert b.meta["frames"] == [[1, 2, 3, 4]] and b.scenario == "mots"
    expected = _expected_binary()
    assert torch.equal(b.objects[0, :, :, 0], expected)
    assert torch.equal(b.complete[0, :, 0], expected.sum(0)) and torch.equal(b.observed, b.complete)
    assert b.visible.all() and b.scored.all()
    # 2001 occluded in frame 2 (area 8 < 0.5 x median 24), 2002 absent in frame 3, slot 3 unused
    assert b.missing[0].tolist() == [[False, True, False, False], [False, False, True, False], [True] * 4]
    # centroids mapped to crop pixels; frame 2 of 2001 interpolated (measured would be y = 0.25)
    pos = torch.tensor([[[i + 0.5, 1.0] for i in range(4)], [[5.0, 5.0]] * 4, [[2.5, 2.5]] * 4])
    assert torch.allclose(b.positions[0], pos)


def test_build_sequences_foreground_and_full_content(fixture):
    seq = _sequence(fixture[0])
    kw = dict(num_objects=3, num_frames=4, num_observed=2, frame_size=6, padding=0.0)
    r, c = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    # block mean of the linear ramp = value at the block centre
    crop = torch.stack([(2 * (10 + 2 * c + 0.5) + 3 * (8 + 2 * r + 0.5) + 10 * t) / 255 for t in (1, 2, 3, 4)])
    fg = build_sequences(seq, content="foreground", **kw)
    assert torch.allclose(fg.objects[0, :, :, 0], _expected_binary() * crop, atol=1e-6)
    assert torch.allclose(fg.complete[0, :, 0], (_expected_binary() * crop).sum(0), atol=1e-6)
    full = build_sequences(seq, content="full", **kw)
    assert torch.allclose(full.complete[0, :, 0], crop, atol=1e-6) and torch.equal(full.observed, full.complete)
    assert torch.equal(full.objects, fg.objects)


def test_padding_extends_crop_beyond_image_with_zeros(fixture):
    seq = _sequence(fixture[0])
    b = build_sequences(seq, num_frames=4, num_observed=2, frame_size=12, padding=1.0, content="full")
    # side = 12 * 3 = 36 around centre (16, 14): left -2, top -4; 3x3 blocks, so block row 0 lies
    # above the image and block (1, 0) holds the 2 image pixels x = 0, y = 0..1 of its 9
    assert b.meta["crop_boxes"] == [(-2, -4, 36)]
    frames = b.complete[0, :, 0]
    assert (frames[:, 0] == 0).all() and (frames[:, 1:] > 0).all()
    want = torch.tensor([(3 + 20 * t) / (9 * 255) for t in (1, 2, 3, 4)])
    assert torch.allclose(frames[:, 1, 0], want, atol=1e-7)


def _long_sequence(root, num_frames=12):
    lines = [_line(t, 2001, _rect(10, 8, 14, 14)) for t in range(1, num_frames + 1)]
    return _sequence(_write(root, lines, frames=range(1, num_frames + 1)))


def test_synthetic_removals_follow_dive_rules(tmp_path):
    seq = _long_sequence(tmp_path)
    kw = dict(num_objects=2, num_frames=4, num_observed=2, stride=1, frame_size=8)
    with pytest.raises(ValueError, match=r"missing_steps must satisfy 0 <= n <= num_observed - 4"):
        build_sequences(seq, missing_steps=1, **kw)
    kw.update(num_frames=12, num_observed=8)
    clean = build_sequences(seq, **kw)
    b = build_sequences(seq, missing_steps=2, camera_occlusion=True, seed=1, **kw)
    again = build_sequences(seq, missing_steps=2, camera_occlusion=True, seed=1, **kw)
    assert torch.equal(b.observed, again.observed) and torch.equal(b.missing, again.missing)
    assert torch.equal(b.complete, clean.complete) and not clean.missing[0, 0].any()
    gen = torch.Generator().manual_seed(1)
    o = torch.randint(0, 8 - 2 - 3, (1, 2), generator=gen)[0, 0].item() + 2
    u = torch.randint(1, 8, (1,), generator=gen).item()
    assert u not in (o, o + 1)  # seed 1 blanks a frame apart from the object's removal
    removed = {o, o + 1, u}
    assert b.missing[0, 0].nonzero().flatten().tolist() == sorted(removed)
    assert b.missing[0, 1].all()  # unused slot
    for t in range(12):
        want = torch.zeros_like(b.complete[0, t]) if t in removed else b.complete[0, t]
        assert torch.equal(b.observed[0, t], want)
    full = build_sequences(seq, missing_steps=2, camera_occlusion=True, seed=1, content="full", **kw)
    assert (~full.visible[0, u]).all()  # the blanked frame is unobserved
    hole = ~full.visible[0, o, 0]
    assert torch.equal(hole, full.objects[0, 0, o, 0] > 0) and (full.observed[0, o, 0][hole] == 0).all()


def test_windows_stride_step_and_errors(tmp_path):
    seq = _long_sequence(tmp_path, num_frames=8)
    b = build_sequences(seq, num_frames=2, num_observed=1, frame_step=2, stride=3, frame_size=4)
    assert b.meta["frames"] == [[1, 3], [4, 6]] and b.batch_size == 2
    with pytest.raises(ValueError, match=r"num_observed must satisfy 0 < num_observed < num_frames = 4"):
        build_sequences(seq, num_frames=4, num_observed=4)
    with pytest.raises(ValueError, match=r"content must be one of"):
        build_sequences(seq, num_frames=4, num_observed=2, content="color")
    with pytest.raises(ValueError, match=r"no window of 9 frames"):
        build_sequences(seq, num_frames=9, num_observed=2)
    with pytest.raises(ValueError, match=r"no window .* class 1 track"):
        build_sequences(seq, num_frames=4, num_observed=2, class_id=1)


def test_annotation_from_mask_roundtrip():
    m = _rect(3, 4, 9, 7)
    a = MotsAnnotation.from_mask(5, 2007, m)
    assert (a.class_id, a.area(), a.where) == (2, 18, "frame 5 track 2007")
    assert np.array_equal(a.decode(), m) and math.isclose(a.bbox()[2], 6)
