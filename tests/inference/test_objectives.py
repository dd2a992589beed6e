"""Per-video IWAE: equal to the ELBO at K = 1, the exact marginal likelihood as K grows."""

import math
from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from dive_pyro.core.config import TINY
from dive_pyro.inference import build
from dive_pyro.inference.objectives import VideoIWAE, per_video_log_weights
from dive_pyro.inference.registry import make_elbo
from dive_pyro.inference.train import local_params
from dive_pyro.models.simulate import simulate

Y = torch.tensor([0.5, -1.0, 2.0])


def _toy_model(batch):
    with pyro.plate("videos", 3, dim=-3):
        z = pyro.sample("z", dist.Normal(torch.zeros(3, 1, 1), 1.0))
        pyro.sample("y", dist.Normal(z, 1.0), obs=batch.observed)


def _toy_guide(batch):
    with pyro.plate("videos", 3, dim=-3):
        pyro.sample("z", dist.Normal(torch.zeros(3, 1, 1), 1.0))  # the prior as proposal


TOY = SimpleNamespace(batch_size=3, observed=Y.reshape(3, 1, 1))


def test_iwae_approaches_the_exact_marginal_likelihood_per_video():
    pyro.set_rng_seed(0)
    lw = per_video_log_weights(_toy_model, _toy_guide, TOY, 4000)
    assert lw.shape == (4000, 3)
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(Y)  # p(y_b) = N(0, 2)
    iwae = torch.logsumexp(lw, 0) - math.log(4000)
    assert torch.allclose(iwae, exact, atol=0.03)
    # the loss is the negative sum of the per-video bounds, and K = 1 is the ELBO's estimate
    pyro.set_rng_seed(1)
    loss = VideoIWAE(num_particles=1).loss(_toy_model, _toy_guide, TOY)
    pyro.set_rng_seed(1)
    assert loss == pytest.approx(Trace_ELBO().loss(_toy_model, _toy_guide, TOY), rel=1e-6)


def test_per_video_weights_beat_a_batch_weight():
    # the check can fail: one weight for the whole batch (RenyiELBO-style) is a looser bound
    # (in expectation: 400 repeats of K = 8)
    pyro.set_rng_seed(2)
    lw = per_video_log_weights(_toy_model, _toy_guide, TOY, 3200).reshape(400, 8, 3)
    per_video = float((torch.logsumexp(lw, 1) - math.log(8)).sum(-1).mean())
    joint = float((torch.logsumexp(lw.sum(-1), 1) - math.log(8)).mean())
    assert per_video > joint + 0.03


def test_iwae_objective_on_the_dive_model():
    with local_params():
        model, guide, elbo = build("dive-markov", **TINY, objective="iwae", num_particles=3)
    assert isinstance(elbo, VideoIWAE) and elbo.num_particles == 3
    batch = simulate(model, 2)
    loss = elbo.loss_and_grads(model, guide, batch)
    assert math.isfinite(loss)
    assert guide.pose_coupling.weight.grad is not None
    with pytest.raises(ValueError, match="Trace_ELBO"):
        make_elbo(pyro.infer.TraceEnum_ELBO, build.__globals__["DiveConfig"](objective="iwae"))
