"""``difflab bench-guidance``: the accuracy-vs-diversity curve of classifier-free guidance.

For each guidance scale s (default 0, 1, 2, 3, 4) one seeded batch of samples in the data's class
proportions, with the run's sampler: the class accuracy (toy data: under the exact p(c | x);
digits: the digits classifier), the worst class's accuracy, the spread of each class's samples
relative to the data's (1 = as diverse as the data; in the classifier's features for digits),
each class's energy-distance (toy) or Frechet (digits) ratio to its noise floor, and the
unconditional ratio of all samples to all data. The math says accuracy rises with s while the
spread falls below 1 for s > 1; at s = 0 the samples follow p(x). Writes
``RUN_DIR/bench_guidance.json``, ``RUN_DIR/bench_guidance.csv`` and
``RUN_DIR/plots/bench_guidance.png``.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from difflab.app.classes import check_guidance, not_conditional
from difflab.app.outputs import Outputs, check_folder_writable
from difflab.app.quality import sample_metrics
from difflab.app.resources import check_sampling_fits
from difflab.app.run import Run, load_run
from difflab.app.sample import check_count, check_sampler_flags, noise_flags
from difflab.app.sections import check_seed
from difflab.atomic import atomic_write_json

SCALES = (0.0, 1.0, 2.0, 3.0, 4.0)
#: The table's columns, in order (those a row lacks are left empty).
COLUMNS = (
    "guidance", "accuracy", "min_class_accuracy", "mean_spread_ratio", "mean_class_energy_ratio",
    "max_class_energy_ratio", "mean_class_frechet_ratio", "max_class_frechet_ratio",
    "energy_ratio", "frechet_ratio", "mean_neg_log_p_excess", "wall_s",
)  # fmt: skip


def guidance_row(
    run: Run, scale: float, *, n: int, seed: int, floor_draws: int, progress: bool = False
) -> dict:
    """The metrics of ``n`` samples at guidance ``scale`` (see the module docstring); NaN/inf
    samples give a row marked ``finite: false`` without metrics."""
    labels = run.default_labels(n)
    t0 = time.perf_counter()
    samples, _ = run.sample(n, seed=seed, labels=labels, guidance=scale, progress=progress)
    row: dict[str, Any] = {"guidance": scale, "wall_s": time.perf_counter() - t0}
    if not np.isfinite(samples).all():
        row["finite"] = False
        return row
    metrics = sample_metrics(run, samples, floor_draws=floor_draws, labels=labels) or {}
    conditional = metrics.get("conditional") or {}
    for key in COLUMNS[1:8]:  # the class-by-class summaries
        if key in conditional:
            row[key] = conditional[key]
    for key, name in (("energy_distance", "energy_ratio"), ("frechet_distance", "frechet_ratio")):
        if key in metrics:
            row[name] = metrics[key]["ratio"]
    excess = [r["neg_log_p_excess"] for r in conditional.get("per_class", []) if "neg_log_p" in r]
    if excess:
        row["mean_neg_log_p_excess"] = float(np.mean(excess))
    row["per_class"] = conditional.get("per_class")
    return row


def bench_guidance(
    run: Run,
    *,
    scales: Sequence[float] = SCALES,
    n: int = 2000,
    seed: int = 0,
    floor_draws: int = 5,
    log=None,
    progress: bool = False,
) -> dict[str, Any]:
    """Every scale's row; writes the JSON, the CSV table and the plot into the run directory,
    together once every row is computed (``app/outputs.py``: an interruption leaves the
    previous three as they were)."""
    check_bench_guidance(run, scales, n=n, floor_draws=floor_draws)
    rows = []
    for scale in scales:
        rows.append(
            guidance_row(
                run,
                check_guidance(scale),
                n=n,
                seed=seed,
                floor_draws=floor_draws,
                progress=progress,
            )
        )
        if log is not None:
            log(rows[-1])
    out = run.run_dir
    result = {
        "run_dir": str(out), "data": run.data.name, "sampler": run.config.sample.sampler,
        "steps": run.config.sample.steps or run.schedule.T, "n": n, "seed": seed,
        "label_dropout": run.config.train.label_dropout, "rows": rows,
        "json": str(out / "bench_guidance.json"), "csv": str(out / "bench_guidance.csv"),
    }  # fmt: skip
    with Outputs() as outputs:  # the CSV, the plot and the JSON are replaced together
        _write_table(rows, outputs.stage(out / "bench_guidance.csv"))
        if any("accuracy" in r for r in rows):
            from difflab.plots import plot_guidance_sweep  # matplotlib takes seconds to import

            plot = out / "plots" / "bench_guidance.png"
            plot_guidance_sweep(rows, outputs.stage(plot))
            result["plot"] = str(plot)
        atomic_write_json(outputs.stage(out / "bench_guidance.json"), result)
    return result


def check_bench_guidance(run: Run, scales: Sequence[float], *, n: int, floor_draws: int) -> None:
    """One-line errors, before any sampling, for what bench-guidance cannot do on ``run``."""
    if run.classes is None:
        raise not_conditional("bench-guidance")
    if n < 2 * run.classes.num_classes:
        raise ValueError(f"--n must be >= 2 per class ({2 * run.classes.num_classes}), got {n}")
    if floor_draws < 1:
        raise ValueError(f"--floor-draws must be >= 1, got {floor_draws}")
    if run.config.train.label_dropout == 0 and any(s != 1.0 for s in scales):
        raise ValueError(
            f"{run.run_dir} never trained its unconditional model (train.label_dropout = 0), "
            "so only guidance 1 can be sampled; pass --scales 1"
        )
    guided = any(s not in (0.0, 1.0) for s in scales)  # one network pass on a doubled batch
    copies = (2 if guided else 1) + floor_draws  # and the noise floors' data draws
    check_sampling_fits(run.config, run.data.shape, n, run.device, copies=copies)


def _write_table(rows: list[dict[str, Any]], path: Path) -> None:
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if c not in r else f"{r[c]:.6g}" for c in columns])


def format_row(row: dict[str, Any]) -> str:
    def cell(key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"

    ratio = (
        "mean_class_energy_ratio"
        if "mean_class_energy_ratio" in row
        else "mean_class_frechet_ratio"
    )
    return (
        f"{row['guidance']:>6g} {cell('accuracy', '>9.2%')} {cell('min_class_accuracy', '>9.2%')} "
        f"{cell('mean_spread_ratio', '>7.3f')} {cell(ratio, '>10.2f')} "
        f"{cell('energy_ratio' if 'energy_ratio' in row else 'frechet_ratio', '>9.2f')} "
        f"{row['wall_s']:>7.1f}"
    )


HEADER = (
    f"{'s':>6} {'accuracy':>9} {'worst cls':>9} {'spread':>7} {'class/fl':>10} {'all/fl':>9} "
    f"{'wall_s':>7}"
)


def _scales(text: str | None) -> list[float]:
    if text is None:
        return list(SCALES)
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--scales must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError("--scales needs at least one guidance scale")
    return [check_guidance(v) for v in values]


def command(args: argparse.Namespace) -> int:
    """``difflab bench-guidance``."""
    check_count(args.n, least=2)
    check_seed(args.seed, "--seed")
    scales = _scales(args.scales)
    run = load_run(args.run_dir)
    run.override_sampling(
        sampler=args.sampler, steps=args.steps, spacing=args.spacing, **noise_flags(args)
    )
    check_sampler_flags(run, noise_flags(args))
    check_bench_guidance(run, scales, n=args.n, floor_draws=args.floor_draws)
    check_folder_writable(run.run_dir / "plots", flag=f"bench-guidance {run.run_dir}")
    print(HEADER)
    result = bench_guidance(
        run,
        scales=scales,
        n=args.n,
        seed=args.seed,
        floor_draws=args.floor_draws,
        log=lambda row: print(format_row(row), flush=True),
        progress=not getattr(args, "quiet", False),
    )
    extra = f" and {result['plot']}" if result.get("plot") else ""
    print(f"wrote {result['json']}, {result['csv']}{extra}")
    return 0
