"""A real pedestrian video, offline: OpenCV's ``vtest.avi`` turned into MOTS-format annotations.

The Debian package ``opencv-doc`` ships ``vtest.avi`` (795 frames, 768x576, 10 fps, a fixed camera
over a campus path with people walking). :func:`fetch_vtest` extracts it without installing anything
(``apt-get download`` + ``dpkg-deb --fsys-tarfile``). :func:`video_to_mots` annotates it with a
deterministic, documented pipeline (every parameter is a field of :class:`SubtractionOptions`):

1. background = per-pixel median of ``background_frames`` frames evenly spaced over the whole video;
2. foreground = ``|blur(frame) - blur(background)| > threshold`` (Gaussian blur ``blur`` px), then a
   morphological opening (``open_size``, removes specks) and closing (``close_size``, fills holes);
3. objects = 8-connected components of at least ``min_area`` pixels (disjoint by construction);
4. tracks = greedy frame-to-frame matching: a component may continue a track last seen at most
   ``max_gap`` frames earlier if their boxes overlap (IoU >= ``min_iou``) or their centroids are within
   ``max_distance`` px; pairs are taken best first (IoU, then distance, then track id, then component
   order); unmatched components start new tracks; tracks shorter than ``min_track_length`` frames
   are dropped; survivors are numbered 2001, 2002, ... (class 2, pedestrian) by first appearance.

The output (``gt.txt`` + ``images/000001.jpg ...`` grayscale + ``params.json``) is a MOTS sequence that
:func:`dive_pyro.data.mots.open_mots_sequence` reads. Blobs are foreground, not people: two people
walking together form one track, and a person may be split by a thin occluder (the lamp post).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dive_pyro.data.mnist import file_sha256
from dive_pyro.data.mots import MotsAnnotation, MotsSequence, open_mots_sequence, write_mots_txt

__all__ = [
    "VTEST_SHA256",
    "SubtractionOptions",
    "default_vtest_path",
    "fetch_vtest",
    "load_pedestrian_sequence",
    "median_background",
    "video_to_mots",
]

VTEST_PACKAGE = "opencv-doc"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"  # opencv-doc 4.6.0
PEDESTRIAN = 2


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("decoding video needs opencv-python-headless: pip install 'dive-pyro[video]'") from err
    return cv2


def default_vtest_path() -> Path:
    """``$DIVE_PYRO_DATA/vtest.avi`` if that variable is set, else ``data/vtest.avi`` in the repository."""
    if os.environ.get("DIVE_PYRO_DATA"):
        return Path(os.environ["DIVE_PYRO_DATA"]) / "vtest.avi"
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").is_file() else Path.cwd()) / "data" / "vtest.avi"


def _extract_member(deb: Path, member: str, out: Path) -> None:
    """Stream ``dpkg-deb --fsys-tarfile deb`` through :mod:`tarfile` and write ``member`` to ``out``."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                if info.name == member:
                    with tar.extractfile(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found = True
                    break
    except tarfile.TarError as err:
        found = False
        reason = f"not a tar stream ({err})"
    else:
        reason = f"no member {member}"
    finally:
        proc.stdout.close()  # dpkg-deb stops on the closed pipe once the member is out
        stderr = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        proc.wait()
    if not found:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb.name}: {reason} {stderr}".strip())


def fetch_vtest(dest: str | os.PathLike | None = None) -> Path:
    """Extract ``vtest.avi`` from the Debian package ``opencv-doc`` to ``dest`` (default
    :func:`default_vtest_path`) and check its sha256; returns at once if ``dest`` already holds it.

    Runs ``apt-get download opencv-doc`` in a temporary folder (no install, no root needed when the
    package lists are present) and streams ``dpkg-deb --fsys-tarfile`` through :mod:`tarfile`.
    Raises ``RuntimeError`` with apt's message when no Debian registry is reachable.
    """
    dest = Path(dest) if dest is not None else default_vtest_path()
    if dest.is_file():
        if file_sha256(dest) != VTEST_SHA256:
            raise RuntimeError(f"{dest} exists but is not opencv-doc's vtest.avi (sha256 differs); remove it")
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"cannot fetch vtest.avi: {tool} not found (a Debian/Ubuntu system is needed)")
    with tempfile.TemporaryDirectory() as tmp:
        try:  # fail fast (30 s per connection) when no registry answers
            run = subprocess.run(
                ["apt-get", "-o", "Acquire::http::Timeout=30", "download", VTEST_PACKAGE],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
                timeout=900,
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"apt-get download {VTEST_PACKAGE} timed out after {err.timeout:.0f} s") from err
        debs = sorted(Path(tmp).glob(f"{VTEST_PACKAGE}_*.deb"))
        if run.returncode != 0 or not debs:
            msg = (run.stderr or run.stdout).strip().splitlines()[-3:]
            raise RuntimeError(
                f"apt-get download {VTEST_PACKAGE} failed (exit {run.returncode}): {' | '.join(msg)}. "
                "No Debian registry reachable or package lists missing (try `apt-get update`), or "
                f"place vtest.avi at {dest} yourself."
            )
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        _extract_member(debs[0], VTEST_MEMBER, part)
    if file_sha256(part) != VTEST_SHA256:
        part.unlink()
        raise RuntimeError(f"vtest.avi from {VTEST_PACKAGE} has an unexpected sha256 (expected {VTEST_SHA256})")
    part.replace(dest)
    return dest


@dataclass(frozen=True)
class SubtractionOptions:
    """Parameters of :func:`video_to_mots` (defaults tuned by eye on ``vtest.avi``)."""

    background_frames: int = 80  # frames, evenly spaced over the whole video, in the median background
    blur: int = 5  # Gaussian blur kernel (odd, px) applied to frame and background before differencing
    threshold: int = 25  # grey levels (0-255) of |frame - background| that count as foreground
    open_size: int = 3  # elliptical opening kernel (px): removes isolated foreground specks
    close_size: int = 11  # elliptical closing kernel (px): fills holes, joins limbs to the body
    min_area: int = 250  # smallest connected component kept (px)
    min_iou: float = 0.2  # box IoU that lets a component continue a track
    max_distance: float = 40.0  # centroid distance (px) that lets a component continue a track
    max_gap: int = 5  # frames a track may go unmatched and still continue
    min_track_length: int = 10  # frames a track must span (with masks) to be kept
    jpeg_quality: int = 95  # quality of the written images/000001.jpg ...

    def __post_init__(self) -> None:
        for name in ("background_frames", "min_area", "min_track_length", "open_size", "close_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.blur < 1 or self.blur % 2 == 0:
            raise ValueError(f"blur must be an odd kernel size >= 1, got {self.blur}")
        if not 0 <= self.threshold < 255:
            raise ValueError(f"threshold must be in [0, 255), got {self.threshold}")
        if self.max_gap < 0 or self.max_distance < 0 or not 0 <= self.min_iou <= 1:
            raise ValueError("max_gap and max_distance must be >= 0 and min_iou in [0, 1]")


def _frames(video_path: Path, keep=None):
    """Yield ``(index, grayscale uint8 frame)`` in order; with ``keep`` (a set of indices) the other
    frames are only grabbed, not converted, and yield ``(index, None)``."""
    cv2 = _cv2()
    if not video_path.is_file():
        raise FileNotFoundError(f"video not found: {video_path}")
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise ValueError(f"{video_path}: OpenCV cannot decode this video")
    try:
        index = 0
        while cap.grab():
            if keep is None or index in keep:
                frame = cap.retrieve()[1]
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            else:
                yield index, None
            index += 1
    finally:
        cap.release()


def median_background(video_path: str | os.PathLike, num_frames: int = 80) -> np.ndarray:
    """Per-pixel median (uint8) of ``num_frames`` frames evenly spaced over the whole video."""
    video_path = Path(video_path)
    total = sum(1 for _ in _frames(video_path, keep=set()))
    if total == 0:
        raise ValueError(f"{video_path}: the video has no frames")
    keep = set(np.linspace(0, total - 1, min(num_frames, total)).round().astype(int).tolist())
    stack = np.stack([f for _, f in _frames(video_path, keep) if f is not None])
    return np.median(stack, axis=0).round().astype(np.uint8)


def _components(frame: np.ndarray, background: np.ndarray, opts: SubtractionOptions) -> list[np.ndarray]:
    """Foreground components of one frame as bool masks, in OpenCV label (raster) order."""
    cv2 = _cv2()
    k = (opts.blur, opts.blur)
    diff = cv2.absdiff(cv2.GaussianBlur(frame, k, 0), cv2.GaussianBlur(background, k, 0))
    fg = (diff > opts.threshold).astype(np.uint8)
    ellipse = cv2.MORPH_ELLIPSE
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(ellipse, (opts.open_size,) * 2))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(ellipse, (opts.close_size,) * 2))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= opts.min_area]


def _box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float), np.array([xs.mean(), ys.mean()])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _track(detections: list[list[tuple]], opts: SubtractionOptions) -> list[list[tuple[int, int]]]:
    """Greedy tracking of ``detections[t] = [(box, centroid), ...]``; returns tracks as lists of
    ``(t, component index)``."""
    tracks: list[list[tuple[int, int]]] = []
    last: list[tuple[int, np.ndarray, np.ndarray]] = []  # per track: (t, box, centroid)
    for t, dets in enumerate(detections):
        pairs = []
        for k, (t_last, box, cen) in enumerate(last):
            if t - t_last > opts.max_gap + 1:
                continue
            for c, (dbox, dcen) in enumerate(dets):
                iou, dist = _iou(box, dbox), float(np.hypot(*(cen - dcen)))
                if iou >= opts.min_iou or dist <= opts.max_distance:
                    pairs.append((-iou, dist, k, c))
        used_tracks, used_dets = set(), set()
        for _, _, k, c in sorted(pairs):
            if k in used_tracks or c in used_dets:
                continue
            used_tracks.add(k)
            used_dets.add(c)
            tracks[k].append((t, c))
            last[k] = (t, *dets[c])
        for c, det in enumerate(dets):
            if c not in used_dets:
                tracks.append([(t, c)])
                last.append((t, *det))
    return [tr for tr in tracks if tr[-1][0] - tr[0][0] + 1 >= opts.min_track_length]


def video_to_mots(
    video_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_frames: int | None = None,
    options: SubtractionOptions | None = None,
) -> Path:
    """Annotate a fixed-camera video as a MOTS sequence in ``out_dir`` (see the module docstring):
    ``gt.txt``, ``images/000001.jpg ...`` (grayscale; frame numbers start at 1 as in MOTSChallenge)
    and ``params.json``. Only the first ``max_frames`` frames are annotated, but the background uses
    the whole video. Returns ``out_dir``."""
    cv2 = _cv2()
    opts = options or SubtractionOptions()
    video_path, out_dir = Path(video_path), Path(out_dir)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    background = median_background(video_path, opts.background_frames)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    masks, detections = [], []
    for t, frame in _frames(video_path):
        if max_frames is not None and t >= max_frames:
            break
        cv2.imwrite(str(images / f"{t + 1:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, opts.jpeg_quality])
        comps = _components(frame, background, opts)
        masks.append(comps)
        detections.append([_box(m) for m in comps])
    tracks = _track(detections, opts)
    if len(tracks) > 999:
        raise ValueError(f"{len(tracks)} tracks exceed MOTS's 999 instances per class; raise min_track_length")
    annotations = [
        MotsAnnotation.from_mask(t + 1, PEDESTRIAN * 1000 + n, masks[t][c])
        for n, track in enumerate(tracks, start=1)
        for t, c in track
    ]
    write_mots_txt(out_dir / "gt.txt", annotations)
    params = {"video": video_path.name, "frames": len(masks), "max_frames": max_frames, **asdict(opts)}
    (out_dir / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    return out_dir


def load_pedestrian_sequence(
    video_path: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    max_frames: int | None = None,
    options: SubtractionOptions | None = None,
) -> MotsSequence:
    """The ``pedestrians`` data set: annotate ``video_path`` (default :func:`default_vtest_path`, which
    must exist: run ``make data/vtest.avi``) into ``out_dir`` (default ``<video>_mots`` beside it)
    unless ``params.json`` there shows the same settings, then open it."""
    video_path = Path(video_path) if video_path is not None else default_vtest_path()
    if not video_path.is_file():
        raise FileNotFoundError(f"video not found: {video_path} (run `make data/vtest.avi` to fetch vtest.avi)")
    out_dir = Path(out_dir) if out_dir is not None else video_path.with_name(video_path.stem + "_mots")
    opts = options or SubtractionOptions()
    params = out_dir / "params.json"
    wanted = {"video": video_path.name, "max_frames": max_frames, **asdict(opts)}
    current = json.loads(params.read_text()) if params.is_file() else {}
    if any(current.get(k) != v for k, v in wanted.items()):
        video_to_mots(video_path, out_dir, max_frames=max_frames, options=opts)
    return open_mots_sequence(out_dir)
