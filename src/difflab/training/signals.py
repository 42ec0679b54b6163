"""Graceful stops: SIGINT and SIGTERM set a flag the trainer checks between steps, so the
checkpoint it then writes lies exactly on a step boundary. A second SIGINT stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set by a signal handler; ``name`` is the signal's name (``None`` until one arrives)."""

    def __init__(self) -> None:
        self.name: str | None = None

    def __bool__(self) -> bool:
        return self.name is not None


@contextmanager
def stop_on_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Inside the block SIGINT/SIGTERM set ``flag`` instead of killing the process; the old
    handlers come back afterwards. Only the main thread can install handlers: elsewhere the
    block runs with the handlers unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (checkpoints are atomic)
        flag.name = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
