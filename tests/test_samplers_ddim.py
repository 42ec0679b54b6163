"""Tests for DDIM (samplers.ddim), DDIM inversion and respaced ancestral sampling.

Analytic model: for Gaussian data x0 ~ N(MU, diag(S^2)) the optimal noise predictor is
eps*(x_t, t) = b (x_t - a MU) / (a^2 S^2 + b^2), a = sqrt(abar_t), b = sqrt(1 - abar_t)
(derivation in test_samplers_ddpm.py); ``GaussianModel`` also returns it as an x0- or
v-prediction, or with an extra learned-variance half.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difflab.builders import build_dataset
from difflab.parameterization import v_from_x0_eps, x0_from_eps
from difflab.run import load_run
from difflab.samplers import (
    ddim_invert,
    ddim_sample,
    ddpm_respaced_sample,
    ddpm_sample,
    ode_sample,
)
from difflab.schedules import NoiseSchedule

MU = torch.tensor([1.5, -1.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.0], dtype=torch.float64)


class GaussianModel(nn.Module):
    """The optimal model for Gaussian data, predicting ``prediction``; ``learned`` appends a
    variance half (ignored by DDIM / ODE samplers, 0 = the middle of learned_range)."""

    def __init__(self, schedule: NoiseSchedule, prediction: str = "eps", learned: bool = False):
        super().__init__()
        self.schedule, self.prediction, self.learned = schedule, prediction, learned

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = self.schedule.alphas_cumprod.double()[t][:, None]
        a, b = abar.sqrt(), (1 - abar).sqrt()
        eps = (b * (x_t - a * MU) / (a**2 * S**2 + b**2)).to(x_t.dtype)
        out = eps
        if self.prediction != "eps":
            x0 = x0_from_eps(self.schedule, x_t, t, eps)
            out = x0 if self.prediction == "x0" else v_from_x0_eps(self.schedule, t, x0, eps)
        return torch.cat([out, torch.zeros_like(out)], 1) if self.learned else out


def _cosine(T: int) -> NoiseSchedule:
    return NoiseSchedule.from_name("cosine", T)


def test_eta_one_on_the_full_grid_is_ancestral_sampling():
    """Same x_T, same generator seed: DDIM(eta=1, K=T) and DDPM (small variance) agree.
    Tolerance: float32 arithmetic over T = 200 steps, different but equal formulas."""
    T, n = 200, 512
    sch = _cosine(T)
    torch.manual_seed(0)
    models = [GaussianModel(sch), _random_mlp(T)]
    for model in models:
        x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(1))
        g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
        a = ddpm_sample(model, sch, (n, 2), x_T=x_T, generator=g1, record=[T, 100, 0])
        b = ddim_sample(model, sch, (n, 2), eta=1.0, x_T=x_T, generator=g2, record=[T, 100, 0])
        assert a.nfe == b.nfe == T
        # float32: 1e-4 plus 1e-5 of the scale (a random MLP's samples reach |x| ~ 1e3)
        tol = 1e-4 + 1e-5 * float(a.x.abs().max())
        torch.testing.assert_close(b.x, a.x, rtol=0, atol=tol)
        torch.testing.assert_close(b.trajectory[100], a.trajectory[100], rtol=0, atol=tol)
        # and the noise really mattered: another seed gives another sample
        g3 = torch.Generator().manual_seed(3)
        c = ddim_sample(model, sch, (n, 2), eta=1.0, x_T=x_T, generator=g3)
        assert (c.x - a.x).abs().max() > 0.1


def _random_mlp(T: int) -> nn.Module:
    from difflab.models import MLP

    return MLP(2, 2, width=32, depth=2, time_scale=1000.0 / T).eval()


@pytest.mark.parametrize("spacing", ["linspace", "quadratic"])
def test_respaced_ancestral_is_ddim_eta_one_on_the_sub_grid(spacing):
    T, K, n = 1000, 25, 256
    sch = _cosine(T)
    model = GaussianModel(sch)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    kw = {"steps": K, "spacing": spacing, "x_T": x_T}
    a = ddpm_respaced_sample(model, sch, (n, 2), generator=torch.Generator().manual_seed(1), **kw)
    b = ddim_sample(model, sch, (n, 2), eta=1.0, generator=torch.Generator().manual_seed(1), **kw)
    assert a.nfe == b.nfe == K
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-4)
    # K = T is the ancestral chain itself
    full = ddpm_respaced_sample(
        model, sch, (n, 2), steps=T, x_T=x_T, generator=torch.Generator().manual_seed(1)
    )
    ref = ddpm_sample(model, sch, (n, 2), x_T=x_T, generator=torch.Generator().manual_seed(1))
    assert torch.equal(full.x, ref.x)


def test_respaced_ancestral_learned_variance():
    sch = _cosine(100)
    model = GaussianModel(sch, learned=True)
    x = ddpm_respaced_sample(model, sch, (64, 2), steps=10, variance="learned_range").x
    assert x.shape == (64, 2) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="'learned' cannot be respaced"):
        ddpm_respaced_sample(model, sch, (64, 2), steps=10, variance="learned")


def test_eta_zero_is_deterministic_and_equals_euler_on_the_ode():
    T, n = 1000, 256
    sch = _cosine(T)
    model = GaussianModel(sch)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    for K in (1, 7, 50):
        a = ddim_sample(model, sch, (n, 2), steps=K, x_T=x_T, generator=torch.Generator())
        b = ddim_sample(model, sch, (n, 2), steps=K, x_T=x_T, generator=torch.Generator())
        assert torch.equal(a.x, b.x)
        e = ode_sample(model, sch, (n, 2), method="euler", steps=K, x_T=x_T)
        assert e.nfe == a.nfe == K
        # the same map in two float32 forms; the first step from x_T (sqrt(abar_T) = 2.5e-4)
        # amplifies rounding of |x_T / sqrt(abar_T)| ~ 1e4 to a few 1e-3 (measured 7.8e-3)
        torch.testing.assert_close(e.x, a.x, rtol=0, atol=2e-2)


@pytest.mark.parametrize("prediction", ["x0", "v"])
@pytest.mark.parametrize("learned", [False, True])
def test_any_prediction_type_gives_the_same_samples(prediction, learned):
    T, K, n = 1000, 20, 128
    sch = _cosine(T)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    variance = "learned_range" if learned else "small"
    ref = ddim_sample(GaussianModel(sch), sch, (n, 2), steps=K, x_T=x_T).x
    other = GaussianModel(sch, prediction, learned)
    x = ddim_sample(
        other, sch, (n, 2), steps=K, x_T=x_T, prediction=prediction, variance=variance
    ).x
    # the conversions divide by sqrt(abar_T) ~ 1e-4 at the first step: float32 tolerance
    torch.testing.assert_close(x, ref, rtol=0, atol=2e-3)


def test_eta_out_of_range():
    sch = _cosine(10)
    for eta in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"eta = .* must be a number in \[0, 1\]"):
            ddim_sample(GaussianModel(sch), sch, (4, 2), eta=eta)


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
    sch = NoiseSchedule.from_name(schedule, T)
    model = GaussianModel(sch)
    x0 = (
        MU + S * torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ).float()
    inv = ddim_invert(model, sch, x0, refine=refine, record=[0, T])
    assert list(inv.trajectory) == [0, T] and inv.nfe == (1 + refine) * T
    z = inv.x
    assert abs(float(z.mean())) < 0.2 and 0.8 < float(z.std()) < 1.2
    back = ddim_sample(model, sch, (n, 2), x_T=z).x
    assert (back - x0).abs().max() < tol


def test_inversion_round_trip_on_a_trained_model(tmp_path):
    """A small MLP trained briefly (300 steps, width 64) on the swiss roll with the linear
    schedule at T = 1000: DDIM inversion with 1000 steps, then DDIM sampling from the codes,
    returns the data within 1e-3 (max abs error over 200 points)."""
    from conftest import tiny_args
    from difflab.cli import main

    out = tmp_path / "run"
    extra = [
        "schedule.T=1000",
        "schedule.name=linear",
        "train.steps=300",
        "model.width=64",
        "train.batch_size=128",
        "model.prediction=eps",
    ]
    assert main(["train", *tiny_args(*extra), "--out", str(out), "--quiet"]) == 0
    run = load_run(out)
    x0 = build_dataset(run.config.data).x[:200]
    pred = run.config.model.prediction
    z = ddim_invert(run.model, run.schedule, x0, prediction=pred).x
    # the codes are noise-like: q(x_T | x0) keeps sqrt(abar_T) ~ 6e-3 of the data
    assert 0.7 < float(z.std()) < 1.3
    back = ddim_sample(run.model, run.schedule, tuple(x0.shape), x_T=z, prediction=pred).x
    err = float((back - x0).abs().max())
    assert err < 1e-3, err
    # inversion is not the identity: the codes are far from the data
    assert float((z - x0).abs().mean()) > 0.3
