"""Vocoding: a WaveGrad network turns mel features into audio along any inference schedule.

The network sees the noise level sqrt(alpha_bar), not a step index (Chen et al. 2020,
Sec. 3.1), so a K-step inference schedule is just K betas: they define a discrete process
(``noise.DiscreteProcess``) and :class:`NoiseLevelNet` feeds the network the level of each
step. Every sampler then runs unchanged behind a ``Denoiser`` (eps prediction, the posterior
variance beta_tilde: WaveGrad's Algorithm 2 is ``ddpm_sample`` on the full K-step grid;
x0_hat is clipped to [-1, 1], the audio range, as implementations clamp the waveform).

Schedules (:func:`respaced_betas`): the training schedule respaced to K of its steps (the
default without a tuned schedule); the paper's few-step schedules come from a search scored by
log-mel distance (``app/tune_vocoder.py``) and are stored in the run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from difflab.denoiser import Denoiser
from difflab.noise import DiscreteProcess
from difflab.samplers import ChainResult, ddpm_sample, timestep_grid
from difflab.samplers._chain import Record
from difflab.schedules import NoiseSchedule


class NoiseLevelNet(nn.Module):
    """``net(y, index)`` for a Denoiser: the step index of ``process`` (int64 or fractional,
    (B,)) becomes the level alpha(index + 1) = sqrt(alpha_bar), and ``mel`` (B, n_mels, F),
    bound once per batch, the conditioning of ``wavegrad(y, level, mel)``."""

    def __init__(self, wavegrad: nn.Module, process: DiscreteProcess, mel: torch.Tensor) -> None:
        super().__init__()
        self.wavegrad = wavegrad
        self.process = process
        self.mel = mel
        self.log_alpha_bars = torch.as_tensor(process.log_alpha_bars, dtype=torch.float64)

    def levels(self, index: torch.Tensor) -> torch.Tensor:
        """sqrt(alpha_bar) at paper time index + 1, log alpha_bar linear between integers."""
        s = index.detach().double().cpu() + 1.0
        k = s.floor().clamp(max=self.process.T - 1).long()
        frac = s - k
        la = self.log_alpha_bars
        return torch.exp(0.5 * (la[k] + frac * (la[k + 1] - la[k])))

    def forward(self, y: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        level = self.levels(index).to(device=y.device, dtype=y.dtype)
        return self.wavegrad(y, level, self.mel)


def respaced_betas(
    train_schedule: NoiseSchedule, steps: int, spacing: str = "linspace"
) -> list[float]:
    """The betas of the K-step process that visits K of the training schedule's times
    (``samplers.timestep_grid``): beta_k = 1 - alpha_bar(s_k) / alpha_bar(s_{k-1}); for K = T
    the training betas themselves."""
    process = DiscreteProcess(train_schedule)
    grid = sorted(timestep_grid(train_schedule.T, steps, spacing))
    la = [process.log_alpha_bar(s) for s in grid]
    return [-math.expm1(b - a) for a, b in itertools.pairwise(la)]


def vocode(
    wavegrad: nn.Module,
    mel: torch.Tensor,
    betas: Sequence[float],
    *,
    sampler: Callable[..., ChainResult] = ddpm_sample,
    clip: bool = True,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
    **sampler_kwargs: Any,
) -> ChainResult:
    """Audio (B, 1, F * hop) from mel features (B, n_mels, F) along the inference schedule
    ``betas`` (K values, the chain's K steps), with ``sampler`` (default ancestral)."""
    process = DiscreteProcess(NoiseSchedule(list(betas), warn=False))
    net = NoiseLevelNet(wavegrad, process, mel)
    denoiser = Denoiser(
        net,
        process,
        prediction="eps",
        variance="small",
        clip=(-1.0, 1.0) if clip else None,
        continuous_time=True,
    )
    shape = (mel.shape[0], 1, mel.shape[-1] * wavegrad.hop_length)
    return sampler(
        denoiser,
        shape,
        grid=process.default_grid(),
        generator=generator,
        record=record,
        progress=progress,
        **sampler_kwargs,
    )
