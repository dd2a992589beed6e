"""Likelihood power from residuals: a known correlation length and a known noise level are
recovered on simulated fields, the power they imply gives nominal coverage where λ = 1 does not,
and coverage calibration finds that power and flags a wrong one."""

import math

import pytest
import torch

from dive_pyro.posterior.tempering import (
    calibrate_power,
    correlation_area,
    residual_autocorrelation,
    residual_power,
    sandwich_power,
)
from tests.fixtures import tiny

Z90 = 1.6448536269514722


def _smoothed_noise(n: int, size: int, ell: float, seed: int) -> torch.Tensor:
    """Unit-variance white noise convolved (circularly) with a Gaussian kernel of sd ``ell`` px:
    correlation ``exp(-d² / 4ℓ²)``, correlation area ``4πℓ²``."""
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, size, size, generator=g, dtype=torch.float64)
    if ell == 0:
        return e
    k = torch.fft.fftfreq(size, dtype=torch.float64) * 2 * math.pi
    transfer = torch.exp(-0.5 * ell**2 * (k[:, None] ** 2 + k[None, :] ** 2))
    x = torch.fft.ifft2(torch.fft.fft2(e) * transfer).real
    return x / x.std()


@pytest.mark.parametrize("ell", [0.0, 1.0, 1.5, 2.0])
def test_correlation_area_recovers_a_known_correlation_length(ell):
    x = _smoothed_noise(64, 64, ell, seed=1)
    acf = residual_autocorrelation(x, max_lag=8)
    assert acf.shape == (17, 17) and acf[8, 8] == 1
    expected = max(4 * math.pi * ell**2, 1.0)
    assert correlation_area(acf) == pytest.approx(expected, rel=0.12)
    if ell:  # the lag-1 correlation is exp(-1 / 4ℓ²)
        assert float(acf[8, 9]) == pytest.approx(math.exp(-1 / (4 * ell**2)), abs=0.03)


def test_mask_leaves_pixels_out_of_every_pair():
    x = _smoothed_noise(32, 32, 1.5, seed=2)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, :, 16:] = False
    garbage = x.clone()
    garbage[:, :, 16:] = 1e6  # outside the mask: must not matter
    a, b = residual_autocorrelation(garbage, 5, mask), residual_autocorrelation(x[:, :, :16], 5)
    assert torch.allclose(a, b, atol=1e-9)
    with pytest.raises(ValueError, match="max_lag"):
        residual_autocorrelation(x, 40)


def test_sandwich_power_gives_nominal_coverage_and_power_one_does_not():
    """Intercept model y = θ + s·e, e correlated (ℓ = 1.5 px, A ≈ 28 px), fitted with an iid
    Normal(θ, σ²) likelihood, σ = s/2: the working posterior N(ȳ, σ²/(λn)) with λ from the residuals
    covers θ 90 % of the time; with λ = 1 it is ~10× too narrow."""
    s, sigma, theta, size = 0.12, 0.06, 0.3, 48
    y = theta + s * _smoothed_noise(400, size, 1.5, seed=3)
    n = size * size
    ybar = y.mean((-1, -2))
    resid = y - ybar[:, None, None]
    acf = residual_autocorrelation(resid, max_lag=8)
    s_hat = float(resid.pow(2).mean().sqrt())
    assert s_hat == pytest.approx(s, rel=0.05)  # the known noise level
    lam = sandwich_power(sigma, s_hat, correlation_area(acf))
    assert lam == pytest.approx((sigma / s) ** 2 / (4 * math.pi * 1.5**2), rel=0.15)

    def coverage(power: float) -> float:
        half = Z90 * sigma / math.sqrt(power * n)
        return float(((ybar - theta).abs() <= half).double().mean())

    assert 0.85 <= coverage(lam) <= 0.95
    assert coverage(1.0) < 0.3
    powers = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
    cal = calibrate_power(powers, [coverage(p) for p in powers], 0.9)
    assert cal["attainable"] and cal["power"] == pytest.approx(lam, rel=0.5)
    assert cal["coverage_error"][1.0] < -0.6  # the untempered likelihood is flagged over-confident
    assert cal["coverage_error"][0.003] > 0.05  # and a far too small power under-confident


def test_calibrate_power_interpolates_in_log_power_and_reports_the_unattainable():
    cal = calibrate_power([0.01, 0.1, 1.0], [0.95, 0.85, 0.2], 0.9)
    assert cal["power"] == pytest.approx(10**-1.5)
    out = calibrate_power([0.01, 1.0], [0.6, 0.2], 0.9)  # every power over-confident
    assert not out["attainable"] and math.isnan(out["power"])
    with pytest.raises(ValueError, match="two positive"):
        calibrate_power([1.0], [0.5], 0.9)
    with pytest.raises(ValueError, match="level"):
        calibrate_power([0.1, 1.0], [0.9, 0.5], 1.5)
    with pytest.raises(ValueError, match="area"):
        sandwich_power(0.05, 0.1, 0.5)


def test_residual_power_of_a_dive_model():
    model, guide, _, batch = tiny(videos=3)
    model.eval(), guide.eval()
    out = residual_power(model, guide, batch, max_lag=2)
    assert out["model_sd"] == model.config.likelihood_scale and out["residual_sd"] > 0
    assert out["correlation_area_px"] >= 1 and 0 < out["power"]
    assert out["power"] == pytest.approx(
        sandwich_power(out["model_sd"], out["residual_sd"], out["correlation_area_px"])
    )
    assert out["acf"].shape == (5, 5)
