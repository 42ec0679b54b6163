"""The training objectives built on the bound: VLBObjective (losses/vlb.py) and the 2015 form
(losses/sohl_dickstein.py), checked against closed forms on Gaussian data.

Data N(mu, diag(s^2)) per channel; the model is tests/oracles.py's GaussianOracle with its
optimal log-variance (model.variance = "learned"), for which p(x_{t-1} | x_t) is the exact
reverse kernel q(x_{t-1} | x_t). Then p(x_{0:T}) = pi(x_T) q(x_{0:T}) / q(x_T), pi = N(0, I),
so the bound per example is exactly

    E[bound | x_0] = -log q(x_0) + E_{q(x_T | x_0)}[log q(x_T) - log pi(x_T)]

(``exact_bound`` below): with a = sqrt(abar_T), b^2 = 1 - abar_T, V = a^2 s^2 + b^2, the second
term is sum_dims [-log(V) / 2 - (b^2 + a^2 (x_0 - mu)^2) / (2 V) + (b^2 + a^2 x_0^2) / 2].

Tolerances. Identities that hold pathwise (same t, same noise) are compared at rtol 1e-9 in
float64: sums of at most T = 40 float64 terms, the schedule's float32 tables read identically by
both sides. Where a closed form reads abar_T or beta_1 from a float32 table and the library
another table (log(1 - abar_T), log beta_1), the two differ by float32 rounding, 2^-24 = 6e-8
relative per entry: rtol 1e-6. Expectations over the noise are exact sums over the three-point
Gauss-Hermite rule (oracles.GH3_NODES: every term of the bound of these oracles is a sum over
coordinates of quadratics in the noise, because their means are linear in x_t and their
variances do not depend on it), with ``difflab.forward.randn_like`` replaced by the nodes.
Against the exact bound the only error is then the float32 tables, read through different
formulas (sqrt tables in q_sample, abar in the oracle) and amplified up to 1 / sqrt(abar_T),
about 800, when x_0 is recovered at the last steps: 5e-7 relative observed, tolerance 1e-5,
still 400 times below the effect of a 1% error in the data variance (4e-3 relative).
Monte Carlo means are compared with 4 standard errors computed from the same draws (a false
alarm rate of 6e-5 for a Gaussian mean; the seeds are fixed, so the tests are deterministic).
"""

from __future__ import annotations

import math

import pytest
import torch

import difflab.forward
from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.losses.sohl_dickstein import SohlDicksteinObjective, entropy_terms
from difflab.losses.vlb import VLBObjective, full_bound, sum_flat, vlb_term
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler
from oracles import (
    FixedTimesteps,
    GaussianOracle,
    gaussian_data,
    gaussian_nll,
    node_average,
    node_noise,
    node_rows,
)

T = 40
# (per-example shape, mu per channel, s^2 per channel): vectors (B, 2) and images (B, C, H, W)
CASES = {
    "vector": ((2,), [0.3, -0.5], [0.25, 0.6]),
    "image": ((2, 3, 3), [0.3, -0.5], [0.25, 0.6]),
}


@pytest.fixture(scope="module")
def sch() -> NoiseSchedule:
    return NoiseSchedule.from_name("cosine", T)


def _data(case: str, n: int, seed: int = 0) -> torch.Tensor:
    shape, mu, var = CASES[case]
    return gaussian_data(n, mu, var, shape=shape, seed=seed)


def _oracle(sch: NoiseSchedule, case: str, **kw) -> GaussianOracle:
    _, mu, var = CASES[case]
    return GaussianOracle(sch, mu, var, variance_half="optimal", **kw)


def _per_channel(values, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).reshape(1, -1, *([1] * (x.dim() - 2)))


def prior_closed_form(sch: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(N(a x_0, b^2) || N(0, 1)) summed over dimensions, a^2 = abar_T, b^2 = 1 - a^2."""
    abar = sch.alphas_cumprod[-1].double()
    return sum_flat(0.5 * ((1 - abar) + abar * x0.double() ** 2 - 1 - torch.log(1 - abar)))


def exact_bound(sch: NoiseSchedule, x0: torch.Tensor, mu, var) -> torch.Tensor:
    """E[bound | x_0] of the exact reverse process with the N(0, I) prior (module doc), nats."""
    x0 = x0.double()
    a2 = sch.alphas_cumprod[-1].double()
    b2 = 1 - a2
    mu, s2 = _per_channel(mu, x0), _per_channel(var, x0)
    V = a2 * s2 + b2
    mismatch = -0.5 * V.log() - (b2 + a2 * (x0 - mu) ** 2) / (2 * V) + (b2 + a2 * x0**2) / 2
    return gaussian_nll(x0, mu.reshape(-1), s2.reshape(-1)) + sum_flat(mismatch)


def _bits(nats: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return nats / (x0[0].numel() * math.log(2.0))


def _assert_mean_zero(diff: torch.Tensor, k: float = 4.0) -> None:
    se = float(diff.std()) / math.sqrt(diff.numel())
    assert abs(float(diff.mean())) < k * se, (float(diff.mean()), se)


# --- VLBObjective --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_vlb_objective_at_fixed_t_is_T_w_L_t_plus_L_T_in_bits(sch, case):
    """loss_i = (T w_i L_{t_i} + L_T) / (D log 2), with L_t the bound's term at the same t and
    noise and L_T in closed form; t covers the decoder (0), the first KL and the last step."""
    x0 = _data(case, 6)
    t = torch.tensor([0, 1, 2, T // 2, T - 2, T - 1])
    w = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5, 3.0], dtype=torch.float64)
    model = _oracle(sch, case)
    sampler = FixedTimesteps(T, t, w)
    out = VLBObjective(sch, sampler, variance="learned")(
        model, x0, generator=torch.Generator().manual_seed(5)
    )
    noise = randn_like(x0, torch.Generator().manual_seed(5))  # the objective's only draw
    L_t = vlb_term(model, sch, x0, t, variance="learned", noise=noise)
    expected = _bits(T * w * L_t + prior_closed_form(sch, x0), x0)
    assert out.loss.shape == (6,)
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=0)  # float32 log(1-abar_T)
    torch.testing.assert_close(out.terms["vlb_t"], _bits(L_t, x0), rtol=1e-9, atol=0)
    # importance sampling records the unweighted per-t term
    (rec_t, rec_loss), *_ = sampler.recorded
    assert torch.equal(rec_t, t)
    torch.testing.assert_close(rec_loss, _bits(L_t, x0), rtol=1e-9, atol=0)


@pytest.mark.parametrize("case", CASES)
def test_vlb_objective_averaged_over_every_t_is_the_full_bound(sch, case):
    """Sum over t with uniform weights 1/T of the loss at each t, with the noise full_bound
    draws at that t (one draw per call, in full_bound's order), is full_bound's total / (D log 2)
    per example (pathwise). rtol 2e-6: the objective forms p(x_{t-1} | x_t) from the float32
    tables, full_bound through the Denoiser from the float64 noise process (5e-7 observed)."""
    x0 = _data(case, 8, seed=1)
    model = _oracle(sch, case)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        losses = torch.stack(
            [
                VLBObjective(sch, FixedTimesteps(T, k), variance="learned")(
                    model, x0, generator=gen
                ).loss
                for k in range(T)
            ]
        )
        denoiser = Denoiser(model, sch, variance="learned")
        full = full_bound(denoiser, x0, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(losses.mean(0), _bits(full.total, x0), rtol=2e-6, atol=0)


def _quadrature_noise(monkeypatch) -> None:
    """Every noise draw of q_sample becomes the three Gauss-Hermite node rows (module doc)."""
    monkeypatch.setattr(difflab.forward, "randn_like", lambda x, generator=None: node_noise(x))


@pytest.mark.parametrize("case", CASES)
def test_vlb_objective_expectation_is_the_exact_bound_of_the_optimal_model(sch, case, monkeypatch):
    """E_t E_noise[loss] = exact bound / (D log 2), t uniform (the mean over all T steps) and the
    noise integrated exactly; rtol 1e-5 (module doc). A 1% error in the oracle's data variance
    moves it by 4e-3 relative: the check can fail."""
    _quadrature_noise(monkeypatch)
    x0 = _data(case, 10, seed=1)
    _, mu, var = CASES[case]
    model = _oracle(sch, case)
    with torch.no_grad():
        losses = torch.stack(
            [
                VLBObjective(sch, FixedTimesteps(T, k), variance="learned")(
                    model, node_rows(x0)
                ).loss
                for k in range(T)
            ]
        )
    expected = _bits(exact_bound(sch, x0, mu, var), x0)
    torch.testing.assert_close(node_average(losses.mean(0)), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("method", ["uniform", "importance"])
def test_vlb_objective_with_a_real_sampler_is_unbiased_for_the_exact_nll(sch, method):
    """With t drawn (uniformly, or by importance sampling after its warm-up, weights 1 / (T p_t))
    the batch mean of the loss estimates the exact bound: 4 standard errors over 200,000 rows
    of one x_0 (i.i.d. given x_0; the standard error is 1.4e-2 bits with importance sampling,
    4e-2 bits uniform, against a bound of 0.72 bits per dimension)."""
    case = "vector"
    x0 = _data(case, 1, seed=2).repeat(200_000, 1)
    model = _oracle(sch, case)
    sampler = TimestepSampler(T, method, history=10)
    objective = VLBObjective(sch, sampler, variance="learned")
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        if method == "importance":
            objective(model, x0[:4000], generator=gen)  # about 100 losses per t: warm
            assert sampler.warmed_up and not torch.allclose(
                sampler.probabilities(), torch.full((T,), 1.0 / T, dtype=torch.float64)
            )
        loss = objective(model, x0, generator=gen).loss
    _, mu, var = CASES[case]
    _assert_mean_zero(loss - _bits(exact_bound(sch, x0[:1], mu, var), x0[:1]))


# --- the 2015 objective --------------------------------------------------------------------


def fixed_ends_closed_form(sch: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """E[L_T + L_0 | x_0] with the fixed last step p(x_0 | x_1) = N(sqrt(alpha_1) x_1, beta_1):
    x_0 - sqrt(alpha_1) x_1 = beta_1 x_0 - sqrt(alpha_1 beta_1) eps, so
    E[-log p(x_0 | x_1)] = sum_dims (log(2 pi beta_1) + beta_1 x_0^2 + alpha_1) / 2."""
    beta1 = sch.betas[0].double()
    decoder = sum_flat(0.5 * (torch.log(2 * math.pi * beta1) + beta1 * x0**2 + (1 - beta1)))
    return prior_closed_form(sch, x0) + decoder


@pytest.mark.parametrize("case", CASES)
def test_sohl_dickstein_at_fixed_t_and_its_report_in_bits(sch, case):
    """bound_i = (T - 1) w_i KL_{k_i + 1} + E[L_T + L_0 | x_0] (closed form above), and the loss
    is (bound / D - h(1)) / log 2 with h(1) = log(2 pi e) / 2 the entropy of N(0, 1)."""
    x0 = _data(case, 5)
    k = torch.tensor([0, 1, 7, T - 3, T - 2])  # learned steps t = k + 1 in 1..T-1
    w = torch.tensor([1.0, 0.5, 2.0, 1.5, 0.75], dtype=torch.float64)
    _, mu, var = CASES[case]
    model = GaussianOracle(sch, mu, var, prediction="mean", variance_half="optimal")
    out = SohlDicksteinObjective(sch, FixedTimesteps(T - 1, k, w))(
        model, x0, generator=torch.Generator().manual_seed(4)
    )
    noise = randn_like(x0, torch.Generator().manual_seed(4))
    kl = vlb_term(model, sch, x0, k + 1, prediction="mean", variance="learned", noise=noise)
    bound = (T - 1) * w * kl + fixed_ends_closed_form(sch, x0)
    torch.testing.assert_close(out.terms["bound_nats"], bound, rtol=1e-6, atol=0)  # float32 logs
    torch.testing.assert_close(out.terms["kl"], kl, rtol=1e-9, atol=0)
    D = x0[0].numel()
    bits = (bound / D - 0.5 * math.log(2 * math.pi * math.e)) / math.log(2)
    torch.testing.assert_close(out.loss, bits, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_sohl_dickstein_expectation_over_t_is_the_full_bound(sch, case, monkeypatch):
    """The 2015 form's docstring: in expectation it equals full_bound's total for the same model.
    The mean oracle is untrained at t = 0 (zeros), where the fixed last step replaces it; t is
    averaged over the T - 1 learned steps, the noise integrated exactly (module doc), and the
    closed-form ends E[L_T + L_0 | x_0] match entropy_terms. rtol 1e-6: float32 tables read by
    both sides alike, except log beta_1 and log(1 - abar_T) (module doc); 1e-7 observed."""
    x0 = _data(case, 10, seed=3)
    _, mu, var = CASES[case]
    model = GaussianOracle(
        sch, mu, var, prediction="mean", variance_half="optimal", untrained_below=1
    )
    torch.testing.assert_close(
        entropy_terms(sch, x0), fixed_ends_closed_form(sch, x0), rtol=1e-6, atol=0
    )
    _quadrature_noise(monkeypatch)
    xr = node_rows(x0)
    with torch.no_grad():
        bounds = torch.stack(
            [
                SohlDicksteinObjective(sch, FixedTimesteps(T - 1, k))(model, xr).terms["bound_nats"]
                for k in range(T - 1)
            ]
        )
        full = full_bound(Denoiser(model, sch, prediction="mean", variance="learned"), xr)
    torch.testing.assert_close(
        node_average(bounds.mean(0)), node_average(full.total), rtol=1e-6, atol=0
    )
    # the KL terms agree node by node; the ends only in expectation (full_bound's L_0 is random)
    torch.testing.assert_close(
        node_average(full.terms[:, 0] + full.prior),
        fixed_ends_closed_form(sch, x0),
        rtol=1e-6,
        atol=0,
    )
