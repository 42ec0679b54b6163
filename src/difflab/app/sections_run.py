"""The sections that say how a run trains, samples and evaluates (``[train]``, ``[sample]``,
``[evaluate]``), each a frozen dataclass that validates itself on construction, as those of
``app/sections.py`` (the data, schedule, model and loss; this module lives apart to keep that
one short). The whole config and the checks across sections: ``app/config.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from difflab.app import registry
from difflab.app.sections import _check, _choice, check_seed
from difflab.choices import StrEnum
from difflab.samplers.grids import MAX_STEPS, FinalStep, Grid
from difflab.samplers.spacing import Spacing


class ODEMethod(StrEnum):
    DOPRI5 = "dopri5"
    DOPRI8 = "dopri8"
    BOSH3 = "bosh3"
    RK4 = "rk4"


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


#: The default probability of the null class in training (train.label_dropout): measured in
#: benchmarks/bench_guidance.py (docs/conditioning.md).
LABEL_DROPOUT = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: budget, batch, optimiser and LR schedule, EMA, checkpoints and logging.

    Checkpoints: every ``checkpoint_every`` steps (0: off) and every ``checkpoint_minutes`` of
    training (0: off; default 5), always at the end; the newest ``keep_checkpoints`` are kept.
    ``tensorboard``: also log to RUN_DIR/tensorboard/ (scalars, the loss by quartile of t, a
    sample figure at every checkpoint; needs ``pip install 'difflab[tensorboard]'``).
    ``threads``: intra-op CPU threads (0: as many as there are idle cores, see
    ``app/resources.choose_threads``).
    ``compile``: run the network through torch.compile (eager, with a warning, where it cannot
    work); ``fused_optimizer``: one fused Adam/AdamW kernel where the device has it.
    ``label_dropout``: class-conditional networks see the null class instead of the label with
    this probability, so they also learn p(x) (classifier-free guidance needs it > 0).
    """

    steps: int = 3000
    batch_size: int = 512
    lr: float = 4e-3
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    seed: int = 0
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    checkpoint_every: int = 0
    checkpoint_minutes: float = 5.0
    keep_checkpoints: int = 3
    log_every: int = 50
    log_format: str = "csv"
    device: str = "cpu"
    max_nonfinite: int = 10
    precision: str = "float32"
    tensorboard: bool = False
    threads: int = 0
    compile: bool = False
    fused_optimizer: bool = True
    label_dropout: float = LABEL_DROPOUT

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "train.steps", self.steps, "an integer >= 0")
        check_seed(self.seed, "train.seed")
        _check(
            0 <= self.threads <= 1024,
            "train.threads",
            self.threads,
            "an integer in [0, 1024] (0: automatic, see docs/performance.md)",
        )
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
            "an integer >= 0 (0: no step-based checkpoints)",
        )
        _check(
            self.checkpoint_minutes >= 0,
            "train.checkpoint_minutes",
            self.checkpoint_minutes,
            "a number >= 0 (0: no time-based checkpoints)",
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
            0 <= self.label_dropout < 1,
            "train.label_dropout",
            self.label_dropout,
            "a number in [0, 1) (the probability of the null class; 0: no guidance)",
        )
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
    ``eta`` is DDIM's noise scale (0 deterministic, 1 ancestral); ``sde_eta`` that of
    SDE-DPM-Solver++(2M) ("dpmpp2m_sde": 1 the reverse SDE, the default; 0 the probability-flow
    ODE).

    Noise-level grids (samplers/grids.py; the grid of continuous formulations, and of a discrete
    schedule when set): ``grid`` (karras | logsnr | time; omitted: ``spacing`` for discrete
    schedules, karras for continuous formulations) from ``sigma_max`` down to ``sigma_min``
    (noise levels sigma / alpha; omitted: the measured defaults per data scale, see
    :func:`difflab.app.build.grid_range`), Karras's ``rho``, and ``final_step`` (denoise: a
    last step to the data; none: stop at sigma_min). ``steps`` omitted: 18 for continuous
    formulations. EDM's sampler ("edm"): ``s_churn``, ``s_tmin``, ``s_tmax`` (omitted: no
    upper limit), ``s_noise`` (Karras et al. 2022, Alg. 2). ``schedule``: "grid" (the above),
    "tuned" (the run's tuned_schedule.json from ``difflab tune-schedule``) or a path to one.
    ``compile``: run the network through torch.compile while sampling (eager, with a warning,
    where it cannot work).
    ``guidance``: the classifier-free guidance scale s of class-conditional runs,
    eps = eps_u + s (eps_c - eps_u): 1 plain conditional sampling, 0 unconditional, > 1
    stronger classes (the paper's w = s - 1).
    """

    sampler: str = "ddpm"
    steps: int | None = None
    spacing: str = "linspace"
    eta: float = 0.0
    sde_eta: float = 1.0
    n: int = 5000
    clip_x0: bool = False
    use_ema: bool = True
    step_size: float | None = None
    step_decay: float = 1.0
    n_steps_each: int = 100
    snr: float = 0.16
    corrector_steps: int = 1
    grid: str | None = None
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float = 7.0
    final_step: str = "denoise"
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float | None = None
    s_noise: float = 1.0
    schedule: str = "grid"
    compile: bool = False
    guidance: float = 1.0

    def __post_init__(self) -> None:
        entry = registry.lookup("sample.sampler", self.sampler)
        _check_grid_keys(self)
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
        _check(
            0.0 <= self.sde_eta <= 1.0,
            "sample.sde_eta",
            self.sde_eta,
            "a number in [0, 1] (1: the reverse SDE, 0: the probability-flow ODE)",
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
        _check(
            self.steps is None or self.steps <= MAX_STEPS,
            "sample.steps",
            self.steps,
            f"at most {MAX_STEPS}",
        )
        _check(
            math.isfinite(self.guidance) and self.guidance >= 0,
            "sample.guidance",
            self.guidance,
            "a finite number >= 0 (1: conditional sampling, 0: unconditional)",
        )
        if self.steps is not None and not entry.grid and "steps" not in entry.keys:
            raise ValueError(
                f"sample.steps = {self.steps} does not apply to {self.sampler!r}, which runs "
                "sample.n_steps_each steps at each of loss.n_sigmas levels; omit --steps"
            )


def _check_grid_keys(cfg: SampleConfig) -> None:
    """The noise-level grid's and EDM sampler's keys (their ranges; the process's bounds are
    checked when the grid is made)."""
    if cfg.grid is not None:
        _choice(Grid, cfg.grid, "sample.grid")
    _choice(FinalStep, cfg.final_step, "sample.final_step")
    lo, hi, tmax = cfg.sigma_min, cfg.sigma_max, cfg.s_tmax
    rules = [  # (ok, key, rule)
        (lo is None or lo > 0, "sigma_min", "> 0, or omitted"),
        (hi is None or hi > 0, "sigma_max", "> 0, or omitted"),
        (lo is None or hi is None or lo < hi, "sigma_min", f"below sample.sigma_max = {hi}"),
        (cfg.rho > 0, "rho", "> 0 (EDM uses 7)"),
        (cfg.s_churn >= 0, "s_churn", ">= 0 (0: deterministic)"),
        (cfg.s_tmin >= 0, "s_tmin", ">= 0"),
        (
            tmax is None or tmax > cfg.s_tmin,
            "s_tmax",
            f"> sample.s_tmin = {cfg.s_tmin}, or omitted",
        ),
        (cfg.s_noise > 0, "s_noise", "> 0 (EDM uses 1 to 1.007)"),
        (bool(cfg.schedule), "schedule", "'grid', 'tuned' or a tuned schedule file"),
    ]
    for ok, key, rule in rules:
        _check(ok, f"sample.{key}", getattr(cfg, key), rule)


@dataclass(frozen=True)
class EvaluateConfig:
    """``difflab evaluate``: held-out points (``n``, toy data), the ODE solver (``ode_method``,
    ``ode_rtol``, ``ode_atol``), exact divergence up to ``exact_divergence_max_dim`` dimensions
    (Hutchinson above), batch size, and the number of samples scored against fresh data.

    Audio runs: ``clips`` test clips (0: all) vocoded with each of ``vocode_steps`` iterations
    and rebuilt by Griffin-Lim with each of ``griffin_lim_iters`` iterations."""

    n: int = 10_000
    batch_size: int = 10_000
    ode_method: str = "dopri5"
    ode_rtol: float = 1e-5
    ode_atol: float = 1e-5
    exact_divergence_max_dim: int = 8
    n_samples: int = 2000
    seed: int = 0
    clips: int = 10
    vocode_steps: tuple[int, ...] = (6, 12, 25, 50)
    griffin_lim_iters: tuple[int, ...] = (8, 32, 100)

    def __post_init__(self) -> None:
        _check(self.clips >= 0, "evaluate.clips", self.clips, "an integer >= 0 (0: every clip)")
        for key in ("vocode_steps", "griffin_lim_iters"):
            value = getattr(self, key)
            _check(
                all(v >= 1 for v in value),
                f"evaluate.{key}",
                list(value),
                "a list of integers >= 1 (may be empty)",
            )
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
        check_seed(self.seed, "evaluate.seed")
