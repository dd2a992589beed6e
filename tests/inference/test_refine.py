"""Test-time refinement: per-video SVI on the guide's outputs reaches the exact posterior of a
conjugate toy, and lowers the DIVE loss of the batch it refines."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from dive_pyro.core.config import TINY
from dive_pyro.inference import build, sample_posterior
from dive_pyro.inference.refine import POSE_SITES, GuideOffsets, refine, tempered_start
from dive_pyro.inference.train import local_params
from dive_pyro.models.simulate import simulate

Y = torch.tensor([1.0, -2.0, 0.5])
NOISE = 0.5


def _toy_model(y):
    with pyro.plate("videos", 3):
        z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0))
        pyro.sample("y", dist.Normal(z, NOISE), obs=y)


def _toy_guide(y):  # an "amortised" guide that ignores the data: the prior
    with pyro.plate("videos", 3):
        pyro.sample("z", dist.Normal(torch.zeros(3), 1.0))


def test_refinement_reaches_the_exact_posterior_per_video():
    pyro.set_rng_seed(0)
    refined = refine(_toy_model, _toy_guide, Y, 150, lr=0.1, num_particles=8)
    precision = 1.0 + 1.0 / NOISE**2  # conjugate Normal: exact posterior per video
    exact_mean, exact_sd = (Y / NOISE**2) / precision, precision**-0.5
    shift, log_scale = refined.offsets.offsets["z"]
    assert torch.allclose(shift, exact_mean, atol=0.12)  # the guide started at 0 (prior mean)
    assert torch.allclose(log_scale.exp(), torch.full((3,), exact_sd), atol=0.08)  # started at 1


def test_init_log_scale_starts_the_named_sites_wider_and_refinement_still_converges():
    pyro.set_rng_seed(3)
    start = refine(_toy_model, _toy_guide, Y, 0, init_log_scale={"z": 1.0})
    with torch.no_grad():
        pyro.poutine.trace(start).get_trace(Y)
    shift, log_scale = start.offsets.offsets["z"]
    assert torch.equal(shift, torch.zeros(3)) and torch.equal(log_scale, torch.ones(3))
    assert refine(_toy_model, _toy_guide, Y, 0, init_log_scale={"other": 1.0}).offsets.init_log_scale == {"other": 1.0}
    refined = refine(_toy_model, _toy_guide, Y, 150, lr=0.1, num_particles=8, init_log_scale={"z": 1.0})
    exact_sd = (1.0 + 1.0 / NOISE**2) ** -0.5
    assert torch.allclose(refined.offsets.offsets["z"][1].exp(), torch.full((3,), exact_sd), atol=0.08)


def test_refinement_towards_a_tempered_posterior_reaches_it():
    power = 0.2
    pyro.set_rng_seed(4)
    refined = refine(_toy_model, _toy_guide, Y, 300, lr=0.05, num_particles=32, likelihood_power=power)
    precision = 1.0 + power / NOISE**2  # the likelihood to the power 0.2: exact tempered posterior
    shift, log_scale = refined.offsets.offsets["z"]
    assert torch.allclose(shift, (power * Y / NOISE**2) / precision, atol=0.12)
    assert torch.allclose(log_scale.exp(), torch.full((3,), precision**-0.5), atol=0.08)
    untempered_sd = (1.0 + 1.0 / NOISE**2) ** -0.5
    assert (log_scale.exp() > 1.5 * untempered_sd).all()  # wider than the untempered posterior
    start = tempered_start(0.01)
    assert set(start) == set(POSE_SITES) and start["beta"] == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="power"):
        tempered_start(0.0)


def test_zero_steps_is_the_guide_and_bad_arguments():
    pyro.set_rng_seed(1)
    refined = refine(_toy_model, _toy_guide, Y, 0)
    pyro.set_rng_seed(2)
    a = pyro.poutine.trace(refined).get_trace(Y).nodes["z"]["value"]
    pyro.set_rng_seed(2)
    b = pyro.poutine.trace(_toy_guide).get_trace(Y).nodes["z"]["value"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="non-negative"):
        refine(_toy_model, _toy_guide, Y, -1)
    assert GuideOffsets().params == []


def test_refinement_lowers_the_dive_loss_and_feeds_sample_posterior():
    with local_params():
        model, guide, _ = build("dive-markov", **TINY, batch_norm=False)
    model.eval(), guide.eval()
    pyro.set_rng_seed(3)
    batch = simulate(model, 2)
    elbo = Trace_ELBO(num_particles=20)
    pyro.set_rng_seed(4)
    refined, losses = refine(model, guide, batch, 30, lr=0.05, return_losses=True)
    with torch.no_grad():
        pyro.set_rng_seed(5)
        before = elbo.loss(model, guide, batch)
        pyro.set_rng_seed(5)
        after = elbo.loss(model, refined, batch)
    assert len(losses) == 30 and after < before
    assert not any(p.requires_grad for p in guide.parameters() if p.grad is not None)
    draws = sample_posterior(model, guide, batch, 2, seed=0, refine_steps=2)
    assert draws["z_p"].shape[:2] == (2, 2)
    with pytest.raises(ValueError, match="parallel"):
        sample_posterior(model, guide, batch, 2, parallel=True, refine_steps=2)


def test_refined_missingness_is_the_guides_at_zero_steps_and_moves_after_refinement():
    with local_params():
        model, guide, _ = build("dive", **TINY, batch_norm=False)
    model.eval(), guide.eval()
    pyro.set_rng_seed(6)
    batch = simulate(model, 2)
    exact = guide.missing_probability(batch)
    assert torch.allclose(refine(model, guide, batch, 0).missing_probability(batch), exact)
    pyro.set_rng_seed(7)
    moved = refine(model, guide, batch, 5, lr=0.2).missing_probability(batch)
    assert moved.shape == exact.shape and ((moved >= 0) & (moved <= 1)).all()
    assert not torch.allclose(moved, exact)  # the x_m offsets were refined too
    with local_params():
        ddpae_model, ddpae_guide, _ = build("ddpae", **TINY, batch_norm=False)
    with pytest.raises(ValueError, match="no Gaussian missingness site"):
        refine(ddpae_model, ddpae_guide, batch, 0).missing_probability(batch)
