"""``difflab tune-schedule``: a K-iteration inference schedule for an audio run, searched on
validation clips by log-mel distance (``wavegrad_schedule.py``) and stored in
RUN_DIR/schedules.json, where ``vocode``, ``sample``, ``evaluate`` and ``plot`` find it.

The criterion vocodes the first ``--clips`` validation clips with the run's sampler and a fixed
seed (so candidates are compared on the same noise) and returns their mean log-mel distance in
dB. Each step chooses among the paper's grid values and the beta of the training schedule
respaced to K steps; the search starts from the respaced schedule, so the stored schedule
scores at most as much as it (both scores are stored).
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
from difflab.training import checkpoint as ckpt
from difflab.vocoder import respaced_betas
from difflab.wavegrad_schedule import MANTISSAS, Criterion, candidate_betas, search_schedule


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

    # each step's choices: the paper's grid and the respaced training schedule's beta, from
    # which the search starts (so it can only improve on it)
    respaced = respaced_betas(run.schedule, steps, run.config.sample.spacing)
    candidates = [
        sorted({*grid, r}) for grid, r in zip(candidate_betas(steps, mantissas), respaced)
    ]
    start = [c.index(r) for c, r in zip(candidates, respaced)]
    result = search_schedule(criterion, candidates, start=start, passes=passes,
                             exhaustive=exhaustive, progress=report)  # fmt: skip
    entry = {
        "betas": result.betas,
        "log_mel_db": result.score,
        "respaced_log_mel_db": result.start_score,
        "evaluations": len(result.scored),
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
