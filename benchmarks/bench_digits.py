"""Digits benchmark (issue 6), on this machine with 2 threads:

1. train configs/digits.toml for at most ``--minutes`` (default 15) of wall time: the first
   ``--calibrate`` steps measure the speed, then the step count (and so the cosine LR decay)
   is set to fill the rest of the budget with a 5 % margin (capped by train.steps); if the
   machine slows down later, a timer raises the trainer's stop flag (as SIGTERM would) at the
   budget's end and it stops there with a checkpoint (the steps done are in bench.json);
2. test-split bits/dim (the variational bound with the 17-level discretized decoder;
   targets: <= 2.40, the independent per-pixel categorical model; aim <= 2.05);
3. ``--n`` samples: the Frechet distance in the digits classifier's features to the test split,
   its noise floor and ratio, the predicted-class histogram, and a PNG grid of the samples.

Usage (timed, so under the shared lock):
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_digits.py \
      --out-dir runs/bench-digits
Writes RUN_DIR/bench.json and RUN_DIR/samples_grid.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from pathlib import Path

import torch

from difflab.app.build import build_model, build_objective, build_schedule
from difflab.app.config_files import load_config
from difflab.app.datasets import build_dataset
from difflab.app.evaluate_images import split_bits_per_dim
from difflab.app.run import load_run
from difflab.app.sample import save_samples
from difflab.app.train import data_info
from difflab.digits_quality import digits_quality
from difflab.image_plots import save_image_grid
from difflab.training import checkpoint as ckpt
from difflab.training.manifest import write_manifest
from difflab.training.trainer import Trainer


def train_within(cfg, run_dir: Path, *, minutes: float, calibrate: int) -> dict:
    """Train ``cfg`` in ``run_dir`` within ``minutes``; returns steps, wall time and speed."""
    torch.manual_seed(cfg.train.seed)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed, labels=cfg.model.class_conditional)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, dataset.shape, num_classes=dataset.num_classes)
    objective = build_objective(cfg, schedule, levels=dataset.levels)  # the bound's decoder
    run_dir.mkdir(parents=True)
    write_manifest(run_dir, data_info(dataset))
    trainer = Trainer(model, objective, dataset, cfg.train, run_dir=run_dir, progress=False)
    t0 = time.perf_counter()
    while trainer.step < calibrate:
        trainer.train_step()
    rate = calibrate / (time.perf_counter() - t0)
    left = minutes * 60 * 0.95 - (time.perf_counter() - t0) - 15  # 15 s for the checkpoint
    steps = min(cfg.train.steps, calibrate + max(0, int(rate * left)))
    cfg = cfg.replace("train", steps=steps)
    trainer.cfg = dataclasses.replace(trainer.cfg, steps=steps)
    trainer.run_config = cfg.to_dict()  # checkpoints record the config they were trained with
    ckpt.atomic_write_bytes(run_dir / "config.json", cfg.to_json().encode())
    # The budget is a hard limit: the stop flag ends training after the current step.
    left = minutes * 60 - 20 - (time.perf_counter() - t0)
    timer = threading.Timer(max(left, 0.0), setattr, (trainer.stop, "name", "time budget"))
    timer.daemon = True
    timer.start()
    summary = trainer.fit()
    timer.cancel()
    wall = time.perf_counter() - t0
    return {
        "planned_steps": steps,
        "steps": summary.steps,
        "stopped_by_timer": summary.interrupted is not None,
        "train_s": round(wall, 1),
        "steps_per_s": round(summary.steps / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out-dir", default="runs/bench-digits")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--calibrate", type=int, default=150)
    parser.add_argument("--n", type=int, default=1000, help="samples for the quality metric")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    run_dir = Path(args.out_dir)
    result: dict = {"config": args.config, "overrides": args.overrides, "threads": args.threads}
    result["train"] = train_within(cfg, run_dir, minutes=args.minutes, calibrate=args.calibrate)
    print(json.dumps(result["train"]), flush=True)
    run = load_run(run_dir)
    result["bits_per_dim"] = split_bits_per_dim(run, split="test")
    print(json.dumps(result["bits_per_dim"]), flush=True)
    t0 = time.perf_counter()
    samples, _ = run.sample(args.n, seed=1)
    result["sample_s"] = round(time.perf_counter() - t0, 1)
    save_samples(run, samples, run_dir / "samples.npy")
    result["grid"] = str(save_image_grid(samples[:100], run_dir / "samples_grid.png"))
    result["quality"] = digits_quality(samples)
    result["targets"] = {"bits_per_dim_max": 2.40, "bits_per_dim_aim": 2.05}
    result["bits_per_dim_ok"] = result["bits_per_dim"]["bits_per_dim_bound"] <= 2.40
    (run_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("quality", "grid", "bits_per_dim_ok")}, indent=2))


if __name__ == "__main__":
    main()
