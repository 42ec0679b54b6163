"""Tests for DDIM (samplers.ddim), DDIM inversion and respaced ancestral sampling.

Analytic model: for Gaussian data x0 ~ N(MU, diag(S^2)) the optimal denoiser is known in closed
form (tests/oracles.py), as an eps-, x0- or v-network, or with an extra learned-variance half.
"""

from __future__ import annotations

import pytest
import torch

from difflab.app.datasets import build_dataset
from difflab.app.run import load_run
from difflab.denoiser import Denoiser
from difflab.models import MLP
from difflab.samplers import (
    ddim_invert,
    ddim_sample,
    ddpm_sample,
    euler_sample,
    timestep_grid,
)
from difflab.schedules import NoiseSchedule
from oracles import GaussianOracle

MU = torch.tensor([1.5, -1.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.0], dtype=torch.float64)


def _gaussian(sch: NoiseSchedule, prediction: str = "eps", variance: str = "small") -> Denoiser:
    """The optimal denoiser for Gaussian data, as a ``prediction`` network (with a zero
    variance half for learned variances)."""
    half = "zeros" if variance.startswith("learned") else None
    net = GaussianOracle(sch, MU, S**2, prediction=prediction, variance_half=half)
    return Denoiser(net, sch, prediction=prediction, variance=variance)


def _cosine(T: int) -> NoiseSchedule:
    return NoiseSchedule.from_name("cosine", T)


def _x_T(n: int, seed: int = 0) -> torch.Tensor:
    """x_T in float64: with the float64 oracle every sampler computes in float64, so two forms
    of one map agree to ~1e-12 and a tolerance of 1e-9 tests the identity, not round-off."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_eta_one_on_the_full_grid_is_ancestral_sampling():
    """Same x_T, same generator seed: DDIM(eta=1, K=T) and DDPM (small variance) agree. The
    oracle in float64 (tolerance 1e-9); a random MLP in float32 (tolerance: 1e-4 plus 1e-5 of
    the scale: its samples reach |x| ~ 1e3 over T = 200 float32 steps)."""
    T, n = 200, 512
    sch = _cosine(T)
    torch.manual_seed(0)
    random_mlp = Denoiser(MLP(2, 2, width=32, depth=2, time_scale=1000.0 / T).eval(), sch)
    for denoiser, x_T in ((_gaussian(sch), _x_T(n, 1)), (random_mlp, _x_T(n, 1).float())):
        g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
        a = ddpm_sample(denoiser, (n, 2), x_T=x_T, generator=g1, record=[T, 100, 0])
        b = ddim_sample(denoiser, (n, 2), eta=1.0, x_T=x_T, generator=g2, record=[T, 100, 0])
        assert a.nfe == b.nfe == T
        tol = 1e-9 if x_T.dtype == torch.float64 else 1e-4 + 1e-5 * float(a.x.abs().max())
        torch.testing.assert_close(b.x, a.x, rtol=0, atol=tol)
        torch.testing.assert_close(b.trajectory[100], a.trajectory[100], rtol=0, atol=tol)
        # and the noise really mattered: another seed gives another sample
        g3 = torch.Generator().manual_seed(3)
        c = ddim_sample(denoiser, (n, 2), eta=1.0, x_T=x_T, generator=g3)
        assert (c.x - a.x).abs().max() > 0.1


@pytest.mark.parametrize("spacing", ["linspace", "quadratic"])
def test_respaced_ancestral_is_ddim_eta_one_on_the_sub_grid(spacing):
    T, K, n = 1000, 25, 256
    denoiser = _gaussian(_cosine(T))
    grid = timestep_grid(T, K, spacing)
    x_T = _x_T(n)
    a = ddpm_sample(
        denoiser, (n, 2), grid=grid, x_T=x_T, generator=torch.Generator().manual_seed(1)
    )
    b = ddim_sample(
        denoiser, (n, 2), grid=grid, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(1)
    )
    assert a.nfe == b.nfe == K
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-9)


def test_eta_zero_is_deterministic_and_equals_euler_on_the_ode():
    """DDIM with eta = 0 and Euler on the probability-flow ODE in (x / alpha, sigma / alpha)
    are the same map (samplers/ode.py), so in float64 they agree to round-off."""
    T, n = 1000, 256
    denoiser = _gaussian(_cosine(T))
    x_T = _x_T(n)
    for K in (1, 7, 50):
        grid = timestep_grid(T, K)
        a = ddim_sample(denoiser, (n, 2), grid=grid, x_T=x_T, generator=torch.Generator())
        b = ddim_sample(denoiser, (n, 2), grid=grid, x_T=x_T, generator=torch.Generator())
        assert torch.equal(a.x, b.x)
        e = euler_sample(denoiser, (n, 2), grid=grid, x_T=x_T)
        assert e.nfe == a.nfe == K
        torch.testing.assert_close(e.x, a.x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prediction", ["x0", "v"])
@pytest.mark.parametrize("variance", ["small", "learned_range"])
def test_any_prediction_type_gives_the_same_samples(prediction, variance):
    """The same optimal model as an eps-, x0- or v-network: the Denoiser's conversions make
    DDIM's samples equal (float64: tolerance 1e-8, the conversions divide by sqrt(abar_T) ~
    2.5e-4 at the first step)."""
    T, K, n = 1000, 20, 128
    sch = _cosine(T)
    grid = timestep_grid(T, K)
    x_T = _x_T(n)
    ref = ddim_sample(_gaussian(sch), (n, 2), grid=grid, x_T=x_T).x
    x = ddim_sample(_gaussian(sch, prediction, variance), (n, 2), grid=grid, x_T=x_T).x
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-8)


def test_eta_out_of_range():
    denoiser = _gaussian(_cosine(10))
    for eta in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"eta = .* must be a number in \[0, 1\]"):
            ddim_sample(denoiser, (4, 2), eta=eta)


@pytest.mark.parametrize(
    ("schedule", "refine", "tol"),
    # tolerances: measured 3.5e-5 / 2.4e-3 / 8e-3, the bound at about 3x
    [("linear", 1, 1e-4), ("cosine", 1, 6e-3), ("linear", 0, 2.5e-2)],
)
def test_inversion_on_the_analytic_model(schedule, refine, tol):
    """Gaussian data: inversion maps data to N(0, I)-like codes and back. Without refinement the
    round trip is off by ~1e-2; with one fixed-point iteration per step by ~1e-5, except on the
    cosine schedule, whose last step (beta = 0.999) is not small (see samplers/ddim.py)."""
    T, n = 1000, 512
    denoiser = _gaussian(NoiseSchedule.from_name(schedule, T))
    x0 = (MU + S * _x_T(n)).float()
    inv = ddim_invert(denoiser, x0, refine=refine, record=[0, T])
    assert list(inv.trajectory) == [0, T] and inv.nfe == (1 + refine) * T
    z = inv.x
    assert abs(float(z.mean())) < 0.2 and 0.8 < float(z.std()) < 1.2
    back = ddim_sample(denoiser, (n, 2), x_T=z).x
    assert (back - x0).abs().max() < tol


def test_inversion_round_trip_on_a_trained_model(tmp_path):
    """A small MLP trained briefly (300 steps, width 64) on the swiss roll with the linear
    schedule at T = 1000: DDIM inversion with 1000 steps, then DDIM sampling from the codes,
    returns the data within 1e-3 (max abs error over 200 points)."""
    from conftest import tiny_args
    from difflab.app.cli import main

    out = tmp_path / "run"
    extra = [
        "schedule.T=1000",
        "schedule.name=linear",
        "train.steps=300",
        "model.width=64",
        "train.batch_size=128",
        "model.prediction=eps",
        # t uniform over the chain: lognormal t (the default) trains little above sigma ~ 10,
        # where the inversion's last steps make the codes noise-like
        "loss.timesteps=antithetic",
    ]
    assert main(["train", *tiny_args(*extra), "--out", str(out), "--quiet"]) == 0
    run = load_run(out)
    x0 = build_dataset(run.config.data).x[:200]
    denoiser = run.denoiser()
    z = ddim_invert(denoiser, x0).x
    # the codes are noise-like: q(x_T | x0) keeps sqrt(abar_T) ~ 6e-3 of the data
    assert 0.7 < float(z.std()) < 1.3
    back = ddim_sample(denoiser, tuple(x0.shape), x_T=z).x
    err = float((back - x0).abs().max())
    assert err < 1e-3, err
    # inversion is not the identity: the codes are far from the data
    assert float((z - x0).abs().mean()) > 0.3
