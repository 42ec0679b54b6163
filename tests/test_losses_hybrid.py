"""HybridObjective (losses/ddpm.py): L_hybrid = L_simple + lambda L_vlb per example (Nichol &
Dhariwal 2021, Eq. 16), with L_vlb = T L_t in bits per dimension and the mean's gradient stopped
in the bound, so the bound trains only the variance half of the output.

The network is a fixed output tensor (oracles.ConstantNet) that is a leaf of the autograd
graph, so d(loss)/d(output) is the gradient the network's last layer receives. The steps
t = 0 (the decoder), 1, 2, a middle one and the last two; weights w are not all one.

Tolerances: mse is a mean of D squared float64 differences and its gradient 2 w (pred - target)
/ D is exact up to float64 rounding (rtol 1e-12). The bound's reference is
``losses.vlb.vlb_term`` run on the same output, t and noise: the same float64 arithmetic on
the same float32 schedule tables along a different code path (p_mean_variance instead of the
objective's split, detach and p_mean_variance_from_output), so agreement is to rounding of a
few dozen float64 operations: rtol 1e-9.
"""

from __future__ import annotations

import math

import pytest
import torch

from difflab.forward import randn_like
from difflab.losses.ddpm import HybridObjective
from difflab.losses.vlb import vlb_term
from difflab.schedules import NoiseSchedule, expand_like
from oracles import ConstantNet, FixedTimesteps

T = 50
T_STEPS = torch.tensor([0, 1, 2, 17, T - 2, T - 1])
WEIGHTS = torch.tensor([1.0, 0.5, 2.0, 1.0, 1.5, 0.25], dtype=torch.float64)
# (per-example shape, decoder levels): vectors with the density decoder, images with both
CASES = [((2,), None), ((2, 3, 3), None), ((2, 3, 3), 256)]
IDS = ["vector", "image", "image-256-levels"]


@pytest.fixture(scope="module")
def sch() -> NoiseSchedule:
    return NoiseSchedule.from_name("linear", T, beta_start=1e-3, beta_end=0.2)


def _inputs(shape, levels, variance, seed=0):
    """x0 (B, *shape) (on the grid of ``levels`` values in [-1, 1] if set) and a network output
    (B, 2C, ...) = [prediction, variance half] that requires grad. The variance half is in
    (-0.9, 0.9) for learned_range, a log-variance in (log 1e-3, 0) for learned."""
    g = torch.Generator().manual_seed(seed)
    B = T_STEPS.shape[0]
    x0 = torch.randn(B, *shape, generator=g, dtype=torch.float64)
    if levels is not None:
        x0 = torch.round((x0.clamp(-1, 1) + 1) / 2 * (levels - 1)) / (levels - 1) * 2 - 1
    pred = torch.randn(B, *shape, generator=g, dtype=torch.float64)
    u = torch.rand(B, *shape, generator=g, dtype=torch.float64)
    var_half = 0.9 * (2 * u - 1) if variance == "learned_range" else u * math.log(1e-3)
    return x0, torch.cat([pred, var_half], dim=1).requires_grad_()


def _target(prediction, sch, x0, noise):
    """The regression target from its definition: eps, x0, or v = a eps - b x0 with the
    schedule's a = sqrt(abar_t), b = sqrt(1 - abar_t) (Salimans & Ho 2022)."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    a = expand_like(sch.sqrt_alphas_cumprod.double()[T_STEPS], x0)
    b = expand_like(sch.sqrt_one_minus_alphas_cumprod.double()[T_STEPS], x0)
    return a * noise - b * x0


def _run(sch, output, x0, prediction, variance, levels, hybrid_lambda, seed=3):
    sampler = FixedTimesteps(T, T_STEPS, WEIGHTS)
    objective = HybridObjective(
        sch,
        sampler,
        prediction=prediction,
        variance=variance,
        hybrid_lambda=hybrid_lambda,
        levels=levels,
    )
    out = objective(ConstantNet(output), x0, generator=torch.Generator().manual_seed(seed))
    noise = randn_like(x0, torch.Generator().manual_seed(seed))  # the objective's only draw
    return out, noise, sampler


def _vlb_bits(sch, output, x0, noise, prediction, variance, levels):
    """The reference L_vlb = T L_t / (D log 2), from losses.vlb.vlb_term on the same output."""
    L_t = vlb_term(
        ConstantNet(output),
        sch,
        x0,
        T_STEPS,
        prediction=prediction,
        variance=variance,
        levels=levels,
        noise=noise,
    )
    return T * L_t / (x0[0].numel() * math.log(2.0))


@pytest.mark.parametrize(("shape", "levels"), CASES, ids=IDS)
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("variance", ["learned_range", "learned"])
def test_hybrid_loss_is_mse_plus_lambda_times_T_L_t_in_bits(
    sch, shape, levels, prediction, variance
):
    """Per example, for two lambdas: terms["mse"] = mean_d (pred - target)^2, terms["vlb"] =
    T L_t / (D log 2) (vlb_term at the same t and noise), loss = w (mse + lambda vlb), and the
    importance sampler records the unweighted mse + lambda vlb."""
    x0, output = _inputs(shape, levels, variance)
    pred = output.detach().chunk(2, dim=1)[0]
    for lam in (1e-3, 0.5):
        out, noise, sampler = _run(sch, output, x0, prediction, variance, levels, lam)
        mse = ((pred - _target(prediction, sch, x0, noise)) ** 2).reshape(x0.shape[0], -1)
        mse = mse.mean(1)
        vlb = _vlb_bits(sch, output.detach(), x0, noise, prediction, variance, levels)
        assert out.loss.shape == (x0.shape[0],)
        torch.testing.assert_close(out.terms["mse"], mse, rtol=1e-12, atol=0)
        torch.testing.assert_close(out.terms["vlb"], vlb, rtol=1e-9, atol=0)
        torch.testing.assert_close(out.loss, WEIGHTS * (mse + lam * vlb), rtol=1e-9, atol=0)
        (rec_t, rec_loss), *_ = sampler.recorded
        assert torch.equal(rec_t, T_STEPS)
        torch.testing.assert_close(rec_loss, mse + lam * vlb, rtol=1e-9, atol=0)


@pytest.mark.parametrize(("shape", "levels"), CASES, ids=IDS)
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("variance", ["learned_range", "learned"])
def test_hybrid_bound_gradient_reaches_only_the_variance_half(
    sch, shape, levels, prediction, variance
):
    """The stop-gradient: d(loss)/d(prediction half) = 2 w (pred - target) / D exactly, the
    gradient of the mse alone; d(loss)/d(variance half) = the gradient of w lambda L_vlb with the
    prediction held fixed. The bound alone would move the prediction half (checked below: its
    gradient there is far above the tolerance), so a missing detach fails the first check."""
    x0, output = _inputs(shape, levels, variance, seed=1)
    pred, var_half = output.detach().chunk(2, dim=1)
    D = x0[0].numel()
    w = expand_like(WEIGHTS, x0)
    for lam in (1e-3, 0.5):
        out, noise, _ = _run(sch, output, x0, prediction, variance, levels, lam)
        (grad,) = torch.autograd.grad(out.loss.sum(), output)
        g_pred, g_var = grad.chunk(2, dim=1)
        mse_grad = 2 * w * (pred - _target(prediction, sch, x0, noise)) / D
        torch.testing.assert_close(g_pred, mse_grad, rtol=1e-12, atol=1e-15)

        var_leaf = var_half.clone().requires_grad_()
        bound = _vlb_bits(
            sch, torch.cat([pred, var_leaf], 1), x0, noise, prediction, variance, levels
        )
        (g_ref,) = torch.autograd.grad((WEIGHTS * lam * bound).sum(), var_leaf)
        torch.testing.assert_close(g_var, g_ref, rtol=1e-9, atol=1e-15)
        assert g_var.abs().max() > 0

        free = output.detach().clone().requires_grad_()
        bound = _vlb_bits(sch, free, x0, noise, prediction, variance, levels)
        (g_free,) = torch.autograd.grad((WEIGHTS * lam * bound).sum(), free)
        assert g_free.chunk(2, dim=1)[0].abs().max() > 1e-6 * mse_grad.abs().max()


def test_hybrid_needs_a_learned_variance(sch):
    with pytest.raises(ValueError, match="model.variance = 'learned'"):
        HybridObjective(sch, FixedTimesteps(T, 0), variance="small")
