"""Tests for difflab.forward: q_step, q_sample, q_mean_variance, q_posterior.

Monte Carlo tolerances are 5 standard errors of the estimator (a false alarm rate of about 6e-7
per comparison for a Gaussian estimator): for a sample mean of N draws with variance v, the
standard error is sqrt(v / N); for a sample variance it is about v sqrt(2 / N). All seeds are
fixed, so the tests are deterministic; the 5-sigma margin ensures they are not tuned to a seed.
"""

from __future__ import annotations

import math

import pytest
import torch

from difflab.forward import q_mean_variance, q_posterior, q_sample, q_step
from difflab.schedules import NoiseSchedule, extract, make_betas

T = 50
SHAPES = [(2,), (2, 3, 3)]  # per-example shapes: (B, 2) and (B, C, H, W)


@pytest.fixture(scope="module")
def sch() -> NoiseSchedule:
    # betas scaled so that T = 50 still ends near N(0, I) (alpha_bar_T ~ 6e-3)
    return NoiseSchedule.from_name("linear", T, beta_start=1e-3, beta_end=0.2)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mc_check_moments(x, mean, var, n):
    """x: (n, ...) samples; mean/var broadcast to x[0]. 5-standard-error tolerances."""
    emp_mean = x.mean(0)
    emp_var = x.var(0)
    se_mean = (var / n).sqrt()
    se_var = var * math.sqrt(2.0 / n)
    assert ((emp_mean - mean).abs() <= 5 * se_mean).all(), float(
        ((emp_mean - mean) / se_mean).abs().max()
    )
    assert ((emp_var - var).abs() <= 5 * se_var).all(), float(
        ((emp_var - var) / se_var).abs().max()
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_q_sample_moments(sch, shape):
    B, n = 4, 20_000
    g = _gen(1)
    x0 = torch.randn(B, *shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 30, T - 1])
    # batch the draws: repeat x0 n times along a new leading axis instead of looping
    x0_rep = x0.unsqueeze(0).expand(n, *x0.shape).reshape(n * B, *shape)
    t_rep = t.repeat(n)
    xs = q_sample(sch, x0_rep, t_rep, generator=g).reshape(n, B, *shape)
    abar = sch.alphas_cumprod.double()[t]
    mean = abar.sqrt().reshape(B, *[1] * len(shape)) * x0
    var = (1 - abar).reshape(B, *[1] * len(shape)).expand_as(x0)
    _mc_check_moments(xs, mean, var, n)


@pytest.mark.parametrize("shape", SHAPES)
def test_q_sample_with_explicit_noise_is_formula(sch, shape):
    g = _gen(2)
    x0 = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 7, 25, T - 1])
    abar = extract(sch.alphas_cumprod, t, x0)
    # float32 tables: rtol 1e-6 covers the rounding of sqrt(abar), sqrt(1 - abar)
    torch.testing.assert_close(
        q_sample(sch, x0, t, noise=eps),
        abar.sqrt() * x0 + (1 - abar).sqrt() * eps,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_q_step_iterated_has_law_of_q_sample(sch, shape):
    """x0 fixed; apply q_step t+1 times (indices 0..t): the result must be q(x_t | x0)."""
    n = 20_000
    g = _gen(3)
    x0 = torch.randn(1, *shape, generator=g, dtype=torch.float64).expand(n, *shape)
    for t_end in (0, 5, T - 1):
        x = x0.clone()
        for s in range(t_end + 1):
            x = q_step(sch, x, torch.full((n,), s), generator=g)
        abar = float(sch.alphas_cumprod.double()[t_end])
        mean = math.sqrt(abar) * x0[0]
        var = torch.full_like(mean, 1 - abar)
        _mc_check_moments(x, mean, var, n)


def test_q_step_noise_is_gaussian_scaled_by_sqrt_beta(sch):
    n = 200_000
    g = _gen(4)
    x_prev = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t_idx = 20
    t = torch.full((n,), t_idx)
    beta = float(sch.betas.double()[t_idx])
    x = q_step(sch, x_prev, t, generator=g)
    inc = x - math.sqrt(1 - beta) * x_prev
    # increment variance is beta_t (not beta_t^2): 5 standard errors, se = beta sqrt(2 / N)
    assert float(inc.var()) == pytest.approx(beta, abs=5 * beta * math.sqrt(2 / (2 * n)))
    assert abs(float(inc.mean())) < 5 * math.sqrt(beta / (2 * n))
    # Gaussian: kurtosis 3. The sample kurtosis has standard error sqrt(24 / N) ~ 0.008.
    z = inc.flatten() / inc.std()
    kurt = float((z**4).mean())
    assert kurt == pytest.approx(3.0, abs=5 * math.sqrt(24 / (2 * n)))
    # explicit noise: exact formula, float32-table tolerance
    eps = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    xp = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    tt = torch.tensor([0, 3, 20, T - 1])
    b = extract(sch.betas, tt, xp)
    torch.testing.assert_close(
        q_step(sch, xp, tt, noise=eps), (1 - b).sqrt() * xp + b.sqrt() * eps, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_q_mean_variance(sch, shape):
    x0 = torch.randn(3, *shape, generator=_gen(5), dtype=torch.float64)
    t = torch.tensor([1, 20, T - 1])
    mean, var, log_var = q_mean_variance(sch, x0, t)
    abar = extract(sch.alphas_cumprod, t, x0)
    torch.testing.assert_close(mean, abar.sqrt() * x0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var.expand_as(x0), (1 - abar).expand_as(x0), rtol=1e-5, atol=0)
    # away from t = 0 the cancellation in 1 - abar is harmless: rtol 1e-5
    torch.testing.assert_close(log_var.exp(), var, rtol=1e-5, atol=0)


def test_q_mean_variance_var_matches_log_var_at_t0():
    """1 - alpha_bar is a float64-computed table: no float32 cancellation near t = 0."""
    sch = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.zeros(1, 2, dtype=torch.float64)
    _, var, log_var = q_mean_variance(sch, x0, torch.tensor([0]))
    exact = 1e-4  # 1 - alpha_bar_0 = beta_0 = beta_start
    # float32 tables hold 1e-4 to ~1e-7 relative; 1e-5 is generous
    assert float(log_var.exp().flatten()[0]) == pytest.approx(exact, rel=1e-5)
    assert float(var.flatten()[0]) == pytest.approx(exact, rel=1e-5)


@pytest.mark.parametrize("t_idx", [1, 2, 10, T - 1])
def test_q_posterior_matches_brute_force_bayes(sch, t_idx):
    """q(x_{t-1} | x_t, x0) ∝ q(x_{t-1} | x0) q(x_t | x_{t-1}), normalized on a fine grid.

    Grid: 200001 points spanning both factors' centers +-12 of the larger of their standard
    deviations (the posterior lies between the centers and is narrower than either factor, so it
    is covered, with thousands of points per posterior standard deviation). The
    Riemann sums of a smooth Gaussian are accurate far beyond float32 resolution, so the
    tolerance (rtol 1e-5 on the variance, 1e-5 relative to the posterior std on the mean) is set
    by the float32 tables.
    """
    # the reference uses float64 betas: 1 - abar_prev from a float32-rounded abar_prev would
    # itself carry a ~1e-4 relative cancellation error at small t
    betas = make_betas("linear", T, beta_start=1e-3, beta_end=0.2)
    beta, alpha = float(betas[t_idx]), 1 - float(betas[t_idx])
    abar_prev = float(torch.prod(1 - betas[:t_idx]))
    for x0_val, xt_val in [(0.7, -0.3), (-1.5, 2.0), (0.0, 0.0)]:
        centers = [xt_val / math.sqrt(alpha), math.sqrt(abar_prev) * x0_val]
        sd = max(math.sqrt(beta / alpha), math.sqrt(1 - abar_prev))
        lo, hi = min(centers) - 12 * sd, max(centers) + 12 * sd
        grid = torch.linspace(lo, hi, 200_001, dtype=torch.float64)
        log_prior = -0.5 * (grid - math.sqrt(abar_prev) * x0_val) ** 2 / (1 - abar_prev)
        log_lik = -0.5 * (xt_val - math.sqrt(alpha) * grid) ** 2 / beta
        w = torch.softmax(log_prior + log_lik, 0)
        bf_mean = float((w * grid).sum())
        bf_var = float((w * (grid - bf_mean) ** 2).sum())

        x0 = torch.full((1, 2), x0_val, dtype=torch.float64)
        xt = torch.full((1, 2), xt_val, dtype=torch.float64)
        mean, var, log_var = q_posterior(sch, x0, xt, torch.tensor([t_idx]))
        assert float(var.flatten()[0]) == pytest.approx(bf_var, rel=1e-5)
        assert float(log_var.exp().flatten()[0]) == pytest.approx(bf_var, rel=1e-5)
        assert float(mean[0, 0]) == pytest.approx(bf_mean, abs=1e-5 * math.sqrt(bf_var) + 1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_q_posterior_at_t0_is_point_mass(sch, shape):
    g = _gen(6)
    x0 = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    xt = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    t = torch.zeros(3, dtype=torch.long)
    mean, var, log_var = q_posterior(sch, x0, xt, t)
    torch.testing.assert_close(mean, x0, rtol=1e-6, atol=1e-6)
    assert (var == 0).all()
    # log-variance is clipped to the value at t = 1 (finite)
    torch.testing.assert_close(
        log_var.flatten(), sch.posterior_log_variance_clipped.double()[1].expand(3), rtol=0, atol=0
    )
    assert torch.isfinite(log_var).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_q_posterior_shapes_broadcast(sch, shape):
    x0 = torch.zeros(4, *shape)
    mean, var, log_var = q_posterior(sch, x0, x0, torch.tensor([0, 1, 2, 3]))
    assert mean.shape == x0.shape
    assert (mean + var + log_var).shape == x0.shape


@pytest.mark.parametrize("fn", [q_sample, q_step])
def test_generator_reproducibility(sch, fn):
    x0 = torch.ones(8, 3, 4, 4)
    t = torch.arange(8)
    a = fn(sch, x0, t, generator=_gen(42))
    b = fn(sch, x0, t, generator=_gen(42))
    c = fn(sch, x0, t, generator=_gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == x0.dtype and a.shape == x0.shape
