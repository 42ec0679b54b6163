"""Class labels of the user's data: checked once, whatever file they came from.

A label is a class index: an integer in 0..K-1, one per example, every class with at least one
example (so ``--class k`` means label k). Labels arrive as a ``labels`` array in an .npz, a
column named ``label`` in a .csv, or the class sub-folder of an image (``data/images.py``).
Every problem raises :class:`~difflab.data.files.DataError` with one line naming the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The name of the label column in a .csv header and of the label array in an .npz.
LABEL_COLUMN = "label"
LABELS_KEY = "labels"


def check_labels(path: str | Path, labels: np.ndarray, n: int) -> np.ndarray:
    """``labels`` as int64 (n,) class indices 0..K-1, or a DataError naming the first problem:
    wrong shape or length, a non-numeric dtype, NaN/inf, a non-integer or negative value, or a
    class in 0..K-1 without examples."""
    from difflab.data.files import DataError

    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(
            f"{path}: {LABELS_KEY} has shape {y.shape} but the data have {n} examples; give one "
            "class label per example"
        )
    if y.dtype.kind not in "iuf":
        raise DataError(f"{path}: labels have dtype {y.dtype}; save integer class indices 0..K-1")
    values = y.astype(np.float64)
    for bad, what in (
        (~np.isfinite(values), "is NaN/inf"),
        (np.isfinite(values) & (values != np.round(values)), "is not an integer"),
        (values < 0, "is negative"),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: the label of row {row} (counting from 0) {what} ({y[row]}); "
                "labels must be integer class indices 0..K-1"
            )
    y = values.astype(np.int64)
    counts = np.bincount(y)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise DataError(
            f"{path}: class {missing} has no examples but labels go up to {len(counts) - 1}; "
            "number the classes 0..K-1 without gaps"
        )
    return y
