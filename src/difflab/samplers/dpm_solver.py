"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++"): multistep solvers of the probability-flow ODE
in its data prediction, second order (2M, their Alg. 2) and third order (3M).

With lambda = log(alpha / sigma) (half the log-SNR, noise.py), the ODE's exact solution from
time s to t is (their Eq. 9)

  x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0_hat(lambda) dlambda.

With h = lambda_t - lambda_s and x0_hat replaced by a polynomial in lambda through the last
evaluations, the integral is exact: writing u = lambda - lambda_s,

    int e^{u - h} du = psi_1(h) = 1 - e^{-h},
    int e^{u - h} u du = psi_2(h) = h - 1 + e^{-h},
    int e^{u - h} u^2 / 2 du = psi_3(h) = h^2 / 2 - h + 1 - e^{-h}      (u from 0 to h),

so x_t = (sigma_t / sigma_s) x_s + alpha_t (psi_1 D_0 + psi_2 D_1 + psi_3 D_2), with D_0, D_1,
D_2 the interpolant's value, first and second derivative at lambda_s (expm1 keeps psi_k exact
for small h). 2M uses the paper's form D = (1 + 1 / (2 r)) x0_i - 1 / (2 r) x0_{i-1},
r = h_{i-1} / h_i, in place of psi_1 D_0 + psi_2 D_1 (equal to second order); 3M takes D_1 and
D_2 from the quadratic through the last three evaluations (Newton's divided differences). Both
start at first order, raise the order as evaluations accumulate, and on a grid that ends at the
data (lambda = +inf) return x0_hat from the last step (first order there). One network
evaluation per step.

SDE-DPM-Solver++(2M) (Lu et al. 2022, Sec. 5 and App. B) solves the reverse diffusion SDE
instead, whose exact solution in the data prediction is

  x_t = (sigma_t / sigma_s) e^{-h} x_s + 2 alpha_t int_{lambda_s}^{lambda_t} e^{-2 (lambda_t -
  lambda)} x0_hat(lambda) dlambda + sigma_t sqrt(1 - e^{-2h}) z,      z ~ N(0, I).

For x0_hat on the line through the last two evaluations (slope D_1 in lambda) the integral is
phi x0_hat + (h - phi / 2) D_1 with phi = 1 - e^{-2h}: at first order this is DDPM's posterior
step (DDIM with eta = 1); the line's term makes it second order. Fresh noise enters every step
but the one to the data.

``eta`` in [0, 1] runs the family of reverse processes with the same marginals between the two
(Karras et al. 2022, Eq. 6 with beta(t) = eta sigma'/sigma: Langevin noise at eta times the
reverse SDE's rate; the eta of k-diffusion's sample_dpmpp_2m_sde). Written in lambda, the drift
toward x0_hat has rate 1 + eta and the exact step becomes

  x_t = (sigma_t / sigma_s) e^{-eta h} x_s + alpha_t [phi x0_hat + (h - phi / (1 + eta)) D_1]
        + sigma_t sqrt(1 - e^{-2 eta h}) z,      phi = 1 - e^{-(1 + eta) h}.

eta = 1 is the reverse SDE above; eta = 0 is the probability-flow ODE (first step: DDIM with
eta = 0; the line's term then equals psi_2 D_1, the exact integral of the line, not 2M's
midpoint form, so the two agree to second order only). At first order each step maps the
marginal N(alpha_s x0, sigma_s^2) to N(alpha_t x0, sigma_t^2) exactly for every eta (tested).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.samplers._chain import ChainResult, Record, run_chain, start_state


def psi(h: float) -> tuple[float, float, float]:
    """(psi_1, psi_2, psi_3)(h) of the module docstring, computed with expm1."""
    em1 = math.expm1(-h)  # e^{-h} - 1
    return -em1, h + em1, 0.5 * h * h - h - em1


def polynomial_derivatives(
    lams: Sequence[float], values: Sequence[torch.Tensor]
) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """First and second derivative at lams[0] of the polynomial through the points (lams[k],
    values[k]), k < 3 (the newest first): 0 for a constant, the divided difference for a line."""
    if len(values) == 1:
        return 0.0, 0.0
    f01 = (values[0] - values[1]) / (lams[0] - lams[1])
    if len(values) == 2:
        return f01, 0.0
    f12 = (values[1] - values[2]) / (lams[1] - lams[2])
    f012 = (f01 - f12) / (lams[0] - lams[2])
    return f01 + f012 * (lams[0] - lams[1]), 2.0 * f012


def _multistep_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    order: int,
    grid: Sequence[float] | None,
    x_T: torch.Tensor | None,
    generator: torch.Generator | None,
    record: Record,
    progress: bool,
) -> ChainResult:
    process = denoiser.process
    grid = list(process.default_grid() if grid is None else grid)
    lam = {t: 0.5 * process.log_snr(t) for t in grid}
    history: list[tuple[float, torch.Tensor]] = []  # (lambda, x0_hat), newest first
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        t, t_prev = pair
        # 1. the data prediction at x_t, remembered with its lambda
        x0 = denoiser(x_t, t).x0
        history.insert(0, (lam[t], x0))
        del history[order:]
        if t_prev == 0:
            return x0  # 2a. the data end: lambda = inf, x_0 = x0_hat (first order)
        # 2b. the interpolant's integral over [lambda_t, lambda_prev] (module docstring)
        h = lam[t_prev] - lam[t]
        psi_1, psi_2, psi_3 = psi(h)
        if order == 2:
            d = x0
            if len(history) == 2:
                r = (history[0][0] - history[1][0]) / h
                d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * history[1][1]
            increment = psi_1 * d
        else:
            d1, d2 = polynomial_derivatives([p[0] for p in history], [p[1] for p in history])
            increment = psi_1 * x0 + psi_2 * d1 + psi_3 * d2
        # 3. the exact linear part plus the integrated data term
        sigma_ratio = process.sigma(t_prev) / process.sigma(t)
        return sigma_ratio * x_t + process.alpha(t_prev) * increment

    pairs = list(itertools.pairwise(grid))
    desc = f"dpm-solver++({order}m)"
    return run_chain(step, x, pairs, times=grid, record=record, progress=progress, desc=desc)


def dpmpp2m_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """DPM-Solver++(2M) along ``grid`` (default: every time), one evaluation per step."""
    return _multistep_sample(
        denoiser, shape, order=2, grid=grid, x_T=x_T, generator=generator, record=record,
        progress=progress,
    )  # fmt: skip


def dpmpp3m_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """DPM-Solver++(3M) along ``grid`` (default: every time), one evaluation per step."""
    return _multistep_sample(
        denoiser, shape, order=3, grid=grid, x_T=x_T, generator=generator, record=record,
        progress=progress,
    )  # fmt: skip


def dpmpp2m_sde_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
    eta: float = 1.0,
) -> ChainResult:
    """SDE-DPM-Solver++(2M) along ``grid`` (module docstring): one evaluation per step, fresh
    noise from ``generator`` on every step that does not end at the data, in chain order (none
    at eta = 0);
    ``eta`` in [0, 1] scales the SDE's noise (1: the reverse SDE, 0: the probability-flow
    ODE)."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta = {eta!r} must lie in [0, 1] (1: the reverse SDE, 0: the ODE)")
    process = denoiser.process
    grid = list(process.default_grid() if grid is None else grid)
    lam = {t: 0.5 * process.log_snr(t) for t in grid}
    previous: list[tuple[float, torch.Tensor]] = []  # the last (lambda, x0_hat)
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        t, t_prev = pair
        # 1. the data prediction at x_t
        x0 = denoiser(x_t, t).x0
        if t_prev == 0:
            return x0  # the data end: lambda = inf, nothing is left to integrate
        # 2. the integral of the line through this and the last prediction (module docstring)
        h = lam[t_prev] - lam[t]
        phi = -math.expm1(-(1.0 + eta) * h)
        increment = phi * x0
        if previous:
            lam_last, x0_last = previous[0]
            slope = (x0 - x0_last) / (lam[t] - lam_last)
            increment = increment + (h - phi / (1.0 + eta)) * slope
        previous[:] = [(lam[t], x0)]
        # 3. the exact linear part, the integrated data term and the step's fresh noise
        sigma_t, sigma_prev = process.sigma(t), process.sigma(t_prev)
        mean = (sigma_prev / sigma_t) * math.exp(-eta * h) * x_t + process.alpha(t_prev) * increment
        if eta == 0.0:
            return mean  # the probability-flow ODE: no noise to draw
        noise_std = sigma_prev * math.sqrt(-math.expm1(-2.0 * eta * h))
        return mean + noise_std * randn_like(x_t, generator)

    pairs = list(itertools.pairwise(grid))
    return run_chain(
        step, x, pairs, times=grid, record=record, progress=progress, desc="sde-dpm-solver++(2m)"
    )
