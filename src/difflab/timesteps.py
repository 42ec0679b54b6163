"""How training draws the timestep t of each example.

``t`` is an int64 tensor of shape (B,) in {0..T-1}; t = 0 is x_1, one step of noise.

- uniform: t ~ U{0..T-1} independently;
- antithetic: half the batch draws t, the other half takes T-1-t (Song et al. 2020's DDIM
  code), which lowers the variance of the batch mean.

Every sampler returns (t, weights): the loss of example i is multiplied by weights[i] so that the
batch mean stays an unbiased estimate of the loss averaged uniformly over t.

In multi-process training every rank draws the t of the whole global batch from the same
generator and runs the network on its own shard (training/distributed.py), so one stratified
draw is spread across ranks. ``set_shard`` tells the sampler its rank; ``update`` then gathers
the losses of every rank's shard before an adaptive sampler records them.
"""

from __future__ import annotations

import torch

from difflab.choices import StrEnum, parse_enum


class TimestepSampling(StrEnum):
    UNIFORM = "uniform"
    ANTITHETIC = "antithetic"


def uniform_timesteps(
    batch_size: int, T: int, *, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """t ~ U{0..T-1}, shape (batch_size,), int64."""
    return torch.randint(0, T, (batch_size,), generator=generator, device=device)


def antithetic_timesteps(
    batch_size: int, T: int, *, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Pairs (t, T-1-t): the first ceil(B/2) entries are uniform, the rest mirror them."""
    half = uniform_timesteps((batch_size + 1) // 2, T, generator=generator, device=device)
    return torch.cat([half, T - 1 - half])[:batch_size]


class TimestepSampler:
    """Draws (t, weights) for a batch; ``update`` receives per-example losses (used by adaptive
    samplers, a no-op here)."""

    def __init__(self, T: int, method: TimestepSampling | str = TimestepSampling.UNIFORM) -> None:
        self.T = int(T)
        self.method = parse_enum(TimestepSampling, method, "loss.timesteps")
        self.rank, self.world_size = 0, 1

    def set_shard(self, rank: int, world_size: int) -> None:
        """This process is ``rank`` of ``world_size``: the losses given to ``update`` are valid
        only in this rank's contiguous shard of the batch."""
        self.rank, self.world_size = int(rank), int(world_size)

    def sample(
        self, batch_size: int, *, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        draw = (
            antithetic_timesteps
            if self.method is TimestepSampling.ANTITHETIC
            else uniform_timesteps
        )
        t = draw(batch_size, self.T, generator=generator, device=device)
        return t, torch.ones(batch_size, device=device)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-example losses (B,) at t (B,) of the global batch; in multi-process
        training each rank's shard is gathered first so every rank records the same values."""
        if type(self).record is TimestepSampler.record:
            return  # nothing to record: skip the all-gather
        if self.world_size > 1:
            losses = gather_shards(losses, self.rank, self.world_size)
        self.record(t, losses)

    def record(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-example losses at t (adaptive samplers; a no-op here)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore adaptive state (none here)."""


def gather_shards(values: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """A (B,) tensor whose rows are valid only in this rank's contiguous shard, made whole by
    an all-gather of every rank's shard (needs an initialised process group)."""
    import torch.distributed as dist

    n = values.shape[0]
    bounds = [(n * r // world_size, n * (r + 1) // world_size) for r in range(world_size)]
    lo, hi = bounds[rank]
    parts = [values.new_empty(b - a) for a, b in bounds]
    dist.all_gather(parts, values[lo:hi].detach().contiguous())
    return torch.cat(parts)
