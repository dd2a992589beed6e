"""A state-space pose guide: one Gaussian over the whole pose path with Markov structure.

The ``dive`` guide is mean-field on the *increments*: ``z_p_0 ~ N(µ_0, σ_0)``, ``beta^t ~ N(µ_t, σ_t)``
independently, so ``var(raw^t) = σ_0² + Σ_{k≤t} σ_k²`` (``raw^t = z_p_0 + Σ_{k≤t} beta^k``, paper
Eq. 5) can only grow with t: the pose cannot be uncertain inside a gap and certain after it.

:class:`MarkovPoseGuide` puts a Gaussian Markov chain on the path ``v = (z_p_0, raw^0, …, raw^{T-1})``
(each coordinate of the pose separately)::

    v_0 = m_0 + s_0 ε_0,    v_t = m_t + a_t (v_{t-1} − m_{t-1}) + s_t ε_t,    ε ~ N(0, I)

i.e. ``(I − A)(v − m) = S ε`` with A sub-diagonal: the precision ``(I − A)ᵀ S⁻² (I − A)`` is
tridiagonal, and every Gaussian Markov chain can be written this way (so the family contains the
exact Kalman-smoother posterior of a linear-Gaussian state-space model). The means and sds come from
the ``dive`` heads (``m`` = the cumulated increment means), the couplings ``a_t = 1 + FC(h_p^t)``
from the pose LSTM states; with the coupling head at zero (its initial value) the guide *is* the
``dive`` guide. ``(z_p_0, beta)`` is a linear map of ``v`` with unit Jacobian, so the guide draws ``v``
as an auxiliary site ``pose_path`` and ``z_p_0``, ``beta`` as Delta sites: ``log q(z_p_0, beta) = log q(v)``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from dive_pyro.core.structure import Plates
from dive_pyro.guides.dive import DiveGuide

__all__ = ["MarkovPoseGuide", "markov_gaussian"]


def markov_gaussian(loc: torch.Tensor, coupling: torch.Tensor, scale: torch.Tensor) -> dist.MultivariateNormal:
    """The Gaussian Markov chain ``v_t = m_t + a_t (v_{t-1} − m_{t-1}) + s_t ε_t`` over the last dim.

    ``loc`` (m), ``coupling`` (a; ``a[..., 0]`` is ignored) and ``scale`` (s > 0) are ``(..., L)``;
    returns a :class:`~pyro.distributions.MultivariateNormal` of event shape ``(L,)`` with
    ``scale_tril = (I − A)⁻¹ diag(s)`` (lower triangular, tridiagonal precision).
    """
    if not loc.shape == coupling.shape == scale.shape:
        raise ValueError(
            f"markov_gaussian: loc, coupling and scale must have one shape, got "
            f"{tuple(loc.shape)}, {tuple(coupling.shape)}, {tuple(scale.shape)}"
        )
    L = loc.shape[-1]
    eye = torch.eye(L, dtype=loc.dtype, device=loc.device)
    sub = torch.diag_embed(coupling[..., 1:], offset=-1)  # A[t, t-1] = a_t
    scale_tril = torch.linalg.solve_triangular(eye - sub, torch.diag_embed(scale), upper=False)
    return dist.MultivariateNormal(loc, scale_tril=scale_tril)


class MarkovPoseGuide(DiveGuide):
    """The ``dive`` guide with the state-space pose posterior of this module (variant ``dive-markov``);
    parameters: those of :class:`DiveGuide` plus ``pose_coupling`` (hidden → 3, zero-initialised)."""

    def _build_pose(self) -> None:
        super()._build_pose()
        self.pose_coupling = nn.Linear(self.config.hidden, 3)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        with torch.no_grad():  # a_t = 1 at the start: exactly the mean-field-increments guide
            self.pose_coupling.weight.zero_()
            self.pose_coupling.bias.zero_()

    def path_posterior(
        self,
        h_y: torch.Tensor,
        present: torch.Tensor,
        encoder_state: tuple[torch.Tensor, torch.Tensor],
        T: int,
    ) -> dist.MultivariateNormal:
        """``q(v)`` with batch shape ``(B, N, 1, 3)`` and event shape ``(T + 1,)``."""
        first, states = self.pose_states(h_y, present, encoder_state, T)
        loc0, scale0 = self.initial_pose_head(first)  # (B, N, 3)
        loc, scale = self.beta_head(states)  # (B, N, T, 3)
        coupling = 1.0 + self.pose_coupling(states)
        path_loc = torch.cat([loc0.unsqueeze(-2), loc0.unsqueeze(-2) + loc.cumsum(-2)], -2)  # (B, N, T+1, 3)
        path_scale = torch.cat([scale0.unsqueeze(-2), scale], -2)
        path_coupling = torch.cat([torch.ones_like(coupling[..., :1, :]), coupling], -2)
        return markov_gaussian(*(x.transpose(-1, -2).unsqueeze(-3) for x in (path_loc, path_coupling, path_scale)))

    def sample_pose(
        self,
        plates: Plates,
        h_y: torch.Tensor,
        present: torch.Tensor,
        encoder_state: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        q = self.path_posterior(h_y, present, encoder_state, plates.T)
        v = pyro.sample("pose_path", q.to_event(1), infer={"is_auxiliary": True})  # (B, N, 1, 3, T+1)
        v = v.squeeze(-3).transpose(-1, -2)  # (B, N, T+1, 3)
        z_p_0 = pyro.sample("z_p_0", dist.Delta(v[..., :1, :], event_dim=1))
        with plates.time:
            beta = pyro.sample("beta", dist.Delta(v[..., 1:, :] - v[..., :-1, :], event_dim=1))
        return self.f_tran(z_p_0, beta)
