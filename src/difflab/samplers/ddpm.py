"""Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2), on the full chain or a sub-grid.

x_T ~ N(0, I); for each step t -> t_prev of the grid: x_{t_prev} = mu_theta(x_t) + sigma z with
z ~ N(0, I), except at the last step, which returns the mean (no noise is added to x_0). The
Gaussian p(x_{t_prev} | x_t) comes from the Denoiser (``Denoiser.reverse_step``): the posterior
at x0_hat with the variance of the model's variance type (a learned variance clamped to
[beta_tilde, beta] of the step, with a warning: off the data a network's raw log-variance can
overflow, see ``denoiser._within``). On a K-step sub-grid of paper times
(``spacing.timestep_grid``) the sub-grid defines a shorter forward process with
sigma_{t|t_prev}^2 = 1 - abar_t / abar_{t_prev} (Nichol & Dhariwal 2021, Sec. 4).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.samplers._chain import ChainResult, Record, run_chain, start_state


def ddpm_step(
    denoiser: Denoiser,
    x_t: torch.Tensor,
    t: float,
    t_prev: float,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One ancestral step x_t -> x_{t_prev} (paper times; no noise when t_prev = 0)."""
    # 1. the model's Gaussian p(x_{t_prev} | x_t), a learned variance kept within its range
    p = denoiser.reverse_step(x_t, t, t_prev, clamp=True)
    if t_prev == 0:
        # 2a. the last step returns the mean: adding noise here would blur the data.
        return p.mean
    # 2b. x_{t_prev} = mean + sigma z
    if noise is None:
        noise = randn_like(x_t, generator)
    std = p.var**0.5
    return p.mean + std * noise


def ddpm_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Draw ``shape[0]`` samples by the reverse chain along ``grid`` (paper times, descending
    to 0; default: all T steps) from x_T ~ N(0, I). ``record`` lists labels (paper times) of
    the states to keep in the result's trajectory."""
    grid = list(denoiser.process.default_grid() if grid is None else grid)
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        return ddpm_step(denoiser, x_t, *pair, generator=generator)

    pairs = list(itertools.pairwise(grid))
    return run_chain(step, x, pairs, times=grid, record=record, progress=progress, desc="ddpm")
