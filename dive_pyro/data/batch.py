"""`SceneBatch`: one batch of videos with the ground truth the generator knows.

Conventions (shared by data, models, guides, metrics):

* frames are ``(B, T, 1, H, W)`` floats in ``[0, 1]``;
* ``missing[b, i, t] == True`` means object ``i`` is absent or hidden at ``t`` (the paper's
  ``z_m = 1``);
* the first ``num_observed`` (K) frames are the model's input, the rest are to be predicted;
* ``positions`` are object centres in pixels, ``(x, y)`` with ``x`` the column.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace

import torch

__all__ = ["SceneBatch", "check_frames"]


def check_frames(frames: torch.Tensor, name: str = "frames", bounded: bool = True) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``frames`` is a finite ``(B, T, 1, H, W)`` float
    tensor, in ``[0, 1]`` when ``bounded``."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dim() != 5 or frames.shape[2] != 1:
        raise ValueError(f"{name} must have shape (B, T, 1, H, W), got {tuple(frames.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor in [0, 1], got dtype {frames.dtype}")
    if not frames.numel():
        return
    # one pass: NaN propagates through min/max and inf shows up as an extreme
    lo, hi = (v.item() for v in torch.aminmax(frames))
    if math.isnan(lo) or math.isnan(hi) or math.isinf(lo) or math.isinf(hi):
        raise ValueError(f"{name} contains NaN or inf values")
    if bounded and (lo < 0 or hi > 1):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


@dataclass
class SceneBatch:
    """A batch of (possibly corrupted) videos plus generator ground truth.

    Only ``observed`` and ``visible`` are what a model may see; everything else is ground truth
    for evaluation and posterior checks.
    """

    observed: torch.Tensor  # (B, T, 1, H, W) float in [0, 1]; unobserved pixels are 0
    visible: torch.Tensor  # (B, T, 1, H, W) bool; True where the pixel is observed
    complete: torch.Tensor  # (B, T, 1, H, W) float; ground truth with nothing missing
    missing: torch.Tensor  # (B, N, T) bool; object i absent or hidden at t (z_m = 1)
    positions: torch.Tensor  # (B, N, T, 2) float; object centres in pixels, (x, y)
    # (B, N, T, 1, H, W) float; each object rendered alone, complete. None in training batches
    # (dive_pyro.data.fast_render), which skip this N-times-a-frame buffer
    objects: torch.Tensor | None
    num_observed: int = 10  # K: frames 0..K-1 are input, K..T-1 are to be predicted
    scenario: str = "complete"
    scored: torch.Tensor | None = None  # (B, T, 1, H, W) bool; pixels DIVE's protocol scores
    meta: dict = field(default_factory=dict)
    # False only for videos drawn from a pixel likelihood with unbounded support (a Normal draw,
    # dive_pyro.models.simulate(noise=True)): then ``observed`` may leave [0, 1]
    bounded: bool = True

    def __post_init__(self) -> None:
        if self.scored is None:
            self.scored = torch.ones_like(self.visible, dtype=torch.bool)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise a clear ``ValueError`` if shapes, dtypes or ranges are inconsistent."""
        check_frames(self.observed, "observed", self.bounded)
        check_frames(self.complete, "complete")
        B, T, _, H, W = self.observed.shape
        if self.complete.shape != self.observed.shape:
            raise ValueError(f"complete has shape {tuple(self.complete.shape)}, expected {tuple(self.observed.shape)}")
        for name in ("visible", "scored"):
            m = getattr(self, name)
            if m.shape != self.observed.shape or m.dtype != torch.bool:
                raise ValueError(
                    f"{name} must be a bool tensor of shape {tuple(self.observed.shape)}, "
                    f"got {m.dtype} {tuple(m.shape)}"
                )
        if self.missing.dim() != 3 or self.missing.shape[0] != B or self.missing.shape[2] != T:
            raise ValueError(f"missing must have shape (B={B}, N, T={T}), got {tuple(self.missing.shape)}")
        if self.missing.dtype != torch.bool:
            raise ValueError(f"missing must be bool, got {self.missing.dtype}")
        N = self.missing.shape[1]
        if N < 1:
            raise ValueError("a SceneBatch needs at least one object (N >= 1), got N = 0")
        if self.positions.shape != (B, N, T, 2):
            raise ValueError(f"positions must have shape {(B, N, T, 2)}, got {tuple(self.positions.shape)}")
        if not self.positions.is_floating_point():
            raise ValueError(f"positions must be a floating-point tensor (pixels), got dtype {self.positions.dtype}")
        if self.positions.numel() and not torch.isfinite(self.positions).all():
            raise ValueError("positions contains NaN or inf values")
        if self.objects is not None and self.objects.shape != (B, N, T, 1, H, W):
            raise ValueError(f"objects must have shape {(B, N, T, 1, H, W)}, got {tuple(self.objects.shape)}")
        if self.objects is not None:
            check_frames(self.objects.flatten(1, 2), "objects")
        if isinstance(self.num_observed, bool) or not isinstance(self.num_observed, int):
            raise ValueError(f"num_observed (K) must be an integer, got {self.num_observed!r}")
        if not 0 < self.num_observed < T:
            raise ValueError(
                f"num_observed (K) must satisfy 0 < K < T = {T} so that there are frames to predict, "
                f"got K = {self.num_observed}"
            )

    @classmethod
    def _trusted(cls, **values) -> SceneBatch:
        """Internal: a batch built by this package's generators, whose tests guarantee what
        :meth:`validate` checks; skips the O(pixels) checks (the public constructor validates)."""
        batch = cls.__new__(cls)
        for f in fields(cls):
            if f.name in values:
                value = values[f.name]
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                value = f.default
            setattr(batch, f.name, value)
        if batch.scored is None:
            batch.scored = torch.ones_like(batch.visible, dtype=torch.bool)
        return batch

    # ------------------------------------------------------------------ views
    @property
    def batch_size(self) -> int:
        return self.observed.shape[0]

    @property
    def num_objects(self) -> int:
        return self.missing.shape[1]

    @property
    def num_frames(self) -> int:
        return self.observed.shape[1]

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.observed.shape[-2:])

    @property
    def device(self) -> torch.device:
        return self.observed.device

    def __len__(self) -> int:
        return self.batch_size

    def _map(self, fn) -> SceneBatch:
        kwargs = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kwargs[f.name] = fn(v) if isinstance(v, torch.Tensor) else v
        return replace(self, **kwargs)

    def to(self, device: torch.device | str) -> SceneBatch:
        """Move every tensor to ``device`` (``self`` when they are all there already)."""
        device = torch.device(device)
        tensors = [v for f in fields(self) if isinstance(v := getattr(self, f.name), torch.Tensor)]
        if all(t.device == device for t in tensors):
            return self
        return self._map(lambda t: t.to(device))

    def __getitem__(self, index) -> SceneBatch:
        """Select videos along the batch dimension, as Python sequences do: an int (negative counts
        from the end; out of range is an ``IndexError``) gives a batch of one video, a slice or an
        index tensor/list the selected videos."""
        B = self.batch_size
        if isinstance(index, bool):
            raise TypeError("a SceneBatch index must be an int, a slice or an index tensor, got a bool")
        if isinstance(index, int):
            if not -B <= index < B:
                raise IndexError(f"video index {index} is out of range for a batch of {B} videos")
            index = slice(index % B, index % B + 1)
        elif not isinstance(index, slice):
            index = torch.as_tensor(index)
            if index.dtype != torch.bool and index.numel() and not (-B <= index.min() and index.max() < B):
                raise IndexError(
                    f"video indices {index.min().item()}..{index.max().item()} are out of range for a batch of "
                    f"{B} videos"
                )
        return self._map(lambda t: t[index])

    def downsample(self, factor: int) -> SceneBatch:
        """Average-pool frames by ``factor`` (e.g. 64×64 → 32×32 with 14-pixel digits).

        A coarse pixel is visible (scored) only if all its fine pixels are; positions are rescaled
        so they stay centres in the new pixel grid.
        """
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"downsample factor must be a positive integer, got {factor!r}")
        if factor == 1:
            return self
        H, W = self.frame_size
        if H % factor or W % factor:
            raise ValueError(f"frame size {H}x{W} is not divisible by the downsample factor {factor}")

        def pool(x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, 1, H, W).float()
            out = torch.nn.functional.avg_pool2d(flat, factor)
            return out.reshape(*x.shape[:-2], H // factor, W // factor)

        def all_pool(m: torch.Tensor) -> torch.Tensor:
            return pool(m.float()) > 1 - 1e-6

        return replace(
            self,
            observed=pool(self.observed),
            visible=all_pool(self.visible),
            complete=pool(self.complete),
            objects=None if self.objects is None else pool(self.objects),
            scored=all_pool(self.scored),
            positions=(self.positions + 0.5) / factor - 0.5,
            meta={**self.meta, "downsample": factor},
        )

    @staticmethod
    def cat(batches: list[SceneBatch]) -> SceneBatch:
        """Concatenate batches along the video dimension."""
        if not batches:
            raise ValueError("SceneBatch.cat needs at least one batch")
        first = batches[0]
        kwargs = {}
        for f in fields(first):
            v = getattr(first, f.name)
            parts = [getattr(b, f.name) for b in batches]
            if any(isinstance(p, torch.Tensor) for p in parts):
                if any(p is None for p in parts):
                    raise ValueError(f"SceneBatch.cat: {f.name} is None in some batches but not in others")
                kwargs[f.name] = torch.cat(parts, dim=0)
            else:
                kwargs[f.name] = v
        return replace(first, **kwargs)
