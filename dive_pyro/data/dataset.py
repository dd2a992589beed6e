"""On-the-fly Moving-MNIST training stream (DIVE generates 10k fresh sequences per epoch, §4.2).

Use with ``DataLoader(dataset, batch_size=None, num_workers=w)``: every item already is a
:class:`SceneBatch`. Batch ``j`` of epoch ``e`` on rank ``r`` is generated from the seed
``hash(seed, e, r, j)``; worker ``w`` of ``W`` produces batches ``j = w, w + W, ...``, which the
DataLoader yields back in order ``j = 0, 1, ...``. The stream is therefore deterministic,
different for every epoch and rank, and the same whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

from torch.utils.data import IterableDataset, get_worker_info

from dive_pyro.data.batch import SceneBatch
from dive_pyro.data.moving_mnist import SCENARIOS, generate

__all__ = ["MovingMNISTDataset", "batch_seed"]


def batch_seed(seed: int, epoch: int, rank: int, index: int) -> int:
    """A 63-bit seed for batch ``index`` of ``epoch`` on ``rank`` (sha256 of the four numbers)."""
    digest = hashlib.sha256(f"dive-pyro:{seed}:{epoch}:{rank}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class MovingMNISTDataset(IterableDataset):
    """Endless-style stream of generated :class:`SceneBatch` es, ``num_batches`` per epoch.

    Args:
        scenario: one of ``SCENARIOS``.
        batch_size: videos per yielded batch.
        seed: base seed. rank: process rank in distributed training (distinct streams).
        num_batches: batches per epoch; default ``ceil(10_000 / batch_size)`` (DIVE's 10k sequences).
        **gen_kwargs: forwarded to :func:`~dive_pyro.data.moving_mnist.generate` (e.g. ``split``,
            ``digits``, ``step_length``, scenario options); not ``seed``.
    """

    def __init__(
        self,
        scenario: str,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        num_batches: int | None = None,
        **gen_kwargs,
    ) -> None:
        super().__init__()
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if num_batches is None:
            num_batches = math.ceil(10_000 / batch_size)
        if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"num_batches must be an int >= 1, got {num_batches!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be an int >= 0, got {rank!r}")
        if "seed" in gen_kwargs:
            raise TypeError("pass the base seed as seed=..., per-batch seeds are derived from it")
        generate(scenario, 1, seed=seed, **gen_kwargs)  # validate gen_kwargs now, not in a worker
        self.scenario = scenario
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.num_batches = num_batches
        self.gen_kwargs = gen_kwargs
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's stream (call before iterating, as with ``DistributedSampler``)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, index: int) -> SceneBatch:
        """Batch ``index`` of the current epoch (what iteration yields at that position)."""
        seed = batch_seed(self.seed, self.epoch, self.rank, index)
        return generate(self.scenario, self.batch_size, seed=seed, **self.gen_kwargs)

    def __iter__(self) -> Iterator[SceneBatch]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for index in range(worker, self.num_batches, workers):
            yield self.batch(index)
