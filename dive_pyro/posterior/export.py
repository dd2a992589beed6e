"""Posterior samples of a DIVE model as an ``xarray.DataTree`` with named dims.

:func:`sample_posterior` draws ``S`` guide samples with :class:`pyro.infer.Predictive`, replays
them through the model and returns groups

* ``posterior``: ``x_m``, ``z_m`` (1 = missing, paper Eq. 4), ``present``, ``z_p`` (scale, x, y in
  spatial-transformer units), ``position`` (object centre in pixels), ``z_a`` (appearance);
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
import pyro
import torch
import xarray as xr
from pyro.infer import Predictive

from dive_pyro.core.nets import pose_to_pixels
from dive_pyro.data.batch import SceneBatch

__all__ = ["sample_posterior", "save_posterior", "load_posterior", "LATENT_SITES"]

LATENT_SITES = ("x_m", "z_m", "present", "z_p", "z_a")


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


def _reshape(value: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """Drop Predictive's left padding: ``value`` must hold exactly ``prod(shape)`` elements."""
    if value.numel() != int(np.prod(shape)):
        raise ValueError(f"site {name!r} has shape {tuple(value.shape)}, expected {shape} up to padding")
    return value.reshape(shape)


def _pad_future(x: torch.Tensor, T: int, fill: float) -> torch.Tensor:
    """``(..., K)`` → ``(..., T)`` filled with ``fill`` on the future frames."""
    K = x.shape[-1]
    return torch.cat([x, x.new_full((*x.shape[:-1], T - K), fill)], -1)


@torch.no_grad()
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
) -> xr.DataTree:
    """``num_samples`` posterior draws for every video of ``batch`` as a DataTree (see module doc).

    The guide runs in eval mode (no imputation mixing or appearance dropout); its mode is restored.
    ``parallel=False`` runs the guide and model once per sample; ``parallel=True`` runs them once on
    the batch tiled ``num_samples`` times along the video dim (sample-major: one pass, ``S·B`` videos
    in memory). Pyro's own ``Predictive(parallel=True)`` cannot be used: the guide's encoders do not
    vectorise over an extra left sample dim.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(parallel, bool):
        raise TypeError(f"parallel must be a bool, got {parallel!r}")
    if seed is not None:
        pyro.set_rng_seed(seed)
    was_training = guide.training, model.training
    guide.eval()
    model.eval()
    S, (B, T, _, H, W), N, K = num_samples, batch.observed.shape, batch.num_objects, batch.num_observed
    cfg = model.config
    try:
        sites = [*LATENT_SITES, "frames"]
        if parallel:  # row s * B + b of the tiled batch is draw s of video b
            draws = Predictive(model, guide=guide, num_samples=1, return_sites=sites)(SceneBatch.cat([batch] * S))
        else:
            draws = Predictive(model, guide=guide, num_samples=num_samples, return_sites=sites)(batch)
        z_p = _reshape(draws["z_p"], (S, B, N, T, 3), "z_p")
        z_a = draws["z_a"]
        z_a = _reshape(z_a, (S, B, N, z_a.numel() // (S * B * N * cfg.appearance_dim), cfg.appearance_dim), "z_a")
        z_a = z_a.expand(S, B, N, T, cfg.appearance_dim)  # DDPAE: one appearance per object
        frames = _reshape(draws["frames"], (S, B, T, 1, H, W), "frames")[:, :, :, 0]
        # rendered in eval mode too (BatchNorm running statistics), like the frames above
        components = model.render_objects(z_a.reshape(S * B, *z_a.shape[2:]), z_p.reshape(S * B, *z_p.shape[2:]))
        components = components.reshape(S, B, *components.shape[1:])  # (S, B, N, T, 1, H, W)
        imputed = model.composite(components, None)[:, :, :, 0].clamp(0, 1)
    finally:
        guide.train(was_training[0])
        model.train(was_training[1])

    time_coords = {"time": np.arange(T), "is_future": ("time", np.arange(T) >= K)}
    v_o_t = ("sample", "video", "object", "time")
    post: dict[str, tuple] = {
        "z_p": ((*v_o_t, "pose_dim"), _np(z_p)),
        "position": ((*v_o_t, "xy"), _np(pose_to_pixels(z_p, cfg.frame_size))),
        "z_a": ((*v_o_t, "app_dim"), _np(z_a)),
    }
    if "z_m" in draws:  # variants without missingness (ddpae) have no such sites
        z_m = _reshape(draws["z_m"], (S, B, N, K), "z_m")
        post["z_m"] = (v_o_t, _np(_pad_future(z_m, T, 0.0)))
        post["present"] = (v_o_t, _np(_pad_future(1 - z_m, T, 1.0)))
    if "x_m" in draws:
        post["x_m"] = (v_o_t, _np(_pad_future(_reshape(draws["x_m"], (S, B, N, K), "x_m"), T, float("nan"))))
    coords = {
        "sample": np.arange(S),
        "video": np.arange(B),
        "object": np.arange(N),
        **time_coords,
        "pose_dim": ["scale", "x", "y"],
        "xy": ["x", "y"],
        "app_dim": np.arange(cfg.appearance_dim),
        "y": np.arange(H),
        "x": np.arange(W),
    }
    predictive = {
        "frames": (("sample", "video", "time", "y", "x"), _np(frames.clamp(0, 1))),
        "imputed": (("sample", "video", "time", "y", "x"), _np(imputed)),
    }
    if include_objects:
        predictive["objects"] = ((*v_o_t, "y", "x"), _np(components[:, :, :, :, 0].clamp(0, 1)))
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

    config = asdict(cfg) if hasattr(cfg, "__dataclass_fields__") else {}
    attrs = {
        "variant": variant or type(model).__name__,
        "config": json.dumps(config),
        "num_observed": K,
        "frame_size": cfg.frame_size,
        "scenario": batch.scenario,
        "seed": -1 if seed is None else seed,
        "parallel": int(parallel),
    }
    tree = xr.DataTree.from_dict(
        {
            "posterior": dataset(post),
            "posterior_predictive": dataset(predictive),
            "observed_data": dataset(observed),
            "ground_truth": dataset(truth),
        }
    )
    tree.attrs.update(attrs)
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
