"""Tests for difflab.losses.ddpm: simple_loss, SimpleObjective, mean_flat.

Tolerances: the oracle that returns the captured target gives exactly 0. The oracle that
recomputes the target from x_t goes through float32 tables (~1e-6 error on the target, see
tests/test_parameterization.py), so its squared error is below 1e-10.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.forward import randn_like
from difflab.losses import LossOutput
from difflab.losses.ddpm import SimpleObjective, mean_flat, simple_loss
from difflab.parameterization import Prediction, eps_from_x0, target_for
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler

T = 50
SHAPES = [(6, 2), (6, 3, 4, 4)]


@pytest.fixture(scope="module")
def sch() -> NoiseSchedule:
    return NoiseSchedule.from_name("linear", T, beta_start=1e-3, beta_end=0.2)


class Const(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x_t, t):
        return self.out


class Zero(nn.Module):
    def __init__(self, channels_factor=1):
        super().__init__()
        self.k = channels_factor

    def forward(self, x_t, t):
        return torch.zeros(x_t.shape[0], x_t.shape[1] * self.k, *x_t.shape[2:], dtype=x_t.dtype)


def _data(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, T, (shape[0],), generator=g)
    return x0, noise, t


def test_mean_flat():
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(mean_flat(x), torch.tensor([5.5, 17.5]))
    assert mean_flat(torch.ones(5, 2)).shape == (5,)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prediction", list(Prediction))
def test_oracle_loss_is_zero(sch, shape, prediction):
    x0, noise, t = _data(shape)
    model = Const(target_for(prediction, sch, t, x0, noise))
    loss = simple_loss(model, sch, x0, t, prediction=prediction, noise=noise)
    assert loss.shape == (shape[0],)
    assert torch.equal(loss, torch.zeros(shape[0], dtype=torch.float64))


@pytest.mark.parametrize("shape", SHAPES)
def test_eps_oracle_from_x_t(sch, shape):
    """An eps-model that knows x0 and computes eps from its input x_t."""
    x0, noise, t = _data(shape, 1)

    class FromXt(nn.Module):
        def forward(self, x_t, tt):
            return eps_from_x0(sch, x_t, tt, x0)

    loss = simple_loss(FromXt(), sch, x0, t, noise=noise)
    assert loss.shape == (shape[0],)
    assert float(loss.max()) < 1e-10


@pytest.mark.parametrize("shape", SHAPES)
def test_zero_model_loss_is_target_power(sch, shape):
    x0, noise, t = _data(shape, 2)
    loss = simple_loss(Zero(), sch, x0, t, noise=noise)
    torch.testing.assert_close(loss, mean_flat(noise**2), rtol=0, atol=0)
    loss_x0 = simple_loss(Zero(), sch, x0, t, prediction="x0", noise=noise)
    torch.testing.assert_close(loss_x0, mean_flat(x0**2), rtol=0, atol=0)
    # a learned-variance network: the variance half of the output is ignored by L_simple
    loss_lv = simple_loss(Zero(2), sch, x0, t, variance="learned", noise=noise)
    torch.testing.assert_close(loss_lv, mean_flat(noise**2), rtol=0, atol=0)


def test_generator_reproducibility(sch):
    x0, _, t = _data((6, 2), 3)
    a = simple_loss(Zero(), sch, x0, t, generator=torch.Generator().manual_seed(1))
    b = simple_loss(Zero(), sch, x0, t, generator=torch.Generator().manual_seed(1))
    c = simple_loss(Zero(), sch, x0, t, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", ["uniform", "antithetic"])
def test_simple_objective(sch, shape, method):
    x0, _, _ = _data(shape, 4)
    obj = SimpleObjective(sch, TimestepSampler(T, method))
    out = obj(Zero(), x0, generator=torch.Generator().manual_seed(7))
    assert isinstance(out, LossOutput)
    assert out.loss.shape == (shape[0],)
    assert set(out.terms) == {"mse"} and out.terms["mse"].shape == (shape[0],)
    # uniform weights: the loss is the mse; and it matches simple_loss when the same draws are
    # replayed from the same generator (t first, then the noise)
    torch.testing.assert_close(out.loss, out.terms["mse"], rtol=0, atol=0)
    g = torch.Generator().manual_seed(7)
    t, _ = TimestepSampler(T, method).sample(shape[0], generator=g)
    noise = randn_like(x0, g)
    ref = simple_loss(Zero(), sch, x0, t, noise=noise)
    torch.testing.assert_close(out.loss, ref, rtol=0, atol=0)


def test_simple_objective_gradients_flow(sch):
    net = nn.Linear(2, 2).double()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = net

        def forward(self, x, t):
            return self.lin(x)

    x0, _, _ = _data((8, 2), 5)
    out = SimpleObjective(sch, TimestepSampler(T), prediction="eps")(Net(), x0)
    out.loss.mean().backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()
    assert net.weight.grad.abs().sum() > 0
