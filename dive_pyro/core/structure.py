"""Pieces shared by every DIVE model and guide: plates, the missingness transform (paper Eq. 4),
the pose transition (Eq. 5) and input checks.

Plate layout (identical in model and guide, ``MAX_PLATE_NESTING = 3``)::

    videos      dim -3   size B
    objects     dim -2   size N
    time        dim -1   size T   per-frame latents with an i.i.d. prior (beta, z_a)
    input_time  dim -1   size K   missingness on the K input frames

The observation site composites objects, so it sits in ``videos`` only, with the frames as event
dims. Model-side enumeration (``dive-enum``) uses dims -4, -5, ... for its enumerated sites.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pyro
import torch

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.nets import constrain_pose
from dive_pyro.data.batch import SceneBatch, check_frames

__all__ = [
    "MAX_PLATE_NESTING",
    "Plates",
    "check_batch",
    "from_video_event",
    "instance_name",
    "missingness_from_gaussian",
    "pose_transition",
    "to_video_event",
]

MAX_PLATE_NESTING = 3

_COUNTERS: dict[str, itertools.count] = {}


def instance_name(role: str) -> str:
    """A param-store prefix no other instance of this process uses: ``role`` for the first
    instance (``"model"``, ``"guide"``), then ``role_2``, ``role_3``, ...

    Under Pyro's global param store, two ``PyroModule``s with one name share their store entries
    and the stored ones win: the second model would run on its own weights while ``SVI`` steps the
    first one's, so it silently never trains. Unique names let any number of models (e.g. two
    variants in one notebook) train side by side, with or without ``module_local_params``; the
    names do not enter ``state_dict`` keys, so checkpoints are unaffected.
    """
    n = next(_COUNTERS.setdefault(role, itertools.count(1)))
    return role if n == 1 else f"{role}_{n}"


@dataclass(frozen=True)
class Plates:
    """The plates of one model or guide run (create them once per run with :meth:`make`: Pyro
    records each plate as a site, so a second ``pyro.plate("objects", ...)`` would clash)."""

    videos: pyro.plate  # dim -3, size B
    objects: pyro.plate  # dim -2, size N
    time: pyro.plate  # dim -1, size T: per-frame latents with an i.i.d. prior (beta, z_a)
    input_time: pyro.plate  # dim -1, size K: missingness on the input frames
    B: int
    N: int
    T: int
    K: int

    @classmethod
    def make(cls, B: int, N: int, T: int, K: int, device: torch.device | None = None) -> Plates:
        return cls(
            videos=pyro.plate("videos", B, dim=-3, device=device),
            objects=pyro.plate("objects", N, dim=-2, device=device),
            time=pyro.plate("time", T, dim=-1, device=device),
            input_time=pyro.plate("input_time", K, dim=-1, device=device),
            B=B,
            N=N,
            T=T,
            K=K,
        )


def to_video_event(x: torch.Tensor) -> torch.Tensor:
    """``(..., B, N, K)`` → ``(..., B, 1, 1, N, K)``: batch dims for a site in ``videos`` only
    whose (object, frame) dims are event dims."""
    return x.unsqueeze(-3).unsqueeze(-3)


def from_video_event(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_video_event`."""
    return x.squeeze(-3).squeeze(-3)


def missingness_from_gaussian(
    x: torch.Tensor, mode: str = "straight_through", temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Missingness ``z_m = H(x)`` (paper Eq. 4; 1 = missing, ``x ≥ 0``) and the weight that
    multiplies the object's rendering (``1 − z_m``, paper Eq. 10).

    * ``"straight_through"``: forward value ``H(x)``, gradient of ``σ(x/τ)``;
    * ``"soft"``: ``z_m = σ(x/τ)`` (the official soft labels);
    * ``"official"``: ``z_m = H(x)`` with no gradient, and the *raw* Gaussian presence score ``−x``
      multiplies the rendering, as the official model multiplies by its raw mask draw
      (docs/official_code.md §6; it thresholds its presence score at 0.5, we keep the paper's 0).

    Returns ``(z_m, weight)``.
    """
    hard = (x >= 0).to(x.dtype)
    if mode == "official":
        return hard, -x
    soft = torch.sigmoid(x / temperature)
    if mode == "soft":
        return soft, 1 - soft
    if mode == "straight_through":
        z_m = hard + soft - soft.detach()
        return z_m, 1 - z_m
    raise ValueError(f"missingness mode must be 'straight_through', 'soft' or 'official', got {mode!r}")


def pose_transition(z_p_0: torch.Tensor, beta: torch.Tensor, s0: float, scale_range: float = 1.0) -> torch.Tensor:
    """``z_p^t = f_tran(z_p^{t−1}, β^t)`` (paper Eq. 5) as in the official code: additive in
    unconstrained space, ``raw^t = z_p^0 + Σ_{k≤t} β^k`` (frame 0 already includes β^0), then the
    pose constraint. ``z_p_0`` is ``(..., 1, 3)``, ``beta`` ``(..., T, 3)``; returns ``(..., T, 3)``."""
    return constrain_pose(z_p_0 + beta.cumsum(-2), s0, scale_range)


def check_batch(batch: SceneBatch, config: DiveConfig) -> tuple[int, int, int, int]:
    """Validate ``batch`` against ``config``; returns ``(B, N, T, K)``."""
    if not isinstance(batch, SceneBatch):
        raise TypeError(f"batch must be a SceneBatch, got {type(batch).__name__}")
    B, T, _, H, W = batch.observed.shape
    K, N = batch.num_observed, batch.num_objects
    if (H, W) != (config.frame_size, config.frame_size):
        raise ValueError(
            f"batch frames are {H}x{W} but the model expects frame_size = {config.frame_size} "
            f"({config.frame_size}x{config.frame_size})"
        )
    if N != config.num_objects:
        raise ValueError(f"batch has N = {N} objects but the model has num_objects = {config.num_objects}")
    if not 0 < K < T:
        raise ValueError(f"batch needs more frames than inputs (T > K), got T = {T}, K = {K}")
    if K != config.num_observed:
        raise ValueError(f"batch has num_observed K = {K} but the model expects {config.num_observed}")
    if T != config.num_frames:
        raise ValueError(f"batch has T = {T} frames but the model expects num_frames = {config.num_frames}")
    check_frames(batch.observed, "batch.observed", batch.bounded)  # NaN / inf / range, even if mutated after creation
    return B, N, T, K
