"""Which classes a class-conditional run samples: ``--class`` and ``--guidance`` checked against
the run, and the label of every sample.

``--class`` is a class (its index 0..K-1, or its name, e.g. a class folder's), a comma-separated
list of classes (an equal share of each), ``all`` (an equal share of every class) or ``data``
(the default: the training data's class proportions, so that at guidance 1 the samples follow
the data's distribution). Samples come in blocks by class, in the order given.
"""

from __future__ import annotations

import math

import numpy as np

from difflab.data.dataset import Classes

ALL, DATA = "all", "data"


def parse_classes(spec: str, classes: Classes) -> list[int] | str:
    """``spec`` as a list of class indices, or ``"all"`` / ``"data"``; a one-line error names
    the valid classes."""
    text = spec.strip()
    if text.lower() in (ALL, DATA):
        return text.lower()
    items = [item.strip() for item in text.split(",")]
    if not text or any(not item for item in items):
        raise ValueError(f"--class {spec!r}: give a class, a comma-separated list, all or data")
    chosen = [_class_index(item, classes) for item in items]
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"--class {spec!r} names a class twice; list each class once")
    return chosen


def _class_index(item: str, classes: Classes) -> int:
    k = classes.num_classes
    if item.lstrip("-").isdigit():
        index = int(item)
        if 0 <= index < k:
            return index
        raise ValueError(
            f"--class {item}: this run's classes are 0..{k - 1}{_named(classes)}; pick one of them"
        )
    if item in classes.names:
        return classes.names.index(item)
    raise ValueError(
        f"--class {item!r} is not a class of this run (classes 0..{k - 1}{_named(classes)})"
    )


def _named(classes: Classes) -> str:
    if list(classes.names) == [str(c) for c in range(classes.num_classes)]:
        return ""
    shown = ", ".join(f"{i} = {n!r}" for i, n in enumerate(classes.names[:10]))
    return f": {shown}" + (", ..." if classes.num_classes > 10 else "")


def allocate(n: int, weights: np.ndarray) -> np.ndarray:
    """Counts (K,) summing to n, proportional to ``weights`` (largest remainders, ties to the
    lower index)."""
    share = n * np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def sample_labels(spec: list[int] | str, classes: Classes, n: int) -> np.ndarray:
    """The label of each of ``n`` samples (n,) int64, in blocks by class."""
    if spec == DATA:
        chosen = list(range(classes.num_classes))
        weights = np.asarray(classes.counts, dtype=np.float64)
        if weights.sum() == 0:
            weights = np.ones(len(chosen))
    else:
        chosen = list(range(classes.num_classes)) if spec == ALL else list(spec)
        weights = np.ones(len(chosen))
    counts = allocate(n, weights)
    return np.repeat(np.asarray(chosen, dtype=np.int64), counts)


def check_guidance(scale: float) -> float:
    """A guidance scale given on the command line: finite and >= 0."""
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(
            f"--guidance {scale}: the guidance scale must be a finite number >= 0 "
            "(1 conditional sampling, 0 unconditional, > 1 stronger classes)"
        )
    return float(scale)


def not_conditional(flag: str) -> ValueError:
    """The error for a class flag given for a run that is not class-conditional."""
    return ValueError(
        f"{flag} needs a class-conditional run, and this one was trained with "
        "model.class_conditional = false; train one on labelled data with "
        "--set model.class_conditional=true"
    )
