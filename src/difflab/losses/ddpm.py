"""DDPM's simplified noise-prediction loss (Ho et al. 2020, Eq. 14, Algorithm 1).

L_simple = E_{t, x_0, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2,
here as the mean over data dimensions per example. For x0- and v-predicting networks the target
is x_0 or v instead (see ``parameterization.target_for``). ``t``: int64 (B,) in {0..T-1}.
"""

from __future__ import annotations

import torch
from torch import nn

from difflab.choices import parse_enum
from difflab.forward import q_sample, randn_like
from difflab.losses.base import LossOutput
from difflab.parameterization import Prediction, target_for
from difflab.reverse import Variance, split_output
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler


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
    """The DDPM training objective: draw t, then the simplified loss, importance-weighted."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        timesteps: TimestepSampler,
        *,
        prediction: Prediction | str = Prediction.EPS,
        variance: Variance | str = Variance.SMALL,
    ) -> None:
        self.schedule = schedule
        self.timesteps = timesteps
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
        return LossOutput(mse * weights, {"mse": mse})
