"""An appearance prior coupled over time: a stationary AR(1) chain (``DiveConfig.appearance_ar``).

The official prior draws ``z_a`` i.i.d. N(0, I) per frame (docs/official_code.md §3), so a sprite can fade
out between two frames at no KL cost. Under ``z_a^0 ~ N(µ, I)`` and
``z_a^t | z_a^{t-1} ~ N(µ + ρ (z_a^{t-1} − µ), (1 − ρ²) I)`` every marginal is still N(µ, I), but a
change of appearance between frames costs ``|Δ|² / (2 (1 − ρ²))`` nats.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

__all__ = ["AR1Normal"]


class AR1Normal(TorchDistribution):
    """Stationary Gaussian AR(1) chain along dim ``-2`` of ``loc`` ``(..., T, h)``.

    ``batch_shape = (..., T)``, ``event_shape = (h,)``: ``log_prob(z)`` returns the log density of
    each frame *given the previous one* (frame 0: its marginal), which sum over time to the exact
    joint log density. A site with this prior may therefore sit in a time plate for Trace_ELBO-type
    objectives (they only sum); a plate promise of conditional independence is not kept, so do not
    use it with TraceGraph_ELBO's Rao-Blackwellisation or subsample the time plate.
    """

    arg_constraints = {"loc": constraints.real}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: torch.Tensor, rho: float, validate_args: bool | None = None) -> None:
        if loc.dim() < 2:
            raise ValueError(f"AR1Normal needs loc of shape (..., T, h), got {tuple(loc.shape)}")
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"AR1Normal: rho must lie in [0, 1), got {rho!r}")
        self.loc, self.rho = loc, float(rho)
        self.innovation_sd = math.sqrt(1.0 - self.rho**2)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> AR1Normal:
        batch_shape = torch.Size(batch_shape)
        if batch_shape[-1:] != self.batch_shape[-1:]:
            raise ValueError(f"AR1Normal cannot expand its time dim {self.batch_shape[-1]} to {batch_shape}")
        return AR1Normal(self.loc.expand(batch_shape + self.event_shape), self.rho)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.ones_like(self.loc)

    def rsample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        eps = torch.randn(self._extended_shape(torch.Size(sample_shape)), dtype=self.loc.dtype, device=self.loc.device)
        steps = [eps[..., 0, :]]
        for t in range(1, eps.shape[-2]):
            steps.append(self.rho * steps[-1] + self.innovation_sd * eps[..., t, :])
        return self.loc + torch.stack(steps, -2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        d = value - self.loc
        prev = torch.cat([torch.zeros_like(d[..., :1, :]), self.rho * d[..., :-1, :]], -2)
        sd = torch.full_like(d[..., :, :1], self.innovation_sd)
        sd[..., 0, :] = 1.0
        z = (d - prev) / sd
        return (-0.5 * z**2 - sd.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
