"""Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2).

x_T ~ N(0, I); for t = T..1: x_{t-1} = mu_theta(x_t, t) + sigma_t z, with z ~ N(0, I) except at
the last step, which returns the mean (no noise is added to x_0). ``t`` here is the int64 index in
{0..T-1}; index 0 produces x_0 from x_1. ``ddpm_respaced_sample`` runs the same chain on a K-step
sub-grid (Nichol & Dhariwal 2021, Sec. 4).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from difflab.choices import parse_enum
from difflab.forward import randn_like
from difflab.parameterization import Prediction, to_x0_eps
from difflab.reverse import Variance, p_mean_variance, split_output
from difflab.samplers._chain import ChainResult, initial_noise, run_chain
from difflab.samplers._denoise import log_alpha_bars
from difflab.samplers.spacing import Spacing, timestep_grid
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
    x = initial_noise(shape, x_T, generator=generator, device=device)

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


def respaced_coefficients(
    log_abar: np.ndarray, label: int, label_prev: int
) -> tuple[float, float, float, float]:
    """The respaced forward step from paper time ``label_prev`` to ``label`` (Nichol & Dhariwal
    2021, Sec. 4): beta = 1 - abar_t / abar_p, and its posterior q(x_p | x_t, x_0) =
    N(c_x0 x_0 + c_xt x_t, beta_tilde). Returns (c_x0, c_xt, log beta, log beta_tilde), the last
    -inf at label_prev = 0 (no noise is added to x_0)."""
    la, lp = log_abar[label], log_abar[label_prev]
    var_t, var_p = -math.expm1(la), -math.expm1(lp)  # 1 - abar_t, 1 - abar_p
    beta = -math.expm1(la - lp)
    c_x0 = math.exp(0.5 * lp) * beta / var_t
    c_xt = math.exp(0.5 * (la - lp)) * var_p / var_t
    log_beta_tilde = math.log(beta * var_p / var_t) if label_prev > 0 else -math.inf
    return c_x0, c_xt, math.log(beta), log_beta_tilde


def ddpm_respaced_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    steps: int,
    spacing: Spacing | str = Spacing.LINSPACE,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Ancestral sampling on a K-step sub-grid of paper times (``spacing.timestep_grid``):
    the sub-grid defines a shorter forward process with beta = 1 - abar_t / abar_p, and each step
    draws from its posterior at the model's x0_hat with that process's variance ("small":
    beta_tilde, "large": beta, "learned_range": the network's interpolation between their logs,
    Nichol & Dhariwal 2021, Sec. 4). K = T is :func:`ddpm_sample` itself. A raw "learned"
    log-variance was learned for one T-grid step and has no respaced meaning: it is refused.
    """
    variance = parse_enum(Variance, variance, "variance")
    if steps == schedule.T:
        return ddpm_sample(
            model, schedule, shape, prediction=prediction, variance=variance, clip=clip,
            x_T=x_T, generator=generator, device=device, record=record, progress=progress,
        )  # fmt: skip
    if variance is Variance.LEARNED:
        raise ValueError(
            "model.variance = 'learned' cannot be respaced: sample it with all T steps "
            "(omit --steps) or use another sampler (ddim, heun, dpmpp2m)"
        )
    grid = timestep_grid(schedule.T, steps, spacing)
    log_abar = log_alpha_bars(schedule)
    coefs = {a: respaced_coefficients(log_abar, a, b) for a, b in itertools.pairwise(grid)}
    x = initial_noise(shape, x_T, generator=generator, device=device)

    def step(x_t: torch.Tensor, label: int) -> torch.Tensor:
        c_x0, c_xt, log_beta, log_beta_tilde = coefs[label]
        # 1. the network's x0_hat (and variance output, if any) at x_t
        t_batch = full_timesteps(label - 1, x_t.shape[0], x_t.device)
        pred, var_out = split_output(model(x_t, t_batch), variance)
        x0, _ = to_x0_eps(prediction, schedule, x_t, t_batch, pred, clip=clip)
        # 2. the respaced posterior mean; the last step (to x_0) returns it
        mean = c_x0 * x0 + c_xt * x_t
        if log_beta_tilde == -math.inf:
            return mean
        # 3. x_prev = mean + sigma z
        if variance is Variance.SMALL:
            log_var: torch.Tensor | float = log_beta_tilde
        elif variance is Variance.LARGE:
            log_var = log_beta
        else:
            frac = (var_out + 1.0) / 2.0
            log_var = frac * log_beta + (1.0 - frac) * log_beta_tilde
        sigma = math.exp(0.5 * log_var) if isinstance(log_var, float) else (0.5 * log_var).exp()
        return mean + sigma * randn_like(x_t, generator)

    return run_chain(step, x, grid[:-1], times=grid, record=record, progress=progress, desc="ddpm")
