"""One writer per run directory: training holds an exclusive lock on ``RUN_DIR/.lock``.

The lock is ``flock(2)`` on an open file, which the kernel releases when the process ends in any
way (exit, exception, kill -9, power cut: the next boot has no locks), so a killed trainer
never leaves a run stuck and there is no PID file to go stale. The file itself is never
deleted (deleting a lock file races with a process that has just opened it); it holds one line
naming the holder, shown to whoever is refused. Under torchrun only rank 0 takes it.

Commands that only read a run (sample, evaluate, plot, doctor, bench-samplers) do not take the
lock: they read the newest complete checkpoint, which training renames into place atomically,
and their own outputs are replaced atomically (``app/outputs.py``).
"""

from __future__ import annotations

import errno
import os
import socket
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

from difflab.training.checkpoint import CheckpointError

LOCK_FILE = ".lock"


class RunLockedError(CheckpointError):
    """Another live process is writing this run directory (user-facing, one line)."""


class RunLock:
    """The exclusive lock of one run directory, held from :meth:`acquire` to :meth:`release`
    (or the end of the process). Usable as a context manager."""

    def __init__(self, run_dir: str | Path, *, what: str = "train") -> None:
        self.run_dir = Path(run_dir)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` naming the holder; never waits."""
        if self._fd is not None or fcntl is None:
            return self
        path = self.run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunLockedError(
                    f"{self.run_dir} is in use by another difflab process ({holder}); two "
                    "writers would mix their checkpoints and logs: wait for it to finish, stop "
                    "it, or choose another --out"
                ) from None
            warnings.warn(  # e.g. a file system without locks: go on, unprotected
                f"cannot lock {path} ({err.strerror}); make sure no other process trains "
                "in this run directory",
                stacklevel=2,
            )
            return self
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        holder = f"pid {os.getpid()} on {socket.gethostname()}: difflab {self.what} since {stamp}"
        os.write(fd, (holder + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 300).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "it is starting up"
