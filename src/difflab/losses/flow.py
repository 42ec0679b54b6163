"""Flow matching / rectified flow (Lipman et al. 2023, Eq. 23 with sigma_min = 0; Liu et al.
2023): on the interpolant x_t = (1 - t) x_0 + t eps the network regresses the velocity

    L = E_{t, x_0, eps} || v_theta(x_t, t) - (eps - x_0) ||^2,

per example as the mean over data dimensions. ``time_distribution`` draws t: "uniform" on
(0, 1), or "logit_normal", t = sigmoid(m + s z) with ``logit_mean`` m and ``logit_std`` s
(Esser et al. 2024, Sec. 3.1: m = 0, s = 1 weights the middle of the path). The network is fed
t itself (formulation.py); t is drawn per example from the trainer's generator, before eps.
"""

from __future__ import annotations

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum
from difflab.continuous import FlowProcess
from difflab.formulation import Formulation, NoiseInput
from difflab.forward import randn_like
from difflab.losses.base import LossOutput
from difflab.losses.ddpm import mean_flat
from difflab.losses.edm import check_positive
from difflab.schedules import expand_like


class TimeDistribution(StrEnum):
    UNIFORM = "uniform"
    LOGIT_NORMAL = "logit_normal"


def flow_times(
    n: int,
    distribution: TimeDistribution | str,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """n training times in (0, 1), float64 (B,), from ``distribution``."""
    distribution = parse_enum(TimeDistribution, distribution, "loss.time_distribution")
    if distribution is TimeDistribution.UNIFORM:
        return torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
    return torch.sigmoid(logit_mean + logit_std * z)


class FlowMatchingObjective:
    """``loss.name = "flow_matching"``: the loss above; ``formulation`` is what samplers read
    (the velocity of x_t = (1 - t) x_0 + t eps)."""

    noise_input = NoiseInput.TIME

    def __init__(
        self,
        *,
        sigma_data: float,
        time_distribution: TimeDistribution | str = TimeDistribution.UNIFORM,
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
    ) -> None:
        sigma_data = check_positive(sigma_data, "loss.sigma_data", "the data's std")
        self.distribution = parse_enum(
            TimeDistribution, time_distribution, "loss.time_distribution"
        )
        self.logit_mean = float(logit_mean)
        self.logit_std = check_positive(logit_std, "loss.logit_std", "1 is the common choice")
        self.formulation = Formulation(FlowProcess(), "velocity", self.noise_input, sigma_data)

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        # 1. one time per example
        t = flow_times(
            x0.shape[0], self.distribution, logit_mean=self.logit_mean,
            logit_std=self.logit_std, generator=generator, device=x0.device,
        )  # fmt: skip
        # 2. x_t = (1 - t) x_0 + t eps
        eps = randn_like(x0, generator)
        t_x = expand_like(t, x0).to(x0.dtype)
        x_t = (1 - t_x) * x0 + t_x * eps
        # 3. || v_theta(x_t, t) - (eps - x_0) ||^2
        velocity = self.formulation.predict(model, x_t, t).raw
        loss = mean_flat((velocity - (eps - x0)) ** 2)
        return LossOutput(loss, {"mse": loss.detach()}, t)  # t: 0 the data, 1 pure noise
