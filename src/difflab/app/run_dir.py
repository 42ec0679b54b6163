"""Creating and owning run directories (``difflab train``): one writer at a time.

A new run's directory is checked before any work (:func:`check_new_run_dir`: not a file, not a
non-empty folder, its parent writable), then claimed (:func:`claim_new_run_dir`): created (a
default name gets a suffix if another run took it in the same second), locked
(``training/run_lock.py``) and checked empty again under the lock, so two trainers started
with the same ``--out`` cannot both write it. ``--resume`` takes the same lock
(:func:`lock_run_dir`) before reading anything and then removes what an interrupted write left
behind.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from difflab.app.outputs import check_folder_writable
from difflab.training import checkpoint as ckpt
from difflab.training.run_lock import LOCK_FILE, RunLock


def default_run_dir(data_name: str) -> Path:
    """runs/<date>-<time>-<data> (a suffix is added by :func:`claim_new_run_dir` if taken)."""
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{data_name}"


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)


def check_new_run_dir(out: str | Path | None) -> None:
    """A one-line error, before any work, if ``--out`` cannot become a new run directory."""
    if out is None:
        check_folder_writable(Path("runs"), flag="the default run directory runs/")
        return
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ckpt.CheckpointError(f"--out {path} is a file; give the path of a new directory")
    if (path / LOCK_FILE).is_file():
        RunLock(path).acquire().release()  # a run that is training now: say who trains it
    if path.is_dir() and _contents(path):
        raise ckpt.CheckpointError(
            f"{str(path)!r} already exists and is not empty; choose another --out "
            "(nothing was overwritten)"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ckpt.CheckpointError(f"--out {path}: {parent} is a file, not a directory")
    check_folder_writable(path if path.is_dir() else parent, flag=f"--out {path}")


def claim_new_run_dir(out: str | Path | None, data_name: str) -> tuple[Path, RunLock]:
    """Create and lock the new run directory; an error if another writer got there first."""
    if out is None:
        base = default_run_dir(data_name)
        base.parent.mkdir(parents=True, exist_ok=True)
        path, k = base, 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                k += 1
                path = base.with_name(f"{base.name}-{k}")
    else:
        path = Path(out).expanduser()
        path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(path, what="train").acquire()
    found = _contents(path)
    if found:
        lock.release()
        raise ckpt.CheckpointError(
            f"{str(path)!r} was filled by another process meanwhile ({', '.join(found[:3])}); "
            "choose another --out (nothing was overwritten)"
        )
    return path, lock


def lock_run_dir(path: Path, *, what: str = "train --resume") -> RunLock:
    """Lock an existing run for writing, then remove the leftovers of an interrupted write
    (half-written checkpoints, stale temporary files), with a warning naming them."""
    lock = RunLock(path, what=what).acquire()
    removed = ckpt.remove_checkpoint_temps(path)
    if removed:
        names = ", ".join(str(p.relative_to(path)) for p in removed[:3])
        more = f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        warnings.warn(
            f"removed {len(removed)} leftovers of an interrupted write in {path}: {names}{more}",
            stacklevel=2,
        )
    return lock
