"""Langevin, annealed Langevin and predictor-corrector sampling with analytic scores."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.denoiser import Denoiser
from difflab.samplers import ScoreLadder, ddpm_sample, timestep_grid
from difflab.samplers.langevin import (
    annealed_langevin_sample,
    langevin_sample,
    langevin_step,
    langevin_step_sizes,
    pc_sample,
)
from difflab.schedules import NoiseSchedule
from oracles import GaussianOracle

MU = torch.tensor([1.0, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)
PRECISION = torch.linalg.inv(COV)


def gaussian_score(x: torch.Tensor) -> torch.Tensor:
    return -(x - MU) @ PRECISION.T


def test_langevin_reaches_the_target_mean_and_covariance():
    """With s = -C^{-1}(x - mu), x' = x + (eps/2) s + sqrt(eps) z has the stationary law
    N(mu, (P (I - eps P / 4))^{-1}), P = C^{-1} (solve Sigma = M Sigma M + eps I, M = I - eps P/2);
    at eps = 0.05 that is within 3% of C. 4000 chains of 600 steps (mixed: the slowest mode
    contracts by exp(-11)); tolerances are 5 standard errors of 4000 draws."""
    n, eps = 4000, 0.05
    result = langevin_sample(
        gaussian_score,
        (n, 2),
        steps=600,
        step_size=eps,
        generator=torch.Generator().manual_seed(0),
        init_std=1.0,
        x_init=torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
    )
    x = result.x
    assert result.nfe == 600
    se_mean = (COV.diagonal() / n).sqrt()
    assert ((x.mean(0) - MU).abs() < 5 * se_mean).all()
    stationary = torch.linalg.inv(
        PRECISION @ (torch.eye(2, dtype=torch.float64) - eps * PRECISION / 4)
    )
    cov = torch.cov(x.T)
    se_cov = math.sqrt(2 / n) * stationary.diagonal().max()
    assert (cov - stationary).abs().max() < 5 * se_cov
    assert (cov - COV).abs().max() < 0.1


def test_langevin_step_uses_gaussian_noise_and_half_the_step_on_the_score():
    x = torch.zeros(3, 2)
    noise = torch.ones(3, 2)
    out = langevin_step(lambda y: torch.full_like(y, 2.0), x, 0.04, noise=noise)
    torch.testing.assert_close(out, torch.full((3, 2), 0.5 * 0.04 * 2.0 + 0.2))
    # the noise it draws itself is standard normal: a pure-noise step from 0 has mean 0, var eps
    draws = langevin_step(
        torch.zeros_like, torch.zeros(100_000, 1), 0.25, generator=torch.Generator()
    )
    assert abs(float(draws.mean())) < 5 * 0.5 / math.sqrt(100_000)
    assert float(draws.var()) == pytest.approx(0.25, rel=0.02)


def test_step_size_schedule_and_trajectory_labels():
    assert langevin_step_sizes(0.1, 3, 0.5) == pytest.approx([0.1, 0.05, 0.025])
    with pytest.raises(ValueError, match="step_size > 0"):
        langevin_step_sizes(0.0, 3)
    result = langevin_sample(
        gaussian_score,
        (5, 2),
        steps=4,
        step_size=0.01,
        x_init=torch.zeros(5, 2, dtype=torch.float64),
        record=[4, 2, 0],
        generator=torch.Generator().manual_seed(0),
    )
    assert list(result.trajectory) == [4, 2, 0]
    torch.testing.assert_close(result.trajectory[0], result.x)
    torch.testing.assert_close(result.trajectory[4], torch.zeros(5, 2, dtype=torch.float64))


def mixture_score(weights, means, std):
    """The score of sum_k w_k N(m_k, std^2 I) convolved with N(0, sigma^2 I)."""
    w = torch.tensor(weights, dtype=torch.float64)
    m = torch.tensor(means, dtype=torch.float64)

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        var = std**2 + sigma**2
        d = x[:, None, :] - m[None]  # (B, K, D)
        logits = w.log() - 0.5 * (d**2).sum(-1) / var
        resp = torch.softmax(logits, dim=1)
        return -(resp[..., None] * d).sum(1) / var

    return score


def test_annealed_langevin_covers_both_modes_in_proportion():
    """Mixture 0.2 N((-3, 0), 0.25^2 I) + 0.8 N((3, 0), 0.25^2 I) with its exact noised score:
    annealed Langevin over sigma = 6 .. 0.05 puts 20% of 4000 chains in the left mode (within
    5 standard errors, 0.032) and every chain within 1.5 of a mode."""
    score = mixture_score([0.2, 0.8], [[-3.0, 0.0], [3.0, 0.0]], 0.25)
    sigmas = torch.logspace(math.log10(6.0), math.log10(0.05), 12).tolist()
    n = 4000
    result = annealed_langevin_sample(
        ScoreLadder(score, tuple(sigmas)),
        (n, 2),
        n_steps_each=60,
        step_size=0.2 * 0.05**2,
        generator=torch.Generator().manual_seed(0),
        x_init=6.0
        * torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
    )
    x = result.x
    left = float((x[:, 0] < 0).double().mean())
    assert abs(left - 0.2) < 5 * math.sqrt(0.2 * 0.8 / n)
    to_mode = torch.minimum(
        (x - torch.tensor([-3.0, 0.0])).norm(dim=1), (x - torch.tensor([3.0, 0.0])).norm(dim=1)
    )
    assert float(to_mode.max()) < 1.5
    assert result.nfe == 12 * 60


def test_annealed_langevin_rejects_bad_ladders():
    score = mixture_score([1.0], [[0.0, 0.0]], 1.0)
    with pytest.raises(ValueError, match="decreasing"):
        annealed_langevin_sample(
            ScoreLadder(score, (0.1, 1.0)), (2, 2), n_steps_each=1, step_size=1e-3
        )
    with pytest.raises(ValueError, match="step_size > 0"):
        annealed_langevin_sample(
            ScoreLadder(score, (1.0, 0.1)), (2, 2), n_steps_each=1, step_size=0.0
        )


def _gaussian(
    schedule: NoiseSchedule, mu: torch.Tensor, c: float, variance: str = "small"
) -> Denoiser:
    """The optimal denoiser for data N(mu, c I)."""
    return Denoiser(GaussianOracle(schedule, mu.tolist(), c), schedule, variance=variance)


@pytest.mark.parametrize(
    ("snr", "corrector_steps", "steps", "variance"),
    [(0.16, 1, None, "small"), (0.3, 3, None, "small"), (0.16, 1, 25, "large")],
)
def test_pc_with_the_exact_score_reaches_the_data_moments(snr, corrector_steps, steps, variance):
    """PC with the exact eps of Gaussian data N(mu, 0.3 I) gives samples with that mean and
    variance (within 5 standard errors plus 0.02 for the T = 100 discretization), on the full
    chain and on a 25-step sub-grid (the respaced predictor, with the "large" variance: the
    "small" one underestimates the reverse variance on coarse grids)."""
    schedule = NoiseSchedule.from_name("linear", 100, beta_start=1e-3, beta_end=0.2)
    mu = torch.tensor([0.8, -0.4])
    n = 4000
    grid = timestep_grid(100, steps) if steps else None
    result = pc_sample(
        _gaussian(schedule, mu, 0.3, variance),
        (n, 2),
        grid=grid,
        snr=snr,
        corrector_steps=corrector_steps,
        generator=torch.Generator().manual_seed(0),
    )
    x = result.x
    assert result.nfe == (steps or 100) * (corrector_steps + 1)
    assert ((x.mean(0) - mu).abs() < 5 * math.sqrt(0.3 / n) + 0.02).all()
    assert ((x.var(0) - 0.3).abs() < 5 * 0.3 * math.sqrt(2 / n) + 0.02).all()


def test_pc_without_corrector_is_ancestral_sampling():
    schedule = NoiseSchedule.from_name("linear", 20, beta_start=1e-3, beta_end=0.3)
    denoiser = _gaussian(schedule, torch.tensor([0.5, 0.5]), 0.5)
    for grid in (None, timestep_grid(20, 5)):
        pc = pc_sample(
            denoiser,
            (50, 2),
            grid=grid,
            corrector_steps=0,
            generator=torch.Generator().manual_seed(3),
        )
        ddpm = ddpm_sample(denoiser, (50, 2), grid=grid, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(pc.x, ddpm.x)
