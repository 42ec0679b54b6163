"""What a command writes: checked before the work, staged while it runs, replaced together.

Every command that writes files (sample, evaluate, plot, doctor, bench-samplers, demo) first
checks that each output can be written (:func:`check_writable`: the folder exists and takes a
file, the path is not a folder, an existing file is replaced only with ``--overwrite`` where
the command offers it), so an unwritable path fails in one line before minutes of sampling.
While the command runs, each file goes to a temporary name beside its final one
(:meth:`Outputs.stage`); when everything is written the files are fsynced and renamed into
place one after another with Ctrl-C held back (:meth:`Outputs.commit`). An error or Ctrl-C
before that removes the temporary files: the previous outputs stay as they were, all of them.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from difflab.atomic import default_mode, fsync_dir, fsync_path, remove_stale_temps, temp_path


class Outputs:
    """A command's output files, staged under temporary names and committed together.

    ``with Outputs() as out: write(out.stage(path))`` commits on a normal exit and discards on
    an exception. :attr:`written` lists the final paths after the commit.
    """

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}
        self.written: list[Path] = []

    def stage(self, final: str | Path) -> Path:
        """The temporary path to write ``final``'s content to (its folder is created)."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final.parent)
        if final in self._staged:
            self._staged[final].unlink(missing_ok=True)
        self._staged[final] = temp_path(final)
        return self._staged[final]

    def commit(self) -> list[Path]:
        """fsync every staged file, then rename them all into place (SIGINT/SIGTERM wait until
        the last rename); returns the final paths."""
        for final, tmp in self._staged.items():
            if not tmp.is_file():
                raise FileNotFoundError(f"nothing was written to {final} (internal error)")
            mode = final.stat().st_mode & 0o777 if final.is_file() else default_mode()
            os.chmod(tmp, mode)
            fsync_path(tmp)
        with _signals_held():
            for final, tmp in self._staged.items():
                os.replace(tmp, final)
        for folder in {final.parent for final in self._staged}:
            fsync_dir(folder)
        self.written = list(self._staged)
        self._staged = {}
        return self.written

    def discard(self) -> None:
        """Remove every staged file; nothing already in place changes."""
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged = {}

    def __enter__(self) -> Outputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block take effect when it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in sigs}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        if caught:
            signal.raise_signal(caught[0])


def check_writable(path: str | Path, *, flag: str = "--out", overwrite: bool | None = None) -> Path:
    """Check, before any work, that a file can be written at ``path``: its folder exists and
    takes new files, and ``path`` is not a folder. ``overwrite``: None replaces an existing
    file; False refuses one (the command offers ``--overwrite``). Returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file path inside it")
    if not path.parent.exists():
        raise ValueError(f"{flag} {path}: directory {path.parent} does not exist; create it first")
    if not path.parent.is_dir():
        raise ValueError(f"{flag} {path}: {path.parent} is a file, not a directory")
    if overwrite is False and path.exists():
        raise ValueError(f"{flag} {path} already exists; pass --overwrite to replace it")
    check_folder_writable(path.parent, flag=f"{flag} {path}")
    return path


def check_folder_writable(folder: str | Path, *, flag: str) -> None:
    """Create and remove a file in ``folder`` (creating the folder if missing): a one-line
    error if that fails (read-only, no permission, a file in the way, disk full)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temp_path(folder / "probe")
        with open(probe, "xb") as handle:
            handle.write(b"0")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"{flag}: cannot write in {folder} ({err.strerror or err}); choose a writable location"
        ) from None


_OS_FIXES = {
    errno.ENOSPC: "free some disk space or write elsewhere",
    errno.EDQUOT: "free some of your disk quota or write elsewhere",
    errno.EROFS: "the file system is read-only: choose a writable location",
    errno.EACCES: "no permission: choose a writable location",
    errno.EPERM: "no permission: choose a writable location",
    errno.EISDIR: "that is a directory: give a file path",
    errno.ENOTDIR: "a part of that path is a file, not a directory",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter path",
}


def describe_os_error(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, what to do."""
    what = err.strerror or type(err).__name__
    where = f": {err.filename}" if err.filename else ""
    if err.filename2:
        where += f" -> {err.filename2}"
    fix = _OS_FIXES.get(err.errno or -1, "check the path and the disk")
    return f"{what}{where}; {fix} (files already in place were not changed)"
