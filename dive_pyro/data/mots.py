"""MOTS-format annotations and DIVE-style training sequences from real video (paper §4.2, Table 2).

MOTS text format (MOTSChallenge, KITTI MOTS, MOTS20 ``gt.txt``), one mask per line::

    time_frame track_id class_id img_height img_width rle

``track_id = class_id * 1000 + instance`` (class 1 car, 2 pedestrian, 10 ignore region with id 10000);
``rle`` is a compressed COCO run-length encoding (column-major), decoded with ``pycocotools``. Masks
of one frame do not overlap. The ``instances`` PNG variant stores ``track_id`` per pixel (0 = none).

* :func:`read_mots_txt` / :func:`write_mots_txt` / :func:`read_mots_instances` - annotations.
* :class:`MotsSequence` - annotations plus the image folder: ``frame(t)``, ``masks(t)``.
* :func:`open_mots_sequence` - finds ``gt.txt`` + ``images/`` (ours), ``gt/gt.txt`` + ``img1/`` (MOTS20)
  or ``instances_txt/<name>.txt`` + ``images/<name>/`` (MOTSChallenge).
* :func:`build_sequences` - windows of ``T`` frames cropped around ``N`` tracks, as a :class:`SceneBatch`.

Every error about a file names the file and, for annotations, the line.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dive_pyro.data.batch import SceneBatch

try:
    import pycocotools.mask as mask_api
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("MOTS support needs pycocotools: pip install 'dive-pyro[video]'") from err

__all__ = [
    "CLASS_NAMES",
    "CONTENTS",
    "MotsAnnotation",
    "MotsSequence",
    "build_sequences",
    "open_mots_sequence",
    "read_mots_instances",
    "read_mots_txt",
    "rle_run_lengths",
    "write_mots_txt",
]

CLASS_NAMES = {1: "car", 2: "pedestrian", 10: "ignore region"}
_FORMAT = "'time_frame track_id class_id img_height img_width rle'"
CONTENTS = ("binary", "foreground", "full")
_INT_FIELDS = ("time_frame", "track_id", "class_id", "img_height", "img_width")


@dataclass(frozen=True)
class MotsAnnotation:
    """One object mask in one frame; ``counts`` is the compressed COCO RLE string."""

    frame: int
    track_id: int
    class_id: int
    height: int
    width: int
    counts: bytes
    source: str = field(default="", compare=False)  # file the annotation came from
    line: int = field(default=0, compare=False)  # 1-based line in ``source`` (0: not a text file)

    @property
    def rle(self) -> dict:
        return {"size": [self.height, self.width], "counts": self.counts}

    @property
    def where(self) -> str:
        """``file:line`` (or the file, or frame and track) for error messages."""
        if self.source:
            return f"{self.source}:{self.line}" if self.line else self.source
        return f"frame {self.frame} track {self.track_id}"

    def area(self) -> int:
        return int(mask_api.area(self.rle))

    def bbox(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` of the mask in pixels (x = column)."""
        return tuple(float(v) for v in mask_api.toBbox(self.rle))

    def decode(self) -> np.ndarray:
        """The ``(height, width)`` bool mask; ``ValueError`` naming the line unless the run lengths cover
        exactly ``height * width`` pixels (checked by re-encoding: pycocotools writes canonical RLEs)."""
        try:
            with warnings.catch_warnings():  # pycocotools 2.0.x vs numpy 2: harmless __array__ warning
                warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
                mask = mask_api.decode(self.rle)
        except ValueError as err:
            raise ValueError(f"{self.where}: invalid COCO RLE ({err})") from err
        if mask_api.encode(mask)["counts"] != self.counts:
            raise ValueError(
                f"{self.where}: the RLE's run lengths do not cover exactly the {self.height}x{self.width} "
                "image (the mask lies partly outside the image or is truncated)"
            )
        return mask.astype(bool)

    @classmethod
    def from_mask(cls, frame: int, track_id: int, mask: np.ndarray) -> MotsAnnotation:
        """Encode a ``(H, W)`` mask with pycocotools; the class is ``track_id // 1000``."""
        rle = mask_api.encode(np.asfortranarray(mask, dtype=np.uint8))
        h, w = mask.shape
        return cls(int(frame), int(track_id), int(track_id) // 1000, h, w, rle["counts"])


def rle_run_lengths(counts: bytes) -> list[int]:
    """Run lengths of a compressed COCO RLE string (the format of pycocotools' ``rleToString``): each
    length is 5-bit groups, least significant first, as characters ``48 + group``; bit 0x20 marks that
    another group follows and bit 0x10 of the last group is the sign; from the third length on, the
    value is added to the length two places back. ``ValueError`` if the string ends inside a length."""
    out: list[int] = []
    value = shift = 0
    for ch in counts:
        group = ch - 48
        value |= (group & 0x1F) << shift
        shift += 5
        if group & 0x20:
            continue
        if group & 0x10:
            value -= 1 << shift
        if len(out) > 2:
            value += out[-2]
        out.append(value)
        value = shift = 0
    if shift:
        raise ValueError("the string ends inside a run length (a torn line?)")
    return out


def _check_rle(ann: MotsAnnotation) -> None:
    """The run lengths must be non-negative and cover the ``height x width`` image exactly."""
    try:
        runs = rle_run_lengths(ann.counts)
    except ValueError as err:
        raise ValueError(f"{ann.where}: invalid COCO RLE {ann.counts.decode()!r}: {err}") from None
    total, pixels = sum(runs), ann.height * ann.width
    if any(r < 0 for r in runs) or total != pixels or any(r == 0 for r in runs[1:]):
        raise ValueError(
            f"{ann.where}: invalid COCO RLE {ann.counts.decode()[:40]!r}: its run lengths cover {total} pixels, "
            f"the {ann.height}x{ann.width} image has {pixels} (a torn or mistyped mask)"
        )


def _check_annotation(ann: MotsAnnotation) -> MotsAnnotation:
    if ann.frame < 0:
        raise ValueError(f"{ann.where}: time_frame must be >= 0, got {ann.frame}")
    if ann.height < 1 or ann.width < 1:
        raise ValueError(f"{ann.where}: img_height and img_width must be >= 1, got {ann.height} {ann.width}")
    if ann.class_id not in CLASS_NAMES:
        known = ", ".join(f"{k} {v}" for k, v in CLASS_NAMES.items())
        raise ValueError(f"{ann.where}: unknown class_id {ann.class_id} (known: {known})")
    if ann.track_id // 1000 != ann.class_id:
        raise ValueError(
            f"{ann.where}: track_id {ann.track_id} must be class_id * 1000 + instance with class_id {ann.class_id}"
        )
    try:
        x, y, w, h = ann.bbox()
    except ValueError as err:
        raise ValueError(f"{ann.where}: invalid COCO RLE ({err})") from err
    if x + w > ann.width or y + h > ann.height:
        raise ValueError(
            f"{ann.where}: mask box x={x:g} y={y:g} w={w:g} h={h:g} lies outside the {ann.height}x{ann.width} image"
        )
    _check_rle(ann)
    return ann


def _parse_line(text: str, source: str, line: int) -> MotsAnnotation:
    parts = text.split()
    if len(parts) != 6:
        raise ValueError(f"{source}:{line}: expected 6 fields {_FORMAT}, got {len(parts)}: {text.strip()!r}")
    values = []
    for name, part in zip(_INT_FIELDS, parts[:5], strict=True):
        try:
            values.append(int(part))
        except ValueError:
            raise ValueError(f"{source}:{line}: {name} must be an integer, got {part!r}") from None
    if not all("0" <= ch <= "o" for ch in parts[5]):
        raise ValueError(f"{source}:{line}: invalid COCO RLE: characters outside '0'..'o' in {parts[5]!r}")
    counts = parts[5].encode("ascii")
    return _check_annotation(MotsAnnotation(*values, counts, source=source, line=line))


def _check_unique(annotations: list[MotsAnnotation]) -> None:
    seen: dict[tuple[int, int], MotsAnnotation] = {}
    for a in annotations:
        other = seen.setdefault((a.frame, a.track_id), a)
        if other is not a:
            raise ValueError(f"{a.where}: track_id {a.track_id} already has a mask in frame {a.frame} ({other.where})")


def read_mots_txt(path: str | os.PathLike) -> list[MotsAnnotation]:
    """Read a MOTS ``.txt`` file (blank lines allowed) into annotations, checking every line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MOTS annotation file not found: {path}")
    with path.open(encoding="utf-8-sig", errors="replace") as fh:  # a BOM is dropped; \r\n is whitespace
        out = [_parse_line(t, str(path), i) for i, t in enumerate(fh, start=1) if t.strip()]
    _check_unique(out)
    return out


def write_mots_txt(path: str | os.PathLike, annotations: list[MotsAnnotation]) -> Path:
    """Write annotations as a MOTS ``.txt`` file, sorted by frame then track id."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(annotations, key=lambda a: (a.frame, a.track_id))
    path.write_text(
        "".join(f"{a.frame} {a.track_id} {a.class_id} {a.height} {a.width} {a.counts.decode()}\n" for a in rows)
    )
    return path


def read_mots_instances(folder: str | os.PathLike) -> list[MotsAnnotation]:
    """Read the ``instances`` PNG variant: one ``<frame>.png`` per frame, pixel = track id (0 = none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MOTS instances folder not found: {folder}")
    out = []
    for png in sorted(folder.glob("*.png")):
        if not png.stem.isdigit():
            raise ValueError(f"{png}: instance PNG names must be frame numbers such as 000001.png")
        ids = np.asarray(Image.open(png))
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"{png}: expected a single-channel integer PNG, got {ids.dtype} {ids.shape}")
        for tid in np.unique(ids[ids != 0]).tolist():
            ann = MotsAnnotation.from_mask(int(png.stem), tid, ids == tid)
            out.append(_check_annotation(MotsAnnotation(*_fields(ann), source=str(png))))
    return out


def _fields(a: MotsAnnotation) -> tuple:
    return a.frame, a.track_id, a.class_id, a.height, a.width, a.counts


class MotsSequence:
    """A MOTS sequence: annotations plus ``image_dir / image_pattern.format(frame=t)`` images.

    ``frames`` defaults to every frame number from the first to the last annotated one; all of their
    images must exist and have the annotations' size (checked from the image headers on construction).
    """

    def __init__(
        self,
        annotations: list[MotsAnnotation],
        image_dir: str | os.PathLike,
        *,
        image_pattern: str = "{frame:06d}.jpg",
        frames: list[int] | None = None,
        name: str | None = None,
        cache_size: int = 64,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.image_pattern = image_pattern
        self.annotations = sorted(annotations, key=lambda a: a.frame)  # stable: file order per frame
        self.name = name or self.image_dir.name
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir}")
        if frames is None:
            if not self.annotations:
                raise ValueError("annotations is empty: pass frames=[...] for a sequence without annotations")
            frames = list(range(self.annotations[0].frame, self.annotations[-1].frame + 1))
        self.frames = [int(f) for f in frames]
        self._by_frame: dict[int, list[MotsAnnotation]] = {f: [] for f in self.frames}
        for a in self.annotations:
            if a.frame not in self._by_frame:
                raise ValueError(f"{a.where}: frame {a.frame} is not among the sequence's frames")
            self._by_frame[a.frame].append(a)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self.height, self.width = self._check_images()

    def __repr__(self) -> str:
        return (
            f"MotsSequence({self.name!r}, frames {self.frames[0]}..{self.frames[-1]}, "
            f"{len(self.annotations)} masks, {self.height}x{self.width})"
        )

    def image_path(self, t: int) -> Path:
        return self.image_dir / self.image_pattern.format(frame=t)

    def _check_images(self) -> tuple[int, int]:
        size = None
        for t in self.frames:
            anns = self._by_frame[t]
            where = anns[0].where if anns else f"frame {t}"
            path = self.image_path(t)
            if not path.is_file():
                raise FileNotFoundError(f"{where}: image for frame {t} not found: {path}")
            w, h = _open_image(path, lambda im: im.size)
            size = size or (h, w)
            if (h, w) != size:
                raise ValueError(f"{path}: image is {h}x{w} but earlier frames are {size[0]}x{size[1]}")
            for a in anns:
                if (a.height, a.width) != (h, w):
                    raise ValueError(
                        f"{a.where}: mask is {a.height}x{a.width} (img_height x img_width) but image "
                        f"{path} is {h}x{w}: the mask lies outside the image"
                    )
        if size is None:
            raise ValueError("frames is empty: a MotsSequence needs at least one frame")
        return size

    def annotations_at(self, t: int, class_id: int | None = None) -> list[MotsAnnotation]:
        if t not in self._by_frame:
            raise KeyError(f"frame {t} is not in sequence {self.name!r} (frames {self.frames[0]}..{self.frames[-1]})")
        return [a for a in self._by_frame[t] if class_id is None or a.class_id == class_id]

    def frame(self, t: int) -> torch.Tensor:
        """Frame ``t`` (a frame number as in the annotations) as a ``(H, W)`` grayscale float in [0, 1]."""
        if t not in self._by_frame:
            raise KeyError(f"frame {t} is not in sequence {self.name!r} (frames {self.frames[0]}..{self.frames[-1]})")
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        gray = _open_image(
            self.image_path(t), lambda im: torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
        )
        self._cache[t] = gray
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return gray

    def masks(self, t: int, class_id: int | None = None) -> dict[int, torch.Tensor]:
        """``{track_id: (H, W) bool mask}`` of frame ``t``; ``ValueError`` if two masks overlap."""
        out = {a.track_id: torch.from_numpy(a.decode()) for a in self.annotations_at(t, class_id)}
        if len(out) > 1 and (torch.stack(list(out.values())).sum(0) > 1).any():
            lines = ", ".join(a.where for a in self.annotations_at(t, class_id))
            raise ValueError(f"masks of frame {t} overlap ({lines}); MOTS masks must be disjoint")
        return out

    def between(self, first: int, last: int) -> MotsSequence:
        """The sub-sequence of frames ``first..last`` (inclusive), e.g. for a train/test split in time."""
        frames = [f for f in self.frames if first <= f <= last]
        anns = [a for a in self.annotations if first <= a.frame <= last]
        return MotsSequence(anns, self.image_dir, image_pattern=self.image_pattern, frames=frames, name=self.name)


def _open_image(path: Path, read):
    """``read(image)`` of the image at ``path``; a damaged or truncated file is a ``ValueError`` naming it."""
    try:
        with Image.open(path) as im:
            return read(im)
    except (OSError, SyntaxError, ValueError) as err:  # PIL: truncated data, unknown format
        raise ValueError(f"{path}: cannot read image ({err}); the file is damaged or truncated") from err


def open_mots_sequence(
    root: str | os.PathLike, name: str | None = None, *, image_pattern: str = "{frame:06d}.jpg"
) -> MotsSequence:
    """Open a sequence from ``root``: ``gt.txt`` + ``images/`` (written by ``video_to_mots``),
    ``gt/gt.txt`` + ``img1/`` (MOTS20), or, with ``name``, ``instances_txt/<name>.txt`` +
    ``images/<name>/`` (MOTSChallenge, KITTI MOTS: pass ``image_pattern="{frame:06d}.png"``)."""
    root = Path(root)
    layouts = [(root / "gt.txt", root / "images"), (root / "gt" / "gt.txt", root / "img1")]
    if name is not None:
        layouts.insert(0, (root / "instances_txt" / f"{name}.txt", root / "images" / name))
    for txt, images in layouts:
        if txt.is_file():
            return MotsSequence(read_mots_txt(txt), images, image_pattern=image_pattern, name=name or root.name)
    tried = ", ".join(str(t) for t, _ in layouts)
    raise FileNotFoundError(f"no MOTS annotations under {root} (tried {tried})")


# ---------------------------------------------------------------------------------------------
# training sequences
# ---------------------------------------------------------------------------------------------


def _crop(image: torch.Tensor, left: int, top: int, side: int) -> torch.Tensor:
    """``(side, side)`` window of ``image`` at (left, top), zero outside the image."""
    H, W = image.shape
    out = image.new_zeros(side, side)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, W), min(top + side, H)
    if x1 > x0 and y1 > y0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area (box-average) resize of ``(..., S, S)`` to ``(..., size, size)``."""
    lead = x.shape[:-2]
    y = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=(size, size), mode="area")
    return y.reshape(*lead, size, size)


def _fill_positions(pos: np.ndarray, known: np.ndarray, default: float) -> np.ndarray:
    """Linear interpolation in time of (T, 2) positions from the ``known`` steps, held at the ends."""
    if not known.any():
        return np.full_like(pos, default)
    t = np.arange(len(pos))
    return np.stack([np.interp(t, t[known], pos[known, d]) for d in range(2)], axis=1)


def build_sequences(
    seq: MotsSequence,
    *,
    num_objects: int = 3,
    num_frames: int = 20,
    num_observed: int = 10,
    frame_size: int = 64,
    stride: int | None = None,
    frame_step: int = 1,
    class_id: int = 2,
    min_track_frames: int | None = None,
    padding: float = 0.1,
    occlusion_threshold: float = 0.5,
    content: str = "binary",
    missing_steps: int = 0,
    camera_occlusion: bool = False,
    seed: int = 0,
) -> SceneBatch:
    """Cut ``seq`` into DIVE training videos (paper §4.2) with ground truth.

    Windows: frames ``seq.frames[s : s + frame_step * (T - 1) + 1 : frame_step]``, ``s`` every
    ``stride`` frames (default ``frame_step * T``: no overlap). A track of ``class_id`` is a candidate
    when it is present (non-empty mask) in at least ``min_track_frames`` frames of the window
    (default ``ceil(T / 2)``); windows without candidates are skipped. The ``N = num_objects`` candidates
    with the largest total mask area fill the slots (largest first; unused slots are missing throughout).
    Crop: a square around the union of their boxes over the window, side ``(1 + 2 padding)`` times the
    longer box side, zero outside the image, area-resized to ``frame_size``.

    * ``content`` - what the frames show: ``"binary"`` (the paper's binarised pedestrians: object ``i``
      is its mask, area-resized, so edges are anti-aliased), ``"foreground"`` (grayscale crop x mask)
      or ``"full"`` (the whole grayscale crop, background and unchosen people included). With
      ``"binary"`` and ``"foreground"`` the frame is the sum of the objects, as DIVE's model assumes.
    * ``objects[b, i, t]`` = track ``i`` alone (zero where absent); ``complete`` = the frame with every
      chosen track. A real video shows nothing behind occluders, so ``complete`` equals ``observed``
      except at the synthetic removals below.
    * ``missing_steps = n > 0``: every chosen track is removed from ``observed`` for ``n`` consecutive
      input steps ``o+2 .. o+n+1``, ``o ~ U{0..K-n-4}`` (DIVE's Moving-MNIST rule).
      ``camera_occlusion``: one input frame ``u ~ U{1..K-1}`` is blanked, every track removed (DIVE's
      MOTS corruption, without its off-by-one that can hit frame K). Draws come from a CPU
      ``torch.Generator(seed)``: starts ``(B, N)``, then frames ``(B,)``. Removed tracks stay in
      ``complete`` (ground-truth imputation targets); with ``"full"`` the removed pixels are zero and
      not ``visible``, otherwise they are visible background (zero).
    * ``missing[b, i, t]`` = absent, removed, or visible area < ``occlusion_threshold`` x the track's
      median area over the window (occluded).
    * ``positions`` = mask centroids in crop pixels (pixel-centre convention); at missing steps they are
      interpolated linearly in time from the other steps (frame centre for an unused slot).
    """
    T, K, N = num_frames, num_observed, num_objects
    for name, value, low in (("num_objects", N, 1), ("num_frames", T, 2), ("frame_size", frame_size, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 < K < T:
        raise ValueError(f"num_observed must satisfy 0 < num_observed < num_frames = {T}, got {K}")
    if frame_step < 1 or (stride is not None and stride < 1):
        raise ValueError(f"frame_step and stride must be >= 1, got {frame_step} and {stride}")
    if not 0 <= occlusion_threshold <= 1:
        raise ValueError(f"occlusion_threshold must be in [0, 1], got {occlusion_threshold}")
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if missing_steps < 0 or (missing_steps and K < missing_steps + 4):
        raise ValueError(f"missing_steps must satisfy 0 <= n <= num_observed - 4 = {K - 4}, got {missing_steps}")
    min_track_frames = math.ceil(T / 2) if min_track_frames is None else min_track_frames
    if not 1 <= min_track_frames <= T:
        raise ValueError(f"min_track_frames must be in [1, num_frames = {T}], got {min_track_frames}")
    stride = frame_step * T if stride is None else stride
    span = frame_step * (T - 1) + 1
    gen = torch.Generator().manual_seed(seed)

    videos, meta_frames, meta_tracks, meta_boxes = [], [], [], []
    for s in range(0, len(seq.frames) - span + 1, stride):
        window = seq.frames[s : s + span : frame_step]
        anns: dict[int, list[MotsAnnotation | None]] = {}
        for j, t in enumerate(window):
            for a in seq.annotations_at(t, class_id):
                if a.area() > 0:
                    anns.setdefault(a.track_id, [None] * T)[j] = a
        counts = {k: sum(a is not None for a in v) for k, v in anns.items()}
        candidates = [k for k, c in counts.items() if c >= min_track_frames]
        if not candidates:
            continue
        total = {k: sum(a.area() for a in anns[k] if a is not None) for k in candidates}
        chosen = sorted(candidates, key=lambda k: (-total[k], k))[:N]
        videos.append(_window(seq, window, [anns[k] for k in chosen], N, frame_size, padding, occlusion_threshold))
        meta_frames.append(list(window))
        meta_tracks.append(chosen + [-1] * (N - len(chosen)))
        meta_boxes.append(videos[-1].pop("box"))
    if not videos:
        raise ValueError(
            f"sequence {seq.name!r} has no window of {T} frames (frame_step {frame_step}) with a class "
            f"{class_id} track present in >= {min_track_frames} frames"
        )
    crops = torch.stack([v["crops"] for v in videos])[:, :, None]  # (B, T, 1, S, S)
    masks = torch.stack([v["masks"] for v in videos])[:, :, :, None]  # (B, N, T, 1, S, S)
    present = torch.stack([v["present"] for v in videos])
    missing = torch.stack([v["missing"] for v in videos])
    positions = torch.stack([v["positions"] for v in videos])
    B = len(videos)
    holds_track = present.any(-1, keepdim=True)  # (B, N, 1): slot holds a track
    removed = torch.zeros_like(missing)
    if missing_steps:
        starts = torch.randint(0, K - missing_steps - 3, (B, N), generator=gen)[..., None] + 2
        steps = torch.arange(T)
        removed |= (steps >= starts) & (steps < starts + missing_steps) & holds_track
    blank = torch.zeros(B, T, dtype=torch.bool)
    if camera_occlusion:
        blank[torch.arange(B), torch.randint(1, K, (B,), generator=gen)] = True
        removed |= blank[:, None] & holds_track
    if content == "binary":
        objects = masks
    else:
        objects = crops[:, None] * masks
    complete = objects.sum(1).clamp(max=1.0)
    observed = (objects * ~removed[..., None, None, None]).sum(1).clamp(max=1.0)
    visible = torch.ones_like(complete, dtype=torch.bool)
    if content == "full":
        hole = ((masks > 0) & removed[..., None, None, None]).any(1) | blank[..., None, None, None]
        complete, observed, visible = crops, crops.masked_fill(hole, 0.0), ~hole
    meta = {
        "source": "mots",
        "sequence": seq.name,
        "class_id": class_id,
        "frames": meta_frames,
        "track_ids": meta_tracks,
        "crop_boxes": meta_boxes,
        "content": content,
        "occlusion_threshold": occlusion_threshold,
        "missing_steps": missing_steps,
        "camera_occlusion": camera_occlusion,
        "seed": seed,
        "complete_is_observed": "complete == observed except at synthetic removals (missing_steps)",
    }
    return SceneBatch(
        observed=observed.clamp(0, 1),
        visible=visible,
        complete=complete.clamp(0, 1),
        missing=missing | removed,
        positions=positions,
        objects=objects.clamp(0, 1),
        num_observed=K,
        scenario="mots",
        meta=meta,
    )


def _window(
    seq: MotsSequence,
    window: list[int],
    tracks: list[list[MotsAnnotation | None]],
    N: int,
    size: int,
    padding: float,
    occlusion_threshold: float,
) -> dict:
    """Crop, masks, labels and positions of one window (see :func:`build_sequences`)."""
    T = len(window)
    boxes = [a.bbox() for tr in tracks for a in tr if a is not None]
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    side = max(1, math.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * padding)))
    left = math.floor((x0 + x1) / 2 - side / 2 + 0.5)
    top = math.floor((y0 + y1) / 2 - side / 2 + 0.5)
    scale = size / side

    crops = torch.stack([_resize(_crop(seq.frame(t), left, top, side), size) for t in window])
    masks = torch.zeros(N, T, size, size)
    area = np.zeros((N, T))
    centroid = np.zeros((N, T, 2))
    for i, track in enumerate(tracks):
        for j, a in enumerate(track):
            if a is None:
                continue
            m = torch.from_numpy(a.decode())
            ys, xs = torch.nonzero(m, as_tuple=True)
            area[i, j] = len(xs)
            centroid[i, j] = (
                (xs.double().mean() - left + 0.5).item(),
                (ys.double().mean() - top + 0.5).item(),
            )
            masks[i, j] = _resize(_crop(m.float(), left, top, side), size)
    present = area > 0
    missing = ~present
    positions = np.full((N, T, 2), (size - 1) / 2)
    for i in range(N):
        if present[i].any():
            occluded = present[i] & (area[i] < occlusion_threshold * np.median(area[i, present[i]]))
            missing[i] |= occluded
            known = present[i] & ~occluded if (present[i] & ~occluded).any() else present[i]
            positions[i] = _fill_positions(centroid[i] * scale - 0.5, known, (size - 1) / 2)
    return {
        "crops": crops,
        "masks": masks,
        "present": torch.from_numpy(present),
        "missing": torch.from_numpy(missing),
        "positions": torch.from_numpy(positions).float(),
        "box": (left, top, side),
    }
