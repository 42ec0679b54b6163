"""Tests for difflab.samplers: the shared chain loop and ancestral DDPM sampling.

Gaussian data x0 ~ N(mu, diag(s^2)) makes every quantity analytic. With a = sqrt(abar_t),
b = sqrt(1 - abar_t), x_t = a x0 + b eps is Gaussian with Var(x_t) = a^2 s^2 + b^2 and
Cov(eps, x_t) = b, so the optimal noise predictor (the regression of eps on x_t) is

    eps*(x_t, t) = E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2).

Each DDPM step is then affine in x_t plus independent Gaussian noise, so the law of the
sampler's output is N(m, v) with (m, v) given by an exact scalar recursion (``_exact_law``).
Two kinds of tolerance follow:

- Monte Carlo: samples vs the exact recursion, 5 standard errors (sqrt(v / n) for a mean,
  v sqrt(2 / n) for a variance; false-alarm rate ~6e-7 per comparison).
- Discretization: the recursion vs the data law. With the "large" variance (beta_t) at T = 200
  the recursion gives Var = 1.015 s^2 for s = 0.5 (computed with ``_exact_law``), hence 3%.
  The "small" variance (beta_tilde_t) underestimates the reverse variance, a known property of
  DDPM with few steps (recursion: 0.93 s^2 at T = 200), so it is only checked against the
  recursion.
"""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from difflab.denoiser import Denoiser, VarianceClampWarning
from difflab.samplers import ChainResult, ddpm_sample, ddpm_step, run_chain, timestep_grid
from difflab.schedules import NoiseSchedule
from oracles import GaussianOracle, ZeroNet

MU = torch.tensor([1.5, -1.0], dtype=torch.float64)
S = torch.tensor([0.5, 1.0], dtype=torch.float64)


def _schedule(T: int) -> NoiseSchedule:
    """Ho et al.'s 1e-4..0.02 over 1000 steps rescaled to T >= 100 steps (same total noise);
    the cosine schedule for shorter chains (a rescaled beta_end would exceed 1)."""
    if T < 100:
        return NoiseSchedule.from_name("cosine", T)
    return NoiseSchedule.from_name("linear", T, beta_start=0.1 / T, beta_end=20.0 / T)


def _denoiser(sch: NoiseSchedule, variance: str = "small", net=None) -> Denoiser:
    half = "zeros" if variance.startswith("learned") else None
    net = net or GaussianOracle(sch, MU, S**2, variance_half=half)
    return Denoiser(net, sch, variance=variance)


def _exact_law(
    schedule: NoiseSchedule, variance: str, grid: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (per dim) of DDPM's output with the Gaussian oracle from x_T ~ N(0, I)
    along ``grid`` (paper times; default all T), written out from alpha_bar alone: the step
    tau -> p has beta = 1 - abar_tau / abar_p, posterior mean coefficients sqrt(abar_p) beta /
    (1 - abar_tau) (of x_0) and sqrt(abar_tau / abar_p) (1 - abar_p) / (1 - abar_tau) (of x_t),
    and variance beta (1 - abar_p) / (1 - abar_tau) ("small"; clipped at p = 0, where no noise
    is added anyway), beta ("large"), or their geometric mean ("learned_range" with a zero
    output, the middle of the range)."""
    T = schedule.T
    grid = grid or list(range(T, -1, -1))
    abar = torch.cat([torch.ones(1, dtype=torch.float64), schedule.alphas_cumprod.double()])
    m, v = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    for tau, p in itertools.pairwise(grid):
        a, b = abar[tau].sqrt(), (1 - abar[tau]).sqrt()
        k = b / (a**2 * S**2 + b**2)  # eps* = k (x - a MU)
        # x0_hat = (x - b eps*) / a = A0 x + B0; mean = c1 x0_hat + c2 x = A x + B
        A0, B0 = (1 - b * k) / a, b * k * MU
        beta = 1 - abar[tau] / abar[p]
        c1 = abar[p].sqrt() * beta / (1 - abar[tau])
        c2 = (abar[tau] / abar[p]).sqrt() * (1 - abar[p]) / (1 - abar[tau])
        small, large = beta * (1 - abar[p]) / (1 - abar[tau]), beta
        var = {"small": small, "large": large, "learned_range": (small * large).sqrt()}[variance]
        A, B = c1 * A0 + c2, c1 * B0
        m, v = A * m + B, A**2 * v + (var if p > 0 else 0.0)
    return m, v


def _check_law(x: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> None:
    """Samples against an exact law: 5 Monte Carlo standard errors each."""
    n = x.shape[0]
    assert ((x.mean(0) - m).abs() <= 5 * (v / n).sqrt()).all(), (x.mean(0), m)
    assert ((x.var(0) - v).abs() <= 5 * v * math.sqrt(2 / n)).all(), (x.var(0), v)


@pytest.mark.parametrize("variance", ["small", "large", "learned_range"])
def test_gaussian_data_matches_exact_law(variance):
    T, n = 200, 20_000
    sch = _schedule(T)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
    res = ddpm_sample(_denoiser(sch, variance), (n, 2), x_T=x_T, generator=g)
    assert res.nfe == T
    _check_law(res.x, *_exact_law(sch, variance))


@pytest.mark.parametrize("variance", ["small", "large", "learned_range"])
@pytest.mark.parametrize("spacing", ["linspace", "quadratic"])
def test_respaced_ddpm_matches_the_exact_law_of_its_sub_grid(variance, spacing):
    """Respaced ancestral sampling (K = 20 of T = 200) has exactly the law of the shorter
    forward process's reverse chain, for every variance type; and with "large" it still
    reaches the data's moments (the recursion's bias at K = 20: checked against it)."""
    sch, n = _schedule(200), 20_000
    grid = timestep_grid(200, 20, spacing)
    g = torch.Generator().manual_seed(4)
    x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
    res = ddpm_sample(_denoiser(sch, variance), (n, 2), grid=grid, x_T=x_T, generator=g)
    assert res.nfe == 20
    m, v = _exact_law(sch, variance, grid)
    _check_law(res.x, m, v)
    # the law differs from the full chain's: a 20-step sub-grid is a different model
    if variance == "small":
        assert ((v - _exact_law(sch, variance)[1]).abs() > 1e-3).any()


def test_learned_variance_cannot_be_respaced():
    sch = _schedule(20)
    denoiser = _denoiser(sch, "learned", net=ZeroNet(2))
    with pytest.raises(ValueError, match="cannot be respaced"):
        ddpm_sample(denoiser, (4, 2), grid=timestep_grid(20, 5))
    assert torch.isfinite(ddpm_sample(denoiser, (4, 2)).x).all()  # all T steps: fine


def test_gaussian_data_reproduces_target_moments():
    """Large variance, T = 200: the samples have the data's mean and variance."""
    T, n = 200, 20_000
    sch = _schedule(T)
    m, v = _exact_law(sch, "large")
    # discretization bias, from the exact recursion: mean < 1e-4, variance < 3% (see docstring)
    torch.testing.assert_close(m, MU, rtol=0, atol=1e-4)
    torch.testing.assert_close(v, S**2, rtol=0.03, atol=0)
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = ddpm_sample(_denoiser(sch, "large"), (n, 2), x_T=x_T, generator=g).x
    # bias + 5 Monte Carlo standard errors
    assert ((x.mean(0) - MU).abs() <= 1e-4 + 5 * S / math.sqrt(n)).all(), x.mean(0)
    rel = (x.var(0) / S**2 - 1).abs()
    assert (rel <= 0.03 + 5 * math.sqrt(2 / n)).all(), x.var(0)
    # and the data are uncorrelated across dims, like the target: |corr| < 5 / sqrt(n)
    corr = torch.corrcoef(x.T)[0, 1]
    assert abs(float(corr)) < 5 / math.sqrt(n)


def test_small_variance_is_close_with_many_steps():
    """Analytic check only (no sampling): the small-variance bias shrinks with T."""
    _, v200 = _exact_law(_schedule(200), "small")
    _, v1000 = _exact_law(_schedule(1000), "small")
    err200 = (v200 / S**2 - 1).abs()
    err1000 = (v1000 / S**2 - 1).abs()
    assert (err1000 < err200).all()
    assert (err1000 < 0.02).all()  # recursion gives 1.6% for s = 0.5, ~0.9% for s = 1


@pytest.mark.parametrize("shape", [(3, 2), (3, 2, 4, 4)])
def test_last_step_adds_no_noise(shape):
    sch = _schedule(20)
    denoiser = Denoiser(ZeroNet(), sch, variance="large")
    x1 = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    a = ddpm_step(denoiser, x1, 1, 0, generator=torch.Generator().manual_seed(1))
    b = ddpm_step(denoiser, x1, 1, 0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = ddpm_step(denoiser, x1, 2, 1, generator=torch.Generator().manual_seed(1))
    d = ddpm_step(denoiser, x1, 2, 1, generator=torch.Generator().manual_seed(2))
    # sigma = sqrt(beta_2) ~ 0.04 here: two noise draws differ visibly
    assert (c - d).abs().max() > 0.1 * float(sch.betas[1].sqrt())
    # explicit noise is used as given
    z = torch.ones(shape)
    assert torch.equal(
        ddpm_step(denoiser, x1, 4, 3, noise=z), ddpm_step(denoiser, x1, 4, 3, noise=z)
    )


@pytest.mark.parametrize("log_var", [-30.0, 20.0, 300.0])
def test_a_learned_variance_is_kept_within_its_range_when_sampling(log_var):
    """A learned variance outside [beta_tilde_t / 4, 4 beta_t] (as a network's raw log-variance
    off the data, which reached 248 in a 2015 model and overflowed) is clamped into it with a
    warning: the noise scale is exactly 2 sqrt(beta_t) (above) or sqrt(beta_tilde_t) / 2
    (below), and the bound still sees the raw value."""
    sch = _schedule(20)
    denoiser = Denoiser(ZeroNet(log_var=log_var), sch, variance="learned")
    x = torch.zeros(4, 2)
    z = torch.ones(4, 2)
    with pytest.warns(VarianceClampWarning, match="clamps it into that range"):
        out = ddpm_step(denoiser, x, 5, 4, noise=z)
    expected = 4 * sch.betas[4] if log_var > 0 else sch.posterior_variance[4] / 4
    torch.testing.assert_close(out, z * float(expected) ** 0.5, rtol=1e-5, atol=0)
    raw = denoiser.reverse_step(x, 5, 4)
    assert float(raw.log_var.max()) == log_var
    with warnings.catch_warnings():  # a network inside the range: no warning, no change
        warnings.simplefilter("error")
        inside = Denoiser(ZeroNet(log_var=float(sch.log_betas[4]) + 1.0), sch, variance="learned")
        ddpm_step(inside, x, 5, 4, noise=z)


@pytest.mark.parametrize("shape", [(4, 2), (4, 3, 4, 4)])
def test_shapes_record_and_reproducibility(shape):
    T = 10
    denoiser = Denoiser(ZeroNet(), _schedule(T))
    run = lambda seed: ddpm_sample(  # noqa: E731
        denoiser, shape, generator=torch.Generator().manual_seed(seed), record=[T, 5, 0]
    )
    a, b, c = run(0), run(0), run(1)
    assert isinstance(a, ChainResult)
    assert a.x.shape == shape and a.x.dtype == torch.float32
    assert torch.isfinite(a.x).all()
    assert list(a.trajectory) == [T, 5, 0]
    assert torch.equal(a.trajectory[0], a.x)
    assert all(v.shape == shape for v in a.trajectory.values())
    assert a.nfe == T
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_x_T_is_the_start_and_record_may_pick_labels():
    T = 5
    denoiser = Denoiser(ZeroNet(), _schedule(T))
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(3))
    res = ddpm_sample(denoiser, (3, 2), x_T=x_T, record=[T], generator=torch.Generator())
    assert torch.equal(res.trajectory[T], x_T)
    picked = ddpm_sample(denoiser, (3, 2), record=lambda labels: labels[::2])
    assert list(picked.trajectory) == [5, 3, 1]


# ---------------------------------------------------------------- run_chain


def test_run_chain_records_labels_in_order():
    seen = []

    def step(x, item):
        assert torch.is_inference_mode_enabled()
        seen.append(item)
        return x + 1

    x = torch.zeros(2)
    res = run_chain(step, x, ["a", "b", "c", "d"], times=[4, 3, 2, 1, 0], record=[0, 4, 2, 7])
    assert seen == ["a", "b", "c", "d"]
    assert list(res.trajectory) == [4, 2, 0]
    assert torch.equal(res.trajectory[4], torch.zeros(2))
    assert torch.equal(res.trajectory[2], torch.full((2,), 2.0))
    assert torch.equal(res.x, torch.full((2,), 4.0))
    assert res.nfe == 4
    assert run_chain(step, x, [1, 2], times=[2, 1, 0], evals_per_item=2).nfe == 4
    assert run_chain(step, x, [1, 2], times=[2, 1, 0]).trajectory == {}


def test_run_chain_recorded_states_are_copies():
    res = run_chain(lambda x, i: x.add_(1), torch.zeros(2), [0, 1], times=[2, 1, 0], record=[2, 1])
    assert torch.equal(res.trajectory[2], torch.zeros(2))
    assert torch.equal(res.trajectory[1], torch.ones(2))


def test_run_chain_label_count():
    with pytest.raises(ValueError, match="labels"):
        run_chain(lambda x, i: x, torch.zeros(1), [0, 1], times=[2, 1])
