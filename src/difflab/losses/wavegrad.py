"""WaveGrad's training on a continuous noise level (Chen et al. 2020, Sec. 3.1, Algorithm 1).

With the training schedule's levels l_s = sqrt(alpha_bar_s) (l_0 = 1 > l_1 > ... > l_S):

1. draw s uniformly in 1..S and the level l uniformly between l_s and l_{s-1} (``level_draw``
   "paper"); or (``level_draw`` "log_uniform", not in the paper) the noise std
   sigma = sqrt(1 - l^2) log-uniformly between the schedule's smallest and largest,
   sqrt(1 - l_1^2) and sqrt(1 - l_S^2): each decade of sigma gets the same share of training
   (WaveGrad's schedule puts 0.4% of the paper's draws below sigma = 0.01, where the last
   inference steps run; see docs/audio.md); or (``level_draw`` "mixed") each example's level
   by one of the two rules, chosen with probability 1/2;
2. y_noisy = l y_0 + sqrt(1 - l^2) eps, eps ~ N(0, I): unit variance for unit-variance y_0 at
   every level (a popular implementation multiplies eps by 1 - l^2, the variance, instead);
3. the loss is || eps - eps_theta(y_noisy, l, mel) ||_1 (the paper's L1; L2 as an option),
   the mean over samples per example.

The network sees l itself, never s, so any inference schedule is valid afterwards. The mel
comes from the clean segment's audio by the one :class:`~difflab.audio.mel.MelSpectrogram`,
with the context each training segment carries (``audio/mel.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difflab.audio.mel import MelSpectrogram
from difflab.choices import StrEnum, parse_enum
from difflab.forward import randn_like
from difflab.losses.base import LossOutput
from difflab.schedules import NoiseSchedule, expand_like


class Norm(StrEnum):
    L1 = "l1"
    L2 = "l2"


class LevelDraw(StrEnum):
    PAPER = "paper"
    LOG_UNIFORM = "log_uniform"
    MIXED = "mixed"


def noise_levels(schedule: NoiseSchedule) -> torch.Tensor:
    """l_s = sqrt(alpha_bar_s) for s = 0..S (l_0 = 1), float64 (S + 1,), decreasing."""
    log_abar = torch.cumsum(torch.log1p(-schedule.betas.double().cpu()), 0)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.exp(0.5 * log_abar)])


def draw_noise_levels(
    levels: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, l): s int64 (B,) uniform in 1..S and l float32 (B,) uniform between l_s and
    l_{s-1} (``levels`` from :func:`noise_levels`)."""
    S = levels.shape[0] - 1
    s = torch.randint(1, S + 1, (batch_size,), generator=generator, device=device)
    u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
    table = levels.to(device)
    level = table[s] + u * (table[s - 1] - table[s])
    return s, level.float()


def draw_log_uniform_levels(
    levels: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """l float32 (B,) whose noise std sqrt(1 - l^2) is log-uniform between those of l_1 and
    l_S (``levels`` from :func:`noise_levels`)."""
    lo, hi = (float(torch.sqrt(1.0 - levels[i] ** 2)) for i in (1, -1))
    u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64)
    sigma = torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return torch.sqrt(1.0 - sigma * sigma).float()


def q_sample_level(y0: torch.Tensor, level: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """y = l y_0 + sqrt(1 - l^2) eps, any rank; level (B,) in [0, 1]."""
    l = expand_like(level.to(y0.dtype), y0)
    return l * y0 + torch.sqrt((1.0 - l * l).clamp(min=0.0)) * noise


class WaveGradObjective:
    """``objective(model, x0, generator=...)``: x0 (B, 1, n) training segments with their mel
    context; ``model(y_noisy, level, mel)`` predicts eps. Returns per-example losses (B,)."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        mel: MelSpectrogram,
        *,
        norm: str = "l1",
        level_draw: str = "paper",
    ) -> None:
        self.schedule = schedule
        self.mel = mel
        self.norm = parse_enum(Norm, norm, "loss.norm")
        self.level_draw = parse_enum(LevelDraw, level_draw, "loss.level_draw")
        self.levels = noise_levels(schedule)

    def draw_levels(
        self, batch_size: int, *, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        """Noise levels l (B,) by ``level_draw`` (the module docstring, step 1)."""
        kw = {"generator": generator, "device": device}
        if self.level_draw is LevelDraw.PAPER:
            return draw_noise_levels(self.levels, batch_size, **kw)[1]
        log_uniform = draw_log_uniform_levels(self.levels, batch_size, **kw)
        if self.level_draw is LevelDraw.LOG_UNIFORM:
            return log_uniform
        paper = draw_noise_levels(self.levels, batch_size, **kw)[1]
        coin = torch.rand(batch_size, generator=generator, device=device) < 0.5
        return torch.where(coin, paper, log_uniform)

    def split(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean segment (B, 1, F * hop), mel features (B, n_mels, F)) of stored segments."""
        self.mel.to(x0.device)
        mel = self.mel.features_of_padded(x0[:, 0])
        left = self.mel.settings.context[0]
        length = mel.shape[-1] * self.mel.settings.hop_length
        return x0[..., left : left + length], mel

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        y0, mel = self.split(x0)
        # 1. a continuous level (by default between two adjacent levels of the schedule)
        level = self.draw_levels(y0.shape[0], generator=generator, device=y0.device)
        # 2. the noisy waveform, unit variance at every level
        eps = randn_like(y0, generator)
        y = q_sample_level(y0, level, eps)
        # 3. L1 (or L2) to the noise, per example
        err = model(y, level, mel) - eps
        err = err.abs() if self.norm is Norm.L1 else err * err
        loss = err.reshape(err.shape[0], -1).mean(dim=1)
        return LossOutput(loss, {self.norm.value: loss.detach()})
