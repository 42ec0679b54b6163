"""The training loop: optimiser, LR warm-up and decay, gradient clipping, EMA, checkpoints and a
metrics log. The objective decides what is learned; the trainer only averages its per-example
losses and steps the optimiser.

Reliability: a step whose loss or gradient is not finite is skipped (no optimiser or EMA
update) and counted; ``train.max_nonfinite`` such steps in a row stop the run with
:class:`NonFiniteError`. SIGINT/SIGTERM stop the loop between steps and write a checkpoint.
Every random draw comes from one seeded generator saved in each checkpoint, so resuming
(:meth:`Trainer.load_checkpoint`) continues bitwise like an uninterrupted run on CPU.

A class-conditional network (``num_classes`` set) trains on the batch's labels, each replaced by
the null class with probability ``label_dropout`` (drawn from the same generator, after the
batch indices), so it also learns p(x) for classifier-free guidance (conditioning.py).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from difflab.compiled import (
    CompiledNetwork,
    bfloat16_unsupported,
    compile_network,
    fused_optimizer_supported,
)
from difflab.conditioning import WithLabels, drop_labels, num_classes_of
from difflab.data.dataset import Dataset
from difflab.ema import EMA
from difflab.losses.base import LossOutput, Objective
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import DistContext, ShardedForward
from difflab.training.metrics_log import MetricsLog
from difflab.training.signals import StopFlag, stop_on_signals


class TrainSettings(Protocol):
    """What the trainer reads (the application's ``[train]`` config section has these keys)."""

    steps: int
    batch_size: int
    lr: float
    ema_decay: float
    grad_clip: float
    seed: int
    optimizer: str
    weight_decay: float
    warmup_steps: int
    lr_schedule: str
    checkpoint_every: int
    checkpoint_minutes: float
    keep_checkpoints: int
    log_every: int
    log_format: str
    max_nonfinite: int
    precision: str
    compile: bool
    fused_optimizer: bool
    label_dropout: float  # read only for class-conditional networks


class TrainingObserver(Protocol):
    """Sees the training as it goes (e.g. ``training/tensorboard.TensorBoardLog``): every applied
    step's objective output (this rank's ``rows``), every logged row, every checkpoint (with a
    callable giving the network to sample: EMA weights unless ``sample_ema`` is false)."""

    def step(self, out: LossOutput, rows: slice) -> None: ...

    def log(self, row: dict[str, float]) -> None: ...

    def checkpoint(self, step: int, model: Any) -> None: ...

    def close(self) -> None: ...


def lr_at(step: int, cfg: TrainSettings) -> float:
    """Learning rate before optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then constant or a cosine decay to 0 at ``steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, cfg: TrainSettings, device: torch.device | str = "cpu"
) -> torch.optim.Optimizer:
    """Adam or AdamW; fused into one kernel when ``cfg.fused_optimizer`` and the parameters'
    device has it (else torch's multi-tensor implementation)."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    fused = getattr(cfg, "fused_optimizer", False) and fused_optimizer_supported(device)
    kwargs = {"fused": True} if fused else {}
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs)


class NonFiniteError(ValueError):
    """Too many non-finite losses or gradients in a row: the run stopped (user-facing)."""


@dataclass
class TrainSummary:
    steps: int
    final_loss: float
    wall_s: float
    steps_per_s: float
    skipped_steps: int = 0
    interrupted: str | None = None  # the signal's name when SIGINT/SIGTERM stopped the run
    checkpoint: Path | None = None
    compile_s: float | None = None  # the first step's wall time with train.compile (warm-up)


class Trainer:
    """Trains ``model`` on ``dataset`` with ``objective`` for ``cfg.steps`` optimiser steps.

    Batches are drawn with replacement from the in-memory data with a seeded generator that
    also drives the objective's noise, so a run is reproducible from ``cfg.seed``. With a
    distributed ``dist_ctx`` every rank draws the same global batch and trains on its shard
    (see training/distributed.py); only rank 0 writes. ``run_config`` (the whole run's config
    as a dict) is recorded in every checkpoint. ``observer`` (rank 0 only) sees every applied
    step, logged row and checkpoint; it draws on none of the trainer's random state.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        dataset: Dataset,
        cfg: TrainSettings,
        *,
        run_dir: Path | None = None,
        device: torch.device | str = "cpu",
        progress: bool = True,
        dist_ctx: DistContext | None = None,
        run_config: dict[str, Any] | None = None,
        observer: TrainingObserver | None = None,
        sample_ema: bool = True,
    ) -> None:
        self.dist = dist_ctx or DistContext()
        self.device = torch.device(device)
        reason = bfloat16_unsupported(self.device) if cfg.precision == "bfloat16" else None
        if reason:
            raise ValueError(
                f"train.precision = 'bfloat16': {reason}; set train.precision = "
                "'float32' or train on a device that has bfloat16"
            )
        self.model = model.to(self.device)
        self.objective = objective
        if hasattr(objective, "schedule"):
            objective.schedule.to(self.device)
        self._shard_setup(cfg)
        self.data = dataset.x.to(self.device)
        self.labels = self._labels_for(model, dataset)
        self.dataset = dataset
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None and self.dist.is_main else None
        self.run_config = run_config
        self.observer = observer if self.dist.is_main else None
        self.sample_ema = sample_ema
        self.progress = progress and self.dist.is_main
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.step = 0
        self.skipped_steps = 0
        self.nonfinite_streak = 0
        self.applied = True
        self.stop = StopFlag()
        self.stop_requested = False
        self.saved_step = -1
        self.saved_at = time.monotonic()

    def set_run_dir(self, run_dir: Path) -> None:
        """Write checkpoints and the log into ``run_dir`` (rank 0 only)."""
        self.run_dir = Path(run_dir) if self.dist.is_main else None

    def _shard_setup(self, cfg: TrainSettings) -> None:
        """The module the objective calls: the network, compiled if asked (train.compile),
        and under torchrun wrapped in DDP and run on this rank's shard of the batch."""
        net = self.model
        if getattr(cfg, "compile", False):
            net = compile_network(self.model, self.device, what="train.compile")
        self.compiled = net if isinstance(net, CompiledNetwork) else None
        self.forward_model: nn.Module = net
        if not self.dist.enabled:
            return
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(
                f"train.batch_size = {cfg.batch_size} must be divisible by the number of "
                f"processes ({self.dist.world_size}); it is the global batch"
            )
        timesteps = getattr(self.objective, "timesteps", None)
        if timesteps is not None and hasattr(timesteps, "set_shard"):
            timesteps.set_shard(self.dist.rank, self.dist.world_size)
        self.forward_model = ShardedForward(self.dist.wrap(net, self.device), self.dist)

    def _labels_for(self, model: nn.Module, dataset: Dataset) -> torch.Tensor | None:
        """The training labels on the device for a class-conditional network, else None."""
        self.num_classes = num_classes_of(model)
        if self.num_classes is None:
            return None
        if dataset.labels is None:
            raise ValueError(
                f"the network is class-conditional but data {dataset.name!r} has no labels; "
                "use labelled data or set model.class_conditional = false"
            )
        if int(dataset.labels.max()) >= self.num_classes:
            raise ValueError(
                f"labels go up to {int(dataset.labels.max())} but the network has "
                f"{self.num_classes} classes"
            )
        return dataset.labels.to(self.device)

    def _conditioned(self, idx: torch.Tensor) -> nn.Module:
        """The network objectives call: bound to the batch's labels (with label dropout) for a
        class-conditional network, else the network itself."""
        if self.labels is None or self.num_classes is None:
            return self.forward_model
        labels = drop_labels(
            self.labels[idx], self.cfg.label_dropout, self.num_classes, generator=self.generator
        )
        return WithLabels(self.forward_model, labels)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision != "bfloat16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step; returns the loss (mean over this rank's examples) and the gradient norm
        (before clipping). A non-finite loss or gradient skips the update: ``self.applied`` is
        then False and ``self.step`` does not advance."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        idx = torch.randint(
            0,
            self.data.shape[0],
            (self.cfg.batch_size,),
            generator=self.generator,
            device=self.device,
        )
        model = self._conditioned(idx)
        with self._autocast():
            out = self.objective(model, self.data[idx], generator=self.generator)
        loss = out.loss[self.dist.shard(idx.shape[0])].float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.grad_clip > 0:
            grad_norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        else:
            grad_norm = _total_norm(params)
        finite = bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm))
        nonfinite, self.stop_requested = self.dist.any([not finite, bool(self.stop)], self.device)
        self.applied = not nonfinite
        if nonfinite:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self.nonfinite_streak += 1
        else:
            self.optimizer.step()
            self.ema.update(self.model)
            self.step += 1
            self.nonfinite_streak = 0
            if self.observer is not None:
                self.observer.step(out, self.dist.shard(idx.shape[0]))
        return loss.detach(), (grad_norm if self.cfg.grad_clip > 0 else None)

    def fit(self) -> TrainSummary:
        """Train until ``cfg.steps``, logging every ``log_every`` and checkpointing as set.

        SIGINT/SIGTERM end the loop after the current step and write a checkpoint there.
        """
        cfg = self.cfg
        log = MetricsLog(self.run_dir, cfg.log_format) if self.run_dir else None
        start, t0 = self.step, time.perf_counter()
        window_t, window_loss, window_n, last_loss = t0, torch.zeros(()), 0, float("nan")
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, desc="train")
        self.model.train()
        compile_s = None
        try:
            with stop_on_signals(self.stop), _say_what_was_lost(self):
                while self.step < cfg.steps and not self.stop_requested:
                    if compile_s is None and self.compiled is not None:
                        compile_s, (loss, grad_norm) = self._compile_warmup(bar)
                    else:
                        loss, grad_norm = self.train_step()
                    if not self.applied:
                        self._check_nonfinite()
                        continue
                    window_loss += loss.cpu()
                    window_n += 1
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        now = time.perf_counter()
                        last_loss = float(self.dist.mean(window_loss)) / window_n
                        row = {
                            "step": self.step,
                            "loss": last_loss,
                            "lr": lr_at(self.step - 1, cfg),
                            "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
                            "skipped": self.skipped_steps,
                            "steps_per_s": window_n / max(now - window_t, 1e-9),
                            "elapsed_s": now - t0,
                        }
                        if log:
                            log.write(row)
                        if self.observer is not None:
                            self.observer.log(row)
                        bar.update(window_n)
                        bar.set_postfix(loss=f"{last_loss:.4f}")
                        window_t, window_loss, window_n = now, torch.zeros(()), 0
                    if self.run_dir is not None and self._checkpoint_due():
                        self.save()
                if self.run_dir is not None and self.saved_step != self.step:
                    self.save()
        finally:
            bar.close()
            if log:
                log.close()
            if self.observer is not None:
                self.observer.close()
        wall = time.perf_counter() - t0
        done = self.step - start
        return TrainSummary(
            self.step,
            last_loss,
            wall,
            done / wall if wall > 0 else 0.0,
            skipped_steps=self.skipped_steps,
            interrupted=(self.stop.name or "SIGTERM")
            if self.stop_requested and self.step < cfg.steps
            else None,
            checkpoint=self._last_checkpoint(),
            compile_s=compile_s,
        )

    def _compile_warmup(self, bar: tqdm) -> tuple[float, tuple[torch.Tensor, Any]]:
        """The first step with train.compile, shown as such in the progress output: it traces
        and compiles the network's forward and backward passes. Returns its wall time and
        what :meth:`train_step` returned."""
        bar.set_description("train (torch.compile warm-up)")
        t0 = time.perf_counter()
        result = self.train_step()
        seconds = time.perf_counter() - t0
        bar.set_description("train")
        if self.progress:
            state = "compiled" if self.compiled is not None and self.compiled.compiled else "eager"
            bar.write(f"train.compile: first step {seconds:.1f} s (warm-up; network {state})")
        return seconds, result

    def _checkpoint_due(self) -> bool:
        """Every ``checkpoint_every`` steps (0: off), and ``checkpoint_minutes`` after the last
        checkpoint or the start (0: off), so a long run killed late keeps most of its work."""
        every, minutes = self.cfg.checkpoint_every, self.cfg.checkpoint_minutes
        if every and self.step % every == 0:
            return True
        return bool(minutes) and time.monotonic() - self.saved_at >= 60.0 * minutes

    def _check_nonfinite(self) -> None:
        """Stop the run after ``max_nonfinite`` skipped steps in a row."""
        if self.nonfinite_streak < self.cfg.max_nonfinite:
            return
        last = self._last_checkpoint()
        where = (
            f"the last good checkpoint is {last}"
            if last
            else "no checkpoint was written (set train.checkpoint_every to keep some)"
        )
        raise NonFiniteError(
            f"training stopped at step {self.step}: the loss or gradient was not finite in "
            f"{self.nonfinite_streak} steps in a row ({self.skipped_steps} skipped in all); "
            f"{where}; lower train.lr, keep train.grad_clip > 0, or check the data and "
            "schedule with `difflab doctor RUN_DIR`"
        )

    def _last_checkpoint(self) -> Path | None:
        found = ckpt.checkpoint_dirs(self.run_dir) if self.run_dir is not None else []
        return found[-1] if found else None

    def save(self) -> Path:
        """Write a checkpoint of the current step into the run directory."""
        assert self.run_dir is not None, "a run directory is needed to save checkpoints"
        state = {
            "step": self.step,
            "generator": self.generator.get_state(),
            "ema_num_updates": self.ema.num_updates,
            "timesteps": getattr(getattr(self.objective, "timesteps", None), "state_dict", dict)(),
            "skipped_steps": self.skipped_steps,
            "nonfinite_streak": self.nonfinite_streak,
            "threads": torch.get_num_threads(),  # resumed with the same count: bitwise
        }
        path = ckpt.save_checkpoint(
            self.run_dir,
            step=self.step,
            model=self.model,
            ema_state=self.ema.averaged_state_dict(self.model),
            optimizer_state=self.optimizer.state_dict(),
            state=state,
            keep=self.cfg.keep_checkpoints,
            config=self.run_config,
        )
        self.saved_step = self.step
        self.saved_at = time.monotonic()
        if self.observer is not None:
            self.observer.checkpoint(self.step, self.sampling_model)
        return path

    def sampling_model(self) -> nn.Module:
        """A copy of the network in eval mode with the weights sampling uses (the EMA average
        unless ``sample_ema`` is false); training is untouched."""
        model = copy.deepcopy(self.model)
        if self.sample_ema:
            model.load_state_dict(self.ema.averaged_state_dict(self.model))
        return model.eval()

    def load_checkpoint(self, loaded: ckpt.TrainingState) -> None:
        """Continue from a loaded checkpoint: weights, EMA, optimiser, RNG, counters."""
        where = loaded.path
        ckpt.load_model_weights(self.model, loaded.model, where / "model.safetensors")
        state = loaded.state
        try:
            self.ema.load_state_dict(
                {
                    "decay": self.cfg.ema_decay,
                    "num_updates": state["ema_num_updates"],
                    "shadow": {k: loaded.ema[k] for k in self.ema.shadow},
                }
            )
            self.optimizer.load_state_dict(loaded.optimizer)
            self.generator.set_state(state["generator"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise ckpt.CheckpointError(
                f"checkpoint {where} does not fit this run ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); resume on the device type "
                "it was written on, with the run's own config"
            ) from None
        timesteps = getattr(self.objective, "timesteps", None)
        if timesteps is not None:
            timesteps.load_state_dict(state.get("timesteps") or {})
        self.step = loaded.step
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.nonfinite_streak = int(state.get("nonfinite_streak", 0))
        self.saved_step = loaded.step


@contextlib.contextmanager
def _say_what_was_lost(trainer: Trainer):
    """A second Ctrl-C stops at once: say which steps were not saved and where to go on."""
    try:
        yield
    except KeyboardInterrupt:
        last = trainer._last_checkpoint()
        saved = int(last.name.split("_")[-1]) if last is not None else None
        if saved == trainer.step:
            what = f"checkpoint {last} of step {saved} is complete"
        else:
            since = f"since step {saved}" if saved is not None else "(no checkpoint was written)"
            what = f"step {trainer.step} was not saved, the steps {since} are lost"
        where = f"; continue with: difflab train --resume {last.parent.parent}" if last else ""
        raise KeyboardInterrupt(f"interrupted twice: stopped at once; {what}{where}") from None


def _total_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients together (what clip_grad_norm_ reports), without clipping."""
    if not params:
        return torch.zeros(())
    norms = torch._foreach_norm([p.grad for p in params])
    return torch.linalg.vector_norm(torch.stack(norms))
