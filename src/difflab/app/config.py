"""Run configuration: the sections (``app/sections.py``) together, checked across sections
against the registry, read from TOML, overridden with ``--set section.key=value`` and written as
JSON into every run (reading and writing: ``app/config_files.py``). Math modules never import
this file: ``app/build.py`` turns a config into constructor arguments.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from difflab.app import registry
from difflab.app.registry import DIFFUSION, LOSSES, MODELS, SAMPLERS
from difflab.app.sections import (
    MAX_N_TRAIN,
    MAX_T,
    DataConfig,
    EvaluateConfig,
    LossConfig,
    ModelConfig,
    SampleConfig,
    ScheduleConfig,
    TrainConfig,
    _check,
)

__all__ = [
    "MAX_N_TRAIN",
    "MAX_T",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "LossConfig",
    "ModelConfig",
    "SampleConfig",
    "ScheduleConfig",
    "TrainConfig",
    "check_combination",
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


def check_combination(cfg: Config) -> None:
    """One-line errors when the data, network, objective and sampler do not fit together
    (from the registry: the kinds of model each trains, needs or is, and each loss's
    requirements)."""
    loss, model, sampler = (
        LOSSES[cfg.loss.name],
        MODELS[cfg.model.name],
        SAMPLERS[cfg.sample.sampler],
    )
    if loss.trains != DIFFUSION:
        _check_score_run(cfg)
    elif model.kind != DIFFUSION:
        raise ValueError(
            f"model.name = {cfg.model.name!r} is a score network, which loss.name = "
            f"{cfg.loss.name!r} cannot train; set loss.name to one of "
            f"{_quoted([n for n, e in LOSSES.items() if e.trains != DIFFUSION])}"
        )
    elif sampler.needs != DIFFUSION:
        raise ValueError(
            f"sample.sampler = {cfg.sample.sampler!r} runs a score network, but this is a "
            f"diffusion model (loss.name = {cfg.loss.name!r}); use one of "
            f"{_quoted(registry.names(SAMPLERS, needs=DIFFUSION))}"
        )
    for key, allowed in loss.requires.items():
        if cfg.get(key) not in allowed:
            raise ValueError(
                f"loss.name = {cfg.loss.name!r} ({loss.summary}) needs {key} in "
                f"{_quoted(list(allowed))}, got {cfg.get(key)!r}; set {key} = {allowed[0]!r}"
            )
    shape_kind = "image" if cfg.data.is_image else "vector"
    if model.data != shape_kind:
        fix = _quoted(registry.names(MODELS, data=shape_kind, kind=model.kind)) or "another"
        raise ValueError(
            f"model.name = {cfg.model.name!r} takes {model.data} data, but data.name = "
            f"{cfg.data.name!r} is {shape_kind} data; use model.name = {fix}"
        )
    steps = cfg.sample.steps
    _check(
        steps is None or not sampler.grid or steps <= cfg.schedule.T,
        "sample.steps",
        steps,
        f"at most schedule.T = {cfg.schedule.T} (the number of diffusion steps)",
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
        fix = " and ".join(f"{key} = {need[key]!r}" for key in wrong)
        raise ValueError(
            f"loss.name = {cfg.loss.name!r} trains a score network, which {got} cannot use; "
            f"set {fix}"
        )
