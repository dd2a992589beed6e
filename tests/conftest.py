"""Hermetic test setup: seeded, Pyro validation on, empty param store, one torch thread."""

import os

import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# two cores shared with other work: one thread avoids the 25-500x slow-downs of oversubscription
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _hermetic():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_default_dtype(torch.float32)
    yield
    pyro.clear_param_store()
