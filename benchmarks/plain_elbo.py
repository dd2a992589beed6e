"""The DIVE −ELBO computed by the same networks with Pyro's machinery switched off.

Inside :func:`plain_pyro`, ``pyro.sample`` becomes a direct ``rsample``/``log_prob`` call that
accumulates ``log q`` (guide) or ``log p`` (model), ``pyro.plate`` a no-op context and
``pyro.deterministic`` the identity: no traces, no effect handlers, no plate messengers, no
ELBO bookkeeping. What remains is the plain torch computation of

    −ELBO = Σ_guide sites log q(z) − Σ_model sites log p(z) − log p(y | z)

for one draw z ~ q, which is what ``Trace_ELBO`` estimates with one particle (same draws when the
random streams agree, see ``tests/test_benchmarks_plain_elbo.py``). The ratio of the two step
times is Pyro's overhead (``benchmarks/svi_step.py``).
"""

from __future__ import annotations

import contextlib

import pyro
import torch


class _NoPlate:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class _Tape:
    """Values drawn by the guide and the running sums of log-densities."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self.log_q = torch.zeros(())
        self.log_p = torch.zeros(())
        self.mode = "guide"

    def sample(self, name: str, fn, *args, obs: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if self.mode == "guide":
            value = fn.rsample() if fn.has_rsample else fn.sample()
            self.values[name] = value
            self.log_q = self.log_q + fn.log_prob(value).sum()
            return value
        value = obs if obs is not None else self.values[name]
        self.log_p = self.log_p + fn.log_prob(value).sum()
        return value


@contextlib.contextmanager
def plain_pyro(tape: _Tape):
    """Replace ``pyro.sample``/``plate``/``deterministic`` by plain torch for the duration."""
    saved = pyro.sample, pyro.plate, pyro.deterministic
    pyro.sample = tape.sample
    pyro.plate = _NoPlate
    pyro.deterministic = lambda name, value, event_dim=None: value
    try:
        yield tape
    finally:
        pyro.sample, pyro.plate, pyro.deterministic = saved


def plain_loss(model, guide, batch) -> torch.Tensor:
    """One-draw −ELBO of ``model``/``guide`` on ``batch`` in plain torch (differentiable)."""
    tape = _Tape()
    with plain_pyro(tape):
        guide(batch)
        tape.mode = "model"
        model(batch)
    return tape.log_q - tape.log_p
