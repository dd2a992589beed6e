import nbformat as nbf
nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# 03 · Posterior checks: calibration, coverage, simulation-based calibration

The generator knows what is missing, where every object is and what the complete frames look like,
so the posterior can be checked, not just looked at:

* **missingness**: AUROC and expected calibration error (ECE) of P(object *i* missing at *t*), and a reliability diagram;
* **pose**: RMSE (pixels) of posterior-mean positions after Hungarian matching of model objects to true objects, on visible and on missing steps;
* **imputation**: squared error of each object's rendering on the missing steps;
* **coverage** of the 50 % and 90 % posterior intervals of the positions;
* **SBC**: videos simulated from the model's prior, ranks of the true latents among posterior draws, χ² uniformity.

`DIVE_PYRO_SMOKE=1` shrinks everything (the checks then describe an untrained model)."""),
code("""import os

import torch

from dive_pyro import Dive
from dive_pyro.posterior import plots as plots
from dive_pyro.inference import load_config, shipped_checkpoint
from dive_pyro.posterior.report import check_posterior, sbc

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
{k: results[k] for k in ("pose_rmse_px", "coverage", "imputation_sse_per_frame")} | {
    "missingness": {k: results["missingness"][k] for k in ("auroc", "ece", "base_rate")}}"""),
code("""plots.plot_reliability(results);"""),
code("""plots.plot_missingness(tree, 0);"""),
code("""plots.plot_pose_trajectories(tree, 0);"""),
md("""## Simulation-based calibration

Latents and videos are drawn from the model's prior, the amortised guide draws posterior samples,
and the rank of each true latent among them is recorded. A calibrated posterior gives uniform ranks;
a ∪-shape means an overconfident posterior (too narrow), a ∩-shape an underconfident one (too wide), a slope a biased one."""),
code("""calibration = sbc(trained.model, trained.guide, num_simulations=16 if SMOKE else 200, num_draws=19)
plots.plot_sbc(calibration);"""),
code("""{name: round(r["p_value"], 4) for name, r in calibration["latents"].items()}"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/03_posterior_checks.ipynb")
