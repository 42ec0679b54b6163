"""The continuous-time VP objective (Song et al. 2021, Eq. 7 with the VP perturbation kernel;
Kingma et al. 2021's continuous-time denoising loss with the simple weighting): t ~ U(t_min,
t_max) of the VP process (continuous.py: linear beta(t) from beta_min = 0.1 to beta_max = 20,
or cosine), x_t = alpha(t) x_0 + sigma(t) eps, and the network, fed t, regresses eps or
v = alpha eps - sigma x_0 (Salimans & Ho 2022):

    L = E_{t, x_0, eps} || F_theta(x_t, t) - target ||^2  (per example, mean over dimensions).

It is the discrete DDPM loss with T -> infinity (test_continuous.py checks the schedules'
limit). t is drawn per example from the trainer's generator, before eps.
"""

from __future__ import annotations

import torch
from torch import nn

from difflab.continuous import VPProcess
from difflab.formulation import ContinuousPrediction, Formulation, NoiseInput
from difflab.forward import randn_like
from difflab.losses.base import LossOutput
from difflab.losses.ddpm import mean_flat
from difflab.losses.edm import check_positive
from difflab.schedules import expand_like


class VPContinuousObjective:
    """``loss.name = "vp_continuous"``: the loss above for ``prediction`` eps, v or x0 on the
    VP ``process``; ``formulation`` is what samplers read."""

    noise_input = NoiseInput.TIME

    def __init__(self, *, process: VPProcess, sigma_data: float, prediction: str = "v") -> None:
        sigma_data = check_positive(sigma_data, "loss.sigma_data", "the data's std")
        if prediction not in ("eps", "v", "x0"):
            raise ValueError(
                f"model.prediction = {prediction!r} is not a prediction of loss.name = "
                "'vp_continuous'; use 'eps', 'v' or 'x0'"
            )
        self.process = process
        self.formulation = Formulation(
            process, ContinuousPrediction(prediction), self.noise_input, sigma_data
        )

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        p = self.process
        # 1. one time per example, uniform on [t_min, t_max]
        u = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)
        t = p.t_min + (p.t_max - p.t_min) * u
        # 2. x_t = alpha(t) x_0 + sigma(t) eps
        eps = randn_like(x0, generator)
        alpha, sigma = (expand_like(c, x0).to(x0.dtype) for c in p.alpha_sigma(t))
        x_t = alpha * x0 + sigma * eps
        # 3. the squared error of the network's output against its target
        pred = self.formulation.predict(model, x_t, t).raw
        loss = mean_flat((pred - self.formulation.target(x0, eps, t)) ** 2)
        return LossOutput(loss, {"mse": loss.detach()}, u)  # u: t_min .. t_max as 0 .. 1
