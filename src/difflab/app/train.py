"""``difflab train``: build everything from a config, train, and leave a complete run directory;
``--resume`` continues one exactly; ``--dry-run`` checks a config without writing."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

from difflab.app.audio_data import build_audio_dataset
from difflab.app.build import build_model, build_objective, build_schedule, count_parameters
from difflab.app.config import Config, check_trainable
from difflab.app.config_files import (
    apply_overrides,
    config_from_dict,
    config_from_json,
    load_config,
)
from difflab.app.datasets import build_dataset
from difflab.app.outputs import describe_os_error
from difflab.app.registry import LOSSES
from difflab.app.resources import available_bytes, check_training_fits, choose_threads, gib
from difflab.app.run import recorded_config_differences, require_run_dir
from difflab.app.run_dir import check_new_run_dir, claim_new_run_dir, lock_run_dir
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
from difflab.training.manifest import read_manifest, write_manifest
from difflab.training.metrics_log import truncate_metrics
from difflab.training.run_lock import RunLock
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
    "threads",
    "compile",
    "fused_optimizer",
)


def build_training(
    cfg: Config, *, new_run: bool = True
) -> tuple[Dataset, NoiseSchedule, torch.nn.Module, Objective]:
    """Data, schedule, freshly initialised network (seeded) and objective for ``cfg``; the
    memory estimate is checked before the network is built, and for a new run that the loss
    trains every output the config uses."""
    if new_run:
        check_trainable(cfg)
    torch.manual_seed(cfg.train.seed)
    dataset = _training_data(cfg)
    check_training_fits(cfg, dataset.shape, dataset.x.shape[0], _device(cfg.train.device))
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, dataset.shape, num_classes=dataset.num_classes)
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


def _training_data(cfg: Config) -> Dataset:
    """The training set: audio segments with their mel context, or ``[data]``'s points/images."""
    if cfg.data.is_audio:
        return build_audio_dataset(cfg)
    return build_dataset(cfg.data, seed=cfg.train.seed, labels=cfg.model.class_conditional)


def data_info(dataset: Dataset) -> dict[str, Any]:
    """What the manifest records about the training data, with a SHA-256 of its values so a
    resume can tell that the data changed."""
    digest = hashlib.sha256(dataset.x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    info = {**dataset.info(), "sha256": digest}
    if dataset.labels is not None:
        labels = dataset.labels.detach().cpu().contiguous().numpy().tobytes()
        info["labels_sha256"] = hashlib.sha256(labels).hexdigest()
    return info


def _trainer(
    cfg: Config, run_dir: Path | None, *, progress: bool, resumed: ckpt.TrainingState | None = None
) -> tuple[Trainer, Dataset]:
    check_tensorboard(cfg)
    dist_ctx, device = init_distributed(_device(cfg.train.device))
    recorded = resumed.state.get("threads") if resumed is not None else None
    torch.set_num_threads(choose_threads(cfg.train.threads, recorded=recorded))
    dataset, _, model, objective = build_training(cfg, new_run=resumed is None)
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
    dist_ctx.on_main(lambda: check_new_run_dir(out))
    trainer, dataset = _trainer(cfg, None, progress=progress)
    locks: list[RunLock] = []  # rank 0's lock on the run directory, held until training ends

    def claim() -> Path:
        path, lock = claim_new_run_dir(out, cfg.data.name)
        locks.append(lock)
        ckpt.atomic_write_bytes(path / "config.json", cfg.to_json().encode())
        write_manifest(path, data_info(dataset))
        return path

    run_dir = dist_ctx.on_main(claim)
    trainer.set_run_dir(run_dir)
    _attach_tensorboard(trainer, cfg)
    try:
        return run_dir, trainer.fit()
    finally:
        for lock in locks:
            lock.release()


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
    recorded = read_manifest(run_dir)["data"]
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
    dist_ctx, _ = init_distributed(_device(cfg.train.device))
    locks: list[RunLock] = []  # rank 0 locks the run before it reads a checkpoint
    dist_ctx.on_main(lambda: locks.append(lock_run_dir(path)))
    try:
        loaded = ckpt.latest_good_checkpoint(path)
        trainer, dataset = _trainer(cfg, path, progress=progress, resumed=loaded)
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
    finally:
        for lock in locks:
            lock.release()


def check_config(cfg: Config) -> str:
    """Validate ``cfg``, its data and its memory estimate without training or writing
    anything; a summary line."""
    check_tensorboard(cfg)
    check_trainable(cfg)
    dataset = _training_data(cfg)
    build_schedule(cfg.schedule)
    device = _device(cfg.train.device)
    need = check_training_fits(cfg, dataset.shape, dataset.x.shape[0], device)["total"]
    params = count_parameters(cfg, dataset.shape, num_classes=dataset.num_classes)
    classes = f" with {dataset.num_classes} classes" if dataset.num_classes else ""
    return (
        f"config OK: data {cfg.data.name} {tuple(dataset.x.shape)}{classes}, "
        f"schedule {cfg.schedule.name} "
        f"T={cfg.schedule.T}, model {cfg.model.name} with {params} parameters, about "
        f"{gib(need)} of memory to train ({gib(available_bytes(device))} available); "
        "nothing was written"
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
            lambda: _train_explained(args),
            user_errors=(ValueError,),  # those main() reports in one line
            debug=bool(os.environ.get("DIFFLAB_DEBUG")),
        )
    finally:
        shutdown_distributed()


def _train_explained(args: argparse.Namespace) -> int:
    """``_train`` with operating-system errors (full disk, read-only folder) as one line, so
    that every torchrun rank prints it."""
    try:
        return _train(args)
    except OSError as err:
        if isinstance(err, ValueError) or not err.strerror:
            raise
        raise ValueError(describe_os_error(err)) from err


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
            summary_line = check_config(cfg)
            print(cfg.to_json(), end="")
            print(summary_line)
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
    warmup = f", torch.compile warm-up {summary.compile_s:.1f} s" if summary.compile_s else ""
    print(
        f"trained to step {summary.steps} in {summary.wall_s:.1f} s "
        f"({summary.steps_per_s:.0f} steps/s{warmup}), final loss {summary.final_loss:.4f}{skipped}"
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
