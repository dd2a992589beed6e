"""Schedules over training steps: KL annealing (a Pyro ``Messenger``), learning rate, guide tricks."""

from __future__ import annotations

import math

from pyro.poutine.messenger import Messenger

__all__ = ["KLAnneal", "kl_beta", "lr_factor", "schedule_value"]


class KLAnneal(Messenger):
    """Multiply the log-prob scale of every non-observed sample site by ``beta``.

    Used as a context around ``elbo.loss_and_grads(model, guide, ...)`` it scales the latent sites
    of both model and guide, so the ELBO becomes ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))``
    (beta-VAE-style warm-up). Observed sites (the likelihood, ``pyro.factor``) are untouched.
    ``beta`` is a mutable attribute so one instance serves the whole run; like ``poutine.scale`` it
    must be positive.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
            raise ValueError(f"KLAnneal beta must be a finite number > 0, got {value!r}")
        self._beta = float(value)

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"]:
            msg["scale"] = self._beta * msg["scale"]


def kl_beta(step: int, start: float, warmup_steps: int) -> float:
    """Linear KL warm-up: ``start`` at step 0, rising to 1 at ``warmup_steps`` (then 1)."""
    if warmup_steps <= 0:
        return 1.0
    return start + (1.0 - start) * min(1.0, step / warmup_steps)


def lr_factor(step: int, num_steps: int, kind: str, factor: float, at: float) -> float:
    """Multiplier of the base learning rate at ``step`` of a ``num_steps`` run.

    ``"step"``: ``factor`` from step ``floor(at * num_steps)`` on (official DIVE: x0.4 at a third of
    the run); ``"cosine"``: half-cosine from 1 at step 0 to ``factor`` at the last step; ``"none"``: 1.
    """
    if kind == "none":
        return 1.0
    if kind == "step":
        return factor if step >= math.floor(at * num_steps) else 1.0
    if kind == "cosine":
        progress = min(1.0, step / max(1, num_steps - 1))
        return factor + (1.0 - factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_schedule must be one of ('step', 'cosine', 'none'), got {kind!r}")


def schedule_value(spec: float | list | None, step: int) -> float | None:
    """Value of a constant or piecewise-constant ``[[first_step, value], ...]`` schedule at ``step``."""
    if spec is None or isinstance(spec, int | float):
        return spec
    value = None
    for first, v in spec:
        if step >= first:
            value = v
    if value is None:
        raise ValueError(f"schedule {spec!r} has no value at step {step}; its first step must be 0")
    return float(value)
