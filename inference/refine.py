"""Test-time refinement of an amortised guide (semi-amortised variational inference).

An amortised guide maps every video to its posterior with one network; the gap between its answer
and the best member of its family for *this* video is the amortisation gap (Cremer et al. 2018).
:func:`refine` closes part of it: it adds a free offset to the location and the log-scale of every
Gaussian guide site, per video, element and coordinate, starting at zero (the guide itself), and
takes ``steps`` Adam steps on the ELBO of the given batch with the networks fixed (Kim et al.
2018, semi-amortised VAEs). Offsets are in units of the guide's own sd (``loc + sd · δ``), so one
learning rate suits sites whose posterior sds differ by orders of magnitude (pose vs appearance).
Only what the guide reads is scored: the future frames of a ``SceneBatch`` are hidden from the
likelihood while refining (at test time they are what is to be predicted). The downstream guide
networks still run on the refined draws (e.g. the appearance encoder crops at the refined poses).
``sample_posterior(..., refine_steps=n)`` draws from the refined guide.

``likelihood_power=λ`` refines towards the tempered posterior ``p(z) p(y | z)^λ`` instead (every
observed site's log-density times ``λ``, on top of the model's own ``likelihood_power``); with it
the pose sites' sds start at ``λ^{-1/2}`` times the guide's (:func:`tempered_start`), the width of a
likelihood-dominated Gaussian posterior tempered by ``λ``, which a few steps could not reach from
the guide's own (their log-scale moves by about ``lr`` per step).
"""

from __future__ import annotations

import dataclasses
import math

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from dive_pyro.data.batch import SceneBatch
from dive_pyro.inference.modes import eval_mode

__all__ = ["POSE_SITES", "GuideOffsets", "RefinedGuide", "TemperObserved", "inputs_only", "refine", "tempered_start"]

# the pose latents of the DIVE guides: z_p_0 and the increments beta (dive); the auxiliary path that
# both are read from in dive-markov (guides/markov_pose.py; a guide-only site)
POSE_SITES = ("z_p_0", "beta", "pose_path")


def _unwrap(fn) -> tuple[dist.Distribution, int]:
    ndims = 0
    while isinstance(fn, dist.Independent | torch.distributions.Independent):
        ndims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, ndims


class GuideOffsets(Messenger):
    """Adds per-element offsets to Gaussian guide sites: ``loc + scale · δ`` and ``scale · exp(ρ)``
    (``Normal``), or ``loc + sd · δ`` and ``diag(exp(ρ)) · scale_tril`` (``MultivariateNormal``,
    ``sd`` its marginal sds).
    Other sites (Delta, Bernoulli, ...) pass unchanged. Offsets are created at zero on first use;
    ``params`` lists them (``requires_grad``). ``init_log_scale`` starts the log-scale offsets ρ of the
    named sites elsewhere, e.g. at ``-½ log λ`` towards a posterior tempered by ``λ`` (the sd of a
    likelihood-dominated Gaussian posterior scales as ``λ^{-1/2}``)."""

    def __init__(self, init_log_scale: dict[str, float] | None = None) -> None:
        super().__init__()
        self.offsets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.init_log_scale = dict(init_log_scale or {})

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for pair in self.offsets.values() for p in pair]

    def _offsets(self, name: str, loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in self.offsets:
            zeros = torch.zeros_like(loc.detach())
            rho = zeros + self.init_log_scale.get(name, 0.0)
            self.offsets[name] = (zeros.clone().requires_grad_(), rho.requires_grad_())
        shift, log_scale = self.offsets[name]
        if shift.shape != loc.shape:
            raise ValueError(f"site {name!r} changed shape from {tuple(shift.shape)} to {tuple(loc.shape)}")
        return shift, log_scale

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or isinstance(msg["fn"], _Subsample) or msg["infer"].get("_deterministic"):
            return
        base, ndims = _unwrap(msg["fn"])
        if isinstance(base, torch.distributions.Normal):
            shift, log_scale = self._offsets(msg["name"], base.loc)
            new = dist.Normal(base.loc + base.scale * shift, base.scale * log_scale.exp())
        elif isinstance(base, torch.distributions.MultivariateNormal):
            shift, log_scale = self._offsets(msg["name"], base.loc)
            sd = base.scale_tril.pow(2).sum(-1).sqrt()
            scale_tril = log_scale.exp()[..., None] * base.scale_tril
            new = dist.MultivariateNormal(base.loc + sd * shift, scale_tril=scale_tril)
        else:
            return
        msg["fn"] = new.to_event(ndims) if ndims else new


class TemperObserved(Messenger):
    """Multiplies the log-density of every observed site by ``power`` (a power likelihood)."""

    def __init__(self, power: float) -> None:
        if not power > 0:
            raise ValueError(f"likelihood power must be > 0, got {power!r}")
        super().__init__()
        self.power = float(power)

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and msg["is_observed"]:
            msg["scale"] = self.power * msg["scale"]


def tempered_start(power: float, sites: tuple[str, ...] = POSE_SITES) -> dict[str, float]:
    """Starting log-scale offsets ``-½ log λ`` of ``sites`` towards a posterior tempered by ``λ``."""
    if not power > 0:
        raise ValueError(f"likelihood power must be > 0, got {power!r}")
    return {name: -0.5 * math.log(power) for name in sites}


def inputs_only(batch: SceneBatch) -> SceneBatch:
    """``batch`` with its future frames (t ≥ K) hidden: not visible, observed as 0."""
    K = batch.num_observed
    visible = batch.visible.clone()
    visible[:, K:] = False
    return dataclasses.replace(batch, visible=visible, observed=batch.observed * visible)


class RefinedGuide:
    """``guide`` run under its :class:`GuideOffsets` (what :func:`refine` returns)."""

    def __init__(self, guide, offsets: GuideOffsets) -> None:
        self.guide, self.offsets = guide, offsets

    def __call__(self, *args, **kwargs):
        with self.offsets:
            return self.guide(*args, **kwargs)

    def missing_probability(self, batch: SceneBatch) -> torch.Tensor:
        """``q(z_m = 1 | y) = P(x_m ≥ 0) = Φ(µ_m / σ_m)`` of the *refined* ``x_m`` site, ``(B, N, K)``
        (paper Eq. 4; equal to the guide's own when the offsets are zero)."""
        with torch.no_grad():
            site = poutine.trace(self).get_trace(batch).nodes.get("x_m")
        if site is None or site["type"] != "sample":
            raise ValueError("the refined guide has no Gaussian missingness site x_m")
        base, _ = _unwrap(site["fn"])
        if not isinstance(base, torch.distributions.Normal):
            raise ValueError(f"x_m is {type(base).__name__}, expected a Normal")
        return torch.special.ndtr(base.loc / base.scale).expand(site["value"].shape)


def refine(
    model,
    guide,
    batch,
    steps: int,
    *,
    lr: float = 0.05,
    num_particles: int = 1,
    return_losses: bool = False,
    init_log_scale: dict[str, float] | None = None,
    likelihood_power: float | None = None,
):
    """The guide with ``steps`` per-video SVI steps on its outputs (module doc); networks fixed, in
    eval mode. Returns the refined guide (a callable like ``guide``), and with ``return_losses`` also
    the ``steps`` ELBO-loss estimates (negative ELBO of the batch, ``num_particles`` draws each).
    ``init_log_scale``: starting log-scale offsets per site name (:class:`GuideOffsets`; 0 = the
    guide's own sd). ``likelihood_power``: refine towards the tempered posterior (module doc); the
    starting offsets are then :func:`tempered_start` unless ``init_log_scale`` is given."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"refine steps must be a non-negative integer, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"refine lr must be > 0, got {lr!r}")
    if isinstance(batch, SceneBatch):
        batch = inputs_only(batch)
    target = model
    if likelihood_power is not None:
        temper = TemperObserved(likelihood_power)
        target = temper(model)
        if init_log_scale is None:
            init_log_scale = tempered_start(likelihood_power)
    offsets = GuideOffsets(init_log_scale)
    refined = RefinedGuide(guide, offsets)
    losses: list[float] = []
    if steps:
        elbo = Trace_ELBO(num_particles=num_particles)
        with eval_mode(model, guide), torch.enable_grad():
            with torch.no_grad():
                poutine.trace(refined).get_trace(batch)  # creates the offsets at zero
            if not offsets.params:
                raise ValueError("the guide has no Gaussian sites to refine")
            optimizer = torch.optim.Adam(offsets.params, lr=lr)
            for _ in range(steps):
                loss = elbo.differentiable_loss(target, refined, batch)
                grads = torch.autograd.grad(loss, offsets.params, allow_unused=True)
                for p, g in zip(offsets.params, grads, strict=True):
                    p.grad = g
                optimizer.step()
                losses.append(float(loss.detach()))
        for p in offsets.params:
            p.requires_grad_(False)
            p.grad = None
    return (refined, losses) if return_losses else refined
