"""ArviZ view of a posterior DataTree. All ArviZ use of the package lives in this module.

Works with arviz 0.23 (the release pip installs on Python 3.11: the ``InferenceData`` API).
Guide draws are i.i.d., so we use ``sample`` as ArviZ's ``draw`` with one ``chain``; ESS and R-hat
say nothing about an amortised posterior and are not reported (``kind="stats"``).
"""

from __future__ import annotations

import warnings

import xarray as xr

__all__ = ["to_inference_data", "pose_summary", "pose_hdi", "psis", "mcmc_diagnostics"]


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.23 announces its 1.0 refactor
        import arviz

    return arviz


def _chain_draw(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.rename({"sample": "draw"}) if "sample" in ds.dims else ds
    return ds.expand_dims(chain=[0]) if "draw" in ds.dims else ds


def to_inference_data(tree: xr.DataTree):
    """``arviz.InferenceData`` with groups posterior, posterior_predictive and observed_data."""
    az = _arviz()
    groups = {
        "posterior": _chain_draw(tree["posterior"].to_dataset()),
        "posterior_predictive": _chain_draw(tree["posterior_predictive"].to_dataset()),
        "observed_data": tree["observed_data"].to_dataset(),
    }
    return az.InferenceData(**groups)


def pose_summary(tree: xr.DataTree, hdi_prob: float = 0.9, video: int | None = 0):
    """``az.summary(kind="stats")`` (mean, sd, HDI) of the poses ``z_p`` (one video by default)."""
    az = _arviz()
    idata = to_inference_data(tree if video is None else tree.isel(video=video))
    return az.summary(idata, var_names=["z_p"], kind="stats", hdi_prob=hdi_prob)


def pose_hdi(tree: xr.DataTree, prob: float = 0.9) -> xr.Dataset:
    """Highest-density intervals of the positions in pixels, dims (video, object, time, xy, hdi)."""
    az = _arviz()
    idata = to_inference_data(tree)
    return az.hdi(idata, var_names=["position"], hdi_prob=prob)


def psis(log_weights) -> tuple:
    """Pareto-smoothed importance sampling of ``log_weights`` ``(..., S)`` (``arviz.psislw``):
    returns the smoothed, normalised log weights and the Pareto k̂ per leading index."""
    import numpy as np

    az = _arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns when k̂ > 0.7: that is what we report
        lw, k = az.psislw(np.asarray(log_weights, dtype=float))
    return np.asarray(lw), np.asarray(k)


def mcmc_diagnostics(samples: dict) -> dict[str, dict[str, float]]:
    """Rank-normalised split R̂ and bulk/tail ESS (``arviz.rhat``, ``arviz.ess``) of MCMC draws
    ``{name: (chain, draw, ...)}``: the worst (max R̂, min ESS) and median over each variable's
    elements. R̂ < 1.01 and ESS > 100 per chain are the usual targets (Vehtari et al. 2021)."""
    import numpy as np

    az = _arviz()
    data = az.convert_to_dataset({k: np.asarray(v) for k, v in samples.items()})
    rhat, bulk, tail = az.rhat(data), az.ess(data, method="bulk"), az.ess(data, method="tail")
    out = {}
    for name in samples:
        r, b, t = (np.asarray(x[name]).ravel() for x in (rhat, bulk, tail))
        out[name] = {
            "rhat_max": float(np.nanmax(r)),
            "rhat_median": float(np.nanmedian(r)),
            "ess_bulk_min": float(np.nanmin(b)),
            "ess_bulk_median": float(np.nanmedian(b)),
            "ess_tail_min": float(np.nanmin(t)),
        }
    return out
