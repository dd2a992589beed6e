"""What a trainer or evaluator needs from a fitted (model, guide) pair.

* :func:`posterior_trace`: the model's trace with latents replayed from the posterior;
* :func:`reconstruct`: frames ``(B, T, 1, H, W)`` -- reconstructions of the K input frames and
  predictions of the rest -- from the guide's posterior mean (the official evaluation,
  ``sample=False``) or from one posterior draw, via ``poutine.replay``;
* :func:`sample_posterior`: THE posterior drawing path of the project (the DataTree export
  ``dive_pyro.posterior.export`` only converts its draws): ``{name: (S, ...)}`` with the same
  keys for every registered variant;
* :func:`missing_probability`: posterior ``P(z_m = 1)`` per video, object and input frame;
* :class:`PosteriorMean`: an effect handler that replaces latent draws by their means.

Call ``model.eval(); guide.eval()`` first for evaluation (BatchNorm statistics, no imputation or
appearance dropout); :func:`sample_posterior` does so itself and restores the modes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, infer_discrete
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from dive_pyro.core.structure import MAX_PLATE_NESTING
from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.modes import eval_mode
from dive_pyro.inference.refine import refine
from dive_pyro.models.dive import DiveModel

__all__ = [
    "DRAW_KEYS",
    "PosteriorMean",
    "eval_mode",
    "missing_probability",
    "posterior_objects",
    "posterior_trace",
    "reconstruct",
    "sample_posterior",
]

#: Keys of :func:`sample_posterior` for every variant (``x_m`` and ``objects`` where available/asked).
DRAW_KEYS = ("z_m", "present", "z_p", "z_a", "frames", "imputed")


class PosteriorMean(Messenger):
    """Use each latent site's mean instead of a draw; discrete (Bernoulli) sites take their mode
    ``1[p ≥ 1/2]``. For the Heaviside missingness this gives ``z_m = H(µ_m)``, the official
    test-time rule."""

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or isinstance(msg["fn"], _Subsample):
            return  # observed, already fixed, or a plate's subsample site
        fn = msg["fn"]
        mean = fn.mean
        msg["value"] = (mean >= 0.5).to(mean.dtype) if fn.support.is_discrete else mean


def _replayed(model: DiveModel, guide_trace, use_mean: bool):
    model_fn = poutine.replay(model, trace=guide_trace)
    if getattr(model, "enumerates_missingness", False):  # exact posterior mode or draw given the rest
        return infer_discrete(model_fn, first_available_dim=-1 - MAX_PLATE_NESTING, temperature=0 if use_mean else 1)
    return model_fn


def posterior_trace(model: DiveModel, guide: torch.nn.Module, batch: SceneBatch, use_mean: bool = True):
    """The model's trace on ``batch`` with its latents replayed from the guide's posterior means
    (``use_mean``) or from one guide draw (``dive-enum``: missingness at its exact posterior mode or
    a draw, given the rest)."""
    with torch.no_grad():
        guide_trace = poutine.trace(PosteriorMean()(guide) if use_mean else guide).get_trace(batch)
        return poutine.trace(_replayed(model, guide_trace, use_mean)).get_trace(batch)


def reconstruct(
    model: DiveModel, guide: torch.nn.Module, batch: SceneBatch, use_mean: bool = True, complete: bool = False
) -> torch.Tensor:
    """Rendered frames ``(B, T, 1, H, W)`` for ``batch`` under the posterior: guide means
    (``use_mean=True``) or one guide draw, replayed through the model. For ``dive-enum`` the
    missingness is then set to its exact posterior mode (or a posterior draw) given those latents.

    ``complete=False``: the model's frames (input frames without the objects it judged missing,
    paper Eq. 10). ``complete=True``: every object rendered in every frame, i.e. the imputed
    complete video, to compare with ``batch.complete``.
    """
    with torch.no_grad():
        if not complete:
            return posterior_trace(model, guide, batch, use_mean=use_mean).nodes["frames"]["value"]
        objects, _ = posterior_objects(model, guide, batch, use_mean=use_mean)
        return model.composite(objects, None)


def posterior_objects(
    model: DiveModel, guide: torch.nn.Module, batch: SceneBatch, use_mean: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each object rendered alone in every frame, ``T(f_dec(z_a); z_p)`` ``(B, N, T, 1, H, W)`` (paper
    Eq. 10 before compositing and without the missingness mask), and its pose ``z_p`` ``(B, N, T, 3)``,
    under the guide means (``use_mean=True``) or one guide draw replayed through the model."""
    with torch.no_grad():
        trace = posterior_trace(model, guide, batch, use_mean=use_mean)
        z_p = trace.nodes["z_p"]["value"]
        z_a = model.appearance_per_frame(trace.nodes["z_a"]["value"], z_p.shape[-2])
        return model.render_objects(z_a, z_p), z_p


@contextlib.contextmanager
def _rng(seed: int | None, device: torch.device) -> Iterator[None]:
    """A private torch random stream seeded with ``seed`` (the caller's stream is left untouched);
    ``seed=None``: draw from the caller's stream."""
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def _draw(model: DiveModel, trace, batch: SceneBatch, include_objects: bool, extra: tuple[str, ...]) -> dict:
    """The standard draw of one replayed model trace (see :func:`sample_posterior`)."""
    missing = [name for name in ("present", "z_p", "z_a", "frames", *extra) if name not in trace.nodes]
    if missing:
        known = [n for n, s in trace.nodes.items() if s["type"] == "sample"]
        raise ValueError(f"unknown site(s) {missing}; this model has {known}")
    B, N, K = batch.batch_size, batch.num_objects, batch.num_observed
    present = trace.nodes["present"]["value"].reshape(B, N, K)
    z_p = trace.nodes["z_p"]["value"]
    z_a = model.appearance_per_frame(trace.nodes["z_a"]["value"], z_p.shape[-2])
    objects = model.render_objects(z_a, z_p)  # (B, N, T, 1, H, W)
    out = {
        "z_m": 1 - present,
        "present": present,
        "z_p": z_p,
        "z_a": z_a,
        "frames": trace.nodes["frames"]["value"],
        "imputed": model.composite(objects, None),  # every object in every frame
    }
    if "x_m" in trace.nodes:  # the Gaussian missingness latent (Heaviside variants)
        out["x_m"] = trace.nodes["x_m"]["value"].reshape(B, N, K)
    if include_objects:
        out["objects"] = objects.clamp(max=1.0)
    out.update({name: trace.nodes[name]["value"] for name in extra})
    return out


def sample_posterior(
    model: DiveModel,
    guide: torch.nn.Module,
    batch: SceneBatch,
    num_samples: int = 1,
    *,
    seed: int | None = None,
    include_objects: bool = False,
    parallel: bool = False,
    extra_sites: tuple[str, ...] = (),
    refine_steps: int = 0,
    refine_lr: float = 0.05,
    refine_power: float | None = None,
) -> dict[str, torch.Tensor]:
    """``num_samples`` posterior draws for every video of ``batch``: guide draws replayed through
    the model (for ``dive-enum`` the summed-out missingness then drawn exactly given them with
    ``infer_discrete``). Model and guide run in eval mode (modes restored), without gradients.

    Returns ``{name: (S, ...)}``, the same keys for every variant:

    * ``z_m``, ``present`` ``(S, B, N, K)``: missingness on the input frames (1 = missing, paper
      Eq. 4) and ``1 - z_m``; ``ddpae`` has no missingness: ``z_m = 0``, ``present = 1``;
    * ``z_p`` ``(S, B, N, T, 3)`` poses, ``z_a`` ``(S, B, N, T, h)`` appearances (per frame);
    * ``frames`` ``(S, B, T, 1, H, W)``: the model's frames (Eq. 10), ``imputed``: every object
      drawn in every frame; ``objects`` ``(S, B, N, T, 1, H, W)`` with ``include_objects``;
    * ``x_m`` ``(S, B, N, K)`` for variants with a Gaussian missingness latent;
    * each of ``extra_sites`` with its trace shape.

    ``seed``: draws from a private stream (the global RNG is neither reseeded nor advanced).
    ``parallel=True`` runs guide and model once on the batch tiled ``S`` times along the video dim
    (sample-major; ``S·B`` videos in memory) instead of once per draw. Pyro's
    ``Predictive(parallel=True)`` cannot be used: the guide's encoders do not vectorise over an
    extra left sample dim.

    ``refine_steps=n``: draw from the guide after ``n`` per-video SVI steps on its outputs
    (:func:`dive_pyro.inference.refine.refine`, Adam with ``refine_lr``; semi-amortised inference),
    towards the posterior tempered by ``refine_power`` if given (its ``likelihood_power``).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not isinstance(parallel, bool):
        raise TypeError(f"parallel must be a bool, got {parallel!r}")
    if refine_steps and parallel:
        raise ValueError("refine_steps needs parallel=False (the refined offsets are per video of the batch)")
    S, B = num_samples, batch.batch_size
    with eval_mode(model, guide), _rng(seed, batch.device), torch.no_grad():
        if refine_steps:
            guide = refine(model, guide, batch, refine_steps, lr=refine_lr, likelihood_power=refine_power)
        if parallel:  # row s * B + b of the tiled batch is draw s of video b
            tiled = SceneBatch.cat([batch] * S)
            draw = _draw(model, posterior_trace(model, guide, tiled, False), tiled, include_objects, extra_sites)
            return {k: v.reshape(S, B, *v.shape[1:]) if k not in extra_sites else v for k, v in draw.items()}
        draws = [
            _draw(model, posterior_trace(model, guide, batch, False), batch, include_objects, extra_sites)
            for _ in range(S)
        ]
    return {k: torch.stack([d[k] for d in draws]) for k in draws[0]}


def missing_probability(model: DiveModel, guide: torch.nn.Module, batch: SceneBatch) -> torch.Tensor:
    """Posterior probability that object i is missing at input frame t, ``(B, N, K)``.

    For guides with a missingness posterior this is ``q(z_m = 1 | y)``. For ``dive-enum`` it is the
    exact conditional posterior ``p(z_m = 1 | y, z_p, z_a)`` at the guide's posterior means.
    """
    with torch.no_grad():
        if not getattr(model, "enumerates_missingness", False):
            return guide.missing_probability(batch)
        elbo = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
        marginals = elbo.compute_marginals(model, PosteriorMean()(guide), batch)
        probs = []
        for i in range(batch.num_objects):
            marginal: dist.Bernoulli = marginals[f"z_m_{i}"]
            probs.append(marginal.probs.reshape(batch.batch_size, batch.num_observed))
        return torch.stack(probs, 1)
