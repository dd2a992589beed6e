"""Model variants; each overrides only the factory methods or latent blocks it changes.

* :class:`DdpaeModel` (``ddpae``): DIVE minus missingness and dynamic appearance, a single
  static ``z_a`` per object (our in-house DDPAE baseline: DDPAE's static ``content`` latent,
  DDPAE ``models/DDPAE.py:276-292``, see docs/official_code.md §8).
* :class:`BernoulliDiveModel` (``dive-bernoulli``): ``z_m ~ Bernoulli(1/2)`` directly
  (1/2 = P(N(0, 1) ≥ 0), the Heaviside variant's prior probability), for ``TraceGraph_ELBO``.
* :class:`EnumDiveModel` (``dive-enum``): the same Bernoulli prior, summed out exactly by
  ``TraceEnum_ELBO`` over a *sequential* object plate.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from dive_pyro.core.structure import Plates, from_video_event
from dive_pyro.data.batch import SceneBatch
from dive_pyro.models.dive import DiveModel

__all__ = ["BernoulliDiveModel", "DdpaeModel", "EnumDiveModel"]


class DdpaeModel(DiveModel):
    """DDPAE ablation: every object is present in every frame (no missingness site) and has one
    appearance ``z_a`` ``(B, N, 1, h)``, repeated over time (DDPAE's ``content``)."""

    def sample_missingness_and_weight(self, plates: Plates) -> tuple[torch.Tensor, torch.Tensor]:
        z_m = self.pose_loc.new_zeros(plates.B, plates.N, plates.K)
        return z_m, 1 - z_m

    def sample_appearance(self, plates: Plates) -> torch.Tensor:
        z_a = pyro.sample("z_a", self.appearance_prior((plates.B, plates.N, 1)))  # outside the time plate
        return self.appearance_per_frame(z_a, plates.T)

    def appearance_per_frame(self, z_a: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The static ``z_a`` ``(..., N, 1, h)`` repeated over the ``num_frames`` frames."""
        return z_a.expand(*z_a.shape[:-2], num_frames, z_a.shape[-1])


class BernoulliDiveModel(DiveModel):
    """Binary missingness ``z_m ~ Bernoulli(1/2)``, site ``z_m`` of shape ``(B, 1, 1, N, K)``.

    Only ``videos`` is a plate for ``z_m``; its (object, frame) dims are event dims. Plates are
    conditional-independence promises that ``TraceGraph_ELBO`` uses for Rao-Blackwellisation: a
    site in the ``objects`` plate would have its score-function term multiplied only by the costs
    of its own object (and frame), but the guide makes every later latent depend on every z_m of
    the video (LSTMs across objects and time, imputation gated by the sampled z_m), so that
    promise would be false and the gradient estimator biased. Videos are independent, so the
    ``videos`` plate is a true promise -- provided BatchNorm does not couple them, which is why
    this variant defaults to ``batch_norm=False`` (see the registry).
    """

    def missingness_prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        return dist.Bernoulli(probs=self.pose_loc.new_full((), 0.5)).expand(shape)

    def sample_missingness_and_weight(self, plates: Plates) -> tuple[torch.Tensor, torch.Tensor]:
        z = pyro.sample("z_m", self.missingness_prior((plates.B, 1, 1, plates.N, plates.K)).to_event(2))
        z_m = from_video_event(z)
        return z_m, 1 - z_m


class EnumDiveModel(BernoulliDiveModel):
    """Bernoulli missingness marginalised exactly (``TraceEnum_ELBO``; small N only).

    The frame sums over objects, so the enumerated ``z_m`` of different objects are coupled by
    the likelihood: enumerating them inside the vectorised ``objects`` plate would silently give a
    wrong ELBO (a variable enumerated inside a plate must be independent across it;
    ``tests/models/test_elbo_exact.py`` shows the error). Each object therefore gets its own site ``z_m_{i}`` (B, 1, K)
    in a *sequential* plate, hence its own enumeration dim, and each frame costs 2^N terms. The
    input frames are observed inside the ``input_time`` plate (site ``obs_input``, frames are
    independent given the latents), the future ones in ``videos`` only (``obs_future``).
    """

    enumerates_missingness = True

    def sample_missingness_and_weight(self, plates: Plates) -> tuple[torch.Tensor, torch.Tensor]:
        B, K = plates.B, plates.K
        zs = []
        for i in pyro.plate("objects_sequential", plates.N):
            with plates.input_time:
                z = pyro.sample(f"z_m_{i}", self.missingness_prior((B, 1, K)), infer={"enumerate": "parallel"})
            zs.append(z.expand(*z.shape[:-3], B, 1, K))
        z_m = torch.cat(torch.broadcast_tensors(*zs), dim=-2)  # (..., B, N, K), enum dims on the left
        return z_m, 1 - z_m

    def observe(self, plates: Plates, frames_in: torch.Tensor, frames_future: torch.Tensor, batch: SceneBatch) -> None:
        K = plates.K
        with plates.input_time:
            visible = batch.visible[:, None, :K]  # (B, 1, K, 1, H, W)
            loc = frames_in.unsqueeze(-5)
            pyro.sample("obs_input", self.likelihood(loc, visible, 3), obs=batch.observed[:, None, :K])
        loc = frames_future.unsqueeze(-5).unsqueeze(-5)
        visible = batch.visible[:, None, None, K:]
        pyro.sample("obs_future", self.likelihood(loc, visible), obs=batch.observed[:, None, None, K:])
