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


def test_sbc_uniform_for_calibrated_and_not_for_biased():
    g = torch.Generator().manual_seed(2)
    truth = torch.randn(2000, generator=g)
    good = checks.sbc_ranks(torch.randn(19, 2000, generator=g), truth)
    bad = checks.sbc_ranks(torch.randn(19, 2000, generator=g) * 0.3, truth)  # overconfident
    assert checks.rank_uniformity(good, 19, num_bins=10)["p_value"] > 0.001
    assert checks.rank_uniformity(bad, 19, num_bins=10)["p_value"] < 1e-6


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: checks.auroc(torch.rand(3), torch.ones(4).bool()), "same shape"),
        (lambda: checks.auroc(torch.tensor([1.5]), torch.ones(1).bool()), "probabilities"),
        (lambda: checks.interval_coverage(torch.rand(5, 3), torch.rand(3), 1.5), "level"),
        (lambda: checks.rank_uniformity(torch.tensor([7]), 5), r"ranks must lie in \[0, 5\]"),
        (lambda: checks.match_objects(torch.rand(1, 1, 3, 2), torch.rand(1, 2, 3, 2)), "at least as many"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
