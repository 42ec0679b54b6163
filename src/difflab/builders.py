"""Config -> objects: the one place where config sections become constructor arguments.

Math modules never read a config; the CLI and the trainer call these builders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import torch
from torch import nn

from difflab.config import Config, DataConfig, LossName, ModelConfig, ModelName, ScheduleConfig
from difflab.data.dataset import Dataset, standardize
from difflab.data.files import load_vectors
from difflab.data.toy import sample_toy
from difflab.losses.base import Objective
from difflab.losses.ddpm import HybridObjective, SimpleObjective
from difflab.losses.sohl_dickstein import SohlDicksteinObjective
from difflab.losses.vlb import VLBObjective
from difflab.models import MLP, ConditionalLinearNet
from difflab.reverse import output_channels
from difflab.samplers import ChainResult, ddpm_sample
from difflab.schedules import NoiseSchedule
from difflab.timesteps import TimestepSampler


def build_schedule(cfg: ScheduleConfig, *, warn: bool = True) -> NoiseSchedule:
    return NoiseSchedule.from_name(
        cfg.name, cfg.T, beta_start=cfg.beta_start, beta_end=cfg.beta_end, warn=warn
    )


def build_dataset(cfg: DataConfig, *, seed: int = 0) -> Dataset:
    """The training data: a seeded toy draw of ``n_train`` points, or the user's file."""
    if cfg.name == "file":
        assert cfg.path is not None
        x = load_vectors(cfg.path)
    else:
        x = sample_toy(cfg.name, cfg.n_train, seed=seed)
    if cfg.normalize == "standardize":
        return standardize(cfg.name, x)
    return Dataset(cfg.name, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def build_model(cfg: ModelConfig, data_shape: tuple[int, ...], *, T: int) -> nn.Module:
    """The network for data of shape ``data_shape`` (one example) and a T-step schedule."""
    if len(data_shape) != 1:
        raise ValueError(
            f"model.name = {cfg.name!r} takes vector data (N, D); this data has examples of "
            f"shape {data_shape}"
        )
    dim = data_shape[0]
    out = output_channels(dim, cfg.variance)
    if cfg.name == ModelName.CONDITIONAL_LINEAR:
        return ConditionalLinearNet(
            dim, out, T=T, width=cfg.width, depth=cfg.depth, activation=cfg.activation
        )
    return MLP(
        dim,
        out,
        width=cfg.width,
        depth=cfg.depth,
        activation=cfg.activation,
        time_dim=cfg.time_dim,
        time_scale=1000.0 / T,
    )


def build_objective(
    cfg: Config, schedule: NoiseSchedule, *, levels: int | None = None
) -> Objective:
    """The training objective named by ``loss.name``; ``levels``: the data's grid (or None)."""
    kw = {"prediction": cfg.model.prediction, "variance": cfg.model.variance}
    name = cfg.loss.name
    if name == LossName.SOHL_DICKSTEIN:  # t = 0 is fixed: draw from the T - 1 learned steps
        timesteps = TimestepSampler(schedule.T - 1, cfg.loss.timesteps)
        return SohlDicksteinObjective(schedule, timesteps, **kw)
    timesteps = TimestepSampler(schedule.T, cfg.loss.timesteps)
    if name == LossName.VLB:
        return VLBObjective(schedule, timesteps, levels=levels, **kw)
    if name == LossName.HYBRID:
        return HybridObjective(
            schedule, timesteps, hybrid_lambda=cfg.loss.hybrid_lambda, levels=levels, **kw
        )
    return SimpleObjective(schedule, timesteps, **kw)


class SamplerFn(Protocol):
    """How ``generate`` calls a sampler: model space in, a ChainResult out."""

    def __call__(
        self,
        cfg: Config,
        model: nn.Module,
        schedule: NoiseSchedule,
        shape: tuple[int, ...],
        *,
        generator: torch.Generator | None,
        device: torch.device | str,
        record: Iterable[int] | None,
        progress: bool,
    ) -> ChainResult: ...


def _clip(cfg: Config) -> tuple[float, float] | None:
    return (-1.0, 1.0) if cfg.sample.clip_x0 else None


def _ddpm(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    if cfg.sample.steps not in (None, schedule.T):
        raise ValueError(
            f"sampler 'ddpm' runs all T = {schedule.T} steps; got --steps {cfg.sample.steps} "
            "(omit --steps)"
        )
    return ddpm_sample(
        model,
        schedule,
        shape,
        prediction=cfg.model.prediction,
        variance=cfg.model.variance,
        clip=_clip(cfg),
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


#: ``sample.sampler`` name -> the function that runs it with the run's config.
SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": _ddpm,
}


def generate(
    cfg: Config,
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Run the sampler named by ``sample.sampler`` in model space."""
    return SAMPLERS[cfg.sample.sampler](
        cfg,
        model,
        schedule,
        shape,
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )
