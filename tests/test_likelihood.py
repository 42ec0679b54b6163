"""The bound and the probability-flow ODE likelihood against closed forms.

For Gaussian data N(mu, s^2 I) everything is jointly Gaussian, so the analytically optimal model
is known: x_t ~ N(a mu, (a^2 s^2 + sigma^2) I) with a = sqrt(abar_t), sigma^2 = 1 - abar_t, hence
E[eps | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2), and the optimal reverse variance is
Var(x_{t-1} | x_t) = V' - alpha_t V'^2 / (alpha_t V' + beta_t) with V' = Var(x_{t-1}). With
both, p(x_{0:T}) = q(x_{0:T}) up to the prior at T, so the bound and the ODE NLL equal
-log N(x_0; mu, s^2 I) (tolerance 1e-3 nats per dimension: the prior mismatch
KL(q(x_T) || N(0, I)) and the ODE's start at the first noise level are both below 1e-4 here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from difflab.gaussian import gaussian_log_likelihood
from difflab.likelihood import alpha_bar_at, ode_nll
from difflab.losses.vlb import bits_per_dim, full_bound, prior_kl, sum_flat, vlb_term
from difflab.schedules import NoiseSchedule

MU, S2 = 0.3, 0.25


class GaussianOracle(nn.Module):
    """The optimal eps-network (and log-variance, if ``learned``) for data N(MU, S2 I)."""

    def __init__(self, schedule: NoiseSchedule, *, learned: bool = False) -> None:
        super().__init__()
        self.schedule, self.learned = schedule, learned
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # so it has a dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sch = self.schedule
        if t.dtype == torch.long:
            abar = sch.alphas_cumprod.double()[t].reshape(-1, 1)
        else:
            abar = torch.tensor([[alpha_bar_at(sch, float(t[0]))]], dtype=torch.float64)
        sig2 = 1.0 - abar
        eps = sig2.sqrt() / (abar * S2 + sig2) * (x - abar.sqrt() * MU)
        if not self.learned:
            return eps
        abar_prev = sch.alphas_cumprod_prev.double()[t].reshape(-1, 1)
        alpha, beta = sch.alphas.double()[t].reshape(-1, 1), sch.betas.double()[t].reshape(-1, 1)
        v_prev = abar_prev * S2 + 1.0 - abar_prev
        var = v_prev - alpha * v_prev**2 / (alpha * v_prev + beta)
        return torch.cat([eps, var.log().expand_as(x)], dim=1)


def _data(n: int, D: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + math.sqrt(S2) * torch.randn(n, D, generator=g, dtype=torch.float64)


def _true_nll(x0: torch.Tensor) -> torch.Tensor:
    return -sum_flat(
        gaussian_log_likelihood(x0, torch.full_like(x0, MU), torch.tensor(math.log(S2)))
    )


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.from_name("cosine", 1000)


def _expected_terms(model, schedule, x0, variance):
    """E over x_t of every term of the bound, (B, T), exactly: each term is a quadratic in the
    noise eps of x_t, so 3-point Gauss-Hermite quadrature per dimension integrates it exactly."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    weights = weights / weights.sum()
    B, D = x0.shape
    grid = torch.tensor(np.stack(np.meshgrid(*[nodes] * D, indexing="ij"), -1).reshape(-1, D))
    w = torch.tensor(np.prod(np.stack(np.meshgrid(*[weights] * D, indexing="ij"), -1), -1).ravel())
    K = grid.shape[0]
    x_rep, noise = x0.repeat_interleave(K, 0), grid.repeat(B, 1)
    terms = torch.empty(B, schedule.T, dtype=torch.float64)
    for k in range(schedule.T):
        t = torch.full((B * K,), k, dtype=torch.long)
        values = vlb_term(model, schedule, x_rep, t, variance=variance, noise=noise)
        terms[:, k] = (values.reshape(B, K) * w).sum(1)
    return terms


def test_bound_of_optimal_model_is_the_exact_nll(schedule):
    x0 = _data(40)
    model = GaussianOracle(schedule, learned=True)
    with torch.no_grad():
        expected = prior_kl(schedule, x0) + _expected_terms(model, schedule, x0, "learned").sum(1)
    assert float((expected - _true_nll(x0)).abs().max()) < 1e-3 * x0.shape[1]


def test_full_bound_monte_carlo_matches_its_expectation():
    schedule = NoiseSchedule.from_name("cosine", 200)
    x0 = _data(400, seed=3)
    model = GaussianOracle(schedule, learned=True)
    bound = full_bound(
        model, schedule, x0, variance="learned", generator=torch.Generator().manual_seed(1)
    )
    assert bound.terms.shape == (400, 200) and bound.prior.shape == (400,)
    torch.testing.assert_close(bound.total, bound.prior + bound.terms.sum(1))
    gap = bound.total - _true_nll(x0)  # per example E[gap] = 0 (previous test)
    assert abs(float(gap.mean())) < 4 * float(gap.std()) / math.sqrt(gap.numel())
    torch.testing.assert_close(bits_per_dim(bound.total, x0), bound.total / (2 * math.log(2)))


def test_bound_with_a_fixed_variance_is_looser():
    """With the posterior variance beta_tilde instead of the optimal one the bound is an upper
    bound strictly above the NLL (the gap is the KL between the two variances, summed over t)."""
    schedule = NoiseSchedule.from_name("cosine", 200)
    x0 = _data(300)
    bound = full_bound(GaussianOracle(schedule), schedule, x0, variance="small")
    assert float((bound.total - _true_nll(x0)).mean()) > 0.01


def test_prior_term_closed_form(schedule):
    x0 = _data(10)
    abar = schedule.alphas_cumprod.double()[-1]
    expected = 0.5 * ((1 - abar) + abar * x0**2 - 1 - torch.log1p(-abar)).sum(1)
    torch.testing.assert_close(prior_kl(schedule, x0), expected)


@pytest.mark.parametrize("D", [2, 12])
def test_ode_nll_of_optimal_model_is_the_exact_nll(schedule, D):
    """D = 2: exact divergence; D = 12: Hutchinson's estimator, unbiased, so the mean matches."""
    x0 = _data(200 if D == 2 else 400, D=D)
    out = ode_nll(
        GaussianOracle(schedule),
        schedule,
        x0,
        rtol=1e-6,
        atol=1e-6,
        generator=torch.Generator().manual_seed(2),
    )
    diff = out.nll - _true_nll(x0)
    if D == 2:
        assert float(diff.abs().max()) < 1e-3 * D
    else:
        assert abs(float(diff.mean())) < 1e-3 * D + 3 * float(diff.std()) / math.sqrt(len(diff))
    assert out.nfe > 10
