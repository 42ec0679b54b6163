"""DDPM's simplified noise-prediction loss (Ho et al. 2020, Eq. 14, Algorithm 1).

L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2,
here as the mean over data dimensions per example. The hybrid loss adds lambda times the bound
with the mean's gradient stopped, so the bound trains only the learned variance
(Nichol & Dhariwal 2021, Sec. 3.1). For x0- and v-predicting networks the target
is x_0 or v instead (see ``parameterization.target_for``). ``t``: int64 (B,) in {0..T-1}.
"""

from __future__ import annotations

import torch
from torch import nn

from difflab.choices import parse_enum
from difflab.forward import q_sample, randn_like
from difflab.losses.base import LossOutput, step_fraction
from difflab.losses.vlb import bits_per_dim, vlb_term_from_reverse
from difflab.parameterization import Prediction, target_for
from difflab.reverse import Variance, p_mean_variance_from_output, split_output
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler, TimestepSampling, as_timestep_sampler


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def simple_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-example simplified loss (B,): mean squared error to the prediction target at x_t."""
    if noise is None:
        noise = randn_like(x0, generator)
    x_t = q_sample(schedule, x0, t, noise=noise)
    pred, _ = split_output(model(x_t, t), variance)
    return mean_flat((pred - target_for(prediction, schedule, t, x0, noise)) ** 2)


class SimpleObjective:
    """The DDPM training objective: draw t, then the simplified loss, importance-weighted.

    ``timesteps = "lognormal"`` draws t from EDM's law of ln sigma (``p_mean``, ``p_std``;
    see ``difflab.timesteps``), which reweights the loss over t: this loss may, the hybrid
    loss, which holds a bound, may not (``reweights``)."""

    reweights = True

    def __init__(
        self,
        schedule: NoiseSchedule,
        timesteps: TimestepSampler | TimestepSampling | str = TimestepSampling.UNIFORM,
        *,
        prediction: Prediction | str = Prediction.EPS,
        variance: Variance | str = Variance.SMALL,
        p_mean: float = -1.2,
        p_std: float = 1.2,
    ) -> None:
        self.schedule = schedule
        self.timesteps = as_timestep_sampler(
            timesteps,
            schedule.T,
            sigmas=schedule.sqrt_recipm1_alphas_cumprod if self.reweights else None,
            p_mean=p_mean,
            p_std=p_std,
        )
        self.prediction = parse_enum(Prediction, prediction, "prediction")
        self.variance = parse_enum(Variance, variance, "variance")

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        t, weights = self.timesteps.sample(x0.shape[0], generator=generator, device=x0.device)
        mse = simple_loss(
            model,
            self.schedule,
            x0,
            t,
            prediction=self.prediction,
            variance=self.variance,
            generator=generator,
        )
        self.timesteps.update(t, mse.detach())
        return LossOutput(mse * weights, {"mse": mse}, step_fraction(t, self.schedule.T))


class HybridObjective(SimpleObjective):
    """L_hybrid = L_simple + lambda L_vlb (Nichol & Dhariwal 2021, Eq. 16), per example.

    L_vlb is estimated as T L_t in bits per dimension, computed from the network's output with
    the prediction half detached: the bound's gradient reaches only the variance output.
    """

    reweights = False

    def __init__(
        self,
        schedule: NoiseSchedule,
        timesteps: TimestepSampler | TimestepSampling | str = TimestepSampling.UNIFORM,
        *,
        prediction: Prediction | str = Prediction.EPS,
        variance: Variance | str = Variance.LEARNED_RANGE,
        hybrid_lambda: float = 1e-3,
        levels: int | None = None,
    ) -> None:
        super().__init__(schedule, timesteps, prediction=prediction, variance=variance)
        if not self.variance.is_learned:
            raise ValueError(
                "loss.name = 'hybrid' trains a learned variance; set model.variance = "
                "'learned' or 'learned_range'"
            )
        self.hybrid_lambda = float(hybrid_lambda)
        self.levels = levels

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        t, weights = self.timesteps.sample(x0.shape[0], generator=generator, device=x0.device)
        noise = randn_like(x0, generator)
        x_t = q_sample(self.schedule, x0, t, noise=noise)
        output = model(x_t, t)
        pred, var_out = split_output(output, self.variance)
        target = target_for(self.prediction, self.schedule, t, x0, noise)
        mse = mean_flat((pred - target) ** 2)
        frozen = torch.cat([pred.detach(), var_out], dim=1)  # stop the mean's gradient
        p = p_mean_variance_from_output(
            frozen, self.schedule, x_t, t, prediction=self.prediction, variance=self.variance
        )
        term = vlb_term_from_reverse(self.schedule, x0, x_t, t, p, levels=self.levels)
        vlb = self.schedule.T * bits_per_dim(term, x0)
        loss = mse + self.hybrid_lambda * vlb
        self.timesteps.update(t, loss.detach())
        terms = {"mse": mse, "vlb": vlb}
        return LossOutput(loss * weights, terms, step_fraction(t, self.schedule.T))
