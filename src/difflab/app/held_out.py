"""The held-out data of ``difflab evaluate`` (and of benchmarks/bench_likelihood.py): a fresh
toy draw with its own seed, or the user's file, validated against the run (dimension, labels,
memory); ``app/evaluate.py`` scores them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from difflab.app.datasets import is_toy
from difflab.app.resources import require_memory, sampling_bytes
from difflab.app.run import Run
from difflab.data.files import load_labelled_vectors, load_vectors
from difflab.data.toy import sample_toy, sample_toy_labelled, toy_num_classes

#: Seed of the held-out toy draw: neither a training seed nor the sample metrics' references.
HELD_OUT_SEED = 2_000_003


def held_out_data(run: Run, *, data_path: str | Path | None, n: int | None) -> np.ndarray:
    """The held-out points in the user's units, (N, *shape) float32, validated."""
    return held_out_labelled_data(run, data_path=data_path, n=n)[0]


def held_out_labelled_data(
    run: Run, *, data_path: str | Path | None, n: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The held-out points of :func:`held_out_data` and, for a class-conditional run, their
    labels (N,) (None for an unconditional run or data without labels)."""
    labels = None
    if data_path is not None:
        x, labels = (
            load_labelled_vectors(data_path) if run.classes else (load_vectors(data_path), None)
        )
        x, labels = (
            (x[:n], None if labels is None else labels[:n]) if n is not None else (x, labels)
        )
    elif is_toy(run.data.name):
        size = n or run.config.evaluate.n
        check_evaluation_fits(run, size)
        if toy_num_classes(run.data.name) is not None:  # the same points as sample_toy
            x, labels = sample_toy_labelled(run.data.name, size, seed=HELD_OUT_SEED)
        else:
            x = sample_toy(run.data.name, size, seed=HELD_OUT_SEED)
    else:
        raise ValueError(
            f"run {run.run_dir} was trained on a file; pass held-out data with --data FILE"
        )
    shape = run.data.shape
    if x[0].size != math.prod(shape):
        raise ValueError(
            f"held-out data have {x[0].size} values per example but the run's model takes "
            f"{math.prod(shape)} (shape {shape}); pass data of the training data's dimension"
        )
    return x.reshape(x.shape[0], *shape), (labels if run.classes is not None else None)


def check_labels_fit(run: Run, labels: np.ndarray | None) -> None:
    """Held-out labels must be classes of the run; without labels a conditional run needs its
    unconditional model (label dropout > 0)."""
    classes = run.classes
    if classes is None:
        return
    if labels is None:
        if run.config.train.label_dropout == 0:
            raise ValueError(
                f"{run.run_dir} is class-conditional without an unconditional model "
                "(train.label_dropout = 0); pass held-out data with labels"
            )
        return
    if labels.max() >= classes.num_classes:
        raise ValueError(
            f"held-out labels go up to {labels.max()} but the run has classes "
            f"0..{classes.num_classes - 1}; pass data labelled like the training data"
        )


def check_evaluation_fits(run: Run, n: int) -> None:
    """Refuse, before any work, n held-out points whose bound terms (n x (T + 1) float64, and
    their copy) and a batch of the network's work cannot fit in memory."""
    batch = min(n, run.config.evaluate.batch_size)
    needed = n * (run.schedule.T + 1) * 8 * 2 + sampling_bytes(run.config, run.data.shape, batch)
    require_memory(
        needed,
        what=f"evaluating {n} held-out points on {run.schedule.T} bound terms",
        fix="use a smaller --n",
        device=run.device,
    )
