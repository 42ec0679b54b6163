"""Figures a person can read: labelled ticks on narrow log ranges, legends that list only what
is drawn, a few legible sampler paths, titled image figures with time labels, 1-D data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difflab import image_plots, plots
from difflab.schedules import NoiseSchedule


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions save, kept open for inspection."""
    kept = []

    def keep(fig, path, **kwargs):
        kept.append(fig)
        fig.savefig(path)
        return path

    for module in (plots, image_plots):
        monkeypatch.setattr(module, "save_figure", keep)
    yield kept
    for fig in kept:
        plots.plt.close(fig)


def _labelled_ticks(axis, lo: float, hi: float) -> list[str]:
    axis.figure.canvas.draw()
    return [
        t.get_text()
        for t in axis.get_majorticklabels()
        if t.get_text() and lo <= t.get_position()[1 if axis.axis_name == "y" else 0] <= hi
    ]


@pytest.mark.parametrize(
    ("lo", "hi", "scale"),
    [(0.31, 0.92, "log"), (0.50, 0.55, "linear"), (0.02, 40.0, "log")],
)
def test_loss_axis_has_readable_ticks_over_any_range(lo, hi, scale, figures, tmp_path):
    """A log axis over less than a decade showed one tick or none; now every range shows at
    least three labelled ticks (a linear axis under a factor of 2)."""
    rows = [{"step": s, "loss": v} for s, v in enumerate(np.geomspace(hi, lo, 40))]
    plots.plot_loss(rows, tmp_path / "loss.png")
    ax = figures[-1].axes[0]
    assert ax.get_yscale() == scale
    ticks = _labelled_ticks(ax.yaxis, lo, hi)
    assert len(ticks) >= 3, ticks
    assert all("times" not in t and "^" not in t for t in ticks if lo > 0.1), ticks


def test_bound_terms_legend_lists_only_what_the_axis_shows(figures, tmp_path):
    terms = np.concatenate([[-1.7], np.geomspace(3.0, 0.01, 49)])  # L_0 < 0: off a log axis
    plots.plot_bound_terms(terms, tmp_path / "b.png")
    ax = figures[-1].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_yscale() == "log" and not any("L_0" in t for t in legend)
    assert "L_0 = -1.7 nats" in ax.get_title()
    terms[0] = 2.5  # positive: drawn and listed
    plots.plot_bound_terms(terms, tmp_path / "b2.png")
    assert any("L_0" in t.get_text() for t in figures[-1].axes[0].get_legend().get_texts())


def test_trajectories_show_a_few_paths_with_a_legend(figures, tmp_path):
    gen = torch.Generator().manual_seed(0)
    trajectory = {k: torch.randn(8, 2, generator=gen) for k in range(0, 26)}
    grid = plots.score_grid(((-3, 3), (-3, 3)), n=5)
    plots.plot_trajectories(trajectory, grid, -grid, tmp_path / "t.png", title="chains")
    ax = figures[-1].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["chain 1", "chain 2", "chain 3", "chain 4", "start x_25", "sample x_0"]
    assert len(ax.get_lines()) == 4 and not ax.texts  # paths, not dozens of arrows


def test_image_figures_have_titles_and_time_labels(figures, tmp_path):
    schedule = NoiseSchedule.from_name("cosine", 20)
    x0 = np.zeros((3, 1, 8, 8), dtype=np.float32)
    image_plots.plot_image_forward(schedule, x0, tmp_path / "f.png")
    ax = figures[-1].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "forward process" in ax.get_title() and labels[0] == "t=0" and labels[-1] == "t=20"
    trajectory = {k: torch.zeros(2, 1, 8, 8) for k in (20, 10, 0)}
    image_plots.plot_image_reverse(trajectory, tmp_path / "r.png", title="ddpm chains")
    ax = figures[-1].axes[0]
    assert ax.get_title() == "ddpm chains"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t=20", "t=10", "t=0"]
    image_plots.plot_image_grid(x0, tmp_path / "s.png", title="samples (3)")
    assert figures[-1].axes[0].get_title() == "samples (3)"


def test_one_dimensional_data_are_drawn_as_histograms(figures, tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 1)).astype(np.float32)
    plots.plot_samples_vs_data(x, x + 1, tmp_path / "s.png")
    assert all(len(ax.patches) >= 10 for ax in figures[-1].axes)  # histogram bars
    schedule = NoiseSchedule.from_name("cosine", 10)
    plots.plot_forward(schedule, x, tmp_path / "f.png")
    assert len(figures[-1].axes) == 10
