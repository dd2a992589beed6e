"""vtest.avi -> MOTS: fetching (offline stubs), the annotation pipeline on a synthetic video with a
known answer, and the real pedestrian video (skipped when it is absent and cannot be fetched)."""

import hashlib
import io
import json
import os
import tarfile

import numpy as np
import pytest
import torch

from dive_pyro.data import SceneBatch
from dive_pyro.data import pedestrians as ped
from dive_pyro.data.mots import build_sequences, open_mots_sequence, read_mots_txt, write_mots_txt

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (pip install '.[video]')")

# ------------------------------------------------------------------------------------------ fetching


def _stub(bin_dir, name, script):
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_fetch_reports_apt_failure_clearly(tmp_path, monkeypatch):
    _stub(tmp_path, "apt-get", 'echo "E: Unable to locate package opencv-doc" >&2\nexit 100\n')
    _stub(tmp_path, "dpkg-deb", "exit 1\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"apt-get download opencv-doc failed \(exit 100\): E: Unable to locate"):
        ped.fetch_vtest(tmp_path / "out" / "vtest.avi")
    assert not (tmp_path / "out" / "vtest.avi").exists()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(RuntimeError, match="apt-get not found"):
        ped.fetch_vtest(tmp_path / "out" / "vtest.avi")


def test_fetch_extracts_member_and_checks_sha(tmp_path, monkeypatch):
    payload = b"not really a video"
    tar_path = tmp_path / "fs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in (("./usr/share/doc/other.txt", b"x"), (ped.VTEST_MEMBER, payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "apt-get", "touch opencv-doc_4.6.0+dfsg-12_all.deb\n")
    _stub(bin_dir, "dpkg-deb", f'cat "{tar_path}"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    dest = tmp_path / "data" / "vtest.avi"
    with pytest.raises(RuntimeError, match="unexpected sha256"):
        ped.fetch_vtest(dest)
    assert not dest.exists() and not dest.with_name("vtest.avi.part").exists()
    monkeypatch.setattr(ped, "VTEST_SHA256", hashlib.sha256(payload).hexdigest())
    assert ped.fetch_vtest(dest) == dest and dest.read_bytes() == payload
    _stub(bin_dir, "apt-get", "exit 1\n")  # present file: no apt call at all
    assert ped.fetch_vtest(dest) == dest


def test_default_path_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DIVE_PYRO_DATA", str(tmp_path))
    assert ped.default_vtest_path() == tmp_path / "vtest.avi"
    monkeypatch.delenv("DIVE_PYRO_DATA")
    assert ped.default_vtest_path().parts[-2:] == ("data", "vtest.avi")


# ---------------------------------------------------------------------- pipeline on a known video


def _synthetic_video(path, frames=24):
    """Dark static background with a texture; a 12x20 bright block moving 2 px/frame to the right,
    hidden in frames 10-11; a 4x4 speck (below min_area) in frame 5. MJPG: lossy but close."""
    rng = np.random.RandomState(0)
    bg = (40 + 10 * rng.rand(64, 96)).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64), False)
    for t in range(frames):
        f = bg.copy()
        if t not in (10, 11):
            f[20:40, 5 + 2 * t : 17 + 2 * t] = 220
        if t == 5:
            f[50:54, 80:84] = 220
        writer.write(f)
    writer.release()
    return path


def test_video_to_mots_recovers_the_moving_block(tmp_path):
    video = _synthetic_video(tmp_path / "syn.avi")
    opts = ped.SubtractionOptions(background_frames=24, min_area=100, close_size=5, min_track_length=5)
    out = ped.video_to_mots(video, tmp_path / "mots", options=opts)
    seq = open_mots_sequence(out)
    assert seq.frames == list(range(1, 25)) and (seq.height, seq.width) == (64, 96)
    assert {a.track_id for a in seq.annotations} == {2001}  # one track across the gap, speck dropped
    assert sorted(a.frame for a in seq.annotations) == [t + 1 for t in range(24) if t not in (10, 11)]
    for a in seq.annotations:
        t = a.frame - 1
        x, y, w, h = a.bbox()
        assert abs(x - (5 + 2 * t)) <= 1 and abs(y - 20) <= 1 and abs(w - 12) <= 2 and abs(h - 20) <= 2
    params = json.loads((out / "params.json").read_text())
    assert params["threshold"] == opts.threshold and params["frames"] == 24


def test_video_to_mots_max_frames_and_errors(tmp_path):
    video = _synthetic_video(tmp_path / "syn.avi")
    opts = ped.SubtractionOptions(background_frames=24, min_area=100, close_size=5, min_track_length=5)
    out = ped.video_to_mots(video, tmp_path / "m", max_frames=8, options=opts)
    assert len(list((out / "images").glob("*.jpg"))) == 8
    assert max(a.frame for a in read_mots_txt(out / "gt.txt")) == 8
    with pytest.raises(FileNotFoundError, match="video not found"):
        ped.video_to_mots(tmp_path / "none.avi", tmp_path / "x")
    with pytest.raises(ValueError, match="blur must be an odd kernel size"):
        ped.SubtractionOptions(blur=4)


def test_load_pedestrian_sequence_reuses_matching_annotations(tmp_path):
    video = _synthetic_video(tmp_path / "syn.avi")
    opts = ped.SubtractionOptions(background_frames=24, min_area=100, close_size=5, min_track_length=5)
    seq = ped.load_pedestrian_sequence(video, options=opts)
    gt = tmp_path / "syn_mots" / "gt.txt"
    assert seq.image_dir == tmp_path / "syn_mots" / "images" and gt.is_file()
    gt.write_text(gt.read_text().splitlines()[0] + "\n")  # same settings: the folder is reused as is
    assert len(ped.load_pedestrian_sequence(video, options=opts).annotations) == 1
    # other settings: annotated again
    again = ped.load_pedestrian_sequence(video, options=opts, max_frames=6)
    assert again.frames == list(range(1, 7)) and len(again.annotations) == 6
    with pytest.raises(FileNotFoundError, match=r"video not found: .*make data/vtest\.avi"):
        ped.load_pedestrian_sequence(tmp_path / "none.avi")


def test_tracker_follows_nearest_and_drops_short_tracks():
    def det(x, y):
        return np.array([x - 5, y - 5, x + 5, y + 5], float), np.array([x, y], float)

    opts = ped.SubtractionOptions(max_distance=10.0, min_iou=0.5, max_gap=1, min_track_length=3)
    detections = [
        [det(10, 10), det(50, 10)],
        [det(58, 10), det(17, 10)],  # both move 7-8 px; listed in the other order
        [],  # a one-frame gap is bridged
        [det(24, 10), det(66, 10), det(90, 90)],  # (90, 90) lives one frame: dropped
        [det(31, 10)],  # the right track is lost
    ]
    tracks = ped._track(detections, opts)
    assert tracks == [[(0, 0), (1, 1), (3, 0), (4, 0)], [(0, 1), (1, 0), (3, 1)]]


# ------------------------------------------------------------------------------- the real video


@pytest.fixture(scope="module")
def vtest_mots(tmp_path_factory):
    path = ped.default_vtest_path()
    if not path.is_file():
        try:
            ped.fetch_vtest(path)
        except RuntimeError as err:
            pytest.skip(f"vtest.avi is absent and cannot be fetched ({err}); run `make data/vtest.avi`")
    out = ped.video_to_mots(path, tmp_path_factory.mktemp("vtest_mots"), max_frames=60)
    return path, out


def test_vtest_tracks_align_with_foreground(vtest_mots):
    video, out = vtest_mots
    txt = (out / "gt.txt").read_text()
    anns = read_mots_txt(out / "gt.txt")
    assert write_mots_txt(out / "again.txt", anns).read_text() == txt  # reader/writer round trip
    seq = open_mots_sequence(out)
    assert seq.frames == list(range(1, 61)) and (seq.height, seq.width) == (576, 768)
    lengths = {}
    for a in anns:
        lengths[a.track_id] = lengths.get(a.track_id, 0) + 1
    assert all(k // 1000 == 2 for k in lengths) and sum(n >= 20 for n in lengths.values()) >= 2
    # every mask marks pixels that differ from the background, the rest of the frame mostly does not
    background = torch.from_numpy(ped.median_background(video).astype(np.float32) / 255)
    for t in (1, 30, 60):
        diff = (seq.frame(t) - background).abs()
        masks = seq.masks(t)
        union = torch.stack(list(masks.values())).any(0)
        for m in masks.values():
            assert diff[m].mean() > 25 / 255
        assert diff[~union].mean() < 5 / 255


def test_vtest_builds_dive_sequences(vtest_mots):
    _, out = vtest_mots
    b = build_sequences(open_mots_sequence(out), num_objects=3, num_frames=20, num_observed=10)
    assert isinstance(b, SceneBatch) and b.observed.shape[1:] == (20, 1, 64, 64) and b.num_objects == 3
    assert 1 <= b.batch_size <= 3 and b.meta["frames"][0] == list(range(1, 21))
    assert torch.allclose(b.complete, b.objects.sum(1).clamp(max=1))  # binary: frame = sum of objects
    present = ~b.missing
    assert present[:, 0].float().mean() > 0.8  # the largest track is seen in most frames
    inside = (b.positions >= -0.5) & (b.positions <= 63.5)
    assert inside[present].all()
