"""Every sampler, loss, model and dataset name, written once.

A row names the function or class, what kind of model it needs or trains, and the config keys it
reads. Config validation, the "did you mean" lists, the CLI's help and the sampler benchmark's
plan all come from these tables (``app/build.py`` turns a row and a config into an object).

Kinds of model: ``"diffusion"`` (a network behind a :class:`difflab.denoiser.Denoiser`),
``"score"`` (a score network s(x)), ``"ladder"`` (a noise-conditional score s(x, sigma) on
the NCSN ladder, a :class:`difflab.samplers.ScoreLadder`) and ``"vocoder"`` (a mel-conditioned
waveform network that sees the noise level, ``difflab.vocoder``; its runs are sampled by the
diffusion samplers through a Denoiser on the inference schedule).

Keys: a row's ``keys`` are keys of its config section, passed to its function as keyword
arguments of the same name; ``uses`` are what the run supplies (e.g. ``schedule``, the data's
``levels``), listed in :data:`INGREDIENT_KEYS` with the config keys they are made from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from difflab.criteria import energy_criterion, frechet_criterion, neg_log_p_criterion
from difflab.data.toy import toy_names
from difflab.losses.ddpm import HybridObjective, SimpleObjective
from difflab.losses.edm import EDMObjective
from difflab.losses.flow import FlowMatchingObjective
from difflab.losses.score_matching import (
    DenoisingObjective,
    ExactObjective,
    NCSNObjective,
    SlicedObjective,
)
from difflab.losses.sohl_dickstein import SohlDicksteinObjective
from difflab.losses.vlb import VLBObjective
from difflab.losses.vp_continuous import VPContinuousObjective
from difflab.losses.wavegrad import WaveGradObjective
from difflab.models import MLP, ConditionalLinearNet, ScoreMLP
from difflab.models.unet import UNet
from difflab.models.wavegrad import WaveGrad
from difflab.samplers import (
    annealed_langevin_sample,
    ddim_sample,
    ddpm_sample,
    dpmpp2m_sample,
    dpmpp2m_sde_sample,
    dpmpp3m_sample,
    edm_sample,
    euler_sample,
    heun_sample,
    langevin_sample,
    pc_sample,
)

DIFFUSION, SCORE, LADDER, VOCODER = "diffusion", "score", "ladder", "vocoder"

#: What a run supplies to a row (``uses``), and the config keys each is made from.
INGREDIENT_KEYS: dict[str, tuple[str, ...]] = {
    "schedule": ("schedule.name", "schedule.T", "schedule.beta_start", "schedule.beta_end"),
    "prediction": ("model.prediction",),
    "variance": ("model.variance",),
    "levels": (),  # the data's number of grid values (images), or None
    "sigmas": ("loss.sigma_max", "loss.sigma_min", "loss.n_sigmas"),
    "data_dim": (),
    "in_channels": (),
    "out_dim": ("model.variance",),  # twice the data's with a learned variance
    "out_channels": ("model.variance",),
    "T": ("schedule.T",),
    "time_scale": ("schedule.T",),  # 1000 / T: every T spans the same frequencies
    "noise_conditional": ("loss.name",),
    "process": ("schedule.name", "schedule.beta_min", "schedule.beta_max"),  # the VP process
    "mel": ("mel.n_fft", "mel.hop_length", "mel.win_length", "mel.n_mels", "mel.f_min",
            "mel.f_max", "mel.floor", "data.sample_rate"),
    "n_mels": ("mel.n_mels",),
    "num_classes": ("model.class_conditional",),  # the data's classes, if class-conditional
}  # fmt: skip


@dataclass(frozen=True)
class SamplerEntry:
    """``fn(model, shape, *, [grid], generator, record, progress, **keys)``: ``model`` is what
    ``needs`` names; ``grid``: it visits K of the schedule's times (``sample.steps`` <= T,
    ``sample.spacing``); ``bench``: in bench-samplers' default plan; ``noise_key``: the key of
    its noise (a stochastic sampler's), which ``difflab tune-schedule`` searches too."""

    fn: Callable[..., Any]
    needs: str
    summary: str
    keys: tuple[str, ...] = ()
    grid: bool = True
    bench: bool = True
    noise_key: str | None = None


@dataclass(frozen=True)
class LossEntry:
    """``fn(**keys, **uses, **fixed)`` is the objective; it ``trains`` a model of that kind,
    sampled by ``default_sampler``; ``requires`` lists config values it cannot do without
    (the first is taken when the user sets none); ``never_trains``: config values whose
    output this loss leaves untrained (``difflab train`` refuses them); ``continuous``: a
    continuous-time formulation (formulation.py), whose objective carries the ``formulation``
    samplers read and its ``noise_input``, instead of the discrete schedule."""

    fn: Callable[..., Any]
    trains: str
    summary: str
    default_sampler: str
    keys: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    never_trains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    continuous: bool = False


@dataclass(frozen=True)
class ModelEntry:
    """``fn(**keys, **uses)`` is the network, of kind ``kind``, for ``data`` ("vector" (N, D),
    "image" (N, C, H, W) or "audio" (N, 1, L)); ``continuous_time``: it takes a fractional
    step index."""

    fn: Callable[..., Any]
    kind: str
    data: str
    summary: str
    keys: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    continuous_time: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    """``source``: "toy" (a seeded generator with an exact density), "file" (vectors from
    ``data.path``), "image" or "audio"; ``path_example``: what ``data.path`` holds, if it is
    needed."""

    source: str
    summary: str
    keys: tuple[str, ...] = ()
    path_example: str | None = None


def _dpmpp2m_sde(model, shape, *, sde_eta: float = 1.0, **kwargs):
    """``dpmpp2m_sde_sample`` with ``sample.sde_eta`` as its eta (``sample.eta`` is DDIM's,
    whose default differs)."""
    return dpmpp2m_sde_sample(model, shape, eta=sde_eta, **kwargs)


_GRID_KEYS = ("steps", "spacing", "grid", "sigma_min", "sigma_max", "rho", "final_step", "schedule")

SAMPLERS: dict[str, SamplerEntry] = {
    "ddpm": SamplerEntry(ddpm_sample, DIFFUSION, "ancestral sampling (Ho et al. 2020)"),
    "ddim": SamplerEntry(
        ddim_sample, DIFFUSION, "DDIM (Song et al. 2020)", keys=("eta",), noise_key="eta"
    ),
    "euler": SamplerEntry(euler_sample, DIFFUSION, "probability-flow ODE, Euler"),
    "heun": SamplerEntry(heun_sample, DIFFUSION, "probability-flow ODE, Heun (Karras 2022)"),
    "dpmpp2m": SamplerEntry(dpmpp2m_sample, DIFFUSION, "DPM-Solver++(2M) (Lu et al. 2022)"),
    "dpmpp3m": SamplerEntry(dpmpp3m_sample, DIFFUSION, "DPM-Solver++(3M), third order"),
    "dpmpp2m_sde": SamplerEntry(
        _dpmpp2m_sde,
        DIFFUSION,
        "SDE-DPM-Solver++(2M): the reverse SDE, second order",
        keys=("sde_eta",),
        noise_key="sde_eta",
    ),
    "edm": SamplerEntry(
        edm_sample,
        DIFFUSION,
        "EDM's stochastic sampler (Karras 2022, Alg. 2; Alg. 1 at s_churn = 0)",
        keys=("s_churn", "s_tmin", "s_tmax", "s_noise"),
        noise_key="s_churn",
    ),
    "pc": SamplerEntry(
        pc_sample,
        DIFFUSION,
        "predictor-corrector (Song et al. 2021)",
        keys=("snr", "corrector_steps"),
        bench=False,
    ),
    "langevin": SamplerEntry(
        langevin_sample,
        SCORE,
        "Langevin dynamics",
        keys=("steps", "step_size", "step_decay"),
        grid=False,
    ),
    "annealed_langevin": SamplerEntry(
        annealed_langevin_sample,
        LADDER,
        "annealed Langevin (Song & Ermon 2019)",
        keys=("n_steps_each", "step_size"),
        grid=False,
    ),
}

_DIFFUSION_USES = ("schedule", "prediction", "variance")
_LEARNED = ("learned_range", "learned")
_FIXED = {"model.variance": ("large", "small")}  # continuous formulations learn no variance

LOSSES: dict[str, LossEntry] = {
    "simple": LossEntry(
        SimpleObjective, DIFFUSION, "DDPM's noise-prediction loss", "ddpm",
        keys=("timesteps", "p_mean", "p_std"), uses=_DIFFUSION_USES,
        never_trains={"model.variance": _LEARNED},
    ),
    "vlb": LossEntry(
        VLBObjective, DIFFUSION, "the variational bound", "ddpm",
        keys=("timesteps",), uses=(*_DIFFUSION_USES, "levels"),
    ),
    "hybrid": LossEntry(
        HybridObjective, DIFFUSION, "simple + lambda * bound (Nichol & Dhariwal 2021)", "ddpm",
        keys=("timesteps", "hybrid_lambda"), uses=(*_DIFFUSION_USES, "levels"),
        requires={"model.variance": _LEARNED},
    ),
    "sohl_dickstein": LossEntry(
        SohlDicksteinObjective, DIFFUSION, "the 2015 bound (Sohl-Dickstein et al.)", "ddpm",
        keys=("timesteps",), uses=_DIFFUSION_USES,
        requires={"model.prediction": ("mean",), "model.variance": ("learned",)},
    ),
    "exact": LossEntry(ExactObjective, SCORE, "exact score matching (Hyvarinen 2005)", "langevin"),
    "sliced": LossEntry(
        SlicedObjective, SCORE, "sliced score matching (Song et al. 2019)", "langevin",
        keys=("n_projections", "projection"), fixed={"variance_reduced": False},
    ),
    "sliced_vr": LossEntry(
        SlicedObjective, SCORE, "sliced score matching, variance-reduced", "langevin",
        keys=("n_projections", "projection"), fixed={"variance_reduced": True},
    ),
    "dsm": LossEntry(
        DenoisingObjective, SCORE, "denoising score matching (Vincent 2011)", "langevin",
        keys=("sigma",),
    ),
    "ncsn": LossEntry(
        NCSNObjective, LADDER, "NCSN: DSM over a noise ladder", "annealed_langevin",
        uses=("sigmas",),
    ),
    "edm": LossEntry(
        EDMObjective, DIFFUSION, "EDM (Karras et al. 2022), preconditioned", "dpmpp2m",
        keys=("sigma_data", "p_mean", "p_std"), requires=_FIXED, continuous=True,
    ),
    "flow_matching": LossEntry(
        FlowMatchingObjective, DIFFUSION, "flow matching / rectified flow", "dpmpp2m",
        keys=("sigma_data", "time_distribution", "logit_mean", "logit_std"), requires=_FIXED,
        continuous=True,
    ),
    "vp_continuous": LossEntry(
        VPContinuousObjective, DIFFUSION, "the continuous-time VP-SDE (Song et al. 2021)",
        "dpmpp2m", keys=("sigma_data",), uses=("process", "prediction"),
        requires={**_FIXED, "model.prediction": ("v", "eps", "x0")}, continuous=True,
    ),
    "wavegrad": LossEntry(
        WaveGradObjective, VOCODER, "WaveGrad: L1 on eps at a continuous noise level", "ddpm",
        keys=("norm", "level_draw"), uses=("schedule", "mel"),
    ),
}  # fmt: skip

_VECTOR_KEYS = ("width", "depth", "activation")

MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(
        MLP, DIFFUSION, "vector", "MLP with a sinusoidal time embedding",
        keys=(*_VECTOR_KEYS, "time_dim"), uses=("data_dim", "out_dim", "time_scale", "num_classes"),
        continuous_time=True,
    ),
    "conditional_linear": ModelEntry(
        ConditionalLinearNet, DIFFUSION, "vector", "the tutorial's network",
        keys=_VECTOR_KEYS, uses=("data_dim", "out_dim", "T"),
    ),
    "score_mlp": ModelEntry(
        ScoreMLP, SCORE, "vector", "score network (score losses)",
        keys=(*_VECTOR_KEYS, "time_dim"), uses=("data_dim", "noise_conditional"),
    ),
    "unet": ModelEntry(
        UNet, DIFFUSION, "image", "U-Net (images)",
        keys=("channels", "channel_mult", "num_res_blocks", "attention", "dropout", "time_dim"),
        uses=("in_channels", "out_channels", "time_scale", "num_classes"), continuous_time=True,
    ),
    "wavegrad": ModelEntry(
        WaveGrad, VOCODER, "audio", "WaveGrad vocoder (mel-conditioned, Chen et al. 2020)",
        keys=("size", "upsample_factors", "upsample_channels", "downsample_channels",
              "mel_channels", "noise_scale", "level_encoding", "time_dim"),
        uses=("n_mels",),
    ),
}  # fmt: skip

DATASETS: dict[str, DatasetEntry] = {
    **{
        name: DatasetEntry("toy", "toy data with an exact density", keys=("n_train", "normalize"))
        for name in toy_names()
    },
    "file": DatasetEntry(
        "file", "your vectors (.npy/.npz/.csv)", keys=("path", "normalize"),
        path_example="your_data.npy",
    ),
    "digits": DatasetEntry("image", "scikit-learn's 8x8 digits, 17 levels"),
    "images": DatasetEntry(
        "image", "a folder of PNG/JPEG", keys=("path", "image_size", "color"),
        path_example="a_folder",
    ),
    "image_file": DatasetEntry(
        "image", "an .npy/.npz of integer images", keys=("path", "image_size", "levels"),
        path_example="images.npy",
    ),
    "toy_speech": DatasetEntry(
        "audio", "seeded speech-like clips with their exact f0 track",
        keys=("sample_rate", "segment_frames", "n_clips", "clip_seconds"),
    ),
    "audio": DatasetEntry(
        "audio", "a folder of WAV/FLAC files", keys=("path", "sample_rate", "segment_frames"),
        path_example="a_folder",
    ),
    "espeak": DatasetEntry(
        "audio", "sentences spoken by espeak-ng (install it: apt-get install espeak-ng)",
        keys=("sample_rate", "segment_frames", "n_clips"),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class CriterionEntry:
    """A validation criterion of ``difflab tune-schedule``: ``fn(held_out, data_name)`` builds
    it (criteria.py); it applies to data whose name or source is in ``data``."""

    fn: Callable[..., Any]
    data: tuple[str, ...]
    summary: str


CRITERIA: dict[str, CriterionEntry] = {
    "energy": CriterionEntry(energy_criterion, ("toy", "file"), "energy distance to held-out data"),
    "neg_log_p": CriterionEntry(
        neg_log_p_criterion, ("toy",), "E_q[-log p] under the exact density (precision only)"
    ),
    "frechet": CriterionEntry(
        frechet_criterion, ("digits",), "Frechet distance in the digits classifier's features"
    ),
}


def criteria_for(data_name: str) -> list[str]:
    """The criteria that apply to ``data_name`` (by name or by its source), best first."""
    source = DATASETS[data_name].source
    return [n for n, row in CRITERIA.items() if data_name in row.data or source in row.data]


TABLES: dict[str, dict[str, Any]] = {
    "sample.sampler": SAMPLERS,
    "loss.name": LOSSES,
    "model.name": MODELS,
    "data.name": DATASETS,
}


def lookup(key: str, name: str) -> Any:
    """The row of ``name`` in the table behind config key ``key`` (e.g. "sample.sampler"), or
    a ValueError listing the valid names with a did-you-mean suggestion."""
    import difflib

    table = TABLES[key]
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), list(table), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {key} {name!r}{hint} (choose one of {', '.join(map(repr, table))})")


def names(table: dict[str, Any], **match: Any) -> list[str]:
    """The names of the rows whose fields equal ``match`` (e.g. ``needs="diffusion"``)."""
    return [n for n, row in table.items() if all(getattr(row, k) == v for k, v in match.items())]


def model_kind(loss_name: str) -> str:
    """The kind of network a loss trains: a diffusion network, or a score network (NCSN's
    noise-conditional ladder is a score network too)."""
    return DIFFUSION if LOSSES[loss_name].trains == DIFFUSION else SCORE


def data_kind(data_name: str) -> str:
    """ "image" for image sources, "vector" for the others."""
    return "image" if DATASETS[data_name].source == "image" else "vector"


def following_defaults(loss_name: str, data_name: str) -> dict[str, Any]:
    """The values that follow from the loss and the data when the user sets none of them: a
    network of the kind the loss trains for that kind of data (the first such row), the
    loss's sampler, and the first allowed value of each key the loss requires."""
    out: dict[str, Any] = {"sample.sampler": LOSSES[loss_name].default_sampler}
    models = names(MODELS, kind=model_kind(loss_name), data=data_kind(data_name))
    if models:
        out["model.name"] = models[0]
    out.update({key: allowed[0] for key, allowed in LOSSES[loss_name].requires.items()})
    return out


def reweights_t(loss_name: str) -> bool:
    """Whether the objective of ``loss_name`` may reweight its loss over t (its class's
    ``reweights``: the simple loss; a bound must average uniformly over t), which is what
    ``loss.timesteps`` "lognormal" needs and what "auto" resolves by."""
    return bool(getattr(LOSSES[loss_name].fn, "reweights", False))


def keys_read(key: str, name: str) -> set[str]:
    """Every config key (``section.key``) that the row of ``name`` reads."""
    row = lookup(key, name)
    section = key.split(".")[0]
    read = {f"{section}.{k}" for k in row.keys}
    for ingredient in getattr(row, "uses", ()):
        read.update(INGREDIENT_KEYS[ingredient])
    if key == "sample.sampler" and row.grid:
        read.update(f"sample.{k}" for k in _GRID_KEYS)
    return read
