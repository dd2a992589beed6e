"""Figures of a posterior DataTree (:func:`dive_pyro.posterior.sample_posterior`) and of checks.

Each function returns a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from dive_pyro.viz.frames import plot_frame_grid

__all__ = [
    "plot_posterior_frames",
    "plot_objects",
    "plot_missingness",
    "plot_pose_trajectories",
    "plot_reliability",
    "plot_missingness_strata",
    "plot_coverage",
    "plot_sbc",
    "plot_psis",
]


def _video(tree: xr.DataTree, index: int) -> None:
    n = tree["observed_data"].sizes["video"]
    if not 0 <= index < n:
        raise IndexError(f"video index must be in [0, {n}), got {index}")


def plot_posterior_frames(tree: xr.DataTree, index: int = 0) -> Figure:
    """Observed / ground truth / model frames (posterior mean) / imputed + predicted; missing steps red."""
    _video(tree, index)
    K = int(tree.attrs["num_observed"])
    pp = tree["posterior_predictive"].isel(video=index)
    rows = {
        "observed": tree["observed_data"]["observed"].isel(video=index).values,
        "model frames": pp["frames"].mean("sample").values,
        "imputed + predicted": pp["imputed"].mean("sample").values,
    }
    flags = {}
    if "ground_truth" in tree.children:
        truth = tree["ground_truth"].isel(video=index)
        rows = {
            "observed": rows["observed"],
            "ground truth": truth["complete"].values,
            **{k: v for k, v in rows.items() if k != "observed"},
        }
        flags["ground truth"] = truth["missing"].values.any(0).tolist()
    if "z_m" in tree["posterior"]:
        flags["model frames"] = (tree["posterior"]["z_m"].isel(video=index).mean("sample") > 0.5).values.any(0)
        flags["model frames"] = flags["model frames"].tolist()
    return plot_frame_grid(
        rows,
        num_observed=K,
        missing=flags,
        title=f"video {index}: posterior mean over {tree['posterior'].sizes['sample']} samples",
    )


def plot_objects(tree: xr.DataTree, index: int = 0) -> Figure:
    """Each object's rendering (posterior mean), the per-object decomposition of the video."""
    _video(tree, index)
    pp = tree["posterior_predictive"]
    if "objects" not in pp:
        raise ValueError("the tree has no per-object renderings: sample with include_objects=True")
    objects = pp["objects"].isel(video=index).mean("sample")
    rows = {f"object {i}": objects.isel(object=i).values for i in range(objects.sizes["object"])}
    flags = {}
    if "z_m" in tree["posterior"]:
        p = tree["posterior"]["z_m"].isel(video=index).mean("sample")
        flags = {f"object {i}": (p.isel(object=i) > 0.5).values.tolist() for i in range(objects.sizes["object"])}
    return plot_frame_grid(
        rows,
        num_observed=int(tree.attrs["num_observed"]),
        missing=flags,
        title=f"video {index}: objects (red: judged missing)",
    )


def plot_missingness(tree: xr.DataTree, index: int = 0) -> Figure:
    """Heat map object × input frame of P(missing) beside the ground truth."""
    _video(tree, index)
    if "z_m" not in tree["posterior"]:
        raise ValueError("this posterior has no missingness (z_m) variable")
    K = int(tree.attrs["num_observed"])
    prob = tree["posterior"]["z_m"].isel(video=index, time=slice(0, K)).mean("sample").values
    panels = [("posterior P(missing)", prob)]
    if "ground_truth" in tree.children:
        panels.append(("truth (missing)", tree["ground_truth"]["missing"].isel(video=index, time=slice(0, K)).values))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 0.5 * prob.shape[0] + 1.6), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        im = ax.imshow(values, vmin=0, vmax=1, cmap="Reds", aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("input frame t")
        ax.set_ylabel("object")
        ax.set_yticks(range(values.shape[0]))
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    return fig


def plot_pose_trajectories(tree: xr.DataTree, index: int = 0) -> Figure:
    """x and y (pixels) of each object against time: posterior median, 50 % and 90 % bands, truth."""
    _video(tree, index)
    pos = tree["posterior"]["position"].isel(video=index)
    K = int(tree.attrs["num_observed"])
    t = pos["time"].values
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, coord in enumerate(("x", "y")):
        ax = axes[j]
        for i in range(pos.sizes["object"]):
            c = colors[i % len(colors)]
            series = pos.isel(object=i).sel(xy=coord)
            q = series.quantile([0.05, 0.25, 0.5, 0.75, 0.95], dim="sample").values
            ax.fill_between(t, q[0], q[4], color=c, alpha=0.15, lw=0)
            ax.fill_between(t, q[1], q[3], color=c, alpha=0.3, lw=0)
            ax.plot(t, q[2], color=c, lw=1.5, label=f"model object {i}")
        if "ground_truth" in tree.children:
            truth = tree["ground_truth"]["positions"].isel(video=index).sel(xy=coord)
            for i in range(truth.sizes["object"]):
                ax.plot(t, truth.isel(object=i).values, "k--", lw=1, label="truth" if i == 0 else None)
        ax.axvline(K - 0.5, color="tab:blue", lw=1)
        ax.set_xlabel("frame t")
        ax.set_ylabel(f"{coord} (pixels)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"video {index}: positions, median with 50 % / 90 % bands", fontsize=9)
    fig.tight_layout()
    return fig


def plot_reliability(results: dict) -> Figure:
    """Reliability diagram of P(missing) (adaptive bins) from :func:`dive_pyro.posterior.scoring.score`."""
    if "missingness" not in results:
        raise ValueError("results have no missingness section")
    m = results["missingness"]
    rel = m["reliability"]
    conf = np.asarray([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
    freq = np.asarray([np.nan if v is None else v for v in rel["frequency"]], dtype=float)
    count = np.asarray(rel["count"], dtype=float)
    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.2, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="calibrated")
    ax.plot(conf, freq, "o-", color="tab:red", label="observed frequency (equal-count bins)")
    ax.set_ylabel("fraction truly missing")
    ax.set_title(f"AUROC {m['auroc']:.3f}, ECE {m['ece_adaptive']:.3f}, Brier {m['brier']:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    axc.plot(conf, count, "o", color="grey")
    axc.set_yscale("log")
    axc.set_xlabel(f"P(missing) ({m.get('source', '?')})")
    axc.set_ylabel("count")
    fig.tight_layout()
    return fig


def plot_missingness_strata(results: dict) -> Figure:
    """AUROC and ECE of P(missing) by input step and by ink overlap with the other objects."""
    m = results["missingness"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    t = [s["t"] for s in m["by_time"]]
    for key, label in (("auroc", "AUROC"), ("ece_adaptive", "ECE"), ("base_rate", "base rate")):
        a.plot(t, [np.nan if s[key] is None else s[key] for s in m["by_time"]], "o-", label=label)
    a.set_xlabel("input step t")
    a.set_ylim(0, 1)
    a.legend(fontsize=7)
    strata = [s for s in m["by_overlap"] if s.get("count")]
    x = np.arange(len(strata))
    for j, (key, label) in enumerate((("false_alarm_rate", "false alarms"), ("miss_rate", "misses"))):
        b.bar(x + 0.4 * j - 0.2, [s[key] for s in strata], width=0.4, label=label)
    b.set_xticks(x, [f"{s['overlap']}\n(n={s['count']})" for s in strata], fontsize=7)
    b.set_xlabel("ink overlap with the other objects")
    b.set_ylabel("rate at p >= 0.5")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_coverage(results: dict) -> Figure:
    """Expected-coverage curves of the centre-of-mass intervals, one per stratum (diagonal = calibrated)."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="calibrated")
    for name, p in results["positions"].items():
        if p.get("count"):
            ax.plot(p["coverage_levels"], p["coverage"], "o-", ms=3, label=f"{name} (n={p['count']})")
    ax.set_xlabel("nominal level of the central interval")
    ax.set_ylabel("fraction of true centres inside")
    ax.set_title("position coverage (below the diagonal: over-confident)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_sbc(results: dict) -> Figure:
    """SBC rank ECDF minus the uniform CDF, with the simultaneous 95 % band, per statistic."""
    latents = results["latents"]
    n = len(latents)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for ax, (name, res) in zip(axes.flat, latents.items(), strict=False):
        diff = np.asarray(res["ecdf_minus_z"], dtype=float)
        z = np.arange(1, diff.size + 1) / (diff.size + 1)
        ax.fill_between(z, res["band_lower_minus_z"], res["band_upper_minus_z"], color="tab:blue", alpha=0.2, lw=0)
        ax.plot(z, diff, color="tab:red" if not res["ecdf_passed"] else "k", lw=1.2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{name}\nχ² p = {res['p_value']:.2g}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.supxlabel("fractional rank", fontsize=8)
    fig.supylabel("ECDF − uniform", fontsize=8)
    fig.tight_layout()
    return fig


def plot_psis(psis: dict) -> Figure:
    """Pareto k̂ per video for each latent block, sorted, with the 0.5 and 0.7 thresholds."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for block, s in psis.items():
        k = np.sort(np.asarray(s["k_hat"], dtype=float))
        ax.plot(np.arange(k.size), k, "o-", ms=3, label=f"{block} ({s['num_particles']} draws)")
    for level, style in ((0.5, ":"), (0.7, "--")):
        ax.axhline(level, color="k", ls=style, lw=1)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("video (sorted by k̂)")
    ax.set_ylabel("Pareto k̂")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
