"""What the network predicts, and the conversions between predictions.

With x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, Eq. 4):

- ``eps``: the noise eps (Ho et al. 2020, Eq. 11);
- ``x0``: the clean data x_0;
- ``v``: v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, Sec. 4);
- ``mean``: the mean of p(x_{t-1} | x_t) itself, as in Sohl-Dickstein et al. 2015; its target
  is the posterior mean mu_tilde_t(x_t, x_0), and x_0 = (mean - c2 x_t) / c1 inverts it.

``t`` is an int64 tensor of shape (B,) in {0..T-1}; t = 0 is x_1, one step of noise.
"""

from __future__ import annotations

import torch

from difflab.choices import StrEnum, parse_enum
from difflab.schedules import NoiseSchedule, extract


class Prediction(StrEnum):
    EPS = "eps"
    X0 = "x0"
    V = "v"
    MEAN = "mean"


def x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor):
    """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (
        extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t
        - extract(schedule.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
    )


def eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor):
    """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)."""
    return (extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / extract(
        schedule.sqrt_recipm1_alphas_cumprod, t, x_t
    )


def x0_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor):
    """x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v."""
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x_t) * x_t
        - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * v
    )


def eps_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor):
    """eps = sqrt(1 - abar_t) x_t + sqrt(abar_t) v."""
    return (
        extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t
        + extract(schedule.sqrt_alphas_cumprod, t, x_t) * v
    )


def v_from_x0_eps(schedule: NoiseSchedule, t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor):
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0."""
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x0) * eps
        - extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0
    )


def target_for(
    prediction: Prediction | str,
    schedule: NoiseSchedule,
    t: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """The regression target of a network that predicts ``prediction``, given x_0 and eps."""
    prediction = parse_enum(Prediction, prediction, "prediction")
    if prediction is Prediction.EPS:
        return eps
    if prediction is Prediction.X0:
        return x0
    if prediction is Prediction.MEAN:
        x_t = (
            extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
            + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * eps
        )
        return posterior_mean(schedule, x0, x_t, t)
    return v_from_x0_eps(schedule, t, x0, eps)


def posterior_mean(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
    """mu_tilde_t = c1 x_0 + c2 x_t, the mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 7)."""
    return (
        extract(schedule.posterior_mean_coef1, t, x_t) * x0
        + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    )


def x0_from_mean(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, mean: torch.Tensor):
    """x_0 = (mu - c2 x_t) / c1, inverting :func:`posterior_mean` (c1 > 0 for every t)."""
    return (mean - extract(schedule.posterior_mean_coef2, t, x_t) * x_t) / extract(
        schedule.posterior_mean_coef1, t, x_t
    )


def to_x0_eps(
    prediction: Prediction | str,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor,
    output: torch.Tensor,
    *,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a network output to (x0_hat, eps_hat), clipping x0_hat to ``clip`` if given.

    When x0_hat is clipped, eps_hat is recomputed from it so that the pair stays consistent.
    """
    prediction = parse_enum(Prediction, prediction, "prediction")
    if prediction is Prediction.EPS:
        eps, x0 = output, x0_from_eps(schedule, x_t, t, output)
    elif prediction is Prediction.X0:
        x0, eps = output, eps_from_x0(schedule, x_t, t, output)
    elif prediction is Prediction.MEAN:
        x0 = x0_from_mean(schedule, x_t, t, output)
        eps = eps_from_x0(schedule, x_t, t, x0)
    else:
        x0, eps = x0_from_v(schedule, x_t, t, output), eps_from_v(schedule, x_t, t, output)
    if clip is not None:
        x0 = x0.clamp(*clip)
        eps = eps_from_x0(schedule, x_t, t, x0)
    return x0, eps
