"""Tests for samplers.ode: the generic Euler and Heun steps, probability-flow sampling and
DPM-Solver++(2M).

Gaussian data x0 ~ N(MU, diag(S^2)) with its analytic eps-model (``GaussianModel``, see
test_samplers_ddim.py). Every sampler here is then affine in x_T per dimension, so the law of
its output is N(m, v) with m = f(0) and sqrt(v) = f(1) - f(0): exact moments, no Monte Carlo.
The exact probability-flow ODE maps N(0, I) at x_T to the data law (up to abar_T ~ 6e-8).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from difflab.samplers import dpmpp2m_sample, ode_sample
from difflab.samplers.ode import euler_step, heun_step
from difflab.schedules import NoiseSchedule
from test_samplers_ddim import MU, GaussianModel, S


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


def _law(sampler, schedule, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of an affine-in-x_T sampler's output, per dimension (see the docstring)."""
    model = GaussianModel(schedule)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    f0 = sampler(model, schedule, (1, 2), x_T=zero, **kw).x[0]
    f1 = sampler(model, schedule, (1, 2), x_T=zero + 1, **kw).x[0]
    return f0, f1 - f0


@pytest.mark.parametrize(
    ("name", "sampler", "kw", "steps", "tol"),
    [
        # tolerances: the measured relative error at this K (comment), bound at about 2x
        ("dpmpp2m", dpmpp2m_sample, {}, 20, 0.008),  # 3.8e-3 (4.9e-2 at K = 10)
        ("heun", ode_sample, {"method": "heun"}, 20, 0.02),  # 9.9e-3 (38 evaluations)
        ("euler", ode_sample, {"method": "euler"}, 50, 0.06),  # 3.1e-2
    ],
)
def test_few_steps_reach_the_target_moments(name, sampler, kw, steps, tol):
    sch = NoiseSchedule.from_name("cosine", 1000)
    mean, std = _law(sampler, sch, steps=steps, **kw)
    err = max(float((mean - MU).abs().max()), float((std / S - 1).abs().max()))
    assert err < tol, (name, mean, std)


def test_dpmpp2m_converges_faster_than_euler():
    sch = NoiseSchedule.from_name("cosine", 1000)

    def err(sampler, steps, **kw):
        mean, std = _law(sampler, sch, steps=steps, **kw)
        return max(float((mean - MU).abs().max()), float((std / S - 1).abs().max()))

    for K in (5, 10, 20):
        assert err(dpmpp2m_sample, K) < err(ode_sample, K, method="euler")
    assert err(dpmpp2m_sample, 20) < err(dpmpp2m_sample, 10) < err(dpmpp2m_sample, 5)


def test_network_evaluations_and_trajectory():
    sch = NoiseSchedule.from_name("cosine", 100)
    model = GaussianModel(sch)
    calls = []

    def counting(x, t):
        calls.append(int(t[0]))
        return model(x, t)

    for sampler, kw, nfe in [
        (ode_sample, {"method": "euler"}, lambda K: K),
        (ode_sample, {"method": "heun"}, lambda K: max(2 * K - 2, 1)),
        (dpmpp2m_sample, {}, lambda K: K),
    ]:
        for K in (1, 2, 7, 100):
            calls.clear()
            res = sampler(counting, sch, (5, 2), steps=K, record=[100, 0], **kw)
            assert res.nfe == len(calls) == nfe(K), (sampler, kw, K)
            assert calls[0] == 99 and min(calls) >= 0
            assert list(res.trajectory) == [100, 0] and torch.isfinite(res.x).all()


def test_unknown_ode_method():
    sch = NoiseSchedule.from_name("cosine", 10)
    with pytest.raises(ValueError, match="unknown ODE method 'rk4'"):
        ode_sample(GaussianModel(sch), sch, (2, 2), method="rk4")
