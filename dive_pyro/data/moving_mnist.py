"""Batched, seeded Moving-MNIST generator for DIVE's missing-data scenarios (paper §4.2).

Four scenarios (see ``SCENARIOS``), each configured by a frozen options dataclass:

* ``complete`` (:class:`CompleteOptions`): nothing missing.
* ``occlusion``, Sc. 1 (:class:`OcclusionOptions`): the top ``occluded_rows`` rows are unobserved in
  every frame; only the rows below are scored.
* ``out_of_scene``, Sc. 2 (:class:`OutOfSceneOptions`): every object is removed for two consecutive
  input frames.
* ``elastic``, Sc. 3 (:class:`ElasticOptions`): every object is elastically deformed (strength decaying
  over the sequence) and removed for one input frame.

Dynamics (official DIVE/DDPAE generator, re-implemented vectorised): 28x28 digits in a square frame;
positions live in canvas units ``[0, 1]^2`` (canvas = ``frame_size - 28`` px); the start is
``U[0, 1)^2``, the direction ``theta ~ U[0, 2 pi)``, the velocity ``step_length * (cos, sin)`` per frame;
the step is taken *before* each frame is recorded; each axis bounces on its own (``<= 0`` -> 0 and
flip, ``>= 1`` -> 1 and flip); the patch's top-left pixel is ``trunc(canvas * position)`` (x = column,
y = row). Layers are composited by pixel-wise maximum, as in DIVE.

Randomness: every random number comes from one CPU ``torch.Generator(seed)``, drawn in this order:
digit indices ``(B, N)``, start positions ``(B, N, 2)``, directions ``(B, N)``, removal starts
``(B, N)`` (only if ``num_missing > 0``), elastic fields ``(B, N, 2, 28, 28)`` (Sc. 3 only). The
batch is therefore the same on every run and device (bit-identical except Sc. 3's bilinear warp,
which is equal up to float32 rounding across devices).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.elastic import alpha_schedule, smooth_fields, warp_patches
from dive_pyro.data.mnist import SPLITS, load_digits

__all__ = [
    "DIGIT_SIZE",
    "MISSING_DATA_SCENARIOS",
    "SCENARIOS",
    "CompleteOptions",
    "ElasticOptions",
    "OcclusionOptions",
    "OutOfSceneOptions",
    "SceneLayout",
    "bounce_trajectory",
    "draw_layout",
    "generate",
    "generator_keys",
    "render_layout",
]

DIGIT_SIZE = 28
SCENARIOS = ("complete", "occlusion", "out_of_scene", "elastic")
#: the scenarios in which objects go missing (paper §4.2 Scenarios 1-3, Table 1)
MISSING_DATA_SCENARIOS = SCENARIOS[1:]


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class CompleteOptions:
    """``complete``: no options."""


@dataclass(frozen=True)
class OcclusionOptions:
    """Sc. 1, partial occlusion.

    occluded_rows: top rows unobserved in all frames; ``None`` -> ``frame_size // 2`` (32 of 64, paper).
    num_missing: extra removed input steps per object. 0 = paper. The official README recipe leaves
        its default ``num_missing=1`` on, i.e. one removed step per digit in {2..7}: reproduce it with
        ``num_missing=1, start_range="official"``.
    start_range: first removed step, see :class:`OutOfSceneOptions`.
    """

    occluded_rows: int | None = None
    num_missing: int = 0
    start_range: str | tuple[int, int] = "paper"


@dataclass(frozen=True)
class OutOfSceneOptions:
    """Sc. 2, out of scene: each object removed for ``num_missing`` consecutive input steps.

    start_range (first removed step ``t0``, 0-indexed, inclusive, drawn uniformly per object):
        ``"paper"``: ``t0 in {2, ..., min(K - 2, K - num_missing)}``; the paper's ``t0 in [3, 9]``
        counted from 1, i.e. {2..8} for K = 10, so the gap always ends inside the input frames.
        ``"official"``: the official code's ``t0 in {2, ..., K - num_missing - 2}`` ({2..6} for n = 2).
        ``(lo, hi)``: explicit inclusive range.
    """

    num_missing: int = 2
    start_range: str | tuple[int, int] = "paper"


@dataclass(frozen=True)
class ElasticOptions:
    """Sc. 3, missing with varying appearance (elastic deformation, Simard et al. 2003).

    Per object and sequence two ``U[0, 1)`` fields are drawn once, mapped to ``2 u - 1`` and
    Gaussian-smoothed (``sigma``) once; frame ``t`` displaces by ``alpha_t`` times them.

    alpha, sigma: deformation strength (pixels per unit field) and smoothing width.
    official_axis_bug: ``False`` (paper): both axes are displaced and ``alpha_t = alpha (1 - t/(T-1))``
        decays to 0 at the last frame. ``True`` (official code): only rows are displaced (its
        meshgrid/axis bug makes the deformation vertical-only: each column is warped within itself)
        and ``alpha_t = alpha - (alpha/T) t`` stops at ``alpha/T`` (100 -> 5).
    num_missing, start_range: removal as in Sc. 2, one step by default.
    """

    alpha: float = 100.0
    sigma: float = 4.0
    official_axis_bug: bool = False
    num_missing: int = 1
    start_range: str | tuple[int, int] = "paper"


_OPTIONS = {
    "complete": CompleteOptions,
    "occlusion": OcclusionOptions,
    "out_of_scene": OutOfSceneOptions,
    "elastic": ElasticOptions,
}


def generator_keys(scenario: str) -> tuple[str, ...]:
    """The settings :func:`generate` takes for ``scenario`` besides the run's own (scenario,
    num_sequences, seed, device, split, digits): sizes, motion and the scenario's options fields."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
    sizes = ("num_objects", "step_length", "frame_size", "num_frames", "num_observed")
    return (*sizes, *(f.name for f in fields(_OPTIONS[scenario])))


def _resolve_options(scenario: str, options: dict, frame_size: int):
    cls = _OPTIONS[scenario]
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for scenario {scenario!r}; valid options: {valid or 'none'}")
    opts = cls(**options)
    if isinstance(opts, OcclusionOptions):
        rows = frame_size // 2 if opts.occluded_rows is None else opts.occluded_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or not 0 <= rows < frame_size:
            raise ValueError(f"occluded_rows must be an int in [0, frame_size={frame_size}), got {rows!r}")
        opts = OcclusionOptions(rows, opts.num_missing, opts.start_range)
    if isinstance(opts, ElasticOptions):
        if not opts.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {opts.alpha}")
        if not opts.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {opts.sigma}")
    return opts


def _removal_range(opts, num_observed: int) -> tuple[int, int] | None:
    """Inclusive 0-indexed range of the first removed step, or ``None`` when nothing is removed."""
    n = getattr(opts, "num_missing", 0)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < num_observed:
        raise ValueError(f"num_missing must be an int in [0, num_observed={num_observed}), got {n!r}")
    if n == 0:
        return None
    rng = opts.start_range
    if rng == "paper":
        lo, hi = 2, min(num_observed - 2, num_observed - n)
    elif rng == "official":
        lo, hi = 2, num_observed - n - 2
    elif isinstance(rng, tuple | list) and len(rng) == 2 and all(isinstance(v, int) for v in rng):
        lo, hi = rng
    else:
        raise ValueError(f"start_range must be 'paper', 'official' or (lo, hi) ints, got {rng!r}")
    if not 0 <= lo <= hi or hi + n > num_observed:
        raise ValueError(
            f"start_range {rng!r} gives t0 in [{lo}, {hi}], but removed steps t0..t0+{n - 1} must lie in "
            f"the input frames 0..{num_observed - 1} (num_observed={num_observed}, num_missing={n})"
        )
    return lo, hi


# --------------------------------------------------------------------------- validation & digits
def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_digits(digits) -> torch.Tensor:
    if not isinstance(digits, torch.Tensor):
        raise TypeError(f"digits must be a torch.Tensor, got {type(digits).__name__}")
    if digits.dtype != torch.uint8:
        raise TypeError(f"digits must have dtype torch.uint8 (0..255), got {digits.dtype}")
    if digits.dim() != 3 or digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or digits.shape[0] < 1:
        raise ValueError(f"digits must have shape (P >= 1, 28, 28), got {tuple(digits.shape)}")
    return digits.cpu()


@functools.lru_cache(maxsize=4)
def _digit_pool(split: str) -> torch.Tensor:
    images, _ = load_digits(split=split)
    return _check_digits(images)


# --------------------------------------------------------------------------- dynamics
def bounce_trajectory(start: torch.Tensor, theta: torch.Tensor, step_length: float, num_frames: int) -> torch.Tensor:
    """Positions ``(..., T, 2)`` (x, y) in canvas units after each of ``T`` reflecting steps.

    ``start`` is ``(..., 2)``, ``theta`` is ``(...)``; the velocity is ``step_length * (cos, sin)``.
    Frame ``t`` is recorded after step ``t + 1`` (the official order); per axis, a coordinate
    ``<= 0`` is set to 0 and ``>= 1`` to 1, and that velocity component flips.
    """
    vel = step_length * torch.stack((torch.cos(theta), torch.sin(theta)), dim=-1)
    if start.device.type == "cpu" and not start.requires_grad:
        # the same IEEE operations in numpy, whose per-call cost is ~10x lower than torch's
        p, v = start.numpy(), vel.numpy()
        track = np.empty((*p.shape[:-1], num_frames, 2), dtype=p.dtype)
        for t in range(num_frames):
            p = p + v
            low, high = p <= 0, p >= 1
            p = np.where(low, 0.0, np.where(high, 1.0, p)).astype(p.dtype, copy=False)
            v = np.where(low | high, -v, v)
            track[..., t, :] = p
        return torch.from_numpy(track)
    pos = start.clone()
    out = []
    for _ in range(num_frames):
        pos = pos + vel
        low, high = pos <= 0, pos >= 1
        pos = torch.where(low, torch.zeros_like(pos), torch.where(high, torch.ones_like(pos), pos))
        vel = torch.where(low | high, -vel, vel)
        out.append(pos)
    return torch.stack(out, dim=-2)


# --------------------------------------------------------------------------- layout
@dataclass
class SceneLayout:
    """Everything needed to render a batch exactly: the per-object patches and where they go.

    patches: ``(B, N, T or 1, 28, 28)`` float in [0, 1] or uint8 (x 255); ``T or 1`` = per frame
        (Sc. 3) or constant. top_left: ``(B, N, T, 2)`` int64 pixel (x = column, y = row).
    removed: ``(B, N, T)`` bool, objects left out of ``observed``. meta: resolved parameters.
    """

    patches: torch.Tensor
    top_left: torch.Tensor
    removed: torch.Tensor
    scenario: str
    frame_size: int
    num_observed: int
    occluded_rows: int
    meta: dict


def draw_layout(
    scenario: str,
    num_sequences: int,
    *,
    seed: int,
    num_objects: int = 2,
    step_length: float = 0.15,
    device: torch.device | str = "cpu",
    split: str = "train",
    digits: torch.Tensor | None = None,
    frame_size: int = 64,
    num_frames: int = 20,
    num_observed: int = 10,
    **options,
) -> SceneLayout:
    """Draw a batch's random layout (see :func:`generate` for the parameters)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
    _check_int("num_sequences", num_sequences, 1)
    _check_int("num_objects", num_objects, 1)
    _check_int("num_observed", num_observed, 1)
    _check_int("num_frames", num_frames, 2)
    if num_frames <= num_observed:
        raise ValueError(f"num_frames must be > num_observed={num_observed}, got {num_frames}")
    _check_int("frame_size", frame_size, 1)
    if frame_size <= DIGIT_SIZE:
        raise ValueError(f"frame_size must be > {DIGIT_SIZE} (the digit size), got {frame_size}")
    if isinstance(step_length, bool) or not isinstance(step_length, int | float) or not step_length > 0:
        raise ValueError(f"step_length must be a number > 0 (canvas units per frame), got {step_length!r}")
    _check_int("seed", seed, 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    pool = _digit_pool(split) if digits is None else _check_digits(digits)
    opts = _resolve_options(scenario, options, frame_size)
    removal = _removal_range(opts, num_observed)

    B, N, T = num_sequences, num_objects, num_frames
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(pool.shape[0], (B, N), generator=g)
    start = torch.rand(B, N, 2, dtype=torch.float64, generator=g)
    theta = 2 * torch.pi * torch.rand(B, N, dtype=torch.float64, generator=g)
    removed = torch.zeros(B, N, T, dtype=torch.bool)
    if removal is not None:
        t0 = torch.randint(removal[0], removal[1] + 1, (B, N, 1), generator=g)
        t = torch.arange(T)
        removed = (t >= t0) & (t < t0 + opts.num_missing)
    canvas = frame_size - DIGIT_SIZE
    trajectory = bounce_trajectory(start, theta, float(step_length), T)
    top_left = (canvas * trajectory).to(torch.int64)  # trunc toward 0; values in [0, canvas]

    device = torch.device(device)
    patches = pool[index].to(device)[:, :, None]  # (B, N, 1, 28, 28) uint8
    if isinstance(opts, ElasticOptions):
        field = smooth_fields(
            torch.rand(B * N, 2, DIGIT_SIZE, DIGIT_SIZE, dtype=torch.float64, generator=g), opts.sigma
        )
        if opts.official_axis_bug:
            field[:, 0] = 0.0  # official: columns never move
        scale = alpha_schedule(opts.alpha, T, official=opts.official_axis_bug)
        flat = patches.reshape(B * N, DIGIT_SIZE, DIGIT_SIZE).float() / 255.0
        patches = warp_patches(flat, field.float(), scale.float()).reshape(B, N, T, DIGIT_SIZE, DIGIT_SIZE)
    meta = {
        "seed": seed,
        "scenario": scenario,
        "options": asdict(opts),
        "num_objects": N,
        "step_length": float(step_length),
        "frame_size": frame_size,
        "num_frames": T,
        "digit_source": "explicit" if digits is not None else f"mnist:{split}",
        "removal_start_range": removal,
    }
    return SceneLayout(
        patches=patches,
        top_left=top_left.to(device),
        removed=removed.to(device),
        scenario=scenario,
        frame_size=frame_size,
        num_observed=num_observed,
        occluded_rows=getattr(opts, "occluded_rows", 0),
        meta=meta,
    )


def render_layout(layout: SceneLayout) -> SceneBatch:
    """Paste the patches into frames and composite them (pixel-wise max) into a :class:`SceneBatch`.

    ``missing`` = ``removed`` or, when rows are occluded, "no ink pixel of the object is visible in
    that frame" (the object is completely hidden; partly hidden objects count as present).
    ``positions`` = patch centre = top-left + (28 - 1) / 2, in pixel-index coordinates (pixel j's
    centre is at j), as (x, y).
    """
    patches, top_left, removed = layout.patches, layout.top_left, layout.removed
    B, N, T, _ = top_left.shape
    H = W = layout.frame_size
    S, R = DIGIT_SIZE, layout.occluded_rows
    device = top_left.device
    values = patches.float() / 255.0 if patches.dtype == torch.uint8 else patches.float()
    values = values.expand(B, N, T, S, S).reshape(B, N, T, S * S)
    # flat pixel index of every patch pixel inside its frame: (B, N, T, S*S)
    ar = torch.arange(S, device=device)
    offsets = (ar[:, None] * W + ar[None, :]).reshape(-1)
    pix = (top_left[..., 1] * W + top_left[..., 0])[..., None] + offsets
    objects = torch.zeros(B * N * T, H * W, device=device)
    objects.scatter_(1, pix.reshape(B * N * T, S * S), values.reshape(B * N * T, S * S))
    objects = objects.reshape(B, N, T, 1, H, W)

    complete = objects.amax(dim=1)
    observed = complete.clone()
    b, t = removed.any(dim=1).nonzero(as_tuple=True)  # only frames with a removed object differ
    if b.numel():
        gone = removed[b, :, t][..., None, None, None]  # (F, N, 1, 1, 1)
        observed[b, t] = objects[b, :, t].masked_fill(gone, 0.0).amax(dim=1)
    observed[..., :R, :] = 0.0

    visible = (torch.arange(H, device=device) >= R)[:, None].expand(B, T, 1, H, W).clone()
    missing = removed.clone()
    if R > 0:  # completely hidden: no ink pixel of the object in a visible row
        row_visible = (top_left[..., 1, None] + ar) >= R  # (B, N, T, S): frame row of patch row i
        ink = values.reshape(B, N, T, S, S) > 0
        missing |= ~(ink & row_visible[..., None]).flatten(3).any(-1)
    positions = top_left.to(torch.float32) + (S - 1) / 2
    return SceneBatch(
        observed=observed,
        visible=visible,
        complete=complete,
        missing=missing,
        positions=positions,
        objects=objects,
        num_observed=layout.num_observed,
        scenario=layout.scenario,
        scored=visible.clone(),
        meta=dict(layout.meta),
    )


def generate(
    scenario: str,
    num_sequences: int,
    *,
    seed: int,
    num_objects: int = 2,
    step_length: float = 0.15,
    device: torch.device | str = "cpu",
    split: str = "train",
    digits: torch.Tensor | None = None,
    frame_size: int = 64,
    num_frames: int = 20,
    num_observed: int = 10,
    **options,
) -> SceneBatch:
    """Generate ``num_sequences`` Moving-MNIST videos of ``scenario`` (paper §4.2).

    Args:
        scenario: one of ``SCENARIOS``.
        seed: seeds the CPU generator that draws every random number (same seed -> same batch).
        num_objects: digits per video (N). step_length: canvas units per frame (0.15 DIVE, 0.1 DDPAE).
        device: where frames are rendered.
        split: digit pool from :func:`dive_pyro.data.mnist.load_digits` (ignored if ``digits``).
        digits: explicit ``(P, 28, 28)`` uint8 pool; each object picks one uniformly.
        frame_size, num_frames, num_observed: H = W, T, K (K input frames, T - K to predict).
        **options: fields of the scenario's options dataclass (unknown names raise ``TypeError``).

    Removed objects are left out of ``observed`` but drawn in ``complete`` and ``objects``; pixels stay
    observed (``visible`` is False only in Sc. 1's occluded rows, where ``observed`` is 0 too).
    ``scored`` = ``visible`` (DIVE scores Sc. 1 on the bottom rows only, other scenarios everywhere).
    ``positions`` = top-left + 13.5 (patch centre); ``missing`` as in :func:`render_layout`.
    ``meta`` holds the seed and resolved options.
    """
    layout = draw_layout(
        scenario,
        num_sequences,
        seed=seed,
        num_objects=num_objects,
        step_length=step_length,
        device=device,
        split=split,
        digits=digits,
        frame_size=frame_size,
        num_frames=num_frames,
        num_observed=num_observed,
        **options,
    )
    return render_layout(layout)
