"""Files that are either complete or absent: write to a temporary name beside the target, fsync,
then rename over it (``os.replace`` is atomic within a directory on POSIX file systems).

Temporary names are ``.difflab-tmp-<pid>-<random>-<name>``: a hidden file that keeps the
target's suffix (so writers that pick a format by extension, like matplotlib, still work) and
names the process writing it, so a later command can tell a leftover of a killed process
(:func:`remove_stale_temps`) from a file another live process is still writing. Files are
created with the mode an ordinary ``open`` would give them (0666 minus the umask), not
``mkstemp``'s 0600.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TEMP_PREFIX = ".difflab-tmp-"


def temp_path(final: str | Path) -> Path:
    """A fresh temporary name beside ``final``, owned by this process."""
    final = Path(final)
    return final.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{final.name}")


def default_mode(*, directory: bool = False) -> int:
    """The permission bits ``open``/``mkdir`` would give a new file or directory here."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory (a directory: so a rename inside it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, rename it over ``path``.

    An existing file keeps its permission bits; a new one gets :func:`default_mode`. On any
    error (or KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.is_file() else default_mode()
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def temp_owner(name: str) -> int | None:
    """The PID in a temporary name made by :func:`temp_path`, or None for other names."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid = name[len(TEMP_PREFIX) :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether a process with this PID exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete the temporary files and folders in ``directory`` whose writing process is gone
    (left by a kill -9, a power cut or a double Ctrl-C); returns what was removed. Those of
    live processes, this one included, are left alone."""
    import shutil

    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        pid = temp_owner(entry.name)
        if pid is None or pid == os.getpid() or process_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
