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
md("""## Before / after: options for a posterior worth inspecting

Each improvement is a `DiveConfig` option or a registered variant, off by default (the `dive`
variant stays the Table-1 reference), so they can be switched on one at a time:

| what | how |
|---|---|
| learnt pixel sd: one scalar, or heteroscedastic (background / ink) | `pixel_scale="global"` / `"intensity"` |
| likelihood on [0, 1] | `likelihood="continuous_bernoulli"` |
| tempered likelihood (effective pixel count) | `likelihood_power=p` |
| Gaussian Markov-chain posterior over the whole pose path | variant `dive-markov` |
| AR(1) appearance prior: fading an object costs KL | `appearance_ar=0.95` |
| missingness prior at the data rate | `missing_prior=0.2` |
| per-video importance-weighted bound with K particles | `objective="iwae", num_particles=K` |
| test-time refinement (semi-amortised) | `sample_posterior(..., refine_steps=n)` |

Below, the shipped `tiny-cpu` model against `tiny-cpu-markov` (variant `dive-markov` with
`appearance_ar=0.95`, `missing_prior=0.2`, warm-started from `tiny-cpu`). The full comparison on 256
held-out videos is in `benchmarks/results/posterior_compare.md`."""),
code("""from pathlib import Path

from IPython.display import Markdown

results_md = Path("benchmarks/results/posterior_compare.md")
if not results_md.is_file():  # the notebook runs from notebooks/ or from the repository root
    results_md = Path("..") / results_md
Markdown(results_md.read_text()) if results_md.is_file() else print("run benchmarks/posterior_compare.py")"""),
code("""markov_checkpoint = shipped_checkpoint("tiny-cpu-markov")
if SMOKE or not markov_checkpoint.is_file():
    from tempfile import mkdtemp

    overrides = ["variant=dive-markov", "model.appearance_ar=0.95", "model.missing_prior=0.2"]
    markov = Dive.from_config(load_config("tiny-cpu", overrides))
    markov.fit(steps=5, out_dir=mkdtemp(), progress=False)
else:
    markov = Dive.load(markov_checkpoint)
print(f"{markov.variant} step {markov.step}")"""),
md("""**Pose uncertainty over time.** The `dive` guide is mean-field on the pose *increments*, so the
variance of the position can only grow with t. The Markov-chain guide can be wide inside a gap and
tight after it. Posterior sd of the pose centre of the first slot of a video with a gap (shaded)."""),
code("""import matplotlib.pyplot as plt

from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.inference import sample_posterior

K = test.num_observed
gap_videos = [b for b in range(test.batch_size) if test.missing[b, :, :K].any()]
video = gap_videos[0] if gap_videos else 0
clip = test[video : video + 1]
fig, ax = plt.subplots(figsize=(6, 3))
for name, fitted in (("dive (shipped)", trained), ("dive-markov", markov)):
    draws = sample_posterior(fitted.model, fitted.guide, clip, 4 if SMOKE else 64, seed=0)
    pixels = pose_to_pixels(draws["z_p"], fitted.model.config.frame_size)  # (S, 1, N, T, 2)
    ax.plot(pixels[:, 0, 0].std(0).mean(-1).numpy(), marker="o", label=name)
for t in range(K):
    if test.missing[video, :, t].any():
        ax.axvspan(t - 0.5, t + 0.5, color="grey", alpha=0.2)
ax.set(xlabel="frame t", ylabel="posterior sd (px)", yscale="log", title=f"video {video}, slot 0")
ax.legend();"""),
md("""**Test-time refinement** (`inference/refine.py`): a few Adam steps per video on the offsets of
the guide's Gaussian outputs, networks fixed. The negative ELBO of these videos falls with the steps;
the amortisation gap that remains after *n* steps is what the amortised guide leaves on the table."""),
code("""from dive_pyro.inference.refine import refine

_, losses = refine(markov.model, markov.guide, test[:4], 3 if SMOKE else 40, return_losses=True)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(losses)
ax.set(xlabel="refinement step", ylabel="-ELBO of 4 videos (nats)");"""),
md("""## Before / after: an honest pixel count (tempering)

The iid pixel likelihood (paper Eq. 9) counts every pixel as an independent witness. The residuals
of the fitted model are larger than its σ and spatially correlated, so the posterior of a position
is far too narrow. `dive_pyro.posterior.tempering` chooses the likelihood power λ on *validation*
videos: from the residuals, λ = (σ/s)² / A with s their sd and A their correlation area in pixels
(one independent pixel per A), and from coverage, the λ at which the 90 % interval of the rendered
object's centre of mass covers the truth 90 % of the time. Refinement (`refine(...,
likelihood_power=λ)`, or `dive-pyro check --refine 20 --refine-power λ`) then targets the tempered
posterior p(z) p(y | z)^λ. Below: the residuals' autocorrelation of the model shipped as
`tiny-cpu-calibrated` (learnt global σ), the coverage of the validation sweep against λ, and the
before / after on held-out videos."""),
code("""from dive_pyro.inference import fixed_test_set_for
from dive_pyro.posterior.tempering import residual_power

calibrated_checkpoint = shipped_checkpoint("tiny-cpu-calibrated")
calibrated = markov if SMOKE or not calibrated_checkpoint.is_file() else Dive.load(calibrated_checkpoint)
val = fixed_test_set_for(calibrated.train_config, "out_of_scene", 4 if SMOKE else 64, split="validation")
res = residual_power(calibrated.model, calibrated.guide, val)
L = res["acf"].shape[0] // 2
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(range(-L, L + 1), res["acf"][L].numpy(), marker="o", label="horizontal lag")
ax.plot(range(-L, L + 1), res["acf"][:, L].numpy(), marker="s", label="vertical lag")
ax.axhline(0, color="grey", lw=0.5)
ax.set(xlabel="lag (px)", ylabel="residual autocorrelation",
       title=f"σ {res['model_sd']:.3f}, s {res['residual_sd']:.3f}, A {res['correlation_area_px']:.1f} px, "
       f"λ {res['power']:.3g}")
ax.legend();"""),
code("""import json

compare_json = results_md.with_suffix(".json")
payload = json.loads(compare_json.read_text()) if compare_json.is_file() else {}
cal = payload.get("calibration")
if cal:
    powers = sorted(cal["sweep"], key=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, style in (("visible_90", "o-"), ("missing_90", "s-"), ("visible_50", "o--"), ("missing_50", "s--")):
        ax.plot([float(p) for p in powers], [cal["sweep"][p][key] for p in powers], style, label=key)
    ax.axhspan(0.85, 0.95, color="green", alpha=0.1)
    ax.axhspan(0.45, 0.55, color="green", alpha=0.1)
    ax.axvline(cal["residual"]["power"], color="k", ls=":", label="λ from residuals")
    if cal["coverage"]["attainable"]:
        ax.axvline(cal["coverage"]["power"], color="r", ls=":", label="λ from coverage")
    ax.set(xscale="log", xlabel="likelihood power λ", ylabel="COM coverage (validation)")
    ax.legend(fontsize=7)
else:
    print("run benchmarks/posterior_compare.py with --calibrate-powers for the validation sweep")"""),
code("""chosen = cal["coverage"]["power"] if cal and cal["coverage"]["attainable"] else res["power"]
clip = test[: 4 if SMOKE else 32]
rows = {}
for name, fitted, power in (("tiny-cpu (shipped)", trained, None), ("tiny-cpu-calibrated, refined", calibrated, chosen)):
    steps = 0 if power is None else (1 if SMOKE else 20)
    r, _ = check_posterior(fitted.model, fitted.guide, clip, num_samples=4 if SMOKE else 16,
                           refine_steps=steps, refine_power=power, plot_videos=1)
    cover = {s: r["positions"].get(s, {}).get("coverage_90", float("nan")) for s in ("visible", "missing")}
    rows[name] = {f"{s} cov. 90": round(c, 2) for s, c in cover.items()}
    rows[name]["AUROC"] = round(r["missingness"]["auroc"], 3) if "missingness" in r else None
print(f"power {chosen:.3g}")
rows"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/03_posterior_checks.ipynb")
