"""A run's ``manifest.json``: what made the run (library and torch versions, the manifest format)
and its data (name, the shape of one example, the normalisation, the number of levels of data on
a grid, a SHA-256 of the training values; for labelled data, an optional ``classes`` entry with
the class names and training counts). Loading a run reads the data description from here, so
it is checked field by field: a damaged or hand-edited manifest is a one-line error, never a
traceback deep inside a command.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

import difflab
from difflab.atomic import atomic_write_json
from difflab.training.checkpoint import CheckpointError

#: The manifest format this version writes and reads.
MANIFEST_FORMAT = 1
MANIFEST = "manifest.json"


def write_manifest(run_dir: Path, data_info: dict[str, Any]) -> None:
    """Write ``manifest.json``: what made this run and the data's shape and normalisation."""
    atomic_write_json(
        Path(run_dir) / MANIFEST,
        {
            "library": "difflab",
            "version": difflab.__version__,
            "torch": torch.__version__,
            "format": MANIFEST_FORMAT,
            "data": data_info,
        },
    )


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest, checked (:func:`check_manifest`), or a one-line CheckpointError."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{run_dir} has no manifest.json: is it a difflab run directory?"
        ) from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is unreadable ({err}); restore it or train again") from None
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: Any, path: Path) -> None:
    """A CheckpointError naming the first field of ``manifest`` that this version cannot use."""

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path} {what}; restore the manifest the run was trained with")

    if not isinstance(manifest, dict):
        raise bad(f"is not a JSON object (it holds a {type(manifest).__name__})")
    fmt = manifest.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise bad(f"has no valid format number (format = {fmt!r})")
    if fmt != MANIFEST_FORMAT:
        fix = "upgrade difflab" if fmt > MANIFEST_FORMAT else "restore the manifest"
        raise CheckpointError(
            f"{path} has manifest format {fmt}, but difflab {difflab.__version__} reads format "
            f"{MANIFEST_FORMAT} only; {fix}"
        )
    data = manifest.get("data")
    if not isinstance(data, dict):
        raise bad("has no 'data' object (the data's name, shape and normalisation)")
    problem = data_info_problem(data)
    if problem:
        raise bad(f"has a bad 'data' entry: {problem}")


def _numbers(value: Any, size: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == size
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    )


def data_info_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's ``data`` entry, or None."""
    if not isinstance(data.get("name"), str):
        return "'name' must be a string"
    shape = data.get("shape")
    if not (
        isinstance(shape, list)
        and 1 <= len(shape) <= 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        return f"'shape' must be a list of 1 to 3 positive integers, got {shape!r}"
    size = math.prod(shape)
    for key in ("mean", "std"):
        value = data.get(key)
        if value is not None and not _numbers(value, size):
            return f"{key!r} must be null or a list of {size} finite numbers"
    if data.get("std") is not None and min(data["std"]) <= 0:
        return "'std' must be positive"
    levels = data.get("levels")
    if levels is not None and not (
        isinstance(levels, int) and not isinstance(levels, bool) and levels >= 2
    ):
        return f"'levels' must be null or an integer >= 2, got {levels!r}"
    return classes_problem(data.get("classes"))


def classes_problem(classes: Any) -> str | None:
    """What is wrong with the optional ``classes`` entry of labelled data (its ``names`` and
    training ``counts``, one per class), or None; runs without labels have none."""
    if classes is None:
        return None
    if not isinstance(classes, dict):
        return "'classes' must be an object with 'names' and 'counts'"
    names, counts = classes.get("names"), classes.get("counts")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return "'classes.names' must be a non-empty list of strings"
    if not (
        isinstance(counts, list)
        and len(counts) == len(names)
        and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
    ):
        return f"'classes.counts' must be a list of {len(names)} integers >= 0 (one per name)"
    return None
