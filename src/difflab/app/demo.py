"""``difflab demo`` (``make demo``): the main job on the built-in default: train on the swiss
roll, sample, score the samples against fresh data, plot, and write ``summary.json`` and
``report.html``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from difflab.app.config import Config
from difflab.app.config_files import load_config
from difflab.app.outputs import Outputs
from difflab.app.plot import plot_run
from difflab.app.quality import format_metrics, sample_metrics
from difflab.app.run import load_run
from difflab.app.sample import check_count, require_finite, save_samples
from difflab.app.train import train_run
from difflab.atomic import atomic_write_json
from difflab.digits_quality import check_classifier_cache


def demo(
    cfg: Config, out: str | Path | None = None, *, n: int = 5000, progress: bool = True
) -> dict[str, Any]:
    """Train ``cfg``, sample ``n`` points, score them against fresh data, plot, and write
    ``summary.json``; returns the summary."""
    t0 = time.perf_counter()
    run_dir, summary = train_run(cfg, out, progress=progress)
    run = load_run(run_dir)
    if cfg.data.is_audio:  # a vocoder: scored against Griffin-Lim on test clips
        from difflab.app.evaluate_audio import evaluate_audio_run

        evaluated = evaluate_audio_run(run)
        plots = plot_run(run)
        result = {
            "run_dir": str(run_dir),
            "data": cfg.data.name,
            "train_steps": summary.steps,
            "train_s": round(summary.wall_s, 2),
            "evaluate": evaluated,
            "plots": [str(p) for p in plots],
            "total_s": round(time.perf_counter() - t0, 2),
        }
        atomic_write_json(run_dir / "summary.json", result)
        return result
    t1 = time.perf_counter()
    labels = run.default_labels(n)  # class-conditional runs: the data's class proportions
    samples, _ = run.sample(n, seed=cfg.train.seed + 1, progress=progress, labels=labels)
    sample_s = time.perf_counter() - t1
    require_finite(run, samples)
    metrics = sample_metrics(run, samples, labels=labels)
    plots = plot_run(run, progress=progress)
    result = {
        "run_dir": str(run_dir),
        "data": cfg.data.name,
        "train_steps": summary.steps,
        "train_s": round(summary.wall_s, 2),
        "train_steps_per_s": round(summary.steps_per_s, 1),
        "final_loss": summary.final_loss,
        "n_samples": n,
        "sample_s": round(sample_s, 2),
        "metrics": metrics,
        "plots": [str(p) for p in plots],
        "total_s": round(time.perf_counter() - t0, 2),
    }
    with Outputs() as outputs:
        save_samples(run, samples, outputs.stage(run_dir / "samples.npy"))
        atomic_write_json(outputs.stage(run_dir / "summary.json"), result)
    from difflab.app.report import write_report

    result["report"] = str(write_report([run_dir]))
    return result


def command(args: argparse.Namespace) -> int:
    """``difflab demo``."""
    check_count(args.n, least=2)
    cfg = load_config(args.config, args.overrides)
    if cfg.data.name == "digits":
        check_classifier_cache()  # before training: the metric needs the cached classifier
    result = demo(cfg, args.out, n=args.n, progress=not args.quiet)
    if "evaluate" in result:
        from difflab.app.evaluate_audio import format_audio_report

        print(f"\ntrained {result['train_steps']} steps in {result['train_s']} s")
        for line in format_audio_report(result["evaluate"]):
            print("  " + line)
        print(f"results: {result['run_dir']} (summary.json, evaluate.json, plots/)")
        return 0
    print(
        f"\ntrained {result['train_steps']} steps in {result['train_s']} s, "
        f"sampled {result['n_samples']} points in {result['sample_s']} s"
    )
    for line in format_metrics(result["metrics"]):
        print("  " + line)
    print(f"results: {result['run_dir']} (summary.json, samples.npy, plots/)")
    print(f"report: {result['report']} (open it in a browser)")
    return 0
