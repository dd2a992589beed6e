"""Guides of the model variants (see ``dive_pyro.models.variants``)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from dive_pyro.core.nets import MLP, ConvEncoder, NormalHead
from dive_pyro.core.structure import Plates, from_video_event, to_video_event
from dive_pyro.data.batch import SceneBatch
from dive_pyro.guides.dive import DiveGuide

__all__ = ["BernoulliDiveGuide", "DdpaeGuide", "EnumDiveGuide"]


class DdpaeGuide(DiveGuide):
    """Guide of the DDPAE ablation: no missingness posterior, no imputation (``u = h_y``), one
    static appearance per object ``z_a ~ N(heads(a_s))`` ``(B, N, 1, h)`` from DIVE's LSTM1.
    (DDPAE proper uses a forward-only pose encoder and an unconditioned 1-layer appearance LSTM;
    this ablation keeps DIVE's encoders so that only the missing-data machinery differs.)
    ``imputation_p`` and ``appearance_dropout_p`` are ignored."""

    uses_imputation = False

    def _build_missingness(self) -> None:
        pass

    def _build_appearance(self) -> None:
        c = self.config
        self.object_encoder = ConvEncoder(c.object_size, c.object_latent, c.ngf, 1, c.batch_norm)
        self.appearance_rnn = nn.LSTM(c.object_latent + c.hidden, c.hidden, c.appearance_layers, batch_first=True)
        self.static_fc = nn.Linear(c.hidden, c.static_dim)
        self.appearance_head = NormalHead(c.static_dim, c.appearance_dim)

    def sample_missingness_and_presence(self, plates: Plates, h_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_m = h_y.new_zeros(h_y.shape[:3])
        return z_m, 1 - z_m

    def missing_probability(self, batch: SceneBatch) -> torch.Tensor:
        return batch.observed.new_zeros(batch.batch_size, batch.num_objects, batch.num_observed)

    def sample_appearance(
        self, plates: Plates, y: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        _, _, _, a_s = self.static_appearance(y, z_p, present)
        loc, scale = self.appearance_head(a_s.unsqueeze(-2))  # (B, N, 1, h), outside the time plate
        z_a = pyro.sample("z_a", dist.Normal(loc, scale).to_event(1))
        return z_a.expand(*z_a.shape[:-2], plates.T, z_a.shape[-1])


class BernoulliDiveGuide(DiveGuide):
    """``q(z_m) = Bernoulli(Φ(µ_m/σ_m))`` from the same head as the Heaviside guide (so both
    variants put the same probability on "missing"), site ``z_m`` in ``videos`` only (see
    :class:`~dive_pyro.models.variants.BernoulliDiveModel`), with a data-dependent baseline for
    ``TraceGraph_ELBO``: a small MLP on the *detached* encoder states, trained by TraceGraph's
    baseline loss (AIR-style)."""

    def _build_missingness(self) -> None:
        super()._build_missingness()
        self.baseline_net = MLP(self.config.hidden, self.config.hidden, 1)

    @staticmethod
    def missing_logits(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``logit Φ(a)`` with ``a = µ/σ``, computed stably as ``log Φ(a) − log Φ(−a)``."""
        a = loc / scale
        return torch.special.log_ndtr(a) - torch.special.log_ndtr(-a)

    def sample_missingness_and_presence(self, plates: Plates, h_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.missing_logits(*self.missingness_params(h_y))
        baseline = self.baseline_net(h_y.detach().mean((1, 2))).reshape(-1, 1, 1)  # (B, 1, 1)
        z = pyro.sample(
            "z_m",
            dist.Bernoulli(logits=to_video_event(logits)).to_event(2),
            infer={"baseline": {"baseline_value": baseline}},
        )
        z_m = from_video_event(z)
        return z_m, 1 - z_m


class EnumDiveGuide(DiveGuide):
    """Guide of ``dive-enum``: no missingness site (the model sums ``z_m`` out exactly). The
    missingness head only gates the imputation softly, with ``present = 1 − Φ(µ_m/σ_m)``; it is
    not a posterior (use ``dive_pyro.inference.missing_probability`` for the exact one)."""

    def sample_missingness_and_presence(self, plates: Plates, h_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale = self.missingness_params(h_y)
        z_m = torch.special.ndtr(loc / scale)
        return z_m, 1 - z_m
