"""``difflab vocode``: re-synthesise a WAV/FLAC file from its own mel with an audio run; and
``difflab sample`` on audio runs: vocode held-out clips into WAV files.

The inference schedule of K iterations (``--steps``, else ``sample.steps``, else all T) is the
run's tuned K-step schedule if ``difflab tune-schedule`` stored one in
``RUN_DIR/schedules.json``, else the training schedule respaced to K steps
(``vocoder.respaced_betas``). An input at another sample rate is resampled to the run's, with a
note on stderr; the output has the input's length at the run's sample rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from difflab.app.audio_data import audio_clips, clip_features, mel_spectrogram
from difflab.app.registry import LOSSES, SAMPLERS, VOCODER
from difflab.app.run import Run, load_run
from difflab.app.sample import check_sampler_flags, noise_flags
from difflab.data.audio import read_audio, resample, write_wav
from difflab.samplers import ChainResult
from difflab.samplers._chain import Record
from difflab.vocoder import respaced_betas, vocode

SCHEDULES_FILE = "schedules.json"


class InferenceSchedule(NamedTuple):
    """K betas and where they come from ("tuned" or "respaced")."""

    betas: list[float]
    source: str


def require_audio_run(run: Run, command: str) -> None:
    """A one-line error unless ``run`` is an audio (vocoder) run."""
    if LOSSES[run.config.loss.name].trains != VOCODER:
        raise ValueError(
            f"`difflab {command}` needs an audio run; {run.run_dir} was trained on "
            f"{run.config.data.name!r} with loss.name = {run.config.loss.name!r} (train one "
            "with configs/wavegrad.toml)"
        )


def stored_schedules(run_dir: Path) -> dict[str, dict]:
    """The tuned schedules of a run by number of steps ({} if none were stored)."""
    path = run_dir / SCHEDULES_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text())["schedules"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a schedules file ({type(err).__name__}); delete it and run "
            "`difflab tune-schedule` again"
        ) from None


def inference_schedule(run: Run, steps: int | None) -> InferenceSchedule:
    """The K-step schedule of ``run`` (see the module docstring)."""
    k = steps or run.config.sample.steps or run.schedule.T
    tuned = stored_schedules(run.run_dir).get(str(k))
    if tuned is not None:
        return InferenceSchedule([float(b) for b in tuned["betas"]], "tuned")
    return InferenceSchedule(respaced_betas(run.schedule, k, run.config.sample.spacing), "respaced")


def vocode_features(
    run: Run,
    features: torch.Tensor,
    schedule: InferenceSchedule,
    *,
    seed: int | None = 0,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Audio (B, 1, F * hop) from features (B, n_mels, F) with the run's sampler."""
    row = SAMPLERS[run.config.sample.sampler]
    kwargs = {k: getattr(run.config.sample, k) for k in row.keys}
    return vocode(
        run.model,
        features.to(run.device),
        schedule.betas,
        sampler=row.fn,
        clip=run.config.sample.clip_x0,
        generator=run.generator(seed) if seed is not None else None,
        record=record,
        progress=progress,
        **kwargs,
    )


def vocode_audio(
    run: Run, audio: np.ndarray, schedule: InferenceSchedule, *, seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """(vocoded audio of ``audio``'s length, wall seconds) from the clip's own mel."""
    features, n = clip_features(mel_spectrogram(run.config), audio)
    start = time.perf_counter()
    result = vocode_features(run, features[None], schedule, seed=seed, progress=progress)
    wall = time.perf_counter() - start
    return result.x[0, 0, :n].cpu().numpy(), wall


def _note_schedule(schedule: InferenceSchedule, run: Run) -> None:
    k = len(schedule.betas)
    if schedule.source == "respaced" and k < run.schedule.T:
        print(
            f"difflab: note: no tuned {k}-step schedule in {run.run_dir}; using the training "
            f"schedule respaced to {k} steps (tune one: difflab tune-schedule {run.run_dir} "
            f"--steps {k})",
            file=sys.stderr,
        )


def command(args: argparse.Namespace) -> int:
    """``difflab vocode RUN_DIR INPUT --out OUTPUT.wav``."""
    run = load_run(args.run_dir)
    require_audio_run(run, "vocode")
    out = Path(args.out)
    if out.suffix.lower() != ".wav" or not out.parent.is_dir():
        raise ValueError(f"--out {out}: give a .wav file in an existing folder")
    if out.resolve() == Path(args.input).resolve():
        raise ValueError(f"--out {out} is the input file; write the output elsewhere")
    rate = run.config.data.sample_rate
    audio, file_rate = read_audio(args.input)
    if file_rate != rate:
        print(f"difflab: note: {args.input} is at {file_rate} Hz; resampled to the run's "
              f"{rate} Hz (the output is at {rate} Hz)", file=sys.stderr)  # fmt: skip
        audio = resample(audio, file_rate, rate)
    run.override_sampling(sampler=args.sampler, **noise_flags(args))
    check_sampler_flags(run, noise_flags(args))
    schedule = inference_schedule(run, args.steps)
    _note_schedule(schedule, run)
    vocoded, wall = vocode_audio(run, audio, schedule, seed=args.seed, progress=not args.quiet)
    write_wav(out, vocoded, rate)
    seconds = audio.shape[0] / rate
    print(
        f"vocoded {seconds:.2f} s in {wall:.2f} s (real-time factor {wall / seconds:.3f}, "
        f"{len(schedule.betas)} iterations, {schedule.source} schedule) to {out}"
    )
    return 0


def sample_audio(run: Run, args: argparse.Namespace) -> int:
    """``difflab sample`` on an audio run: vocode up to ``--n`` test clips into
    ``--out`` (a folder, default RUN_DIR/samples), one WAV per clip."""
    out = Path(args.out) if args.out else run.run_dir / "samples"
    if out.suffix:
        raise ValueError(f"--out {out}: audio runs write a folder of WAV files; give a folder")
    clips = audio_clips(run.config, "test")[: args.n or run.config.sample.n]
    run.override_sampling(sampler=args.sampler, steps=args.steps, **noise_flags(args))
    check_sampler_flags(run, noise_flags(args))
    schedule = inference_schedule(run, args.steps)
    _note_schedule(schedule, run)
    out.mkdir(parents=True, exist_ok=True)
    rate = run.config.data.sample_rate
    for i, clip in enumerate(clips):
        vocoded, _ = vocode_audio(run, clip.audio, schedule, seed=args.seed + i)
        name = Path(clip.name).stem
        write_wav(out / f"{i:03d}_{name}.wav", vocoded, rate)
    print(f"wrote {len(clips)} vocoded test clips ({len(schedule.betas)} iterations) to {out}")
    return 0
