"""``train.tensorboard = true``: the run's TensorBoard log (``training/tensorboard.py``) with a
sample figure at every checkpoint, drawn by the run's own sampler.

The figure: for vector data, samples beside training data (the first two coordinates); for
images, a grid of 64 samples. Grid samplers take at most :data:`FIGURE_STEPS` steps, so a
figure costs seconds, not a full chain; the sampler's generator is seeded with
``train.seed``, so every checkpoint's figure starts from the same noise.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from difflab.app.build import generate
from difflab.app.config import Config
from difflab.app.registry import SAMPLERS
from difflab.data.dataset import Dataset
from difflab.schedules import NoiseSchedule
from difflab.training.tensorboard import TensorBoardLog, require_tensorboard

#: Steps of a grid sampler for the checkpoint figure at most; points / images drawn.
FIGURE_STEPS = 100
FIGURE_POINTS, FIGURE_IMAGES = 1000, 64


def check_tensorboard(cfg: Config) -> None:
    """A one-line error before any work when tensorboard is asked for but not installed."""
    if cfg.train.tensorboard:
        require_tensorboard()


def tensorboard_log(
    cfg: Config,
    run_dir: Path,
    dataset: Dataset,
    schedule: NoiseSchedule,
    *,
    purge_step: int | None = None,
) -> TensorBoardLog | None:
    """The run's TensorBoard log in RUN_DIR/tensorboard, or None unless ``train.tensorboard``."""
    if not cfg.train.tensorboard:
        return None
    figure = partial(sample_picture, cfg, dataset, schedule)
    return TensorBoardLog(run_dir / "tensorboard", sample_image=figure, purge_step=purge_step)


def figure_config(cfg: Config) -> Config:
    """The run's sampling config with a grid sampler's steps capped at FIGURE_STEPS."""
    if not SAMPLERS[cfg.sample.sampler].grid:
        return cfg
    steps = min(cfg.sample.steps or cfg.schedule.T, FIGURE_STEPS, cfg.schedule.T)
    return cfg.replace("sample", steps=steps)


def sample_picture(
    cfg: Config, dataset: Dataset, schedule: NoiseSchedule, model: nn.Module
) -> np.ndarray:
    """A uint8 picture of samples drawn with ``model`` (see the module doc)."""
    n = FIGURE_IMAGES if dataset.is_image else FIGURE_POINTS
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed)
    with torch.no_grad():
        x = generate(figure_config(cfg), model, schedule, (n, *dataset.shape), generator=generator)
    samples = x.x.float().cpu().numpy()
    if dataset.is_image:
        from difflab.image_plots import image_grid

        grid = image_grid(samples, ncol=8)
        return grid.repeat(4, axis=0).repeat(4, axis=1) if samples.shape[-1] <= 16 else grid
    data = dataset.x[:n].reshape(min(n, dataset.x.shape[0]), -1).cpu().numpy()
    return scatter_picture(
        dataset.decode(samples.reshape(n, -1)),
        dataset.decode(data),
        title=f"{cfg.sample.sampler}, {figure_config(cfg).sample.steps or 'all'} steps",
    )


def scatter_picture(samples: np.ndarray, data: np.ndarray, *, title: str) -> np.ndarray:
    """Samples beside data (first two coordinates) as an RGB uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=80)
    canvas = FigureCanvasAgg(fig)
    finite = samples[np.isfinite(samples).all(axis=1)]
    both = np.concatenate([data, finite]) if finite.size else data
    lo, hi = np.percentile(both[:, :2], [0.5, 99.5], axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-6)
    for i, (label, pts) in enumerate(((f"samples ({title})", finite), ("data", data))):
        ax = fig.add_subplot(1, 2, i + 1)
        y = pts[:, 1] if pts.shape[1] > 1 else np.zeros(len(pts))
        ax.scatter(pts[:, 0], y, s=2, alpha=0.4, linewidths=0)
        ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), xticks=[], yticks=[], title=label)
        if pts.shape[1] > 1:
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
