"""Sampling by solving the probability-flow ODE: Euler and Heun.

The probability-flow ODE of a diffusion (Song et al. 2021, Eq. 13) has the same marginals as the
forward process. With alpha, sigma the process's (noise.py) it is simplest in the scaled state
y = x / alpha and the "time" sigma_bar = sigma / alpha (Song et al. 2020, DDIM Eq. 14; Karras et
al. 2022, Eq. 4 with s = alpha):

    dy / d sigma_bar = eps_hat(alpha y, t(sigma_bar)).

The network is evaluated only at the grid's times. Euler on this ODE is exactly DDIM with
eta = 0. Heun (Karras et al. 2022, Alg. 1) is second order and costs two evaluations per step,
except at the two ends, where it takes an Euler step: the data end has sigma_bar = 0 (the Euler
step there returns the model's x0_hat), and x_T has sigma_bar = sqrt(1 / abar_T - 1), about 1e4
on the cosine schedule, where eps_hat changes by O(1) across the first step and the trapezoid
rule would multiply that change by sigma_bar_T, whereas the Euler (= DDIM) step stays exact for
a constant x0_hat. K >= 2 steps cost 2K - 2 evaluations. DPM-Solver++ is in dpm_solver.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

from difflab.denoiser import Denoiser
from difflab.samplers._chain import ChainResult, Record, run_chain, start_state

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


def probability_flow_drift(denoiser: Denoiser, grid: Sequence[float]) -> Drift:
    """dy / d sigma_bar = eps_hat(alpha y, t) at the sigma_bar of a grid time > 0 (one network
    evaluation per call)."""
    process = denoiser.process
    time_of = {process.sigma_bar(t): t for t in grid if t > 0}

    def drift(y: torch.Tensor, sigma_bar: float) -> torch.Tensor:
        t = time_of[sigma_bar]
        return denoiser(process.alpha(t) * y, t).eps

    return drift


def ode_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    method: str = "heun",
    grid: Sequence[float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Integrate the probability-flow ODE from x_T ~ N(0, I) along ``grid`` (default: every
    time) with ``method`` ("euler" or "heun"); the trajectory holds x (not y) at its labels."""
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown ODE method {method!r}; choose 'euler' or 'heun'")
    process = denoiser.process
    grid = list(process.default_grid() if grid is None else grid)
    f = probability_flow_drift(denoiser, grid)
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        t, t_prev = pair
        heun = method == "heun" and t_prev > 0 and t < grid[0]
        solver = heun_step if heun else euler_step
        # 1. to the scaled state y = x / alpha, 2. one solver step in sigma_bar, 3. back to x
        y = x_t / process.alpha(t)
        y = solver(f, y, process.sigma_bar(t), process.sigma_bar(t_prev))
        return process.alpha(t_prev) * y

    pairs = list(itertools.pairwise(grid))
    result = run_chain(step, x, pairs, times=grid, record=record, progress=progress, desc=method)
    K = len(pairs)
    nfe = K if method == "euler" else K + max(K - 2, 0)
    return result._replace(nfe=nfe)


def euler_sample(denoiser: Denoiser, shape: tuple[int, ...], **kwargs) -> ChainResult:
    """:func:`ode_sample` with Euler steps (= DDIM with eta = 0)."""
    return ode_sample(denoiser, shape, method="euler", **kwargs)


def heun_sample(denoiser: Denoiser, shape: tuple[int, ...], **kwargs) -> ChainResult:
    """:func:`ode_sample` with Heun steps (Karras et al. 2022, Alg. 1)."""
    return ode_sample(denoiser, shape, method="heun", **kwargs)
