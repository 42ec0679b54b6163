"""The CLI's jobs as library functions: train a run, plot it, score samples against fresh data,
and the demo that does all of it. Each takes a config or a run directory and writes into the run
directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.builders import build_dataset, build_model, build_objective, build_schedule
from difflab.config import Config
from difflab.data.toy import sample_toy, toy_names
from difflab.metrics import compare_to_reference
from difflab.plots import (
    panel_times,
    plot_data,
    plot_forward,
    plot_loss,
    plot_reverse,
    plot_samples_vs_data,
)
from difflab.run import Run, load_run
from difflab.training import checkpoint as ckpt
from difflab.training.trainer import Trainer, TrainSummary, read_metrics

#: Seeds for evaluation data, far from any training seed so fresh data is really fresh.
REFERENCE_SEED = 1_000_003


def new_run_dir(out: str | Path | None, cfg: Config) -> Path:
    """The run directory to create: ``out``, or runs/<time>-<data>; never an existing run."""
    path = Path(out) if out else Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.data.name}"
    if path.exists() and any(path.iterdir()):
        raise ckpt.CheckpointError(
            f"{str(path)!r} already exists and is not empty; choose another --out "
            "(nothing was overwritten)"
        )
    return path


def train_run(
    cfg: Config, out: str | Path | None = None, *, progress: bool = True
) -> tuple[Path, TrainSummary]:
    """Build everything from ``cfg``, train, and leave a complete run directory."""
    run_dir = new_run_dir(out, cfg)
    torch.manual_seed(cfg.train.seed)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    schedule = build_schedule(cfg.schedule)
    model = build_model(cfg.model, dataset.shape, T=schedule.T)
    objective = build_objective(cfg, schedule)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_bytes(run_dir / "config.json", cfg.to_json().encode())
    ckpt.write_manifest(run_dir, dataset.info())
    device = _device(cfg.train.device)
    trainer = Trainer(
        model, objective, dataset, cfg.train, run_dir=run_dir, device=device, progress=progress
    )
    return run_dir, trainer.fit()


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but CUDA is not available; use 'cpu'")
    return name


def reference_data(run: Run, n: int, *, seed: int = REFERENCE_SEED) -> np.ndarray | None:
    """Fresh data of the run's distribution: a new toy draw, or None for a user's file."""
    if run.data.name in toy_names():
        return sample_toy(run.data.name, n, seed=seed)
    return None


def sample_metrics(run: Run, samples: np.ndarray, *, floor_draws: int = 5) -> dict[str, Any] | None:
    """Energy distance and MMD of samples to fresh data, with noise floors (toy data only)."""
    n = samples.shape[0]
    reference = reference_data(run, n)
    if reference is None:
        return None
    floors = [sample_toy(run.data.name, n, seed=REFERENCE_SEED + 1 + k) for k in range(floor_draws)]
    return compare_to_reference(samples, reference, floors)


def plot_run(run: Run, *, n: int = 2000, seed: int = 0, out_dir: Path | None = None) -> list[Path]:
    """Every figure for a vector-data run, written into ``run_dir/plots``."""
    out_dir = out_dir or run.run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = reference_data(run, n, seed=REFERENCE_SEED)
    if data is None:
        data = run.data.decode(build_dataset(run.config.data).x[:n].numpy())
    model_data = run.data.encode(data)
    samples, chain = run.sample(n, seed=seed, record=panel_times(run.schedule.T))
    paths = [
        plot_data(data, out_dir / "data.png", title=f"data: {run.data.name}"),
        plot_forward(run.schedule, model_data, out_dir / "forward.png", seed=seed),
        plot_reverse(chain.trajectory, out_dir / "reverse.png"),
        plot_samples_vs_data(samples, data, out_dir / "samples.png"),
    ]
    rows = read_metrics(run.run_dir)
    if rows:
        paths.append(plot_loss(rows, out_dir / "loss.png"))
    return paths


def demo(
    cfg: Config, out: str | Path | None = None, *, n: int = 5000, progress: bool = True
) -> dict[str, Any]:
    """Train ``cfg``, sample ``n`` points, score them against fresh data, plot, and write
    ``summary.json``; returns the summary."""
    t0 = time.perf_counter()
    run_dir, summary = train_run(cfg, out, progress=progress)
    run = load_run(run_dir)
    t1 = time.perf_counter()
    samples, _ = run.sample(n, seed=cfg.train.seed + 1, progress=progress)
    sample_s = time.perf_counter() - t1
    np.save(run_dir / "samples.npy", samples)
    metrics = sample_metrics(run, samples)
    plots = plot_run(run)
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
    ckpt.atomic_write_json(run_dir / "summary.json", result)
    return result


def format_metrics(metrics: dict[str, Any] | None) -> list[str]:
    """Lines like 'energy distance 0.0012 (noise floor 0.0011, ratio 1.05)'."""
    if not metrics:
        return ["(no fresh data to compare against: metrics need a toy dataset)"]
    names = {"energy_distance": "energy distance", "mmd": "RBF-MMD^2"}
    return [
        f"{names.get(k, k)}: {v['value']:.3g} "
        f"(noise floor {v['floor']:.3g}, ratio {v['ratio']:.2f})"
        for k, v in metrics.items()
    ]


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2)
