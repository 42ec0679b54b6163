"""Training throughput against the number of intra-op threads, with the other cores idle or busy
(issue 11: with one core busy, the default config trained at 50 steps/s with torch's default
threads and at 180 with one thread).

For each condition (``idle``: nothing else started; ``busy``: one busy-looping process per
``--busy`` core started beside it) and each thread count, the default config's trainer runs
``--steps`` steps after a warm-up; the conditions and thread counts are interleaved within
each repeat and the median steps/s is reported, with what ``train.threads = 0`` (automatic,
``app/resources.choose_threads``) picks in that condition. The machine's own load (other
users) is printed with the results: it decides what "idle" means.

Usage: python benchmarks/bench_threads.py [--steps 300] [--repeats 3] [--threads 1,2]
       [--busy 1] [--out bench_threads.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time

import torch

from difflab.app.build import build_model, build_objective, build_schedule
from difflab.app.config import Config
from difflab.app.datasets import build_dataset
from difflab.app.resources import choose_threads
from difflab.training.trainer import Trainer


def _spin() -> None:  # pragma: no cover - a busy core
    while True:
        pass


def steps_per_s(threads: int, steps: int) -> float:
    """Steps/s of the default config's trainer at ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    cfg = Config()
    data = build_dataset(cfg.data, seed=0)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg, data.shape)
    trainer = Trainer(model, build_objective(cfg, schedule), data, cfg.train, progress=False)
    for _ in range(20):  # warm-up
        trainer.train_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy in 'busy'")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    counts = [int(v) for v in args.threads.split(",")]
    os.environ.pop("OMP_NUM_THREADS", None)
    results: dict[str, dict[str, list[float]]] = {"idle": {}, "busy": {}}
    auto: dict[str, list[int]] = {"idle": [], "busy": []}
    for _ in range(args.repeats):
        for condition in ("idle", "busy"):
            spinners = []
            if condition == "busy":
                ctx = multiprocessing.get_context("spawn")
                spinners = [ctx.Process(target=_spin, daemon=True) for _ in range(args.busy)]
                for p in spinners:
                    p.start()
                time.sleep(1.0)
            auto[condition].append(choose_threads(0))
            for threads in counts:
                rate = steps_per_s(threads, args.steps)
                results[condition].setdefault(str(threads), []).append(rate)
            for p in spinners:
                p.kill()
                p.join()
    summary = {
        "load_average_at_end": os.getloadavg(),
        "cpus": len(os.sched_getaffinity(0)),
        "torch_default_threads": torch.get_num_threads(),
        "steps": args.steps,
        "repeats": args.repeats,
        "median_steps_per_s": {
            c: {t: statistics.median(v) for t, v in r.items()} for c, r in results.items()
        },
        "all_steps_per_s": results,
        "auto_threads": auto,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
