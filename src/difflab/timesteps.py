"""How training draws the timestep t of each example.

``t`` is an int64 tensor of shape (B,) in {0..T-1}; t = 0 is x_1, one step of noise.

- uniform: t ~ U{0..T-1} independently;
- antithetic: half the batch draws t, the other half takes T-1-t (Song et al. 2020's DDIM
  code), which lowers the variance of the batch mean;
- importance: t ~ p_t proportional to sqrt(E[L_t^2]), the root mean square of the last
  ``history`` losses seen at t (Nichol & Dhariwal 2021, Eq. 18), mixed with a small uniform
  floor; uniform draws until every t has ``history`` losses (the warm-up);
- lognormal: EDM's training law of noise levels (Karras et al. 2022), ln sigma ~ N(p_mean,
  p_std^2), on the discrete chain: p_t is the normal's mass of the interval of ln sigma that
  step t stands for (:func:`lognormal_probabilities`; sigma_t = sqrt((1 - alpha_bar_t) /
  alpha_bar_t)). It changes what the loss weights, on purpose (training where the data's
  structure is decided instead of uniformly in t), so its weights are 1;
- auto (the default): lognormal for an objective that may reweight its loss over t (the
  simple loss), antithetic for one that holds a bound.

Every other sampler returns (t, weights) with weights that keep the batch mean an unbiased
estimate of the loss averaged uniformly over t: the loss of example i is multiplied by
weights[i].

In multi-process training every rank draws the t of the whole global batch from the same
generator and runs the network on its own shard (training/distributed.py), so one stratified
draw is spread across ranks. ``set_shard`` tells the sampler its rank; ``update`` then gathers
the losses of every rank's shard before an adaptive sampler records them.
"""

from __future__ import annotations

import math

import torch

from difflab.choices import StrEnum, parse_enum


class TimestepSampling(StrEnum):
    UNIFORM = "uniform"
    ANTITHETIC = "antithetic"
    IMPORTANCE = "importance"
    LOGNORMAL = "lognormal"
    AUTO = "auto"


def lognormal_probabilities(
    sigmas: torch.Tensor, p_mean: float = -1.2, p_std: float = 1.2
) -> torch.Tensor:
    """p_t (T,) float64 over steps with increasing noise levels ``sigmas`` (T,): the mass of
    N(p_mean, p_std^2) in the interval of ln sigma that step t stands for, between the
    midpoints to its neighbours (the first and last intervals open), so the p_t sum to 1."""
    log_sigma = sigmas.double().log()
    if log_sigma.ndim != 1 or not bool((log_sigma.diff() > 0).all()):
        raise ValueError("lognormal timesteps need strictly increasing noise levels")
    if not p_std > 0:
        raise ValueError(f"p_std must be > 0, not {p_std}")
    mids = (log_sigma[1:] + log_sigma[:-1]) / 2
    cdf = 0.5 * torch.erfc(-(mids - p_mean) / (p_std * math.sqrt(2)))
    edges = torch.cat([cdf.new_zeros(1), cdf, cdf.new_ones(1)])
    return edges.diff()


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
        fixed: torch.Tensor | None = None,
    ) -> None:
        self.T = int(T)
        self.method = parse_enum(TimestepSampling, method, "loss.timesteps")
        if self.method is TimestepSampling.AUTO:
            raise ValueError("loss.timesteps = 'auto' is resolved by as_timestep_sampler")
        if (self.method is TimestepSampling.LOGNORMAL) != (fixed is not None):
            raise ValueError(
                "loss.timesteps = 'lognormal' draws from a fixed law over the steps (give it); "
                "only it does"
            )
        if fixed is not None:
            fixed = fixed.double()
            if fixed.shape != (self.T,) or not bool((fixed >= 0).all()) or fixed.sum() <= 0:
                raise ValueError(f"a fixed timestep law needs {self.T} non-negative masses")
            fixed = fixed / fixed.sum()
        self.fixed = fixed
        self._cdf = None if fixed is None else fixed.cumsum(0)  # the inverse-CDF draw's table
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
        if self.fixed is not None:
            return self.fixed
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
        if self.fixed is not None:  # inverse CDF of the fixed law; weights 1 (see the module)
            gen_device = generator.device if generator is not None else torch.device("cpu")
            u = torch.rand(batch_size, generator=generator, device=gen_device, dtype=torch.float64)
            if self._cdf.device != u.device:
                self._cdf = self._cdf.to(u.device)
            t = torch.searchsorted(self._cdf, u, right=True).clamp_(max=self.T - 1)
            return t.to(device), torch.ones(batch_size, device=device)
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


def auto_method(reweights: bool) -> TimestepSampling:
    """What "auto" draws for an objective that may (``reweights``) or may not reweight its
    loss over t: lognormal, or antithetic."""
    return TimestepSampling.LOGNORMAL if reweights else TimestepSampling.ANTITHETIC


def as_timestep_sampler(
    timesteps: TimestepSampler | TimestepSampling | str,
    T: int,
    *,
    sigmas: torch.Tensor | None = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
):
    """``timesteps`` itself, or a new :class:`TimestepSampler` over T steps of that method;
    "lognormal" needs the steps' noise levels ``sigmas`` (T,), which only objectives that may
    reweight their loss pass (the simple loss; a bound must stay uniform in t); "auto" is
    lognormal where they are given, else antithetic."""
    if isinstance(timesteps, TimestepSampler):
        if timesteps.T != T:
            raise ValueError(f"the timestep sampler draws from {timesteps.T} steps, not {T}")
        return timesteps
    method = parse_enum(TimestepSampling, timesteps, "loss.timesteps")
    if method is TimestepSampling.AUTO:
        method = auto_method(sigmas is not None)
    if method is TimestepSampling.LOGNORMAL:
        if sigmas is None:
            raise ValueError(
                "loss.timesteps = 'lognormal' reweights the loss over t, which only "
                "loss.name = 'simple' may; use uniform, antithetic or importance for a bound"
            )
        return TimestepSampler(T, method, fixed=lognormal_probabilities(sigmas, p_mean, p_std))
    return TimestepSampler(T, method)


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
