"""Tests for difflab.reverse: p_mean_variance and its variance types.

Tolerances: float64 data with float32 schedule tables; an oracle model's x0 estimate carries
~1e-6 error (table rounding amplified by 1 / sqrt(alpha_bar_T) ~ 13), so means are compared
with rtol = atol = 1e-5. Variances read straight from a table are compared exactly or at 1e-6.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.forward import q_posterior, q_sample
from difflab.parameterization import Prediction, target_for
from difflab.reverse import (
    ReverseStep,
    Variance,
    output_channels,
    p_mean_variance,
    p_mean_variance_from_output,
    reverse_log_variance,
    split_output,
)
from difflab.schedules import NoiseSchedule, extract

T = 50
TOL = {"rtol": 1e-5, "atol": 1e-5}
SHAPES = [(5, 2), (5, 3, 4, 4)]  # (B, 2) and (B, C, H, W)


# alpha_bar_T ~ 6e-3: close enough to N(0, I) that no ScheduleWarning is raised
SCH = NoiseSchedule.from_name("linear", T, beta_start=1e-3, beta_end=0.2)


class Oracle(nn.Module):
    """Returns a fixed output (the exact target for a known x0 and noise), optionally with a
    log-variance channel block appended along dim 1."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output
        self.calls = 0

    def forward(self, x_t, t):
        self.calls += 1
        return self.output


def _setup(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 30, T - 1])
    return x0, eps, t, q_sample(SCH, x0, t, noise=eps)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prediction", list(Prediction))
def test_oracle_mean_is_posterior_mean(shape, prediction):
    sch = SCH
    x0, eps, t, x_t = _setup(shape)
    model = Oracle(target_for(prediction, sch, t, x0, eps))
    out = p_mean_variance(model, sch, x_t, t, prediction=prediction)
    assert isinstance(out, ReverseStep) and model.calls == 1
    q_mean, _, _ = q_posterior(sch, x0, x_t, t)
    if prediction is Prediction.MEAN:
        # the 2015 model's last step (t = 0, row 0) is fixed: N(sqrt(alpha_1) x_1, beta_1)
        torch.testing.assert_close(out.mean[0], sch.sqrt_alphas[0].double() * x_t[0], **TOL)
        torch.testing.assert_close(out.log_var[0], torch.full_like(x_t[0], sch.log_betas[0]))
        torch.testing.assert_close(out.mean[1:], q_mean[1:], **TOL)
    else:
        torch.testing.assert_close(out.mean, q_mean, **TOL)
    torch.testing.assert_close(out.x0, x0, **TOL)
    torch.testing.assert_close(out.eps, eps, **TOL)
    for v in out:
        assert v.shape == x_t.shape


@pytest.mark.parametrize("shape", SHAPES)
def test_small_and_large_variances(shape):
    sch = SCH
    x0, eps, t, x_t = _setup(shape, 1)
    model = Oracle(eps)
    small = p_mean_variance(model, sch, x_t, t, variance="small")
    _, q_var, q_log_var = q_posterior(sch, x0, x_t, t)
    # t >= 1: the posterior variance beta_tilde_t; t = 0: clipped to beta_tilde at t = 1
    torch.testing.assert_close(small.var[1:], q_var.expand_as(x_t)[1:], rtol=1e-6, atol=0)
    torch.testing.assert_close(small.log_var, q_log_var.expand_as(x_t), rtol=0, atol=0)
    torch.testing.assert_close(
        small.var[0], sch.posterior_variance.double()[1].expand_as(x_t[0]), rtol=1e-6, atol=0
    )
    large = p_mean_variance(model, sch, x_t, t, variance=Variance.LARGE)
    torch.testing.assert_close(
        large.var, extract(sch.betas, t, x_t).expand_as(x_t), rtol=1e-6, atol=0
    )
    # the mean does not depend on the variance type
    torch.testing.assert_close(large.mean, small.mean, rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_learned_variance_passes_through(shape):
    sch = SCH
    x0, eps, t, x_t = _setup(shape, 2)
    log_var = torch.randn(shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    model = Oracle(torch.cat([eps, log_var], dim=1))
    out = p_mean_variance(model, sch, x_t, t, variance="learned")
    torch.testing.assert_close(out.log_var, log_var, rtol=0, atol=0)
    torch.testing.assert_close(out.var, log_var.exp(), rtol=1e-12, atol=0)
    q_mean, _, _ = q_posterior(sch, x0, x_t, t)
    torch.testing.assert_close(out.mean, q_mean, **TOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_learned_range_endpoints(shape):
    sch = SCH
    _, eps, t, x_t = _setup(shape, 3)
    small = reverse_log_variance(sch, x_t, t, "small")
    large = reverse_log_variance(sch, x_t, t, "large")
    lo = reverse_log_variance(sch, x_t, t, "learned_range", -torch.ones_like(x_t))
    hi = reverse_log_variance(sch, x_t, t, "learned_range", torch.ones_like(x_t))
    mid = reverse_log_variance(sch, x_t, t, "learned_range", torch.zeros_like(x_t))
    # exact arithmetic: frac is exactly 0 or 1; 1e-12 allows for float64 rounding
    torch.testing.assert_close(lo, small, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hi, large, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mid, (small + large) / 2, rtol=1e-12, atol=1e-12)
    out = p_mean_variance(
        Oracle(torch.cat([eps, torch.ones_like(eps)], 1)), sch, x_t, t, variance="learned_range"
    )
    torch.testing.assert_close(out.log_var, large, rtol=1e-12, atol=1e-12)


def test_output_channels_and_split():
    assert output_channels(3, "small") == 3
    assert output_channels(3, Variance.LARGE) == 3
    assert output_channels(3, "learned") == 6
    assert output_channels(2, "learned_range") == 4
    assert Variance.LEARNED.is_learned and not Variance.SMALL.is_learned
    x = torch.arange(24.0).reshape(2, 4, 3)
    pred, var = split_output(x, "learned")
    assert torch.equal(pred, x[:, :2]) and torch.equal(var, x[:, 2:])
    pred, var = split_output(x, "small")
    assert pred is x and var is None


@pytest.mark.parametrize("variance", ["learned", "learned_range"])
def test_learned_variance_needs_output(variance):
    sch = SCH
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="outputs a variance"):
        reverse_log_variance(sch, x, torch.tensor([0, 1]), variance)


def test_unknown_variance():
    with pytest.raises(ValueError):
        output_channels(2, "huge")


def test_clip_applies_to_x0():
    sch = SCH
    x0, eps, t, x_t = _setup((5, 2), 4)
    out = p_mean_variance_from_output(
        target_for("x0", sch, t, 5 * x0, eps), sch, x_t, t, prediction="x0", clip=(-1.0, 1.0)
    )
    torch.testing.assert_close(out.x0, (5 * x0).clamp(-1, 1), rtol=0, atol=0)
    q_mean, _, _ = q_posterior(sch, out.x0, x_t, t)
    torch.testing.assert_close(out.mean, q_mean, rtol=1e-12, atol=1e-12)
