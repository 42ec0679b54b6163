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

from difflab.denoiser import Denoiser
from difflab.likelihood import ode_nll
from difflab.losses.vlb import bits_per_dim, full_bound, prior_kl, vlb_term
from difflab.schedules import NoiseSchedule
from oracles import GaussianOracle, gaussian_data, gaussian_nll

MU, S2 = 0.3, 0.25


def _oracle(schedule: NoiseSchedule, *, learned: bool = False, **kw) -> GaussianOracle:
    """The optimal network for data N(MU, S2 I): eps (and the optimal log-variance)."""
    return GaussianOracle(schedule, MU, S2, variance_half="optimal" if learned else None, **kw)


def _data(n: int, D: int = 2, seed: int = 0) -> torch.Tensor:
    return gaussian_data(n, MU, S2, dim=D, seed=seed)


def _true_nll(x0: torch.Tensor) -> torch.Tensor:
    return gaussian_nll(x0, MU, S2)


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
    model = _oracle(schedule, learned=True)
    with torch.no_grad():
        expected = prior_kl(schedule, x0) + _expected_terms(model, schedule, x0, "learned").sum(1)
    assert float((expected - _true_nll(x0)).abs().max()) < 1e-3 * x0.shape[1]


def test_full_bound_monte_carlo_matches_its_expectation():
    schedule = NoiseSchedule.from_name("cosine", 200)
    x0 = _data(400, seed=3)
    denoiser = Denoiser(_oracle(schedule, learned=True), schedule, variance="learned")
    bound = full_bound(denoiser, x0, generator=torch.Generator().manual_seed(1))
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
    bound = full_bound(Denoiser(_oracle(schedule), schedule, variance="small"), x0)
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
    denoiser = Denoiser(_oracle(schedule), schedule, continuous_time=True)
    out = ode_nll(denoiser, x0, rtol=1e-6, atol=1e-6, generator=torch.Generator().manual_seed(2))
    diff = out.nll - _true_nll(x0)
    if D == 2:
        assert float(diff.abs().max()) < 1e-3 * D
    else:
        assert abs(float(diff.mean())) < 1e-3 * D + 3 * float(diff.std()) / math.sqrt(len(diff))
    assert out.nfe > 10


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("continuous_time", [True, False])
def test_ode_nll_is_exact_for_every_prediction_and_the_integer_step_path(
    schedule, prediction, continuous_time
):
    """The optimal model as an eps-, x0- or v-network gives the exact NLL, whether the network
    takes fractional steps or the Denoiser interpolates eps_hat between integer steps.

    Tolerance: with continuous time the ODE is exact up to the solver (rtol 1e-6) and the start
    at the first noise level (< 1e-4 nats here). The integer-step path interpolates eps_hat
    linearly in the step index between exact values; eps* is smooth in u = -log abar, so its
    error is O(du^2 |d^2 eps / du^2|) per step, which T = 1000 cosine steps keep far below the
    1e-3 nats per dimension of the other error terms.
    """
    x0 = _data(100)
    net = _oracle(schedule, prediction=prediction)
    denoiser = Denoiser(net, schedule, prediction=prediction, continuous_time=continuous_time)
    out = ode_nll(denoiser, x0, rtol=1e-6, atol=1e-6)
    diff = out.nll - _true_nll(x0)
    assert float(diff.abs().max()) < 1e-3 * x0.shape[1], float(diff.abs().max())
    # the integer-step path never hands the network a fractional step
    assert net.time_dtypes == ({torch.long, torch.float64} if continuous_time else {torch.long})


def test_ode_nll_of_the_2015_model_starts_at_its_first_trained_step(schedule):
    """A mean-predicting (2015) model is never asked at t = 1 (its fixed step; the oracle
    returns zeros there, as an untrained network would): the drift there uses its estimate
    from t = 2, so the optimal mean-model still gives the exact NLL up to that extrapolation
    over the first step (1 - abar_1 = 4e-5 here) and the interpolation (see above)."""
    x0 = _data(100)
    net = _oracle(schedule, prediction="mean", untrained_below=1)
    out = ode_nll(Denoiser(net, schedule, prediction="mean"), x0, rtol=1e-6, atol=1e-6)
    assert float((out.nll - _true_nll(x0)).abs().max()) < 1e-3 * x0.shape[1]
    assert net.time_dtypes == {torch.long}
