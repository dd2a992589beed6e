"""How many torch threads a training process uses, and how they wait.

* Default: **one thread per process on CPU** (``TrainConfig.num_threads = none``); several
  processes (``torchrun``) use several cores. On CUDA, torch's own default is kept.
* More threads than free cores (the CPUs this process may run on, minus the load average of the
  other processes) are capped to the free cores, with a warning: an oversubscribed core makes a
  multi-threaded step slower than a single-threaded one.
* libgomp's threads *spin* while they wait (``OMP_WAIT_POLICY=ACTIVE`` behaviour by default); on a
  machine where anything else runs, two spinning threads made an SVI step 16-18× slower than one
  thread. With ``OMP_WAIT_POLICY=PASSIVE`` they sleep instead. libgomp reads the variable once, when
  torch is imported, so it must be in the environment before ``import torch``: ``dive-pyro train``
  re-starts itself with it when it will use more than one thread; a notebook or script must set it
  itself (``os.environ["OMP_WAIT_POLICY"] = "PASSIVE"`` before importing torch, or in the shell),
  and :func:`fit <dive_pyro.inference.train.fit>` warns when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch

__all__ = ["WAIT_POLICY", "free_cores", "passive_wait_missing", "resolve_threads", "threads_for_run"]

WAIT_POLICY = "PASSIVE"


def free_cores() -> int:
    """CPUs this process may use (``os.sched_getaffinity``) minus the 1-minute load average of the
    *other* processes (this one counts as one), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:
        others = 0.0
    return max(1, round(cores - others))


def uses_openmp() -> bool:
    """Whether torch's CPU kernels run on OpenMP threads (the wait policy matters only then)."""
    return "OpenMP" in torch.__config__.parallel_info()


def passive_wait_missing(threads: int, environ: dict | None = None) -> bool:
    """True when ``threads`` > 1 OpenMP threads would spin-wait (``OMP_WAIT_POLICY`` not set)."""
    environ = os.environ if environ is None else environ
    return threads > 1 and "OMP_WAIT_POLICY" not in environ and uses_openmp()


def resolve_threads(
    requested: int | None, device: torch.device, *, free: int | None = None, stacklevel: int = 2
) -> int | None:
    """Threads for a run on ``device``: ``requested``, 1 on CPU when None (None on CUDA: torch's
    default), capped to the free cores with a warning (see the module docstring)."""
    if requested is None:
        return 1 if device.type == "cpu" else None
    free = free_cores() if free is None else free
    if requested > free:
        warnings.warn(
            f"num_threads={requested} but only {free} core(s) of this machine are free (CPUs minus the "
            f"load average of other processes); using {free} thread(s), since an oversubscribed core makes "
            "every step slower than one thread",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        return free
    return requested


@contextlib.contextmanager
def threads_for_run(requested: int | None, device: torch.device) -> Iterator[int]:
    """Set torch's thread count for the run (restored afterwards); warns when several OpenMP threads
    would spin-wait. Yields the number of threads used."""
    threads = resolve_threads(requested, device, stacklevel=5)  # the warning names the caller of fit()
    if threads is None:
        yield torch.get_num_threads()
        return
    if passive_wait_missing(threads):
        warnings.warn(
            f"{threads} torch threads with OpenMP's spin-waiting can be many times slower than one thread on "
            f"a shared machine; set OMP_WAIT_POLICY={WAIT_POLICY} in the environment before torch is imported",
            RuntimeWarning,
            stacklevel=4,
        )
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
