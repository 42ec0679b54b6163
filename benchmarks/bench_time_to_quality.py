"""Time to quality (issue 16): every number the issue names, target beside measured.

Parts (``--parts``, all by default; about 17 minutes, 6 of them the digits training):

1. ``default``: ``difflab train --out RUN`` + ``difflab sample RUN --n 5000`` with the default
   config, as a user runs them (subprocesses, start-up included), ``--repeats`` times: the
   median total wall time (target <= 20 s); the samples of the first repeat and 4 more seeds
   of the same run: median energy-distance ratio to its noise floor (target <= 1.0) and median
   E_q[-log p] against H(p) (target <= H(p) + 0.15 nats); the same for ``sample --steps 200
   --spacing quadratic`` on the same runs ("fast");
2. ``compile``: training steps/s of the default MLP and of the digits U-Net, eager against
   ``train.compile = true``, interleaved windows after the warm-up (medians; target >= 1.2x on
   the MLP), and each compile warm-up;
3. ``samplers``: the sampler overhead on a default-trained run, sampler time over the bare
   forward passes it needs, interleaved (benchmarks/bench_samplers.py; target <= 1.3 for
   ddpm-1000, ddim-50, dpmpp2m-20, heun-20);
4. ``digits``: configs/digits_likelihood.toml trained within 15 minutes (its 3000 steps take
   about 6; benchmarks/bench_digits.py)
   and its test-split bits/dim (target <= 2.15, aim 2.05).

Usage (timed: under the shared lock, on a quiet machine):
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_time_to_quality.py \
      --out benchmarks/results/time_to_quality.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.app.config import Config
from difflab.app.config_files import load_config
from difflab.app.quality import sample_metrics
from difflab.app.run import load_run
from difflab.app.train import build_training
from difflab.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGETS = {
    "default_total_s": 20.0,
    "default_energy_ratio_median": 1.0,
    "default_neg_log_p_excess_median": 0.15,
    "compile_speedup_mlp": 1.2,
    "sampler_overhead": 1.3,
    "digits_bits_per_dim": 2.15,
}


def _timed(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0


#: The faster sampling docs/performance.md recommends beside the default (1000 ancestral steps).
FAST_SAMPLE = ["--steps", "200", "--spacing", "quadratic"]


def default_recipe(tmp: Path, repeats: int, seeds: int) -> dict[str, Any]:
    """Part 1: the default train + sample as a user runs them, and the samples' quality; the
    same runs also sampled with ``FAST_SAMPLE`` (interleaved), reported under "fast"."""
    exe = [sys.executable, "-m", "difflab"]
    trains: list[float] = []
    samples_s: dict[str, list[float]] = {"default": [], "fast": []}
    for r in range(repeats):
        run_dir = tmp / f"run{r}"
        trains.append(_timed([*exe, "train", "--out", str(run_dir), "--quiet"]))
        for name, flags in (("default", []), ("fast", FAST_SAMPLE)):
            out = tmp / f"samples{r}_{name}.npy"
            cmd = [*exe, "sample", str(run_dir), "--n", "5000", "--out", str(out), "--quiet"]
            samples_s[name].append(_timed([*cmd, *flags]))
        print(
            f"default recipe, repeat {r}: train {trains[-1]:.1f} s + sample "
            f"{samples_s['default'][-1]:.1f} s (fast: {samples_s['fast'][-1]:.1f} s)",
            flush=True,
        )
    run = load_run(tmp / "run0")
    result: dict[str, Any] = {
        "config": {
            "sampler": run.config.sample.sampler,
            "steps": run.config.sample.steps,
            "train_steps": run.config.train.steps,
            "batch_size": run.config.train.batch_size,
            "lr": run.config.train.lr,
            "timesteps": run.config.loss.timesteps,
        },
        "train_s": trains,
    }
    base = run.config
    for name, steps, spacing in (("default", None, None), ("fast", 200, "quadratic")):
        if steps is not None:
            run.config = base.replace("sample", steps=steps, spacing=spacing)
        draws = [np.load(tmp / f"samples0_{name}.npy")]
        draws += [run.sample(5000, seed=seed)[0] for seed in range(1, seeds)]
        run.config = base
        metrics = [sample_metrics(run, x, floor_draws=10) for x in draws]
        ratios = [m["energy_distance"]["ratio"] for m in metrics]
        excess = [m["neg_log_p"]["excess"] for m in metrics]
        totals = [t + s for t, s in zip(trains, samples_s[name], strict=True)]
        part = {
            "sample_flags": FAST_SAMPLE if name == "fast" else [],
            "total_s_median": statistics.median(totals),
            "sample_s": samples_s[name],
            "energy_ratio_median": statistics.median(ratios),
            "energy_ratios": ratios,
            "neg_log_p_excess_median": statistics.median(excess),
            "neg_log_p_excesses": excess,
            "entropy": metrics[0]["neg_log_p"]["entropy"],
        }
        if name == "default":
            result.update(part)
        else:
            result["fast"] = part
    return result


def _trainer(cfg: Config) -> Trainer:
    dataset, _, model, objective = build_training(cfg)
    return Trainer(model, objective, dataset, cfg.train, progress=False)


def compile_speed(cfg: Config, *, steps: int, repeats: int) -> dict[str, Any]:
    """Part 2 for one config: steps/s eager vs compiled in interleaved windows of ``steps``."""
    trainers = {}
    warmup = {}
    for compile_ in (False, True):
        trainer = _trainer(cfg.replace("train", compile=compile_, steps=10**9))
        t0 = time.perf_counter()
        for _ in range(3):  # the compiled network's first step traces and compiles it
            trainer.train_step()
        warmup[compile_] = time.perf_counter() - t0
        trainers[compile_] = trainer
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for compile_, trainer in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            rates[compile_].append(steps / (time.perf_counter() - t0))
    ratios = [c / e for c, e in zip(rates[True], rates[False])]
    return {
        "eager_steps_per_s": statistics.median(rates[False]),
        "compiled_steps_per_s": statistics.median(rates[True]),
        "speedup_median": statistics.median(ratios),
        "speedups": [round(r, 3) for r in ratios],
        "compile_warmup_s": round(warmup[True] - warmup[False], 1),
        "compiled": bool(trainers[True].compiled and trainers[True].compiled.compiled),
    }


def sampler_overhead(tmp: Path, repeats: int) -> dict[str, Any]:
    """Part 3: bench_samplers' speed part on a run of the default config (timing does not
    depend on the weights: 1 training step)."""
    from bench_samplers import speed

    run_dir = tmp / "speed_run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "difflab",
            "train",
            "--set",
            "train.steps=1",
            "--out",
            str(run_dir),
            "--quiet",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as bench_samplers measures it
    try:
        cases = [("ddpm", None), ("ddim", 50), ("dpmpp2m", 20), ("heun", 20)]
        result = speed(load_run(run_dir), 10_000, repeats, cases)
    finally:
        torch.set_num_threads(threads)
    return {k: round(v["ratio_median"], 3) for k, v in result.items()}


def digits(tmp: Path, minutes: float) -> dict[str, Any]:
    """Part 4: bench_digits.py on configs/digits_likelihood.toml."""
    out = tmp / "digits"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_digits.py"),
        "--config",
        str(ROOT / "configs" / "digits_likelihood.toml"),
        "--out-dir",
        str(out),
        "--minutes",
        str(minutes),
        "--n",
        "1000",
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    bench = json.loads((out / "bench.json").read_text())
    return {
        "bits_per_dim": bench["bits_per_dim"]["bits_per_dim_bound"],
        "stderr": bench["bits_per_dim"]["stderr"],
        "train": bench["train"],
        "frechet_ratio": bench["quality"]["frechet_distance"]["ratio"],
    }


def summary(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, target, measured) rows."""
    rows = []
    if "default" in result:
        d = result["default"]
        rows += [
            ("default train + sample --n 5000 (s)", "<= 20", f"{d['total_s_median']:.1f}"),
            (
                "energy-distance ratio (median of 5 seeds)",
                "<= 1.0",
                f"{d['energy_ratio_median']:.2f}",
            ),
            (
                "E_q[-log p] - H(p) (median, nats)",
                "<= 0.15",
                f"{d['neg_log_p_excess_median']:+.3f}",
            ),
        ]
        if "fast" in d:
            f = d["fast"]
            rows.append(
                (
                    "... sampled with " + " ".join(f["sample_flags"]),
                    "(measured)",
                    f"{f['total_s_median']:.1f} s, ratio {f['energy_ratio_median']:.2f}, "
                    f"{f['neg_log_p_excess_median']:+.3f} nats",
                )
            )
    if "compile" in result:
        for name, c in result["compile"].items():
            target = ">= 1.2" if name == "mlp" else "(measured)"
            rows.append((f"train.compile speed-up, {name}", target, f"{c['speedup_median']:.2f}x"))
            rows.append((f"compile warm-up, {name} (s)", "(measured)", f"{c['compile_warmup_s']}"))
    for case, ratio in result.get("samplers", {}).items():
        rows.append((f"sampler overhead {case}", "<= 1.3", f"{ratio:.2f}"))
    if "digits" in result:
        d = result["digits"]
        rows.append(
            (
                "digits test bits/dim (15 min)",
                "<= 2.15 (aim 2.05)",
                f"{d['bits_per_dim']:.3f} +- {d['stderr']:.3f}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="default,compile,samplers,digits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--compile-steps", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=15.0, help="digits training budget")
    parser.add_argument("--out", help="also write the results as JSON")
    args = parser.parse_args()
    parts = args.parts.split(",")
    result: dict[str, Any] = {"load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "default" in parts:
            result["default"] = default_recipe(tmp, args.repeats, args.seeds)
        if "compile" in parts:
            digits_cfg = load_config(ROOT / "configs" / "digits.toml")
            configs = {
                "mlp": (Config(), args.compile_steps),
                "digits_unet": (digits_cfg, max(10, args.compile_steps // 20)),
            }
            result["compile"] = {
                name: compile_speed(cfg, steps=steps, repeats=args.repeats)
                for name, (cfg, steps) in configs.items()
            }
        if "samplers" in parts:
            result["samplers"] = sampler_overhead(tmp, args.repeats)
        if "digits" in parts:
            result["digits"] = digits(tmp, args.minutes)
    result["load_average_end"] = os.getloadavg()
    result["summary"] = summary(result)
    print(f"\n{'quantity':<44}{'target':<22}measured")
    for name, target, measured in result["summary"]:
        print(f"{name:<44}{target:<22}{measured}")
    print(f"load average at start {result['load_average_start']}, end {result['load_average_end']}")
    if args.out:  # merged into the file: the parts not run keep their earlier results
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        merged = json.loads(out.read_text()) if out.exists() else {}
        merged.update({k: v for k, v in result.items() if k != "summary"})
        merged["summary"] = summary(merged)
        out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
