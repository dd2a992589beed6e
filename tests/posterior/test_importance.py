"""PSIS diagnostics: an exact proposal passes, a too-narrow one is caught; per-video log weights
of the DIVE guide add up to the joint log density ratio."""

import numpy as np
import pytest
import torch
from pyro import poutine

from dive_pyro.inference.importance import log_weights
from dive_pyro.posterior.importance import psis_check, psis_summary, sir_indices
from tests.fixtures import tiny


def _normal_lw(proposal_sd, S=4000, B=4, seed=0):
    """Target N(0, 1), proposal N(0, sd²): log w = log N(x; 0, 1) − log N(x; 0, sd)."""
    g = torch.Generator().manual_seed(seed)
    x = proposal_sd * torch.randn(S, B, generator=g, dtype=torch.float64)
    return -0.5 * x**2 + 0.5 * (x / proposal_sd) ** 2 + np.log(proposal_sd)


def test_exact_and_wide_proposals_pass_narrow_fails():
    exact = psis_summary(_normal_lw(1.0))
    assert exact["ess_median"] == pytest.approx(4000) and exact["gap_median"] == pytest.approx(0, abs=1e-9)
    wide = psis_summary(_normal_lw(1.5))
    assert wide["k_hat_max"] < 0.5 and wide["videos_k_hat_below_0_7"] == 4
    narrow = psis_summary(_normal_lw(0.2))  # over-confident guide: heavy-tailed weights (k = 0.96)
    assert narrow["k_hat_median"] > 0.7 and narrow["videos_k_hat_below_0_7"] <= 1
    assert narrow["ess_median"] < wide["ess_median"] and narrow["gap_median"] > wide["gap_median"]
    assert set(sir_indices(wide, 10)) == {0, 1, 2, 3} and len(sir_indices(narrow, 10)) <= 1


@pytest.mark.parametrize("variant", ["dive", "dive-markov"])
def test_per_video_log_weights_sum_to_the_joint_ratio(variant):
    # dive-markov: the auxiliary pose_path is a guide-only site (log q(v), Delta z_p_0 / beta)
    model, guide, _, batch = tiny(variant, videos=3)
    guide.eval(), model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lw = log_weights(model, guide, batch, 1)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        gt = poutine.trace(guide).get_trace(batch)
        mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(batch)
        joint = mt.log_prob_sum() - gt.log_prob_sum()
    assert lw.shape == (1, 3) and float(lw.sum()) == pytest.approx(float(joint), rel=1e-5)


@pytest.mark.parametrize("variant", ["dive", "dive-markov"])
def test_psis_check_on_the_model_runs_both_blocks(variant):
    model, guide, _, batch = tiny(variant, videos=2)
    res = psis_check(model, guide, batch, num_particles=24, particles_per_pass=6)
    for block in ("all", "pose"):
        assert len(res[block]["k_hat"]) == 2 and all(1 <= e <= 24 for e in res[block]["ess"])
        assert all(g >= 0 for g in res[block]["iwae_minus_elbo"])
