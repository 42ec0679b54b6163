"""Loading and saving the user's vectors: round trips and one-line DataErrors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from difflab.data.files import DataError, load_vectors, save_vectors

X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)


def test_npy_round_trip(tmp_path: Path) -> None:
    save_vectors(tmp_path / "a.npy", X)
    out = load_vectors(tmp_path / "a.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csv_round_trip(tmp_path: Path, dtype: type) -> None:
    x = X.astype(dtype) / 3
    save_vectors(str(tmp_path / "a.csv"), x)
    np.testing.assert_array_equal(load_vectors(tmp_path / "a.csv"), x.astype(np.float32))
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "x0,x1,x2" and len(lines) == len(x) + 1  # a header row, then the rows
    loaded = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)  # as others read it
    np.testing.assert_array_equal(loaded.astype(dtype), x)


def test_save_tensor_and_ints(tmp_path: Path) -> None:
    save_vectors(tmp_path / "t.npy", torch.from_numpy(X))
    np.testing.assert_array_equal(load_vectors(tmp_path / "t.npy"), X)
    save_vectors(tmp_path / "i.csv", np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(load_vectors(tmp_path / "i.csv"), np.arange(6).reshape(3, 2))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    save_vectors(tmp_path / "a.npy", X)
    save_vectors(tmp_path / "a.npy", 2 * X)  # replaces
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
    np.testing.assert_array_equal(load_vectors(tmp_path / "a.npy"), 2 * X)


def test_npz_single_array_and_named_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", X)
    np.testing.assert_array_equal(load_vectors(tmp_path / "one.npz"), X)
    np.savez(tmp_path / "named.npz", y=np.zeros(3), x=X)
    np.testing.assert_array_equal(load_vectors(tmp_path / "named.npz"), X)
    np.savez(tmp_path / "data.npz", labels=np.zeros(3), data=X)
    np.testing.assert_array_equal(load_vectors(tmp_path / "data.npz"), X)


def test_csv_with_header_blank_lines_and_single_column(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("x, y\n1, 2\n\n3.5,-4e-1\n")
    expected = np.array([[1, 2], [3.5, -0.4]], dtype=np.float32)
    np.testing.assert_array_equal(load_vectors(tmp_path / "h.csv"), expected)
    (tmp_path / "c.csv").write_text("1\n2\n3\n")
    assert load_vectors(tmp_path / "c.csv").shape == (3, 1)


def _write(name: str, content: str | bytes | Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
        return path

    return make


def _npy(array: np.ndarray, **kw: bool) -> Callable[[Path], None]:
    return lambda path: np.save(path, array, **kw)


BAD_FILES = {
    "missing": (lambda tmp: tmp / "nope.npy", "no such file", "check the path"),
    "extension": (_write("a.txt", "1,2\n3,4\n"), "unknown extension '.txt'", ".npy, .npz, .csv"),
    "empty": (_write("e.csv", ""), "empty", "write N rows"),
    "blank csv": (_write("b.csv", "\n\n"), "no rows", "write N rows"),
    "header only": (_write("h.csv", "x,y\n"), "no data rows", "add N rows"),
    "ragged": (_write("r.csv", "1,2\n3,4\n5,6,7\n"), "line 3 has 3 values", "same number"),
    "non-numeric": (_write("n.csv", "a,b\n1,2\n3,x\n"), "line 3, column 2: 'x'", "plain numbers"),
    "empty cell": (_write("n.csv", "1,2\n3,\n"), "line 2, column 2", "plain numbers"),
    "nan": (_write("nan.csv", "1,2\n3,nan\ninf,4\n"), "2 NaN/inf values (first in row 1", "remove"),
    "1-D": (_write("v.npy", _npy(np.zeros(5))), "1-D", "reshape to (N, 1)"),
    "3-D": (_write("v.npy", _npy(np.zeros((4, 2, 2)))), "shape (4, 2, 2)", "flatten"),
    "object": (
        _write("o.npy", _npy(np.array([[1, "a"]], dtype=object), allow_pickle=True)),
        "object",
        "numeric",
    ),
    "complex": (_write("c.npy", _npy(np.ones((3, 2), dtype=complex))), "complex", "real"),
    "strings": (_write("s.npy", _npy(np.array([["a", "b"], ["c", "d"]]))), "dtype <U1", "float"),
    "huge": (_write("big.npy", _npy(np.array([[1.0], [3e7]]))), "3e+07", "rescale to roughly"),
    "one row": (_write("one.csv", "1,2\n"), "only 1 row", "at least 2"),
    "zero rows": (_write("z.npy", _npy(np.zeros((0, 2)))), "no rows", "N >= 2"),
    "npz keys": (
        _write("k.npz", lambda p: np.savez(p, a=X, b=X)),
        "'a', 'b'",
        "name it x",
    ),
    "npz empty": (_write("k.npz", lambda p: np.savez(p)), "no arrays", "np.savez"),
    "corrupt npy": (_write("bad.npy", b"not numpy at all"), "cannot be read", "np.save"),
    "binary csv": (_write("bin.csv", b"\xff\xfe\x00\x81"), "UTF-8", "comma-separated"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_data_errors_are_one_line_with_a_fix(tmp_path: Path, case: str) -> None:
    make, problem, fix = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_vectors(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert problem in message
    assert fix in message


def test_save_unknown_extension_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"use one of \.npy, \.npz, \.csv"):
        save_vectors(tmp_path / "a.txt", X)
    assert list(tmp_path.iterdir()) == []


def test_save_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="reshape to"):
        save_vectors(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(DataError, match="does not exist"):
        save_vectors(tmp_path / "no" / "a.npy", X)
    assert list(tmp_path.iterdir()) == []
