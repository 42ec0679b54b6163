"""The training loop: optimiser, LR warm-up and decay, gradient clipping, EMA, checkpoints and a
metrics log. The objective decides what is learned; the trainer only averages its per-example
losses and steps the optimiser.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from difflab.config import TrainConfig
from difflab.data.dataset import Dataset
from difflab.ema import EMA
from difflab.losses.base import Objective
from difflab.training import checkpoint as ckpt


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate before optimiser step ``step`` (0-based): linear warm-up over
    ``warmup_steps``, then constant or a cosine decay to 0 at ``steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


class MetricsLog:
    """Append rows to ``metrics.csv`` or ``metrics.jsonl`` in the run directory."""

    FIELDS = ("step", "loss", "lr", "grad_norm", "steps_per_s", "elapsed_s")

    def __init__(self, run_dir: Path, fmt: str) -> None:
        self.path = run_dir / f"metrics.{fmt}"
        self.fmt = fmt
        new = not self.path.exists()
        self.handle = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        if fmt == "csv":
            self.writer = csv.DictWriter(self.handle, fieldnames=self.FIELDS)
            if new:
                self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self.writer.writerow(row)
        else:
            self.handle.write(json.dumps(row) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The training log of a run as a list of rows (CSV or JSONL, whichever exists)."""
    run_dir = Path(run_dir)
    if (run_dir / "metrics.csv").exists():
        with open(run_dir / "metrics.csv", newline="") as handle:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    if (run_dir / "metrics.jsonl").exists():
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return []


@dataclass
class TrainSummary:
    steps: int
    final_loss: float
    wall_s: float
    steps_per_s: float


class Trainer:
    """Trains ``model`` on ``dataset`` with ``objective`` for ``cfg.steps`` optimiser steps.

    Batches are drawn with replacement from the in-memory data with a seeded generator that
    also drives the objective's noise, so a run is reproducible from ``cfg.seed``.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        dataset: Dataset,
        cfg: TrainConfig,
        *,
        run_dir: Path | None = None,
        device: torch.device | str = "cpu",
        progress: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.objective = objective
        if hasattr(objective, "schedule"):
            objective.schedule.to(self.device)
        self.data = dataset.x.to(self.device)
        self.dataset = dataset
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.optimizer = build_optimizer(self.model, cfg)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.step = 0

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimiser step; returns the batch loss and the gradient norm (before clipping)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        idx = torch.randint(
            0,
            self.data.shape[0],
            (self.cfg.batch_size,),
            generator=self.generator,
            device=self.device,
        )
        out = self.objective(self.model, self.data[idx], generator=self.generator)
        loss = out.loss.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if self.cfg.grad_clip > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        return loss.detach(), grad_norm

    def fit(self) -> TrainSummary:
        """Train until ``cfg.steps``, logging every ``log_every`` and checkpointing as set."""
        cfg = self.cfg
        log = MetricsLog(self.run_dir, cfg.log_format) if self.run_dir else None
        start, t0 = self.step, time.perf_counter()
        window_t, window_loss, window_n, last_loss = t0, torch.zeros(()), 0, float("nan")
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.progress, desc="train")
        self.model.train()
        try:
            while self.step < cfg.steps:
                loss, grad_norm = self.train_step()
                window_loss += loss
                window_n += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    last_loss = float(window_loss) / window_n
                    row = {
                        "step": self.step,
                        "loss": last_loss,
                        "lr": lr_at(self.step - 1, cfg),
                        "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
                        "steps_per_s": window_n / max(now - window_t, 1e-9),
                        "elapsed_s": now - t0,
                    }
                    if log:
                        log.write(row)
                    bar.update(window_n)
                    bar.set_postfix(loss=f"{last_loss:.4f}")
                    window_t, window_loss, window_n = now, torch.zeros(()), 0
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
            if log:
                log.close()
        if self.run_dir is not None:
            self.save()
        wall = time.perf_counter() - t0
        done = self.step - start
        return TrainSummary(self.step, last_loss, wall, done / wall if wall > 0 else 0.0)

    def save(self) -> Path:
        """Write a checkpoint of the current step into the run directory."""
        assert self.run_dir is not None, "a run directory is needed to save checkpoints"
        state = {
            "step": self.step,
            "generator": self.generator.get_state(),
            "ema_num_updates": self.ema.num_updates,
            "timesteps": getattr(getattr(self.objective, "timesteps", None), "state_dict", dict)(),
        }
        return ckpt.save_checkpoint(
            self.run_dir,
            step=self.step,
            model=self.model,
            ema_state=self.ema.averaged_state_dict(self.model),
            optimizer_state=self.optimizer.state_dict(),
            state=state,
            keep=self.cfg.keep_checkpoints,
        )
