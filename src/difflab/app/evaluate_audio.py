"""``difflab evaluate`` on audio runs: the vocoder against Griffin-Lim from the same mel.

On ``evaluate.clips`` test clips (0: all), for each of ``evaluate.vocode_steps`` iterations
(the run's tuned schedule of that length, else the training schedule respaced) and for
Griffin-Lim with each of ``evaluate.griffin_lim_iters`` iterations: the log-mel distance (dB),
the multi-resolution STFT distance, SNR, f0 RMSE and voicing error against the reference
track (toy_speech: the generator's exact f0; other audio: pyin on the input), each the mean
over clips, and the real-time factor on this machine (wall seconds per second of audio, after
one untimed warm-up call, with ``torch.get_num_threads()`` threads). Writes
RUN_DIR/evaluate.json and RUN_DIR/plots/metrics_vs_steps.png.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from difflab.app.audio_data import audio_clips, clip_features, mel_spectrogram
from difflab.app.run import Run
from difflab.app.vocode import InferenceSchedule, inference_schedule, vocode_features
from difflab.audio.griffin_lim import griffin_lim
from difflab.audio.mel import MelSpectrogram
from difflab.audio.metrics import estimate_f0, f0_errors, log_mel_distance, mr_stft_distance, snr_db
from difflab.data.speech import SpeechClip
from difflab.training import checkpoint as ckpt

METRICS = ("log_mel_db", "mr_stft", "snr_db", "f0_rmse_hz", "f0_rmse_cents", "voicing_error")


def clip_metrics(
    clip: SpeechClip, out: np.ndarray, mel: MelSpectrogram, f0_ref: np.ndarray
) -> dict[str, float]:
    """Every metric of one vocoded clip against its reference."""
    hop = mel.settings.hop_length
    f0 = f0_errors(f0_ref, estimate_f0(out, clip.sample_rate, hop))
    return {
        "log_mel_db": log_mel_distance(clip.audio, out, mel),
        "mr_stft": mr_stft_distance(clip.audio, out)["total"],
        "snr_db": snr_db(clip.audio, out),
        **f0,
    }


def reference_f0(clip: SpeechClip, hop: int) -> np.ndarray:
    """The clip's exact f0 track if it has one (toy_speech), else pyin's estimate."""
    if clip.f0 is not None and clip.hop_length == hop:
        return clip.f0
    return estimate_f0(clip.audio, clip.sample_rate, hop)


def score_method(
    clips: list[SpeechClip],
    synthesize: Callable[[SpeechClip], np.ndarray],
    mel: MelSpectrogram,
    f0_refs: list[np.ndarray],
) -> dict[str, float]:
    """Mean metrics over clips and the real-time factor of ``synthesize`` (warmed up once)."""
    synthesize(clips[0])
    rows, wall, seconds, bad = [], 0.0, 0.0, 0
    for clip, f0_ref in zip(clips, f0_refs):
        start = time.perf_counter()
        out = synthesize(clip)
        wall += time.perf_counter() - start
        seconds += clip.audio.shape[0] / clip.sample_rate
        if not np.isfinite(out).all():  # a diverged chain: counted, not scored
            bad += 1
            continue
        rows.append(clip_metrics(clip, out, mel, f0_ref))
    summary = {key: _nanmean([r[key] for r in rows]) for key in METRICS}
    return {**summary, "rtf": wall / seconds, "nonfinite_clips": bad}


def _nanmean(values: list[float]) -> float:
    """The mean of the finite values (f0 errors are NaN for clips with no frame voiced in
    both), NaN if there are none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _vocoder(run: Run, mel: MelSpectrogram, schedule: InferenceSchedule, seed: int):
    def synthesize(clip: SpeechClip) -> np.ndarray:
        features, n = clip_features(mel, clip.audio)
        out = vocode_features(run, features[None], schedule, seed=seed)
        return out.x[0, 0, :n].cpu().numpy()

    return synthesize


def _griffin_lim(mel: MelSpectrogram, n_iter: int, seed: int):
    def synthesize(clip: SpeechClip) -> np.ndarray:
        features, n = clip_features(mel, clip.audio)
        return griffin_lim(features, mel, n_iter=n_iter, seed=seed)[:n]

    return synthesize


def evaluate_audio_run(run: Run, *, clips: int | None = None) -> dict[str, Any]:
    """The table of metrics (see the module docstring); writes evaluate.json and the plot."""
    from difflab.audio.plots import plot_metrics_vs_steps

    ev = run.config.evaluate
    mel = mel_spectrogram(run.config)
    test = audio_clips(run.config, "test")
    n = clips if clips is not None else ev.clips
    test = test[:n] if n else test
    f0_refs = [reference_f0(c, mel.settings.hop_length) for c in test]
    rows = []
    for steps in ev.vocode_steps:
        schedule = inference_schedule(run, steps)
        scores = score_method(test, _vocoder(run, mel, schedule, ev.seed), mel, f0_refs)
        rows.append({"method": "wavegrad", "iterations": steps, "schedule": schedule.source,
                     **scores})  # fmt: skip
    for n_iter in ev.griffin_lim_iters:
        scores = score_method(test, _griffin_lim(mel, n_iter, ev.seed), mel, f0_refs)
        rows.append({"method": "griffin_lim", "iterations": n_iter, **scores})
    f0_source = "exact (generator)" if test[0].f0 is not None else "pyin on the input"
    result = {
        "run_dir": str(run.run_dir),
        "step": run.step,
        "clips": len(test),
        "seconds": float(sum(c.audio.shape[0] for c in test) / run.config.data.sample_rate),
        "f0_reference": f0_source,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    plots = run.run_dir / "plots"
    plots.mkdir(exist_ok=True)
    result["files"] = [str(plot_metrics_vs_steps(rows, plots / "metrics_vs_steps.png"))]
    ckpt.atomic_write_json(run.run_dir / "evaluate.json", result)
    return result


def format_audio_report(result: dict[str, Any]) -> list[str]:
    """The terminal table of :func:`evaluate_audio_run`."""
    lines = [
        f"{result['clips']} test clips ({result['seconds']:.1f} s), f0 reference: "
        f"{result['f0_reference']}, {result['threads']} threads",
        f"{'method':<12}{'iters':>6} {'schedule':<9}{'log-mel dB':>11}{'MR-STFT':>9}{'SNR dB':>8}"
        f"{'f0 Hz':>8}{'f0 cents':>9}{'voicing':>8}{'RTF':>8}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['method']:<12}{r['iterations']:>6} {r.get('schedule', '-'):<9}"
            f"{r['log_mel_db']:>11.3f}{r['mr_stft']:>9.3f}{r['snr_db']:>8.2f}"
            f"{r['f0_rmse_hz']:>8.2f}{r['f0_rmse_cents']:>9.1f}{r['voicing_error']:>8.3f}"
            f"{r['rtf']:>8.3f}"
        )
    return lines
