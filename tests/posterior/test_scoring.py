"""Scoring on identifiable quantities: a calibrated posterior passes, a narrow, shifted or
swapped one is caught; missingness uses the exact probability; memory stays in chunks."""

import numpy as np
import pytest
import torch

from dive_pyro.posterior.scoring import collect, ink_overlap, score
from tests.fixtures import tiny

B, N, T, K, S = 64, 2, 8, 5, 200


def _data(sd_factor=1.0, shift=0.0, swap_at=None, seed=0):
    """Synthetic summaries: truth centres, posterior draws N(truth + ε, sd) with ε ~ N(0, sd)."""
    g = torch.Generator().manual_seed(seed)
    truth = 4 + 8 * torch.rand(B, N, T, 2, generator=g)
    truth[:, 1] += 14  # the two objects far apart
    sd = 0.5
    centre = truth + sd * torch.randn(B, N, T, 2, generator=g)  # the posterior's mean given y
    com = centre + shift + sd_factor * sd * torch.randn(S, B, N, T, 2, generator=g)
    if swap_at is not None:
        com[:, :, :, swap_at:] = com[:, :, [1, 0], swap_at:]
    missing = torch.zeros(B, N, T, dtype=torch.bool)
    missing[:, 0, 2:4] = True
    p = torch.where(missing[..., :K], 0.9, 0.1)
    return {
        "num_observed": K,
        "frame_size": 32,
        "com": com,
        "pose": com + 0.7,  # the sprite box sits 0.7 px off the ink: not identified
        "sse": torch.zeros(B, N, T),
        "empty": torch.zeros(S, B, N, T, dtype=torch.bool),
        "true_com": truth,
        "true_valid": torch.ones(B, N, T, dtype=torch.bool),
        "true_pose": truth,
        "missing": missing,
        "overlap": torch.zeros(B, N, T),
        "p_missing": p,
        "p_missing_source": "exact",
    }


def test_calibrated_posterior_covers_at_every_level_in_every_stratum():
    res = score(_data())
    for name in ("visible", "missing", "future"):
        p = res["positions"][name]
        tolerance = 3 * (0.25 / (2 * p["count"])) ** 0.5 + 0.01  # binomial noise of the 2·n coordinates
        assert np.abs(np.array(p["coverage"]) - np.array(p["coverage_levels"])).max() < tolerance, name
        assert p["failure_rate"] < 0.01
    assert res["identity"]["switches"] == 0
    assert res["box_centre"]["visible"]["median"] == pytest.approx(np.hypot(0.7, 0.7), abs=0.2)


@pytest.mark.parametrize("kwargs", [dict(sd_factor=0.5), dict(shift=1.0)])
def test_narrow_or_shifted_posterior_is_caught(kwargs):
    good, bad = score(_data()), score(_data(**kwargs))
    for name in ("visible", "missing", "future"):
        g, b = good["positions"][name], bad["positions"][name]
        assert b["coverage_90"] < 0.8 and b["crps"] > g["crps"], name


def test_a_swap_inside_a_video_is_an_identity_switch_not_only_rmse():
    res = score(_data(swap_at=3))
    assert res["identity"]["switches"] == 2 * B and res["identity"]["videos_with_switch"] == 1.0
    # the single per-video assignment turns the swapped half into failures (≈ 14 px errors)
    assert res["positions"]["future"]["failure_rate"] > 0.9
    assert res["identity"]["videos_reassigned_per_frame"] == 1.0


def test_missingness_scores_and_strata():
    res = score(_data())
    m = res["missingness"]
    assert m["auroc"] == 1.0 and m["brier"] == pytest.approx(0.01) and m["source"] == "exact"
    assert len(m["by_time"]) == K and m["by_overlap"][0]["count"] == B * N * K


def test_ink_overlap():
    o = torch.zeros(1, 2, 1, 1, 2, 2)
    o[0, 0, 0, 0, 0] = 1.0  # object 0: top row
    o[0, 1, 0, 0, :, 0] = 1.0  # object 1: left column
    assert ink_overlap(o)[0, :, 0].tolist() == [0.5, 0.5]


def test_collect_uses_the_exact_missing_probability_and_chunks_agree():
    model, guide, _, batch = tiny(videos=5)
    a = collect(model, guide, batch, 4, chunk_size=2, seed=0)
    guide.eval()
    with torch.no_grad():
        exact = guide.missing_probability(batch).double()
    assert a["p_missing_source"] == "exact" and torch.allclose(a["p_missing"], exact)
    assert a["com"].shape == (4, 5, 2, 8, 2) and a["sse"].shape == (5, 2, 8)
    res = score(a)
    assert 0 <= res["missingness"]["auroc"] <= 1 and np.isfinite(res["positions"]["visible"]["median"])
