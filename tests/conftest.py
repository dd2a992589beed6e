"""Hermetic test setup: seeded, Pyro validation on, empty param store, one torch thread; plus a
tiny real DIVE checkpoint trained once per session (a few seconds) for evaluation/CLI tests."""

import os

import pyro
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
from tests.fixtures import VIDEO_OVERRIDES  # noqa: E402

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


TINY_OVERRIDES = [
    "steps=4",
    "batch_size=2",
    "progress=false",
    "tensorboard=false",
    "checkpoint_every=2",
    *VIDEO_OVERRIDES,
]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    from dive_pyro.inference import load_config, train

    out = tmp_path_factory.mktemp("tiny-run")
    config = load_config("tiny-cpu", [*TINY_OVERRIDES, f"out_dir={out}"])
    result = train(config)
    return result.checkpoint
