"""Everything the library creates follows the device of its inputs.

No accelerator is needed to check it: under ``torch.device("meta")`` as the default device,
any tensor made without an explicit device lands on "meta", and mixing it with the CPU inputs
raises. Each path below used to make such tensors (its noise, probes, accumulators): with a
model on CUDA it failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from difflab.app.evaluate import bound_per_example, ode_per_example
from difflab.app.run import load_run
from difflab.denoiser import Denoiser
from difflab.likelihood import ode_nll
from difflab.losses.vlb import full_bound
from difflab.models import MLP
from difflab.samplers import (
    ddim_sample,
    ddpm_sample,
    dpmpp2m_sample,
    dpmpp3m_sample,
    euler_sample,
    heun_sample,
    pc_sample,
    timestep_grid,
)
from difflab.schedules import NoiseSchedule

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def denoiser() -> Denoiser:
    torch.manual_seed(0)
    net = MLP(2, 2, width=8, depth=1, time_scale=20.0)
    return Denoiser(net, NoiseSchedule.from_name("cosine", 50), continuous_time=True)


@pytest.mark.parametrize(
    "sampler",
    [
        ddpm_sample,
        ddim_sample,
        euler_sample,
        heun_sample,
        dpmpp2m_sample,
        dpmpp3m_sample,
        pc_sample,
    ],
)
def test_samplers_draw_on_the_denoisers_device(denoiser, sampler):
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        x = sampler(denoiser, (4, 2), grid=timestep_grid(50, 10), generator=g).x
    assert x.device.type == "cpu" and torch.isfinite(x).all()


def test_bound_and_ode_likelihood_follow_their_input(denoiser):
    x = torch.randn(8, 2)
    g = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        bound = full_bound(denoiser, x, generator=g).total
        exact = ode_nll(denoiser, x, generator=g).nll
        hutchinson = ode_nll(denoiser, x, exact_max_dim=0, generator=g).nll
    for value in (bound, exact, hutchinson):
        assert value.device.type == "cpu" and torch.isfinite(value).all()


def test_a_run_samples_and_evaluates_on_its_device(tmp_path):
    run = load_run(shutil.copytree(FIXTURES / "run_b9ffbd5", tmp_path / "run"))
    assert run.generator(0).device == run.device
    x = torch.randn(16, 2)
    with torch.device("meta"):
        samples, _ = run.sample(8, seed=0)
        bound, _ = bound_per_example(run, x, seed=0)
        ode, _ = ode_per_example(run, x, seed=0)
    assert samples.shape == (8, 2) and bound.shape == ode.shape == (16,)
