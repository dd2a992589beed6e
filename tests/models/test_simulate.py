"""Simulated videos are draws y ~ p(y | z), not the likelihood's (clipped) mean."""

import pyro
import pytest
import torch
from pyro import poutine

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.registry import build
from dive_pyro.models import simulate
from tests.fixtures import VIDEO as TINY


def _model(**kw):
    with pyro.settings.context(module_local_params=True):
        return build("dive", **{**TINY, **kw})[0]


def test_noise_is_a_likelihood_draw_not_clipped():
    model = _model(likelihood_scale=0.3)
    pyro.set_rng_seed(0)
    batch = simulate(model, 64, noise=True)
    mean = simulate(model, 64, latents=batch.meta["latents"]).observed  # the noise-free rendering
    resid = batch.observed - mean
    assert resid.std().item() == pytest.approx(0.3, rel=0.02)  # clipping would shrink it
    assert resid.mean().abs().item() < 0.01
    assert batch.observed.min() < 0 and not batch.bounded
    # the model scores the draw (relaxed range validation for simulated batches)
    trace = poutine.trace(poutine.condition(model, data=batch.meta["latents"])).get_trace(batch)
    assert torch.isfinite(trace.log_prob_sum())


def test_noise_free_simulation_stays_bounded():
    batch = simulate(_model(), 4)
    assert batch.bounded and 0 <= batch.observed.min() and batch.observed.max() <= 1


def test_unbounded_frames_rejected_unless_marked():
    batch = simulate(_model(likelihood_scale=0.3), 2, noise=True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        SceneBatch(**{**batch.__dict__, "bounded": True})
