"""Posterior-quality check of a fitted DIVE model: results, figures and a Markdown summary.

:func:`check_posterior` runs :func:`dive_pyro.posterior.scoring.collect` / ``score`` (in chunks),
optionally the PSIS diagnostics (:mod:`dive_pyro.posterior.importance`), and returns the results
plus a small DataTree of the first videos for the figures. :func:`write_check_report` writes
``checks.json`` (NaN → null, ±inf → "inf"), the figures as PNGs and ``summary.md``, which says in words what
each figure means and which values are good (:func:`markdown_summary`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dive_pyro.posterior.export import sample_posterior
from dive_pyro.posterior.scoring import collect, score

__all__ = ["FIGURE_TEXT", "check_posterior", "markdown_summary", "write_check_report"]

# what each figure of `dive-pyro check` shows, written beside it in summary.md
FIGURE_TEXT = {
    "posterior_frames": "video 0: observed, ground truth, the model's frames and the imputed + predicted video "
    "(posterior means); red frames: missing.",
    "objects": "video 0: each model object alone (posterior mean); red: judged missing.",
    "pose_trajectories": "video 0: x and y of each object over time, posterior median with 50 % / 90 % bands, "
    "truth dashed (sprite-box centres).",
    "missingness": "video 0: P(missing) per object and input step beside the truth.",
    "reliability": "observed frequency of 'missing' against P(missing) in equal-count bins; on the diagonal is "
    "calibrated, below it over-confident in 'missing', above it under-confident.",
    "missingness_strata": "AUROC / ECE by input step, and false-alarm / miss rates by ink overlap between objects.",
    "coverage": "expected-coverage curves of the centre-of-mass intervals for visible, missing and future steps; "
    "the diagonal is calibrated, below it the posterior is over-confident.",
    "sbc": "SBC: ECDF of the ranks minus the uniform CDF with the simultaneous 95 % band; a curve leaving the band "
    "(red) is miscalibrated: an S-shape (∪-shaped rank histogram) means over-confident, the mirror image "
    "under-confident, a one-sided bulge biased.",
    "psis": "Pareto k̂ per video (sorted); below 0.7 (dashed) the guide is a usable importance proposal.",
}


def check_posterior(
    model,
    guide,
    batch,
    *,
    num_samples: int = 32,
    seed: int = 0,
    chunk_size: int = 16,
    plot_videos: int = 2,
    refine_steps: int = 0,
    refine_power: float | None = None,
) -> tuple[dict, xr.DataTree]:
    """Score the posterior of ``batch`` (see :mod:`dive_pyro.posterior.scoring`); returns
    ``(results, tree)`` where ``tree`` holds the first ``plot_videos`` videos for the figures.
    ``refine_steps``: score the guide after that many per-video SVI steps (semi-amortised), towards
    the posterior tempered by ``refine_power`` if given."""
    refined = dict(refine_steps=refine_steps, refine_power=refine_power)
    data = collect(model, guide, batch, num_samples, chunk_size=chunk_size, seed=seed, **refined)
    results = score(data)
    results.pop("perm")
    n = min(plot_videos, batch.batch_size)
    tree = sample_posterior(model, guide, batch[:n], num_samples, seed=seed, include_objects=True, **refined)
    return results, tree


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not isinstance(v, np.ndarray) or v.ndim < 2}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, torch.Tensor):
        return _clean(value.tolist())
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"  # e.g. a Pareto k̂ of degenerate weights; JSON has no inf
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.floating | np.integer | np.bool_):
        return _clean(value.item())
    return value


def _f(x, digits: int = 3) -> str:
    if isinstance(x, float | int) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_summary(payload: dict) -> str:
    """A short report of ``payload`` (as written to ``checks.json``) that explains every figure."""
    c = payload["checks"]
    L = [f"# Posterior check: {payload.get('checkpoint', 'model')}", ""]
    L.append(
        f"{c['num_videos']} `{payload.get('scenario', '?')}` test videos, {c['num_samples']} posterior draws each; "
        f"step {payload.get('step', '?')}. Wall time {_f(payload.get('wall_s'), 0)} s."
    )
    L += ["", "## Positions (rendered centre of mass vs the true digit's centre of mass, pixels)", ""]
    L.append(
        "Only the rendered object's centre of mass is identified by the likelihood (the decoder may put "
        "the digit anywhere inside its sprite box), so positions are scored on it. `visible`: input steps "
        "where the object is in the frame; `missing`: input steps where it is absent (imputation); "
        f"`future`: predicted frames. A failure is an error > {_f(c['failure_px'], 0)} px (a lost track or a "
        "slot on the other digit). Good: small median and failure rate; coverage equal to the nominal level "
        "(the 90 % interval holds the truth 90 % of the time); lower CRPS (in pixels, per coordinate)."
    )
    L += ["", "| stratum | n | median | p90 | RMSE | failure rate | cov. 50 % | cov. 90 % | cov. 90 % tracked | CRPS |"]
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, p in c["positions"].items():
        L.append(
            f"| {name} | {p['count']} | {_f(p['median'], 2)} | {_f(p['p90'], 2)} | {_f(p['rmse'], 2)} | "
            f"{_f(p['failure_rate'])} | {_f(p['coverage_50'])} | {_f(p['coverage_90'])} | "
            f"{_f(p['coverage_90_tracked'])} | {_f(p['crps'], 2)} |"
        )
    L.append("")
    L.append(
        "Sprite-box centre vs the generator's box centre (the old, unidentified quantity), median / RMSE px: "
        + ", ".join(f"{k} {_f(v['median'], 2)} / {_f(v['rmse'], 2)}" for k, v in c["box_centre"].items())
        + "."
    )
    i = c["identity"]
    L.append(
        f"Identity (per-frame Hungarian matching, gate {_f(i['gate_px'], 0)} px): {i['switches']} switches, "
        f"{_f(i['switches_per_video'], 2)} per video; {_f(100 * i['videos_with_switch'], 1)} % of videos have one; "
        f"{_f(100 * i['videos_reassigned_per_frame'], 1)} % of videos are matched differently in some frame than by "
        "the one per-video assignment. Good: 0."
    )
    if "missingness" in c:
        m = c["missingness"]
        src = {"exact": "the guide's exact q(z_m = 1 | y) = Φ(µ/σ)", "draws": "the mean of drawn z_m (no exact form)"}
        L += ["", "## Missingness", ""]
        L.append(
            f"Scored with {src.get(m['source'], m['source'])} on the input frames. AUROC (1 = perfect ranking, "
            "0.5 = chance), ECE (0 = calibrated; adaptive equal-count bins), Brier score and log-loss (lower is "
            "better; they punish confident mistakes that AUROC ignores)."
        )
        L += ["", "| | AUROC | ECE (adaptive) | ECE (10 equal bins) | Brier | log-loss | base rate | mean p |"]
        L.append("|---|---|---|---|---|---|---|---|")
        L.append(
            f"| all | {_f(m['auroc'])} | {_f(m['ece_adaptive'])} | {_f(m['ece_uniform'])} | {_f(m['brier'])} | "
            f"{_f(m['log_loss'])} | {_f(m['base_rate'])} | {_f(m['mean_probability'])} |"
        )
        for s in m["by_overlap"]:
            if s.get("count"):
                L.append(
                    f"| overlap {s['overlap']} (n={s['count']}) | {_f(s.get('auroc'))} | {_f(s.get('ece_adaptive'))} |"
                    f" {_f(s.get('ece_uniform'))} | {_f(s.get('brier'))} | {_f(s.get('log_loss'))} | "
                    f"{_f(s.get('base_rate'))} | {_f(s.get('mean_probability'))} |"
                )
        L.append("")
        L.append(
            "False-alarm / miss rate at p ≥ 0.5 by ink overlap with the other objects: "
            + "; ".join(
                f"{s['overlap']} {_f(s['false_alarm_rate'])} / {_f(s['miss_rate'])}"
                for s in m["by_overlap"]
                if s.get("count")
            )
            + ". AUROC by input step: "
            + ", ".join(f"t{s['t']} {_f(s['auroc'], 2)}" for s in m["by_time"])
            + "."
        )
    L.append("")
    L.append(f"Imputation: squared error per missing object frame {_f(c.get('imputation_sse_per_frame'), 2)}.")
    if "psis" in payload:
        L += ["", "## Importance sampling with the guide as proposal (PSIS)", ""]
        L.append(
            "Per video, Pareto k̂ of the importance weights p(y, z)/q(z | y): < 0.5 good, 0.5–0.7 usable, > 0.7 "
            "the guide is not a usable proposal and no importance correction is offered. ESS is out of the "
            "number of draws; IWAE − ELBO (nats) lower-bounds KL(q ‖ p)."
        )
        L += ["", "| block | videos | draws | k̂ median | k̂ max | k̂ < 0.7 | ESS median | IWAE − ELBO median |"]
        L.append("|---|---|---|---|---|---|---|---|")
        for block, s in payload["psis"].items():
            L.append(
                f"| {block} | {s['num_videos']} | {s['num_particles']} | {_f(s['k_hat_median'], 2)} | "
                f"{_f(s['k_hat_max'], 2)} | {s['videos_k_hat_below_0_7']} | {_f(s['ess_median'], 1)} | "
                f"{_f(s['gap_median'], 1)} |"
            )
        L.append("")
        L.append(
            "An importance-resampled posterior is offered for the videos with k̂ < 0.7 in the `all` block: "
            f"{payload['psis'].get('all', {}).get('videos_k_hat_below_0_7', 0)}."
        )
    if "sbc" in payload:
        s = payload["sbc"]
        L += ["", "## Simulation-based calibration", ""]
        L.append(
            f"{s['num_simulations']} videos simulated from the model's prior with the likelihood's noise "
            f"(relaxed [0, 1] validation: {not s['bounded_frames']}), {s['num_draws']} posterior draws each, "
            "independent random streams. "
            + (
                f"The guide was first fine-tuned for {s['sleep']['steps']} sleep steps on prior simulations "
                f"({_f(s['sleep']['elapsed_s'], 0)} s; −log q {_f(s['sleep']['loss_first'], 1)} → "
                f"{_f(s['sleep']['loss_last'], 1)}). "
                if "sleep" in s
                else "The guide was NOT trained on prior simulations, so a failure may only say it is out of "
                "distribution. "
            )
            + "Good: χ² p-values not tiny, the rank ECDF inside the simultaneous 95 % band; contraction > 0 "
            "means the posterior is narrower than the prior (SBC alone cannot tell the prior from the posterior)."
        )
        L += ["", "| statistic | χ² p | ECDF in band | max excess | contraction |", "|---|---|---|---|---|"]
        for name, r in s["latents"].items():
            L.append(
                f"| {name} | {r['p_value']:.2g} | {'yes' if r['ecdf_passed'] else 'no'} | "
                f"{_f(r['ecdf_max_excess'])} | {_f(r['contraction'], 2)} |"
            )
    if "reference" in payload:
        r = payload["reference"]
        L += ["", "## NUTS reference (poses; decoder, appearance and missingness fixed)", ""]
        L.append(
            f"{r['num_videos']} video(s), {r['num_chains']} chains × {r['num_samples']} draws after "
            f"{r['num_warmup']} warm-up, target p(pose path | y_1:K). Offset: |guide mean − NUTS mean| in NUTS "
            "sds (≲ 1 good); sd ratio guide / NUTS (1 good, < 1 over-confident)."
        )
        L += ["", "| stratum | offset (NUTS sds) | offset (px) | sd ratio | NUTS sd (px) |", "|---|---|---|---|---|"]
        for name, v in r["comparison"].items():
            if v.get("count"):
                L.append(
                    f"| {name} | {_f(v['offset_in_nuts_sd_median'], 2)} | {_f(v['offset_px_mean'], 2)} | "
                    f"{_f(v['sd_ratio_median'], 2)} | {_f(v['nuts_sd_px_median'], 3)} |"
                )
        if r.get("mcmc"):
            L.append("")
            L.append(
                f"Chains: R̂ max {_f(r['mcmc']['rhat_max'])} (< 1.01 good), bulk ESS min "
                f"{_f(r['mcmc']['ess_bulk_min'], 0)}, median {_f(r['mcmc']['ess_bulk_median'], 0)}."
            )
    if payload.get("figures"):
        L += ["", "## Figures", ""]
        L += [f"* `{name}.png`: {text}" for name, text in payload["figures"].items()]
    return "\n".join(L) + "\n"


def write_check_report(results: dict, figures: dict, out_dir: str | Path, summary: str | None = None) -> Path:
    """Write ``checks.json`` (NaN → null, ±inf → "inf"), each figure as ``<name>.png`` and ``summary.md``."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checks.json").write_text(json.dumps(_clean(results), indent=1, allow_nan=False))
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=80, bbox_inches="tight")
        plt.close(fig)
    if summary is not None:
        (out / "summary.md").write_text(summary)
    return out
