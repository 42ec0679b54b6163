"""``difflab bench-samplers``: every sampler at several step counts on one trained run.

For each (sampler, K): the network evaluations, the wall time, and for toy data the
energy-distance and MMD ratios of the samples to fresh data over their noise floors and the
samples' mean exact -log p(x) beside the true entropy H(p) (``app/quality.py``): a sampler whose
samples are blurrier than the data shows it there. The plan (which samplers) comes from the
registry. Writes ``RUN_DIR/bench_samplers.json`` and ``RUN_DIR/plots/bench_samplers.png``.
A class-conditional run samples the data's class proportions at guidance ``sample.guidance``
(``--guidance``) and each row adds the class accuracy and the worst class's energy ratio
(``app/class_quality.py``); a guided evaluation runs the network twice (``passes``).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.app import registry
from difflab.app.build import generate
from difflab.app.classes import check_guidance, not_conditional
from difflab.app.datasets import is_toy
from difflab.app.outputs import Outputs, check_folder_writable
from difflab.app.quality import sample_metrics
from difflab.app.registry import DIFFUSION, LOSSES, SAMPLERS
from difflab.app.resources import check_sampling_fits
from difflab.app.run import Run, load_run
from difflab.app.sample import check_count, check_sampler_flags, noise_flags
from difflab.app.sections import check_seed
from difflab.atomic import atomic_write_json
from difflab.samplers.grids import MAX_STEPS
from difflab.samplers.spacing import check_steps

#: The step counts K benchmarked by default (those above T are skipped).
BENCH_STEPS = (5, 10, 20, 50, 100, 1000)


def default_samplers() -> list[str]:
    """The samplers bench-samplers runs by default: the registry's grid samplers of diffusion
    models that are marked for the benchmark."""
    return registry.names(SAMPLERS, needs=DIFFUSION, grid=True, bench=True)


def bench_plan(
    T: int, samplers: Sequence[str] | None = None, steps: Sequence[int] | None = None
) -> list[tuple[str, int]]:
    """The (sampler, K) pairs to run: every sampler at every K <= T. K values given explicitly
    must lie in [1, T]; samplers given explicitly must be grid samplers of diffusion models."""
    names = list(samplers) if samplers is not None else default_samplers()
    allowed = registry.names(SAMPLERS, needs=DIFFUSION, grid=True)
    for name in names:
        if name not in allowed:
            raise ValueError(
                f"unknown sampler {name!r}; choose one of {', '.join(map(repr, allowed))}"
            )
    if steps:
        for k in steps:
            check_steps(k, T)
        ks = sorted(set(steps))
    else:
        ks = [k for k in BENCH_STEPS if k <= T]
    return [(name, k) for name in names for k in ks]


def _row(
    run: Run, sampler: str, steps: int, *, n: int, seed: int, floor_draws: int, progress: bool
) -> dict:
    cfg = run.config.replace("sample", sampler=sampler, steps=steps)
    shape = (n, *run.data.shape)
    labels = run.default_labels(n)
    y = None if labels is None else torch.from_numpy(labels)
    t0 = time.perf_counter()
    gen, net = run.generator(seed), run.sampling_network()
    result = generate(cfg, net, run.schedule, shape, generator=gen, progress=progress, labels=y)
    wall = time.perf_counter() - t0
    samples = run.data.decode(result.x.cpu().numpy())
    row: dict[str, Any] = {"sampler": sampler, "steps": steps, "nfe": result.nfe, "wall_s": wall}
    if labels is not None:
        row["guidance"] = cfg.sample.guidance
        row["passes"] = 1 if cfg.sample.guidance in (0.0, 1.0) else 2
    if not np.isfinite(samples).all():
        row.update(energy_ratio=math.inf, mmd_ratio=math.inf, finite=False)
        return row
    metrics = sample_metrics(run, samples, floor_draws=floor_draws, labels=labels)
    if metrics is not None and "frechet_distance" in metrics:  # the digits
        row["frechet_ratio"] = metrics["frechet_distance"]["ratio"]
    elif metrics is not None:
        row["energy_ratio"] = metrics["energy_distance"]["ratio"]
        row["mmd_ratio"] = metrics["mmd"]["ratio"]
        row["energy_distance"] = metrics["energy_distance"]["value"]
        row["energy_floor"] = metrics["energy_distance"]["floor"]
        if "neg_log_p" in metrics:
            row["neg_log_p"] = metrics["neg_log_p"]["value"]
            row["neg_log_p_excess"] = metrics["neg_log_p"]["excess"]
            row["true_entropy"] = metrics["neg_log_p"]["entropy"]
    conditional = (metrics or {}).get("conditional")
    if conditional:
        row["accuracy"] = conditional["accuracy"]
        for key in ("max_class_energy_ratio", "max_class_frechet_ratio"):
            if key in conditional:
                row[key] = conditional[key]
    return row


def _plan_limit(run: Run) -> int:
    """The most steps a row may take: T on the schedule's own grid, else the grids' limit."""
    on_schedule = not LOSSES[run.config.loss.name].continuous and run.config.sample.grid is None
    return run.schedule.T if on_schedule else MAX_STEPS


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
    progress: bool = False,
) -> dict[str, Any]:
    """Run the plan, write the JSON (and the plot, when there are quality numbers), return the
    result. ``log`` is called with each finished row (e.g. to print progress)."""
    if n < 2:
        raise ValueError(f"--n must be >= 2 to compare samples with data, got {n}")
    if floor_draws < 1:
        raise ValueError(f"floor_draws must be >= 1, got {floor_draws}")
    plan = bench_plan(_plan_limit(run), samplers, steps)
    run.model.eval()
    rows = []
    for sampler, k in plan:
        row = _row(run, sampler, k, n=n, seed=seed, floor_draws=floor_draws, progress=progress)
        rows.append(row)
        if log is not None:
            log(rows[-1])
    out_dir = out_dir or run.run_dir
    json_path, plot_path = out_dir / "bench_samplers.json", out_dir / "plots" / "bench_samplers.png"
    result = {
        "run_dir": str(run.run_dir),
        "data": run.data.name,
        "T": run.schedule.T,
        "spacing": run.config.sample.spacing,
        "eta": run.config.sample.eta,
        "sde_eta": run.config.sample.sde_eta,
        "n": n,
        "seed": seed,
        "floor_draws": floor_draws,
        "rows": rows,
        "json": str(json_path),
        "plot": None,
    }
    with Outputs() as outputs:  # the JSON and its plot are replaced together
        if rows and any("energy_ratio" in r for r in rows):
            from difflab.plots import plot_quality_vs_nfe  # matplotlib takes seconds to import

            plot_quality_vs_nfe(rows, outputs.stage(plot_path))
            result["plot"] = str(plot_path)
        atomic_write_json(outputs.stage(json_path), result)
    return result


def format_row(row: dict[str, Any]) -> str:
    text = f"{row['sampler']:<8} {row['steps']:>5} {row['nfe']:>5} {row['wall_s']:>8.2f}"
    if "energy_ratio" in row:
        text += f" {row['energy_ratio']:>9.2f} {row['mmd_ratio']:>9.2f}"
    if "frechet_ratio" in row:
        text += f" {row['frechet_ratio']:>10.2f}"
    if "neg_log_p" in row:
        text += f" {row['neg_log_p']:>10.3f} {row['true_entropy']:>7.3f}"
    if "accuracy" in row:
        worst = row.get("max_class_energy_ratio", row.get("max_class_frechet_ratio", math.nan))
        text += f" {row['accuracy']:>9.2%} {worst:>10.2f}"
    return text


def table_header(run: Run) -> str:
    """The columns of :func:`format_row` for this run's data."""
    head = f"{'sampler':<8} {'K':>5} {'NFE':>5} {'wall_s':>8}"
    if is_toy(run.data.name):
        head += f" {'energy/fl':>9} {'MMD/fl':>9} {'E[-log p]':>10} {'H(p)':>7}"
    elif run.data.name == "digits":
        head += f" {'Frechet/fl':>10}"
    else:
        return head
    return head + (f" {'accuracy':>9} {'worst cls':>10}" if run.classes is not None else "")


def set_guidance(run: Run, guidance: float | None) -> None:
    """Use ``--guidance`` (checked) on a class-conditional run; an error on another."""
    if guidance is None:
        return
    if run.classes is None:
        raise not_conditional("--guidance")
    run.config = run.config.replace("sample", guidance=check_guidance(guidance))


def _int_list(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None


def command(args: argparse.Namespace) -> int:
    """``difflab bench-samplers``."""
    check_count(args.n, least=2)
    check_seed(args.seed, "--seed")
    samplers = None if args.samplers is None else [v.strip() for v in args.samplers.split(",")]
    steps = _int_list(args.steps, "--steps")
    run = load_run(args.run_dir)
    if run.config.data.is_audio:
        raise ValueError(
            f"{run.run_dir} is an audio run: its samples are vocoded clips; compare iteration "
            "counts and Griffin-Lim with `difflab evaluate RUN_DIR` instead"
        )
    from difflab.app.sample import level_overrides

    plan = bench_plan(_plan_limit(run), samplers, steps)  # checked before any work
    draws = 1 + args.floor_draws  # the noise floors' data draws
    check_sampling_fits(run.config, run.data.shape, args.n, run.device, copies=draws)
    used = sorted({name for name, _ in plan})
    check_sampler_flags(run, noise_flags(args), samplers=used, sampler_flag="--samplers")
    check_folder_writable(run.run_dir / "plots", flag=f"bench-samplers {run.run_dir}")
    run.override_sampling(spacing=args.spacing, **noise_flags(args), **level_overrides(args))
    set_guidance(run, args.guidance)
    print(table_header(run))
    result = bench_samplers(
        run,
        samplers=samplers,
        steps=steps,
        n=args.n,
        seed=args.seed,
        floor_draws=args.floor_draws,
        log=lambda row: print(format_row(row), flush=True),
        progress=not args.quiet,
    )
    print(f"wrote {result['json']}" + (f" and {result['plot']}" if result["plot"] else ""))
    return 0
