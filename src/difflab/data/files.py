"""The user's own vector data: load (N, D) arrays from .npy, .npz or .csv, with class labels if
the file has them (a ``labels`` array in an .npz, a column named ``label`` in a .csv), and save
them.

Every user mistake raises :class:`DataError` with a one-line message of the form
``"<file>: <problem>; <fix>"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np

from difflab.atomic import atomic_write
from difflab.data.labels import LABEL_COLUMN, LABELS_KEY, check_labels

LOAD_EXTENSIONS = (".npy", ".npz", ".csv")
SAVE_EXTENSIONS = (".npy", ".npz", ".csv")
NPZ_KEYS = ("x", "data")  # looked up in this order when an .npz holds several arrays
MAX_ABS_VALUE = 1e6


class DataError(ValueError):
    """A problem with the user's data file; the message names the file, the problem and the fix."""


def load_vectors(path: str | Path) -> np.ndarray:
    """Read an (N, D) array of N >= 2 finite vectors from a .npy, .npz or .csv file, ignoring
    labels (for labels: :func:`load_labelled_vectors`).

    - ``.npy``: a 2-D float or int array (a 1-D array must be reshaped to (N, 1)).
    - ``.npz``: a single array, or the one named ``x`` (else ``data``); ``labels`` is ignored.
    - ``.csv``: comma-separated numbers, N rows of D values; a first row with no numbers is
      taken as a header and skipped; blank lines are ignored. (Every column is data here, a
      ``label`` column too.)

    Returns:
        (N, D) float32.

    Raises:
        DataError: missing file, unknown extension, empty file, ragged or non-numeric CSV rows,
            wrong rank, non-numeric dtype, NaN/inf, |values| > 1e6, or fewer than 2 rows.
    """
    return _load(path, labels=False)[0]


def load_labelled_vectors(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The vectors of a .npy, .npz or .csv file as :func:`load_vectors` reads them, except that
    a .csv header column named ``label`` holds the labels (and is not data), and their class
    labels (N,) int64 in 0..K-1 (an .npz's ``labels`` array; checked, see data/labels.py), or
    None when the file has none."""
    return _load(path, labels=True)


def _load(path: str | Path, *, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise DataError(f"{path}: is not a file; pass the path of a .npy, .npz or .csv file")
    ext = path.suffix.lower()
    if ext not in LOAD_EXTENSIONS:
        raise DataError(
            f"{path}: unknown extension {ext or '(none)'!r}; "
            f"save the data as one of {', '.join(LOAD_EXTENSIONS)}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; write N rows of D numbers to it")
    if ext == ".npy":
        x, y = _read_npy(path), None
    elif ext == ".npz":
        x, y = read_npz_with_labels(path, labels=labels)
    else:
        x, y = _read_csv(path, labels=labels)
    x = _validate(path, x)
    return x, None if y is None or not labels else check_labels(path, y, x.shape[0])


def _np_load(path: Path) -> Any:
    with open(path, "rb") as f:
        magic = f.read(6)
    if not (magic == b"\x93NUMPY" or magic.startswith(b"PK")):
        raise DataError(
            f"{path}: cannot be read, it has no .npy or .npz header; write it with np.save"
        )
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower() or "object arrays" in str(e).lower():
            raise DataError(
                f"{path}: holds an object (pickled) array; save a numeric array, "
                "e.g. np.save(path, x.astype(np.float32))"
            ) from None
        raise DataError(f"{path}: cannot be read by numpy ({e}); write it with np.save") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot be read by numpy ({e}); write it with np.save") from None


def _read_npy(path: Path) -> np.ndarray:
    data = _np_load(path)
    if not isinstance(data, np.ndarray):
        data.close()
        raise DataError(f"{path}: is an .npz archive, not an .npy file; rename it to .npz")
    return data


def read_npz_with_labels(
    path: Path, *, labels: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The data array of an .npz (the only one, else ``x``, else ``data``) and, with
    ``labels``, its ``labels`` array if there is one (unchecked; not a data candidate then)."""
    archive = _np_load(path)
    if isinstance(archive, np.ndarray):  # an .npy file named .npz: accept it
        return archive, None
    with archive:
        found = labels and LABELS_KEY in archive.files
        y = _npz_array(path, archive, LABELS_KEY) if found else None
        keys = [k for k in archive.files if not (found and k == LABELS_KEY)]
        if not keys:
            what = "only a 'labels' array" if found else "no arrays"
            raise DataError(
                f"{path}: the archive holds {what}; save the data with np.savez(path, x=x)"
            )
        chosen = keys if len(keys) == 1 else [k for k in NPZ_KEYS if k in keys]
        if not chosen:
            raise DataError(
                f"{path}: holds arrays {', '.join(map(repr, keys))} and none is named 'x' or "
                "'data'; save a single array or name it x, e.g. np.savez(path, x=x)"
            )
        return _npz_array(path, archive, chosen[0]), y


def _npz_array(path: Path, archive: Any, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError:
        raise DataError(f"{path}: array {key!r} has object dtype; save a numeric array") from None


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, *, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: is not a UTF-8 text file; write plain comma-separated numbers"
        ) from None
    rows = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise DataError(f"{path}: contains no rows; write N rows of D comma-separated numbers")
    first_line, first = rows[0]
    width = len(first.split(","))
    label_col = None
    if not any(_is_number(c) for c in first.split(",")):
        header = [c.strip().lower() for c in first.split(",")]
        label_col = header.index(LABEL_COLUMN) if labels and LABEL_COLUMN in header else None
        rows = rows[1:]  # a header row: no cell is a number
        if not rows:
            raise DataError(f"{path}: has a header row but no data rows; add N rows of numbers")
    if label_col is not None:
        _check_label_cells(path, rows, label_col)
    try:
        data = np.loadtxt([line for _, line in rows], delimiter=",", ndmin=2, comments=None)
    except ValueError as e:
        _diagnose_csv(path, rows, width, first_line)
        raise DataError(f"{path}: cannot be parsed ({e}); write comma-separated numbers") from None
    if data.shape[1] != width:
        _diagnose_csv(path, rows, width, first_line)
    if label_col is None:
        return data, None
    if width == 1:
        raise DataError(f"{path}: has only a label column; add the data columns")
    return np.delete(data, label_col, axis=1), data[:, label_col]


def _check_label_cells(path: Path, rows: list[tuple[int, str]], column: int) -> None:
    """Name the first row whose label cell is not a number (ragged rows are diagnosed later)."""
    for line_number, line in rows:
        cells = line.split(",")
        if column < len(cells) and not _is_number(cells[column]):
            shown = cells[column].strip()[:20] or "(empty)"
            raise DataError(
                f"{path}: line {line_number}: label {shown!r} is not a class index; labels "
                "must be integers 0..K-1"
            )


def _diagnose_csv(path: Path, rows: list[tuple[int, str]], width: int, width_line: int) -> None:
    """Raise a DataError naming the first ragged row or non-numeric cell, if any."""
    for line_number, line in rows:
        cells = line.split(",")
        if len(cells) != width:
            raise DataError(
                f"{path}: line {line_number} has {len(cells)} values but line {width_line} has "
                f"{width}; give every row the same number of comma-separated values"
            )
        for column, cell in enumerate(cells, 1):
            if not _is_number(cell):
                shown = cell.strip()[:20] or "(empty)"
                raise DataError(
                    f"{path}: line {line_number}, column {column}: {shown!r} is not a number; "
                    "use plain numbers separated by commas"
                )


def _validate(path: Path, array: np.ndarray) -> np.ndarray:
    """Check dtype, rank, size and values; return float32 (N, D)."""
    kind = array.dtype.kind
    if kind == "O":
        raise DataError(f"{path}: has object dtype; save a numeric array, e.g. x.astype(float)")
    if kind == "c":
        raise DataError(
            f"{path}: has complex dtype; save real numbers, e.g. np.stack([x.real, x.imag], 1)"
        )
    if kind not in "iuf":
        raise DataError(f"{path}: has dtype {array.dtype}; save a float or int array")
    if array.ndim == 1:
        raise DataError(
            f"{path}: is 1-D with shape {array.shape}; reshape to (N, 1), e.g. x.reshape(-1, 1)"
        )
    if array.ndim != 2:
        raise DataError(
            f"{path}: has shape {array.shape} but (N, D) is needed; "
            "flatten each example to a row, e.g. x.reshape(len(x), -1)"
        )
    _check_size(path, array.shape)
    x = array.astype(np.float64)
    _check_values(path, x)
    return x.astype(np.float32)


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    n, d = shape
    if n == 0:
        raise DataError(f"{path}: contains no rows; save N >= 2 rows of D numbers")
    if d == 0:
        raise DataError(f"{path}: rows have no values (shape {shape}); save D >= 1 columns")
    if n < 2:
        raise DataError(f"{path}: has only {n} row; at least 2 rows are needed, add more data")


def _check_values(path: Path, x: np.ndarray) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        first_row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(
            f"{path}: contains {int(bad.sum())} NaN/inf values (first in row {first_row}, "
            "counting data rows from 0); remove or impute those rows"
        )
    biggest = float(np.abs(x).max())
    if biggest > MAX_ABS_VALUE:
        raise DataError(
            f"{path}: has values up to {biggest:.3g} in magnitude (limit {MAX_ABS_VALUE:.0e}); "
            "rescale to roughly unit range, e.g. (x - x.mean(0)) / x.std(0)"
        )


def check_output_path(path: str | Path) -> Path:
    """Check that ``path`` can take saved vectors (extension, existing directory) before any
    work is done to produce them; returns it as a Path."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SAVE_EXTENSIONS:
        raise DataError(
            f"{path}: cannot save with extension {ext or '(none)'!r}; "
            f"use one of {', '.join(SAVE_EXTENSIONS)}"
        )
    if not path.parent.is_dir():
        raise DataError(f"{path}: directory {path.parent} does not exist; create it first")
    return path


def csv_header(dim: int) -> str:
    """The header row of vectors saved as CSV: ``x0,x1,...`` (read back as a header, since no
    cell is a number)."""
    return ",".join(f"x{i}" for i in range(dim))


def save_vectors(path: str | Path, array: Any, labels: np.ndarray | None = None) -> None:
    """Write an (N, D) numeric array to ``.npy``, ``.npz`` (array ``x``) or to ``.csv`` with a
    header row ``x0,x1,..``, atomically; with ``labels`` (N,) also the class of each row: a
    ``labels`` array in the .npz, or a last column under a header ``x0,...,label`` in the .csv
    (what :func:`load_labelled_vectors` reads back); an .npy cannot hold them.

    The data go to a temporary file in the same directory, which is flushed, fsynced and then
    renamed over ``path`` (``os.replace``), so readers never see a partial file. Int arrays are
    written as float64; CSV uses enough digits to round-trip exactly. ``array`` may be a
    numpy array or a CPU torch tensor.

    Raises:
        DataError: unknown extension (checked before anything is written), missing directory,
            an array that is not 2-D and numeric, or labels for an .npy.
    """
    path = check_output_path(path)
    ext = path.suffix.lower()
    x = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
    if x.dtype.kind not in "iuf" or x.ndim != 2:
        raise DataError(
            f"{path}: can only save a 2-D float or int array, got dtype {x.dtype} and shape "
            f"{x.shape}; reshape to (N, D)"
        )
    if x.dtype.kind in "iu":
        x = x.astype(np.float64)
    if labels is not None and ext == ".npy":
        raise DataError(f"{path}: an .npy holds no labels; save labelled samples as .npz or .csv")
    if ext == ".npy":
        atomic_write(path, lambda f: np.save(f, x))
    elif ext == ".npz":
        arrays = {"x": x} if labels is None else {"x": x, LABELS_KEY: np.asarray(labels)}
        atomic_write(path, lambda f: np.savez(f, **arrays))
    else:
        atomic_write(path, lambda f: _write_csv(f, x, labels))


def _write_csv(f: IO[bytes], x: np.ndarray, labels: np.ndarray | None) -> None:
    fmt = ["%.17g" if x.dtype == np.float64 else "%.9g"] * x.shape[1]
    header = csv_header(x.shape[1])
    if labels is None:
        np.savetxt(f, x, fmt=fmt, delimiter=",", header=header, comments="")
        return
    table = np.concatenate([x.astype(np.float64), np.asarray(labels)[:, None]], axis=1)
    header = f"{header},{LABEL_COLUMN}"
    np.savetxt(f, table, fmt=[*fmt, "%d"], delimiter=",", header=header, comments="")
