"""Figures of image runs: tiled grids of images (N, C, H, W) in model space [-1, 1].

:func:`save_image_grid` writes the bare tiled picture (what ``difflab sample --grid`` gives);
:func:`plot_image_grid`, :func:`plot_image_forward` (:func:`plot_image_forward_levels` for a
continuous noise process) and :func:`plot_image_reverse` draw it in a matplotlib figure with a
title and, for trajectories, the time or noise level of every column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from difflab.forward import q_sample
from difflab.plots import panel_times, plt, save_figure
from difflab.schedules import NoiseSchedule


def image_grid(images: np.ndarray, *, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (N, C, H, W) in model space [-1, 1] into one uint8 picture (rows, cols[, 3]),
    ``ncol`` per row (default: about sqrt(N)), separated by ``pad`` pixels of mid-gray."""
    x = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5, 0, 255).round()
    x = x.astype(np.uint8).transpose(0, 2, 3, 1)  # (N, H, W, C)
    n, h, w, c = x.shape
    ncol = ncol or max(1, int(np.ceil(np.sqrt(n))))
    nrow = int(np.ceil(n / ncol))
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 128, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[top : top + h, left : left + w] = x[i]
    return canvas[..., 0] if c == 1 else canvas


def save_image_grid(
    images: np.ndarray, path: str | Path, *, ncol: int | None = None, min_cell: int = 32
) -> Path:
    """Write images (N, C, H, W) in [-1, 1] as a PNG grid; small images are enlarged (nearest
    neighbour) so that each cell is at least ``min_cell`` pixels wide."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: a grid is written as PNG; name the file *.png")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: directory {path.parent} does not exist; create it first")
    grid = image_grid(images, ncol=ncol)
    scale = max(1, int(np.ceil(min_cell / np.asarray(images).shape[-1])))
    picture = Image.fromarray(grid)
    if scale > 1:
        picture = picture.resize(
            (grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST
        )
    picture.save(path, format="PNG")
    return path


def plot_image_grid(
    images: np.ndarray,
    path: Path,
    *,
    title: str,
    ncol: int | None = None,
    column_labels: Sequence[str] | None = None,
    row_label: str | None = None,
) -> Path:
    """The tiled grid of ``images`` in a figure with ``title``; ``column_labels`` are written
    above the columns (e.g. the time of each state), ``row_label`` beside the rows."""
    x = np.asarray(images)
    grid = image_grid(x, ncol=ncol)
    w = x.shape[-1]
    cols = ncol or max(1, int(np.ceil(np.sqrt(len(x)))))
    inches = max(4.0, min(14.0, 0.45 * cols * max(1.0, w / 8)))
    fig, ax = plt.subplots(figsize=(inches, inches * grid.shape[0] / grid.shape[1] + 0.8))
    cmap = "gray" if grid.ndim == 2 else None
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    ax.set_yticks([])
    if column_labels is not None:
        ax.set_xticks([1 + i * (w + 1) + (w - 1) / 2 for i in range(len(column_labels))])
        ax.set_xticklabels(column_labels, fontsize=8)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    if row_label:
        ax.set_ylabel(row_label)
    ax.set_title(title, fontsize=10, pad=18 if column_labels is not None else 6)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_image_forward(
    schedule: NoiseSchedule, x0: np.ndarray, path: Path, *, seed: int = 0, n_panels: int = 10
) -> Path:
    """Forward trajectories: one row per image x0 (N, C, H, W), one column per paper time from
    0 to T (q(x_t | x_0) in closed form, clipped to [-1, 1] for display), labelled t = ..."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    times = panel_times(schedule.T, n_panels)
    columns = [x0_t]
    for k in times[1:]:
        t = torch.full((x0_t.shape[0],), k - 1, dtype=torch.long)
        columns.append(q_sample(schedule, x0_t, t, generator=generator))
    stacked = torch.stack(columns, dim=1).flatten(0, 1).numpy()
    return plot_image_grid(
        stacked,
        path,
        title=f"forward process q(x_t | x_0), T = {schedule.T}",
        ncol=len(columns),
        column_labels=[f"t={k}" for k in times],
        row_label="one training image per row",
    )


def plot_image_forward_levels(
    process, x0: np.ndarray, levels: Sequence[float], path: Path, *, seed: int = 0
) -> Path:
    """Forward trajectories of a noise process: one row per image x0 (N, C, H, W), one column
    per noise level sigma / alpha (ascending; x_t = alpha x0 + sigma z), clipped to [-1, 1]
    for display, labelled with the level."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    columns = [x0_t]
    for level in levels:
        t = process.time_at_sigma_bar(level)
        z = torch.randn(x0_t.shape, generator=generator)
        columns.append(process.alpha(t) * x0_t + process.sigma(t) * z)
    stacked = torch.stack(columns, dim=1).flatten(0, 1).numpy()
    return plot_image_grid(
        stacked,
        path,
        title="forward process (noise level sigma / alpha)",
        ncol=len(columns),
        column_labels=["x0", *(f"sigma={level:.3g}" for level in levels)],
        row_label="one training image per row",
    )


def plot_image_reverse(
    trajectory: Mapping[int, torch.Tensor], path: Path, *, title: str = "reverse process"
) -> Path:
    """Reverse trajectories: one row per sample, columns from x_T to x_0, labelled t = ..."""
    labels = sorted(trajectory, reverse=True)
    stacked = torch.stack([trajectory[k] for k in labels], dim=1).flatten(0, 1).numpy()
    return plot_image_grid(
        stacked,
        path,
        title=title,
        ncol=len(labels),
        column_labels=[f"t={k}" for k in labels],
        row_label="one chain per row",
    )


def class_rows(
    images: np.ndarray, labels: np.ndarray, *, max_cols: int = 20
) -> tuple[np.ndarray, int]:
    """Images (N, C, H, W) rearranged into one row per class (in label order), at most
    ``max_cols`` per row, shorter rows filled with blank (-1) cells; returns the images and
    the number of columns, for :func:`save_image_grid`."""
    classes = np.unique(labels)
    ncol = min(max_cols, max(int((labels == c).sum()) for c in classes))
    blank = np.full((ncol, *images.shape[1:]), -1.0, dtype=np.float32)
    rows = []
    for c in classes:
        row = np.asarray(images[labels == c][:ncol], dtype=np.float32)
        rows.append(np.concatenate([row, blank[: ncol - row.shape[0]]]))
    return np.concatenate(rows), ncol


def guidance_grid(sweep: Sequence[np.ndarray], per_class: int) -> tuple[np.ndarray, int]:
    """Image samples at several guidance scales side by side: each of ``sweep`` holds
    ``per_class`` samples of each class in blocks by class (K * per_class, C, H, W); the result
    has a row per class and a block of ``per_class`` columns per scale, blank columns between
    blocks; returns the images and the number of columns, for :func:`save_image_grid`."""
    k = sweep[0].shape[0] // per_class
    blank = np.full((1, *sweep[0].shape[1:]), -1.0, dtype=np.float32)
    cells = []
    for c in range(k):
        for i, images in enumerate(sweep):
            if i:
                cells.append(blank)
            cells.append(np.asarray(images[c * per_class : (c + 1) * per_class], dtype=np.float32))
    return np.concatenate(cells), len(sweep) * (per_class + 1) - 1
