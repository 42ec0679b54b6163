"""Run directories and checkpoints.

A run directory holds::

    config.json                  the full resolved config (loading a run needs no flags)
    manifest.json                library and torch versions, data shape and normalisation
    metrics.csv | metrics.jsonl  the training log
    checkpoints/step_00001000/   one directory per checkpoint, written atomically:
        model.safetensors        the live weights
        ema.safetensors          the EMA weights, as a loadable model state dict
        optimizer.pt             optimiser state (loaded with weights_only=True)
        state.pt                 step, RNG states, EMA counters (weights_only=True)
        meta.json                step, the run's config, each file's SHA-256; written last

A checkpoint directory is first written under a temporary name, every file fsynced, then
renamed: a crash leaves either the old set of checkpoints or the new one, never half a file.
``meta.json`` records a SHA-256 per file, so a checkpoint truncated or damaged afterwards is
detected on load (:func:`verify_checkpoint`) and resuming falls back to the previous good one
(:func:`latest_good_checkpoint`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

import difflab
from difflab.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    default_mode,
    fsync_dir,
    remove_stale_temps,
    temp_path,
)

__all__ = ["atomic_write_bytes", "atomic_write_json", "fsync_dir"]

CHECKPOINTS = "checkpoints"
_PREFIX = "step_"
_NAME = re.compile(r"step_(\d+)")
#: The manifest format this version writes and reads.
MANIFEST_FORMAT = 1


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be used as it is (user-facing, one line)."""


def torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories (``step_<number>`` with meta.json), oldest first. Other
    folders in ``checkpoints/`` are skipped with a warning (temporary ones silently)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.name.startswith("."):
            continue  # a checkpoint being written, or a leftover (remove_checkpoint_temps)
        match = _NAME.fullmatch(p.name)
        if match is None:
            warnings.warn(
                f"ignoring {p}: not a checkpoint (those are named step_<number>)", stacklevel=2
            )
        elif (p / "meta.json").is_file():
            found.append((int(match.group(1)), p))
    return [p for _, p in sorted(found)]


def remove_checkpoint_temps(run_dir: Path) -> list[Path]:
    """Delete half-written checkpoints (``checkpoints/.*``: a failed write, kill -9, a double
    Ctrl-C) and the run directory's stale temporary files. Call it only while holding the
    run's lock (``training/run_lock.py``): then no other writer is mid-write."""
    root = Path(run_dir) / CHECKPOINTS
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith("."):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
    return removed + remove_stale_temps(run_dir)


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    model: nn.Module,
    ema_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    keep: int = 3,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep``.

    ``config`` (the run's config as a dict) is recorded in meta.json so a checkpoint says what
    it was trained with. A failed or interrupted write removes its temporary folder.
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{_PREFIX}{step:08d}"
    files = {
        "model.safetensors": safetensors.torch.save(
            _contiguous(model.state_dict()), {"step": str(step)}
        ),
        "ema.safetensors": safetensors.torch.save(_contiguous(ema_state), {"step": str(step)}),
        "optimizer.pt": torch_bytes(optimizer_state),
        "state.pt": torch_bytes(state),
    }
    meta = {
        "step": step,
        "version": difflab.__version__,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        "config": config,
    }
    files["meta.json"] = (json.dumps(meta) + "\n").encode()
    tmp = temp_path(final)
    try:
        tmp.mkdir(mode=default_mode(directory=True))
        for name, data in files.items():  # meta.json last: its presence marks completeness
            with open(tmp / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning corruption into a CheckpointError."""
    try:
        return safetensors.torch.load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint file {path} is corrupt ({err})") from None


def load_torch(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with a CheckpointError for a bad file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing") from None
    except Exception as err:
        raise CheckpointError(f"checkpoint file {path} is corrupt ({type(err).__name__})") from None


def load_model_weights(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``model``, explaining which keys or shapes differ if it does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shapes differ (" + "; ".join(shapes[:3]) + ")")
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        raise CheckpointError(
            f"{source} was saved from another model than config.json describes: "
            + ", ".join(parts)
            + "; use the config.json saved with these weights"
        )
    model.load_state_dict(state)


@dataclass
class TrainingState:
    """Everything a checkpoint holds, loaded and verified."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]
    config: dict[str, Any] | None


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, or a CheckpointError."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} has no meta.json (incomplete)") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}/meta.json is corrupt ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise CheckpointError(f"checkpoint {path}/meta.json is corrupt (no step)")
    return meta


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file of a checkpoint against the SHA-256 in its meta.json; returns the meta.

    Raises CheckpointError naming the first missing, truncated or altered file.
    """
    path = Path(path)
    meta = read_meta(path)
    if not isinstance(meta.get("sha256"), dict) or not meta["sha256"]:
        warnings.warn(
            f"checkpoint {path}/meta.json lists no SHA-256 checksums: its files cannot be "
            "verified (written by hand or by another tool?)",
            stacklevel=2,
        )
    for name, digest in (meta.get("sha256") or {}).items():
        try:
            data = (path / name).read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file {path / name} is missing") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(
                f"checkpoint file {path / name} is corrupt (its SHA-256 does not match "
                "meta.json: truncated or altered after it was written)"
            )
    return meta


def load_training_state(path: Path) -> TrainingState:
    """Verify and load a whole checkpoint (weights via safetensors, the rest weights_only)."""
    path = Path(path)
    meta = verify_checkpoint(path)
    state = load_torch(path / "state.pt")
    if not isinstance(state, dict) or state.get("step") != meta["step"]:
        raise CheckpointError(f"checkpoint file {path / 'state.pt'} does not match meta.json")
    return TrainingState(
        path=path,
        step=meta["step"],
        model=load_weights(path / "model.safetensors"),
        ema=load_weights(path / "ema.safetensors"),
        optimizer=load_torch(path / "optimizer.pt"),
        state=state,
        config=meta.get("config"),
    )


def latest_good_checkpoint(run_dir: Path) -> TrainingState:
    """The newest checkpoint that loads cleanly; a corrupt newer one is skipped with a warning."""
    found = checkpoint_dirs(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} has no complete checkpoint to resume from")
    errors = []
    for path in reversed(found):
        try:
            loaded = load_training_state(path)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for message in errors:
            warnings.warn(f"{message}; using the previous checkpoint {path.name}", stacklevel=2)
        return loaded
    older = f" (and {len(errors) - 1} older ones are unusable too)" if len(errors) > 1 else ""
    raise CheckpointError(
        f"no usable checkpoint in {run_dir}: {errors[0]}{older}; train again with a new --out"
    )


def nonfinite_weights(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Tensor name -> number of NaN/inf values, for the floating-point tensors that have any."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items() if v.is_floating_point()}
    return {k: n for k, n in bad.items() if n}


def check_finite_weights(state: dict[str, torch.Tensor], source: Path) -> None:
    """A CheckpointError if any weight in ``state`` (read from ``source``) is NaN or inf."""
    bad = nonfinite_weights(state)
    if bad:
        total = sum(bad.values())
        raise CheckpointError(
            f"{source} holds {total} NaN/inf weights (in {', '.join(list(bad)[:3])}): a model "
            "that diverged cannot be sampled or evaluated; resume from an earlier checkpoint "
            "with a lower train.lr (see `difflab doctor`)"
        )


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``section.key: saved -> current`` for every config value that differs."""
    diffs = []
    for section in sorted(set(saved) | set(current)):
        a, b = saved.get(section) or {}, current.get(section) or {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs
