"""Config -> objects: the one place where config sections become constructor arguments.

Every name is looked up in the registry (``app/registry.py``); a row's ``keys`` are passed from
its config section as keyword arguments of the same name, its ``uses`` from what the run
supplies (:func:`_ingredients`), its ``fixed`` as they are. Math modules never read a config.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from difflab.app.config import Config, ScheduleConfig
from difflab.app.registry import DIFFUSION, LADDER, LOSSES, MODELS, SAMPLERS, VOCODER
from difflab.audio.mel import MelSpectrogram
from difflab.continuous import DEFAULT_STEPS, VPProcess
from difflab.denoiser import Denoiser
from difflab.formulation import NOISE_INPUT_SCALES, ContinuousDenoiser, Formulation
from difflab.guidance import GuidedDenoiser
from difflab.losses.base import Objective
from difflab.losses.score_matching import geometric_sigmas
from difflab.noise import DiscreteProcess, NoiseProcess
from difflab.reverse import output_channels
from difflab.samplers import ChainResult, ScoreLadder, noise_level_grid, timestep_grid
from difflab.samplers._chain import Record
from difflab.schedules import NoiseSchedule

#: The default noise-level range of continuous formulations, per data scale sd = sigma_data
#: (measured on the swiss roll, docs/continuous.md): sigma_max = SIGMA_MAX_PER_SIGMA_DATA * sd
#: (EDM's 80 is for images in [-1, 1] and wastes few-step grids on small data), sigma_min =
#: SIGMA_MIN_PER_SIGMA_DATA * sd (EDM's 0.002 at sd = 0.5).
SIGMA_MAX_PER_SIGMA_DATA = 10.0
SIGMA_MIN_PER_SIGMA_DATA = 0.004


def build_schedule(cfg: ScheduleConfig, *, warn: bool = True) -> NoiseSchedule:
    return NoiseSchedule.from_name(
        cfg.name, cfg.T, beta_start=cfg.beta_start, beta_end=cfg.beta_end, warn=warn
    )


def build_sigmas(cfg: Config) -> torch.Tensor:
    """The NCSN noise ladder sigma_1 > ... > sigma_L of ``loss``."""
    return geometric_sigmas(cfg.loss.sigma_max, cfg.loss.sigma_min, cfg.loss.n_sigmas)


def _ingredients(
    cfg: Config, *, data_shape: tuple[int, ...] = (), schedule: NoiseSchedule | None = None,
    levels: int | None = None, num_classes: int | None = None,
) -> dict[str, Callable[[], Any]]:  # fmt: skip
    """What a run supplies to registry rows (``uses``), each made on demand."""
    out = output_channels(data_shape[0], cfg.model.variance) if data_shape else None
    return {
        "schedule": lambda: schedule,
        "prediction": lambda: cfg.model.prediction,
        "variance": lambda: cfg.model.variance,
        "levels": lambda: levels,
        "sigmas": lambda: build_sigmas(cfg),
        "data_dim": lambda: data_shape[0],
        "in_channels": lambda: data_shape[0],
        "out_dim": lambda: out,
        "out_channels": lambda: out,
        "T": lambda: cfg.schedule.T,
        "time_scale": lambda: _time_scale(cfg),
        "noise_conditional": lambda: LOSSES[cfg.loss.name].trains == LADDER,
        "process": lambda: VPProcess(
            cfg.schedule.name, beta_min=cfg.schedule.beta_min, beta_max=cfg.schedule.beta_max
        ),
        "mel": lambda: MelSpectrogram(cfg.mel.settings(cfg.data.sample_rate)),
        "n_mels": lambda: cfg.mel.n_mels,
        "num_classes": lambda: num_classes if cfg.model.class_conditional else None,
    }


def _time_scale(cfg: Config) -> float:
    """The network's embedding scale: 1000 / T for the step index of a discrete schedule, so
    every T spans the same frequencies; the formulation's for a continuous noise input."""
    row = LOSSES[cfg.loss.name]
    return NOISE_INPUT_SCALES[row.fn.noise_input] if row.continuous else 1000.0 / cfg.schedule.T


def _call(row: Any, section: Any, ingredients: dict[str, Callable[[], Any]]) -> Any:
    """``row.fn`` with the row's config keys, ingredients and fixed arguments."""
    kwargs = {key: getattr(section, key) for key in row.keys}
    kwargs.update({name: ingredients[name]() for name in row.uses})
    return row.fn(**kwargs, **getattr(row, "fixed", {}))


def build_model(
    cfg: Config, data_shape: tuple[int, ...], *, num_classes: int | None = None
) -> nn.Module:
    """The network named by ``model.name`` for data of shape ``data_shape`` (one example);
    ``num_classes``: the data's number of classes (needed if ``model.class_conditional``)."""
    row = MODELS[cfg.model.name]
    if cfg.model.class_conditional and not num_classes:
        raise ValueError(
            f"model.class_conditional = true needs labelled data, but data.name = "
            f"{cfg.data.name!r} has no class labels; use a toy mixture (e.g. 8gaussians), the "
            "digits, a .csv with a 'label' column, an .npz with 'labels' or class sub-folders"
        )
    rank = {"vector": 1, "audio": 2, "image": 3}[row.data]
    if len(data_shape) != rank:
        what = {1: "vector data (N, D)", 2: "audio (N, 1, L)", 3: "images (N, C, H, W)"}[rank]
        raise ValueError(
            f"model.name = {cfg.model.name!r} takes {what}; this data has examples of shape "
            f"{data_shape}: use model.name = {'unet' if rank == 1 else 'mlp'!r}"
        )
    return _call(row, cfg.model, _ingredients(cfg, data_shape=data_shape, num_classes=num_classes))


def build_objective(
    cfg: Config, schedule: NoiseSchedule, *, levels: int | None = None
) -> Objective:
    """The training objective named by ``loss.name``; ``levels``: the data's grid (or None)."""
    row = LOSSES[cfg.loss.name]
    return _call(row, cfg.loss, _ingredients(cfg, schedule=schedule, levels=levels))


def build_formulation(cfg: Config) -> Formulation | None:
    """A continuous formulation's process and parameterization (None for discrete losses)."""
    if not LOSSES[cfg.loss.name].continuous:
        return None
    if cfg.loss.sigma_data is None:
        raise ValueError(
            f"loss.sigma_data is not set for loss.name = {cfg.loss.name!r}: `difflab train` "
            "measures it from the data; set it to the data's std (0.5 for images in [-1, 1])"
        )
    return build_objective(cfg, None).formulation  # type: ignore[attr-defined]


def build_process(cfg: Config, schedule: NoiseSchedule) -> NoiseProcess:
    """The run's noise process: the formulation's, or the discrete schedule's."""
    formulation = build_formulation(cfg)
    return formulation.process if formulation is not None else DiscreteProcess(schedule)


def build_denoiser(
    cfg: Config, net: nn.Module, schedule: NoiseSchedule, *, labels: torch.Tensor | None = None
) -> Denoiser:
    """The run's diffusion network as samplers see it; ``labels`` (B,) for a class-conditional
    network (None: its null class, the unconditional model)."""
    clip = (-1.0, 1.0) if cfg.sample.clip_x0 else None
    formulation = build_formulation(cfg)
    if formulation is not None:
        return ContinuousDenoiser(
            net, formulation, variance=cfg.model.variance, clip=clip, labels=labels
        )
    return Denoiser(
        net,
        schedule,
        prediction=cfg.model.prediction,
        variance=cfg.model.variance,
        clip=clip,
        continuous_time=MODELS[cfg.model.name].continuous_time,
        labels=labels,
    )


def conditional_denoiser(
    cfg: Config,
    net: nn.Module,
    schedule: NoiseSchedule,
    labels: torch.Tensor | None,
    guidance: float | None = None,
) -> Denoiser | GuidedDenoiser:
    """The Denoiser for samples of classes ``labels`` (B,) with classifier-free guidance scale
    ``guidance`` (default ``sample.guidance``): plain conditional at s = 1, guided otherwise;
    without labels the run's ordinary Denoiser."""
    scale = cfg.sample.guidance if guidance is None else guidance
    if scale != 1.0 and cfg.train.label_dropout == 0:
        raise ValueError(
            f"guidance {scale} needs the unconditional model, which this run never trained "
            "(train.label_dropout = 0); sample with guidance 1"
        )
    if labels is None:
        return build_denoiser(cfg, net, schedule)
    labels = labels.to(next(net.parameters()).device)
    if scale == 1.0:
        return build_denoiser(cfg, net, schedule, labels=labels)
    return GuidedDenoiser(build_denoiser(cfg, net, schedule), labels, scale)


def noise_level_score(net: nn.Module) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``score(x, sigma)`` for a noise-conditional network and one level shared by the batch."""

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        level = torch.tensor([sigma], dtype=x.dtype, device=x.device).expand(x.shape[0])
        return net(x, level)

    return score


def sampler_model(
    cfg: Config,
    net: nn.Module,
    schedule: NoiseSchedule,
    *,
    labels: torch.Tensor | None = None,
    guidance: float | None = None,
) -> Any:
    """What the run's sampler runs: a Denoiser (of classes ``labels``, guided by ``guidance``,
    for a class-conditional run), a score s(x), or a ScoreLadder (NCSN)."""
    trains = LOSSES[cfg.loss.name].trains
    if trains == VOCODER:
        raise ValueError(
            "this is an audio run: its network turns a mel into audio; vocode with "
            "`difflab vocode RUN_DIR in.wav --out out.wav` or `difflab sample RUN_DIR`"
        )
    if trains == DIFFUSION:
        return conditional_denoiser(cfg, net, schedule, labels, guidance)
    if trains == LADDER:
        return ScoreLadder(noise_level_score(net), tuple(build_sigmas(cfg).tolist()))
    return net


def grid_range(cfg: Config, process: NoiseProcess) -> tuple[float, float]:
    """(sigma_min, sigma_max) of a noise-level grid: ``sample.sigma_min``/``sigma_max``, else
    for continuous formulations the measured defaults per data scale (within the process's
    range), for a discrete schedule its own range, from x_1 to x_T."""
    formulation = build_formulation(cfg)
    lo, hi = process.sigma_bar_min, process.sigma_bar_max
    if formulation is not None:
        sd = formulation.sigma_data
        lo = max(SIGMA_MIN_PER_SIGMA_DATA * sd, lo)
        hi = min(SIGMA_MAX_PER_SIGMA_DATA * sd, process.sigma_bar_limit)
    s = cfg.sample
    return (lo if s.sigma_min is None else s.sigma_min), (
        hi if s.sigma_max is None else s.sigma_max
    )


def sample_grid(cfg: Config, schedule: NoiseSchedule) -> list[float]:
    """The process times a grid sampler visits: for a discrete schedule K = ``sample.steps``
    (default T) by ``spacing``; else K (default 18) levels of ``sample.grid`` (default karras)
    over :func:`grid_range`, with ``sample.final_step``."""
    s, continuous = cfg.sample, LOSSES[cfg.loss.name].continuous
    if not continuous and s.grid is None:
        return timestep_grid(schedule.T, s.steps or schedule.T, s.spacing)
    process = build_process(cfg, schedule)
    lo, hi = grid_range(cfg, process)
    steps = s.steps or (DEFAULT_STEPS if continuous else schedule.T)
    return noise_level_grid(
        process, steps, s.grid or "karras", sigma_min=lo, sigma_max=hi, rho=s.rho,
        final_step=s.final_step,
    )  # fmt: skip


def generate(
    cfg: Config,
    net: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
    grid: list[float] | None = None,
    labels: torch.Tensor | None = None,
    guidance: float | None = None,
) -> ChainResult:
    """Run the sampler named by ``sample.sampler`` in model space, on the network's device,
    along ``grid`` (process times; default :func:`sample_grid`); ``labels`` (shape[0],) and
    ``guidance``: see :func:`conditional_denoiser`."""
    row = SAMPLERS[cfg.sample.sampler]
    kwargs = {k: getattr(cfg.sample, k) for k in row.keys if getattr(cfg.sample, k) is not None}
    if row.grid:
        kwargs["grid"] = sample_grid(cfg, schedule) if grid is None else grid
    if row.needs != DIFFUSION:  # score samplers draw their start where the network lives
        param = next(net.parameters(), None)
        kwargs["device"] = param.device if param is not None else "cpu"
    model = sampler_model(cfg, net, schedule, labels=labels, guidance=guidance)
    return row.fn(model, shape, generator=generator, record=record, progress=progress, **kwargs)


#: Vector-data networks up to this width and depth are built for real to estimate their size
#: (at most ~16M parameters: milliseconds); larger ones, and every image or audio network, on
#: PyTorch's meta device, whose first use costs ~2 s of start-up in every command.
REAL_ESTIMATE_MAX_WIDTH = 1024
REAL_ESTIMATE_MAX_DEPTH = 16


def estimate_device(cfg: Config, data_shape: tuple[int, ...]) -> str:
    """Where memory estimates build the network: "cpu" for a small vector-data network (cheap
    to allocate, and it spares the meta device's start-up), else "meta" (no storage)."""
    small = (
        len(data_shape) == 1
        and cfg.model.width <= REAL_ESTIMATE_MAX_WIDTH
        and cfg.model.depth <= REAL_ESTIMATE_MAX_DEPTH
    )
    return "cpu" if small else "meta"


@contextlib.contextmanager
def estimate_context(cfg: Config, data_shape: tuple[int, ...]):
    """The device for a throw-away estimating copy of the network; a real build's random
    initialisation leaves the global random state as it was."""
    device = estimate_device(cfg, data_shape)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        yield device


def count_parameters(
    cfg: Config, data_shape: tuple[int, ...], *, num_classes: int | None = None
) -> int:
    """Parameters of the run's network, counted without allocating them (or, for a small
    vector-data network, by building it: see :func:`estimate_device`)."""
    with estimate_context(cfg, data_shape):
        model = build_model(cfg, data_shape, num_classes=num_classes)
    return sum(math.prod(p.shape) for p in model.parameters())
