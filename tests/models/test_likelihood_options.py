"""Likelihood and prior options: learnt pixel sds recover a known noise level, tempering, the
AR(1) appearance prior and the missingness prior (the official ``dive`` is unchanged by default)."""

import math

import pytest
import torch
from pyro import poutine

from dive_pyro.core.config import TINY, DiveConfig
from dive_pyro.inference import build
from dive_pyro.inference.train import local_params
from dive_pyro.models import DiveModel
from dive_pyro.models.appearance import AR1Normal
from dive_pyro.models.simulate import simulate


def _fit_scales(model, loc, obs, steps=600):
    visible = torch.ones_like(obs, dtype=torch.bool)
    params = [p for n, p in model.named_parameters() if "scale" in n]
    opt = torch.optim.Adam(params, lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (-model.likelihood(loc, visible).log_prob(obs).sum() / obs.numel()).backward()
        opt.step()


def test_learnt_global_sd_recovers_the_noise_level():
    g = torch.Generator().manual_seed(0)
    loc = torch.rand(4, 3, 1, 8, 8, generator=g)
    obs = loc + 0.12 * torch.randn(loc.shape, generator=g)  # simulated with a known sd
    with local_params():
        model = DiveModel(DiveConfig.tiny(pixel_scale="global", likelihood_scale=0.05))
    _fit_scales(model, loc, obs)
    mle = float((obs - loc).pow(2).mean().sqrt())  # the exact maximum-likelihood sd
    assert model.pixel_scale.item() == pytest.approx(mle, rel=1e-3)
    assert model.pixel_scale.item() == pytest.approx(0.12, rel=0.03)


def test_learnt_heteroscedastic_sd_recovers_background_and_ink_levels():
    g = torch.Generator().manual_seed(1)
    ink = torch.rand(8, 3, 1, 16, 16, generator=g) < 0.3
    loc = ink.float()  # rendered intensity 0 (background) or 1 (ink)
    sd = torch.where(ink, 0.25, 0.03)
    obs = loc + sd * torch.randn(loc.shape, generator=g)
    with local_params():
        model = DiveModel(DiveConfig.tiny(pixel_scale="intensity", likelihood_scale=0.1, ink_scale=0.1))
    _fit_scales(model, loc, obs, steps=1500)
    assert model.pixel_scale.item() == pytest.approx(float((obs - loc)[~ink].pow(2).mean().sqrt()), rel=1e-3)
    assert model.ink_scale.item() == pytest.approx(float((obs - loc)[ink].pow(2).mean().sqrt()), rel=1e-3)
    assert model.pixel_scale.item() == pytest.approx(0.03, rel=0.05)
    assert model.ink_scale.item() == pytest.approx(0.25, rel=0.05)
    # between the two, the sd interpolates linearly in the rendered intensity
    half = model.pixel_sd(torch.tensor(0.5))
    assert half.item() == pytest.approx(0.5 * (model.pixel_scale + model.ink_scale).item(), rel=1e-6)


def test_official_dive_has_no_new_parameters():
    with local_params():
        fixed = DiveModel(DiveConfig.tiny())
        learnt = DiveModel(DiveConfig.tiny(pixel_scale="intensity"))
    assert not any("scale_unconstrained" in k for k in fixed.state_dict())
    extra = set(learnt.state_dict()) - set(fixed.state_dict())
    assert extra == {"pixel_scale_unconstrained", "ink_scale_unconstrained"}


def _obs_log_prob(**config):
    torch.manual_seed(0)
    with local_params(), torch.no_grad():
        model, guide, _ = build("dive", **TINY, **config)
        batch = simulate(model, 2)
        torch.manual_seed(1)
        tr = poutine.trace(guide).get_trace(batch)
        mt = poutine.trace(poutine.replay(model, trace=tr)).get_trace(batch)
    mt.compute_log_prob()
    return mt.nodes["obs"]["log_prob_sum"], mt


def test_tempering_scales_the_log_likelihood_only():
    full, mt_full = _obs_log_prob()
    tempered, mt = _obs_log_prob(likelihood_power=0.25)
    assert float(tempered) == pytest.approx(0.25 * float(full), rel=1e-5)
    assert float(mt.nodes["z_a"]["log_prob_sum"]) == pytest.approx(float(mt_full.nodes["z_a"]["log_prob_sum"]))


def test_ar1_prior_is_the_stationary_gaussian_chain():
    rho, T, h = 0.8, 5, 3
    g = torch.Generator().manual_seed(2)
    z = torch.randn(4, T, h, generator=g)
    prior = AR1Normal(torch.zeros(4, T, h), rho)
    assert prior.batch_shape == (4, T) and prior.event_shape == (h,)
    cov = rho ** (torch.arange(T)[:, None] - torch.arange(T)[None]).abs().double()
    exact = torch.distributions.MultivariateNormal(torch.zeros(T, dtype=torch.float64), cov)
    expected = exact.log_prob(z.double().transpose(-1, -2)).sum(-1)  # each of h dims is one chain
    assert torch.allclose(prior.log_prob(z).sum(-1).double(), expected, atol=1e-4)
    draws = AR1Normal(torch.zeros(1, T, h), rho).expand((4000, T)).sample()
    lag1 = (draws[:, 1:] * draws[:, :-1]).mean()
    assert float(lag1) == pytest.approx(rho, abs=0.03)
    assert float(draws.var()) == pytest.approx(1.0, abs=0.05)
    # fading between frames costs KL: a jump is far less likely than under the i.i.d. prior
    jump = torch.zeros(1, T, h)
    jump[:, 3:] = 2.0
    iid = torch.distributions.Normal(0.0, 1.0).log_prob(jump).sum()
    assert float(AR1Normal(torch.zeros(1, T, h), 0.95).log_prob(jump).sum()) < float(iid) - 10
    with pytest.raises(ValueError, match="rho"):
        AR1Normal(torch.zeros(1, T, h), 1.0)


def test_appearance_ar_option_and_missing_prior():
    _, mt = _obs_log_prob(appearance_ar=0.9, missing_prior=0.2)
    site = mt.nodes["z_a"]
    assert isinstance(site["fn"], AR1Normal) and site["log_prob"].shape == site["value"].shape[:-1]
    x_m = mt.nodes["x_m"]["fn"]
    assert float(1 - x_m.cdf(torch.tensor(0.0)).mean()) == pytest.approx(0.2, rel=1e-5)
    with pytest.raises(ValueError, match="missing_prior"):
        DiveConfig(missing_prior=1.0)
    with pytest.raises(ValueError, match="pixel_scale"):
        DiveConfig(pixel_scale="learnt")
    assert math.isclose(DiveConfig().likelihood_power, 1.0)
