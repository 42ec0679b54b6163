"""Figures for a run, drawn with matplotlib's Agg backend into PNG files.

For vector data the first two coordinates are drawn (the toy sets are 2-D); 1-D data are drawn
as histograms. The figures follow the tutorial: the data, the forward process q(x_t) at 10
times, the reverse trajectory at 10 times, the loss curve, and samples beside data. Image
figures live in ``image_plots.py``. Every figure is written by :func:`save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from difflab.forward import q_sample
from difflab.schedules import NoiseSchedule

_POINT = {"s": 2, "alpha": 0.4, "linewidths": 0}


def save_figure(fig: plt.Figure, path: Path, *, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix) and close it."""
    fig.savefig(path, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def panel_times(T: int, n: int = 10) -> list[int]:
    """``n`` paper times from 0 to T, evenly spaced, including both ends."""
    return sorted({round(v) for v in np.linspace(0, T, n)})


def panel_labels(labels: Sequence[int], n: int = 10) -> list[int]:
    """``n`` of a chain's labels, evenly spaced along the chain, including its first and last
    (a ``record`` for the samplers: ``run_chain`` passes it the chain's labels)."""
    picks = {round(i) for i in np.linspace(0, len(labels) - 1, min(n, len(labels)))}
    return [labels[i] for i in sorted(picks)]


def readable_log_scale(ax: plt.Axes, values: Sequence[float], *, axis: str = "y") -> str:
    """Put ``axis`` on a log scale with labelled ticks for any range of positive ``values``:
    over a decade or more the usual decades; over a narrower range ticks at 1..9 times a
    power of ten labelled as plain numbers; under a factor of 2 a linear axis instead (a log
    axis there shows no tick at all). Returns the scale used."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if finite.size == 0 or finite.min() <= 0:
        return "linear"
    ratio = finite.max() / finite.min()
    if ratio < 2:
        return "linear"
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    if ratio < 10:
        target.set_major_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        target.set_minor_formatter(NullFormatter())
    return "log"


def _limits(points: np.ndarray, pad: float = 0.1) -> list[tuple[float, float]]:
    """Plotting limits of the first one or two coordinates, from the 0.5 to 99.5 percentile."""
    finite = points[np.isfinite(points[:, : min(2, points.shape[1])]).all(axis=1)]
    if finite.size == 0:
        return [(-1.0, 1.0)] * min(2, points.shape[1])
    lo, hi = np.percentile(finite[:, :2], [0.5, 99.5], axis=0)
    span = np.maximum(hi - lo, 1e-6)
    return [(float(a - pad * s), float(b + pad * s)) for a, b, s in zip(lo, hi, span)]


def _draw_points(ax: plt.Axes, pts: np.ndarray, limits, *, color: str = "C0") -> None:
    """A scatter of the first two coordinates, or for 1-D data a histogram."""
    if pts.shape[1] >= 2:
        ax.scatter(pts[:, 0], pts[:, 1], **_POINT, color=color)
        ax.set(xlim=limits[0], ylim=limits[1])
    else:
        bins = int(np.clip(2 * np.sqrt(len(pts)), 10, 60))
        ax.hist(pts[:, 0], bins=bins, range=limits[0], density=True, color=color, alpha=0.7)
        ax.set(xlim=limits[0])


def _scatter_row(panels: Sequence[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.8), squeeze=False)
    limits = _limits(np.concatenate([pts for _, pts in panels]))
    for ax, (label, pts) in zip(axes[0], panels):
        _draw_points(ax, pts, limits)
        ax.set_title(label, fontsize=10)
        ax.set(xticks=[], yticks=[])
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_data(x: np.ndarray, path: Path, *, title: str = "data") -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    _draw_points(ax, x, _limits(x), color="tab:red")
    ax.set_title(title)
    if x.shape[1] >= 2:
        ax.set_aspect("equal")
    fig.tight_layout()
    return save_figure(fig, path)


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
    ax.plot(steps, losses, lw=1, marker="o" if len(steps) < 20 else None, ms=3)  # few: visible
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    readable_log_scale(ax, losses)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_samples_vs_data(samples: np.ndarray, data: np.ndarray, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=samples.shape[1] >= 2)
    limits = _limits(np.concatenate([data, samples]))
    for ax, pts, label, color in (
        (axes[0], data, "data", "tab:red"),
        (axes[1], samples, "samples", "tab:blue"),
    ):
        _draw_points(ax, pts, limits, color=color)
        ax.set_title(f"{label} (n = {len(pts)})")
    fig.tight_layout()
    return save_figure(fig, path)


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
    xlim, ylim = _limits(points, pad=0.25)
    return xlim, ylim


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
    return save_figure(fig, path, dpi=90)


def plot_trajectories(
    trajectory: Mapping[int, torch.Tensor],
    grid: np.ndarray,
    field: np.ndarray,
    path: Path,
    *,
    title: str,
    data: np.ndarray | None = None,
    n_chains: int = 4,
) -> Path:
    """``n_chains`` sampler chains, each a coloured path through its recorded states (first
    two coordinates) from x_T (circle) to the sample (star), over the faint (log-scaled)
    score field and data, with a legend naming each chain and the markers."""
    labels = sorted(trajectory, reverse=True)  # x_T first
    states = np.stack([trajectory[k].numpy()[:, :2] for k in labels])  # (L, B, 2)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    arrows = log_scaled(field)
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], color="0.6", s=3, alpha=0.3, linewidths=0)
    ax.quiver(grid[:, 0], grid[:, 1], arrows[:, 0], arrows[:, 1], width=0.002, alpha=0.25)
    for chain in range(min(n_chains, states.shape[1])):
        xy = states[:, chain]
        color = f"C{chain}"
        ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1.2, alpha=0.9, label=f"chain {chain + 1}")
        ax.scatter(*xy[0], color=color, s=40, marker="o", edgecolors="k", zorder=3)
        ax.scatter(*xy[-1], color=color, s=110, marker="*", edgecolors="k", zorder=3)
    ax.scatter([], [], color="w", edgecolors="k", marker="o", label=f"start x_{labels[0]}")
    ax.scatter([], [], color="w", edgecolors="k", marker="*", s=110, label="sample x_0")
    ax.set_xlim(grid[:, 0].min(), grid[:, 0].max())
    ax.set_ylim(grid[:, 1].min(), grid[:, 1].max())
    ax.set_aspect("equal")
    ax.set_title(f"{title}\n({len(labels)} recorded states per chain)", fontsize=10)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


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
    """The bound's terms L_t (nats, averaged over held-out data) against the paper's time t;
    L_0 (the decoder's -log p(x_0|x_1), negative for continuous data) is drawn and listed in
    the legend only where the axis can show it, else its value is written in the title."""
    t = np.arange(1, len(terms) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(t[1:], terms[1:], lw=1, label="L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))")
    scale = readable_log_scale(ax, terms[1:]) if np.all(terms[1:] > 0) else "linear"
    title = "the bound's terms"
    if scale == "linear" or terms[0] > 0:
        ax.scatter([1], [terms[0]], color="C3", s=15, zorder=3, label="L_0 = -log p(x_0|x_1)")
    else:
        title += f"  (L_0 = {terms[0]:.3g} nats, not on the log axis)"
    ax.set_xlabel("t")
    ax.set_ylabel("nats")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


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
        shown = []
        for name in samplers:
            pts = sorted(
                (r["nfe"], r[key])
                for r in rows
                if r["sampler"] == name and key in r and np.isfinite(float(r[key]))  # type: ignore[arg-type]
            )
            if pts:
                ax.plot(*zip(*pts), marker="o", lw=1.2, label=name)
                shown += [float(v) for _, v in pts]  # type: ignore[arg-type]
        ax.axhline(1.0 if scale == "log" else 0.0, color="k", lw=0.8, ls="--")
        readable_log_scale(ax, [r["nfe"] for r in rows], axis="x")  # type: ignore[misc]
        if scale == "log":
            readable_log_scale(ax, [*shown, 1.0])
        else:
            ax.set_yscale(scale, linthresh=0.05)
        ax.set_xlabel("network evaluations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend()
    fig.suptitle("sample quality against cost (1 / 0 = indistinguishable from data)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_guidance_sweep(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """bench-guidance's curve: class accuracy, and the spread of each class relative to the
    data's (diversity, log scale), against the guidance scale s; and accuracy against spread,
    each point labelled by s."""
    rows = [r for r in rows if "accuracy" in r and "mean_spread_ratio" in r]
    s = np.array([float(r["guidance"]) for r in rows])  # type: ignore[arg-type]
    acc = np.array([float(r["accuracy"]) for r in rows])  # type: ignore[arg-type]
    spread = np.array([float(r["mean_spread_ratio"]) for r in rows])  # type: ignore[arg-type]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(s, acc, marker="o")
    axes[0].set_ylabel("class accuracy")
    axes[1].plot(s, spread, marker="s", color="tab:orange")
    axes[1].axhline(1.0, color="k", lw=0.8, ls="--")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("spread of each class / the data's")
    for ax in axes[:2]:
        ax.set_xlabel("guidance scale s (1: conditional, 0: unconditional)")
    axes[2].plot(spread, acc, marker="o")
    for si, x, y in zip(s, spread, acc):
        axes[2].annotate(f"s={si:g}", (x, y), textcoords="offset points", xytext=(4, 4))
    axes[2].set_xscale("log")
    axes[2].set_xlabel("spread / the data's (diversity; 1: as diverse as the data)")
    axes[2].set_ylabel("class accuracy")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("classifier-free guidance: accuracy against diversity")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_by_class(
    points: np.ndarray, labels: np.ndarray, path: Path, *, title: str = "samples by class"
) -> Path:
    """A scatter of the first two coordinates, one colour per class."""
    return plot_class_panels([(title, points, labels)], path, title=title)


def plot_class_panels(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, *, title: str
) -> Path:
    """Scatters side by side (e.g. samples at several guidance scales), one colour per class;
    each panel is (label, points (N, >=2), labels (N,)); shared limits."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.6), squeeze=False)
    xlim, ylim = _limits(np.concatenate([pts for _, pts, _ in panels]))
    cmap = plt.get_cmap("tab10" if max(int(y.max()) for *_, y in panels) < 10 else "tab20")
    for ax, (label, pts, y) in zip(axes[0], panels):
        ax.scatter(pts[:, 0], pts[:, 1], c=cmap(y % cmap.N), **_POINT)
        ax.set_title(label, fontsize=10)
        ax.set(xticks=[], yticks=[], xlim=xlim, ylim=ylim)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
