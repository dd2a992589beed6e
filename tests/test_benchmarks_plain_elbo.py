"""The plain-torch −ELBO of the benchmark equals Pyro's Trace_ELBO on the same draws."""

import importlib.util
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

from tests.fixtures import tiny

spec = importlib.util.spec_from_file_location(
    "plain_elbo", Path(__file__).resolve().parents[1] / "benchmarks" / "plain_elbo.py"
)
plain_elbo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plain_elbo)


@pytest.mark.parametrize("training", [False, True])
def test_plain_loss_equals_trace_elbo_on_the_same_draws(training):
    model, guide, _, batch = tiny(videos=3)
    model.train(training)
    guide.train(training)
    with pyro.settings.context(module_local_params=True):
        pyro.set_rng_seed(5)
        expected = Trace_ELBO().differentiable_loss(model, guide, batch)
        pyro.set_rng_seed(5)
        got = plain_elbo.plain_loss(model, guide, batch)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert pyro.sample is not plain_elbo._Tape.sample  # patch undone
    got.backward()
    assert all(torch.isfinite(p.grad).all() for p in guide.parameters() if p.grad is not None)
