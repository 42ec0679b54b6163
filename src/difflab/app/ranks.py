"""``difflab sample`` and ``difflab evaluate`` on several processes (``torchrun``).

Every rank loads the run on its device (GPU LOCAL_RANK, or the CPU with gloo) and runs the
whole command; the network's work is split among the ranks row by row and gathered after every
call (``training/distributed.RowSplit``), so the samples and numbers are those of one process
with the same seed. Only rank 0 writes files and prints. An error on one rank ends every rank
with its message (``training/distributed.fail_together``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from difflab.app.run import Run, load_run
from difflab.training.distributed import (
    RowSplit,
    fail_together,
    init_distributed,
    shutdown_distributed,
)


def resolve_device(name: str) -> str:
    """``name`` checked ('auto': a GPU if there is one), or a one-line error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device {name!r}: use cpu, cuda, cuda:N or auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} but CUDA is not available; use --device cpu")
    return name


def load_split_run(run_dir: str | Path, device: str = "cpu") -> tuple[Run, bool]:
    """The run on this process's device, its network split across the ranks under torchrun;
    and whether this process is rank 0 (the one that writes and prints)."""
    ctx, device = init_distributed(resolve_device(device))
    run = load_run(run_dir, device=device)
    if ctx.enabled:
        run.split = RowSplit(ctx)
    return run, ctx.is_main


def on_every_rank(command: Callable[[], int]) -> int:
    """Run a whole command on this rank: without torchrun just ``command()``; under torchrun a
    failure on any rank ends every rank, and the process group is left at the end."""
    try:
        return fail_together(
            command,
            user_errors=(ValueError, FileNotFoundError),  # those cli.main reports in one line
            debug=bool(os.environ.get("DIFFLAB_DEBUG")),
        )
    finally:
        shutdown_distributed()
