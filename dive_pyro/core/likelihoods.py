"""Pixel likelihoods with a cheap ``log_prob``.

:class:`ScalarScaleNormal` is ``Normal(loc, σ)`` for one number ``σ`` (the official likelihood of
DIVE, σ = 0.3: docs/official_code.md §3): the same density, without the full-size ``log σ`` and ``σ²``
that ``torch.distributions.Normal`` computes from the broadcast scale, nor the argument check on a
scale that is positive by construction (``DiveConfig`` checks it once).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

__all__ = ["ScalarScaleNormal"]


class ScalarScaleNormal(dist.Normal):
    """``Normal(loc, scale)`` with a positive Python number ``scale``; ``log_prob`` equals Normal's."""

    def __init__(self, loc: torch.Tensor, scale: float, validate_args: bool | None = None) -> None:
        if isinstance(scale, torch.Tensor) or not float(scale) > 0:
            raise ValueError(f"ScalarScaleNormal: scale must be a positive number, got {scale!r}")
        self._sd = float(scale)
        super().__init__(loc, self._sd, validate_args=False)  # the scale needs no full-size check
        if validate_args is None:
            del self._validate_args  # back to the global setting for the values (pyro.enable_validation)
        else:
            self._validate_args = validate_args

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScalarScaleNormal, _instance)
        new._sd = self._sd
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        const = math.log(self._sd) + 0.5 * math.log(2 * math.pi)
        return (value - self.loc).square().mul(-0.5 / self._sd**2).sub(const)
