"""The probability-flow ODE likelihood on any process (likelihood.noise_level_ode_nll), against
the exact NLL of Gaussian data N(MU, S2 I) under the optimal denoiser of every formulation.

Tolerance 1e-3 nats per dimension, as for the discrete ODE (tests/test_likelihood.py): the
solver's (rtol 1e-6) and the start at the smallest level (the data convolved with sigma_min:
about D sigma_min^2 / (2 S2) < 1e-4 nats) are well below it. The prior N(0, prior_std^2) at the
top matches the marginal's variance; its mean alpha_max MU is not matched, which moves each
point's NLL by about MU alpha_max z / sigma_bar_max (z the point's standardized end state:
0.004 z for EDM at sigma_max = 80) but its average only at second order (KL of the means,
D (MU / 80)^2 / 2 ~ 1e-5): per point the data are centred (the prior is then exact), with
MU = 0.3 the mean over the points is compared.
"""

from __future__ import annotations

import pytest
import torch

from difflab.continuous import EDMProcess, FlowProcess, VPProcess
from difflab.denoiser import Denoiser
from difflab.formulation import ContinuousDenoiser, Formulation
from difflab.likelihood import _discrete_ode_nll, noise_level_ode_nll, ode_nll
from difflab.schedules import NoiseSchedule
from oracles import ContinuousGaussianOracle, GaussianOracle, gaussian_data, gaussian_nll

MU, S2 = 0.3, 0.25

FORMULATIONS = {
    "edm": Formulation(EDMProcess(), "edm", "log_sigma", 0.5),
    "flow": Formulation(FlowProcess(), "velocity", "time", 0.5),
    "vp-linear-eps": Formulation(VPProcess("linear"), "eps", "time", 0.5),
    "vp-cosine-v": Formulation(VPProcess("cosine"), "v", "time", 0.5),
}


@pytest.mark.parametrize("shape", [(2,), (1, 2, 2)])
@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_ode_nll_of_the_optimal_model_is_the_true_nll(name, shape):
    form = FORMULATIONS[name]
    D = torch.Size(shape).numel()
    for mu in (0.0, MU):
        denoiser = ContinuousDenoiser(ContinuousGaussianOracle(form, mu, S2), form)
        x0 = gaussian_data(16, mu, S2, shape=shape, seed=1)
        result = ode_nll(denoiser, x0, rtol=1e-6, atol=1e-6)
        err = result.nll - gaussian_nll(x0, mu, S2)
        worst = err.abs().max() if mu == 0 else err.mean().abs()
        assert float(worst) < 1e-3 * D, (name, mu, err.tolist())
        assert result.nfe > 0


def test_the_noise_level_frame_on_a_discrete_schedule_matches_the_discrete_integration():
    """The generic integration (y = x / alpha in log sigma_bar) on the discrete cosine process
    gives the discrete integration's NLL (its own variable u = -log alpha_bar), and both the
    true NLL, to the tolerance above."""
    schedule = NoiseSchedule.from_name("cosine", 1000)
    denoiser = Denoiser(GaussianOracle(schedule, MU, S2), schedule, continuous_time=True)
    x0 = gaussian_data(16, MU, S2, seed=2)
    generic = noise_level_ode_nll(denoiser, x0, rtol=1e-6, atol=1e-6).nll
    discrete = _discrete_ode_nll(denoiser, x0, rtol=1e-6, atol=1e-6).nll
    assert float((generic - discrete).abs().max()) < 2e-3
    assert float((generic - gaussian_nll(x0, MU, S2)).abs().max()) < 2e-3


def test_hutchinson_estimate_is_unbiased_on_a_continuous_model():
    """Above exact_max_dim the divergence is v^T J v with Rademacher v: the mean over 64
    examples of the same point matches the exact NLL to 4 standard errors."""
    form = FORMULATIONS["flow"]
    denoiser = ContinuousDenoiser(ContinuousGaussianOracle(form, MU, S2), form)
    x0 = gaussian_data(1, MU, S2, dim=4, seed=3).repeat(64, 1)
    exact = noise_level_ode_nll(denoiser, x0[:1], rtol=1e-6, atol=1e-6).nll
    gen = torch.Generator().manual_seed(0)
    est = noise_level_ode_nll(denoiser, x0, exact_max_dim=2, generator=gen).nll
    se = float(est.std() / 8)
    assert abs(float(est.mean() - exact)) < 4 * se + 1e-3, (float(est.mean()), float(exact), se)
