"""Figures of audio runs (matplotlib's Agg backend, PNG files): a clip and its vocoded copy as
waveforms and log-mel spectrograms, the reverse chain of one clip as a strip of spectrograms,
and the metrics against the number of iterations beside Griffin-Lim's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

#: dB below the loudest bin that a spectrogram panel shows.
DB_RANGE = 80.0


def _spectrogram(ax, log_mel_db: np.ndarray, *, sample_rate: int, hop: int, vmax: float) -> None:
    frames = log_mel_db.shape[-1]
    ax.imshow(
        log_mel_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmax - DB_RANGE,
        vmax=vmax,
        extent=(0, frames * hop / sample_rate, 0, log_mel_db.shape[0]),
    )
    ax.set_ylabel("mel band")


def plot_vocoded(
    reference: np.ndarray, vocoded: np.ndarray, mels: tuple[np.ndarray, np.ndarray], path: Path,
    *, sample_rate: int, hop: int, title: str,
) -> Path:  # fmt: skip
    """Waveforms (top) and log-mel spectrograms in dB (bottom) of a clip and its vocoded copy."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex=True)
    t = np.arange(reference.shape[0]) / sample_rate
    vmax = float(max(m.max() for m in mels))
    for col, (name, audio, mel) in enumerate(
        (("input", reference, mels[0]), ("vocoded", vocoded, mels[1]))
    ):
        axes[0, col].plot(t[: audio.shape[0]], audio[: t.shape[0]], lw=0.4)
        axes[0, col].set_ylim(-1, 1)
        axes[0, col].set_title(name)
        _spectrogram(axes[1, col], mel, sample_rate=sample_rate, hop=hop, vmax=vmax)
        axes[1, col].set_xlabel("time (s)")
    axes[0, 0].set_ylabel("amplitude")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_chain_strip(
    states: Sequence[tuple[str, np.ndarray]], path: Path, *, sample_rate: int, hop: int
) -> Path:
    """The reverse chain of one clip: a log-mel spectrogram (dB) per recorded state."""
    fig, axes = plt.subplots(1, len(states), figsize=(2.4 * len(states), 3), sharey=True)
    axes = np.atleast_1d(axes)
    vmax = float(max(m.max() for _, m in states))
    for ax, (label, mel) in zip(axes, states):
        _spectrogram(ax, mel, sample_rate=sample_rate, hop=hop, vmax=vmax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("time (s)")
    fig.suptitle("reverse chain of one clip: noise (left) to audio (right)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


_PANELS = (
    ("log_mel_db", "log-mel distance (dB)"),
    ("mr_stft", "multi-resolution STFT distance"),
    ("f0_rmse_hz", "f0 RMSE (Hz)"),
    ("snr_db", "SNR (dB)"),
)


def plot_metrics_vs_steps(rows: Sequence[Mapping[str, object]], path: Path) -> Path:
    """Each metric against iterations: the vocoder and Griffin-Lim (rows of evaluate.json)."""
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(4.2 * len(_PANELS), 3.6))
    for ax, (key, label) in zip(axes, _PANELS):
        for method, style in (("wavegrad", "o-"), ("griffin_lim", "s--")):
            pts = sorted(
                (int(r["iterations"]), float(r[key]))  # type: ignore[arg-type]
                for r in rows
                if r["method"] == method and np.isfinite(float(r[key]))  # type: ignore[arg-type]
            )
            if pts:
                ax.plot(*zip(*pts), style, lw=1.2, label=method.replace("_", "-"))
        ax.set_xscale("log")
        ticks = sorted({int(r["iterations"]) for r in rows})  # type: ignore[arg-type]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("iterations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend()
    fig.suptitle("vocoder quality against iterations (lower is better; SNR: higher)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
