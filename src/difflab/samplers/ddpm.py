"""Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2).

x_T ~ N(0, I); for t = T..1: x_{t-1} = mu_theta(x_t, t) + sigma_t z, with z ~ N(0, I) except at
the last step, which returns the mean (no noise is added to x_0). ``t`` here is the int64 index in
{0..T-1}; index 0 produces x_0 from x_1.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from difflab.forward import randn_like
from difflab.parameterization import Prediction
from difflab.reverse import Variance, p_mean_variance
from difflab.samplers._chain import ChainResult, run_chain
from difflab.schedules import NoiseSchedule, full_timesteps


def ddpm_step(
    model: nn.Module,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} at index t (an int in {0..T-1}); no noise at t = 0."""
    t_batch = full_timesteps(t, x_t.shape[0], x_t.device)
    # 1. the model's Gaussian p(x_{t-1} | x_t)
    out = p_mean_variance(
        model, schedule, x_t, t_batch, prediction=prediction, variance=variance, clip=clip
    )
    if t == 0:
        # 2a. the last step returns the mean: adding noise here would blur the data.
        return out.mean
    # 2b. x_{t-1} = mean + sigma_t z
    if noise is None:
        noise = randn_like(x_t, generator)
    return out.mean + (0.5 * out.log_var).exp() * noise


def ddpm_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Draw ``shape[0]`` samples by running the full T-step reverse chain from x_T ~ N(0, I).

    ``record`` lists paper times in {T, ..., 0} whose states are kept in the result's trajectory.
    """
    T = schedule.T
    x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=device)

    def step(x_t: torch.Tensor, t: int) -> torch.Tensor:
        return ddpm_step(
            model,
            schedule,
            x_t,
            t,
            prediction=prediction,
            variance=variance,
            clip=clip,
            generator=generator,
        )

    return run_chain(
        step,
        x,
        list(range(T - 1, -1, -1)),
        times=list(range(T, -1, -1)),
        record=record,
        progress=progress,
        desc="ddpm",
    )
