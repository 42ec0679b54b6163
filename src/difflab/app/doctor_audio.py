"""``difflab doctor`` on audio runs: the checks that differ from vector and image data.

Audio keeps its own scale (a waveform in [-1, 1], often with an RMS near 0.1): WaveGrad's
noising step mixes it with unit noise at every level, so the unit-scale rule of other data does
not apply; clipped or silent training audio is what goes wrong. The preview vocodes one
validation clip with raw and EMA weights and reports each log-mel distance beside
Griffin-Lim's (32 iterations) from the same mel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difflab.app.audio_data import audio_clips, build_audio_dataset, clip_features, mel_spectrogram
from difflab.app.config import Config
from difflab.data.dataset import Dataset

#: Preview iterations: few, so the doctor stays quick.
PREVIEW_STEPS = 25


def check_audio_data(cfg: Config, finding) -> tuple[list, Dataset | None]:
    """Training segments: readable, not silent, not clipped."""
    try:
        data = build_audio_dataset(cfg)
    except ValueError as err:
        return [finding("data", "problem", str(err), "restore the audio files")], None
    x = data.x.numpy()
    peak, rms = float(np.abs(x).max()), float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    clipped = float(np.mean(np.abs(x) >= 0.999))
    message = (
        f"{x.shape[0]} audio segments of {x.shape[-1]} samples, peak {peak:.3g}, RMS {rms:.3g}"
    )
    if rms < 1e-3:
        return [finding("data", "problem", message + ": nearly silent", "check the files")], data
    if clipped > 1e-3:
        fix = "lower the recording level or normalise the files below full scale"
        return [finding("data", "warning", f"{message}: {clipped:.2%} clipped", fix)], data
    return [finding("data", "ok", message)], data


def check_audio_preview(run_dir: Path, finding, *, seed: int) -> list:
    """Log-mel distance of one vocoded validation clip, raw vs EMA weights, vs Griffin-Lim."""
    from difflab.app.run import load_run
    from difflab.app.vocode import inference_schedule, vocode_features
    from difflab.audio.griffin_lim import griffin_lim
    from difflab.audio.metrics import log_mel_distance

    dist = {}
    for label, use_ema in (("raw", False), ("EMA", True)):
        run = load_run(run_dir, use_ema=use_ema)
        mel = mel_spectrogram(run.config)
        clip = audio_clips(run.config, "val")[0]
        features, n = clip_features(mel, clip.audio)
        out = vocode_features(
            run, features[None], inference_schedule(run, PREVIEW_STEPS), seed=seed
        )
        audio = out.x[0, 0, :n].cpu().numpy()
        dist[label] = (
            log_mel_distance(clip.audio, audio, mel) if np.isfinite(audio).all() else np.inf
        )
    gl = log_mel_distance(clip.audio, griffin_lim(features, mel, n_iter=32, seed=seed)[:n], mel)
    message = (
        f"log-mel distance of a validation clip ({PREVIEW_STEPS} iterations): raw "
        f"{dist['raw']:.3g} dB, EMA {dist['EMA']:.3g} dB (Griffin-Lim, 32 iterations: {gl:.3g} dB)"
    )
    if min(dist.values()) > gl:
        fix = "train longer (train.steps) or use model.size = 'base' on a GPU"
        return [finding("samples", "warning", message + ": worse than Griffin-Lim", fix)]
    return [finding("samples", "ok", message)]
