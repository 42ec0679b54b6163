"""Multi-process training with ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=N -m difflab train ...`` starts N processes with RANK, WORLD_SIZE
and LOCAL_RANK set; :func:`init_distributed` joins them (gloo on CPU, NCCL on GPU).

How a step is split so that N processes train exactly like one process with the same global
batch (up to floating-point summation order):

1. every rank holds the same seeded generator, so all ranks draw the same global batch of
   ``train.batch_size`` indices, the same timesteps and the same noise;
2. the objective sees the global batch, but the network runs only on this rank's contiguous
   shard of it (:class:`ShardedForward`); rows of other ranks are zeros with no gradient;
3. the trainer averages the per-example losses of its shard only, and DDP averages gradients
   over ranks: the mean over ranks of shard means is the global batch mean;
4. the timesteps of the global batch are one stratified (e.g. antithetic) draw spread across
   ranks; adaptive timestep samplers gather the losses of all shards
   (:meth:`TimestepSampler.set_shard`).

Only rank 0 writes files (run directory, metrics, checkpoints).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (1 for ordinary training)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of a batch of ``n`` rows."""
        return shard_slice(n, self.rank, self.world_size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model wrapped in DistributedDataParallel (itself when not distributed)."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def any(self, flags: list[bool], device: torch.device) -> list[bool]:
        """Each flag OR-ed over all ranks (one collective)."""
        if not self.enabled:
            return flags
        values = torch.tensor([float(f) for f in flags], device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(v) for v in values.tolist()]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar averaged over ranks."""
        if not self.enabled:
            return value
        value = value.detach().clone().float()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world_size

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and give every rank its result; a ValueError raised there
        is raised on every rank (so no rank waits forever for a failed one)."""
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except ValueError as err:
                box[0] = ("error", err)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """Rows ``[n * rank // W, n * (rank + 1) // W)`` of a batch of ``n``."""
    return slice(n * rank // world_size, n * (rank + 1) // world_size)


class ShardedForward(nn.Module):
    """Calls ``net`` on this rank's shard of the batch and pads the other rows with zeros.

    Objectives return per-example losses, so the losses of this rank's rows are exactly those
    of the global batch; the trainer keeps only those.
    """

    def __init__(self, net: nn.Module, ctx: DistContext) -> None:
        super().__init__()
        self.net = net
        self.ctx = ctx

    def forward(self, x: torch.Tensor, t: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        part = self.ctx.shard(x.shape[0])
        out = self.net(x[part], t[part], *args, **kwargs)
        before = out.new_zeros((part.start, *out.shape[1:]))
        after = out.new_zeros((x.shape[0] - part.stop, *out.shape[1:]))
        return torch.cat([before, out, after])


def init_distributed(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK in the
    environment); returns the context and this rank's device. Without torchrun: one process.

    ``device`` is the configured device name ('cpu', 'cuda', 'cuda:N'): gloo on CPU, NCCL on
    GPU, where rank r uses GPU LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank), device


def shutdown_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True unless this is a torchrun worker of rank > 0 (which must not print or write)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0
