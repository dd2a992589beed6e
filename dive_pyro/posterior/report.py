"""Posterior-quality checks of a fitted DIVE model against the generator's ground truth.

:func:`check_tree` scores a posterior DataTree (:func:`dive_pyro.posterior.sample_posterior`):

* missingness: AUROC and expected calibration error of ``P(z_m = 1)`` (the posterior mean of
  ``z_m``) against ``missing`` on the K input frames, and the reliability curve;
* pose: RMSE in pixels of the posterior-mean positions after Hungarian matching of model objects
  to true objects (matched on the visible input steps), on visible and on missing input steps;
* imputation: squared error per frame of each matched object's rendering (posterior mean) against
  the true object alone, on the missing steps;
* coverage of the central 50 % and 90 % posterior intervals of the positions (x and y, input frames).

:func:`sbc` runs simulation-based calibration: latents and videos drawn from the model's prior,
posterior draws from the guide, ranks of scalar pose latents, a χ² uniformity test per latent.
:func:`write_check_report` writes ``checks.json`` (NaN → null) and the figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dive_pyro.posterior import calibration
from dive_pyro.posterior import diagnostics as checks
from dive_pyro.posterior.export import sample_posterior

__all__ = ["check_posterior", "check_tree", "sbc", "write_check_report"]


def _t(da: xr.DataArray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(da.values))


def _gather_objects(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder the object dim (dim 1) of ``x`` ``(B, M, ...)`` by ``perm`` ``(B, N)``."""
    index = perm.reshape(*perm.shape, *([1] * (x.dim() - 2))).expand(*perm.shape, *x.shape[2:])
    return torch.gather(x, 1, index)


def check_tree(tree: xr.DataTree, *, num_bins: int = 10) -> dict:
    """All checks of a posterior tree that has a ``ground_truth`` group (see module doc)."""
    post, truth = tree["posterior"], tree["ground_truth"]
    K = int(tree.attrs["num_observed"])
    missing = _t(truth["missing"]).bool()[..., :K]  # (B, N, K)
    true_pos = _t(truth["positions"]).double()  # (B, N, T, 2)
    samples = _t(post["position"]).double()  # (S, B, M, T, 2)
    mean_pos = samples.mean(0)
    visible = ~missing
    weights = torch.cat([visible, visible.new_zeros(*visible.shape[:-1], true_pos.shape[2] - K)], -1)
    perm = checks.match_objects(mean_pos, true_pos, weights=weights.double())
    matched = _gather_objects(mean_pos, perm)
    matched_samples = torch.stack([_gather_objects(s, perm) for s in samples])
    out: dict = {"num_videos": int(missing.shape[0]), "num_samples": int(samples.shape[0])}

    if "z_m" in post:
        p_missing = _gather_objects(_t(post["z_m"]).double().mean(0)[..., :K].clamp(0, 1), perm)
        curve = checks.reliability_curve(p_missing, missing, num_bins)
        out["missingness"] = {
            "auroc": checks.auroc(p_missing, missing),
            "ece": checks.expected_calibration_error(p_missing, missing, num_bins),
            "base_rate": float(missing.double().mean()),
            "reliability": {k: np.asarray(v).tolist() for k, v in curve.items()},
        }
    pos_in, true_in = matched[..., :K, :], true_pos[..., :K, :]
    out["pose_rmse_px"] = {
        "visible": checks.position_rmse(pos_in, true_in, visible),
        "missing": checks.position_rmse(pos_in, true_in, missing),
        "future": checks.position_rmse(matched[..., K:, :], true_pos[..., K:, :]),
    }
    cover_mask = torch.ones_like(true_in, dtype=torch.bool)
    out["coverage"] = {
        f"{int(level * 100)}%": checks.interval_coverage(matched_samples[..., :K, :], true_in, level, cover_mask)
        for level in (0.5, 0.9)
    }
    if "objects" in tree["posterior_predictive"] and "objects" in truth:
        pred_obj = _gather_objects(_t(tree["posterior_predictive"]["objects"]).double().mean(0), perm)
        sse = ((pred_obj[:, :, :K] - _t(truth["objects"]).double()[:, :, :K]) ** 2).flatten(3).sum(-1)
        out["imputation_sse_per_frame"] = float(sse[missing].mean()) if missing.any() else float("nan")
    return out


@torch.no_grad()
def check_posterior(model, guide, batch, *, num_samples: int = 32, seed: int = 0) -> tuple[dict, xr.DataTree]:
    """Sample the posterior of ``batch`` and run :func:`check_tree`; returns ``(results, tree)``."""
    tree = sample_posterior(model, guide, batch, num_samples, seed=seed, include_objects=True)
    tree["ground_truth"]["objects"] = xr.DataArray(
        batch.objects[:, :, :, 0].cpu().numpy(), dims=("video", "object", "time", "y", "x")
    )
    return check_tree(tree), tree


@torch.no_grad()
def sbc(model, guide, *, num_simulations: int = 100, num_draws: int = 19, seed: int = 0, num_bins: int = 10) -> dict:
    """Simulation-based calibration of the initial pose (scale, x, y) and the pose at t = K − 1.

    For each simulation, latents and a video are drawn from the model's prior
    (:func:`dive_pyro.models.simulate`), the guide draws ``num_draws`` posterior samples, model
    objects are matched to the simulated ones, and each scalar's rank among the draws is recorded.
    With a calibrated posterior the ranks are uniform on {0, …, num_draws}.
    """
    from dive_pyro.models import simulate

    torch.manual_seed(seed)
    batch = simulate(model, num_simulations)
    tree = sample_posterior(model, guide, batch, num_draws, seed=seed)
    K = batch.num_observed
    true_zp = batch.meta["latents"]["z_p"].double()  # (B, N, T, 3)
    draws = _t(tree["posterior"]["z_p"]).double()  # (S, B, N, T, 3)
    perm = checks.match_objects(draws.mean(0)[..., 1:], true_zp[..., 1:])
    draws = torch.stack([_gather_objects(d, perm) for d in draws])
    results = {"num_simulations": num_simulations, "num_draws": num_draws, "latents": {}}
    for t, label in ((0, "t0"), (K - 1, f"t{K - 1}")):
        for j, dim in enumerate(("scale", "x", "y")):
            ranks = calibration.sbc_ranks(draws[..., t, j], true_zp[..., t, j])
            test = calibration.rank_uniformity(ranks, num_draws, num_bins=num_bins)
            results["latents"][f"z_p[{label}].{dim}"] = {
                "chi2": test["chi2"],
                "p_value": test["p_value"],
                "histogram": np.asarray(test["histogram"]).tolist(),
            }
    return results


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer):
        return _clean(value.item())
    return value


def write_check_report(results: dict, figures: dict, out_dir: str | Path) -> Path:
    """Write ``checks.json`` (NaN → null) and each figure as ``<name>.png`` into ``out_dir``."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checks.json").write_text(json.dumps(_clean(results), indent=2, allow_nan=False))
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=80, bbox_inches="tight")
        plt.close(fig)
    return out
