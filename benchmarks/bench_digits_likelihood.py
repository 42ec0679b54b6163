"""Screening recipes for the digits' bits/dim (issue 16): each candidate trains for at most
``--minutes`` of wall time (benchmarks/bench_digits.train_within: the step count, and so the
LR decay, is fitted to the budget), then its bound is evaluated in bits/dim on the validation
split (recipes are chosen on it) and on the first 180 training images (``train_180``: the gap
shows over-fitting); ``--test`` adds the test split, the number reported, for the finalists only.

Each candidate is ``name:key=value,key=value`` over ``--config``. Candidates run one after
another: run it under the shared lock.

Usage:
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_digits_likelihood.py \
      --minutes 3 --candidate "simple:" \
      --candidate "hybrid:loss.name=hybrid,model.variance=learned_range" \
      --out benchmarks/results/digits_likelihood_screen.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_digits import train_within
from bench_recipe import parse_candidate

from difflab.app.config_files import load_config
from difflab.app.evaluate_images import split_bits_per_dim
from difflab.app.run import load_run


def screen(name: str, overrides: list[str], args: argparse.Namespace, root: Path) -> dict:
    cfg = load_config(args.config, overrides)
    run_dir = root / name
    result = {"candidate": name, "overrides": overrides}
    result["train"] = train_within(cfg, run_dir, minutes=args.minutes, calibrate=args.calibrate)
    run = load_run(run_dir)
    splits = {"val": None, "train_180": 180}
    if args.test:
        splits["test"] = None
    for split, max_images in splits.items():
        t0 = time.perf_counter()
        bpd = split_bits_per_dim(run, split=split.split("_")[0], max_images=max_images)
        result[split] = {k: bpd[k] for k in ("bits_per_dim_bound", "stderr", "prior", "decoder")}
        result[split]["kl"] = bpd["kl"]
        result[split]["eval_s"] = round(time.perf_counter() - t0, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.toml")
    parser.add_argument("--candidate", action="append", required=True, help="name:k=v,k=v")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--calibrate", type=int, default=50)
    parser.add_argument("--test", action="store_true", help="also the test split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", help="keep the run directories under this folder")
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for text in args.candidate:
            result = screen(*parse_candidate(text), args, root)
            results.append(result)
            line = {k: result[k] for k in ("candidate", "train")}
            line.update({s: result[s]["bits_per_dim_bound"] for s in ("val", "train_180", "test")
                         if s in result})  # fmt: skip
            print(json.dumps(line), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
