"""Sampler benchmark (issue 5), on a trained run (the default swiss-roll model):

1. speed: sampling 10,000 points with each sampler against the bare network forward passes it
   needs (the same number of ``model(x, t)`` calls at the same steps, nothing else), measured
   side by side in interleaved repeats; medians (target: ratio <= 1.3);
2. quality: energy-distance ratio to its noise floor for DPM-Solver++(2M) with 20 evaluations
   and DDIM with 50 steps (target <= 1.3 each), over several sample seeds (median, spread,
   and the single seed-0 number), plus the full quality-vs-evaluations table
   (``difflab bench-samplers``);
3. DDIM inversion round trip (1000 steps) on the run's own training data: max abs error;
4. training throughput of the default config (trainer vs bare loop, from bench_foundation).

Usage (timed parts under the shared lock):
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_samplers.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from difflab.app.bench import bench_samplers, format_row, table_header
from difflab.app.build import generate
from difflab.app.datasets import build_dataset
from difflab.app.quality import sample_metrics
from difflab.app.run import Run, load_run
from difflab.samplers import ddim_invert, ddim_sample, timestep_grid
from difflab.schedules import full_timesteps

#: (sampler, K) pairs timed against their bare forward passes.
SPEED_CASES = [
    ("ddpm", None), ("ddim", 50), ("euler", 50), ("heun", 20), ("dpmpp2m", 20), ("dpmpp3m", 20)
]  # fmt: skip


def _sample_once(run: Run, sampler: str, steps: int | None, n: int, seed: int) -> tuple[float, int]:
    cfg = run.config.replace("sample", sampler=sampler, steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    result = generate(cfg, run.model, run.schedule, (n, *run.data.shape), generator=g)
    return time.perf_counter() - t0, result.nfe


def _bare_once(run: Run, indices: list[int], n: int) -> float:
    """The network calls alone: model(x, t) at each step index, on a fixed batch."""
    x = torch.randn(n, *run.data.shape, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for t in indices:
            run.model(x, full_timesteps(t, n))
    return time.perf_counter() - t0


def _indices(run: Run, sampler: str, steps: int | None) -> list[int]:
    """The step indices a sampler evaluates the network at (Heun: twice inside the grid)."""
    grid = timestep_grid(run.schedule.T, steps or run.schedule.T)
    idx = [label - 1 for label in grid[:-1]]
    if sampler == "heun":
        idx = idx + [label - 1 for label in grid[2:-1]]  # the corrector evaluations
    return idx


def speed(run: Run, n: int, repeats: int, cases: list[tuple[str, int | None]]) -> dict:
    out = {}
    for sampler, steps in cases:
        idx = _indices(run, sampler, steps)
        ours, bare, nfe = [], [], None
        for r in range(repeats):  # interleaved so both see the same machine load
            bare.append(_bare_once(run, idx, n))
            wall, nfe = _sample_once(run, sampler, steps, n, seed=r)
            ours.append(wall)
        assert nfe == len(idx), (sampler, nfe, len(idx))
        ratios = [o / b for o, b in zip(ours, bare, strict=True)]
        out[f"{sampler}-{steps or run.schedule.T}"] = {
            "nfe": nfe,
            "sampler_s": statistics.median(ours),
            "bare_forward_s": statistics.median(bare),
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "points_per_s": n / statistics.median(ours),
        }
        print(sampler, steps, out[f"{sampler}-{steps or run.schedule.T}"], flush=True)
    return out


def quality(run: Run, n: int, seeds: int, floor_draws: int) -> dict:
    out = {}
    for sampler, steps in [("dpmpp2m", 20), ("ddim", 50), ("ddpm", None)]:
        cfg = run.config.replace("sample", sampler=sampler, steps=steps)
        ratios = []
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            x = generate(cfg, run.model, run.schedule, (n, *run.data.shape), generator=g).x
            metrics = sample_metrics(run, run.data.decode(x.numpy()), floor_draws=floor_draws)
            ratios.append(metrics["energy_distance"]["ratio"])
        out[f"{sampler}-{steps or run.schedule.T}"] = {
            "energy_ratio_seed0": ratios[0],
            "energy_ratio_median": statistics.median(ratios),
            "energy_ratio_min": min(ratios),
            "energy_ratio_max": max(ratios),
            "energy_ratios": ratios,
        }
        print(sampler, steps, out[f"{sampler}-{steps or run.schedule.T}"], flush=True)
    return out


def inversion(run: Run, n: int) -> dict:
    x0 = build_dataset(run.config.data).x[:n]
    out = {}
    denoiser = run.denoiser()
    for refine in (0, 1):
        z = ddim_invert(denoiser, x0, refine=refine).x
        back = ddim_sample(denoiser, tuple(x0.shape), x_T=z).x
        err = (back - x0).abs()
        out[f"refine{refine}"] = {"max_abs_err": float(err.max()), "median": float(err.median())}
    print("inversion", out, flush=True)
    return out


def training(repeats: int, steps: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_foundation import throughput

    return throughput(repeats, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--parts", default="speed,quality,table,inversion,training")
    parser.add_argument("--n", type=int, default=10_000, help="points for the speed part")
    parser.add_argument(
        "--cases", default="ddpm,ddim:50,euler:50,heun:20,dpmpp2m:20", help="speed cases S[:K]"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--floor-draws", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/samplers.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run_dir)
    parts = set(args.parts.split(","))
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    result["run_dir"] = args.run_dir
    if "speed" in parts:
        cases = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else None)
                 for c in args.cases.split(",")]  # fmt: skip
        result.setdefault("speed", {}).update(speed(run, args.n, args.repeats, cases))
    if "quality" in parts:
        result["quality"] = quality(run, 5000, args.seeds, args.floor_draws)
    if "table" in parts:
        print(table_header(run))
        table = bench_samplers(
            run, n=5000, floor_draws=args.floor_draws, log=lambda r: print(format_row(r))
        )
        result["table"] = table["rows"]
    if "inversion" in parts:
        result["inversion"] = inversion(run, 2000)
    if "training" in parts:
        result["training"] = training(3, 300)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
