import nbformat as nbf
nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# 03 · Posterior checks: calibration, coverage, simulation-based calibration

The generator knows what is missing, where every object is and what the complete frames look like,
so the posterior can be checked, not just looked at:

* **missingness**: the guide's exact q(z_m = 1 | y) scored with AUROC, adaptive-bin ECE, Brier score and log-loss, by input step and by ink overlap, with a reliability diagram;
* **positions** on the identifiable quantity, the centre of mass of each rendered object against the true object's, on visible, missing and future steps: median, p90, failure rate, expected-coverage curve over all levels, CRPS, and identity switches from per-frame matching;
* **imputation**: squared error of each object's rendering on the missing steps;
* **PSIS**: Pareto k̂ of the guide as an importance proposal, per video;
* **SBC**: videos simulated from the model's prior with the likelihood's noise, a guide fine-tuned on such simulations (sleep phase), rank ECDFs with simultaneous bands and χ².

`DIVE_PYRO_SMOKE=1` shrinks everything (the checks then describe an untrained model)."""),
code("""import os

import torch

from dive_pyro import Dive
from dive_pyro.posterior import plots as plots
from dive_pyro.inference import load_config, shipped_checkpoint
from dive_pyro.inference.sleep import sleep_train
from dive_pyro.posterior.importance import psis_check
from dive_pyro.posterior.report import check_posterior
from dive_pyro.posterior.sbc import sbc

SMOKE = os.environ.get("DIVE_PYRO_SMOKE") == "1"
torch.set_num_threads(1)
checkpoint = shipped_checkpoint()
if SMOKE or not checkpoint.is_file():  # a few steps of the tiny preset stand in for the shipped model
    from tempfile import mkdtemp

    trained = Dive.from_config(load_config("tiny-cpu"))
    trained.fit(steps=5, out_dir=mkdtemp(), progress=False)
else:
    trained = Dive.load(checkpoint)
test = trained.test_set("out_of_scene", num_sequences=8 if SMOKE else 256)
print(f"model step {trained.step}, {test.batch_size} held-out out_of_scene sequences")"""),
code("""results, tree = check_posterior(trained.model, trained.guide, test, num_samples=4 if SMOKE else 32)
{name: {k: round(p[k], 3) for k in ("median", "p90", "failure_rate", "coverage_90", "crps")}
 for name, p in results["positions"].items()} | {
    "missingness": {k: results["missingness"][k] for k in ("auroc", "ece_adaptive", "brier", "log_loss")}}"""),
code("""plots.plot_coverage(results);"""),
code("""plots.plot_reliability(results);"""),
code("""plots.plot_missingness(tree, 0);"""),
code("""plots.plot_pose_trajectories(tree, 0);"""),
code("""psis = psis_check(trained.model, trained.guide, test[:2 if SMOKE else 8], num_particles=16 if SMOKE else 500)
plots.plot_psis(psis);"""),
md("""## Simulation-based calibration

Latents and videos are drawn from the model's prior (with the likelihood's noise), a copy of the
amortised guide is first fine-tuned on such simulations (it was trained on Moving-MNIST, which the
prior's videos do not resemble), then it draws posterior samples and the rank of each statistic's
true value among them is recorded. A calibrated posterior gives uniform ranks: the ECDF stays in
the simultaneous band; an S-shape means over-confident, a one-sided bulge biased."""),
code("""import copy

sbc_guide = copy.deepcopy(trained.guide)
sleep_train(trained.model, sbc_guide, steps=2 if SMOKE else 300, batch_size=16)
calibration = sbc(trained.model, sbc_guide, num_simulations=16 if SMOKE else 200, num_draws=19)
plots.plot_sbc(calibration);"""),
code("""{name: round(r["p_value"], 4) for name, r in calibration["latents"].items()}"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/03_posterior_checks.ipynb")
