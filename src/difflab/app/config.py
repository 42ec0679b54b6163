"""Run configuration: the sections (``app/sections.py``, ``app/sections_run.py``,
``app/sections_audio.py``) together, checked across sections against the registry, read from
TOML, overridden with ``--set section.key=value`` and written as JSON into every run (reading and
writing: ``app/config_files.py``). Math modules never import this file: ``app/build.py`` turns a
config into constructor arguments.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from difflab.app import registry
from difflab.app.registry import DIFFUSION, LOSSES, MODELS, SAMPLERS, VOCODER
from difflab.app.sections import (
    MAX_N_TRAIN,
    MAX_T,
    DataConfig,
    LossConfig,
    ModelConfig,
    ScheduleConfig,
    _check,
)
from difflab.app.sections_audio import MelConfig
from difflab.app.sections_run import LABEL_DROPOUT, EvaluateConfig, SampleConfig, TrainConfig

__all__ = [
    "MAX_N_TRAIN",
    "MAX_T",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "LossConfig",
    "MelConfig",
    "ModelConfig",
    "SampleConfig",
    "ScheduleConfig",
    "TrainConfig",
    "check_combination",
    "check_trainable",
    "paste",
    "untrained_output",
]


@dataclass(frozen=True)
class Config:
    """A whole run's configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self) -> None:
        check_combination(self)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested dicts as they read back from JSON or TOML (tuples become lists)."""
        return {
            section: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
            for section, values in dataclasses.asdict(self).items()
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with keys of one section changed (validated)."""
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **changes)}
        )

    def get(self, key: str) -> Any:
        """The value of ``section.key``."""
        section, name = key.split(".", 1)
        return getattr(getattr(self, section), name)


def _quoted(names: list[str]) -> str:
    return ", ".join(map(repr, names))


def paste(**values: Any) -> str:
    """A line to paste after a command: ``--set section.key=value ...`` (keys spelled with a
    double underscore for the dot: ``model__name="mlp"``)."""
    return " ".join(f"--set {k.replace('__', '.')}={v}" for k, v in values.items())


def check_combination(cfg: Config) -> None:
    """One-line errors when the data, network, objective and sampler do not fit together
    (from the registry: the kinds of model each trains, needs or is, and each loss's
    requirements)."""
    loss, model, sampler = (
        LOSSES[cfg.loss.name],
        MODELS[cfg.model.name],
        SAMPLERS[cfg.sample.sampler],
    )
    if VOCODER in (loss.trains, model.kind) or cfg.data.is_audio:
        _check_vocoder_run(cfg)
        return
    if loss.trains != DIFFUSION:
        _check_score_run(cfg)
    elif model.kind != DIFFUSION:
        score_losses = [n for n, e in LOSSES.items() if e.trains != DIFFUSION]
        raise ValueError(
            f"model.name = {cfg.model.name!r} is a score network, which loss.name = "
            f"{cfg.loss.name!r} cannot train; set loss.name to one of {_quoted(score_losses)}, "
            f"e.g. {paste(loss__name=score_losses[0])}"
        )
    elif sampler.needs != DIFFUSION:
        fits = registry.names(SAMPLERS, needs=DIFFUSION)
        raise ValueError(
            f"sample.sampler = {cfg.sample.sampler!r} runs a score network, but this is a "
            f"diffusion model (loss.name = {cfg.loss.name!r}); use one of {_quoted(fits)}, "
            f"e.g. {paste(sample__sampler=loss.default_sampler)}"
        )
    for key, allowed in loss.requires.items():
        if cfg.get(key) not in allowed:
            raise ValueError(
                f"loss.name = {cfg.loss.name!r} ({loss.summary}) needs {key} in "
                f"{_quoted(list(allowed))}, got {cfg.get(key)!r}; use "
                f"{paste(**{key.replace('.', '__'): allowed[0]})}"
            )
    shape_kind = registry.data_kind(cfg.data.name)
    if model.data != shape_kind:
        fits = registry.names(MODELS, data=shape_kind, kind=model.kind)
        fix = f"use {paste(model__name=fits[0])}" if fits else "use another model.name"
        raise ValueError(
            f"model.name = {cfg.model.name!r} takes {model.data} data, but data.name = "
            f"{cfg.data.name!r} is {shape_kind} data; {fix}"
        )
    _check_time(cfg)
    steps = cfg.sample.steps
    on_schedule = not loss.continuous and cfg.sample.grid is None
    _check(
        steps is None or not sampler.grid or not on_schedule or steps <= cfg.schedule.T,
        "sample.steps",
        steps,
        f"at most schedule.T = {cfg.schedule.T} (the number of diffusion steps)",
    )
    _check_conditioning(cfg)


def _check_conditioning(cfg: Config) -> None:
    """Class conditioning needs a network that takes labels; label dropout and guidance are
    read only by class-conditional runs, and guidance needs a trained null class."""
    takes_labels = [name for name, row in MODELS.items() if "num_classes" in row.uses]
    if cfg.model.class_conditional and cfg.model.name not in takes_labels:
        raise ValueError(
            f"model.class_conditional = true needs a network that takes class labels, not "
            f"model.name = {cfg.model.name!r}; use model.name = {_quoted(takes_labels)}"
        )
    unread = [
        (key, default)
        for key, default in (("train.label_dropout", LABEL_DROPOUT), ("sample.guidance", 1.0))
        if cfg.get(key) != default
    ]
    if unread and not cfg.model.class_conditional:
        key, _ = unread[0]
        raise ValueError(
            f"{key} = {cfg.get(key)!r} is read only by class-conditional runs; set "
            "model.class_conditional = true or remove it"
        )
    if cfg.sample.guidance != 1.0 and cfg.train.label_dropout == 0:
        raise ValueError(
            f"sample.guidance = {cfg.sample.guidance} needs the unconditional model, which "
            "train.label_dropout = 0 never trains; set train.label_dropout (e.g. 0.2) or "
            "sample.guidance = 1"
        )


def _non_default(section: Any, keys: tuple[str, ...]) -> list[str]:
    defaults = type(section)()
    return [k for k in keys if getattr(section, k) != getattr(defaults, k)]


def _check_time(cfg: Config) -> None:
    """Discrete schedules vs continuous formulations: each reads its own keys, and a
    continuous formulation needs a network that takes a continuous noise input."""
    loss, name = LOSSES[cfg.loss.name], cfg.loss.name
    vp_keys = ("beta_min", "beta_max") if cfg.schedule.name == "linear" else ()
    if not loss.continuous:
        unread = _non_default(cfg.schedule, ("beta_min", "beta_max"))
        why = "continuous VP process of loss.name = 'vp_continuous'"
    elif "process" in loss.uses:
        _check(
            cfg.schedule.name in ("linear", "cosine"),
            "schedule.name",
            cfg.schedule.name,
            f"'linear' or 'cosine' for loss.name = {name!r} (the continuous VP process)",
        )
        unread = _non_default(cfg.schedule, ("T", "beta_start", "beta_end", "beta_min",
                                             "beta_max"))  # fmt: skip
        unread = [k for k in unread if k not in vp_keys]
        why = "discrete schedules; the continuous VP reads schedule.name (and beta_min, beta_max)"
    else:
        unread = _non_default(cfg.schedule, tuple(f.name for f in dataclasses.fields(cfg.schedule)))
        why = f"discrete schedules; loss.name = {name!r} has its own noise process"
    if unread:
        raise ValueError(
            f"schedule.{unread[0]} = {getattr(cfg.schedule, unread[0])!r} is not read for "
            f"loss.name = {name!r} (it is for {why}); remove it"
        )
    if not loss.continuous:
        return
    if not MODELS[cfg.model.name].continuous_time:
        fix = _quoted(registry.names(MODELS, kind=DIFFUSION, continuous_time=True))
        raise ValueError(
            f"model.name = {cfg.model.name!r} takes integer steps only and cannot take the "
            f"continuous noise input of loss.name = {name!r}; use model.name = {fix}"
        )
    if "prediction" not in loss.uses and cfg.model.prediction != type(cfg.model)().prediction:
        raise ValueError(
            f"model.prediction = {cfg.model.prediction!r} is not read for loss.name = {name!r}"
            " (its network's output is fixed by the formulation); remove it"
        )
    if cfg.sample.spacing != type(cfg.sample)().spacing:
        raise ValueError(
            f"sample.spacing = {cfg.sample.spacing!r} picks K of a discrete schedule's T steps;"
            f" loss.name = {name!r} is continuous: choose sample.grid (karras, logsnr, time)"
        )


def _check_score_run(cfg: Config) -> None:
    """A score objective needs a score network and a sampler of its kind: one error naming
    every key to change."""
    loss = LOSSES[cfg.loss.name]
    need = {
        "model.name": registry.names(MODELS, kind=registry.SCORE)[0],
        "sample.sampler": loss.default_sampler,
    }
    wrong = [
        key
        for key in need
        if (key == "model.name" and MODELS[cfg.model.name].kind != registry.SCORE)
        or (key == "sample.sampler" and SAMPLERS[cfg.sample.sampler].needs != loss.trains)
    ]
    if wrong:
        got = " and ".join(f"{key} = {cfg.get(key)!r}" for key in wrong)
        fix = paste(**{key.replace(".", "__"): need[key] for key in wrong})
        raise ValueError(
            f"loss.name = {cfg.loss.name!r} trains a score network, which {got} cannot use; "
            f"use {fix} (or leave them unset: they follow the loss)"
        )


def untrained_output(cfg: Config) -> str | None:
    """What in ``cfg`` the loss never trains (``never_trains`` in the registry), e.g. a learned
    variance with the simple loss, and what to change; None if nothing."""
    loss = LOSSES[cfg.loss.name]
    for key, values in loss.never_trains.items():
        if cfg.get(key) in values:
            trainers = [
                n
                for n, e in LOSSES.items()
                if e.trains == loss.trains and key not in e.never_trains
            ]
            trainers.sort(key=lambda n: key not in LOSSES[n].requires)  # those made for it first
            return (
                f"{key} = {cfg.get(key)!r} but loss.name = {cfg.loss.name!r} never trains that "
                f"output, so sampling would use untrained values; train it with loss.name = "
                f"{_quoted(trainers)} (e.g. {paste(loss__name=trainers[0])}), or use a fixed "
                f"{key}: {paste(**{key.replace('.', '__'): _default_of(key)})}"
            )
    return None


def check_trainable(cfg: Config) -> None:
    """A one-line error for a config that validates but cannot train what it describes
    (:func:`untrained_output`); ``difflab train`` calls it, loading old runs does not."""
    problem = untrained_output(cfg)
    if problem:
        raise ValueError(problem)


def _default_of(key: str) -> Any:
    return Config().get(key)


def _check_vocoder_run(cfg: Config) -> None:
    """Audio data, a vocoder network and its loss go together, with a diffusion sampler; the
    mel analysis fits the sample rate and its hop equals the product of the upsampling
    factors (one frame of mel becomes hop samples)."""
    vocoder_models = registry.names(MODELS, kind=VOCODER)
    vocoder_losses = registry.names(LOSSES, trains=VOCODER)
    audio_data = [n for n, e in registry.DATASETS.items() if e.source == "audio"]
    wants = {
        "data.name": (cfg.data.is_audio, audio_data),
        "model.name": (MODELS[cfg.model.name].kind == VOCODER, vocoder_models),
        "loss.name": (LOSSES[cfg.loss.name].trains == VOCODER, vocoder_losses),
    }
    wrong = [key for key, (ok, _) in wants.items() if not ok]
    if wrong:
        got = " and ".join(f"{key} = {cfg.get(key)!r}" for key in wrong)
        fix = " and ".join(f"{key} = {wants[key][1][0]!r}" for key in wrong)
        raise ValueError(f"a vocoder run needs audio data, a vocoder model and its loss: {got} "
                         f"do not fit; set {fix}")  # fmt: skip
    if SAMPLERS[cfg.sample.sampler].needs != DIFFUSION or not SAMPLERS[cfg.sample.sampler].grid:
        choices = _quoted(registry.names(SAMPLERS, needs=DIFFUSION, grid=True))
        raise ValueError(
            f"sample.sampler = {cfg.sample.sampler!r} cannot vocode; use one of {choices}"
        )
    cfg.mel.settings(cfg.data.sample_rate)
    hop = cfg.model.wavegrad_layout().hop_length
    if hop != cfg.mel.hop_length:
        raise ValueError(
            f"model.upsample_factors {list(cfg.model.wavegrad_layout().upsample_factors)} "
            f"multiply to {hop} samples per mel frame but mel.hop_length = {cfg.mel.hop_length}; "
            f"set mel.hop_length = {hop} or factors whose product is {cfg.mel.hop_length}"
        )
