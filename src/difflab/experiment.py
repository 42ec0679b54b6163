"""The CLI's jobs as library functions: train a run, plot it, score samples against fresh data,
and the demo that does all of it. Each takes a config or a run directory and writes into the run
directory."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.builders import (
    build_dataset,
    build_image_split,
    build_model,
    build_objective,
    build_schedule,
    build_sigmas,
    chain_length,
    is_noise_conditional,
    score_field,
)
from difflab.config import (
    SCORE_LOSSES,
    Config,
    LossName,
    apply_overrides,
    config_from_dict,
    config_from_json,
)
from difflab.data.dataset import Dataset
from difflab.data.files import save_vectors
from difflab.data.images import save_image_array, to_user_space
from difflab.data.toy import sample_toy, toy_names
from difflab.losses.base import Objective
from difflab.metrics import compare_to_reference
from difflab.run import Run, load_run, require_run_dir
from difflab.schedules import NoiseSchedule
from difflab.training import checkpoint as ckpt
from difflab.training.distributed import init_distributed
from difflab.training.trainer import Trainer, TrainSummary, read_metrics, truncate_metrics

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


def build_training(cfg: Config) -> tuple[Dataset, NoiseSchedule, torch.nn.Module, Objective]:
    """Data, schedule, freshly initialised network (seeded) and objective for ``cfg``."""
    torch.manual_seed(cfg.train.seed)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    schedule = build_schedule(cfg.schedule)
    model = build_model(
        cfg.model, dataset.shape, T=schedule.T, noise_conditional=is_noise_conditional(cfg)
    )
    return dataset, schedule, model, build_objective(cfg, schedule, levels=dataset.levels)


def data_info(dataset: Dataset) -> dict[str, Any]:
    """What the manifest records about the training data, with a SHA-256 of its values so a
    resume can tell that the data changed."""
    digest = hashlib.sha256(dataset.x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    return {**dataset.info(), "sha256": digest}


def train_run(
    cfg: Config, out: str | Path | None = None, *, progress: bool = True
) -> tuple[Path, TrainSummary]:
    """Build everything from ``cfg``, train, and leave a complete run directory.

    Under torchrun every process calls this; rank 0 picks and writes the run directory.
    """
    dist_ctx, device = init_distributed(_device(cfg.train.device))
    run_dir = dist_ctx.on_main(lambda: new_run_dir(out, cfg))
    dataset, _, model, objective = build_training(cfg)
    if dist_ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_write_bytes(run_dir / "config.json", cfg.to_json().encode())
        ckpt.write_manifest(run_dir, data_info(dataset))
    trainer = Trainer(
        model,
        objective,
        dataset,
        cfg.train,
        run_dir=run_dir,
        device=device,
        progress=progress,
        dist_ctx=dist_ctx,
        run_config=cfg.to_dict(),
    )
    return run_dir, trainer.fit()


#: Keys ``--set`` may change when resuming; everything else is fixed by the checkpoint.
RESUME_KEYS = ("steps", "checkpoint_every", "keep_checkpoints", "log_every", "max_nonfinite")


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The run's config.json with ``--set train.KEY=...`` overrides for keys in RESUME_KEYS."""
    cfg = config_from_json(run_dir / "config.json")
    for text in overrides:
        lhs = text.split("=", 1)[0].strip()
        if lhs not in {f"train.{k}" for k in (*RESUME_KEYS, "device")}:
            allowed = ", ".join(f"train.{k}" for k in RESUME_KEYS)
            raise ValueError(
                f"--set {lhs} cannot change when resuming (the checkpoint was trained with it); "
                f"only {allowed} and train.device can; start a new run with --out instead"
            )
    return config_from_dict(apply_overrides(cfg.to_dict(), overrides))


def _check_same_run(cfg: Config, loaded: ckpt.TrainingState, dataset: Dataset, run_dir: Path):
    """The checkpoint's recorded config and the data must be what config.json describes."""
    if loaded.config is not None:
        free = {f"train.{k}" for k in (*RESUME_KEYS, "device")}
        diffs = [
            d
            for d in ckpt.config_differences(loaded.config, cfg.to_dict())
            if d.split(":")[0] not in free
        ]
        if diffs:
            raise ckpt.CheckpointError(
                f"checkpoint {loaded.path.name} was trained with another config than "
                f"{run_dir / 'config.json'} ({'; '.join(diffs[:4])}); restore config.json or "
                "start a new run with --out"
            )
    recorded = ckpt.read_manifest(run_dir)["data"]
    now = data_info(dataset)
    changed = [k for k in recorded if k in now and recorded[k] != now[k]]
    if changed:
        raise ckpt.CheckpointError(
            f"the training data differ from when {run_dir} started ({', '.join(changed)} "
            "changed); restore the data file or start a new run with --out"
        )


def resume_run(
    run_dir: str | Path, overrides: list[str] | None = None, *, progress: bool = True
) -> tuple[Path, TrainSummary]:
    """Continue a run from its newest good checkpoint (a corrupt newer one is skipped with a
    warning). Rows of the log after that checkpoint are dropped and rewritten."""
    path = require_run_dir(run_dir)
    cfg = resume_config(path, overrides or [])
    dist_ctx, device = init_distributed(_device(cfg.train.device))
    loaded = ckpt.latest_good_checkpoint(path)
    dataset, _, model, objective = build_training(cfg)
    _check_same_run(cfg, loaded, dataset, path)
    if loaded.step >= cfg.train.steps:
        raise ValueError(
            f"{path} is already trained to step {loaded.step} (train.steps = "
            f"{cfg.train.steps}); to train longer: difflab train --resume {path} "
            f"--set train.steps={2 * max(loaded.step, 1)}"
        )
    if dist_ctx.is_main:
        truncate_metrics(path, loaded.step)
        if overrides:
            ckpt.atomic_write_bytes(path / "config.json", cfg.to_json().encode())
    trainer = Trainer(
        model,
        objective,
        dataset,
        cfg.train,
        run_dir=path,
        device=device,
        progress=progress,
        dist_ctx=dist_ctx,
        run_config=cfg.to_dict(),
    )
    trainer.load_checkpoint(loaded)
    return path, trainer.fit()


def check_config(cfg: Config) -> str:
    """Validate ``cfg`` and its data without training or writing anything; a summary line."""
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    schedule = build_schedule(cfg.schedule)
    with torch.device("meta"):  # counts parameters without allocating them
        model = build_model(
            cfg.model, dataset.shape, T=schedule.T, noise_conditional=is_noise_conditional(cfg)
        )
    params = sum(p.numel() for p in model.parameters())
    return (
        f"config OK: data {cfg.data.name} {tuple(dataset.x.shape)}, schedule {cfg.schedule.name} "
        f"T={schedule.T}, model {cfg.model.name} with {params} parameters; nothing was written"
    )


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
    """Energy distance and MMD of samples to fresh data, with noise floors (toy data); for the
    digits, the Frechet distance to the test split with its floor and the class histogram."""
    if run.config.data.name == "digits":
        from difflab.digits_quality import digits_quality

        return digits_quality(samples)
    n = samples.shape[0]
    reference = reference_data(run, n)
    if reference is None:
        return None
    floors = [sample_toy(run.data.name, n, seed=REFERENCE_SEED + 1 + k) for k in range(floor_draws)]
    return compare_to_reference(samples, reference, floors)


def save_samples(run: Run, samples: np.ndarray, path: str | Path) -> None:
    """Write samples where the user reads them: images as .npy integers (N, H, W[, C]) in
    0..levels-1, like the input data; vectors as .npy or .csv (N, D)."""
    if run.data.is_image:
        assert run.data.levels is not None
        save_image_array(path, to_user_space(samples, run.data.levels))
    else:
        save_vectors(path, samples)


def plot_run(run: Run, *, n: int = 2000, seed: int = 0, out_dir: Path | None = None) -> list[Path]:
    """Every figure for a run, written into ``run_dir/plots``."""
    from difflab.plots import (  # matplotlib takes seconds to import: only when plotting
        panel_times,
        plot_data,
        plot_forward,
        plot_loss,
        plot_noise_levels,
        plot_reverse,
        plot_samples_vs_data,
    )

    out_dir = out_dir or run.run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    if run.data.is_image:
        return plot_image_run(run, n=n, seed=seed, out_dir=out_dir)
    data = reference_data(run, n, seed=REFERENCE_SEED)
    if data is None:
        data = run.data.decode(build_dataset(run.config.data).x[:n].numpy())
    model_data = run.data.encode(data)
    cfg = run.config
    samples, chain = run.sample(n, seed=seed, record=panel_times(chain_length(cfg, run.schedule)))
    paths = [plot_data(data, out_dir / "data.png", title=f"data: {run.data.name}")]
    if cfg.loss.name == LossName.NCSN:
        sigmas = build_sigmas(cfg).tolist()
        paths.append(plot_noise_levels(sigmas, model_data, out_dir / "forward.png"))
    elif cfg.loss.name not in SCORE_LOSSES:
        paths.append(plot_forward(run.schedule, model_data, out_dir / "forward.png", seed=seed))
    paths += [
        plot_reverse(
            chain.trajectory, out_dir / "reverse.png", title=f"{cfg.sample.sampler} chain"
        ),
        plot_samples_vs_data(samples, data, out_dir / "samples.png"),
    ]
    if model_data.shape[1] == 2:
        paths += plot_score(run, model_data, out_dir, seed=seed)
    rows = read_metrics(run.run_dir)
    if rows:
        paths.append(plot_loss(rows, out_dir / "loss.png"))
    return paths


def reference_log_prob(run: Run, model_data: np.ndarray, *, scale: float, noise_std: float):
    """log-density (model space) of scale * x_0 + noise_std * z for the run's data: a Gaussian
    mixture fitted to the data (see difflab.density)."""
    from difflab.density import fit_gaussian_mixture, mixture_log_prob

    return mixture_log_prob(fit_gaussian_mixture(model_data), scale=scale, noise_std=noise_std)


def plot_score(run: Run, model_data: np.ndarray, out_dir: Path, *, seed: int = 0) -> list[Path]:
    """score.png: the learned score field beside the reference score of the same noise level;
    trajectories.png: a few sampler chains drawn as arrows over the learned field (model space)."""
    from difflab.density import score_of
    from difflab.plots import data_limits, plot_score_fields, plot_trajectories, score_grid

    field = score_field(run.config, run.model, run.schedule)
    grid = score_grid(data_limits(model_data))
    grid_t = torch.from_numpy(grid)
    with torch.no_grad():
        learned = field.score(grid_t).numpy()
    log_prob = reference_log_prob(run, model_data, scale=field.scale, noise_std=field.noise_std)
    reference = score_of(log_prob, grid_t).numpy()
    level = f"noise std {field.noise_std:.3g}" if field.noise_std else "no noise"
    score_path = plot_score_fields(
        grid,
        [
            (f"learned score ({level})", learned),
            (f"reference score: Gaussian-mixture fit ({level})", reference),
        ],
        model_data,
        out_dir / "score.png",
    )
    length = chain_length(run.config, run.schedule)
    _, chain = run.sample(8, seed=seed + 1, record=range(length + 1))
    trajectories = plot_trajectories(
        chain.trajectory,
        grid,
        learned,
        out_dir / "trajectories.png",
        title=f"{run.config.sample.sampler} chains over the learned score",
        data=model_data,
    )
    return [score_path, trajectories]


def plot_image_run(run: Run, *, n: int, seed: int, out_dir: Path) -> list[Path]:
    """Image runs: grids of training images and samples (n each, at most 100), forward and
    reverse trajectories (8 rows, 10 times from 0 to T) and the loss curve."""
    from difflab.plots import (  # matplotlib takes seconds to import: only when plotting
        panel_times,
        plot_image_forward,
        plot_image_reverse,
        plot_loss,
        save_image_grid,
    )

    n = min(n, 100)
    data = build_image_split(run.config.data, "train").x[:n].numpy()
    samples, _ = run.sample(n, seed=seed)
    length = chain_length(run.config, run.schedule)
    _, chain = run.sample(8, seed=seed + 1, record=panel_times(length))
    paths = [
        save_image_grid(data, out_dir / "data.png"),
        plot_image_forward(run.schedule, data[:8], out_dir / "forward.png", seed=seed),
        plot_image_reverse(chain.trajectory, out_dir / "reverse.png"),
        save_image_grid(samples, out_dir / "samples.png"),
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
    save_samples(run, samples, run_dir / "samples.npy")
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


def evaluate_image_run(
    run: Run, *, n_samples: int = 1000, batch_size: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Test-split bits/dim of an image run (the bound with the data's discretized decoder),
    and for the digits the quality metric of ``n_samples`` samples (0: skip); written to
    ``run_dir/evaluate.json`` and returned."""
    from difflab.image_likelihood import split_bits_per_dim

    if not run.data.is_image:
        raise ValueError(
            f"{run.run_dir}: evaluate reports bits/dim for image runs; this run has vector data "
            f"({run.data.name!r})"
        )
    result: dict[str, Any] = {"run_dir": str(run.run_dir), "step": run.step}
    result["bits_per_dim"] = split_bits_per_dim(run, batch_size=batch_size, seed=seed)
    if run.config.data.name == "digits" and n_samples > 0:
        samples, _ = run.sample(n_samples, seed=seed + 1)
        result["sample_metrics"] = sample_metrics(run, samples)
    ckpt.atomic_write_json(run.run_dir / "evaluate.json", result)
    return result


def format_metrics(metrics: dict[str, Any] | None) -> list[str]:
    """Lines like 'energy distance 0.0012 (noise floor 0.0011, ratio 1.05)'."""
    if not metrics:
        return ["(no fresh data to compare against: metrics need a toy dataset)"]
    names = {
        "energy_distance": "energy distance",
        "mmd": "RBF-MMD^2",
        "frechet_distance": "Frechet distance (digits classifier features)",
    }
    lines = [
        f"{names.get(k, k)}: {v['value']:.3g} "
        f"(noise floor {v['floor']:.3g}, ratio {v['ratio']:.2f})"
        for k, v in metrics.items()
        if isinstance(v, dict) and "floor" in v
    ]
    if "class_histogram" in metrics:
        lines.append(f"predicted classes 0-9: {metrics['class_histogram']}")
    return lines


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2)
