import json
import math

import pytest

from dive_pyro.posterior import plots as plots
from dive_pyro.posterior.importance import psis_check
from dive_pyro.posterior.report import check_posterior, markdown_summary, write_check_report
from dive_pyro.posterior.sbc import sbc
from tests.fixtures import tiny


def test_check_report_writes_json_figures_and_an_explained_summary(tmp_path):
    model, guide, _, batch = tiny(videos=6)
    res, tree = check_posterior(model, guide, batch, num_samples=4, chunk_size=4)
    assert tree["posterior"].sizes["video"] == 2
    for name in ("visible", "missing", "future"):
        assert 0 <= res["positions"][name]["coverage_90"] <= 1
    payload = {
        "checks": res,
        "psis": psis_check(model, guide, batch[:2], num_particles=8, particles_per_pass=4),
        "sbc": sbc(model, guide, num_simulations=8, num_draws=3),
        "figures": {"coverage": "coverage curves", "sbc": "SBC"},
    }
    figs = {
        "coverage": plots.plot_coverage(res),
        "reliability": plots.plot_reliability(res),
        "missingness_strata": plots.plot_missingness_strata(res),
        "sbc": plots.plot_sbc(payload["sbc"]),
        "psis": plots.plot_psis(payload["psis"]),
    }
    summary = markdown_summary(payload)
    out = write_check_report(payload, figs, tmp_path / "report", summary)
    data = json.loads((out / "checks.json").read_text())
    assert data["checks"]["missingness"]["auroc"] == pytest.approx(res["missingness"]["auroc"])
    assert "smoothed_log_weights" not in data["psis"]["all"]  # per-draw arrays stay out of the JSON
    assert {p.name for p in out.glob("*.png")} == {f"{k}.png" for k in figs}
    text = (out / "summary.md").read_text()
    for words in ("centre of mass", "Pareto k̂", "AUROC", "ECDF", "`coverage.png`"):
        assert words in text
    assert math.isfinite(data["checks"]["positions"]["visible"]["median"])


def test_check_with_refinement_scores_the_refined_guide():
    model, guide, _, batch = tiny(videos=4)
    plain, _ = check_posterior(model, guide, batch, num_samples=4, chunk_size=2)
    refined, tree = check_posterior(model, guide, batch, num_samples=4, chunk_size=2, refine_steps=3)
    assert tree["posterior"].sizes["video"] == 2
    assert refined["missingness"]["auroc"] == refined["missingness"]["auroc"]  # a number, not NaN
    assert refined["positions"]["visible"] != plain["positions"]["visible"]
