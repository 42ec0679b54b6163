"""``difflab plot`` on audio runs: RUN_DIR/plots/

- ``vocoded.png``: the first test clip and its vocoded copy (``sample.steps`` iterations, the
  run's tuned schedule if any), waveforms and log-mel spectrograms;
- ``reverse_chain.png``: that clip's reverse chain, a log-mel spectrogram of the state at up
  to 8 of its times, from noise to audio;
- ``metrics_vs_steps.png``: the metrics against iterations beside Griffin-Lim's (drawn from
  evaluate.json, written by `difflab evaluate`);
- ``loss.png``: the training loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from difflab.app.audio_data import audio_clips, clip_features, mel_spectrogram
from difflab.app.run import Run
from difflab.app.vocode import inference_schedule, vocode_features
from difflab.training.metrics_log import read_metrics

CHAIN_PANELS = 8


def _chain_labels(labels: list[int]) -> list[int]:
    """At most CHAIN_PANELS labels spread over the chain, always its first and last state."""
    if len(labels) <= CHAIN_PANELS:
        return labels
    picks = torch.linspace(0, len(labels) - 1, CHAIN_PANELS).round().long().tolist()
    return [labels[i] for i in picks]


def plot_audio_run(run: Run, *, seed: int, out_dir: Path) -> list[Path]:
    """Every figure of an audio run (see the module docstring)."""
    from difflab.audio.plots import plot_chain_strip, plot_metrics_vs_steps, plot_vocoded
    from difflab.plots import plot_loss

    mel = mel_spectrogram(run.config)
    s = mel.settings
    clip = audio_clips(run.config, "test")[0]
    features, n = clip_features(mel, clip.audio)
    schedule = inference_schedule(run, None)
    chain = vocode_features(run, features[None], schedule, seed=seed, record=_chain_labels)
    vocoded = chain.x[0, 0, :n].cpu()
    reference = torch.from_numpy(clip.audio)
    k = len(schedule.betas)
    paths = [
        plot_vocoded(
            clip.audio,
            vocoded.numpy(),
            (mel.log_mel_db(reference).numpy(), mel.log_mel_db(vocoded).numpy()),
            out_dir / "vocoded.png",
            sample_rate=s.sample_rate,
            hop=s.hop_length,
            title=f"{clip.name}: input and vocoded ({k} iterations, {schedule.source} schedule)",
        )
    ]
    states = [
        (
            f"step {k - label} of {k}" if label < k else "x_K (noise)",
            mel.log_mel_db(x[0, 0]).numpy(),
        )
        for label, x in chain.trajectory.items()
    ]
    paths.append(
        plot_chain_strip(
            states, out_dir / "reverse_chain.png", sample_rate=s.sample_rate, hop=s.hop_length
        )
    )
    evaluated = run.run_dir / "evaluate.json"
    if evaluated.is_file():
        rows = json.loads(evaluated.read_text()).get("rows")
        if rows:
            paths.append(plot_metrics_vs_steps(rows, out_dir / "metrics_vs_steps.png"))
    metrics = read_metrics(run.run_dir)
    if metrics:
        paths.append(plot_loss(metrics, out_dir / "loss.png"))
    return paths
