import json
import math

import numpy as np
import pytest

from dive_pyro.posterior.export import sample_posterior
from dive_pyro.posterior.report import check_posterior, check_tree, sbc, write_check_report
from tests.fixtures import tiny


def _oracle_tree(permute=True):
    """A real tree whose posterior is overwritten by the truth (objects in swapped order)."""
    model, guide, _, batch = tiny(videos=6, seed=2)
    tree = sample_posterior(model, guide, batch, 4, seed=0)
    truth = tree["ground_truth"]
    order = [1, 0] if permute else [0, 1]
    post = tree["posterior"].to_dataset()
    pos = truth["positions"].values[:, order]
    post["position"].values[:] = np.broadcast_to(pos, post["position"].shape)
    z_m = truth["missing"].values[:, order].astype(np.float32)
    z_m[..., 5:] = 0
    post["z_m"].values[:] = np.broadcast_to(z_m, post["z_m"].shape)
    tree["posterior"] = post
    return tree, batch


def test_oracle_posterior_scores_perfectly_despite_slot_order():
    tree, batch = _oracle_tree()
    assert batch.missing[..., :5].any() and (~batch.missing[..., :5]).any()
    res = check_tree(tree)
    assert res["missingness"]["auroc"] == 1.0 and res["missingness"]["ece"] == 0.0
    assert res["pose_rmse_px"]["visible"] == pytest.approx(0, abs=1e-9)
    assert res["pose_rmse_px"]["missing"] == pytest.approx(0, abs=1e-9)
    assert res["coverage"] == {"50%": 1.0, "90%": 1.0}


def test_shifted_posterior_has_the_shift_as_rmse_and_no_coverage():
    tree, _ = _oracle_tree(permute=False)
    post = tree["posterior"].to_dataset()
    post["position"].values[..., 0] += 3.0  # every draw 3 px to the right
    tree["posterior"] = post
    res = check_tree(tree)
    assert res["pose_rmse_px"]["visible"] == pytest.approx(3.0)
    assert res["coverage"]["90%"] == pytest.approx(0.5)  # x never covered, y always


def test_checks_on_a_briefly_trained_model_and_report(tmp_path):
    import pyro
    import torch

    from dive_pyro.posterior import plots as plots

    model, guide, elbo, batch = tiny(videos=8)
    optim = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=3e-3)
    with pyro.settings.context(module_local_params=True):
        for _ in range(30):
            optim.zero_grad()
            elbo.loss_and_grads(model, guide, batch)
            optim.step()
        res, tree = check_posterior(model, guide, batch, num_samples=8)
        cal = sbc(model, guide, num_simulations=16, num_draws=7)
    assert 0 <= res["missingness"]["auroc"] <= 1 and 0 <= res["missingness"]["ece"] <= 1
    assert all(math.isfinite(v) for v in res["pose_rmse_px"].values())
    assert 0 <= res["coverage"]["90%"] <= 1 and math.isfinite(res["imputation_sse_per_frame"])
    assert len(cal["latents"]) == 6
    for r in cal["latents"].values():
        assert sum(r["histogram"]) == 2 * 16 and 0 <= r["p_value"] <= 1  # 2 objects x 16 simulations
    figs = {"reliability": plots.plot_reliability(res), "sbc": plots.plot_sbc(cal)}
    out = write_check_report({"checks": res, "sbc": cal}, figs, tmp_path / "report")
    data = json.loads((out / "checks.json").read_text())
    assert data["checks"]["missingness"]["auroc"] == pytest.approx(res["missingness"]["auroc"])
    assert {p.name for p in out.glob("*.png")} == {"reliability.png", "sbc.png"}
