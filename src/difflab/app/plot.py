"""``difflab plot``: every figure of a run, written into ``RUN_DIR/plots``.

Vector data: the data, the forward process q(x_t) at 10 times (NCSN: the data at its noise
levels), the sampler's chain at 10 of its states, samples beside data, the loss curve, and for
2-D data the learned score field beside a reference (score.png) and a few chains drawn over it
(trajectories.png). Images: grids of data and samples, forward and reverse trajectories.
Class-conditional runs also get their samples coloured by class (images: a row per class) in
samples_by_class.png and a guidance sweep, samples at s = 0, 1, 2, 4 side by side, in
guidance.png (when the run trained its unconditional model).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from difflab.app.build import build_sigmas, grid_range, noise_level_score
from difflab.app.datasets import REFERENCE_SEED, build_dataset, build_image_split, reference_data
from difflab.app.outputs import Outputs, check_folder_writable
from difflab.app.registry import DIFFUSION, LADDER, LOSSES, VOCODER
from difflab.app.resources import check_sampling_fits
from difflab.app.run import Run, load_run
from difflab.app.sample import check_count, require_finite
from difflab.app.sections import check_seed
from difflab.training.metrics_log import read_metrics


class ScoreField(NamedTuple):
    """A run's score at its smallest noise level, ``score(x)`` in model space, and the law it
    estimates: the score of ``scale`` * x_0 + ``noise_std`` * z (z ~ N(0, I), x_0 the data)."""

    score: Callable[[torch.Tensor], torch.Tensor]
    scale: float
    noise_std: float


def score_field(run: Run) -> ScoreField:
    """The learned score of a run: the score network itself; for NCSN at sigma_min; for a
    diffusion model -eps_hat(x, t) / sigma_t at the smallest level t = t_min, the score of
    q(x_t) (the paper's time 1 for a discrete schedule)."""
    cfg = run.config
    trains = LOSSES[cfg.loss.name].trains
    if trains == LADDER:
        sigma = float(build_sigmas(cfg)[-1])
        return ScoreField(lambda x: noise_level_score(run.model)(x, sigma), 1.0, sigma)
    if trains != DIFFUSION:
        return ScoreField(run.model, 1.0, cfg.loss.sigma if cfg.loss.name == "dsm" else 0.0)
    denoiser = run.denoiser(clip=False)
    process, t = denoiser.process, denoiser.process.t_min  # paper time 1 for a schedule
    return ScoreField(lambda x: denoiser.score(x, t), process.alpha(t), process.sigma(t))


def plot_run(
    run: Run,
    *,
    n: int = 2000,
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = False,
) -> list[Path]:
    """Every figure for a run, written into ``run_dir/plots`` together once all are drawn
    (an error or Ctrl-C leaves the previous figures as they were); returns their paths."""
    out_dir = out_dir or run.run_dir / "plots"
    check_folder_writable(out_dir, flag=f"plot {run.run_dir}")
    if LOSSES[run.config.loss.name].trains == VOCODER:
        from difflab.app.plot_audio import plot_audio_run

        out_dir.mkdir(parents=True, exist_ok=True)
        return plot_audio_run(run, seed=seed, out_dir=out_dir)
    draw = plot_image_run if run.data.is_image else plot_vector_run
    with Outputs() as outputs:
        draw(run, n=n, seed=seed, out_dir=out_dir, outputs=outputs, progress=progress)
    return outputs.written


def plot_vector_run(
    run: Run, *, n: int, seed: int, out_dir: Path, outputs: Outputs, progress: bool = False
) -> None:
    """Vector runs' figures (see the module doc), staged in ``outputs``."""
    from difflab.plots import (  # matplotlib takes seconds to import: only when plotting
        panel_labels,
        plot_data,
        plot_forward,
        plot_loss,
        plot_noise_levels,
        plot_reverse,
        plot_samples_vs_data,
    )

    check_sampling_fits(run.config, run.data.shape, n, run.device)  # before the data draw
    data = reference_data(run.data.name, n, seed=REFERENCE_SEED)
    if data is None:
        data = run.data.decode(build_dataset(run.config.data).x[:n].numpy())
    model_data = run.data.encode(data)
    cfg = run.config
    samples, chain = run.sample(n, seed=seed, record=panel_labels, progress=progress)
    require_finite(run, samples)
    plot_data(data, outputs.stage(out_dir / "data.png"), title=f"data: {run.data.name}")
    trains = LOSSES[cfg.loss.name].trains
    if trains == LADDER:
        sigmas = build_sigmas(cfg).tolist()
        plot_noise_levels(sigmas, model_data, outputs.stage(out_dir / "forward.png"))
    elif LOSSES[cfg.loss.name].continuous:
        forward = outputs.stage(out_dir / "forward.png")
        plot_continuous_forward(run, model_data, forward, seed=seed)
    elif trains == DIFFUSION:
        plot_forward(run.schedule, model_data, outputs.stage(out_dir / "forward.png"), seed=seed)
    title = f"{cfg.sample.sampler} chain"
    plot_reverse(chain.trajectory, outputs.stage(out_dir / "reverse.png"), title=title)
    plot_samples_vs_data(samples, data, outputs.stage(out_dir / "samples.png"))
    if run.classes is not None:
        plot_classes(run, samples, n=n, seed=seed, out_dir=out_dir, outputs=outputs)
    if model_data.shape[1] == 2:
        plot_score(run, model_data, out_dir, seed=seed, outputs=outputs)
    rows = read_metrics(run.run_dir)
    if rows:
        plot_loss(rows, outputs.stage(out_dir / "loss.png"))


def plot_continuous_forward(run: Run, x0: np.ndarray, path: Path, *, seed: int) -> Path:
    """q(x_t) of a continuous formulation at 9 noise levels spread log-uniformly over the
    sampling grid's range."""
    from difflab.plots import plot_forward_levels

    process = run.denoiser().process
    lo, hi = grid_range(run.config, process)
    levels = np.geomspace(lo, hi, 9).tolist()
    return plot_forward_levels(process, x0, levels, path, seed=seed)


def _image_forward(run: Run, x0: np.ndarray, path: Path, *, seed: int) -> Path:
    from difflab.image_plots import plot_image_forward, plot_image_forward_levels

    if not LOSSES[run.config.loss.name].continuous:
        return plot_image_forward(run.schedule, x0, path, seed=seed)
    process = run.denoiser().process
    levels = np.geomspace(*grid_range(run.config, process), 9).tolist()
    return plot_image_forward_levels(process, x0, levels, path, seed=seed)


#: The guidance scales of guidance.png.
SWEEP_SCALES = (0.0, 1.0, 2.0, 4.0)


def plot_classes(
    run: Run, samples: np.ndarray, *, n: int, seed: int, out_dir: Path, outputs: Outputs
) -> None:
    """samples_by_class.png (the run's samples, of the default labels, coloured by class) and
    guidance.png (the same labels at each of SWEEP_SCALES), for 2-D or more vector data;
    staged in ``outputs``."""
    from difflab.plots import plot_by_class, plot_class_panels

    labels = run.default_labels(n)
    assert labels is not None
    plot_by_class(samples, labels, outputs.stage(out_dir / "samples_by_class.png"))
    if run.config.train.label_dropout > 0 and samples.shape[1] >= 2:
        panels = []
        for s in SWEEP_SCALES:
            guided, _ = run.sample(n, seed=seed, labels=labels, guidance=s)
            require_finite(run, guided)
            panels.append((f"s = {s:g}", guided, labels))
        title = "classifier-free guidance (s = 1 conditional, 0 unconditional)"
        plot_class_panels(panels, outputs.stage(out_dir / "guidance.png"), title=title)


def plot_image_classes(
    run: Run, *, seed: int, out_dir: Path, outputs: Outputs, per_class: int = 8
) -> None:
    """Image runs: samples_by_class.png (a row per class) and guidance.png (for each of
    SWEEP_SCALES a block of ``per_class`` columns, rows by class); staged in ``outputs``."""
    from difflab.app.classes import ALL, sample_labels
    from difflab.image_plots import guidance_grid, save_image_grid

    assert run.classes is not None
    labels = sample_labels(ALL, run.classes, per_class * run.classes.num_classes)
    samples, _ = run.sample(len(labels), seed=seed, labels=labels)
    require_finite(run, samples)
    save_image_grid(samples, outputs.stage(out_dir / "samples_by_class.png"), ncol=per_class)
    if run.config.train.label_dropout > 0:
        sweep = []
        for s in SWEEP_SCALES:
            guided, _ = run.sample(len(labels), seed=seed, labels=labels, guidance=s)
            require_finite(run, guided)
            sweep.append(guided)
        images, ncol = guidance_grid(sweep, per_class)
        save_image_grid(images, outputs.stage(out_dir / "guidance.png"), ncol=ncol)


def reference_log_prob(model_data: np.ndarray, *, scale: float, noise_std: float):
    """log-density (model space) of scale * x_0 + noise_std * z for the run's data: a Gaussian
    mixture fitted to the data (see difflab.density)."""
    from difflab.density import fit_gaussian_mixture, mixture_log_prob

    return mixture_log_prob(fit_gaussian_mixture(model_data), scale=scale, noise_std=noise_std)


def plot_score(
    run: Run, model_data: np.ndarray, out_dir: Path, *, seed: int = 0, outputs: Outputs
) -> None:
    """score.png: the learned score field beside the reference score of the same noise level;
    trajectories.png: four sampler chains drawn as paths over the learned field (model space)."""
    from difflab.density import score_of
    from difflab.plots import (
        data_limits,
        panel_labels,
        plot_score_fields,
        plot_trajectories,
        score_grid,
    )

    field = score_field(run)
    grid = score_grid(data_limits(model_data))
    grid_t = torch.from_numpy(grid).to(run.device)
    with torch.no_grad():
        learned = field.score(grid_t).cpu().numpy()
    log_prob = reference_log_prob(model_data, scale=field.scale, noise_std=field.noise_std)
    reference = score_of(log_prob, torch.from_numpy(grid)).numpy()
    level = f"noise std {field.noise_std:.3g}" if field.noise_std else "no noise"
    plot_score_fields(
        grid,
        [
            (f"learned score ({level})", learned),
            (f"reference score: Gaussian-mixture fit ({level})", reference),
        ],
        model_data,
        outputs.stage(out_dir / "score.png"),
    )
    _, chain = run.sample(4, seed=seed + 1, record=lambda labels: panel_labels(labels, 25))
    plot_trajectories(
        chain.trajectory,
        grid,
        learned,
        outputs.stage(out_dir / "trajectories.png"),
        title=f"{run.config.sample.sampler} chains over the learned score",
        data=model_data,
    )


def plot_image_run(
    run: Run, *, n: int, seed: int, out_dir: Path, outputs: Outputs, progress: bool = False
) -> None:
    """Image runs: grids of training images and samples (n each, at most 100), forward and
    reverse trajectories (8 rows, 10 times from 0 to T) and the loss curve."""
    from difflab.image_plots import plot_image_grid, plot_image_reverse
    from difflab.plots import panel_labels, plot_loss

    n = min(n, 100)
    data = build_image_split(run.config.data, "train").x[:n].numpy()
    samples, _ = run.sample(n, seed=seed, progress=progress)
    require_finite(run, samples)
    _, chain = run.sample(8, seed=seed + 1, record=panel_labels)
    sampler = run.config.sample.sampler
    plot_image_grid(data, outputs.stage(out_dir / "data.png"), title=f"training images ({n})")
    _image_forward(run, data[:8], outputs.stage(out_dir / "forward.png"), seed=seed)
    plot_image_reverse(
        chain.trajectory, outputs.stage(out_dir / "reverse.png"), title=f"{sampler} chains"
    )
    title = f"samples ({n}, {sampler}, step {run.step})"
    plot_image_grid(samples, outputs.stage(out_dir / "samples.png"), title=title)
    if run.classes is not None:
        plot_image_classes(run, seed=seed, out_dir=out_dir, outputs=outputs)
    rows = read_metrics(run.run_dir)
    if rows:
        plot_loss(rows, outputs.stage(out_dir / "loss.png"))


def command(args: argparse.Namespace) -> int:
    """``difflab plot``."""
    check_count(args.n, least=2)
    check_seed(args.seed, "--seed")
    run = load_run(args.run_dir)
    for path in plot_run(run, n=args.n, seed=args.seed, progress=not args.quiet):
        print(path)
    return 0
