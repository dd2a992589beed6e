"""Data-parallel training over processes launched by ``torchrun`` (gloo on CPU, NCCL on CUDA).

Design: every rank runs the full model and guide on its own batch (data seed depends on the rank),
calls ``elbo.loss_and_grads`` as usual, and then the gradients are **summed** across ranks by one
all-reduce of a flat buffer (:func:`all_reduce_grads`). We do this by hand rather than with
``DistributedDataParallel`` because Pyro's ELBOs run the model and guide through effect handlers
and call ``backward`` themselves (several times with ``num_particles > 1``; TraceGraph adds
baseline terms; TraceEnum enumerates): DDP would need the forward pass routed through its wrapper
and breaks on parameters unused in a step. One all-reduce after ``loss_and_grads`` works with
every ELBO. (Overlap of communication with backward, DDP's speed trick, does not matter here.)

Why sum and not average: Pyro's ELBO is a *sum* over sequences, so the summed gradient of ``W``
ranks with batch ``b`` equals exactly the gradient of one process on the combined ``W*b`` batch
(same loss scale, same clipping, same Adam step). Averaging would give that gradient divided by
``W``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "setup_distributed",
    "teardown_distributed",
    "all_reduce_grads",
    "all_reduce_sum",
    "broadcast_module_states",
    "barrier",
]


@dataclass
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # True if setup_distributed initialised the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def setup_distributed(device: torch.device) -> DistContext:
    """Join the process group described by ``torchrun``'s env (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``); a single process (no or ``WORLD_SIZE=1``) gets a trivial context.

    Backend: NCCL when ``device`` is CUDA, gloo otherwise. If a group is already initialised (e.g.
    by the caller) it is reused and left alone by :func:`teardown_distributed`.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(
            dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK") or 0, dist.get_backend(), False
        )
    world = _env_int("WORLD_SIZE") or 1
    if world <= 1:
        return DistContext()
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if rank is None:
        raise ValueError("WORLD_SIZE > 1 but RANK is not set; launch with torchrun")
    if not 0 <= rank < world:
        raise ValueError(f"RANK must be in [0, WORLD_SIZE={world}), got {rank}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"WORLD_SIZE > 1 but {name} is not set; launch with torchrun")
    if not dist.is_available():  # pragma: no cover
        raise RuntimeError("torch.distributed is not available in this torch build")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank, world, local_rank or 0, backend, True)


def teardown_distributed(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_grads(params: list[torch.Tensor], ctx: DistContext) -> None:
    """Sum ``p.grad`` over ranks in place (missing grads count as zeros), in one flat all-reduce."""
    if not ctx.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a small tensor over ranks (returns a new tensor; identity for one process)."""
    out = values.clone()
    if ctx.enabled:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_module_states(modules: list[torch.nn.Module], ctx: DistContext, *, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical start even if inits differ).

    With ``buffers_only`` (called before every step) only buffers such as BatchNorm running
    statistics are copied, as ``DistributedDataParallel(broadcast_buffers=True)`` does.
    """
    if not ctx.enabled:
        return
    with torch.no_grad():
        for module in modules:
            tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
