"""The continuous objectives (losses/edm.py, flow.py, vp_continuous.py): their expected value at
the optimum for Gaussian data N(MU, S^2) against closed forms, EDM's weighting identity, the
noise-level distributions, and the trainer's contract (per-example, rank-generic, rows
independent, reproducible from the generator)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad

from difflab.continuous import VPProcess
from difflab.formulation import edm_coefficients
from difflab.losses.edm import EDMObjective
from difflab.losses.flow import FlowMatchingObjective, flow_times
from difflab.losses.vp_continuous import VPContinuousObjective
from oracles import ContinuousGaussianOracle, gaussian_data

MU, S = 0.3, 0.7
N = 200_000


def _objectives():
    return {
        "edm": EDMObjective(sigma_data=S),
        "flow": FlowMatchingObjective(sigma_data=S),
        "flow-logit": FlowMatchingObjective(sigma_data=S, time_distribution="logit_normal"),
        "vp-eps": VPContinuousObjective(
            process=VPProcess("linear"), sigma_data=S, prediction="eps"
        ),
        "vp-v": VPContinuousObjective(process=VPProcess("cosine"), sigma_data=S, prediction="v"),
    }


def _optimal_loss(name: str) -> tuple[float, float]:
    """Mean and SE of the loss of the optimal network over N draws (float64)."""
    objective = _objectives()[name]
    oracle = ContinuousGaussianOracle(objective.formulation, MU, S**2)
    x0 = gaussian_data(N, MU, S**2, dim=1, seed=3)
    loss = objective(oracle, x0, generator=torch.Generator().manual_seed(4)).loss
    return float(loss.mean()), float(loss.std() / math.sqrt(N))


def test_edm_loss_of_the_optimum_is_one():
    """With sigma_data = S, lambda(sigma) Var(x0 | x) = lambda c_out^2 = 1 at every sigma
    (Var(x0 | x0 + sigma n) = S^2 sigma^2 / (S^2 + sigma^2) = c_out^2), so the optimal
    denoiser's expected EDM loss per dimension is exactly 1; 4 SE of Monte Carlo."""
    mean, se = _optimal_loss("edm")
    assert abs(mean - 1.0) < 4 * se, (mean, se)


def _flow_optimum(t: float) -> float:
    """Var(eps - x0 | x_t) for x_t = (1 - t) x0 + t eps: Var(u) - Cov(u, x_t)^2 / Var(x_t)."""
    cov = t - (1 - t) * S**2
    return 1 + S**2 - cov**2 / ((1 - t) ** 2 * S**2 + t**2)


@pytest.mark.parametrize("name", ["flow", "flow-logit"])
def test_flow_matching_loss_of_the_optimum(name):
    """E_t Var(eps - x0 | x_t) by quadrature, for t uniform or logit-normal(0, 1)."""
    if name == "flow":
        expected, _ = quad(_flow_optimum, 0, 1)
    else:

        def density(t: float) -> float:  # logit-normal(0, 1)
            return math.exp(-0.5 * math.log(t / (1 - t)) ** 2) / (
                math.sqrt(2 * math.pi) * t * (1 - t)
            )

        expected, _ = quad(lambda t: _flow_optimum(t) * density(t), 0, 1)
    mean, se = _optimal_loss(name)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)


@pytest.mark.parametrize("name", ["vp-eps", "vp-v"])
def test_vp_continuous_loss_of_the_optimum(name):
    """eps: Var(eps | x_t) = a^2 S^2 / (a^2 S^2 + s^2); v = a eps - s x0: Var(v | x_t) =
    S^2 / (a^2 S^2 + s^2) (for a^2 + s^2 = 1); averaged over t ~ U(t_min, t_max)."""
    process = _objectives()[name].process

    def var(t: float) -> float:
        a, s = process.alpha(t), process.sigma(t)
        total = a**2 * S**2 + s**2
        return a**2 * S**2 / total if name == "vp-eps" else S**2 / total

    integral, _ = quad(var, process.t_min, process.t_max, limit=200)
    expected = integral / (process.t_max - process.t_min)
    mean, se = _optimal_loss(name)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)


def test_edm_weighting_is_the_effective_target_error():
    """lambda(sigma) ||D - x0||^2 = ||F - (x0 - c_skip x) / c_out||^2 per example, recomputed
    here from the same draws (the generator: ln sigma first, then the noise)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2)).double()

    class Net(torch.nn.Module):
        def forward(self, x, noise):
            return net(x) * noise[:, None]

    objective = EDMObjective(sigma_data=0.5)
    x0 = gaussian_data(64, seed=1)
    loss = objective(Net(), x0, generator=torch.Generator().manual_seed(5)).loss
    g = torch.Generator().manual_seed(5)
    sigma = (-1.2 + 1.2 * torch.randn(64, generator=g, dtype=torch.float64)).exp()
    x = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = (c[:, None] for c in edm_coefficients(sigma, 0.5))
    F = Net()(c_in * x, c_noise[:, 0])
    effective = (((F - (x0 - c_skip * x) / c_out) ** 2).mean(1)).detach()
    assert torch.allclose(loss.detach(), effective, rtol=1e-10)


def test_training_distributions_of_the_noise_levels():
    """EDM: ln sigma ~ N(-1.2, 1.2^2); flow: logit t ~ N(m, s^2) and uniform t in (0, 1)
    (moments to 4 SE at n = 200000)."""
    g = torch.Generator().manual_seed(0)
    objective = EDMObjective(sigma_data=0.5)
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, noise):
            seen["c_noise"] = noise
            return torch.zeros_like(x)

    objective(Spy(), torch.zeros(N, 1, dtype=torch.float64), generator=g)
    log_sigma = 4 * seen["c_noise"]  # c_noise = ln(sigma) / 4
    se = 1.2 / math.sqrt(N)
    assert abs(float(log_sigma.mean()) + 1.2) < 4 * se
    assert abs(float(log_sigma.std()) - 1.2) < 4 * 1.2 / math.sqrt(2 * N)
    t = flow_times(N, "logit_normal", logit_mean=0.5, logit_std=0.8, generator=g)
    logit = torch.log(t / (1 - t))
    assert abs(float(logit.mean()) - 0.5) < 4 * 0.8 / math.sqrt(N)
    u = flow_times(N, "uniform", generator=g)
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / N)


@pytest.mark.parametrize("name", ["edm", "flow", "vp-eps"])
@pytest.mark.parametrize("shape", [(16, 2), (4, 2, 3, 3)])
def test_the_trainers_contract(name, shape):
    """Per-example (B,) losses on any rank, gradients reach the network, the same generator
    state gives the same loss, and changing one example changes only its own loss."""
    objective = _objectives()[name]
    conv = torch.nn.Conv2d(2, 2, 1).double() if len(shape) == 4 else torch.nn.Linear(2, 2).double()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = conv

        def forward(self, x, noise):
            return self.body(x) * noise.reshape(-1, *([1] * (x.dim() - 1))).cos()

    net = Net()
    x0 = gaussian_data(shape[0], shape=shape[1:], seed=2)
    out = objective(net, x0, generator=torch.Generator().manual_seed(9))
    assert out.loss.shape == (shape[0],) and torch.isfinite(out.loss).all()
    out.loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    again = objective(net, x0, generator=torch.Generator().manual_seed(9)).loss
    assert torch.equal(again.detach(), out.loss.detach())
    changed = x0.clone()
    changed[0] += 1.0
    other = objective(net, changed, generator=torch.Generator().manual_seed(9)).loss.detach()
    assert not torch.isclose(other[0], out.loss[0].detach())
    assert torch.equal(other[1:], out.loss.detach()[1:])


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: EDMObjective(sigma_data=0.0), "loss.sigma_data = 0.0 is invalid"),
        (lambda: EDMObjective(sigma_data=-1.0), "loss.sigma_data = -1.0 is invalid"),
        (lambda: EDMObjective(sigma_data=0.5, p_std=0.0), "loss.p_std = 0.0 is invalid"),
        (
            lambda: FlowMatchingObjective(sigma_data=0.5, time_distribution="normal"),
            "unknown loss.time_distribution 'normal'",
        ),
        (
            lambda: VPContinuousObjective(process=VPProcess(), sigma_data=0.5, prediction="mean"),
            "model.prediction = 'mean' is not a prediction of loss.name = 'vp_continuous'",
        ),
    ],
)
def test_bad_objective_settings(build, needle):
    with pytest.raises(ValueError, match=needle):
        build()
