"""Sleep-phase training of an amortised guide on simulations from the model's own prior.

Amortised simulation-based calibration (Talts et al. 2018 §5; the "amortised SBC" practice of
neural posterior estimation) only says something about a guide on the data it was trained for.
A DIVE guide is trained on Moving-MNIST, but SBC feeds it videos simulated from the model's prior,
which look nothing like it. :func:`sleep_train` fine-tunes the guide on ``(z, y) ~ p(z) p(y | z)``
by maximising ``E log q(z | y)`` (the sleep phase of reweighted wake-sleep, Bornschein & Bengio
2015, Eq. 6: forward KL, whose optimum over a rich enough family is the exact posterior). The model
(decoder included) is held fixed: only the guide's parameters move.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from pyro import poutine

from dive_pyro.models.simulate import simulate

__all__ = ["SleepResult", "sleep_loss", "sleep_train"]

_GUIDE_LATENTS = ("x_m", "z_p_0", "beta", "z_a")


@dataclass
class SleepResult:
    steps: int
    losses: list[float]  # −E log q(z | y) per video, one per step
    elapsed_s: float


def sleep_loss(model, guide, batch) -> torch.Tensor:
    """``−(1/B) Σ_b log q(z_b | y_b)`` for a simulated ``batch`` whose latents are in ``meta``."""
    latents = batch.meta.get("latents")
    if not latents:
        raise ValueError("sleep_loss needs a simulated batch (dive_pyro.models.simulate) with meta['latents']")
    data = {k: v for k, v in latents.items() if k in _GUIDE_LATENTS}
    trace = poutine.trace(poutine.condition(guide, data=data)).get_trace(batch)
    missing = [k for k in data if k not in trace.nodes]
    if missing:
        raise ValueError(f"guide has no site(s) {missing}")
    return -trace.log_prob_sum() / batch.batch_size


def sleep_train(
    model,
    guide,
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    noise: bool = True,
    max_seconds: float | None = None,
) -> SleepResult:
    """Fine-tune ``guide`` for ``steps`` Adam steps on fresh prior simulations (see module doc).

    Runs the guide in eval mode (no imputation mixing or appearance dropout, BatchNorm running
    statistics), the mode SBC draws in; both modules' modes and the global RNG state are restored.
    """
    if steps < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 0 and batch_size >= 1, got {steps}, {batch_size}")
    params = [p for p in guide.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the guide has no trainable parameters")
    optim = torch.optim.Adam(params, lr=lr)
    modes = guide.training, model.training
    guide.eval()
    model.eval()
    losses: list[float] = []
    start = time.perf_counter()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for _ in range(steps):
                batch = simulate(model, batch_size, noise=noise)
                optim.zero_grad()
                loss = sleep_loss(model, guide, batch)
                loss.backward()
                optim.step()
                losses.append(float(loss.detach()))
                if max_seconds is not None and time.perf_counter() - start > max_seconds:
                    break
    finally:
        guide.train(modes[0])
        model.train(modes[1])
        model.zero_grad(set_to_none=True)
    return SleepResult(len(losses), losses, time.perf_counter() - start)
