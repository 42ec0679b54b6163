"""Every sampler on every continuous formulation (formulation.py), on the optimal denoiser of
Gaussian data N(MU, S^2) (tests/oracles.py).

Deterministic samplers are affine in their starting state per dimension, so starting from the
exact marginal q(x_top) = N(a MU, a^2 S^2 + s^2) at z = 0 and z = 1 gives the law of the output
exactly (as tests/test_samplers_ode.py does): no Monte Carlo. Karras et al. 2022 (Sec. 3): in
the frame y = x / alpha every process with the same data has the same probability-flow ODE in
the noise level sigma_bar, so on the same levels every sampler must give the same samples for
EDM, flow matching and the VP-SDE."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from difflab.continuous import EDMProcess, FlowProcess, VPProcess
from difflab.formulation import ContinuousDenoiser, Formulation
from difflab.samplers import (
    ddim_sample,
    ddpm_sample,
    dpmpp2m_sample,
    dpmpp2m_sde_sample,
    dpmpp3m_sample,
    edm_sample,
    euler_sample,
    heun_sample,
    noise_level_grid,
    pc_sample,
)
from oracles import ContinuousGaussianOracle

MU, S = 0.3, 0.7

FORMULATIONS = {
    "edm": Formulation(EDMProcess(), "edm", "log_sigma", S),
    "flow": Formulation(FlowProcess(), "velocity", "time", S),
    "vp-eps": Formulation(VPProcess("linear"), "eps", "time", S),
    "vp-v-cosine": Formulation(VPProcess("cosine"), "v", "time", S),
}

DETERMINISTIC = {
    "ddim": ddim_sample,
    "euler": euler_sample,
    "heun": heun_sample,
    "dpmpp2m": dpmpp2m_sample,
    "dpmpp3m": dpmpp3m_sample,
    "edm": edm_sample,
}


def _denoiser(name: str) -> ContinuousDenoiser:
    form = FORMULATIONS[name]
    return ContinuousDenoiser(ContinuousGaussianOracle(form, MU, S**2), form)


def _grid(name: str, K: int, grid: str = "logsnr", **kwargs) -> list[float]:
    return noise_level_grid(
        FORMULATIONS[name].process, K, grid, sigma_min=0.002, sigma_max=80.0, **kwargs
    )


def _from_marginal(denoiser, grid, z: torch.Tensor) -> torch.Tensor:
    """The state at the grid's top with standardized value z under q(x_top)."""
    p = denoiser.process
    a, s = p.alpha(grid[0]), p.sigma(grid[0])
    return a * MU + math.sqrt(a**2 * S**2 + s**2) * z


def _law(sampler, name: str, K: int, grid: str = "logsnr"):
    denoiser, times = _denoiser(name), _grid(name, K, grid)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    f0 = sampler(denoiser, (1, 2), grid=times, x_T=_from_marginal(denoiser, times, zero)).x[0]
    f1 = sampler(denoiser, (1, 2), grid=times, x_T=_from_marginal(denoiser, times, zero + 1)).x[0]
    return f0, f1 - f0


@pytest.mark.parametrize(
    ("sampler", "tol"),
    [  # measured relative moment error at K = 40 on the log-SNR grid (comment), bound ~2x
        ("ddim", 0.13),  # 6.6e-2 (first order)
        ("euler", 0.13),  # 6.6e-2 (the same map)
        ("heun", 0.02),  # 9.9e-3
        ("dpmpp2m", 0.009),  # 4.5e-3
        ("dpmpp3m", 6e-4),  # 2.8e-4
        ("edm", 0.02),  # 9.9e-3
    ],
)
@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_deterministic_samplers_reach_the_moments(name, sampler, tol):
    mean, std = _law(DETERMINISTIC[sampler], name, 40)
    err = max(float((mean - MU).abs().max()), float((std / S - 1).abs().max()))
    assert err < tol, (name, sampler, err)


@pytest.mark.parametrize("sampler", list(DETERMINISTIC))
def test_samplers_see_only_the_noise_levels(sampler):
    """On the same levels, from the same standardized start, EDM, flow matching and both VP
    processes give the same samples (float64 round-off, amplified by the 10-step chain)."""
    z = torch.linspace(-2, 2, 10, dtype=torch.float64)[:, None].repeat(1, 2)
    outs = []
    for name in FORMULATIONS:
        denoiser, times = _denoiser(name), _grid(name, 10, "karras")
        outs.append(DETERMINISTIC[sampler](denoiser, z.shape, grid=times, x_T=_from_marginal(
            denoiser, times, z)).x)  # fmt: skip
    for other in outs[1:]:
        assert torch.allclose(other, outs[0], rtol=1e-8, atol=1e-8), sampler


def test_euler_on_the_edm_ode_is_ddim():
    """EDM's ODE dx / d sigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, Eq. 3) with
    Euler steps on the Karras levels, written out here with the data's optimal denoiser D,
    equals DDIM with eta = 0 on the same levels (Song et al. 2020, Eq. 14)."""
    denoiser, times = _denoiser("edm"), _grid("edm", 12, "karras")
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None].repeat(1, 2) * 80.0
    ddim = ddim_sample(denoiser, x.shape, grid=times, x_T=x).x
    for sigma, sigma_next in itertools.pairwise(times):
        D = MU + S**2 * (x - MU) / (S**2 + sigma**2)  # E[x0 | x] for x = x0 + sigma n
        x = x + (sigma_next - sigma) * (x - D) / sigma
    assert torch.allclose(ddim, x, rtol=1e-12, atol=1e-12)


def test_flow_matching_euler_is_exact_to_first_order():
    """Euler in t on dx/dt = v(x, t) with the analytic velocity, on time-uniform grids, against
    the exact flow (z = (x - a MU) / sqrt(a^2 S^2 + t^2) is constant along it): the global error
    halves as K doubles (first order; measured ratios 1.9-2.0; 0.025 at K = 64)."""
    denoiser = _denoiser("flow")
    process = denoiser.process
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None].repeat(1, 2)
    errors = []
    for K in (8, 16, 32, 64):
        times = noise_level_grid(
            process, K, "time", sigma_min=0.05, sigma_max=20, final_step="none"
        )
        out = euler_sample(denoiser, x.shape, grid=times, x_T=x).x
        t, u = times[0], times[-1]
        z = (x - process.alpha(t) * MU) / math.hypot(process.alpha(t) * S, t)
        exact = process.alpha(u) * MU + math.hypot(process.alpha(u) * S, u) * z
        errors.append(float((out - exact).abs().max()))
    ratios = [a / b for a, b in itertools.pairwise(errors)]
    assert all(1.7 < r < 2.3 for r in ratios), (errors, ratios)
    assert errors[-1] < 0.05, errors


@pytest.mark.parametrize(
    ("name", "sampler", "K", "tol"),
    [  # Monte Carlo, n = 20000: SE 0.005 of the mean and ~0.5% of the std; tolerance = the
        # measured error at this K (comment) + 4 SE
        ("edm", lambda d, s, **k: edm_sample(d, s, s_churn=40.0, **k), 50, 0.045),  # 1.7%
        ("flow", lambda d, s, **k: ddim_sample(d, s, eta=1.0, **k), 200, 0.05),  # ~2.5%
        ("vp-eps", ddpm_sample, 200, 0.04),  # ~1%
        ("vp-eps", pc_sample, 100, 0.04),  # ~1%
        ("vp-v-cosine", dpmpp2m_sde_sample, 50, 0.04),  # ~1.5%
        ("edm", lambda d, s, **k: dpmpp2m_sde_sample(d, s, eta=0.5, **k), 50, 0.045),  # 2.1%
        ("vp-eps", lambda d, s, **k: dpmpp2m_sde_sample(d, s, eta=0.25, **k), 50, 0.04),  # 1.7%
    ],
)
def test_stochastic_samplers_reach_the_moments(name, sampler, K, tol):
    denoiser = _denoiser(name)
    x = sampler(
        denoiser, (20_000, 2), grid=_grid(name, K), generator=torch.Generator().manual_seed(0)
    ).x
    assert float((x.mean(0) - MU).abs().max()) < 0.02
    assert float((x.std(0) / S - 1).abs().max()) < tol


def _std_error(sampler, name: str, K: int) -> float:
    x = sampler(
        _denoiser(name),
        (100_000, 2),
        grid=_grid(name, K),
        generator=torch.Generator().manual_seed(0),
    ).x
    return float((x.std(0) / S - 1).abs().max())


def test_sde_dpm_solver_is_second_order():
    """SDE-DPM-Solver++(2M) against its first-order form (DDIM with eta = 1, the same noise):
    doubling K from 20 to 80 divides the std's error by about 4 (measured 0.120, 0.028, 0.0063)
    where the first-order chain's halves (0.225, 0.123, 0.064); the Monte Carlo error of the
    std at n = 100,000 is 0.3 %."""
    ddim1 = lambda d, s, **k: ddim_sample(d, s, eta=1.0, **k)  # noqa: E731
    sde = [_std_error(dpmpp2m_sde_sample, "vp-eps", K) for K in (20, 40, 80)]
    first = [_std_error(ddim1, "vp-eps", K) for K in (20, 40, 80)]
    assert sde[0] / sde[1] > 3.2 and sde[1] / sde[2] > 3.2, sde
    assert all(1.6 < a / b < 2.4 for a, b in itertools.pairwise(first)), first
    assert all(a < b for a, b in zip(sde, first, strict=True))


def test_sde_dpm_solver_starts_as_ddpms_posterior_step():
    """Its first step (no earlier prediction) is the posterior step x_s -> x_t of DDPM, i.e.
    DDIM with eta = 1: on a grid of two levels and the data the two chains agree to round-off
    from the same noise, on every formulation; with the same noise, the four processes give
    the same samples on the same levels (as the deterministic samplers do)."""
    z = torch.linspace(-2, 2, 10, dtype=torch.float64)[:, None].repeat(1, 2)
    outs = []
    for name in FORMULATIONS:
        denoiser, times = _denoiser(name), _grid(name, 2, "karras")
        x_T = _from_marginal(denoiser, times, z)
        a, b = (
            f(denoiser, z.shape, grid=times, x_T=x_T, generator=torch.Generator().manual_seed(3)).x
            for f in (dpmpp2m_sde_sample, lambda *a, **k: ddim_sample(*a, eta=1.0, **k))
        )
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), name
        times = _grid(name, 10, "karras")
        gen = torch.Generator().manual_seed(5)
        outs.append(
            dpmpp2m_sde_sample(
                denoiser, z.shape, grid=times, x_T=_from_marginal(denoiser, times, z), generator=gen
            ).x
        )
    for other in outs[1:]:
        assert torch.allclose(other, outs[0], rtol=1e-8, atol=1e-8)


def test_sde_dpm_solver_at_eta_zero_is_a_second_order_ode_solver():
    """eta = 0 removes the noise: the chain is deterministic (the generator's draws do not
    matter), its first step is DDIM with eta = 0 to round-off, and on the exact law (no Monte
    Carlo) the moment error falls by about 4 per doubling of K (measured 0.135, 0.035, 0.0080,
    0.0019 at K = 10..80 on every formulation)."""
    ode = lambda d, s, **k: dpmpp2m_sde_sample(d, s, eta=0.0, **k)  # noqa: E731
    errors = []
    for K in (10, 20, 40, 80):
        mean, std = _law(ode, "vp-v-cosine", K)
        errors.append(max(float((mean - MU).abs().max()), float((std / S - 1).abs().max())))
    assert all(3.4 < a / b < 4.8 for a, b in itertools.pairwise(errors)), errors
    assert errors[2] < 0.016, errors
    denoiser = _denoiser("edm")
    z = torch.linspace(-2, 2, 10, dtype=torch.float64)[:, None].repeat(1, 2)
    times = _grid("edm", 12, "karras")
    x_T = _from_marginal(denoiser, times, z)
    a, b = (
        ode(denoiser, z.shape, grid=times, x_T=x_T, generator=torch.Generator().manual_seed(s)).x
        for s in (0, 1)
    )
    assert torch.equal(a, b)
    two = _grid("edm", 2, "karras")
    first = ode(denoiser, z.shape, grid=two, x_T=_from_marginal(denoiser, two, z)).x
    ddim = ddim_sample(denoiser, z.shape, grid=two, x_T=_from_marginal(denoiser, two, z)).x
    assert torch.allclose(first, ddim, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eta", [-0.1, 1.5, math.nan])
def test_sde_dpm_solver_rejects_eta_outside_the_unit_interval(eta):
    with pytest.raises(ValueError, match="eta"):
        dpmpp2m_sde_sample(_denoiser("edm"), (2, 2), grid=_grid("edm", 4), eta=eta)


def test_edm_sampler_costs_and_churn():
    """2K - 1 evaluations to the data, 2K without the final step; with S_churn = 0 it draws no
    noise (deterministic), with churn it does, only inside [S_tmin, S_tmax]."""
    denoiser = _denoiser("edm")
    times = _grid("edm", 18, "karras")
    x = torch.ones(4, 2, dtype=torch.float64)
    net = denoiser.net
    net.calls = 0
    assert edm_sample(denoiser, (4, 2), grid=times, x_T=x).nfe == 35 == net.calls
    no_final = _grid("edm", 18, "karras", final_step="none")
    assert edm_sample(denoiser, (4, 2), grid=no_final, x_T=x).nfe == 36
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    edm_sample(denoiser, (4, 2), grid=times, x_T=x, generator=g)
    assert torch.equal(g.get_state(), before)  # nothing drawn without churn
    a = edm_sample(denoiser, (4, 2), grid=times, x_T=x, s_churn=10, s_tmin=0.05, s_tmax=1.0,
                   generator=torch.Generator().manual_seed(1)).x  # fmt: skip
    b = edm_sample(denoiser, (4, 2), grid=times, x_T=x, s_churn=10, s_tmin=0.05, s_tmax=1.0,
                   generator=torch.Generator().manual_seed(2)).x  # fmt: skip
    assert not torch.allclose(a, b)
    window_empty = edm_sample(denoiser, (4, 2), grid=times, x_T=x, s_churn=10, s_tmin=100.0,
                              generator=torch.Generator().manual_seed(1)).x  # fmt: skip
    assert torch.allclose(window_empty, edm_sample(denoiser, (4, 2), grid=times, x_T=x).x)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"s_churn": -1.0}, "s_churn = -1.0 is invalid"),
        ({"s_tmin": 2.0, "s_tmax": 1.0}, "0 <= s_tmin < s_tmax"),
        ({"s_noise": 0.0}, "s_noise = 0.0 is invalid"),
    ],
)
def test_edm_sampler_bad_settings(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        edm_sample(_denoiser("edm"), (2, 2), grid=_grid("edm", 5), **kwargs)


def test_final_step_none_returns_the_state_at_sigma_min():
    """Without the step to the data the sample is x at sigma_min: for the EDM process its
    variance is S^2 + sigma_min^2 (here sigma_min = 0.5, to be visible), to the solver's error."""
    denoiser = _denoiser("edm")
    times = noise_level_grid(denoiser.process, 40, "logsnr", sigma_min=0.5, sigma_max=80.0,
                             final_step="none")  # fmt: skip
    assert times[-1] == pytest.approx(0.5)
    zero = torch.zeros(1, 2, dtype=torch.float64)
    f0 = dpmpp3m_sample(denoiser, (1, 2), grid=times, x_T=_from_marginal(denoiser, times, zero)).x
    f1 = dpmpp3m_sample(denoiser, (1, 2), grid=times,
                        x_T=_from_marginal(denoiser, times, zero + 1)).x  # fmt: skip
    assert torch.allclose(f1 - f0, torch.full_like(f0, math.hypot(S, 0.5)), rtol=1e-3)


def test_trajectories_are_keyed_by_float_times():
    denoiser, times = _denoiser("flow"), _grid("flow", 5)
    res = dpmpp2m_sample(denoiser, (3, 2), grid=times, record=lambda labels: labels)
    assert list(res.trajectory) == times and res.nfe == 5
    assert all(isinstance(k, float) for k in res.trajectory)


@pytest.mark.parametrize("sampler", list(DETERMINISTIC))
def test_a_discrete_model_on_a_karras_grid_is_the_same_sampler(sampler):
    """A discrete DDPM (cosine, T = 1000) sampled on the Karras levels visits fractional paper
    times (the network takes a continuous step index): on the same levels it gives the
    continuous formulations' samples (float64 round-off)."""
    from difflab.denoiser import Denoiser
    from difflab.schedules import NoiseSchedule
    from oracles import GaussianOracle

    schedule = NoiseSchedule.from_name("cosine", 1000)
    discrete = Denoiser(GaussianOracle(schedule, MU, S**2, prediction="v"), schedule,
                        prediction="v", continuous_time=True)  # fmt: skip
    times = noise_level_grid(discrete.process, 10, "karras", sigma_min=0.01, sigma_max=80.0)
    assert any(not float(t).is_integer() for t in times)
    z = torch.linspace(-2, 2, 10, dtype=torch.float64)[:, None].repeat(1, 2)
    out = DETERMINISTIC[sampler](discrete, z.shape, grid=times,
                                 x_T=_from_marginal(discrete, times, z)).x  # fmt: skip
    flow, flow_times = _denoiser("flow"), noise_level_grid(
        FORMULATIONS["flow"].process, 10, "karras", sigma_min=0.01, sigma_max=80.0)  # fmt: skip
    ref = DETERMINISTIC[sampler](flow, z.shape, grid=flow_times,
                                 x_T=_from_marginal(flow, flow_times, z)).x  # fmt: skip
    assert torch.allclose(out, ref, rtol=1e-7, atol=1e-7), float((out - ref).abs().max())
