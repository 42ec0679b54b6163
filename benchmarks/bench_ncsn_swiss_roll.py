"""NCSN on the swiss roll, sampled with annealed Langevin (issue 4).

Target: energy distance of 5000 samples to fresh swiss-roll data at most 2 x its noise floor
(the mean distance of independent data draws, ``app.quality.sample_metrics`` with 5 floor draws),
with at most 120 s of training on 2 cores. Trains with the CLI's own code path (``train_run``),
then samples with several seeds to show the spread of the ratio. Only the timed part, the
training, holds the shared benchmark lock (/tmp/difflab-cpu.lock); sampling runs after it.

Usage:
    PYTHONPATH=src python benchmarks/bench_ncsn_swiss_roll.py \
        [--steps 8000] [--threads 2] [--seeds 3] [--set KEY=VALUE ...] [--out result.json]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from difflab.app.config_files import load_config
from difflab.app.quality import sample_metrics
from difflab.app.run import load_run
from difflab.app.train import train_run

LOCK = "/tmp/difflab-cpu.lock"
NCSN = [
    "loss.name=ncsn",
    "model.name=score_mlp",
    "sample.sampler=annealed_langevin",
    "data.name=swiss_roll",
    "train.lr=0.002",  # configs/ncsn.toml's (the default lr until issue 16's recipe)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(None, [*NCSN, f"train.steps={args.steps}", *args.overrides])
    with tempfile.TemporaryDirectory() as tmp:
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the timed training only
            run_dir, summary = train_run(cfg, Path(tmp) / "run", progress=False)
        run = load_run(run_dir)
        ratios, rows = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            samples, _ = run.sample(args.n, seed=seed + 1)
            sample_s = time.perf_counter() - t0
            metrics = sample_metrics(run, samples)
            assert metrics is not None
            ed = metrics["energy_distance"]
            ratios.append(ed["ratio"])
            rows.append({"seed": seed + 1, "sample_s": round(sample_s, 1), **ed})
    result = {
        "config_overrides": [*NCSN, f"train.steps={args.steps}", *args.overrides],
        "threads": args.threads,
        "train_s": round(summary.wall_s, 1),
        "train_steps": summary.steps,
        "final_loss": summary.final_loss,
        "energy_distance_by_seed": rows,
        "ratio_median": statistics.median(ratios),
        "ratio_max": max(ratios),
        "target": "ratio <= 2 with train_s <= 120",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
