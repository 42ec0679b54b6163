"""Score matching: the analytic score of Gaussian data minimizes every objective, sliced and
exact losses agree in expectation, and the two ways of computing v^T (grad s) v agree."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difflab.losses.score_matching import (
    DenoisingObjective,
    ExactObjective,
    NCSNObjective,
    SlicedObjective,
    denoising_score_matching,
    exact_score_matching,
    geometric_sigmas,
    ncsn_loss,
    sample_projections,
    sliced_score_matching,
)
from difflab.models import ScoreMLP
from oracles import gaussian_data as diag_gaussian_data

D = 3
MU = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
CHOL = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.7, 0.0], [-0.3, 0.2, 0.5]], dtype=torch.float64)
COV = CHOL @ CHOL.T


def gaussian_data(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(n, D, generator=g, dtype=torch.float64) @ CHOL.T


class LinearScore(nn.Module):
    """s(x) = A x + b; the score of N(mu, C) is A = -C^{-1}, b = C^{-1} mu."""

    def __init__(self, cov: torch.Tensor, mu: torch.Tensor) -> None:
        super().__init__()
        precision = torch.linalg.inv(cov)
        self.A = nn.Parameter(-precision)
        self.b = nn.Parameter(precision @ mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A.T + self.b


class LevelLinearScore(nn.Module):
    """One linear score per noise level: at sigma_i the score of N(mu, C + sigma_i^2 I)."""

    def __init__(self, sigmas: torch.Tensor, cov: torch.Tensor, mu: torch.Tensor) -> None:
        super().__init__()
        self.log_sigmas = sigmas.double().log()
        eye = torch.eye(cov.shape[0], dtype=cov.dtype)
        precisions = torch.stack([torch.linalg.inv(cov + s**2 * eye) for s in sigmas.double()])
        self.A = nn.Parameter(-precisions)
        self.b = nn.Parameter(precisions @ mu)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        idx = (sigma.double().log()[:, None] - self.log_sigmas[None]).abs().argmin(dim=1)
        return torch.einsum("bij,bj->bi", self.A[idx], x) + self.b[idx]


def grad_norm(model: nn.Module, loss: torch.Tensor) -> float:
    model.zero_grad()
    loss.mean().backward()
    return math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))


def perturbed(model: nn.Module, factor: float = 1.2) -> nn.Module:
    with torch.no_grad():
        model.A.mul_(factor)
    return model


def test_exact_loss_gradient_vanishes_at_the_empirical_gaussian_score():
    """The exact objective is quadratic in (A, b) for a linear score; its minimiser on a sample
    is exactly the score of the Gaussian with the sample's mean and (biased) covariance, so the
    gradient there is zero to float64 rounding."""
    x = gaussian_data(5000)
    m = x.mean(0)
    cov = (x - m).T @ (x - m) / x.shape[0]
    model = LinearScore(cov, m)
    assert grad_norm(model, ExactObjective()(model, x).loss) < 1e-10
    assert grad_norm(perturbed(model), ExactObjective()(model, x).loss) > 0.1


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_loss_gradient_vanishes_at_the_gaussian_score(projection, variance_reduced):
    """At the empirical Gaussian score the sliced gradient is only Monte Carlo noise over the
    projections: with 200,000 (x, v) pairs it is under 3% of the gradient at A * 1.2."""
    x = gaussian_data(5000)
    m = x.mean(0)
    cov = (x - m).T @ (x - m) / x.shape[0]
    model = LinearScore(cov, m)
    objective = SlicedObjective(
        n_projections=40, projection=projection, variance_reduced=variance_reduced
    )
    g = torch.Generator().manual_seed(1)
    at_optimum = grad_norm(model, objective(model, x, generator=g).loss)
    elsewhere = grad_norm(perturbed(model), objective(model, x, generator=g).loss)
    assert at_optimum < 0.03 * elsewhere


def test_dsm_gradient_vanishes_at_the_noised_gaussian_score():
    """DSM at sigma is minimised by the score of N(mu, C + sigma^2 I); with 200,000 draws the
    gradient there is under 3% of the gradient at A * 1.2."""
    sigma = 0.5
    x = gaussian_data(200_000)
    model = LinearScore(COV + sigma**2 * torch.eye(D, dtype=torch.float64), MU)
    objective = DenoisingObjective(sigma)
    at_optimum = grad_norm(
        model, objective(model, x, generator=torch.Generator().manual_seed(2)).loss
    )
    elsewhere = grad_norm(
        perturbed(model), objective(model, x, generator=torch.Generator().manual_seed(2)).loss
    )
    assert at_optimum < 0.03 * elsewhere
    # and not at the noise-free score: DSM targets the noised density
    wrong = LinearScore(COV, MU)
    off = grad_norm(wrong, objective(wrong, x, generator=torch.Generator().manual_seed(2)).loss)
    assert off > 10 * at_optimum


def test_ncsn_gradient_vanishes_at_the_per_level_gaussian_scores():
    sigmas = geometric_sigmas(2.0, 0.05, 5)
    x = gaussian_data(200_000)
    model = LevelLinearScore(sigmas, COV, MU)
    objective = NCSNObjective(sigmas)
    at_optimum = grad_norm(
        model, objective(model, x, generator=torch.Generator().manual_seed(3)).loss
    )
    elsewhere = grad_norm(
        perturbed(model), objective(model, x, generator=torch.Generator().manual_seed(3)).loss
    )
    assert at_optimum < 0.03 * elsewhere


def test_small_network_learns_the_gaussian_score_with_sliced_score_matching():
    """A score MLP trained with SSM-VR on N(mu, C) recovers -C^{-1}(x - mu) near the data
    (relative error under 15% within one standard deviation of the mean)."""
    torch.manual_seed(0)
    x = gaussian_data(4096).float()
    model = ScoreMLP(D, width=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    objective = SlicedObjective(n_projections=1, variance_reduced=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(400):
        idx = torch.randint(0, x.shape[0], (256,), generator=g)
        loss = objective(model, x[idx], generator=g).loss.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe = gaussian_data(2000, seed=9).float()
    probe = probe[((probe - MU.float()) @ torch.linalg.inv(CHOL.float()).T).norm(dim=1) < 1.0]
    truth = -(probe - MU.float()) @ torch.linalg.inv(COV.float()).T
    with torch.no_grad():
        err = (model(probe) - truth).norm(dim=1).mean() / truth.norm(dim=1).mean()
    assert err < 0.15


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduced", [False, True])
def test_sliced_and_exact_agree_in_expectation(projection, variance_reduced):
    """E_v[sliced] = exact per example (E[v v^T] = I). 20,000 projections per example; the
    difference is within 5 Monte Carlo standard errors of the projections' spread."""
    torch.manual_seed(0)
    model = ScoreMLP(4, width=16, depth=2)
    x = torch.randn(6, 4)
    exact = exact_score_matching(model, x).loss.detach()
    m = 20_000
    values = sliced_score_matching(
        model,
        x.repeat(m, 1),
        projection=projection,
        variance_reduced=variance_reduced,
        generator=torch.Generator().manual_seed(5),
    ).loss.detach()
    values = values.reshape(m, 6)
    se = values.std(0) / math.sqrt(m)
    assert ((values.mean(0) - exact).abs() <= 5 * se + 1e-6).all()


def test_sliced_norm_term_squares_the_projection():
    """The norm term is 1/2 (v^T s)^2, a scalar per example, not a sum of squared products."""
    score = lambda x: 2 * x  # noqa: E731 - grad s = 2 I, so v^T (grad s) v = 2 |v|^2
    x = torch.tensor([[1.0, 2.0]])
    g = torch.Generator().manual_seed(0)
    v = sample_projections(x, generator=torch.Generator().manual_seed(0))
    out = sliced_score_matching(score, x, generator=g)
    assert out.terms["norm"].item() == pytest.approx(0.5 * float((v * 2 * x).sum()) ** 2, rel=1e-6)
    assert out.terms["jacobian"].item() == pytest.approx(2 * float((v**2).sum()), rel=1e-6)


def test_jvp_and_double_backward_agree_in_values_and_gradients():
    torch.manual_seed(0)
    model = ScoreMLP(5, width=16, depth=2)
    x = torch.randn(7, 5)
    results = []
    for method in ("jvp", "double_backward"):
        out = sliced_score_matching(
            model, x, n_projections=3, method=method, generator=torch.Generator().manual_seed(1)
        )
        model.zero_grad()
        out.loss.sum().backward()
        results.append((out.loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_exact_trace_matches_the_full_jacobian():
    torch.manual_seed(0)
    model = ScoreMLP(4, width=16, depth=2)
    x = torch.randn(3, 4)
    out = exact_score_matching(model, x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda y: model(y[None])[0], x[i])
        assert out.terms["trace"][i].item() == pytest.approx(float(jac.trace()), rel=1e-5, abs=1e-6)


def test_losses_work_on_image_shaped_data():
    """(B, C, H, W): s(x) = 2 tanh(x) - x^3 has trace sum(2 sech^2 x - 3 x^2)."""

    def score(x, sigma=None):
        return 2 * torch.tanh(x) - x**3

    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    exact = exact_score_matching(score, x)
    trace = (2 / torch.cosh(x) ** 2 - 3 * x**2).reshape(4, -1).sum(1)
    torch.testing.assert_close(exact.terms["trace"], trace, rtol=1e-5, atol=1e-5)
    sliced = sliced_score_matching(score, x, n_projections=2, generator=torch.Generator())
    assert sliced.loss.shape == (4,)
    assert denoising_score_matching(score, x, 0.1).shape == (4,)
    assert ncsn_loss(score, x, geometric_sigmas(1.0, 0.1, 3)).loss.shape == (4,)


def _dsm_closed_form(A, b, mu, var, sigma):
    """E[DSM loss] of the linear score s(y) = A y + b on x ~ N(mu, diag(var)) at level sigma.
    With y = x + sigma z, s(y) + z / sigma = (A x + b) + (sigma A + I / sigma) z, two independent
    parts, the second of mean zero, so the expected 1/2 ||.||^2 is
    1/2 (||A mu + b||^2 + tr(A C A^T) + ||sigma A + I / sigma||_F^2) with C = diag(var)."""
    eye = torch.eye(A.shape[0], dtype=A.dtype)
    M = sigma * A + eye / sigma
    return 0.5 * (((A @ mu + b) ** 2).sum() + (A**2 * var).sum() + (M**2).sum())


@pytest.mark.parametrize("which", ["noised_optimum", "noise_free_score", "arbitrary"])
def test_dsm_expected_loss_of_a_linear_score_is_closed_form(which):
    """The DSM loss of a known linear score has the closed-form expectation above (derived
    from the model, not from the loss's target); 4 standard errors over 200,000 draws. The
    noised-data optimum -(C + sigma^2 I)^-1 (y - mu) has the smallest value of the three."""
    sigma, dim = 0.5, 3
    mu = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    var = torch.tensor([0.8, 0.3, 1.5], dtype=torch.float64)
    x = diag_gaussian_data(200_000, mu, var, dim=dim, seed=4)
    scores = {
        "noised_optimum": -torch.diag(1 / (var + sigma**2)),
        "noise_free_score": -torch.diag(1 / var),
        "arbitrary": torch.tensor(
            [[-1.0, 0.3, 0.0], [0.2, -0.5, 0.4], [-0.1, 0.0, -2.0]], dtype=torch.float64
        ),
    }
    values = {k: float(_dsm_closed_form(A, -A @ mu, mu, var, sigma)) for k, A in scores.items()}
    assert values["noised_optimum"] == min(values.values())
    A = scores[which]
    b = -A @ mu + (0.3 if which == "arbitrary" else 0.0)
    loss = denoising_score_matching(
        lambda y: y @ A.T + b, x, sigma, generator=torch.Generator().manual_seed(5)
    )
    expected = _dsm_closed_form(A, b, mu, var, sigma)
    se = float(loss.std()) / math.sqrt(loss.numel())
    assert abs(float(loss.mean() - expected)) < 4 * se


def test_dsm_expected_loss_on_images_with_per_example_sigmas():
    """(B, C, H, W) data N(mu_c, var_c) per channel, the score s(y) = a_c y + b_c per channel
    and a (B,) tensor of levels alternating 0.3 and 1.0: per example the expectation is the
    closed form above for a diagonal A, summed over H W pixels, at that example's sigma; the
    mean of loss minus its own expectation is zero within 4 standard errors (60,000 images)."""
    mu, var = [0.5, -1.0], [0.4, 2.0]
    x = diag_gaussian_data(60_000, mu, var, shape=(2, 3, 2), seed=6)
    sigma = torch.tensor([0.3, 1.0], dtype=torch.float64).repeat(30_000)
    a = torch.tensor([-1.5, -0.4], dtype=torch.float64).reshape(1, 2, 1, 1)
    b = torch.tensor([0.2, -0.1], dtype=torch.float64).reshape(1, 2, 1, 1)
    loss = denoising_score_matching(
        lambda y, level: a * y + b, x, sigma, generator=torch.Generator().manual_seed(7)
    )
    assert loss.shape == (60_000,)
    mu_c, var_c = torch.tensor(mu).reshape(1, 2, 1, 1), torch.tensor(var).reshape(1, 2, 1, 1)
    for s in (0.3, 1.0):
        # the closed form with A = diag(a_c): per pixel 1/2 ((a mu + b)^2 + a^2 var + (s a + 1/s)^2)
        per_pixel = 0.5 * ((a * mu_c + b) ** 2 + a**2 * var_c + (s * a + 1 / s) ** 2)
        expected = float(per_pixel.expand(1, 2, 3, 2).sum())
        rows = loss[sigma == s]
        se = float(rows.std()) / math.sqrt(rows.numel())
        assert abs(float(rows.mean()) - expected) < 4 * se


def test_geometric_ladder_and_bad_ladders():
    sigmas = geometric_sigmas(1.0, 0.01, 3)
    torch.testing.assert_close(sigmas, torch.tensor([1.0, 0.1, 0.01]))
    for args in ((0.01, 1.0, 3), (1.0, 0.0, 3), (1.0, 0.1, 1)):
        with pytest.raises(ValueError, match="sigma ladder"):
            geometric_sigmas(*args)
    with pytest.raises(ValueError, match="loss.sigma"):
        DenoisingObjective(0.0)
