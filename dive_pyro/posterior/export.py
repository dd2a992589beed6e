"""Posterior samples of a DIVE model as an ``xarray.DataTree`` with named dims.

:func:`sample_posterior` = :func:`dive_pyro.inference.sample_posterior` (the project's one
drawing path, every variant) + :func:`to_datatree` (conversion only). Groups:

* ``posterior``: ``z_m`` (1 = missing, paper Eq. 4), ``present``, ``z_p`` (scale, x, y in
  spatial-transformer units), ``position`` (object centre in pixels), ``z_a`` (appearance) and,
  for variants with a Gaussian missingness latent, ``x_m``;
* ``posterior_predictive``: ``frames`` (the model's frames: reconstructions for t < K without the
  objects it judged missing, predictions after) and ``imputed`` (every object drawn in every
  frame); optionally ``objects`` (each object alone);
* ``observed_data``: ``observed`` and ``visible``;
* ``ground_truth`` (when the batch carries it): ``complete``, ``missing``, ``positions``.

Dims: ``sample``, ``video``, ``object``, ``time`` (all T frames; coordinate ``is_future``),
``pose_dim`` (scale, x, y), ``xy`` (x, y), ``app_dim``, ``y``, ``x``. Missingness is defined on the
K input frames only; in the future frames ``z_m = 0`` and ``present = 1`` (objects are always
present in the future, paper §3.3) and ``x_m`` is NaN. Booleans are stored as ``int8`` so that
the tree round-trips through netCDF (:func:`save_posterior` / :func:`load_posterior`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.posterior import sample_posterior as draw_posterior

__all__ = ["sample_posterior", "to_datatree", "save_posterior", "load_posterior", "LATENT_SITES"]

LATENT_SITES = ("x_m", "z_m", "present", "z_p", "z_a")


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _pad_future(x: torch.Tensor, T: int, fill: float) -> torch.Tensor:
    """``(..., K)`` → ``(..., T)`` filled with ``fill`` on the future frames."""
    K = x.shape[-1]
    return torch.cat([x, x.new_full((*x.shape[:-1], T - K), fill)], -1)


def sample_posterior(
    model: torch.nn.Module,
    guide: torch.nn.Module,
    batch: SceneBatch,
    num_samples: int,
    *,
    parallel: bool = False,
    seed: int | None = None,
    include_objects: bool = False,
    variant: str | None = None,
    refine_steps: int = 0,
    refine_power: float | None = None,
) -> xr.DataTree:
    """``num_samples`` posterior draws for every video of ``batch`` as a DataTree (see module doc);
    drawing as in :func:`dive_pyro.inference.sample_posterior` (eval mode, private stream if
    ``seed``, ``parallel`` tiling, ``refine_steps`` of test-time refinement, towards the posterior
    tempered by ``refine_power`` if given)."""
    draws = draw_posterior(
        model,
        guide,
        batch,
        num_samples,
        seed=seed,
        include_objects=include_objects,
        parallel=parallel,
        refine_steps=refine_steps,
        refine_power=refine_power,
    )
    attrs = {
        "variant": variant or type(model).__name__,
        "seed": -1 if seed is None else seed,
        "parallel": int(parallel),
        "refine_steps": int(refine_steps),
        "refine_power": 1.0 if refine_power is None else float(refine_power),
    }
    return to_datatree(draws, batch, model.config, attrs)


@torch.no_grad()
def to_datatree(
    draws: dict[str, torch.Tensor], batch: SceneBatch, config: DiveConfig, attrs: dict | None = None
) -> xr.DataTree:
    """Convert the draws of :func:`dive_pyro.inference.sample_posterior` for ``batch`` into the
    DataTree of the module doc; ``attrs`` are added to the tree's attributes."""
    S, (B, T, _, H, W), N, K = draws["z_p"].shape[0], batch.observed.shape, batch.num_objects, batch.num_observed
    z_p, z_m = draws["z_p"], draws["z_m"]
    time_coords = {"time": np.arange(T), "is_future": ("time", np.arange(T) >= K)}
    v_o_t = ("sample", "video", "object", "time")
    post: dict[str, tuple] = {
        "z_p": ((*v_o_t, "pose_dim"), _np(z_p)),
        "position": ((*v_o_t, "xy"), _np(pose_to_pixels(z_p, config.frame_size))),
        "z_a": ((*v_o_t, "app_dim"), _np(draws["z_a"])),
        "z_m": (v_o_t, _np(_pad_future(z_m, T, 0.0))),
        "present": (v_o_t, _np(_pad_future(draws["present"], T, 1.0))),
    }
    if "x_m" in draws:
        post["x_m"] = (v_o_t, _np(_pad_future(draws["x_m"], T, float("nan"))))
    coords = {
        "sample": np.arange(S),
        "video": np.arange(B),
        "object": np.arange(N),
        **time_coords,
        "pose_dim": ["scale", "x", "y"],
        "xy": ["x", "y"],
        "app_dim": np.arange(config.appearance_dim),
        "y": np.arange(H),
        "x": np.arange(W),
    }
    predictive = {
        "frames": (("sample", "video", "time", "y", "x"), _np(draws["frames"][:, :, :, 0].clamp(0, 1))),
        "imputed": (("sample", "video", "time", "y", "x"), _np(draws["imputed"][:, :, :, 0].clamp(0, 1))),
    }
    if "objects" in draws:
        predictive["objects"] = ((*v_o_t, "y", "x"), _np(draws["objects"][:, :, :, :, 0].clamp(0, 1)))
    observed = {
        "observed": (("video", "time", "y", "x"), _np(batch.observed[:, :, 0])),
        "visible": (("video", "time", "y", "x"), _np(batch.visible[:, :, 0]).astype(np.int8)),
    }
    truth = {
        "complete": (("video", "time", "y", "x"), _np(batch.complete[:, :, 0])),
        "missing": (("video", "object", "time"), _np(batch.missing).astype(np.int8)),
        "positions": (("video", "object", "time", "xy"), _np(batch.positions)),
    }

    def dataset(variables: dict) -> xr.Dataset:
        used = {d for dims, _ in variables.values() for d in dims}
        ds_coords = {k: v for k, v in coords.items() if k in used or (k == "is_future" and "time" in used)}
        return xr.Dataset({k: (dims, v) for k, (dims, v) in variables.items()}, coords=ds_coords)

    tree = xr.DataTree.from_dict(
        {
            "posterior": dataset(post),
            "posterior_predictive": dataset(predictive),
            "observed_data": dataset(observed),
            "ground_truth": dataset(truth),
        }
    )
    tree.attrs.update(
        {
            "variant": "unknown",
            "config": json.dumps(asdict(config)),
            "num_observed": K,
            "frame_size": config.frame_size,
            "scenario": batch.scenario,
            "seed": -1,
            "parallel": 0,
            **(attrs or {}),
        }
    )
    return tree


def save_posterior(tree: xr.DataTree, path: str | Path) -> Path:
    """Write ``tree`` to a netCDF file (h5netcdf engine)."""
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"output folder {str(path.parent)!r} does not exist")
    tree.to_netcdf(path, engine="h5netcdf")
    return path


def load_posterior(path: str | Path) -> xr.DataTree:
    """Read a tree written by :func:`save_posterior` (fully loaded into memory)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no posterior file at {str(path)!r}")
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()
