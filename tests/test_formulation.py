"""Continuous formulations (formulation.py): EDM's preconditioning against its formulas and its
design properties, the conversions of every prediction, and the ContinuousDenoiser on the
optimal network of Gaussian data (tests/oracles.py)."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.continuous import EDMProcess, FlowProcess, VEProcess, VPProcess
from difflab.formulation import (
    ContinuousDenoiser,
    Formulation,
    edm_coefficients,
    edm_weight,
)
from oracles import ContinuousGaussianOracle

MU, VAR = 0.3, 0.49  # Gaussian data N(0.3, 0.7^2) in every coordinate

FORMULATIONS = {
    "edm": Formulation(EDMProcess(), "edm", "log_sigma", 0.7),
    "flow": Formulation(FlowProcess(), "velocity", "time", 0.7),
    "vp-eps": Formulation(VPProcess("linear"), "eps", "time", 0.7),
    "vp-v": Formulation(VPProcess("cosine"), "v", "time", 0.7),
    "ve-x0": Formulation(VEProcess(), "x0", "time", 0.7),
    "edm-on-vp": Formulation(VPProcess("linear"), "edm", "log_sigma", 0.5),
}

SHAPES = [(64, 2), (8, 2, 3, 3)]


def test_edm_coefficients_equal_their_formulas():
    """Karras et al. 2022, Table 1, at sigma = sigma_data (c_skip = 1/2, c_out = sd / sqrt 2,
    c_in = 1 / (sd sqrt 2)) and the weight lambda = 1 / c_out^2 at every level."""
    sd = 0.5
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor([sd], dtype=torch.float64), sd)
    assert float(c_skip) == pytest.approx(0.5, rel=1e-15)
    assert float(c_out) == pytest.approx(sd / math.sqrt(2), rel=1e-15)
    assert float(c_in) == pytest.approx(1 / (sd * math.sqrt(2)), rel=1e-15)
    assert float(c_noise) == pytest.approx(math.log(sd) / 4, rel=1e-15)
    sigma = torch.tensor([0.002, 0.1, 1.0, 80.0], dtype=torch.float64)
    _, c_out, _, _ = edm_coefficients(sigma, sd)
    assert torch.allclose(edm_weight(sigma, sd) * c_out**2, torch.ones(4, dtype=torch.float64))


def test_edm_preconditioning_gives_unit_variance_input_and_target():
    """EDM's design (their App. B.6): for data of std sd, the network input c_in y and the
    effective target (x0 - c_skip y) / c_out have unit variance at every noise level (exact
    from the coefficients: Var[(1 - c_skip) x0 - c_skip sigma n] = c_out^2)."""
    sd = 0.7
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)
    c_skip, c_out, c_in, _ = edm_coefficients(sigma, sd)
    assert torch.allclose(c_in**2 * (sd**2 + sigma**2), torch.ones_like(sigma), rtol=1e-14)
    target_var = ((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2
    assert torch.allclose(target_var, torch.ones_like(sigma), rtol=1e-12)


def _noisy(form: Formulation, shape, t: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = MU + math.sqrt(VAR) * torch.randn(shape, generator=g, dtype=torch.float64)
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    a, s = form.process.alpha(t), form.process.sigma(t)
    return x0, eps, a * x0 + s * eps


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_the_denoiser_recovers_the_optimal_estimates(name, shape):
    """On the optimal network, x0_hat = E[x0 | x_t], eps_hat = E[eps | x_t] and the score is
    that of q(x_t) = N(a mu, a^2 var + s^2), at times across the process (float64 round-off;
    1e-9 relative: round-off of the conversions)."""
    form = FORMULATIONS[name]
    denoiser = ContinuousDenoiser(ContinuousGaussianOracle(form, MU, VAR), form)
    process = form.process
    for t in (process.t_min * 10, 0.3 * process.t_max, process.t_max):
        _, _, x_t = _noisy(form, shape, t)
        a, s = process.alpha(t), process.sigma(t)
        total = a**2 * VAR + s**2
        out = denoiser(x_t, t)
        assert torch.allclose(out.x0, MU + a * VAR * (x_t - a * MU) / total, rtol=1e-9, atol=1e-9)
        assert torch.allclose(out.eps, s * (x_t - a * MU) / total, rtol=1e-9, atol=1e-9)
        score = denoiser.score(x_t, t)
        assert torch.allclose(score, -(x_t - a * MU) / total, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_a_network_that_outputs_the_target_is_exact(name):
    """The losses regress the network's output to ``target(x0, eps, t)``: a network that
    returns it, per example with its own t, makes predict() give back x0 and eps exactly."""
    form = FORMULATIONS[name]
    process = form.process
    t = torch.linspace(process.t_min * 10, process.t_max, 64, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 2, generator=g, dtype=torch.float64)
    alpha, sigma = process.alpha_sigma(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * eps
    target = form.target(x0, eps, t)

    class Perfect(torch.nn.Module):
        def forward(self, x_in, noise):
            return target

    pred = form.predict(Perfect(), x_t, t)
    assert torch.allclose(pred.x0, x0, rtol=1e-9, atol=1e-9)
    assert torch.allclose(pred.eps, eps, rtol=1e-9, atol=1e-9)


def test_the_prior_matches_the_marginal_variance():
    """prior_std(t)^2 = alpha^2 sd^2 + sigma^2, the variance of q(x_t) for data of std sd;
    at EDM's top (80) it is sigma_max to 4e-5, EDM's N(0, sigma_max^2 I)."""
    form = FORMULATIONS["flow"]
    t = 0.875
    assert form.prior_std(t) ** 2 == pytest.approx(0.125**2 * 0.49 + 0.875**2, rel=1e-14)
    edm = FORMULATIONS["edm"]
    assert edm.prior_std(80.0) == pytest.approx(80.0, rel=4e-5)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_a_non_positive_sigma_data_is_an_error(bad):
    with pytest.raises(ValueError, match="sigma_data .* must be a positive number"):
        Formulation(EDMProcess(), "edm", "log_sigma", bad)


def test_a_learned_variance_is_an_error():
    with pytest.raises(ValueError, match="learns no variance"):
        ContinuousDenoiser(torch.nn.Identity(), FORMULATIONS["edm"], variance="learned_range")
