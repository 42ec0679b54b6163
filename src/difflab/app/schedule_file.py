"""A run's tuned schedule (``RUN_DIR/tuned_schedule.json``, written by ``difflab tune-schedule``)
and the checks that it belongs to the run it is used with.

The file records the sampler, the number of steps, the process times of the grid and the noise
knob it was tuned for, with the run's fingerprint (a SHA-256 of its data, schedule, model and
loss config and of its training data) and its formulation (``loss.name`` and the noise
process) and the SHA-256 of the weights it was tuned on. ``difflab sample RUN --schedule tuned``
(or ``--schedule FILE``) samples with it; a file from another run or formulation is a one-line
error (another run: another fingerprint, or other weights at the same step), a file tuned at
another checkpoint of the same run (resumed since) a warning.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from difflab.app.config import Config
from difflab.app.registry import SAMPLERS

SCHEDULE_FILE = "tuned_schedule.json"
FORMAT = 1


def fingerprint(config: Config, data_sha256: str | None) -> str:
    """What identifies a trained model: its data, schedule, model and loss sections and the
    training data's hash (16 hex digits of a SHA-256)."""
    sections = {k: v for k, v in config.to_dict().items() if k in ("data", "schedule", "model")}
    sections["loss"] = config.to_dict()["loss"]
    text = json.dumps({"config": sections, "data": data_sha256}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TunedSchedule:
    """A schedule as a sampler uses it: ``sampler``, ``steps``, process ``times`` (descending)
    and the sampler's ``noise`` settings (sample.* keys, e.g. {"eta": 0.3})."""

    sampler: str
    steps: int
    times: list[float]
    noise: dict[str, float]


def schedule_path(run_dir: Path, value: str) -> Path:
    """The file ``sample.schedule`` names: "tuned" is the run's own, else a path."""
    return run_dir / SCHEDULE_FILE if value == "tuned" else Path(value)


def _fail(path: Path, problem: str) -> ValueError:
    return ValueError(f"schedule file {str(path)!r} {problem}")


def read_schedule(
    path: Path, *, config: Config, run_fingerprint: str, process: str, step: int, weights: str
) -> TunedSchedule:
    """The schedule in ``path``, checked against the run (see the module docstring)."""
    if not path.is_file():
        fix = (
            "run `difflab tune-schedule RUN --steps K` first" if path.name == SCHEDULE_FILE else ""
        )
        raise _fail(path, f"does not exist{'; ' + fix if fix else ''}")
    try:
        raw = json.loads(path.read_text())
        run, sampler, times = raw["run"], raw["sampler"], [float(t) for t in raw["times"]]
        steps, noise = int(raw["steps"]), {k: float(v) for k, v in raw.get("noise", {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _fail(path, f"is not a tuned schedule ({type(err).__name__}: {err})") from None
    if raw.get("format") != FORMAT:
        raise _fail(path, f"has format {raw.get('format')!r}; this difflab reads {FORMAT}")
    if run.get("loss") != config.loss.name or run.get("process") != process:
        raise _fail(
            path,
            f"was tuned for another formulation (loss.name = {run.get('loss')!r}, process "
            f"{run.get('process')!r}; this run: {config.loss.name!r}, {process!r}); tune this "
            "run with `difflab tune-schedule RUN --steps K`",
        )
    same_step = run.get("step") == step
    if run.get("fingerprint") != run_fingerprint or (same_step and run.get("weights") != weights):
        raise _fail(
            path,
            "was tuned for another run (its model, config or data differ); tune this run "
            "with `difflab tune-schedule RUN --steps K`",
        )
    _check_times(path, sampler, steps, times)
    if not same_step:
        warnings.warn(
            f"{path} was tuned at step {run.get('step')}, the run is now at step {step}: "
            "re-tune it with `difflab tune-schedule`",
            stacklevel=2,
        )
    return TunedSchedule(sampler, steps, times, noise)


def _check_times(path: Path, sampler: str, steps: int, times: list[float]) -> None:
    ok = (
        sampler in SAMPLERS
        and len(times) == steps + 1
        and all(math.isfinite(t) and t >= 0 for t in times)
        and all(a > b for a, b in itertools.pairwise(times))
    )
    if not ok:
        raise _fail(path, "is damaged (sampler or times); tune the run again")


def write_schedule(path: Path, content: dict[str, Any]) -> None:
    """Write a schedule file atomically (``content`` as ``difflab tune-schedule`` makes it)."""
    from difflab.training.checkpoint import atomic_write_json

    atomic_write_json(path, {"format": FORMAT, **content})
