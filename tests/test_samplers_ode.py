"""Tests for samplers.ode (the generic Euler and Heun steps, probability-flow sampling) and
samplers.dpm_solver (DPM-Solver++(2M) and (3M)).

Gaussian data x0 ~ N(MU, diag(S^2)) with its optimal denoiser (tests/oracles.py). Every sampler
here is then affine in x_T per dimension, so the law of its output is N(m, v) with m = f(0) and
sqrt(v) = f(1) - f(0): exact moments, no Monte Carlo. The exact probability-flow ODE keeps
z = (x_t - alpha_t MU) / sqrt(alpha_t^2 S^2 + sigma_t^2) constant along a path, which gives the
exact solution between any two times.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from difflab.noise import DiscreteProcess
from difflab.samplers import (
    dpmpp2m_sample,
    dpmpp3m_sample,
    euler_sample,
    heun_sample,
    ode_sample,
    timestep_grid,
)
from difflab.samplers.ode import euler_step, heun_step
from difflab.schedules import NoiseSchedule
from test_samplers_ddim import MU, S, _gaussian


def _integrate(step, n: int, t_end: float = 2.0) -> float:
    """dx/dt = cos(t) x, x(0) = 1, whose solution is exp(sin t); the error at t_end."""
    f = lambda x, t: math.cos(t) * x  # noqa: E731
    x, h = torch.ones(1, dtype=torch.float64), t_end / n
    for i in range(n):
        x = step(f, x, i * h, (i + 1) * h)
    return abs(float(x) - math.exp(math.sin(t_end)))


@pytest.mark.parametrize(("step", "order"), [(euler_step, 1), (heun_step, 2)])
def test_convergence_order_on_a_linear_ode(step, order):
    errors = [_integrate(step, n) for n in (20, 40, 80, 160)]
    observed = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    # halving h divides the error by 2^order; +-0.15 allows the higher-order terms at n = 20
    assert all(abs(p - order) < 0.15 for p in observed), observed


def _law(sampler, schedule, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of an affine-in-x_T sampler's output, per dimension (see the docstring)."""
    denoiser = _gaussian(schedule)
    grid = timestep_grid(schedule.T, steps)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    f0 = sampler(denoiser, (1, 2), grid=grid, x_T=zero).x[0]
    f1 = sampler(denoiser, (1, 2), grid=grid, x_T=zero + 1).x[0]
    return f0, f1 - f0


def _moment_error(sampler, schedule, steps: int) -> float:
    mean, std = _law(sampler, schedule, steps)
    return max(float((mean - MU).abs().max()), float((std / S - 1).abs().max()))


@pytest.mark.parametrize(
    ("sampler", "steps", "tol"),
    [
        # tolerances: the measured relative error at this K (comment), bound at about 2x
        (dpmpp2m_sample, 20, 0.008),  # 3.8e-3 (4.9e-2 at K = 10)
        (dpmpp3m_sample, 20, 0.05),  # 2.3e-2: the first-order start dominates (see below)
        (heun_sample, 20, 0.02),  # 9.9e-3 (38 evaluations)
        (euler_sample, 50, 0.06),  # 3.1e-2
    ],
)
def test_few_steps_reach_the_target_moments(sampler, steps, tol):
    sch = NoiseSchedule.from_name("cosine", 1000)
    err = _moment_error(sampler, sch, steps)
    assert err < tol, (sampler.__name__, err)


def test_dpm_solvers_converge_faster_than_euler():
    """Every K of 5, 10, 20 steps: DPM-Solver++ beats Euler (= DDIM) from x_T to the data."""
    sch = NoiseSchedule.from_name("cosine", 1000)
    for K in (5, 10, 20):
        euler = _moment_error(euler_sample, sch, K)
        assert _moment_error(dpmpp2m_sample, sch, K) < euler
        assert _moment_error(dpmpp3m_sample, sch, K) < euler
    for sampler in (dpmpp2m_sample, dpmpp3m_sample):
        errors = [_moment_error(sampler, sch, K) for K in (5, 10, 20)]
        assert errors[2] < errors[1] < errors[0], (sampler.__name__, errors)


def _exact_flow(process: DiscreteProcess, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
    """The probability-flow ODE's exact map from time t to time s for the Gaussian data."""

    def scale(u: float) -> torch.Tensor:
        return (process.alpha(u) ** 2 * S**2 + process.sigma(u) ** 2).sqrt()

    return process.alpha(s) * MU + scale(s) * (x - process.alpha(t) * MU) / scale(t)


def _interior_errors(sampler, Ks=(20, 40, 80, 160)) -> list[float]:
    """Max error at t = 100 of the flow from t = 900 (linear schedule, T = 1000) on a grid of K
    time-uniform steps, against the exact flow: no end point at the data, where the last step
    is first order by construction."""
    sch = NoiseSchedule.from_name("linear", 1000)
    denoiser = _gaussian(sch)
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None].repeat(1, 2)
    exact = _exact_flow(denoiser.process, x, 900.0, 100.0)
    errors = []
    for K in Ks:
        grid = [round(v) for v in torch.linspace(900, 100, K + 1).tolist()]
        out = sampler(denoiser, x.shape, grid=grid, x_T=x).x
        errors.append(float((out - exact).abs().max()))
    return errors


@pytest.mark.parametrize(("sampler", "order"), [(dpmpp2m_sample, 2), (dpmpp3m_sample, 3)])
def test_global_order_on_an_interior_interval(sampler, order):
    """Doubling K divides the error by about 2^order (measured: 2M 1.69, 1.91, 1.96; 3M 2.91,
    3.06, 3.07 for K = 20 -> 160); the bound allows 0.4 for the pre-asymptotic first halving.
    (A multistep method started at first order is of global order 2 where its first step's
    O(h^2) error dominates, as on the cosine schedule; here it does not.)"""
    observed = [math.log2(a / b) for a, b in itertools.pairwise(_interior_errors(sampler))]
    assert all(p > order - 0.4 for p in observed), observed


def test_dpmpp3m_is_more_accurate_than_dpmpp2m_on_an_interior_interval():
    errors2, errors3 = _interior_errors(dpmpp2m_sample), _interior_errors(dpmpp3m_sample)
    assert all(e3 < e2 for e2, e3 in zip(errors2, errors3)), (errors2, errors3)


def test_dpmpp3m_integrates_a_quadratic_data_prediction_exactly():
    """The 3M update integrates the quadratic through the last three x0_hat exactly: for
    x0_hat(lambda) = a + b lambda + c lambda^2 the increment psi_1 f_0 + psi_2 p' + psi_3 p''
    equals int_0^h e^(u - h) x0_hat(lambda_s + u) du (closed form: integration by parts)."""
    from difflab.samplers.dpm_solver import polynomial_derivatives, psi

    a, b, c = 0.3, 1.2, -0.7
    lams = [0.5, 0.2, -0.3]  # newest first
    values = [torch.tensor(a + b * lam + c * lam**2, dtype=torch.float64) for lam in lams]
    h, l0 = 0.4, lams[0]
    d1, d2 = polynomial_derivatives(lams, values)
    p1, p2, p3 = psi(h)
    # int_0^h e^{u-h} (A + B u + C u^2) du with A, B, C the Taylor coefficients at l0
    A, B, C = a + b * l0 + c * l0**2, b + 2 * c * l0, c
    em = math.exp(-h)
    exact = A * (1 - em) + B * (h - 1 + em) + C * (h * h - 2 * h + 2 - 2 * em)
    assert float(p1 * values[0] + p2 * d1 + p3 * d2) == pytest.approx(exact, rel=1e-12)


def test_network_evaluations_and_trajectory():
    sch = NoiseSchedule.from_name("cosine", 100)
    denoiser = _gaussian(sch)
    calls = []
    net = denoiser.net
    forward = net.forward

    def counting(x, t):
        calls.append(int(t[0]))
        return forward(x, t)

    net.forward = counting
    for sampler, nfe in [
        (euler_sample, lambda K: K),
        (heun_sample, lambda K: max(2 * K - 2, 1)),
        (dpmpp2m_sample, lambda K: K),
        (dpmpp3m_sample, lambda K: K),
    ]:
        for K in (1, 2, 7, 100):
            calls.clear()
            grid = timestep_grid(100, K)
            res = sampler(denoiser, (5, 2), grid=grid, record=[100, 0])
            assert res.nfe == len(calls) == nfe(K), (sampler, K)
            assert calls[0] == 99 and min(calls) >= 0
            assert list(res.trajectory) == [100, 0] and torch.isfinite(res.x).all()


def test_unknown_ode_method():
    with pytest.raises(ValueError, match="unknown ODE method 'rk4'"):
        ode_sample(_gaussian(NoiseSchedule.from_name("cosine", 10)), (2, 2), method="rk4")
