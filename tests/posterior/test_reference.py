"""Guide vs NUTS: the comparison catches a shifted or over-confident guide; NUTS on the position
path recovers a known posterior (slow)."""

import pytest
import torch

from dive_pyro.core.nets import constrain_pose
from dive_pyro.inference.reference import nuts_poses, pose_potential
from dive_pyro.posterior.reference import compare_positions, compare_to_reference
from tests.fixtures import tiny


def _draws(n, shift=0.0, sd=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return shift + sd * torch.randn(n, 2, 2, 5, 2, generator=g)


def test_comparison_passes_the_same_posterior_and_catches_wrong_ones():
    strata = {"all": torch.ones(2, 2, 5, dtype=torch.bool)}
    ref = _draws(4000)
    same = compare_positions(_draws(4000, seed=1), ref, strata)["all"]
    assert same["offset_in_nuts_sd_median"] < 0.05 and same["sd_ratio_median"] == pytest.approx(1, abs=0.05)
    shifted = compare_positions(_draws(4000, shift=2.0, seed=1), ref, strata)["all"]
    assert shifted["offset_in_nuts_sd_median"] == pytest.approx(2.0, abs=0.1)
    narrow = compare_positions(_draws(4000, sd=0.5, seed=1), ref, strata)["all"]
    assert narrow["sd_ratio_median"] == pytest.approx(0.5, abs=0.05)


def test_potential_is_prior_only_without_visible_pixels():
    model, guide, _, batch = tiny(videos=1)
    batch.visible[:] = False
    fixed_z_a = torch.zeros(1, 2, 8, 4)
    U = pose_potential(model, batch, fixed_z_a, None)
    raw = torch.zeros(1, 2, 8, 3)
    raw[..., 0] = model.config.s0
    sd0 = float((model.pose_scale[0] ** 2 + model.config.beta_scale**2).sqrt())
    bump = raw.clone()
    bump[0, 0, :, 0] += sd0  # the whole path: the increments are unchanged
    with torch.no_grad():
        assert float(U({"raw": bump}) - U({"raw": raw})) == pytest.approx(0.5, rel=1e-4)  # one sd: ½ nat


@pytest.mark.slow
def test_nuts_recovers_the_prior_path_when_nothing_is_visible():
    model, guide, _, batch = tiny(videos=1)
    batch.visible[:] = False  # posterior = prior: increments N(0, sd_β), raw^0 ~ N(µ0, (sd0² + sd_β²)^½)
    res = nuts_poses(model, guide, batch, num_warmup=50, num_samples=150, num_chains=1, max_tree_depth=4, seed=0)
    raw = res["raw"].reshape(-1, 2, 8, 3)
    steps = raw.diff(dim=-2)  # the increments are well identified: sd_β = 0.1 each
    assert steps.std(0).median().item() == pytest.approx(model.config.beta_scale, rel=0.3)
    assert steps.mean(0).abs().median() < 0.05 and sum(res["divergences"].values()) == 0
    # the common offset of the path (prior sd ≈ 1 in x) mixes slowly in 150 draws: only checked to spread
    assert raw[..., 1].std(0).median() > 0.1
    assert constrain_pose(raw, model.config.s0).isfinite().all()


@pytest.mark.slow
def test_reference_comparison_on_a_video_reports_rhat():
    model, guide, _, batch = tiny(videos=1)
    res = compare_to_reference(
        model, guide, batch, num_warmup=20, num_samples=20, num_chains=2, guide_samples=50, max_tree_depth=4
    )
    assert res["mcmc"]["rhat_max"] > 0.9 and res["mcmc"]["ess_bulk_min"] > 0
    assert res["comparison"]["visible"]["count"] + res["comparison"]["missing"]["count"] == 2 * 5 * 2
