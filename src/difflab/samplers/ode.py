"""Sampling by solving the probability-flow ODE: Euler, Heun, and DPM-Solver++(2M).

The probability-flow ODE of the VP diffusion (Song et al. 2021, Eq. 13) has the same marginals
as the forward process. On the discrete schedule, with alpha = sqrt(abar), sigma = sqrt(1-abar),
it is simplest in the scaled state y = x / alpha and the "time" sigma_bar = sigma / alpha
(Song et al. 2020, DDIM Eq. 14; Karras et al. 2022, Eq. 4 with s = alpha):

    dy / d sigma_bar = eps_hat(alpha y, t(sigma_bar)),

``probability_flow_drift``. The network is evaluated only at the grid's paper times
(``spacing.timestep_grid``). Euler on this ODE is exactly DDIM with eta = 0. Heun (Karras et
al. 2022, Alg. 1) is second order and costs two evaluations per step, except at the two ends,
where it takes an Euler step: the data end has sigma_bar = 0 and no step index (the Euler step
there returns the model's x0_hat), and x_T has sigma_bar = sqrt(1 / abar_T - 1), about 1e4 on
the cosine schedule, where eps_hat changes by O(1) across the first step and the trapezoid rule
would multiply that change by sigma_bar_T, whereas the Euler (= DDIM) step stays exact for a
constant x0_hat. K >= 2 steps cost 2K - 2 evaluations.

DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Alg. 2) integrates the same ODE exactly in
its linear part, in lambda = log(alpha / sigma), with a multistep second-order estimate of the
data prediction; one evaluation per step, first order on the first and last steps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from difflab.parameterization import Prediction
from difflab.reverse import Variance
from difflab.samplers._chain import ChainResult, initial_noise, run_chain
from difflab.samplers._denoise import log_alpha_bars, predict_x0_eps
from difflab.samplers.spacing import Spacing, timestep_grid
from difflab.schedules import NoiseSchedule

Drift = Callable[[torch.Tensor, float], torch.Tensor]


def euler_step(f: Drift, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One explicit Euler step of dx/dt = f(x, t) from t to t_next (first order)."""
    return x + (t_next - t) * f(x, t)


def heun_step(f: Drift, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One Heun step (explicit trapezoidal rule, second order) of dx/dt = f(x, t)."""
    h = t_next - t
    d = f(x, t)
    d_next = f(x + h * d, t_next)
    return x + 0.5 * h * (d + d_next)


def sigma_bars(log_abar: np.ndarray) -> np.ndarray:
    """sigma_bar = sqrt(1 - abar) / sqrt(abar) by paper time, from ``log_alpha_bars``."""
    return np.sqrt(np.expm1(-log_abar))


def probability_flow_drift(
    model: nn.Module,
    schedule: NoiseSchedule,
    grid: list[int],
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
) -> Drift:
    """dy / d sigma_bar = eps_hat(alpha y, t) at the sigma_bar of a grid label > 0 (one network
    evaluation per call)."""
    log_abar = log_alpha_bars(schedule)
    sb = sigma_bars(log_abar)
    label_of = {float(sb[label]): label for label in grid if label > 0}

    def drift(y: torch.Tensor, sigma_bar: float) -> torch.Tensor:
        label = label_of[sigma_bar]
        x = math.exp(0.5 * log_abar[label]) * y
        _, eps = predict_x0_eps(
            model, schedule, x, label - 1, prediction=prediction, variance=variance, clip=clip
        )
        return eps

    return drift


def ode_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    method: str = "heun",
    steps: int | None = None,
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
    """Integrate the probability-flow ODE from x_T ~ N(0, I) to x_0 with K = ``steps`` steps of
    ``method`` ("euler" or "heun") on the grid; the trajectory holds x (not y) at its labels."""
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown ODE method {method!r}; choose 'euler' or 'heun'")
    grid = timestep_grid(schedule.T, steps or schedule.T, spacing)
    log_abar = log_alpha_bars(schedule)
    sb = sigma_bars(log_abar)
    f = probability_flow_drift(
        model, schedule, grid, prediction=prediction, variance=variance, clip=clip
    )
    next_label = dict(itertools.pairwise(grid))
    x = initial_noise(shape, x_T, generator=generator, device=device)

    def step(x_t: torch.Tensor, label: int) -> torch.Tensor:
        prev = next_label[label]
        heun = method == "heun" and prev > 0 and label < grid[0]
        solver = heun_step if heun else euler_step
        # 1. to the scaled state y = x / alpha, 2. one solver step in sigma_bar, 3. back to x
        y = math.exp(-0.5 * log_abar[label]) * x_t
        y = solver(f, y, float(sb[label]), float(sb[prev]))
        return math.exp(0.5 * log_abar[prev]) * y

    result = run_chain(
        step, x, grid[:-1], times=grid, record=record, progress=progress, desc=method
    )
    K = len(grid) - 1
    nfe = K if method == "euler" else K + max(K - 2, 0)
    return result._replace(nfe=nfe)


def dpmpp2m_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    steps: int | None = None,
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
    """DPM-Solver++(2M) with K = ``steps`` network evaluations (Lu et al. 2022, Alg. 2):

    x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i,  h_i = lambda_i -
    lambda_{i-1}, with D_i = (1 + 1 / (2 r_i)) x0_{i-1} - 1 / (2 r_i) x0_{i-2}, r_i = h_{i-1} / h_i
    (D_1 = x0_0). The last step, to x_0 (lambda = inf), returns D = x0_hat (first order).
    """
    grid = timestep_grid(schedule.T, steps or schedule.T, spacing)
    log_abar = log_alpha_bars(schedule)
    with np.errstate(divide="ignore"):  # lambda = +inf at the data end
        lam = 0.5 * (log_abar - np.log(-np.expm1(log_abar)))
    next_label = dict(itertools.pairwise(grid))
    memory: dict[str, object] = {}  # the previous step's x0_hat and h
    x = initial_noise(shape, x_T, generator=generator, device=device)

    def step(x_t: torch.Tensor, label: int) -> torch.Tensor:
        prev = next_label[label]
        # 1. the data prediction at x_t
        x0, _ = predict_x0_eps(
            model, schedule, x_t, label - 1, prediction=prediction, variance=variance, clip=clip
        )
        if prev == 0:
            return x0  # 2a. the last step: lambda = inf, x_0 = D (first order)
        # 2b. the multistep estimate D, second order once a previous x0_hat exists
        h = float(lam[prev] - lam[label])
        d = x0
        if "x0" in memory:
            r = float(memory["h"]) / h  # type: ignore[arg-type]
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * memory["x0"]  # type: ignore[operator]
        memory.update(x0=x0, h=h)
        # 3. the exact linear part plus the integrated data term
        sigma_ratio = math.sqrt(math.expm1(log_abar[prev]) / math.expm1(log_abar[label]))
        alpha_p = math.exp(0.5 * log_abar[prev])
        return sigma_ratio * x_t - (alpha_p * math.expm1(-h)) * d

    return run_chain(
        step, x, grid[:-1], times=grid, record=record, progress=progress, desc="dpm-solver++"
    )
