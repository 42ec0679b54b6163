"""The forward (noising) process q of Ho et al. 2020, Sec. 2.

``t`` is an int64 tensor of shape (B,) in {0..T-1}; t = 0 is x_1, one step of noise.
"""

from __future__ import annotations

import torch

from difflab.schedules import NoiseSchedule, extract


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gaussian noise shaped like x, drawn from ``generator`` when given."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def q_step(
    schedule: NoiseSchedule,
    x_prev: torch.Tensor,
    t: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One Markov step x_{t-1} -> x_t ~ N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (Ho et al., Eq. 2).

    x_prev: (B, ...); t: (B,) in {0..T-1}, the index of the step being taken (t = 0 maps x_0 to
    x_1). The noise is Gaussian and scaled by sqrt(beta_t), not beta_t.
    """
    if noise is None:
        noise = randn_like(x_prev, generator)
    return (
        extract(schedule.sqrt_alphas, t, x_prev) * x_prev
        + extract(schedule.betas, t, x_prev).sqrt() * noise
    )


def q_mean_variance(
    schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and log-variance of q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

    x0: (B, ...); t: (B,) in {0..T-1}. Variance and log-variance broadcast against x0.
    """
    mean = extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
    var = extract(schedule.one_minus_alphas_cumprod, t, x0)
    log_var = extract(schedule.log_one_minus_alphas_cumprod, t, x0)
    return mean, var, log_var


def q_sample(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) in closed form (Ho et al. 2020, Eq. 4).

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. x0: (B, ...); t: (B,) in {0..T-1}.
    """
    if noise is None:
        noise = randn_like(x0, generator)
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
        + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise
    )


def q_posterior(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eqs. 6-7).

    x0, x_t: (B, ...); t: (B,) in {0..T-1}. At t = 0 the posterior is a point mass at x_0: its
    variance is 0 and its log-variance is clipped to that of t = 1.
    """
    mean = (
        extract(schedule.posterior_mean_coef1, t, x_t) * x0
        + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    )
    var = extract(schedule.posterior_variance, t, x_t)
    log_var = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, var, log_var
