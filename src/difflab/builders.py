"""Config -> objects: the one place where config sections become constructor arguments.

Math modules never read a config; the CLI and the trainer call these builders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from difflab.config import (
    IMAGE_DATA,
    Config,
    DataConfig,
    LossName,
    ModelConfig,
    ModelName,
    SamplerName,
    ScheduleConfig,
)
from difflab.data import images
from difflab.data.dataset import Dataset, standardize
from difflab.data.files import load_vectors
from difflab.data.toy import sample_toy
from difflab.losses.base import Objective
from difflab.losses.ddpm import HybridObjective, SimpleObjective
from difflab.losses.score_matching import (
    DenoisingObjective,
    ExactObjective,
    NCSNObjective,
    SlicedObjective,
    geometric_sigmas,
)
from difflab.losses.sohl_dickstein import SohlDicksteinObjective
from difflab.losses.vlb import VLBObjective
from difflab.models import MLP, ConditionalLinearNet, ScoreMLP
from difflab.models.unet import UNet
from difflab.reverse import output_channels
from difflab.samplers import (
    ChainResult,
    ddim_sample,
    ddpm_respaced_sample,
    dpmpp2m_sample,
    ode_sample,
)
from difflab.samplers.langevin import (
    annealed_langevin_sample,
    ddpm_score,
    langevin_sample,
    langevin_step_sizes,
    pc_sample,
)
from difflab.schedules import NoiseSchedule, full_timesteps
from difflab.timesteps import TimestepSampler


def build_schedule(cfg: ScheduleConfig, *, warn: bool = True) -> NoiseSchedule:
    return NoiseSchedule.from_name(
        cfg.name, cfg.T, beta_start=cfg.beta_start, beta_end=cfg.beta_end, warn=warn
    )


def build_dataset(cfg: DataConfig, *, seed: int = 0) -> Dataset:
    """The training data: a seeded toy draw of ``n_train`` points, the user's file, or the
    training split of an image source (in [-1, 1], ``levels`` recorded)."""
    if cfg.name in IMAGE_DATA:
        return build_image_split(cfg, "train")
    if cfg.name == "file":
        assert cfg.path is not None
        x = load_vectors(cfg.path)
    else:
        x = sample_toy(cfg.name, cfg.n_train, seed=seed)
    if cfg.normalize == "standardize":
        return standardize(cfg.name, x)
    return Dataset(cfg.name, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def load_images(cfg: DataConfig) -> tuple[np.ndarray, int]:
    """Every image of an image source in user space, (N, H, W[, C]) integers, and its levels."""
    if cfg.name == "digits":
        return images.load_digits_images(), images.DIGITS_LEVELS
    assert cfg.path is not None
    if cfg.name == "images":
        x = images.load_image_folder(cfg.path, image_size=cfg.image_size, color=cfg.color)
        return x, 256
    levels = cfg.levels or 256
    x = images.load_image_array(cfg.path, levels=levels)
    if cfg.image_size is not None and x.shape[1:3] != (cfg.image_size, cfg.image_size):
        if levels != 256:
            raise ValueError(
                f"data.image_size resizes 8-bit images only; these have data.levels = {levels}"
            )
        x = images.resize_array(x, cfg.image_size)
    return x, levels


def build_image_split(cfg: DataConfig, split: str) -> Dataset:
    """The ``split`` ("train", "val", "test") of an image source as a Dataset in model space
    (N, C, H, W) in [-1, 1], with its number of levels (see data/images.split_indices)."""
    x, levels = load_images(cfg)
    idx = images.split_indices(x.shape[0], split)
    if idx.size == 0:
        raise ValueError(f"{cfg.name}: {x.shape[0]} images leave the {split} split empty")
    model_x = images.to_model_space(x[idx], levels)
    return Dataset(cfg.name, torch.from_numpy(model_x), levels=levels)


def build_model(
    cfg: ModelConfig, data_shape: tuple[int, ...], *, T: int, noise_conditional: bool = False
) -> nn.Module:
    """The network for data of shape ``data_shape`` (one example) and a T-step schedule.

    ``noise_conditional``: a score network takes the noise level sigma as input (NCSN); see
    :func:`is_noise_conditional`. Diffusion networks ignore it.
    """
    if cfg.name == ModelName.UNET:
        if len(data_shape) != 3:
            raise ValueError(
                f"model.name = 'unet' takes images (N, C, H, W); this data has examples of shape "
                f"{data_shape}: use model.name = 'mlp'"
            )
        return UNet(
            data_shape[0],
            output_channels(data_shape[0], cfg.variance),
            channels=cfg.channels,
            channel_mult=cfg.channel_mult,
            num_res_blocks=cfg.num_res_blocks,
            attention=cfg.attention,
            dropout=cfg.dropout,
            time_dim=cfg.time_dim,
            time_scale=1000.0 / T,
        )
    if len(data_shape) != 1:
        raise ValueError(
            f"model.name = {cfg.name!r} takes vector data (N, D); this data has examples of "
            f"shape {data_shape}: use model.name = 'unet' for images"
        )
    dim = data_shape[0]
    if cfg.name == ModelName.SCORE_MLP:
        return ScoreMLP(
            dim,
            noise_conditional=noise_conditional,
            width=cfg.width,
            depth=cfg.depth,
            activation=cfg.activation,
            noise_dim=cfg.time_dim,
        )
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


def is_noise_conditional(cfg: Config) -> bool:
    """Whether the run's score network takes the noise level as input (NCSN)."""
    return cfg.loss.name == LossName.NCSN


def build_sigmas(cfg: Config) -> torch.Tensor:
    """The NCSN noise ladder sigma_1 > ... > sigma_L of ``loss``."""
    return geometric_sigmas(cfg.loss.sigma_max, cfg.loss.sigma_min, cfg.loss.n_sigmas)


def build_objective(
    cfg: Config, schedule: NoiseSchedule, *, levels: int | None = None
) -> Objective:
    """The training objective named by ``loss.name``; ``levels``: the data's grid (or None)."""
    loss = cfg.loss
    name = loss.name
    if name == LossName.EXACT:
        return ExactObjective()
    if name in (LossName.SLICED, LossName.SLICED_VR):
        return SlicedObjective(
            n_projections=loss.n_projections,
            projection=loss.projection,
            variance_reduced=name == LossName.SLICED_VR,
        )
    if name == LossName.DSM:
        return DenoisingObjective(loss.sigma)
    if name == LossName.NCSN:
        return NCSNObjective(build_sigmas(cfg))
    kw = {"prediction": cfg.model.prediction, "variance": cfg.model.variance}
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


def _model_kwargs(cfg: Config) -> dict:
    """What every sampler needs to know about the network and the grid."""
    return {
        "prediction": cfg.model.prediction,
        "variance": cfg.model.variance,
        "clip": _clip(cfg),
        "spacing": cfg.sample.spacing,
    }


def _ddpm(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    return ddpm_respaced_sample(
        model,
        schedule,
        shape,
        steps=cfg.sample.steps or schedule.T,
        **_model_kwargs(cfg),
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


def _ddim(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    return ddim_sample(
        model,
        schedule,
        shape,
        steps=cfg.sample.steps,
        eta=cfg.sample.eta,
        **_model_kwargs(cfg),
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


def _ode(method: str) -> SamplerFn:
    def run(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
        return ode_sample(
            model,
            schedule,
            shape,
            method=method,
            steps=cfg.sample.steps,
            **_model_kwargs(cfg),
            generator=generator,
            device=device,
            record=record,
            progress=progress,
        )

    return run


def _dpmpp2m(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    return dpmpp2m_sample(
        model,
        schedule,
        shape,
        steps=cfg.sample.steps,
        **_model_kwargs(cfg),
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


def _pc(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    if cfg.sample.steps not in (None, schedule.T):
        raise ValueError(
            f"sampler 'pc' runs all T = {schedule.T} predictor steps; got --steps "
            f"{cfg.sample.steps} (omit --steps)"
        )
    return pc_sample(
        model,
        schedule,
        shape,
        snr=cfg.sample.snr,
        corrector_steps=cfg.sample.corrector_steps,
        prediction=cfg.model.prediction,
        variance=cfg.model.variance,
        clip=_clip(cfg),
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


#: Defaults of ``sample.steps`` and ``sample.step_size`` for the Langevin samplers.
LANGEVIN_STEPS = 1000
LANGEVIN_STEP_SIZE = 1e-3
ANNEALED_STEP_SIZE = 2e-5


def _langevin(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    sizes = langevin_step_sizes(
        cfg.sample.step_size or LANGEVIN_STEP_SIZE,
        cfg.sample.steps or LANGEVIN_STEPS,
        cfg.sample.step_decay,
    )
    return langevin_sample(
        model,
        shape,
        step_sizes=sizes,
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


def _annealed(cfg, model, schedule, shape, *, generator, device, record, progress) -> ChainResult:
    return annealed_langevin_sample(
        noise_level_score(model),
        build_sigmas(cfg).tolist(),
        shape,
        n_steps_each=cfg.sample.n_steps_each,
        step_size=cfg.sample.step_size or ANNEALED_STEP_SIZE,
        generator=generator,
        device=device,
        record=record,
        progress=progress,
    )


def noise_level_score(model: nn.Module) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``score(x, sigma)`` for a noise-conditional network and one level shared by the batch."""

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        level = torch.tensor([sigma], dtype=x.dtype, device=x.device).expand(x.shape[0])
        return model(x, level)

    return score


#: ``sample.sampler`` name -> the function that runs it with the run's config.
SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "euler": _ode("euler"),
    "heun": _ode("heun"),
    "dpmpp2m": _dpmpp2m,
    "pc": _pc,
    "langevin": _langevin,
    "annealed_langevin": _annealed,
}


def chain_length(cfg: Config, schedule: NoiseSchedule) -> int:
    """The label of the sampler's starting state (its chain runs from this label down to 0)."""
    if cfg.sample.sampler == SamplerName.LANGEVIN:
        return cfg.sample.steps or LANGEVIN_STEPS
    if cfg.sample.sampler == SamplerName.ANNEALED_LANGEVIN:
        return cfg.loss.n_sigmas * cfg.sample.n_steps_each
    return schedule.T


class ScoreField(NamedTuple):
    """A run's score at its smallest noise level, ``score(x)`` in model space, and the law it
    estimates: the score of ``scale`` * x_0 + ``noise_std`` * z (z ~ N(0, I), x_0 the data)."""

    score: Callable[[torch.Tensor], torch.Tensor]
    scale: float
    noise_std: float


def score_field(cfg: Config, model: nn.Module, schedule: NoiseSchedule) -> ScoreField:
    """The learned score of a run: the score network itself; for NCSN at sigma_min; for a
    diffusion model -eps_theta(x, 0) / sqrt(1 - abar_1), the score of q(x_1)."""
    name = cfg.loss.name
    if name == LossName.NCSN:
        sigma = float(build_sigmas(cfg)[-1])
        return ScoreField(lambda x: noise_level_score(model)(x, sigma), 1.0, sigma)
    if name == LossName.DSM:
        return ScoreField(model, 1.0, cfg.loss.sigma)
    if name in (LossName.EXACT, LossName.SLICED, LossName.SLICED_VR):
        return ScoreField(model, 1.0, 0.0)

    def score(x: torch.Tensor) -> torch.Tensor:
        t = full_timesteps(0, x.shape[0], x.device)
        return ddpm_score(
            model,
            schedule,
            x,
            t,
            prediction=cfg.model.prediction,
            variance=cfg.model.variance,
        )

    abar = float(schedule.alphas_cumprod[0])
    return ScoreField(score, abar**0.5, (1.0 - abar) ** 0.5)


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
