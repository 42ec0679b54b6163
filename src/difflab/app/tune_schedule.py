"""``difflab tune-schedule``: a K-iteration inference schedule for an audio run, searched on
validation clips by log-mel distance (``schedule_search.py``) and stored in
RUN_DIR/schedules.json, where ``vocode``, ``sample``, ``evaluate`` and ``plot`` find it.

The criterion vocodes the first ``--clips`` validation clips with the run's sampler and a fixed
seed (so candidates are compared on the same noise) and returns their mean log-mel distance in
dB. The training schedule respaced to K steps is scored too; the better of it and the search's
best is stored, with both scores.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from difflab.app.audio_data import audio_clips, clip_features, mel_spectrogram
from difflab.app.run import Run, load_run
from difflab.app.vocode import (
    SCHEDULES_FILE,
    InferenceSchedule,
    require_audio_run,
    stored_schedules,
    vocode_features,
)
from difflab.audio.metrics import log_mel_distance
from difflab.wavegrad_schedule import MANTISSAS, Criterion, candidate_betas, search_schedule
from difflab.training import checkpoint as ckpt
from difflab.vocoder import respaced_betas


def log_mel_criterion(run: Run, *, clips: int, seed: int) -> Criterion:
    """Mean log-mel distance (dB) of the first ``clips`` validation clips vocoded on a schedule."""
    mel = mel_spectrogram(run.config)
    val = audio_clips(run.config, "val")[:clips]
    features = [clip_features(mel, c.audio) for c in val]

    def criterion(betas: list[float]) -> float:
        schedule = InferenceSchedule(betas, "candidate")
        scores = []
        for clip, (feats, n) in zip(val, features):
            out = vocode_features(run, feats[None], schedule, seed=seed).x[0, 0, :n]
            if not bool(out.isfinite().all()):
                return float("inf")
            scores.append(log_mel_distance(clip.audio, out.cpu().numpy(), mel))
        return float(np.mean(scores))

    return criterion


def tune(
    run: Run, steps: int, *, clips: int = 4, mantissas=MANTISSAS, passes: int = 2,
    exhaustive: bool = False, seed: int = 0, verbose: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Search a ``steps``-iteration schedule and store it in the run (see the module doc)."""
    criterion = log_mel_criterion(run, clips=clips, seed=seed)

    def report(betas: list[float], score: float) -> None:
        if verbose:
            print(f"  {score:8.3f} dB  {' '.join(f'{b:.1e}' for b in betas)}", file=sys.stderr)

    result = search_schedule(criterion, candidate_betas(steps, mantissas), passes=passes,
                             exhaustive=exhaustive, progress=report)  # fmt: skip
    respaced = respaced_betas(run.schedule, steps, run.config.sample.spacing)
    respaced_score = criterion(respaced)
    best, score = (
        (result.betas, result.score)
        if result.score <= respaced_score
        else (respaced, respaced_score)
    )
    entry = {
        "betas": best,
        "log_mel_db": score,
        "searched_log_mel_db": result.score,
        "start_log_mel_db": result.start_score,
        "respaced_log_mel_db": respaced_score,
        "evaluations": len(result.scored) + 1,
        "validation_clips": clips,
        "mantissas": list(mantissas),
        "step": run.step,
    }
    schedules = stored_schedules(run.run_dir)
    schedules[str(steps)] = entry
    ckpt.atomic_write_json(run.run_dir / SCHEDULES_FILE, {"schedules": schedules})
    return entry


def command(args: argparse.Namespace) -> int:
    """``difflab tune-schedule RUN_DIR --steps K``."""
    if args.clips < 1 or args.passes < 1:
        raise ValueError("--clips and --passes must be >= 1")
    try:
        mantissas = tuple(float(m) for m in args.mantissas.split(","))
    except ValueError:
        raise ValueError(f"--mantissas {args.mantissas!r}: give numbers, e.g. 1,2,5") from None
    run = load_run(args.run_dir)
    require_audio_run(run, "tune-schedule")
    entry = tune(run, args.steps, clips=args.clips, mantissas=mantissas, passes=args.passes,
                 exhaustive=args.exhaustive, seed=args.seed, verbose=not args.quiet)  # fmt: skip
    print(
        f"{args.steps}-step schedule: {entry['log_mel_db']:.3f} dB log-mel distance on "
        f"{args.clips} validation clips (respaced training schedule: "
        f"{entry['respaced_log_mel_db']:.3f} dB; {entry['evaluations']} schedules scored)"
    )
    print("betas: " + ", ".join(f"{b:.3g}" for b in entry["betas"]))
    print(f"stored in {run.run_dir / SCHEDULES_FILE}")
    return 0
