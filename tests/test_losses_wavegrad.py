"""WaveGrad's continuous noise-level training: the noising step has unit variance at every
level, drawn levels lie between their adjacent levels, and the loss of a network that
predicts nothing has its closed form."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.audio.mel import MelSettings, MelSpectrogram
from difflab.losses.wavegrad import (
    WaveGradObjective,
    draw_log_uniform_levels,
    draw_noise_levels,
    noise_levels,
    q_sample_level,
)
from difflab.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.from_name("linear", 1000, beta_start=1e-6, beta_end=0.01)


def _buggy_q_sample(y0, level, noise):
    """The known bug: the variance 1 - l^2 where the standard deviation belongs."""
    l = level[:, None, None]
    return l * y0 + (1 - l * l) * noise


@pytest.mark.parametrize("level", [0.05, 0.3, 0.5, 0.8, 0.99])
def test_the_noising_step_has_unit_variance_at_every_level(level):
    """Unit-variance y_0 and eps: Var(l y0 + sqrt(1 - l^2) eps) = 1. With 400k values the
    variance's standard error is sqrt(2 / 4e5) = 0.0022: tolerance 0.015 (~7 se). The buggy
    form has variance l^2 + (1 - l^2)^2, 0.8125 at l = 0.5 (and 0.96 at 0.8): it fails."""
    g = torch.Generator().manual_seed(0)
    y0 = torch.randn(100, 1, 4000, generator=g)
    eps = torch.randn(100, 1, 4000, generator=g)
    levels = torch.full((100,), level)
    assert float(q_sample_level(y0, levels, eps).var()) == pytest.approx(1.0, abs=0.015)
    buggy = float(_buggy_q_sample(y0, levels, eps).var())
    assert abs(buggy - 1.0) > 0.015 or level > 0.95 or level < 0.1


def test_any_rank():
    y0 = torch.zeros(4, 3)
    out = q_sample_level(y0, torch.tensor([1.0, 0.0, 0.6, 0.8]), torch.ones(4, 3))
    torch.testing.assert_close(out[:, 0], torch.tensor([0.0, 1.0, 0.8, 0.6]))


def test_levels_are_sqrt_alpha_bar_and_decrease():
    levels = noise_levels(SCHEDULE)
    assert levels.shape == (1001,) and float(levels[0]) == 1.0
    torch.testing.assert_close(
        levels[1:].float(), SCHEDULE.alphas_cumprod.sqrt(), rtol=1e-6, atol=0
    )
    assert bool((levels[1:] < levels[:-1]).all())


def test_drawn_levels_lie_between_their_adjacent_levels():
    """Every l is in [l_s, l_{s-1}] for its s, s covers 1..S uniformly (chi-square-free check:
    each decile of s holds 10 % +- 1 % of 200k draws, 5 se), and within a step the position is
    uniform (mean 0.5 +- 0.005)."""
    levels = noise_levels(SCHEDULE)
    s, l = draw_noise_levels(levels, 200_000, generator=torch.Generator().manual_seed(1))
    lo, hi = levels[s].float(), levels[s - 1].float()
    assert bool(((l >= lo - 1e-7) & (l <= hi + 1e-7)).all())
    assert int(s.min()) == 1 and int(s.max()) == 1000
    counts = torch.bincount((s - 1) // 100, minlength=10).double() / s.numel()
    assert float((counts - 0.1).abs().max()) < 0.01
    pos = ((l.double() - lo.double()) / (hi.double() - lo.double())).mean()
    assert float(pos) == pytest.approx(0.5, abs=0.005)


def test_log_uniform_levels_spread_the_noise_std_evenly_over_its_decades():
    """level_draw = "log_uniform": l within [l_S, l_1] of the schedule and log sigma uniform
    (sigma = sqrt(1 - l^2)): each tenth of the log range holds 10 % +- 1 % of 200k draws
    (5 se); the paper's draw, against it, puts 0.4 % below sigma = 0.01 and this one a third."""
    levels = noise_levels(SCHEDULE)
    lo, hi = (float(torch.sqrt(1 - levels[i] ** 2)) for i in (1, -1))
    g = torch.Generator().manual_seed(4)
    l32 = draw_log_uniform_levels(levels, 200_000, generator=g)
    # within [l_S, l_1] as float32 rounds them (float32 resolves sigma to ~6 % at 1e-3)
    assert float(l32.min()) >= float(levels[-1].float()) and float(l32.max()) <= float(
        levels[1].float()
    )
    l = l32.double()
    sigma = torch.sqrt(1 - l * l)
    pos = (sigma.log() - math.log(lo)) / (math.log(hi) - math.log(lo))
    counts = torch.bincount((pos * 10).long().clamp(0, 9), minlength=10).double() / 200_000
    assert float((counts - 0.1).abs().max()) < 0.01
    below = float((sigma < 0.01).double().mean())
    assert below == pytest.approx(math.log(0.01 / lo) / math.log(hi / lo), abs=0.005)
    _, paper = draw_noise_levels(levels, 200_000, generator=g)
    assert float((torch.sqrt(1 - paper.double() ** 2) < 0.01).double().mean()) < 0.01


def test_the_objective_draws_by_level_draw():
    """The objective's levels follow loss.level_draw: the median noise std of the paper's draw
    is about 0.84, that of the log-uniform one sqrt(sigma_1 sigma_S), about 0.032, and that of
    their half-and-half mixture between the two (about 0.34)."""
    mel = MelSpectrogram(MelSettings())
    g = torch.Generator().manual_seed(5)
    for draw, median in (("paper", 0.844), ("log_uniform", 0.0316), ("mixed", 0.34)):
        obj = WaveGradObjective(SCHEDULE, mel, level_draw=draw)
        l = obj.draw_levels(20_000, generator=g, device=torch.device("cpu")).double()
        assert float(torch.sqrt(1 - l * l).median()) == pytest.approx(median, rel=0.15)
    with pytest.raises(ValueError, match="loss.level_draw"):
        WaveGradObjective(SCHEDULE, mel, level_draw="uniform")


class _Zero(torch.nn.Module):
    """Predicts eps_hat = 0 and records what it saw."""

    def forward(self, y, level, mel):
        self.seen = (y, level, mel)
        return torch.zeros_like(y)


@pytest.mark.parametrize(("norm", "expected"), [("l1", math.sqrt(2 / math.pi)), ("l2", 1.0)])
def test_the_loss_of_a_zero_network_is_the_noises_moment(norm, expected):
    """eps_hat = 0: L1 = E|eps| = sqrt(2 / pi), L2 = E eps^2 = 1 per example. Each example's
    mean over 6400 samples has a standard error of at most 0.018 (L2: sqrt(2 / 6400)); the mean
    over 16 examples 0.0045: tolerance 0.02."""
    mel = MelSpectrogram(MelSettings())
    obj = WaveGradObjective(SCHEDULE, mel, norm=norm)
    x0 = 0.1 * torch.randn(16, 1, 512 + 32 * 200 + 312, generator=torch.Generator().manual_seed(2))
    net = _Zero()
    out = obj(net, x0, generator=torch.Generator().manual_seed(3))
    assert out.loss.shape == (16,)
    assert float(out.loss.mean()) == pytest.approx(expected, abs=0.02)
    y, level, features = net.seen
    assert y.shape == (16, 1, 6400) and level.shape == (16,) and features.shape == (16, 80, 32)
    torch.testing.assert_close(features, mel.features_of_padded(x0[:, 0]))


def test_split_returns_the_segment_without_its_context():
    obj = WaveGradObjective(SCHEDULE, MelSpectrogram(MelSettings()))
    x0 = torch.arange(512 + 8 * 200 + 312, dtype=torch.float32)[None, None].repeat(2, 1, 1)
    y0, mel = obj.split(x0)
    torch.testing.assert_close(y0[0, 0], torch.arange(512, 512 + 1600, dtype=torch.float32))
    assert mel.shape == (2, 80, 8)


def test_norm_is_checked():
    with pytest.raises(ValueError, match="loss.norm"):
        WaveGradObjective(SCHEDULE, MelSpectrogram(MelSettings()), norm="l3")
