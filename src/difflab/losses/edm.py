"""EDM's training objective (Karras et al. 2022, Sec. 5, Eq. 8 and Table 1).

    L = E_{sigma, x_0, n} lambda(sigma) || D(x_0 + sigma n; sigma) - x_0 ||^2,
    ln sigma ~ N(P_mean, P_std^2),  lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2,

with D the preconditioned network (formulation.py: c_skip, c_out, c_in, c_noise with
sigma_data = sd) over EDM's process x = x_0 + sigma n. Per example, as the mean over data
dimensions (EDM sums; the scale is the optimiser's business). lambda = 1 / c_out^2 makes this
the plain squared error of the network's output against its effective target, which has unit
variance at every level. P_mean = -1.2, P_std = 1.2 are the paper's values for images with
sd = 0.5; noise levels are drawn per example from the trainer's generator, before the noise.
"""

from __future__ import annotations

import torch
from torch import nn

from difflab.continuous import EDMProcess
from difflab.formulation import Formulation, NoiseInput, edm_weight
from difflab.forward import randn_like
from difflab.losses.base import LossOutput
from difflab.losses.ddpm import mean_flat
from difflab.schedules import expand_like


def check_positive(value: float, key: str, hint: str) -> float:
    """``value`` as a float, or a one-line error naming ``key``."""
    if not (isinstance(value, (int, float)) and value > 0 and value == value):
        raise ValueError(f"{key} = {value!r} is invalid: it must be a positive number ({hint})")
    return float(value)


class EDMObjective:
    """``loss.name = "edm"``: the EDM loss above; ``formulation`` is what samplers read."""

    noise_input = NoiseInput.LOG_SIGMA

    def __init__(self, *, sigma_data: float, p_mean: float = -1.2, p_std: float = 1.2) -> None:
        sigma_data = check_positive(sigma_data, "loss.sigma_data", "the data's std, 0.5 for images")
        self.p_mean = float(p_mean)
        self.p_std = check_positive(p_std, "loss.p_std", "EDM uses 1.2")
        self.formulation = Formulation(EDMProcess(), "edm", self.noise_input, sigma_data)

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        B, sd = x0.shape[0], self.formulation.sigma_data
        # 1. one noise level per example, ln sigma ~ N(P_mean, P_std^2)
        z = torch.randn(B, generator=generator, device=x0.device, dtype=torch.float64)
        sigma = (self.p_mean + self.p_std * z).exp()
        # 2. x = x_0 + sigma n
        x = x0 + expand_like(sigma, x0).to(x0.dtype) * randn_like(x0, generator)
        # 3. lambda(sigma) || D(x; sigma) - x_0 ||^2 through the preconditioning
        denoised = self.formulation.predict(model, x, sigma).x0
        mse = mean_flat((denoised - x0) ** 2)
        loss = edm_weight(sigma, sd).to(x0.dtype) * mse
        # 4. where the level lies among the training levels: its quantile Phi(z)
        quantile = 0.5 * (1 + torch.erf(z / 2**0.5))
        return LossOutput(loss, {"mse_x0": mse.detach()}, quantile)
