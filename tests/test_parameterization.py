"""Tests for difflab.parameterization: conversions between eps, x0 and v predictions.

Tolerances: inputs are float64 but the schedule's tables are float32, and a round trip through
two different tables (e.g. sqrt_alphas_cumprod and sqrt_recip_alphas_cumprod) inherits their
independent ~6e-8 relative rounding, amplified by up to 1 / sqrt(alpha_bar_T) ~ 13 for this
schedule. rtol = atol = 1e-5 leaves about an order of magnitude of slack over that bound.
Conversions that invert each other with the same tables are exact to float64 (1e-12).
"""

from __future__ import annotations

import pytest
import torch

from difflab.forward import q_sample
from difflab.parameterization import (
    Prediction,
    eps_from_v,
    eps_from_x0,
    target_for,
    to_x0_eps,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)
from difflab.schedules import NoiseSchedule

T = 50
TOL = {"rtol": 1e-5, "atol": 1e-5}  # see module docstring
SHAPES = [(6, 2), (6, 3, 4, 4)]  # (B, 2) and (B, C, H, W)


@pytest.fixture(scope="module")
def sch() -> NoiseSchedule:
    return NoiseSchedule.from_name("linear", T, beta_start=1e-3, beta_end=0.2)


def _setup(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 25, 40, T - 1])
    return x0, eps, t


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trips(sch, shape):
    x0, eps, t = _setup(shape)
    x_t = q_sample(sch, x0, t, noise=eps)
    torch.testing.assert_close(x0_from_eps(sch, x_t, t, eps), x0, **TOL)
    torch.testing.assert_close(eps_from_x0(sch, x_t, t, x0), eps, **TOL)
    v = v_from_x0_eps(sch, t, x0, eps)
    torch.testing.assert_close(x0_from_v(sch, x_t, t, v), x0, **TOL)
    torch.testing.assert_close(eps_from_v(sch, x_t, t, v), eps, **TOL)
    # eps -> x0 -> eps uses the same two tables both ways: exact to float64 rounding
    e2 = eps_from_x0(sch, x_t, t, x0_from_eps(sch, x_t, t, eps))
    torch.testing.assert_close(e2, eps, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_v_definition(sch, shape):
    x0, eps, t = _setup(shape, 1)
    v = v_from_x0_eps(sch, t, x0, eps)
    abar = sch.alphas_cumprod.double()[t].reshape(-1, *[1] * (len(shape) - 1))
    torch.testing.assert_close(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0, **TOL)
    # v is unit-variance-preserving: |v|^2 + |x_t|^2 = |x0|^2 + |eps|^2 (a rotation of (x0, eps))
    x_t = q_sample(sch, x0, t, noise=eps)
    torch.testing.assert_close(v**2 + x_t**2, x0**2 + eps**2, **TOL)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prediction", list(Prediction))
def test_to_x0_eps_recovers_truth(sch, shape, prediction):
    x0, eps, t = _setup(shape, 2)
    x_t = q_sample(sch, x0, t, noise=eps)
    output = target_for(prediction, sch, t, x0, eps)
    x0_hat, eps_hat = to_x0_eps(prediction, sch, x_t, t, output)
    torch.testing.assert_close(x0_hat, x0, **TOL)
    torch.testing.assert_close(eps_hat, eps, **TOL)
    # the string spelling works too
    x0_s, _ = to_x0_eps(prediction.value, sch, x_t, t, output)
    torch.testing.assert_close(x0_s, x0_hat, rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prediction", list(Prediction))
def test_to_x0_eps_clipping_is_consistent(sch, shape, prediction):
    x0, eps, t = _setup(shape, 3)
    x0 = 3 * x0  # most entries fall outside [-1, 1]
    x_t = q_sample(sch, x0, t, noise=eps)
    output = target_for(prediction, sch, t, x0, eps)
    x0_c, eps_c = to_x0_eps(prediction, sch, x_t, t, output, clip=(-1.0, 1.0))
    assert x0_c.min() >= -1 and x0_c.max() <= 1
    torch.testing.assert_close(x0_c, x0.clamp(-1, 1), **TOL)
    # eps is recomputed from the clipped x0, so the pair still reproduces x_t
    torch.testing.assert_close(q_sample(sch, x0_c, t, noise=eps_c), x_t, **TOL)
    torch.testing.assert_close(eps_c, eps_from_x0(sch, x_t, t, x0_c), rtol=1e-10, atol=1e-10)
    # where x0 was already in range, eps is unchanged
    inside = x0.abs() < 1
    torch.testing.assert_close(eps_c[inside], eps[inside], **TOL)


def test_target_for(sch):
    x0, eps, t = _setup((6, 2), 4)
    assert torch.equal(target_for("eps", sch, t, x0, eps), eps)
    assert torch.equal(target_for(Prediction.X0, sch, t, x0, eps), x0)
    torch.testing.assert_close(
        target_for("v", sch, t, x0, eps), v_from_x0_eps(sch, t, x0, eps), rtol=0, atol=0
    )
    with pytest.raises(ValueError):
        target_for("score", sch, t, x0, eps)


def test_prediction_is_str_enum():
    assert Prediction("eps") is Prediction.EPS
    assert str(Prediction.V) == "v"
    assert {p.value for p in Prediction} == {"eps", "x0", "v", "mean"}
