"""Classifier-free guidance (guidance.py) on an analytic model: an equal-weight mixture of two
Gaussians, whose conditional and unconditional optimal denoisers are closed forms
(tests/oracles.MixtureOracle).

Tolerances: the oracle works in float64 and returns float32, so a guided output and the same
combination formed here from the oracle's own float64 predictions differ by float32 round-off
of quantities of order |x| / sigma (at most ~10 at the times used): 1e-5 absolute relative to
that scale. Sample moments: n = 20000 draws give standard errors of sd / sqrt(n) = 0.0035 for a
mean with sd 0.5 and 0.005 for a variance of 0.25 (sqrt(2 / n) var); 5 standard errors are
allowed, plus the discretisation error of the sampler (measured below 0.01 for these grids).
"""

from __future__ import annotations

import math

import pytest
import torch

from difflab.denoiser import Denoiser
from difflab.guidance import GuidedDenoiser, guided
from difflab.samplers import (
    ddim_sample,
    ddpm_sample,
    dpmpp2m_sample,
    dpmpp2m_sde_sample,
    dpmpp3m_sample,
    euler_sample,
    heun_sample,
    pc_sample,
    timestep_grid,
)
from difflab.schedules import NoiseSchedule
from oracles import MixtureOracle

MUS = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
VAR = 0.25
T = 100


def _setup(prediction: str = "eps", shape=(2,)):
    schedule = NoiseSchedule.from_name("cosine", T)
    mus = MUS if shape == (2,) else MUS[:, :1, None, None].expand(2, *shape)
    oracle = MixtureOracle(schedule, mus, VAR, prediction=prediction)
    return oracle, Denoiser(oracle, schedule, prediction=prediction)


def _eps_of(oracle: MixtureOracle, x: torch.Tensor, t: float, labels) -> torch.Tensor:
    """eps of one branch computed here in float64, as the eps-oracle predicts it."""
    eps_net = MixtureOracle(oracle.schedule, oracle.mus, VAR, prediction="eps")
    step = torch.full((x.shape[0],), int(t) - 1, dtype=torch.long)
    return eps_net(x.double(), step, labels)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("shape", [(2,), (1, 3, 3)])
def test_guided_output_is_the_combination_and_linear_in_the_scale(prediction, shape):
    oracle, denoiser = _setup(prediction, shape)
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(0)) * 2
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    null = torch.full((6,), 2)
    for t in (5.0, 50.0, 99.0):
        eps_c, eps_u = _eps_of(oracle, x, t, labels), _eps_of(oracle, x, t, null)
        scale = 1.0 + (eps_c.abs().max() + eps_u.abs().max()).item()
        outs = {}
        for s in (0.0, 0.5, 1.0, 2.0, 3.0):
            out = GuidedDenoiser(denoiser, labels, s)(x, t)
            expected = eps_u + s * (eps_c - eps_u)
            torch.testing.assert_close(
                out.eps.double(), expected, rtol=0, atol=1e-5 * scale * max(1.0, s)
            )
            outs[s] = out
        # linear in s, through the fast paths at 0 and 1 and the batched path elsewhere
        for s in (0.5, 2.0, 3.0):
            for field in ("x0", "eps"):
                lhs = getattr(outs[s], field) - getattr(outs[0.0], field)
                rhs = s * (getattr(outs[1.0], field) - getattr(outs[0.0], field))
                torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-5 * scale * max(1.0, s))


@pytest.mark.parametrize("clip", [None, (-1.0, 1.0)])
def test_x0_stays_consistent_with_the_guided_eps(clip):
    _, denoiser = _setup("v")
    denoiser = denoiser.replace(clip=clip)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 2
    labels = torch.arange(64) % 2
    for t in (3.0, 40.0, 100.0):
        out = GuidedDenoiser(denoiser, labels, 3.0)(x, t)
        alpha, sigma = denoiser.process.alpha(t), denoiser.process.sigma(t)
        torch.testing.assert_close(alpha * out.x0 + sigma * out.eps, x, rtol=0, atol=1e-4)
        if clip is not None:
            assert out.x0.abs().max() <= 1.0
    unclipped = GuidedDenoiser(denoiser.replace(clip=None), labels, 3.0)(x, 3.0)
    assert clip is None or unclipped.x0.abs().max() > 1.0  # the clip did something


def test_guided_call_runs_the_network_once_on_a_doubled_batch():
    oracle, denoiser = _setup()
    x, labels = torch.zeros(5, 2), torch.tensor([0, 1, 1, 0, 1])
    GuidedDenoiser(denoiser, labels, 2.5)(x, 10.0)
    assert oracle.batch_sizes == [10]
    for s in (0.0, 1.0):  # the ends need one branch only
        GuidedDenoiser(denoiser, labels, s)(x, 10.0)
    assert oracle.batch_sizes == [10, 5, 5]
    assert GuidedDenoiser(denoiser, labels, 2.5).passes == 2


def test_learned_variance_comes_from_the_conditional_branch():
    class HalfNet(torch.nn.Module):
        num_classes = 2

        def forward(self, x, t, labels=None):
            lab = torch.full((x.shape[0],), 2) if labels is None else labels
            value = lab.to(x.dtype)[:, None].expand_as(x)  # pred = label, variance half = label
            return torch.cat([value, value], 1)

    schedule = NoiseSchedule.from_name("cosine", T)
    denoiser = Denoiser(HalfNet(), schedule, variance="learned_range")
    labels = torch.tensor([0, 1, 1])
    out = GuidedDenoiser(denoiser, labels, 2.0)(torch.zeros(3, 2), 10.0)
    torch.testing.assert_close(out.var_out, labels.float()[:, None].expand(3, 2))
    step = GuidedDenoiser(denoiser, labels, 2.0).reverse_step(torch.zeros(3, 2), 10.0, 9.0)
    assert step.log_var.shape == (3, 2) and torch.isfinite(step.mean).all()


SAMPLERS = {
    "ddpm": lambda d, shape, g: ddpm_sample(d, shape, generator=g),
    "ddim": lambda d, shape, g: ddim_sample(d, shape, generator=g),
    "euler": lambda d, shape, g: euler_sample(d, shape, generator=g),
    "heun": lambda d, shape, g: heun_sample(d, shape, grid=timestep_grid(T, 50), generator=g),
    "dpmpp2m": lambda d, shape, g: dpmpp2m_sample(d, shape, grid=timestep_grid(T, 50), generator=g),
    "dpmpp3m": lambda d, shape, g: dpmpp3m_sample(d, shape, grid=timestep_grid(T, 50), generator=g),
    "pc": lambda d, shape, g: pc_sample(d, shape, generator=g),
    "dpmpp2m_sde": lambda d, shape, g: dpmpp2m_sde_sample(
        d, shape, grid=timestep_grid(T, 50), generator=g
    ),
}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_scale_one_samples_reach_the_components_moments(sampler):
    """Every sampler with the guided Denoiser at s = 1 draws component c: mean mu_c, variance
    VAR per coordinate; at s = 0 the mixture (mean 0, variance VAR + 4 along the first axis)."""
    _, denoiser = _setup("v")
    n = 20000
    labels = torch.arange(n) % 2
    g = torch.Generator().manual_seed(2)
    x = SAMPLERS[sampler](GuidedDenoiser(denoiser, labels, 1.0), (n, 2), g).x.double()
    tol_mean, tol_var = 5 * math.sqrt(VAR / (n / 2)) + 0.01, 5 * math.sqrt(2 / (n / 2)) * VAR + 0.01
    for c in (0, 1):
        mine = x[labels == c]
        torch.testing.assert_close(mine.mean(0), MUS[c].double(), rtol=0, atol=tol_mean)
        torch.testing.assert_close(
            mine.var(0), torch.full((2,), VAR).double(), rtol=0, atol=tol_var
        )
    if sampler in ("ddpm", "dpmpp2m"):
        x = SAMPLERS[sampler](GuidedDenoiser(denoiser, labels, 0.0), (n, 2), g).x.double()
        assert abs(x[:, 0].mean()) < 5 * math.sqrt((VAR + 4) / n) + 0.01
        assert abs(x[:, 0].var() - (VAR + 4)) < 5 * math.sqrt(2 / n) * (VAR + 4) + 0.02
        assert abs(x[:, 1].var() - VAR) < tol_var


def test_strong_guidance_separates_the_classes_further():
    """s = 3 pulls the samples away from the other component: the class means move outward
    (|mean_x| > 2) and no sample lands on the wrong side, the accuracy the math promises."""
    _, denoiser = _setup("v")
    labels = torch.arange(4000) % 2
    x = ddpm_sample(
        GuidedDenoiser(denoiser, labels, 3.0), (4000, 2), generator=torch.Generator().manual_seed(3)
    ).x
    side = (x[:, 0] > 0).long()
    assert (side == labels).all()
    assert x[labels == 1, 0].mean() > 2.0 and x[labels == 0, 0].mean() < -2.0


def test_guided_output_helper_and_bad_scales():
    from difflab.denoiser import DenoiserOutput

    a = DenoiserOutput(torch.ones(2), torch.full((2,), 3.0), None)
    b = DenoiserOutput(torch.zeros(2), torch.ones(2), None)
    x0, eps = guided(a, b, 2.0)
    assert x0.tolist() == [2.0, 2.0] and eps.tolist() == [5.0, 5.0]
    _, denoiser = _setup()
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite number >= 0"):
            GuidedDenoiser(denoiser, torch.zeros(2, dtype=torch.long), bad)
    plain = Denoiser(torch.nn.Linear(2, 2), NoiseSchedule.from_name("cosine", T))
    with pytest.raises(ValueError, match="class-conditional"):
        GuidedDenoiser(plain, torch.zeros(2, dtype=torch.long), 2.0)


class _LabelledOracle(torch.nn.Module):
    """A class-conditional optimal network of a continuous formulation: class c's data are
    N(mu_c, VAR) (tests/oracles.ContinuousGaussianOracle per class); the null class (2) gets
    its own Gaussian N(0, VAR), which is all the guidance combination below needs."""

    num_classes = 2

    def __init__(self, formulation) -> None:
        super().__init__()
        from oracles import ContinuousGaussianOracle

        means = [MUS[0].tolist(), MUS[1].tolist(), [0.0, 0.0]]
        self.oracles = [ContinuousGaussianOracle(formulation, mu, VAR) for mu in means]
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, noise, labels=None):
        labels = torch.full((x.shape[0],), 2) if labels is None else labels
        noise = noise.expand(x.shape[0]).contiguous()
        out = torch.empty_like(x)
        for c in labels.unique().tolist():
            rows = labels == c
            out[rows] = self.oracles[c](x[rows], noise[rows])
        return out


def _continuous(name: str):
    from difflab.continuous import EDMProcess, FlowProcess
    from difflab.formulation import ContinuousDenoiser, Formulation

    form = {"edm": Formulation(EDMProcess(), "edm", "log_sigma", 0.5),
            "flow": Formulation(FlowProcess(), "velocity", "time", 0.5)}[name]  # fmt: skip
    return ContinuousDenoiser(_LabelledOracle(form), form)


@pytest.mark.parametrize("name", ["edm", "flow"])
def test_continuous_formulations_sample_each_class_and_guide(name):
    """A ContinuousDenoiser passes its labels to the network: DPM-Solver++(2M) with labels
    (scale 1, through GuidedDenoiser, which must start the chain from the formulation's prior
    std, 40 here, not 1) lands each row in its class's Gaussian (n = 5000 per class: SE 0.007
    of a mean, 2% of a variance; the solver's error at K = 40 is ~0.5%); guidance on it is the
    combination of the conditional and null branches, computed here from two separate calls
    (batched vs not)."""
    from difflab.samplers import noise_level_grid

    denoiser = _continuous(name)
    grid = noise_level_grid(denoiser.process, 40, "logsnr", sigma_min=0.002, sigma_max=40.0)
    labels = torch.arange(10_000) % 2
    gen = torch.Generator().manual_seed(0)
    x = dpmpp2m_sample(GuidedDenoiser(denoiser, labels, 1.0), (10_000, 2), grid=grid,
                       generator=gen).x  # fmt: skip
    for c in (0, 1):
        rows = x[labels == c]
        assert float((rows.mean(0) - MUS[c]).abs().max()) < 0.04, (c, rows.mean(0))
        assert float((rows.var(0) / VAR - 1).abs().max()) < 0.1, (c, rows.var(0))
    xs, few = torch.randn(6, 2, generator=gen), torch.tensor([0, 1, 1, 0, 1, 0])
    t = grid[20]
    cond = denoiser.replace(labels=few)(xs, t)
    uncond = denoiser.replace(labels=torch.full((6,), 2))(xs, t)
    out = GuidedDenoiser(denoiser, few, 2.5)(xs, t)
    for field in ("x0", "eps"):
        u, c = getattr(uncond, field), getattr(cond, field)
        torch.testing.assert_close(getattr(out, field), u + 2.5 * (c - u), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="labels for a batch of 5"):
        denoiser.replace(labels=few)(xs[:5], t)
