"""``difflab tune-schedule`` on an audio run (``app/tune.py`` hands audio runs here): a
K-iteration inference schedule searched on validation clips by log-mel distance and stored in
RUN_DIR/schedules.json, where ``vocode``, ``sample``, ``evaluate`` and ``plot`` find it.

The criterion vocodes the first ``--clips`` validation clips with the run's sampler (or
``--sampler``) and a fixed seed (so candidates are compared on the same noise) and returns their
mean log-mel distance in dB. Two searches, both starting from the training schedule respaced to
K steps, so the stored schedule scores at most as much as it (both scores are stored):

- ``mantissas`` (default, ``wavegrad_schedule.py``): WaveGrad's grid, each step's beta among
  m * 10^linspace(-6, -1, K) and the respaced schedule's, by coordinate search or exhaustively;
- ``compass``: the continuous-time issue's compass search over the K noise levels
  (``schedule_search.search_levels``) on the same criterion, through ``betas_from_levels``.

The generic command's sample criteria (``criteria.py``) score unconditional samples against
held-out data; a vocoder's output is paired with its input clip, so its criterion is built here
from the run instead (``--criterion log_mel``).
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
from difflab.schedule_search import search_levels
from difflab.training import checkpoint as ckpt
from difflab.vocoder import respaced_betas
from difflab.wavegrad_schedule import (
    MANTISSAS,
    Criterion,
    betas_from_levels,
    candidate_betas,
    levels_from_betas,
    search_schedule,
)

#: The compass search's range of noise levels sigma_bar: WaveGrad's grid spans betas 1e-6
#: (sigma_bar 1e-3) to 0.5 at the top, whose level the respaced training schedule (about 12)
#: and any search step stay well inside.
COMPASS_BOUNDS = (1e-4, 1e3)


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


def _mantissa_search(criterion, respaced, *, mantissas, passes, exhaustive, report):
    """WaveGrad's grid: each step's choices are the paper's betas and the respaced beta, from
    which the search starts (so it can only improve on it)."""
    candidates = [
        sorted({*grid, r}) for grid, r in zip(candidate_betas(len(respaced), mantissas), respaced)
    ]
    start = [c.index(r) for c, r in zip(candidates, respaced)]
    result = search_schedule(criterion, candidates, start=start, passes=passes,
                             exhaustive=exhaustive, progress=report)  # fmt: skip
    return result.betas, result.score, result.start_score, len(result.scored)


def _compass_search(criterion, respaced, *, budget, report):
    """The compass search over log sigma_bar of the K levels, from the respaced schedule."""

    def objective(levels: list[float], knob: float | None) -> float:
        betas = betas_from_levels(levels)
        score = criterion(betas)
        report(betas, score)
        return score

    result = search_levels(objective, levels_from_betas(respaced), bounds=COMPASS_BOUNDS,
                           budget=budget)  # fmt: skip
    return betas_from_levels(result.levels), result.value, result.start_value, result.evaluations


def tune(
    run: Run, steps: int, *, clips: int = 4, search: str = "mantissas", mantissas=MANTISSAS,
    passes: int = 2, exhaustive: bool = False, budget: int = 150, seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Search a ``steps``-iteration schedule and store it in the run (see the module doc)."""
    criterion = log_mel_criterion(run, clips=clips, seed=seed)

    def report(betas: list[float], score: float) -> None:
        if verbose:
            print(f"  {score:8.3f} dB  {' '.join(f'{b:.1e}' for b in betas)}", file=sys.stderr)

    candidate_betas(steps)  # a one-line error below 2 steps
    respaced = respaced_betas(run.schedule, steps, run.config.sample.spacing)
    if search == "compass":
        found = _compass_search(criterion, respaced, budget=budget, report=report)
    else:
        found = _mantissa_search(criterion, respaced, mantissas=mantissas, passes=passes,
                                 exhaustive=exhaustive, report=report)  # fmt: skip
    betas, score, start_score, evaluations = found
    entry = {
        "betas": betas,
        "log_mel_db": score,
        "respaced_log_mel_db": start_score,
        "search": search,
        "evaluations": evaluations,
        "validation_clips": clips,
        "sampler": run.config.sample.sampler,
        "step": run.step,
    }
    if search == "mantissas":
        entry["mantissas"] = list(mantissas)
    schedules = stored_schedules(run.run_dir)
    schedules[str(steps)] = entry
    ckpt.atomic_write_json(run.run_dir / SCHEDULES_FILE, {"schedules": schedules})
    return entry


#: Flags of the generic search that an audio run does not read, and the audio-only ones.
_GENERIC_FLAGS = {"n": "--n", "check_seeds": "--check-seeds", "data": "--data"}
_AUDIO_FLAGS = {"search": "--search", "clips": "--clips", "mantissas": "--mantissas",
                "passes": "--passes", "exhaustive": "--exhaustive"}  # fmt: skip


def _given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    return [flag for key, flag in flags.items() if getattr(args, key, None) not in (None, False)]


def refuse_audio_flags(args: argparse.Namespace, run: Run) -> None:
    """A one-line error for the audio-only flags on a run that is not an audio run."""
    given = _given(args, _AUDIO_FLAGS)
    if given:
        raise ValueError(f"{', '.join(given)}: audio runs only ({run.run_dir} is not one)")


def _audio_options(args: argparse.Namespace) -> dict[str, Any]:
    """The audio search's options from the shared parser, with one-line errors for flags that
    do not apply."""
    ignored = _given(args, _GENERIC_FLAGS)
    if ignored:
        raise ValueError(f"{', '.join(ignored)} do not apply to an audio run; use --clips")
    if args.criterion not in (None, "log_mel"):
        raise ValueError(f"--criterion {args.criterion!r}: audio runs are tuned by log_mel")
    search = args.search or "mantissas"
    grid_only = _given(args, {"mantissas": "--mantissas", "passes": "--passes",
                              "exhaustive": "--exhaustive"})  # fmt: skip
    if search == "compass" and grid_only:
        raise ValueError(f"{', '.join(grid_only)}: for --search mantissas (compass uses --budget)")
    if search == "mantissas" and args.budget is not None:
        raise ValueError("--budget: for --search compass (mantissas uses --passes, --exhaustive)")
    clips, passes = args.clips or 4, args.passes or 2
    budget = 150 if args.budget is None else args.budget
    if clips < 1 or passes < 1 or budget < 1:
        raise ValueError("--clips, --passes and --budget must be >= 1")
    try:
        mantissas = tuple(float(m) for m in (args.mantissas or "1,2,5").split(","))
    except ValueError:
        raise ValueError(f"--mantissas {args.mantissas!r}: give numbers, e.g. 1,2,5") from None
    return {"clips": clips, "search": search, "mantissas": mantissas, "passes": passes,
            "exhaustive": args.exhaustive, "budget": budget}  # fmt: skip


def command(args: argparse.Namespace, run: Run | None = None) -> int:
    """``difflab tune-schedule RUN_DIR --steps K`` on an audio run."""
    options = _audio_options(args)
    run = run if run is not None else load_run(args.run_dir)
    require_audio_run(run, "tune-schedule")
    if args.sampler is not None:
        run.config = run.config.replace("sample", sampler=args.sampler)
    entry = tune(run, args.steps, **options, seed=args.seed, verbose=not args.quiet)
    print(
        f"{args.steps}-step schedule ({options['search']} search): {entry['log_mel_db']:.3f} dB "
        f"log-mel distance on {options['clips']} validation clips (respaced training schedule: "
        f"{entry['respaced_log_mel_db']:.3f} dB; {entry['evaluations']} schedules scored)"
    )
    print("betas: " + ", ".join(f"{b:.3g}" for b in entry["betas"]))
    print(f"stored in {run.run_dir / SCHEDULES_FILE}")
    return 0
