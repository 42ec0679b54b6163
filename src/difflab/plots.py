"""Figures for a run, drawn with matplotlib's Agg backend into PNG files.

For vector data the first two coordinates are drawn (the toy sets are 2-D). The figures follow
the tutorial: the data, the forward process q(x_t) at 10 times, the reverse trajectory at
10 times, the loss curve, and samples beside data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from difflab.forward import q_sample
from difflab.schedules import NoiseSchedule

_POINT = {"s": 2, "alpha": 0.4, "linewidths": 0}


def panel_times(T: int, n: int = 10) -> list[int]:
    """``n`` paper times from 0 to T, evenly spaced, including both ends."""
    return sorted({round(v) for v in np.linspace(0, T, n)})


def panel_labels(labels: Sequence[int], n: int = 10) -> list[int]:
    """``n`` of a chain's labels, evenly spaced along the chain, including its first and last
    (a ``record`` for the samplers: ``run_chain`` passes it the chain's labels)."""
    picks = {round(i) for i in np.linspace(0, len(labels) - 1, min(n, len(labels)))}
    return [labels[i] for i in sorted(picks)]


def _limits(
    points: np.ndarray, pad: float = 0.1
) -> tuple[tuple[float, float], tuple[float, float]]:
    lo, hi = np.percentile(points[:, :2], [0.5, 99.5], axis=0)
    span = np.maximum(hi - lo, 1e-6)
    return (lo[0] - pad * span[0], hi[0] + pad * span[0]), (
        lo[1] - pad * span[1],
        hi[1] + pad * span[1],
    )


def _scatter_row(panels: Sequence[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
    xlim, ylim = _limits(np.concatenate([pts for _, pts in panels]))
    for ax, (label, pts) in zip(axes[0], panels):
        ax.scatter(pts[:, 0], pts[:, 1], **_POINT)
        ax.set_title(label, fontsize=10)
        ax.set(xticks=[], yticks=[], xlim=xlim, ylim=ylim)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_data(x: np.ndarray, path: Path, *, title: str = "data") -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(x[:, 0], x[:, 1], **_POINT, color="tab:red")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forward(
    schedule: NoiseSchedule, x0: np.ndarray, path: Path, *, seed: int = 0, n_panels: int = 10
) -> Path:
    """q(x_t | x_0) applied to the data at ``n_panels`` times from 0 to T (closed form)."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    panels = [(r"$x_{0}$", x0)]
    for k in panel_times(schedule.T, n_panels)[1:]:
        t = torch.full((x0_t.shape[0],), k - 1, dtype=torch.long)
        x_t = q_sample(schedule, x0_t, t, generator=generator).numpy()
        panels.append((rf"$q(x_{{{k}}})$", x_t))
    return _scatter_row(panels, path, "forward process")


def plot_forward_levels(
    process, x0: np.ndarray, levels: Sequence[float], path: Path, *, seed: int = 0
) -> Path:
    """q(x_t | x_0) of a noise process (noise.py) at the times of noise levels ``levels``
    (sigma / alpha, ascending), closed form: x_t = alpha x_0 + sigma z."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float64))
    generator = torch.Generator().manual_seed(seed)
    panels = [(r"$x_{0}$", x0)]
    for level in levels:
        t = process.time_at_sigma_bar(level)
        z = torch.randn(x0_t.shape, generator=generator, dtype=torch.float64)
        x_t = (process.alpha(t) * x0_t + process.sigma(t) * z).numpy()
        panels.append((rf"$\sigma = {level:.3g}$", x_t))
    return _scatter_row(panels, path, "forward process (noise level sigma / alpha)")


def plot_reverse(
    trajectory: Mapping[int, torch.Tensor], path: Path, *, title: str = "reverse process"
) -> Path:
    """The sampler's states, from its start (x_T) to the samples (x_0), at the recorded labels."""
    panels = [
        (rf"$p(x_{{{k:.4g}}})$", v.numpy()) for k, v in sorted(trajectory.items(), reverse=True)
    ]
    return _scatter_row(panels, path, title)


def plot_loss(rows: Sequence[Mapping[str, float]], path: Path) -> Path:
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_samples_vs_data(samples: np.ndarray, data: np.ndarray, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    xlim, ylim = _limits(np.concatenate([data, samples]))
    for ax, pts, label, color in (
        (axes[0], data, "data", "tab:red"),
        (axes[1], samples, "samples", "tab:blue"),
    ):
        ax.scatter(pts[:, 0], pts[:, 1], **_POINT, color=color)
        ax.set_title(f"{label} (n = {len(pts)})")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_panels(panels: Sequence[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    """A row of scatter plots (first two coordinates) on shared axes, one per (label, points)."""
    return _scatter_row(panels, path, title)


def log_scaled(vectors: np.ndarray) -> np.ndarray:
    """Arrows of length log(1 + |v|) in the direction of v, so that scores of very different
    magnitudes (near and far from the data) fit on one quiver plot."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / (norm + 1e-12) * np.log1p(norm)


def score_grid(limits: tuple[tuple[float, float], tuple[float, float]], n: int = 25) -> np.ndarray:
    """An n x n grid of 2-D points over ``limits`` ((x_lo, x_hi), (y_lo, y_hi)), (n * n, 2)."""
    xs = np.linspace(*limits[0], n)
    ys = np.linspace(*limits[1], n)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)


def data_limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square-ish plotting limits around 2-D points, with a margin for the score field."""
    return _limits(points, pad=0.25)


def plot_score_fields(
    grid: np.ndarray,
    fields: Sequence[tuple[str, np.ndarray]],
    data: np.ndarray,
    path: Path,
) -> Path:
    """Quiver plots of score fields side by side over the data (log-scaled magnitudes)."""
    fig, axes = plt.subplots(1, len(fields), figsize=(5.5 * len(fields), 5.5), squeeze=False)
    for ax, (title, vectors) in zip(axes[0], fields):
        arrows = log_scaled(vectors)
        ax.scatter(data[:, 0], data[:, 1], color="tab:red", s=4, alpha=0.5, linewidths=0)
        ax.quiver(grid[:, 0], grid[:, 1], arrows[:, 0], arrows[:, 1], width=0.003)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(grid[:, 0].min(), grid[:, 0].max())
        ax.set_ylim(grid[:, 1].min(), grid[:, 1].max())
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_trajectories(
    trajectory: Mapping[int, torch.Tensor],
    grid: np.ndarray,
    field: np.ndarray,
    path: Path,
    *,
    title: str,
    data: np.ndarray | None = None,
    max_arrows: int = 30,
) -> Path:
    """Sampler chains drawn as arrows from state to state over the (log-scaled) score field
    (and the data, faint, if given); at most ``max_arrows`` arrows per chain."""
    labels = sorted(trajectory, reverse=True)
    keep = sorted({labels[round(i)] for i in np.linspace(0, len(labels) - 1, max_arrows + 1)})
    states = np.stack([trajectory[k].numpy()[:, :2] for k in sorted(keep, reverse=True)])
    fig, ax = plt.subplots(figsize=(6, 6))
    arrows = log_scaled(field)
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], color="tab:red", s=3, alpha=0.2, linewidths=0)
    ax.quiver(grid[:, 0], grid[:, 1], arrows[:, 0], arrows[:, 1], width=0.002, alpha=0.5)
    for chain in range(states.shape[1]):
        path_xy = states[:, chain]
        ax.scatter(path_xy[0, 0], path_xy[0, 1], color="tab:green", s=20, marker="o")
        for a, b in pairwise(path_xy):
            ax.annotate(
                "", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": "tab:green", "lw": 1}
            )
    ax.set_xlim(grid[:, 0].min(), grid[:, 0].max())
    ax.set_ylim(grid[:, 1].min(), grid[:, 1].max())
    ax.set_aspect("equal")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_noise_levels(
    sigmas: Sequence[float], x0: np.ndarray, path: Path, *, seed: int = 0, n_panels: int = 10
) -> Path:
    """The data perturbed with N(0, sigma^2 I) at (up to) ``n_panels`` levels of a noise ladder,
    smallest first: what an NCSN learns the score of at each level."""
    rng = np.random.default_rng(seed)
    levels = sorted(sigmas)
    picks = sorted({round(i) for i in np.linspace(0, len(levels) - 1, n_panels)})
    panels = [(r"$x_0$", x0)]
    for i in picks:
        noisy = x0 + levels[i] * rng.standard_normal(x0.shape).astype(np.float32)
        panels.append((rf"$\sigma = {levels[i]:.3g}$", noisy))
    return _scatter_row(panels, path, "data perturbed at the noise levels")


def plot_bound_terms(terms: np.ndarray, path: Path) -> Path:
    """The bound's terms L_t (nats, averaged over held-out data) against the paper's time t."""
    t = np.arange(1, len(terms) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(t[1:], terms[1:], lw=1, label="L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))")
    ax.scatter([1], [terms[0]], color="C3", s=15, zorder=3, label="L_0 = -log p(x_0|x_1)")
    ax.set_xlabel("t")
    ax.set_ylabel("nats")
    if np.all(terms[1:] > 0):
        ax.set_yscale("log")
    ax.set_title("the bound's terms")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_quality_vs_nfe(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Energy-distance and MMD ratios to their noise floors against network evaluations, one
    line per sampler (rows as written by ``app/bench.py``), and, where the rows have it, the
    samples' mean exact -log p(x) minus the true entropy H(p) (0: as sharp as the data)."""
    metrics = [
        ("energy_ratio", "energy distance / noise floor", "log"),
        ("mmd_ratio", "MMD / noise floor", "log"),
    ]
    if any("neg_log_p_excess" in r for r in rows):
        metrics.append(("neg_log_p_excess", "E_q[-log p] - H(p)  (nats)", "symlog"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4))
    samplers = list(dict.fromkeys(str(r["sampler"]) for r in rows))
    for ax, (key, label, scale) in zip(axes, metrics):
        for name in samplers:
            pts = sorted(
                (r["nfe"], r[key])
                for r in rows
                if r["sampler"] == name and key in r and np.isfinite(float(r[key]))  # type: ignore[arg-type]
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", lw=1.2, label=name)
        ax.axhline(1.0 if scale == "log" else 0.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale(scale, **({"linthresh": 0.05} if scale == "symlog" else {}))
        ax.set_xlabel("network evaluations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend()
    fig.suptitle("sample quality against cost (1 / 0 = indistinguishable from data)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    picture.save(path)
    return path


def plot_image_forward(
    schedule: NoiseSchedule, x0: np.ndarray, path: Path, *, seed: int = 0, n_panels: int = 10
) -> Path:
    """Forward trajectories as a grid: one row per image x0 (N, C, H, W), one column per time
    from 0 to T (q(x_t | x_0) in closed form, clipped to [-1, 1] for display)."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    columns = [x0_t]
    for k in panel_times(schedule.T, n_panels)[1:]:
        t = torch.full((x0_t.shape[0],), k - 1, dtype=torch.long)
        columns.append(q_sample(schedule, x0_t, t, generator=generator))
    stacked = torch.stack(columns, dim=1).flatten(0, 1).numpy()
    return save_image_grid(stacked, path, ncol=len(columns))


def plot_image_forward_levels(
    process, x0: np.ndarray, levels: Sequence[float], path: Path, *, seed: int = 0
) -> Path:
    """Forward trajectories of a noise process as a grid: one row per image, one column per
    noise level (ascending), clipped to [-1, 1] for display."""
    x0_t = torch.from_numpy(np.asarray(x0, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    columns = [x0_t]
    for level in levels:
        t = process.time_at_sigma_bar(level)
        z = torch.randn(x0_t.shape, generator=generator)
        columns.append(process.alpha(t) * x0_t + process.sigma(t) * z)
    stacked = torch.stack(columns, dim=1).flatten(0, 1).numpy()
    return save_image_grid(stacked, path, ncol=len(columns))


def plot_image_reverse(trajectory: Mapping[int, torch.Tensor], path: Path) -> Path:
    """Reverse trajectories as a grid: one row per sample, columns from x_T to x_0."""
    states = [v for _, v in sorted(trajectory.items(), reverse=True)]
    stacked = torch.stack(states, dim=1).flatten(0, 1).numpy()
    return save_image_grid(stacked, path, ncol=len(states))
