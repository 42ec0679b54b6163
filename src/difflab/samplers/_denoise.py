"""The network's estimate of (x_0, eps) at a state x_t, for any prediction and variance type.

Every fast sampler needs only this pair: DDIM and DPM-Solver++ use x_0, the ODE solvers eps.
``t`` is an int step index in {0..T-1} shared by the whole batch (t = 0 is x_1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from difflab.parameterization import Prediction, to_x0_eps
from difflab.reverse import Variance, split_output
from difflab.schedules import NoiseSchedule, full_timesteps


def predict_x0_eps(
    model: nn.Module,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One network evaluation at step index ``t``: (x0_hat, eps_hat), each shaped like x_t.

    A learned-variance model's variance half is dropped; ``clip`` clamps x0_hat (and eps_hat is
    recomputed from it, see ``parameterization.to_x0_eps``).
    """
    t_batch = full_timesteps(t, x_t.shape[0], x_t.device)
    pred, _ = split_output(model(x_t, t_batch), variance)
    return to_x0_eps(prediction, schedule, x_t, t_batch, pred, clip=clip)


def log_alpha_bars(schedule: NoiseSchedule) -> np.ndarray:
    """log alpha_bar by paper time (a chain label in {0..T}), in float64: entry 0 is the data
    (alpha_bar = 1) and entry k is log alphas_cumprod[k - 1].

    Samplers form their coefficients from these in float64 (with expm1 for 1 - alpha_bar and
    for ratios of nearby alpha_bars), which float32 tables near alpha_bar = 1 cannot resolve.
    """
    betas = schedule.betas.detach().double().cpu().numpy()
    return np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])
