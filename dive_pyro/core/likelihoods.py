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
        if type(value) is not torch.Tensor or type(self.loc) is not torch.Tensor:
            # tensor subclasses (TraceGraph_ELBO's provenance tracking) lose the graph through a
            # custom Function: the plain expression, with the same values and gradients
            const = math.log(self._sd) + 0.5 * math.log(2 * math.pi)
            return (value - self.loc).square().mul(-0.5 / self._sd**2).sub(const)
        return _ScalarNormalLogProb.apply(value, self.loc, self._sd)


class _ScalarNormalLogProb(torch.autograd.Function):
    """``(value − loc)² · (−1/2σ²) − log(σ√(2π))`` with the same rounding as that expression and
    its autograd gradient, in fewer full-size passes (in place; one saved tensor)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, loc: torch.Tensor, sd: float) -> torch.Tensor:
        diff = value - loc
        ctx.save_for_backward(diff)
        ctx.factor, ctx.shapes = -0.5 / sd**2, (value.shape, loc.shape)
        return diff.square().mul_(ctx.factor).sub_(math.log(sd) + 0.5 * math.log(2 * math.pi))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (diff,) = ctx.saved_tensors
        d_diff = (grad * ctx.factor).mul_(diff).mul_(2.0)  # (g · f) · 2d, as autograd rounds it
        value_shape, loc_shape = ctx.shapes
        d_value = d_loc = None
        if ctx.needs_input_grad[0]:
            d_value = d_diff.sum_to_size(value_shape)
        if ctx.needs_input_grad[1]:
            d_loc = d_diff.neg().sum_to_size(loc_shape)
        return d_value, d_loc, None
