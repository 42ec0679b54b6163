"""The model's reverse process p_theta(x_{t-1} | x_t) (Ho et al. 2020, Sec. 3.2).

The mean is the posterior mean q(x_{t-1} | x_t, x0_hat) at the model's estimate of x_0. The
variance is fixed ("small": beta_tilde_t, "large": beta_t) or learned ("learned": the network's
log-variance; "learned_range": an interpolation of log beta_t and log beta_tilde_t,
Nichol & Dhariwal 2021, Eq. 15). ``t`` is int64 (B,) in {0..T-1}; t = 0 is x_1.

A network predicting ``mean`` is the 2015 model (Sohl-Dickstein et al. 2015): its output is the
mean of p(x_{t-1} | x_t) for t >= 1, and its last step is fixed to the reverse of the first
forward step at equilibrium, p(x_0 | x_1) = q(x_1 | x_0) pi(x_0) / pi(x_1) with pi = N(0, I),
i.e. N(sqrt(alpha_1) x_1, beta_1 I) (their Appendix B.2).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum
from difflab.forward import q_posterior
from difflab.parameterization import Prediction, to_x0_eps
from difflab.schedules import NoiseSchedule, expand_like, extract


class Variance(StrEnum):
    SMALL = "small"
    LARGE = "large"
    LEARNED = "learned"
    LEARNED_RANGE = "learned_range"

    @property
    def is_learned(self) -> bool:
        return self in (Variance.LEARNED, Variance.LEARNED_RANGE)


def output_channels(data_channels: int, variance: Variance | str) -> int:
    """Channels a network must output: twice the data's when it also outputs a variance."""
    return (
        2 * data_channels
        if parse_enum(Variance, variance, "variance").is_learned
        else data_channels
    )


class ReverseStep(NamedTuple):
    """p(x_{t-1} | x_t) = N(mean, var) plus the model's estimates of x_0 and eps."""

    mean: torch.Tensor
    var: torch.Tensor
    log_var: torch.Tensor
    x0: torch.Tensor
    eps: torch.Tensor


def split_output(
    output: torch.Tensor, variance: Variance | str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split a network output along dim 1 into (prediction, variance output or None)."""
    if not parse_enum(Variance, variance, "variance").is_learned:
        return output, None
    pred, var_out = output.chunk(2, dim=1)
    return pred, var_out


def reverse_log_variance(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor,
    variance: Variance | str,
    var_out: torch.Tensor | None = None,
) -> torch.Tensor:
    """log Sigma_theta(x_t, t) for a fixed or learned variance type, broadcast to x_t's shape."""
    variance = parse_enum(Variance, variance, "variance")
    if variance is Variance.SMALL:
        return extract(schedule.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
    if variance is Variance.LARGE:
        return extract(schedule.log_betas, t, x_t).expand_as(x_t)
    if var_out is None:
        raise ValueError(f"variance {variance.value!r} needs a network that outputs a variance")
    if variance is Variance.LEARNED:
        return var_out
    # learned_range: v in [-1, 1] interpolates between log beta_tilde_t (v = -1) and log beta_t.
    frac = (var_out + 1.0) / 2.0
    min_log = extract(schedule.posterior_log_variance_clipped, t, x_t)
    max_log = extract(schedule.log_betas, t, x_t)
    return frac * max_log + (1.0 - frac) * min_log


def p_mean_variance_from_output(
    output: torch.Tensor,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
) -> ReverseStep:
    """p(x_{t-1} | x_t) from a network output already computed at (x_t, t)."""
    pred, var_out = split_output(output, variance)
    x0, eps = to_x0_eps(prediction, schedule, x_t, t, pred, clip=clip)
    if parse_enum(Prediction, prediction, "prediction") is Prediction.MEAN and clip is None:
        mean = pred
    else:
        mean, _, _ = q_posterior(schedule, x0, x_t, t)
    log_var = reverse_log_variance(schedule, x_t, t, variance, var_out)
    if parse_enum(Prediction, prediction, "prediction") is Prediction.MEAN:
        mean, log_var = _fixed_last_step(schedule, x_t, t, mean, log_var)
    return ReverseStep(mean, log_var.exp(), log_var, x0, eps)


def _fixed_last_step(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, mean: torch.Tensor, log_var
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2015 model's p(x_0 | x_1) = N(sqrt(alpha_1) x_1, beta_1 I) where t = 0."""
    last = expand_like(t == 0, x_t)
    mean = torch.where(last, schedule.sqrt_alphas[0].to(x_t.dtype) * x_t, mean)
    log_var = torch.where(last, schedule.log_betas[0].to(x_t.dtype), log_var.expand_as(x_t))
    return mean, log_var


def p_mean_variance(
    model: nn.Module,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
) -> ReverseStep:
    """Run ``model(x_t, t)`` and return p(x_{t-1} | x_t) (Ho et al. 2020, Eq. 11 for eps).

    x_t: (B, ...); t: (B,) int64 in {0..T-1}. ``clip`` clamps the predicted x_0 to a data range
    (e.g. (-1, 1) for images) before the mean is formed.
    """
    output = model(x_t, t)
    return p_mean_variance_from_output(
        output, schedule, x_t, t, prediction=prediction, variance=variance, clip=clip
    )
