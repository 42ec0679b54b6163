"""The sections of a run's configuration that say what is learned (``[data]``,
``[schedule]``, ``[model]``, ``[loss]``), each a frozen dataclass that validates itself on
construction: a ``ValueError`` names the key (``loss.name``), the bad value and what is
allowed. Names (``data.name``, ``model.name``, ``loss.name``, ``sample.sampler``) are checked
against the registry (``app/registry.py``), which also says which keys each name reads. How a
run trains, samples and evaluates: ``app/sections_run.py``; the ``[mel]`` section of audio
runs: ``app/sections_audio.py``; the whole config and the checks across sections:
``app/config.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from difflab.app import registry
from difflab.app.registry import DATASETS
from difflab.choices import StrEnum, parse_enum
from difflab.losses.flow import TimeDistribution
from difflab.losses.score_matching import Projection
from difflab.losses.wavegrad import LevelDraw, Norm
from difflab.models.embeddings import Activation
from difflab.models.wavegrad import LevelEncoding, WaveGradLayout, layout_for
from difflab.parameterization import Prediction
from difflab.reverse import Variance
from difflab.schedules import ScheduleName
from difflab.timesteps import TimestepSampling


class Normalize(StrEnum):
    NONE = "none"
    STANDARDIZE = "standardize"


class ImageColor(StrEnum):
    AUTO = "auto"
    GRAYSCALE = "grayscale"
    RGB = "rgb"


#: Keys of [data] that only audio sources read.
AUDIO_DATA_KEYS = ("sample_rate", "segment_frames", "n_clips", "clip_seconds")

#: Upper bounds that keep a typo from allocating the machine's memory.
MAX_T = 100_000
MAX_N_TRAIN = 10_000_000
#: Seeds are integers in [0, MAX_SEED] (what torch and numpy generators both accept).
MAX_SEED = 2**63 - 1


def check_seed(value: int, key: str) -> None:
    """A one-line error unless ``value`` is a seed both torch and numpy accept."""
    _check(
        isinstance(value, int) and 0 <= value <= MAX_SEED,
        key,
        value,
        f"an integer in [0, 2**63 - 1 = {MAX_SEED}]",
    )


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f"{key} = {value!r} is invalid: it must be {rule}")


def _choice(enum_cls: type[StrEnum], value: Any, key: str) -> None:
    parse_enum(enum_cls, value, key)


def _unread_keys(section: Any, table_key: str, name: str, keys: tuple[str, ...]) -> None:
    """A one-line error for a key set to a non-default value that ``name`` does not read."""
    prefix = table_key.split(".")[0]
    read = registry.keys_read(table_key, name)
    for key in keys:
        value, default = getattr(section, key), _default(type(section), key)
        if value != default and f"{prefix}.{key}" not in read:
            readers = [
                n for n in registry.TABLES[table_key] if key in registry.TABLES[table_key][n].keys
            ]
            raise ValueError(
                f"{prefix}.{key} = {value!r} is not read for {table_key} = {name!r}; remove it"
                + (f" (it is read for {', '.join(map(repr, readers))})" if readers else "")
            )


def _default(cls: type, key: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


@dataclass(frozen=True)
class DataConfig:
    """``name``: a toy dataset, "file" (``path``: an .npy/.npz/.csv of N x D floats), or images:
    "digits" (scikit-learn's 8x8 digits, 17 levels), "images" (``path``: a folder of PNG/JPEG),
    "image_file" (``path``: an .npy/.npz of (N, H, W[, C]) integer images with ``levels`` values,
    256 if omitted). ``image_size`` resizes images; ``color`` is auto, grayscale or rgb.

    Audio: "toy_speech" (``n_clips`` seeded clips of ``clip_seconds``), "audio" (``path``: a
    folder of WAV/FLAC), "espeak" (``n_clips`` sentences by espeak-ng, if installed), all at
    ``sample_rate`` Hz, trained on segments of ``segment_frames`` mel frames."""

    name: str = "swiss_roll"
    path: str | None = None
    n_train: int = 50_000
    normalize: str = "none"
    image_size: int | None = None
    color: str = "auto"
    levels: int | None = None
    sample_rate: int = 16_000
    segment_frames: int = 32
    n_clips: int = 200
    clip_seconds: float = 2.0

    def __post_init__(self) -> None:
        entry = registry.lookup("data.name", self.name)
        if entry.path_example and not self.path:
            raise ValueError(f"data.name = {self.name!r} needs data.path = {entry.path_example!r}")
        if self.path and not entry.path_example:
            readers = [f"{n!r} ({e.summary})" for n, e in DATASETS.items() if e.path_example]
            raise ValueError(f"data.path is set: also set data.name to {' or '.join(readers)}")
        _check(
            2 <= self.n_train <= MAX_N_TRAIN,
            "data.n_train",
            self.n_train,
            f"an integer in [2, {MAX_N_TRAIN}]",
        )
        _choice(Normalize, self.normalize, "data.normalize")
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
        self._check_audio()
        _unread_keys(
            self,
            "data.name",
            self.name,
            ("normalize", "image_size", "color", "levels", *AUDIO_DATA_KEYS),
        )

    def _check_audio(self) -> None:
        _check(
            1000 <= self.sample_rate <= 384_000,
            "data.sample_rate",
            self.sample_rate,
            "an integer in [1000, 384000] Hz",
        )
        _check(
            self.segment_frames >= 1, "data.segment_frames", self.segment_frames, "an integer >= 1"
        )
        _check(1 <= self.n_clips <= 100_000, "data.n_clips", self.n_clips, "in [1, 100000]")
        _check(
            0.1 <= self.clip_seconds <= 600, "data.clip_seconds", self.clip_seconds, "in [0.1, 600]"
        )

    @property
    def is_image(self) -> bool:
        return DATASETS[self.name].source == "image"

    @property
    def is_audio(self) -> bool:
        return DATASETS[self.name].source == "audio"


@dataclass(frozen=True)
class ScheduleConfig:
    """The forward process: beta schedule ``name`` over ``T`` steps (see schedules.make_betas).
    ``loss.name = "vp_continuous"`` reads ``name`` (linear or cosine) and, for linear, the
    continuous beta(t) from ``beta_min`` to ``beta_max`` (Song et al. 2021) instead."""

    name: str = "cosine"
    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        _choice(ScheduleName, self.name, "schedule.name")
        _check(1 <= self.T <= MAX_T, "schedule.T", self.T, f"an integer in [1, {MAX_T}]")
        for key in ("beta_start", "beta_end"):
            value = getattr(self, key)
            _check(0 < value < 1, f"schedule.{key}", value, "a number in (0, 1)")
        _check(self.beta_min > 0, "schedule.beta_min", self.beta_min, "> 0")
        _check(
            self.beta_max > self.beta_min,
            "schedule.beta_max",
            self.beta_max,
            f"> schedule.beta_min = {self.beta_min}",
        )


@dataclass(frozen=True)
class ModelConfig:
    """The network (``name``), its size, and what it predicts (``prediction``, ``variance``).
    ``class_conditional``: the network also takes the class label (a learned embedding with a
    null class; the number of classes comes from the data), for conditional sampling and
    classifier-free guidance."""

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
    size: str = "tiny"
    upsample_factors: tuple[int, ...] | None = None
    upsample_channels: tuple[int, ...] | None = None
    downsample_channels: tuple[int, ...] | None = None
    mel_channels: int | None = None
    noise_scale: float = 5000.0
    level_encoding: str = "level"
    class_conditional: bool = False

    def __post_init__(self) -> None:
        registry.lookup("model.name", self.name)
        _check(self.noise_scale > 0, "model.noise_scale", self.noise_scale, "> 0 (5000: the paper)")
        if self.name == "wavegrad":
            self.wavegrad_layout()  # one-line errors for inconsistent channels and factors
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
        _choice(LevelEncoding, self.level_encoding, "model.level_encoding")
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

    def wavegrad_layout(self) -> WaveGradLayout:
        """WaveGrad's channels and factors: ``size``'s, with the keys that are set replaced."""
        return layout_for(
            self.size,
            upsample_factors=self.upsample_factors,
            upsample_channels=self.upsample_channels,
            downsample_channels=self.downsample_channels,
            mel_channels=self.mel_channels,
        )


#: Loss keys of the continuous formulations (an error when set for a loss that ignores them).
CONTINUOUS_LOSS_KEYS = (
    "sigma_data", "p_mean", "p_std", "time_distribution", "logit_mean", "logit_std",
)  # fmt: skip
#: Keys of [loss] that only WaveGrad's objective reads.
WAVEGRAD_LOSS_KEYS = ("norm", "level_draw")


@dataclass(frozen=True)
class LossConfig:
    """The training objective ``name`` and how t is drawn (``timesteps``, diffusion losses:
    uniform, antithetic, importance, lognormal (EDM's law of ln sigma, N(``p_mean``,
    ``p_std``^2), on the discrete steps; the simple loss only) or auto: lognormal for the
    simple loss, antithetic for the bounds).

    ``hybrid_lambda`` weights the bound in the hybrid loss (Nichol & Dhariwal 2021).
    Score matching: ``sigma`` is the noise level of "dsm"; "ncsn" uses the geometric ladder
    ``sigma_max`` .. ``sigma_min`` of ``n_sigmas`` levels; "sliced" and "sliced_vr" draw
    ``n_projections`` directions per example from ``projection`` (gaussian | rademacher).
    Continuous formulations (edm, flow_matching, vp_continuous): ``sigma_data`` is the data's
    standard deviation (omitted: measured from the training data when training starts and
    written into config.json); EDM draws ln sigma ~ N(``p_mean``, ``p_std``^2); flow matching
    draws t from ``time_distribution`` (uniform | logit_normal with ``logit_mean``,
    ``logit_std``).
    """

    name: str = "simple"
    timesteps: str = "auto"
    hybrid_lambda: float = 0.001
    sigma: float = 0.1
    sigma_min: float = 0.01
    sigma_max: float = 2.0
    n_sigmas: int = 10
    n_projections: int = 1
    projection: str = "gaussian"
    sigma_data: float | None = None
    p_mean: float = -1.2
    p_std: float = 1.2
    time_distribution: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    norm: str = "l1"
    level_draw: str = "paper"

    def __post_init__(self) -> None:
        registry.lookup("loss.name", self.name)
        _check(
            self.sigma_data is None or self.sigma_data > 0,
            "loss.sigma_data",
            self.sigma_data,
            "a positive number (the data's std; 0.5 for images in [-1, 1]), or omitted to "
            "measure it from the training data",
        )
        _check(self.p_std > 0, "loss.p_std", self.p_std, "> 0 (EDM uses 1.2)")
        _choice(TimeDistribution, self.time_distribution, "loss.time_distribution")
        _check(self.logit_std > 0, "loss.logit_std", self.logit_std, "> 0")
        _unread_keys(self, "loss.name", self.name, (*CONTINUOUS_LOSS_KEYS, *WAVEGRAD_LOSS_KEYS))
        _choice(Norm, self.norm, "loss.norm")
        _choice(LevelDraw, self.level_draw, "loss.level_draw")
        _choice(TimestepSampling, self.timesteps, "loss.timesteps")
        self._check_lognormal_timesteps()
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

    def _check_lognormal_timesteps(self) -> None:
        """lognormal t only for the simple loss; p_mean / p_std of the simple loss only with
        it (EDM reads them too)."""
        lognormal = self.timesteps == TimestepSampling.LOGNORMAL
        reweights = registry.reweights_t(self.name)
        if lognormal and not reweights:
            raise ValueError(
                f"loss.timesteps = 'lognormal' is not read for loss.name = {self.name!r}: it "
                "reweights the loss over t, which only the simple loss may (a bound averages "
                "uniformly over t); use uniform, antithetic or importance"
            )
        moved = [k for k in ("p_mean", "p_std") if getattr(self, k) != _default(LossConfig, k)]
        auto = self.timesteps == TimestepSampling.AUTO
        if reweights and not (lognormal or auto) and moved:
            raise ValueError(
                f"loss.{moved[0]} is read for loss.name = {self.name!r} only with "
                "loss.timesteps = 'lognormal' (or 'auto'); set that or remove it"
            )
