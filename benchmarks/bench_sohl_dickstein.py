"""The 2015 model (Sohl-Dickstein et al. 2015) on the swiss roll: configs/sohl_dickstein.toml.

Target: ancestral samples (the ddpm sampler, all T steps) that are all finite, with an energy
distance of 5000 samples to fresh swiss-roll data at most 1.5 x its noise floor (median over
sample seeds 1..3; ``app.quality.sample_metrics`` with 5 floor draws), under the ddpm sampler
and under DDIM (all T steps, eta = 0; its last step is the fixed 2015 p(x_0 | x_1)), after at
most ~90 s of training on 2 cores. Trains with the CLI's own code path (``train_run``). Grad
norms are the pre-clip norms the trainer logs in metrics.csv. The training holds the shared
benchmark lock (/tmp/difflab-cpu.lock); sampling runs after it. ``quiet_train_s`` is steps /
the fastest logged steps/s: the training time on an unshared machine (``train_s`` grows with
load).

Usage:
    PYTHONPATH=src python benchmarks/bench_sohl_dickstein.py \
        [--config configs/sohl_dickstein.toml] [--threads 2] [--seeds 3] [--n 5000] \
        [--set KEY=VALUE ...] [--out RUN_DIR] [--json result.json]
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from difflab.app.config_files import load_config
from difflab.app.quality import sample_metrics
from difflab.app.run import Run, load_run
from difflab.app.train import train_run

LOCK = "/tmp/difflab-cpu.lock"
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sohl_dickstein.toml"


def grad_norm_stats(run_dir: Path) -> dict[str, float]:
    """Median, 95th percentile and max of the logged pre-clip gradient norms, and the
    fastest logged steps/s."""
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    norms = np.array([float(r["grad_norm"]) for r in rows])
    norms = norms[np.isfinite(norms)]
    speed = max(float(r["steps_per_s"]) for r in rows)
    if norms.size == 0:  # train.grad_clip = 0 logs no norm
        return {"steps_per_s_max": speed}
    return {
        "grad_norm_median": float(np.median(norms)),
        "grad_norm_p95": float(np.percentile(norms, 95)),
        "grad_norm_max": float(norms.max()),
        "steps_per_s_max": speed,
    }


def score_sampler(run: Run, sampler: str, *, seeds: int, n: int) -> dict:
    """Finite fraction and energy-distance ratio for sample seeds 1..seeds."""
    run.override_sampling(sampler=sampler)
    rows, ratios = [], []
    for seed in range(1, seeds + 1):
        t0 = time.perf_counter()
        samples, _ = run.sample(n, seed=seed)
        sample_s = time.perf_counter() - t0
        finite = float(np.isfinite(samples).all(axis=1).mean())
        ed = {"ratio": math.nan}
        if finite == 1.0:  # the energy distance is undefined with non-finite points
            metrics = sample_metrics(run, samples)
            assert metrics is not None
            ed = metrics["energy_distance"]
        ratios.append(ed["ratio"])
        rows.append({"seed": seed, "finite": finite, "sample_s": round(sample_s, 1), **ed})
    median = statistics.median(ratios) if all(map(math.isfinite, ratios)) else math.nan
    return {"by_seed": rows, "ratio_median": median, "ratio_max": max(ratios)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", help="run directory to keep (default: a temporary one)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "run"
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the timed training only
            run_dir, summary = train_run(cfg, out, progress=False)
        grads = grad_norm_stats(run_dir)
        run = load_run(run_dir)
        samplers = {s: score_sampler(run, s, seeds=args.seeds, n=args.n) for s in ("ddpm", "ddim")}
    result = {
        "config": str(args.config),
        "overrides": args.overrides,
        "threads": args.threads,
        "train_s": round(summary.wall_s, 1),
        "quiet_train_s": round(summary.steps / grads["steps_per_s_max"], 1),
        "train_steps": summary.steps,
        "final_loss_bits": summary.final_loss,
        **{k: round(v, 2) for k, v in grads.items()},
        "ddpm": samplers["ddpm"],
        "ddim": samplers["ddim"],
        "target": "ddpm and ddim: all finite, ratio_median <= 1.5, with quiet_train_s <= ~90",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
