"""``difflab train``: build everything from a config, train, and leave a complete run directory;
``--resume`` continues one exactly; ``--dry-run`` checks a config without writing."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from difflab.app.build import build_model, build_objective, build_schedule, count_parameters
from difflab.app.config import Config
from difflab.app.config_files import (
    apply_overrides,
    config_from_dict,
    config_from_json,
    load_config,
)
from difflab.app.datasets import build_dataset
from difflab.app.registry import LOSSES
from difflab.app.run import require_run_dir
from difflab.app.tensorboard import check_tensorboard, tensorboard_log
from difflab.data.dataset import Dataset
from difflab.losses.base import Objective
from difflab.schedules import NoiseSchedule
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import (
    fail_together,
    init_distributed,
    is_main_process,
    shutdown_distributed,
)
from difflab.training.metrics_log import truncate_metrics
from difflab.training.trainer import Trainer, TrainSummary

#: Keys ``--set`` may change when resuming; everything else is fixed by the checkpoint.
RESUME_KEYS = (
    "steps",
    "tensorboard",
    "checkpoint_every",
    "checkpoint_minutes",
    "keep_checkpoints",
    "log_every",
    "max_nonfinite",
    "device",
)


def new_run_dir(out: str | Path | None, cfg: Config) -> Path:
    """The run directory to create: ``out``, or runs/<time>-<data>; never an existing run."""
    path = Path(out) if out else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.data.name}"
    if path.exists() and any(path.iterdir()):
        raise ckpt.CheckpointError(
            f"{str(path)!r} already exists and is not empty; choose another --out "
            "(nothing was overwritten)"
        )
    return path


def build_training(cfg: Config) -> tuple[Dataset, NoiseSchedule, torch.nn.Module, Objective]:
    """Data, schedule, freshly initialised network (seeded) and objective for ``cfg``."""
    torch.manual_seed(cfg.train.seed)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, dataset.shape)
    return dataset, schedule, model, build_objective(cfg, schedule, levels=dataset.levels)


def resolve_data_scale(cfg: Config) -> Config:
    """``cfg`` with a continuous formulation's omitted ``loss.sigma_data`` measured: the
    standard deviation of every value of the training data in model space (4 significant
    digits), so that config.json describes the model completely (EDM's preconditioning, the
    grids' default range and the starting law depend on it)."""
    if not LOSSES[cfg.loss.name].continuous or cfg.loss.sigma_data is not None:
        return cfg
    x = build_dataset(cfg.data, seed=cfg.train.seed).x.double()
    std = float(x.std(correction=0))
    if not (std > 0 and torch.isfinite(torch.tensor(std))):
        raise ValueError(
            f"the training data's standard deviation is {std}: loss.sigma_data cannot be "
            "measured; check the data or set loss.sigma_data"
        )
    return cfg.replace("loss", sigma_data=float(f"{std:.4g}"))


def data_info(dataset: Dataset) -> dict[str, Any]:
    """What the manifest records about the training data, with a SHA-256 of its values so a
    resume can tell that the data changed."""
    digest = hashlib.sha256(dataset.x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    return {**dataset.info(), "sha256": digest}


def _trainer(cfg: Config, run_dir: Path, *, progress: bool) -> tuple[Trainer, Dataset]:
    check_tensorboard(cfg)
    dist_ctx, device = init_distributed(_device(cfg.train.device))
    dataset, _, model, objective = build_training(cfg)
    trainer = Trainer(
        model,
        objective,
        dataset,
        cfg.train,
        run_dir=run_dir,
        device=device,
        progress=progress,
        dist_ctx=dist_ctx,
        run_config=cfg.to_dict(),
        sample_ema=cfg.sample.use_ema,
    )
    return trainer, dataset


def _attach_tensorboard(trainer: Trainer, cfg: Config, *, resumed_from: int | None = None) -> None:
    """Rank 0's TensorBoard log when ``train.tensorboard``, once the run directory is written;
    on resume, the events logged after the checkpoint ``resumed_from`` are dropped."""
    if trainer.run_dir is None:
        return
    schedule = build_schedule(cfg.schedule, warn=False)
    purge = None if resumed_from is None else resumed_from + 1
    trainer.observer = tensorboard_log(
        cfg, trainer.run_dir, trainer.dataset, schedule.to(trainer.device), purge_step=purge
    )


def train_run(
    cfg: Config, out: str | Path | None = None, *, progress: bool = True
) -> tuple[Path, TrainSummary]:
    """Build everything from ``cfg``, train, and leave a complete run directory.

    Under torchrun every process calls this; rank 0 picks and writes the run directory.
    """
    dist_ctx, _ = init_distributed(_device(cfg.train.device))
    cfg = resolve_data_scale(cfg)
    run_dir = dist_ctx.on_main(lambda: new_run_dir(out, cfg))
    trainer, dataset = _trainer(cfg, run_dir, progress=progress)
    if dist_ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_bytes(run_dir / "config.json", cfg.to_json().encode())
        ckpt.write_manifest(run_dir, data_info(dataset))
    _attach_tensorboard(trainer, cfg)
    return run_dir, trainer.fit()


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The run's config.json with ``--set train.KEY=...`` overrides for keys in RESUME_KEYS."""
    cfg = config_from_json(run_dir / "config.json")
    free = {f"train.{k}" for k in RESUME_KEYS}
    for text in overrides:
        lhs = text.split("=", 1)[0].strip()
        if lhs not in free:
            allowed = ", ".join(sorted(free))
            raise ValueError(
                f"--set {lhs} cannot change when resuming (the checkpoint was trained with it); "
                f"only {allowed} can; start a new run with --out instead"
            )
    return config_from_dict(apply_overrides(cfg.to_dict(), overrides))


def recorded_config_differences(recorded: dict[str, Any] | None, cfg: Config) -> list[str]:
    """``section.key: recorded -> now`` between a checkpoint's recorded config (filled with
    today's defaults for keys added since it was written) and ``cfg``."""
    if recorded is None:
        return []
    with contextlib.suppress(ValueError):  # else compare as written: the diffs name the keys
        recorded = config_from_dict(recorded).to_dict()
    return ckpt.config_differences(recorded, cfg.to_dict())


def _check_same_run(cfg: Config, loaded: ckpt.TrainingState, dataset: Dataset, run_dir: Path):
    """The checkpoint's recorded config and the data must be what config.json describes."""
    free = {f"train.{k}" for k in RESUME_KEYS}
    diffs = [
        d for d in recorded_config_differences(loaded.config, cfg) if d.split(":")[0] not in free
    ]
    if diffs:
        raise ckpt.CheckpointError(
            f"checkpoint {loaded.path.name} was trained with another config than "
            f"{run_dir / 'config.json'} ({'; '.join(diffs[:4])}); restore config.json or "
            "start a new run with --out"
        )
    recorded = ckpt.read_manifest(run_dir)["data"]
    now = data_info(dataset)
    changed = [k for k in recorded if k in now and recorded[k] != now[k]]
    if changed:
        raise ckpt.CheckpointError(
            f"the training data differ from when {run_dir} started ({', '.join(changed)} "
            "changed); restore the data file or start a new run with --out"
        )


def resume_run(
    run_dir: str | Path, overrides: list[str] | None = None, *, progress: bool = True
) -> tuple[Path, TrainSummary]:
    """Continue a run from its newest good checkpoint (a corrupt newer one is skipped with a
    warning). Rows of the log after that checkpoint are dropped and rewritten."""
    path = require_run_dir(run_dir)
    cfg = resume_config(path, overrides or [])
    loaded = ckpt.latest_good_checkpoint(path)
    trainer, dataset = _trainer(cfg, path, progress=progress)
    _check_same_run(cfg, loaded, dataset, path)
    if loaded.step >= cfg.train.steps:
        raise ValueError(
            f"{path} is already trained to step {loaded.step} (train.steps = "
            f"{cfg.train.steps}); to train longer: difflab train --resume {path} "
            f"--set train.steps={2 * max(loaded.step, 1)}"
        )
    if trainer.dist.is_main:
        truncate_metrics(path, loaded.step)
        if overrides:
            ckpt.atomic_write_bytes(path / "config.json", cfg.to_json().encode())
    trainer.load_checkpoint(loaded)
    _attach_tensorboard(trainer, cfg, resumed_from=loaded.step)
    return path, trainer.fit()


def check_config(cfg: Config) -> str:
    """Validate ``cfg`` and its data without training or writing anything; a summary line."""
    check_tensorboard(cfg)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    build_schedule(cfg.schedule)
    params = count_parameters(cfg, dataset.shape)
    return (
        f"config OK: data {cfg.data.name} {tuple(dataset.x.shape)}, schedule {cfg.schedule.name} "
        f"T={cfg.schedule.T}, model {cfg.model.name} with {params} parameters; nothing was written"
    )


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but CUDA is not available; use 'cpu'")
    return name


def command(args: argparse.Namespace) -> int:
    """``difflab train``. Under torchrun an error on one rank ends every rank, each printing
    the first failing rank's message (``training/distributed.fail_together``)."""
    try:
        return fail_together(
            lambda: _train(args),
            user_errors=(ValueError, FileNotFoundError),  # those main() reports in one line
            debug=bool(os.environ.get("DIFFLAB_DEBUG")),
        )
    finally:
        shutdown_distributed()


def _train(args: argparse.Namespace) -> int:
    if args.dry_run and args.report:
        raise ValueError("--dry-run writes nothing, so there is no report; drop --report")
    if args.resume:
        if args.config or args.out or args.dry_run:
            raise ValueError(
                "--resume RUN_DIR takes its config from RUN_DIR: drop the config file, --out "
                "and --dry-run (only --set train.steps=... and the like may change)"
            )
        run_dir, summary = resume_run(args.resume, args.overrides, progress=not args.quiet)
    else:
        cfg = resolve_data_scale(load_config(args.config, args.overrides))
        if args.dry_run:
            print(cfg.to_json(), end="")
            print(check_config(cfg))
            return 0
        run_dir, summary = train_run(cfg, args.out, progress=not args.quiet)
    if not is_main_process():
        return 0 if not summary.interrupted else 143
    if summary.interrupted:
        print(
            f"difflab: stopped by {summary.interrupted} at step {summary.steps}; checkpoint "
            f"{summary.checkpoint}; continue with: difflab train --resume {run_dir}",
            file=sys.stderr,
        )
        return 130 if summary.interrupted == "SIGINT" else 143
    skipped = f", {summary.skipped_steps} non-finite steps skipped" if summary.skipped_steps else ""
    print(
        f"trained to step {summary.steps} in {summary.wall_s:.1f} s "
        f"({summary.steps_per_s:.0f} steps/s), final loss {summary.final_loss:.4f}{skipped}"
    )
    print(f"run directory: {run_dir}")
    if args.report:
        write_run_report(run_dir)
    return 0


def write_run_report(run_dir: Path) -> None:
    """``train --report``: RUN_DIR/report.html; a failure is a warning (the run is complete)."""
    from difflab.app.report import write_report

    try:
        print(f"report: {write_report([run_dir])}")
    except (ValueError, OSError) as err:
        print(
            f"difflab: warning: the report was not written ({err}); run difflab report {run_dir}",
            file=sys.stderr,
        )
