"""Report sections that show pictures and sound: the figures of ``difflab plot``, image grids of
image runs (including ``samples.npy``), and players for the WAV files of audio runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.app.report import html
from difflab.app.report.html import Raw, esc
from difflab.app.report.rundir import RunDir

#: What `difflab plot` writes, in the order shown, with captions.
PLOT_FIGURES = {
    "plots/data.png": "the training data",
    "plots/forward.png": "the forward process q(x_t) (for NCSN: the data at its noise levels)",
    "plots/reverse.png": "the sampler's chain from x_T to x_0",
    "plots/samples.png": "samples beside the data",
    "plots/loss.png": "the loss curve",
    "plots/score.png": "the learned score field beside a reference score",
    "plots/trajectories.png": "sampler chains over the learned score",
}


def render_figures(run: RunDir) -> str | None:
    """Every PNG in plots/ not shown by another section: difflab plot's first, in order."""
    found = sorted(p.relative_to(run.path).as_posix() for p in (run.path / "plots").glob("*.png"))
    shown = [f for f in PLOT_FIGURES if f in found] + [f for f in found if f not in PLOT_FIGURES]
    shown = [f for f in shown if f not in run.claimed]
    if not shown:
        return None
    figures = [
        html.image_file(run.path / f, f, caption=f"{f}: {PLOT_FIGURES.get(f, 'figure')}")
        for f in shown
    ]
    return f'<div class="grid">{"".join(figures)}</div>'


def render_images(run: RunDir) -> str | None:
    """Image runs: the data and sample grids of difflab plot, and a grid of samples.npy."""
    parts = [
        html.image_file(run.path / f, f, caption=f"{f}: {caption}")
        for f, caption in (("plots/data.png", "training images"), ("plots/samples.png", "samples"))
        if (run.path / f).is_file()
    ]
    if (run.path / "samples.npy").is_file():
        parts.append(samples_grid(run, run.path / "samples.npy"))
    return f'<div class="grid">{"".join(parts)}</div>' if parts else None


def samples_grid(run: RunDir, path: Path, *, limit: int = 64) -> Raw:
    """The first ``limit`` images of a samples file (integers in 0..levels-1) as a grid."""
    levels = run.manifest.get("data", {}).get("levels") or 256
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        return html.note(f"{path.name} is unreadable ({err}); run difflab sample again", "problem")
    if images.ndim not in (3, 4) or images.shape[0] == 0:
        return html.note(f"{path.name} holds {images.shape}, not images (N, H, W[, C])", "warning")
    grid = image_grid(np.clip(images[:limit] / (levels - 1), 0, 1))
    caption = f"{path.name}: the first {min(limit, len(images))} of {len(images)} samples"
    return html.image(png_bytes(grid), path.name, caption=caption, pixelated=True)


def image_grid(images: np.ndarray, *, pad: int = 1, min_cell: int = 32) -> np.ndarray:
    """(N, H, W[, C]) in [0, 1] -> one uint8 picture, up to 8 per row, small images enlarged."""
    n, h, w = images.shape[:3]
    images = images if images.ndim == 4 else images[..., None]
    scale = max(1, -(-min_cell // w))
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    ncol = min(8, n)
    nrow = -(-n // ncol)
    h, w, c = images.shape[1:]
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c))
    for i, img in enumerate(images):
        r, k = divmod(i, ncol)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + k * (w + pad) : pad + k * (w + pad) + w,
        ] = img
    grid = (grid * 255).round().astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def png_bytes(picture: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_files(run: RunDir) -> list[Path]:
    return sorted(p for p in run.path.rglob("*.wav") if "checkpoints" not in p.parts)


def render_audio(run: RunDir) -> str | None:
    """Audio runs: a player for every WAV file in the run directory, grouped by folder, so
    that inputs and their vocoded versions play side by side."""
    files = wav_files(run)
    if not files:
        return None
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.parent.relative_to(run.path).as_posix(), []).append(path)
    out = []
    for folder, paths in groups.items():
        players = "".join(html.audio_file(p, label=p.name) for p in paths)
        out.append(
            f"<h4>{esc(folder if folder != '.' else 'run directory')}</h4>"
            f'<div class="grid">{players}</div>'
        )
    return "".join(out)
