"""Recovery: videos simulated from the model itself with known latents; after short training of
the guide (the model's parameters stay the generating ones) the missingness posterior must mark
the truly missing (object, frame) pairs, on the training videos and on fresh ones.

Scene: 8×8 frames, N = 2 sprites of 4×4 pixels (s = 2), object 0 in the top-left quadrant and
object 1 in the bottom-right one (so slots are identifiable), K = 4 input frames, each object
missing with probability 0.3 per frame (x_m = +1 if missing, −1 if present).

Thresholds: a detector that ignores the video has recall = false-positive rate; we require
recall ≥ 0.9 and false-positive rate ≤ 0.1 at the 1/2 threshold. A missing 4×4 sprite of
intensity ≈ 0.5 changes the Normal(·, 0.3) log-likelihood by ≈ 16·0.25/0.18 ≈ 22 nats, so an
exact posterior is essentially certain; the margin is for the short training.
"""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from dive_pyro.core.config import TINY
from dive_pyro.inference import build
from dive_pyro.models.simulate import simulate

N, T, K = 2, 5, 4
CONFIG = {**TINY, "num_frames": T, "num_observed": K}


def _latents(B, seed):
    raw = math.atanh(1 / 1.5)  # constrained (x, y) = tanh(raw)·(s − 0.5) = ±1: quadrant centres
    g = torch.Generator().manual_seed(seed)
    missing = torch.rand(B, N, K, generator=g) < 0.3
    appearance = torch.randn(1, N, 1, 4, generator=torch.Generator().manual_seed(1))
    return missing, {
        "x_m": missing.float() * 2 - 1,
        "z_p_0": torch.tensor([[2.0, raw, raw], [2.0, -raw, -raw]])[:, None].expand(B, N, 1, 3),
        "beta": torch.zeros(B, N, T, 3),
        "z_a": appearance.expand(B, N, T, 4),
    }


def _rates(guide, batch, missing):
    guide.eval()
    with torch.no_grad():
        called = guide.missing_probability(batch) > 0.5
    guide.train()
    return called[missing].float().mean().item(), called[~missing].float().mean().item()


def _train(model, guide, batch, steps, lr, known=None):
    """Guide-only training, torch-native (module-local params)."""
    known = known or {}
    loss_fn = Trace_ELBO()(poutine.condition(model, data=known), poutine.block(guide, hide=list(known)))
    optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(batch).backward()
        optimizer.step()


def test_missingness_posterior_recovers_missing_objects_given_poses_and_appearances():
    """Poses and appearances held at their true values: only the missingness is inferred."""
    pyro.set_rng_seed(0)
    with pyro.settings.context(module_local_params=True):
        model, guide, _ = build("dive", **CONFIG)
        model.eval()
        missing, latents = _latents(64, seed=1)
        batch = simulate(model, 64, latents=latents)
        known = {k: v for k, v in latents.items() if k != "x_m"}
        recall0, fpr0 = _rates(guide, batch, missing)
        _train(model, guide, batch, steps=250, lr=3e-3, known=known)
        recall, fpr = _rates(guide, batch, missing)
        fresh_missing, fresh_latents = _latents(64, seed=2)
        fresh_recall, fresh_fpr = _rates(guide, simulate(model, 64, latents=fresh_latents), fresh_missing)
    assert recall0 == fpr0  # untrained: the same call for every pair
    assert recall >= 0.9 and fpr <= 0.1, (recall, fpr)
    assert fresh_recall >= 0.9 and fresh_fpr <= 0.1, (fresh_recall, fresh_fpr)  # amortised


@pytest.mark.slow
def test_missingness_posterior_recovers_missing_objects_with_everything_inferred():
    """All latents inferred by the guide (≈ 1 min on one CPU thread); up to the slot labels."""
    pyro.set_rng_seed(0)
    with pyro.settings.context(module_local_params=True):
        model, guide, _ = build("dive", **CONFIG)
        model.eval()
        missing, latents = _latents(64, seed=1)
        batch = simulate(model, 64, latents=latents)
        _train(model, guide, batch, steps=2000, lr=3e-3)
        guide.eval()
        with torch.no_grad():
            called = guide.missing_probability(batch) > 0.5
    swapped = (called.flip(1) == missing).float().mean((1, 2)) > (called == missing).float().mean((1, 2))
    called = torch.where(swapped[:, None, None], called.flip(1), called)  # label switching per video
    recall, fpr = called[missing].float().mean().item(), called[~missing].float().mean().item()
    assert recall >= 0.8 and fpr <= 0.2, (recall, fpr)
