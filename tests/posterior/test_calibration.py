"""SBC machinery on a conjugate toy with a closed-form posterior: the exact posterior passes,
the same with its sd halved, doubled or its mean shifted fails (χ² and the ECDF band)."""

import numpy as np
import pytest
import torch

from dive_pyro.posterior import calibration as cal

SIGMA = 0.5  # y | θ ~ N(θ, σ²), θ ~ N(0, 1)  ⇒  θ | y ~ N(y / (1 + σ²), σ² / (1 + σ²))


def _ranks(num_sims=1000, num_draws=19, sd_factor=1.0, shift_sds=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(num_sims, generator=g)
    y = theta + SIGMA * torch.randn(num_sims, generator=g)
    mean, sd = y / (1 + SIGMA**2), (SIGMA**2 / (1 + SIGMA**2)) ** 0.5
    draws = mean + shift_sds * sd + sd_factor * sd * torch.randn(num_draws, num_sims, generator=g)
    return cal.sbc_ranks(draws, theta)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_posterior_passes(seed):
    r = _ranks(seed=seed)
    assert cal.rank_uniformity(r, 19, num_bins=10)["p_value"] > 0.01
    assert cal.ecdf_test(r, 19)["passed"]


@pytest.mark.parametrize("kwargs", [dict(sd_factor=0.5), dict(sd_factor=2.0), dict(shift_sds=0.5)])
def test_wrong_posterior_fails(kwargs):
    r = _ranks(**kwargs)
    assert cal.rank_uniformity(r, 19, num_bins=10)["p_value"] < 1e-3
    test = cal.ecdf_test(r, 19)
    assert not test["passed"] and test["max_excess"] > 0


def test_shift_direction_shows_in_the_ecdf():
    # posterior too far right: the truth ranks low, the ECDF rises early (above the diagonal)
    test = cal.ecdf_test(_ranks(shift_sds=1.0), 19)
    assert test["ecdf_minus_z"].max() > 0.1 and test["ecdf_minus_z"].min() > -0.02


def test_band_is_simultaneous_not_pointwise():
    band = cal.ecdf_band(200, 19, prob=0.95, num_trials=4000)
    assert band["gamma"] < 0.05  # adjusted below the pointwise level
    # simultaneous coverage of fresh uniform rank samples is close to the nominal 95 %
    rng = np.random.default_rng(7)
    inside = 0
    for _ in range(400):
        r = torch.as_tensor(rng.integers(0, 20, size=200))
        inside += cal.ecdf_test(r, 19, seed=0)["passed"]
    assert 0.9 <= inside / 400 <= 0.99


def test_bad_input():
    with pytest.raises(ValueError, match=r"ranks must lie in \[0, 5\]"):
        cal.rank_uniformity(torch.tensor([7]), 5)
    with pytest.raises(ValueError, match="prob"):
        cal.ecdf_band(10, 5, prob=1.5)
    with pytest.raises(ValueError, match="empty"):
        cal.ecdf_test(torch.tensor([], dtype=torch.long), 5)
