"""Screening training recipes for vector data (issue 16): quality against training time.

Each candidate is the default config with ``--set``-style overrides. It is trained in-process
(start-up excluded: it is the same for every candidate), then sampled with each sampler of
``--samplers`` (``name:K``, K omitted: all T steps) for ``--seeds`` seeds of ``--n`` points;
per sampler: the median energy-distance ratio to its noise floor (``--floor-draws`` fresh
draws), the median E_q[-log p] of the samples beside the data's entropy H(p), and the sampling
time. ``tuned:NAME:K`` first runs ``difflab tune-schedule RUN --steps K --sampler NAME --n
TUNE_N`` on the trained run (its cost, start grid, levels and noise are recorded), then scores
``--schedule tuned``. Candidates run one after another, so run it under the shared lock on a
quiet machine.

Usage:
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_recipe.py \
      --candidate "today:" --candidate "b1024:train.batch_size=1024,train.steps=2000" \
      --samplers ddpm,dpmpp2m:50 --out benchmarks/results/recipe.json
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_recipe.py \
      --candidate "today:" --samplers dpmpp2m_sde:20,tuned:dpmpp2m_sde:20 --seeds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from difflab.app.config import Config
from difflab.app.config_files import apply_overrides, config_from_dict
from difflab.app.quality import sample_metrics
from difflab.app.run import load_run
from difflab.app.train import train_run
from difflab.app.tune import tune_schedule


def parse_candidate(text: str) -> tuple[str, list[str]]:
    """``name:key=value,key=value`` -> (name, ["key=value", ...])."""
    name, _, rest = text.partition(":")
    return name, [item for item in rest.split(",") if item.strip()]


def parse_sampler(text: str) -> tuple[str, int | None, str | None]:
    """``name[:K[:variance]]``, e.g. ``ddpm:1000:small`` (variance: the ancestral samplers')."""
    name, steps, variance = (text.split(":") + ["", ""])[:3]
    return name, int(steps) if steps else None, variance or None


def tune(run, spec: str, *, n: int) -> dict[str, Any]:
    """``tuned:NAME:K``: tune-schedule for that sampler and K; what it found and cost."""
    _, sampler, steps = spec.split(":")
    content = tune_schedule(run, steps=int(steps), sampler=sampler, n=n)
    return {"start": content["criterion"]["start"], "sigma_bars": content["sigma_bars"],
            "noise": content["noise"], "cost": content["cost"],
            "beats_best_fixed_on_check": content["check"]["tuned_beats_best_fixed"]}  # fmt: skip


def score_sampler(
    run, spec: str, *, n: int, seeds: int, floors: int, tune_n: int = 10_000
) -> dict[str, Any]:
    """Median energy ratio and E_q[-log p] over ``seeds`` sample seeds, and seconds per draw."""
    base = run.config
    tuned = None
    if spec.startswith("tuned:"):
        tuned = tune(run, spec, n=tune_n)
        sampler, steps, variance = spec.split(":")[1], int(spec.split(":")[2]), None
        run.config = base.replace("sample", schedule="tuned")
    else:
        sampler, steps, variance = parse_sampler(spec)
        run.config = base.replace("sample", sampler=sampler, steps=steps)
    if variance:
        run.config = run.config.replace("model", variance=variance)
    ratios, neg_log_p, walls = [], [], []
    entropy = float("nan")
    for seed in range(seeds):
        t0 = time.perf_counter()
        samples, _ = run.sample(n, seed=seed)
        walls.append(time.perf_counter() - t0)
        metrics = sample_metrics(run, samples, floor_draws=floors)
        ratios.append(metrics["energy_distance"]["ratio"])
        neg_log_p.append(metrics["neg_log_p"]["value"])
        entropy = metrics["neg_log_p"]["entropy"]
    run.config = base
    return {
        "sampler": ("tuned-" if tuned else "")
        + f"{sampler}-{steps or run.schedule.T}"
        + (f"-{variance}" if variance else ""),
        **({"tune": tuned} if tuned else {}),
        "energy_ratio_median": statistics.median(ratios),
        "energy_ratios": [round(r, 3) for r in ratios],
        "neg_log_p_median": statistics.median(neg_log_p),
        "entropy": entropy,
        "excess_median": statistics.median(neg_log_p) - entropy,
        "sample_s_median": statistics.median(walls),
    }


def run_candidate(name: str, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_dict(apply_overrides(Config().to_dict(), overrides))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_dir, summary = train_run(cfg, Path(tmp) / "run", progress=False)
        train_s = time.perf_counter() - t0
        run = load_run(run_dir)
        rows = [
            score_sampler(
                run, spec, n=args.n, seeds=args.seeds, floors=args.floor_draws, tune_n=args.tune_n
            )
            for spec in args.samplers.split(",")
        ]
    return {
        "candidate": name,
        "overrides": overrides,
        "train_s": round(train_s, 2),
        "steps": summary.steps,
        "steps_per_s": round(summary.steps_per_s, 1),
        "final_loss": summary.final_loss,
        "samplers": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", required=True, help="name:k=v,k=v")
    parser.add_argument("--samplers", default="ddpm,dpmpp2m:50")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--floor-draws", type=int, default=5)
    parser.add_argument("--tune-n", type=int, default=10_000, help="tune-schedule's --n")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()
    results = []
    print(
        f"{'candidate':<24}{'train s':>8}{'steps/s':>8}  sampler            ratio  excess  sample s"
    )
    for text in args.candidate:
        result = run_candidate(*parse_candidate(text), args)
        results.append(result)
        for row in result["samplers"]:
            print(
                f"{result['candidate']:<24}{result['train_s']:>8.1f}{result['steps_per_s']:>8.0f}"
                f"  {row['sampler']:<17}{row['energy_ratio_median']:>6.2f}"
                f"{row['excess_median']:>+8.3f}{row['sample_s_median']:>9.2f}",
                flush=True,
            )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
