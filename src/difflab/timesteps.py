"""How training draws the timestep t of each example.

``t`` is an int64 tensor of shape (B,) in {0..T-1}; t = 0 is x_1, one step of noise.

- uniform: t ~ U{0..T-1} independently;
- antithetic: half the batch draws t, the other half takes T-1-t (Song et al. 2020's DDIM
  code), which lowers the variance of the batch mean;
- importance: t ~ p_t proportional to sqrt(E[L_t^2]), the root mean square of the last
  ``history`` losses seen at t (Nichol & Dhariwal 2021, Eq. 18), mixed with a small uniform
  floor; uniform draws until every t has ``history`` losses (the warm-up).

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
    IMPORTANCE = "importance"


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
    """Draws (t, weights) for a batch; ``update`` records per-example losses at their t.

    With ``method = "importance"`` the sampler keeps the last ``history`` losses of every t.
    Until each t has them all it draws uniformly (weights 1); then it draws t with probability
    p_t = (1 - uniform_floor) * rms_t / sum(rms) + uniform_floor / T and weights each example by
    1 / (T p_t), so the weighted batch mean is an unbiased estimate of the uniform average.
    """

    def __init__(
        self,
        T: int,
        method: TimestepSampling | str = TimestepSampling.UNIFORM,
        *,
        history: int = 10,
        uniform_floor: float = 1e-3,
    ) -> None:
        self.T = int(T)
        self.method = parse_enum(TimestepSampling, method, "loss.timesteps")
        if history < 1 or not 0 < uniform_floor <= 1:
            raise ValueError("importance sampling needs history >= 1 and 0 < uniform_floor <= 1")
        self.history = int(history)
        self.uniform_floor = float(uniform_floor)
        self.losses = torch.zeros(self.T, self.history, dtype=torch.float64)
        self.counts = torch.zeros(self.T, dtype=torch.long)
        self.rank, self.world_size = 0, 1

    @property
    def warmed_up(self) -> bool:
        """True once every t has ``history`` recorded losses (importance sampling only)."""
        return bool((self.counts >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t (T,) float64 the next draw uses: uniform, or importance once warmed up."""
        uniform = torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        if self.method is not TimestepSampling.IMPORTANCE or not self.warmed_up:
            return uniform
        rms = self.losses.pow(2).mean(dim=1).sqrt()
        if not torch.isfinite(rms).all() or rms.sum() <= 0:
            return uniform
        return (1.0 - self.uniform_floor) * rms / rms.sum() + self.uniform_floor * uniform

    def set_shard(self, rank: int, world_size: int) -> None:
        """This process is ``rank`` of ``world_size``: the losses given to ``update`` are valid
        only in this rank's contiguous shard of the batch."""
        self.rank, self.world_size = int(rank), int(world_size)

    def sample(
        self, batch_size: int, *, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method is TimestepSampling.IMPORTANCE and self.warmed_up:
            p = self.probabilities()
            gen_device = generator.device if generator is not None else torch.device("cpu")
            t = torch.multinomial(p.to(gen_device), batch_size, True, generator=generator)
            weights = (1.0 / (self.T * p[t.cpu()])).float()
            return t.to(device), weights.to(device)
        draw = (
            antithetic_timesteps
            if self.method is TimestepSampling.ANTITHETIC
            else uniform_timesteps
        )
        t = draw(batch_size, self.T, generator=generator, device=device)
        return t, torch.ones(batch_size, device=device)

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-example losses (B,) at t (B,) of the global batch; in multi-process
        training each rank's shard is gathered first so every rank records the same values.
        Importance sampling (or a subclass overriding ``record``) keeps them."""
        overridden = type(self).record is not TimestepSampler.record
        if self.method is not TimestepSampling.IMPORTANCE and not overridden:
            return  # nothing to record: skip the all-gather
        if self.world_size > 1:
            losses = gather_shards(losses, self.rank, self.world_size)
        self.record(t, losses)

    def record(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Keep the newest ``history`` losses of each t (a ring buffer per t; importance only)."""
        if self.method is not TimestepSampling.IMPORTANCE:
            return
        # a ring buffer per t: the k-th loss ever seen at t goes to slot k mod history
        t = t.detach().cpu()
        order = torch.sort(t, stable=True).indices
        t_sorted, values = t[order], losses.detach().double().cpu()[order]
        sizes = torch.bincount(t, minlength=self.T)
        nth = torch.arange(t.numel()) - (torch.cumsum(sizes, 0) - sizes)[t_sorted]
        keep = nth >= sizes[t_sorted] - self.history  # only the newest `history` per t
        slot = (self.counts[t_sorted] + nth) % self.history
        self.losses[t_sorted[keep], slot[keep]] = values[keep]
        self.counts += sizes

    def state_dict(self) -> dict:
        if self.method is not TimestepSampling.IMPORTANCE:
            return {}
        return {"losses": self.losses.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the loss history saved by :meth:`state_dict` (any sampler accepts {})."""
        if not state:
            return
        if tuple(state["losses"].shape) != tuple(self.losses.shape):
            raise ValueError(
                f"timestep history of shape {tuple(state['losses'].shape)} does not fit T = "
                f"{self.T} with history {self.history}; resume with the run's own config"
            )
        self.losses = state["losses"].to(torch.float64).clone()
        self.counts = state["counts"].to(torch.long).clone()


def as_timestep_sampler(timesteps: TimestepSampler | TimestepSampling | str, T: int):
    """``timesteps`` itself, or a new :class:`TimestepSampler` over T steps of that method."""
    if isinstance(timesteps, TimestepSampler):
        if timesteps.T != T:
            raise ValueError(f"the timestep sampler draws from {timesteps.T} steps, not {T}")
        return timesteps
    return TimestepSampler(T, timesteps)


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
