"""``difflab bench-samplers``: every sampler at several step counts on one trained run.

For each (sampler, K): the network evaluations, the wall time, and the energy-distance and MMD
ratios of the samples to fresh data over their noise floors (``experiment.sample_metrics``;
toy data only). Writes ``RUN_DIR/bench_samplers.json`` and ``RUN_DIR/plots/bench_samplers.png``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.builders import SAMPLERS, generate
from difflab.config import GRID_SAMPLERS, SamplerName
from difflab.experiment import sample_metrics
from difflab.plots import plot_quality_vs_nfe
from difflab.run import Run
from difflab.samplers.spacing import check_steps
from difflab.training import checkpoint as ckpt

#: The step counts K benchmarked by default (those above T are skipped).
BENCH_STEPS = (5, 10, 20, 50, 100, 1000)


def bench_plan(
    T: int, samplers: Sequence[str] | None = None, steps: Sequence[int] | None = None
) -> list[tuple[str, int]]:
    """The (sampler, K) pairs to run: every sampler (all of them apply at every K, ddpm by
    respacing) at every K <= T. K values given explicitly must lie in [1, T]."""
    names = list(samplers) if samplers else [m.value for m in SamplerName if m in GRID_SAMPLERS]
    for name in names:
        if name not in SAMPLERS or name not in GRID_SAMPLERS:
            choices = ", ".join(repr(m.value) for m in SamplerName if m in GRID_SAMPLERS)
            raise ValueError(f"unknown sampler {name!r}; choose one of {choices}")
    if steps:
        for k in steps:
            check_steps(k, T)
        ks = sorted(set(steps))
    else:
        ks = [k for k in BENCH_STEPS if k <= T]
    return [(name, k) for name in names for k in ks]


def _row(run: Run, sampler: str, steps: int, *, n: int, seed: int, floor_draws: int) -> dict:
    cfg = run.config.replace("sample", sampler=sampler, steps=steps)
    generator = torch.Generator().manual_seed(seed)
    shape = (n, *run.data.shape)
    t0 = time.perf_counter()
    result = generate(cfg, run.model, run.schedule, shape, generator=generator)
    wall = time.perf_counter() - t0
    samples = run.data.decode(result.x.numpy())
    row: dict[str, Any] = {"sampler": sampler, "steps": steps, "nfe": result.nfe, "wall_s": wall}
    if not np.isfinite(samples).all():
        row.update(energy_ratio=float("inf"), mmd_ratio=float("inf"), finite=False)
        return row
    metrics = sample_metrics(run, samples, floor_draws=floor_draws)
    if metrics is not None:
        row["energy_ratio"] = metrics["energy_distance"]["ratio"]
        row["mmd_ratio"] = metrics["mmd"]["ratio"]
        row["energy_distance"] = metrics["energy_distance"]["value"]
        row["energy_floor"] = metrics["energy_distance"]["floor"]
    return row


def bench_samplers(
    run: Run,
    *,
    samplers: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    n: int = 5000,
    seed: int = 0,
    floor_draws: int = 5,
    out_dir: Path | None = None,
    log=None,
) -> dict[str, Any]:
    """Run the plan, write the JSON (and the plot, when there are quality numbers), return the
    result. ``log`` is called with each finished row (e.g. to print progress)."""
    if n < 2:
        raise ValueError(f"--n must be >= 2 to compare samples with data, got {n}")
    if floor_draws < 1:
        raise ValueError(f"floor_draws must be >= 1, got {floor_draws}")
    plan = bench_plan(run.schedule.T, samplers, steps)
    run.model.eval()
    rows = []
    for sampler, k in plan:
        rows.append(_row(run, sampler, k, n=n, seed=seed, floor_draws=floor_draws))
        if log is not None:
            log(rows[-1])
    out_dir = out_dir or run.run_dir
    result = {
        "run_dir": str(run.run_dir),
        "data": run.data.name,
        "T": run.schedule.T,
        "spacing": run.config.sample.spacing,
        "eta": run.config.sample.eta,
        "n": n,
        "seed": seed,
        "floor_draws": floor_draws,
        "rows": rows,
        "json": str(out_dir / "bench_samplers.json"),
        "plot": None,
    }
    if rows and "energy_ratio" in rows[0]:
        (out_dir / "plots").mkdir(parents=True, exist_ok=True)
        result["plot"] = str(plot_quality_vs_nfe(rows, out_dir / "plots" / "bench_samplers.png"))
    ckpt.atomic_write_json(out_dir / "bench_samplers.json", result)
    return result


def format_row(row: dict[str, Any]) -> str:
    quality = (
        f"{row['energy_ratio']:>9.2f} {row['mmd_ratio']:>9.2f}" if "energy_ratio" in row else ""
    )
    return f"{row['sampler']:<8} {row['steps']:>5} {row['nfe']:>5} {row['wall_s']:>8.2f} {quality}"


def table_header(with_quality: bool) -> str:
    head = f"{'sampler':<8} {'K':>5} {'NFE':>5} {'wall_s':>8}"
    return head + (f" {'energy/fl':>9} {'MMD/fl':>9}" if with_quality else "")
