import numpy as np
import pytest
import torch
from scipy import stats

from dive_pyro.posterior import diagnostics as checks


def test_auroc_equals_mann_whitney_and_handles_ties():
    probs = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    labels = torch.tensor([0, 0, 1, 1, 1, 0]).bool()
    # by hand: positives {0.35, 0.8, 0.4}, negatives {0.1, 0.4, 0.9}
    # pairs won: 0.35>0.1 (1); 0.8>0.1,0.4 (2); 0.4>0.1 (1) + tie with 0.4 (0.5) -> 4.5 / 9
    assert checks.auroc(probs, labels) == pytest.approx(4.5 / 9)
    u = stats.mannwhitneyu(probs[labels].numpy(), probs[~labels].numpy()).statistic
    assert checks.auroc(probs, labels) == pytest.approx(u / 9)
    assert np.isnan(checks.auroc(probs, torch.ones(6, dtype=torch.bool)))


def test_auroc_perfect_and_inverted():
    y = torch.tensor([0, 0, 1, 1]).bool()
    assert checks.auroc(torch.tensor([0.1, 0.2, 0.7, 0.9]), y) == 1.0
    assert checks.auroc(torch.tensor([0.9, 0.7, 0.2, 0.1]), y) == 0.0


def test_ece_hand_computed():
    probs = torch.tensor([0.05, 0.05, 0.95, 0.95, 0.55])
    labels = torch.tensor([0, 1, 1, 1, 0]).bool()
    # bin 0: conf .05 freq .5 n2 ; bin 9: conf .95 freq 1 n2 ; bin 5: conf .55 freq 0 n1
    expected = (2 * 0.45 + 2 * 0.05 + 1 * 0.55) / 5
    assert checks.expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_ece_of_calibrated_draws_is_small():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200_000, generator=g)
    y = torch.rand(200_000, generator=g) < p
    assert checks.expected_calibration_error(p, y) < 0.01


def test_match_objects_recovers_permutation_and_rmse():
    true = torch.randn(3, 2, 5, 2)
    pred = true[:, [1, 0]] + 0.01
    perm = checks.match_objects(pred, true)
    assert perm.tolist() == [[1, 0]] * 3
    matched = torch.gather(pred, 1, perm[:, :, None, None].expand_as(true))
    assert checks.position_rmse(matched, true) == pytest.approx(0.01 * np.sqrt(2), rel=1e-5)


def test_interval_coverage_of_exact_posterior():
    g = torch.Generator().manual_seed(1)
    truth = torch.randn(4000, generator=g)
    samples = torch.randn(400, 4000, generator=g)  # draws from the same N(0,1)
    assert checks.interval_coverage(samples, truth, 0.9) == pytest.approx(0.9, abs=0.02)
    assert checks.interval_coverage(samples, truth, 0.5) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: checks.auroc(torch.rand(3), torch.ones(4).bool()), "same shape"),
        (lambda: checks.auroc(torch.tensor([1.5]), torch.ones(1).bool()), "probabilities"),
        (lambda: checks.interval_coverage(torch.rand(5, 3), torch.rand(3), 1.5), "level"),
        (lambda: checks.match_objects(torch.rand(1, 1, 3, 2), torch.rand(1, 2, 3, 2)), "at least as many"),
        (lambda: checks.match_per_frame(torch.rand(1, 1, 3, 2), torch.rand(1, 2, 3, 2)), "at least as many"),
        (lambda: checks.coverage_curve(torch.rand(5, 3), torch.rand(3), [0.0]), "levels"),
        (lambda: checks.crps(torch.rand(1, 3), torch.rand(3)), "at least 2"),
        (lambda: checks.reliability_curve(torch.rand(3), torch.ones(3).bool(), strategy="x"), "strategy"),
        (lambda: checks.centre_of_mass(torch.rand(3)), "H, W"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_brier_and_log_loss_hand_computed():
    p = torch.tensor([0.9, 0.2, 0.6])
    y = torch.tensor([1, 0, 0]).bool()
    assert checks.brier_score(p, y) == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert checks.log_loss(p, y) == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)


def test_adaptive_bins_hold_equal_counts_and_catch_overconfidence():
    g = torch.Generator().manual_seed(3)
    p = torch.rand(100_000, generator=g)
    curve = checks.reliability_curve(p, p > 0.5, 10, "quantile")
    assert np.allclose(curve["count"], 10_000, atol=2)
    y = torch.rand(100_000, generator=g) < p
    good = checks.missingness_scores(p, y)
    assert good["ece_adaptive"] < 0.01 and good["ece_uniform"] < 0.01
    # the same labels scored with sharpened (over-confident) probabilities
    sharp = torch.sigmoid(4 * torch.logit(p.clamp(1e-6, 1 - 1e-6)))
    bad = checks.missingness_scores(sharp, y)
    assert bad["ece_adaptive"] > 0.1 and bad["log_loss"] > good["log_loss"] and bad["brier"] > good["brier"]
    assert bad["auroc"] == pytest.approx(good["auroc"], abs=1e-4)  # ranking unchanged: AUROC is blind to it


def test_centre_of_mass_exact():
    img = torch.zeros(2, 8, 10)
    img[0, 2, 3] = 1.0  # one pixel at column 3, row 2
    img[0, 4, 7] = 3.0
    com, mass = checks.centre_of_mass(img)
    assert com[0].tolist() == pytest.approx([(3 + 3 * 7) / 4, (2 + 3 * 4) / 4])
    assert mass.tolist() == [4.0, 0.0] and torch.isnan(com[1]).all()


def test_per_frame_matching_counts_identity_switches():
    true = torch.tensor([[0.0, 0.0], [10.0, 10.0]])[None, :, None].expand(1, 2, 6, 2).clone()
    pred = true.clone()
    pred[0, :, 3:] = pred[0, [1, 0], 3:]  # the model's slots swap at t = 3
    assign = checks.match_per_frame(pred, true)
    assert assign[0, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert checks.identity_switches(assign).tolist() == [2]  # one switch for each true object
    # one Hungarian assignment per video cannot represent it: half of the frames are 14 px off
    perm = checks.match_objects(pred, true)
    matched = torch.gather(pred, 1, perm[:, :, None, None].expand_as(true))
    assert checks.position_rmse(matched, true) == pytest.approx(np.sqrt(200 / 2))
    # frames outside the gate are skipped: a switch back after a lost track still counts once
    a = torch.tensor([[[0, 1, 1, 0, 0]]])
    assert checks.identity_switches(a).tolist() == [2]
    assert checks.identity_switches(a, torch.tensor([[[True, False, False, True, True]]])).tolist() == [0]


def test_coverage_curve_exact_passes_and_overconfident_fails():
    g = torch.Generator().manual_seed(4)
    truth = torch.randn(4000, generator=g)
    levels = np.array([0.1, 0.5, 0.9])
    exact = checks.coverage_curve(torch.randn(200, 4000, generator=g), truth, levels)
    assert np.abs(exact - levels).max() < 0.03
    narrow = checks.coverage_curve(0.5 * torch.randn(200, 4000, generator=g), truth, levels)
    assert (narrow < levels - 0.04).all()
    shifted = checks.coverage_curve(1.0 + torch.randn(200, 4000, generator=g), truth, levels)
    assert (shifted < levels - 0.03).all()


def test_crps_closed_form_and_point_mass():
    g = torch.Generator().manual_seed(5)
    # CRPS of N(0, 1) at y = 0 is 2φ(0) − 1/√π
    value = checks.crps(torch.randn(4000, 1, generator=g), torch.zeros(1))
    assert float(value) == pytest.approx(2 / np.sqrt(2 * np.pi) - 1 / np.sqrt(np.pi), abs=0.02)
    assert float(checks.crps(torch.full((5, 1), 2.0), torch.tensor([2.0]))) == pytest.approx(0.0)
    assert float(checks.crps(torch.full((5, 1), 2.0), torch.tensor([5.0]))) == pytest.approx(3.0)


def test_distance_summary():
    d = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, float("nan")])
    s = checks.distance_summary(d, failure_px=3.0)
    assert s["median"] == 2.0 and s["failure_rate"] == pytest.approx(0.2) and s["count"] == 5
