"""Continuous noise processes (continuous.py) and the discrete process's inverse (noise.py):
their closed forms against independent derivations, their inverses, derivatives and the limits
that tie them to the discrete schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from difflab.continuous import EDMProcess, FlowProcess, VEProcess, VPProcess
from difflab.noise import DiscreteProcess
from difflab.schedules import NoiseSchedule

PROCESSES = {
    "vp-linear": VPProcess("linear"),
    "vp-cosine": VPProcess("cosine"),
    "ve": VEProcess(0.01, 50.0),
    "edm": EDMProcess(),
    "flow": FlowProcess(),
}


def _times(process, n: int = 25) -> list[float]:
    """Times spread over [t_min, t_max], geometrically (the processes' scales differ)."""
    return np.geomspace(process.t_min, process.t_max, n).tolist()


@pytest.mark.parametrize("name", list(PROCESSES))
def test_the_data_end_and_the_log_snr(name):
    process = PROCESSES[name]
    assert process.alpha(0.0) == 1.0 and process.sigma(0.0) == 0.0
    assert process.log_snr(0.0) == math.inf
    for t in _times(process):
        a, s = process.alpha(t), process.sigma(t)
        # the overridden log-SNRs (VP, EDM, flow) against the definition, to round-off
        assert process.log_snr(t) == pytest.approx(2 * math.log(a / s), rel=1e-9, abs=1e-9)
        assert process.sigma_bar(t) == pytest.approx(s / a, rel=1e-12)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_time_at_sigma_bar_inverts_sigma_bar(name):
    process = PROCESSES[name]
    for t in _times(process):
        back = process.time_at_sigma_bar(process.sigma_bar(t))
        # closed-form inverses: round-off only (1e-9 relative covers acos/sqrt near the ends)
        assert back == pytest.approx(t, rel=1e-9, abs=1e-12), (name, t, back)
        assert process.time_at_log_snr(process.log_snr(t)) == pytest.approx(t, rel=1e-8)
    assert process.time_at_sigma_bar(0.0) == 0.0
    if math.isfinite(process.sigma_bar_limit):
        with pytest.raises(ValueError, match="outside this process's range"):
            process.time_at_sigma_bar(2 * process.sigma_bar_limit)
    else:  # EDM's process has every level
        assert process.time_at_sigma_bar(2 * process.sigma_bar_max) == 2 * process.t_max


@pytest.mark.parametrize("name", list(PROCESSES))
def test_derivatives_match_central_differences(name):
    process = PROCESSES[name]
    for t in _times(process, 9)[1:-1]:
        h = 1e-4 * t
        t_ = torch.tensor([t - h, t, t + h], dtype=torch.float64)
        alpha, sigma = process.alpha_sigma(t_)
        d_alpha, d_sigma = process.derivatives(t_[1:2])
        # central differences: relative error (h / t)^2 = 1e-8 for power-like f, round-off 1e-16 / h
        fd_alpha = float(alpha[2] - alpha[0]) / (2 * h)
        fd_sigma = float(sigma[2] - sigma[0]) / (2 * h)
        assert float(d_alpha) == pytest.approx(fd_alpha, rel=1e-6, abs=1e-7), (name, t)
        assert float(d_sigma) == pytest.approx(fd_sigma, rel=1e-6, abs=1e-7), (name, t)


def test_vp_linear_is_the_integral_of_beta():
    """alpha(t) = exp(-int_0^t beta(s) ds / 2), beta linear from 0.1 to 20 (Song et al. 2021,
    Eq. 33), integrated numerically here; variance preserving."""
    process = VPProcess("linear", beta_min=0.1, beta_max=20.0)
    for t in (1e-3, 0.1, 0.5, 1.0):
        integral, _ = quad(lambda s: 0.1 + s * (20.0 - 0.1), 0, t)
        assert process.alpha(t) == pytest.approx(math.exp(-0.5 * integral), rel=1e-12)
        assert process.alpha(t) ** 2 + process.sigma(t) ** 2 == pytest.approx(1.0, abs=1e-14)


def test_vp_linear_is_the_limit_of_the_discrete_linear_schedule():
    """The discrete linear schedule with beta_t = beta(t / T) / T is the VP-SDE's Euler
    discretisation (Song et al. 2021, App. B): at time t its alpha_bar matches alpha(t)^2 to
    O(1/T); the error shrinks by 10 from T = 1000 to 10000."""
    process = VPProcess("linear")
    errors = []
    for T in (1000, 10_000):
        schedule = NoiseSchedule.from_name("linear", T, beta_start=0.1 / T, beta_end=20.0 / T)
        discrete = DiscreteProcess(schedule)
        errors.append(max(abs(discrete.alpha(t * T) / process.alpha(t) - 1) for t in (0.3, 0.7)))
    assert errors[0] < 2e-2 and 7 < errors[0] / errors[1] < 13, errors


def test_vp_cosine_matches_the_discrete_cosine_schedule():
    """alpha_bar_k of the discrete cosine schedule is f(k / T) / f(0) (Nichol & Dhariwal 2021,
    Eq. 17) until beta is clipped near T: the continuous process at k / T agrees to round-off."""
    process = VPProcess("cosine")
    discrete = DiscreteProcess(NoiseSchedule.from_name("cosine", 1000))
    for k in (1, 100, 500, 900):
        assert discrete.alpha(k) == pytest.approx(process.alpha(k / 1000), rel=1e-9)
    assert process.log_snr(process.t_max) == pytest.approx(-9.55, abs=0.01)  # DPM-Solver's end


def test_ve_and_edm_and_flow_closed_forms():
    ve, edm, flow = VEProcess(0.01, 50.0), EDMProcess(), FlowProcess()
    # VE: sigma(t)^2 + sigma_min^2 is the geometric sigma_min^2 (sigma_max / sigma_min)^(2t)
    for t in (0.1, 0.5, 1.0):
        assert ve.sigma(t) ** 2 + 0.01**2 == pytest.approx((0.01 * 5000**t) ** 2, rel=1e-12)
    assert edm.sigma(3.5) == 3.5 and edm.alpha(3.5) == 1.0
    assert flow.alpha(0.25) == 0.75 and flow.sigma(0.25) == 0.25
    assert flow.sigma_bar(flow.t_max) == pytest.approx(999.0)
    assert edm.sigma_bar_min == 0.002 and edm.sigma_bar_max == 80.0


def test_the_discrete_process_inverse():
    """time_at_sigma_bar inverts the discrete process's interpolated sigma_bar at fractional
    and integer paper times, and maps the data to 0."""
    process = DiscreteProcess(NoiseSchedule.from_name("cosine", 1000))
    for t in (1.0, 1.5, 17.25, 500.0, 999.9, 1000.0):
        assert process.time_at_sigma_bar(process.sigma_bar(t)) == pytest.approx(t, abs=1e-9)
    assert process.time_at_sigma_bar(0.0) == 0.0
    assert process.sigma_bar_min == pytest.approx(process.sigma_bar(1.0))


def test_transition_and_posterior_of_a_continuous_process_against_bayes():
    """q(x_s | x_t, x_0) on the flow process by brute force: for x_0 fixed, (x_s, x_t) is jointly
    Gaussian with x_s = a_s x_0 + s_s e1 and x_t = a_{t|s} x_s + sigma_{t|s} e2; the posterior
    mean coefficients and variance follow from the Gaussian conditioning formula."""
    process = FlowProcess()
    t, s = 0.8, 0.3
    a_s, s_s = process.alpha(s), process.sigma(s)
    a_t, s_t = process.alpha(t), process.sigma(t)
    cov_st, var_t = s_s**2 * a_t / a_s, s_t**2  # Cov(x_s, x_t | x_0), Var(x_t | x_0)
    gain = cov_st / var_t
    post = process.posterior(t, s)
    assert post.c_xt == pytest.approx(gain, rel=1e-12)
    assert post.c_x0 == pytest.approx(a_s - gain * a_t, rel=1e-12)
    assert post.var == pytest.approx(s_s**2 - gain * cov_st, rel=1e-12)
