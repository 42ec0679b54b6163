"""Run configuration: frozen dataclasses in sections, read from TOML, overridden with
``--set section.key=value``, written as JSON into every run.

Each section validates itself on construction and raises ``ValueError`` naming the key
(``train.steps``), the bad value and what is allowed. Unknown sections and keys are errors with a
did-you-mean suggestion. Math modules never import this file: the CLI and ``builders`` turn a
config into constructor arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from difflab.choices import StrEnum, parse_enum
from difflab.data.toy import toy_names
from difflab.losses.score_matching import Projection
from difflab.models.embeddings import Activation
from difflab.parameterization import Prediction
from difflab.reverse import Variance
from difflab.samplers.spacing import Spacing
from difflab.schedules import ScheduleName
from difflab.timesteps import TimestepSampling


class ModelName(StrEnum):
    MLP = "mlp"
    CONDITIONAL_LINEAR = "conditional_linear"
    SCORE_MLP = "score_mlp"
    UNET = "unet"


#: Image sources (see data/images.py): the 8x8 digits, a folder of PNG/JPEG, an .npy/.npz array.
IMAGE_DATA = ("digits", "images", "image_file")
#: Sources read from ``data.path``.
PATH_DATA = ("file", "images", "image_file")


class LossName(StrEnum):
    SIMPLE = "simple"
    VLB = "vlb"
    HYBRID = "hybrid"
    SOHL_DICKSTEIN = "sohl_dickstein"
    EXACT = "exact"
    SLICED = "sliced"
    SLICED_VR = "sliced_vr"
    DSM = "dsm"
    NCSN = "ncsn"


class SamplerName(StrEnum):
    DDPM = "ddpm"
    DDIM = "ddim"
    EULER = "euler"
    HEUN = "heun"
    DPMPP2M = "dpmpp2m"
    PC = "pc"
    LANGEVIN = "langevin"
    ANNEALED_LANGEVIN = "annealed_langevin"


#: Objectives that train a score network (model.name = "score_mlp") instead of a diffusion model.
SCORE_LOSSES = frozenset(
    {LossName.EXACT, LossName.SLICED, LossName.SLICED_VR, LossName.DSM, LossName.NCSN}
)


def score_sampler_for(loss: str) -> SamplerName:
    """The sampler a score network trained with ``loss`` needs: annealed Langevin for the
    noise-conditional NCSN, plain Langevin for the single-scale objectives."""
    return SamplerName.ANNEALED_LANGEVIN if loss == LossName.NCSN else SamplerName.LANGEVIN


#: Samplers that run a score network; every other sampler runs a diffusion model.
SCORE_SAMPLERS = frozenset({SamplerName.LANGEVIN, SamplerName.ANNEALED_LANGEVIN})


class ODEMethod(StrEnum):
    DOPRI5 = "dopri5"
    DOPRI8 = "dopri8"
    BOSH3 = "bosh3"
    RK4 = "rk4"


#: Samplers that visit K of the T diffusion steps (``sample.steps`` <= schedule.T).
GRID_SAMPLERS = frozenset(
    {SamplerName.DDPM, SamplerName.DDIM, SamplerName.EULER, SamplerName.HEUN, SamplerName.DPMPP2M}
)


class Normalize(StrEnum):
    NONE = "none"
    STANDARDIZE = "standardize"


class ImageColor(StrEnum):
    AUTO = "auto"
    GRAYSCALE = "grayscale"
    RGB = "rgb"


class OptimizerName(StrEnum):
    ADAM = "adam"
    ADAMW = "adamw"


class LRSchedule(StrEnum):
    CONSTANT = "constant"
    COSINE = "cosine"


class LogFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class Precision(StrEnum):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


#: Upper bounds that keep a typo from allocating the machine's memory.
MAX_T = 100_000
MAX_N_TRAIN = 10_000_000


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f"{key} = {value!r} is invalid: it must be {rule}")


def _choice(enum_cls: type[StrEnum], value: Any, key: str) -> None:
    parse_enum(enum_cls, value, key)


@dataclass(frozen=True)
class DataConfig:
    """``name``: a toy dataset, "file" (``path``: an .npy/.npz/.csv of N x D floats), or images:
    "digits" (scikit-learn's 8x8 digits, 17 levels), "images" (``path``: a folder of PNG/JPEG),
    "image_file" (``path``: an .npy/.npz of (N, H, W[, C]) integer images with ``levels`` values,
    256 if omitted). ``image_size`` resizes images; ``color`` is auto, grayscale or rgb."""

    name: str = "swiss_roll"
    path: str | None = None
    n_train: int = 50_000
    normalize: str = "none"
    image_size: int | None = None
    color: str = "auto"
    levels: int | None = None

    def __post_init__(self) -> None:
        names = [*toy_names(), "file", *IMAGE_DATA]
        if self.name not in names:
            raise ValueError(
                f"unknown data.name {self.name!r}; choose one of {', '.join(map(repr, names))}"
            )
        if self.name in PATH_DATA and not self.path:
            what = {"file": "your_data.npy", "images": "a_folder", "image_file": "images.npy"}
            raise ValueError(f"data.name = {self.name!r} needs data.path = {what[self.name]!r}")
        if self.path and self.name not in PATH_DATA:
            raise ValueError(
                "data.path is set: also set data.name = 'file' (vectors), 'images' (a folder) "
                "or 'image_file' (an image array)"
            )
        _check(
            2 <= self.n_train <= MAX_N_TRAIN,
            "data.n_train",
            self.n_train,
            f"an integer in [2, {MAX_N_TRAIN}]",
        )
        _choice(Normalize, self.normalize, "data.normalize")
        if self.name in IMAGE_DATA and self.normalize != "none":
            raise ValueError("data.normalize must be 'none' for images: they are scaled to [-1, 1]")
        _check(
            self.image_size is None or self.image_size >= 1,
            "data.image_size",
            self.image_size,
            "an integer >= 1, or omitted to keep the images' size",
        )
        _choice(ImageColor, self.color, "data.color")
        _check(
            self.levels is None or 2 <= self.levels <= 65536,
            "data.levels",
            self.levels,
            "an integer in 2..65536 (256 for 8-bit images), or omitted",
        )
        if self.image_size is not None and self.name not in ("images", "image_file"):
            raise ValueError(
                "data.image_size resizes data.name = 'images' or 'image_file'; remove it"
            )
        if self.color != "auto" and self.name != "images":
            raise ValueError("data.color is read for data.name = 'images' (a folder); remove it")
        if self.levels is not None and self.name != "image_file":
            raise ValueError(
                "data.levels is only read for data.name = 'image_file' (digits have 17 levels, "
                "image folders 256); remove it"
            )


@dataclass(frozen=True)
class ScheduleConfig:
    """The forward process: beta schedule ``name`` over ``T`` steps (see schedules.make_betas)."""

    name: str = "cosine"
    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        _choice(ScheduleName, self.name, "schedule.name")
        _check(1 <= self.T <= MAX_T, "schedule.T", self.T, f"an integer in [1, {MAX_T}]")
        for key in ("beta_start", "beta_end"):
            value = getattr(self, key)
            _check(0 < value < 1, f"schedule.{key}", value, "a number in (0, 1)")


@dataclass(frozen=True)
class ModelConfig:
    """The network (``name``), its size, and what it predicts (``prediction``, ``variance``)."""

    name: str = "mlp"
    width: int = 128
    depth: int = 3
    activation: str = "silu"
    time_dim: int = 64
    prediction: str = "v"
    variance: str = "large"
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attention: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _choice(ModelName, self.name, "model.name")
        _check(self.channels >= 1, "model.channels", self.channels, "an integer >= 1")
        _check(
            len(self.channel_mult) >= 1 and all(m >= 1 for m in self.channel_mult),
            "model.channel_mult",
            list(self.channel_mult),
            "a list of integers >= 1, one per resolution, e.g. [1, 2]",
        )
        _check(
            self.num_res_blocks >= 1, "model.num_res_blocks", self.num_res_blocks, "an integer >= 1"
        )
        _check(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        _choice(Activation, self.activation, "model.activation")
        _choice(Prediction, self.prediction, "model.prediction")
        _choice(Variance, self.variance, "model.variance")
        _check(self.width >= 1, "model.width", self.width, "an integer >= 1")
        _check(self.depth >= 1, "model.depth", self.depth, "an integer >= 1")
        _check(
            self.time_dim >= 2 and self.time_dim % 2 == 0,
            "model.time_dim",
            self.time_dim,
            "an even integer >= 2",
        )


@dataclass(frozen=True)
class LossConfig:
    """The training objective ``name`` and how t is drawn (``timesteps``, diffusion losses).

    ``hybrid_lambda`` weights the bound in the hybrid loss (Nichol & Dhariwal 2021).
    Score matching: ``sigma`` is the noise level of "dsm"; "ncsn" uses the geometric ladder
    ``sigma_max`` .. ``sigma_min`` of ``n_sigmas`` levels; "sliced" and "sliced_vr" draw
    ``n_projections`` directions per example from ``projection`` (gaussian | rademacher).
    """

    name: str = "simple"
    timesteps: str = "antithetic"
    hybrid_lambda: float = 0.001
    sigma: float = 0.1
    sigma_min: float = 0.01
    sigma_max: float = 2.0
    n_sigmas: int = 10
    n_projections: int = 1
    projection: str = "gaussian"

    def __post_init__(self) -> None:
        _choice(LossName, self.name, "loss.name")
        _choice(TimestepSampling, self.timesteps, "loss.timesteps")
        _choice(Projection, self.projection, "loss.projection")
        _check(self.sigma > 0, "loss.sigma", self.sigma, "> 0")
        _check(self.sigma_min > 0, "loss.sigma_min", self.sigma_min, "> 0")
        _check(
            self.sigma_max > self.sigma_min,
            "loss.sigma_max",
            self.sigma_max,
            f"> loss.sigma_min = {self.sigma_min}",
        )
        _check(self.n_sigmas >= 2, "loss.n_sigmas", self.n_sigmas, "an integer >= 2")
        _check(self.n_projections >= 1, "loss.n_projections", self.n_projections, "an integer >= 1")
        _check(self.hybrid_lambda >= 0, "loss.hybrid_lambda", self.hybrid_lambda, ">= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: budget, batch, optimiser and LR schedule, EMA, checkpoints and logging."""

    steps: int = 8000
    batch_size: int = 512
    lr: float = 2e-3
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    seed: int = 0
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    log_every: int = 50
    log_format: str = "csv"
    device: str = "cpu"
    max_nonfinite: int = 10
    precision: str = "float32"

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "train.steps", self.steps, "an integer >= 0")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "an integer >= 1")
        _check(0 < self.lr < 10, "train.lr", self.lr, "a number in (0, 10)")
        _check(0 <= self.ema_decay < 1, "train.ema_decay", self.ema_decay, "a number in [0, 1)")
        _check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, ">= 0 (0 turns it off)")
        _check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, ">= 0")
        _check(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "an integer >= 0")
        _check(
            self.checkpoint_every >= 0,
            "train.checkpoint_every",
            self.checkpoint_every,
            "an integer >= 0 (0: only at the end)",
        )
        _check(
            self.keep_checkpoints >= 1,
            "train.keep_checkpoints",
            self.keep_checkpoints,
            "an integer >= 1",
        )
        _check(self.log_every >= 1, "train.log_every", self.log_every, "an integer >= 1")
        _choice(OptimizerName, self.optimizer, "train.optimizer")
        _choice(LRSchedule, self.lr_schedule, "train.lr_schedule")
        _choice(LogFormat, self.log_format, "train.log_format")
        _check(
            self.max_nonfinite >= 1,
            "train.max_nonfinite",
            self.max_nonfinite,
            "an integer >= 1 (non-finite steps in a row before the run stops)",
        )
        _choice(Precision, self.precision, "train.precision")
        _check(
            self.device == "cpu" or self.device.startswith("cuda") or self.device == "auto",
            "train.device",
            self.device,
            "'cpu', 'cuda', 'cuda:N' or 'auto'",
        )


@dataclass(frozen=True)
class SampleConfig:
    """Sampling defaults for ``difflab sample``: sampler, number of steps (None: all T; for
    "langevin" the chain length, default 1000), count.

    Langevin samplers: ``step_size`` (None: 1e-3 for "langevin", 2e-5 for "annealed_langevin",
    whose level i then steps step_size * sigma_i^2 / sigma_min^2), ``step_decay`` (the step
    shrinks by this factor every step of "langevin"), ``n_steps_each`` (steps per noise level
    of "annealed_langevin"). Predictor-corrector ("pc"): ``corrector_steps`` Langevin steps at
    signal-to-noise ratio ``snr`` before every ancestral step.

    Diffusion samplers with K = ``steps`` < T visit K of the T steps chosen by ``spacing``;
    ``eta`` is DDIM's noise scale (0 deterministic, 1 ancestral).
    """

    sampler: str = "ddpm"
    steps: int | None = None
    spacing: str = "linspace"
    eta: float = 0.0
    n: int = 5000
    clip_x0: bool = False
    use_ema: bool = True
    step_size: float | None = None
    step_decay: float = 1.0
    n_steps_each: int = 100
    snr: float = 0.16
    corrector_steps: int = 1

    def __post_init__(self) -> None:
        _choice(SamplerName, self.sampler, "sample.sampler")
        _check(
            self.steps is None or self.steps >= 1,
            "sample.steps",
            self.steps,
            "an integer >= 1, or omitted for all T steps",
        )
        _choice(Spacing, self.spacing, "sample.spacing")
        _check(
            0.0 <= self.eta <= 1.0,
            "sample.eta",
            self.eta,
            "a number in [0, 1] (0: deterministic DDIM, 1: ancestral)",
        )
        _check(self.n >= 1, "sample.n", self.n, "an integer >= 1")
        _check(
            self.step_size is None or self.step_size > 0,
            "sample.step_size",
            self.step_size,
            "> 0, or omitted for the sampler's default",
        )
        _check(0 < self.step_decay <= 1, "sample.step_decay", self.step_decay, "in (0, 1]")
        _check(self.n_steps_each >= 1, "sample.n_steps_each", self.n_steps_each, "an integer >= 1")
        _check(self.snr > 0, "sample.snr", self.snr, "> 0")
        _check(
            self.corrector_steps >= 0,
            "sample.corrector_steps",
            self.corrector_steps,
            "an integer >= 0 (0: plain ancestral sampling)",
        )
        if self.sampler == SamplerName.ANNEALED_LANGEVIN and self.steps is not None:
            raise ValueError(
                f"sample.steps = {self.steps} does not apply to 'annealed_langevin', which runs "
                "sample.n_steps_each steps at each of loss.n_sigmas levels; omit --steps"
            )


@dataclass(frozen=True)
class EvaluateConfig:
    """``difflab evaluate``: held-out points (``n``, toy data), the ODE solver (``ode_method``,
    ``ode_rtol``, ``ode_atol``), exact divergence up to ``exact_divergence_max_dim`` dimensions
    (Hutchinson above), batch size, and the number of samples scored against fresh data."""

    n: int = 10_000
    batch_size: int = 10_000
    ode_method: str = "dopri5"
    ode_rtol: float = 1e-5
    ode_atol: float = 1e-5
    exact_divergence_max_dim: int = 8
    n_samples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.n >= 2, "evaluate.n", self.n, "an integer >= 2")
        _check(self.batch_size >= 1, "evaluate.batch_size", self.batch_size, "an integer >= 1")
        _choice(ODEMethod, self.ode_method, "evaluate.ode_method")
        for key in ("ode_rtol", "ode_atol"):
            value = getattr(self, key)
            _check(0 < value < 1, f"evaluate.{key}", value, "a number in (0, 1)")
        _check(
            self.exact_divergence_max_dim >= 0,
            "evaluate.exact_divergence_max_dim",
            self.exact_divergence_max_dim,
            "an integer >= 0",
        )
        _check(self.n_samples >= 0, "evaluate.n_samples", self.n_samples, ">= 0 (0: skip)")


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
        check_model_fits_loss(self.model.name, self.loss.name, self.sample.sampler)
        loss, model = self.loss.name, self.model
        if loss == LossName.HYBRID and not Variance(model.variance).is_learned:
            raise ValueError(
                "loss.name = 'hybrid' trains a learned variance; set model.variance = "
                "'learned_range' (or 'learned')"
            )
        if loss == LossName.SOHL_DICKSTEIN and model.prediction != Prediction.MEAN:
            raise ValueError(
                "loss.name = 'sohl_dickstein' is the 2015 model: set model.prediction = 'mean' "
                "and model.variance = 'learned'"
            )
        if loss == LossName.SOHL_DICKSTEIN and self.schedule.T < 2:
            raise ValueError("loss.name = 'sohl_dickstein' needs schedule.T >= 2")
        steps = self.sample.steps
        _check(
            steps is None or self.sample.sampler not in GRID_SAMPLERS or steps <= self.schedule.T,
            "sample.steps",
            steps,
            f"at most schedule.T = {self.schedule.T} (the number of diffusion steps)",
        )

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


def check_model_fits_loss(model: str, loss: str, sampler: str) -> None:
    """A one-line error when the network, the objective and the sampler do not fit together."""
    if loss in SCORE_LOSSES:
        need = {"name": ModelName.SCORE_MLP.value, "sampler": score_sampler_for(loss).value}
        have = {"name": model, "sampler": sampler}
        wrong = [k for k in need if have[k] != need[k]]
        if wrong:
            keys = {"name": "model.name", "sampler": "sample.sampler"}
            got = " and ".join(f"{keys[k]} = '{have[k]}'" for k in wrong)
            fix = " and ".join(f"{keys[k]} = '{need[k]}'" for k in wrong)
            raise ValueError(
                f"loss.name = '{loss}' trains a score network, which {got} cannot use; set {fix}"
            )
        return
    diffusion_samplers = [s.value for s in SamplerName if s not in SCORE_SAMPLERS]
    if model == ModelName.SCORE_MLP:
        score_losses = ", ".join(repr(v.value) for v in LossName if v in SCORE_LOSSES)
        raise ValueError(
            f"model.name = 'score_mlp' is a score network, which loss.name = '{loss}' cannot "
            f"train; set loss.name to one of {score_losses}"
        )
    if sampler in SCORE_SAMPLERS:
        raise ValueError(
            f"sample.sampler = '{sampler}' runs a score network, but this is a diffusion model "
            f"(loss.name = '{loss}'); use one of {', '.join(map(repr, diffusion_samplers))}"
        )


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type annotation ``hint`` (int, float, str, bool, X | None)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise ValueError(f"{key} = {value!r} is invalid: it must be a finite number")
    elif hint is str and isinstance(value, str):
        return value
    elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(hint)[0]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    name = getattr(hint, "__name__", str(hint))
    raise ValueError(
        f"{key} = {value!r} has the wrong type: it must be {_TYPE_WORDS.get(name, name)}"
    )


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "tuple": "a list, e.g. [1, 2]",
}


def _section_from_dict(name: str, values: Any) -> Any:
    cls = SECTIONS[name]
    if not isinstance(values, dict):
        raise ValueError(f"[{name}] must be a table of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    keys = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in keys:
            raise ValueError(
                f"unknown key {name}.{key}{_did_you_mean(key, keys)} "
                f"(valid keys: {', '.join(keys)})"
            )
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from nested dicts; missing keys take their defaults."""
    sections = {}
    for name, values in raw.items():
        if name not in SECTIONS:
            raise ValueError(
                f"unknown config section [{name}]{_did_you_mean(name, list(SECTIONS))} "
                f"(valid sections: {', '.join(SECTIONS)})"
            )
        sections[name] = values
    return Config(**{name: _section_from_dict(name, vals) for name, vals in sections.items()})


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML (numbers, true/false, "strings"),
    falling back to a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"--set {text!r} must look like section.key=value, e.g. train.steps=2000")
    lhs, raw_value = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw_value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value.strip()
    return section, key, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``section.key=value`` applied."""
    merged = {name: dict(v) if isinstance(v, dict) else v for name, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        table = merged.setdefault(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"[{section}] must be a table of keys, got {table!r}")
        table[key] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into nested dicts, with one-line errors for a missing/bad file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {err}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The defaults, updated by a TOML file (if any), then by ``--set`` overrides."""
    raw = read_toml(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


def config_from_json(path: str | Path) -> Config:
    """Read a run's ``config.json``."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read run config {str(path)!r}: {err}") from None
    return config_from_dict(raw)
