"""Class labels in every data source: they survive every file format's round trip, bad labels
get one-line errors naming the fix, and reading without labels is what it was before labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difflab.app.config import DataConfig
from difflab.app.datasets import build_dataset, build_image_split
from difflab.data.files import DataError, load_labelled_vectors, load_vectors, save_vectors
from difflab.data.images import load_labelled_image_array, save_image_array, split_indices

X = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
Y = np.arange(12) % 4


@pytest.mark.parametrize("ext", [".npz", ".csv"])
def test_vector_labels_round_trip(tmp_path, ext):
    path = tmp_path / f"s{ext}"
    save_vectors(path, X, Y)
    x, y = load_labelled_vectors(path)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    assert y.dtype == np.int64


def test_image_labels_round_trip(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (12, 5, 5), dtype=np.uint8)
    save_image_array(tmp_path / "im.npz", images, Y)
    x, y = load_labelled_image_array(tmp_path / "im.npz")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, Y)
    with pytest.raises(DataError, match="holds no labels"):
        save_image_array(tmp_path / "im.npy", images, Y)


def test_class_folders_are_classes_in_name_order(tmp_path):
    for name, count in (("cat", 3), ("ant", 2), ("bee", 4)):
        folder = tmp_path / "imgs" / name
        folder.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    cfg = DataConfig(name="images", path=str(tmp_path / "imgs"))
    full = build_image_split(cfg, "train", labels=True)
    assert full.classes.names == ("ant", "bee", "cat")
    n = 9
    train = split_indices(n, "train")
    labels = np.repeat([0, 1, 2], [2, 4, 3])  # files in folder order: ant, bee, cat
    np.testing.assert_array_equal(full.labels.numpy(), labels[train])
    assert full.classes.counts == tuple(np.bincount(labels[train], minlength=3))
    unlabelled = build_image_split(cfg, "train")  # an unconditional run merges the folders
    assert unlabelled.labels is None and unlabelled.x.shape == full.x.shape
    (tmp_path / "imgs" / "dog").mkdir()
    with pytest.raises(DataError, match="dog: the class folder holds no images"):
        build_image_split(cfg, "train", labels=True)


def test_toy_and_digits_labels(tmp_path):
    data = build_dataset(DataConfig(name="pinwheel", n_train=1000), seed=3, labels=True)
    assert data.classes.num_classes == 5 and sum(data.classes.counts) == 1000
    plain = build_dataset(DataConfig(name="pinwheel", n_train=1000), seed=3)
    assert plain.labels is None and plain.classes is None  # unconditional: as before labels
    assert np.array_equal(plain.x.numpy(), data.x.numpy())
    assert "classes" not in plain.info() and data.info()["classes"]["counts"] == list(
        data.classes.counts
    )
    digits = build_dataset(DataConfig(name="digits"), labels=True)
    assert digits.classes.names == tuple(str(c) for c in range(10)) and len(digits.labels) == 1258
    with pytest.raises(ValueError, match="has no classes"):
        build_dataset(DataConfig(name="swiss_roll", n_train=100), labels=True)


def test_reading_without_labels_is_unchanged(tmp_path):
    """Before labels existed a 'label' column was data and an .npz's 'labels' was ignored;
    unconditional runs still read files that way."""
    (tmp_path / "a.csv").write_text("x,label\n1,0\n2,1\n3,0\n")
    assert load_vectors(tmp_path / "a.csv").shape == (3, 2)
    x, y = load_labelled_vectors(tmp_path / "a.csv")
    assert x.shape == (3, 1) and y.tolist() == [0, 1, 0]
    np.savez(tmp_path / "b.npz", labels=np.zeros(3), x=X)  # labels of the wrong length
    np.testing.assert_array_equal(load_vectors(tmp_path / "b.npz"), X)
    with pytest.raises(DataError, match="labels has shape"):
        load_labelled_vectors(tmp_path / "b.npz")


def _csv(rows: str):
    def make(path: Path) -> Path:
        (path / "d.csv").write_text("a,b,label\n" + rows)
        return path / "d.csv"

    return make


BAD = {
    "nan": (_csv("1,2,0\n3,4,nan\n"), "is NaN/inf", "integer class indices"),
    "fraction": (_csv("1,2,0\n3,4,1.5\n"), "is not an integer", "integer class indices"),
    "word": (_csv("1,2,0\n3,4,cat\n"), "label 'cat' is not a class index", "integers 0..K-1"),
    "negative": (_csv("1,2,0\n3,4,-1\n"), "is negative", "integer class indices"),
    "gap": (_csv("1,2,0\n3,4,2\n"), "class 1 has no examples", "without gaps"),
    "length": (lambda p: (np.savez(p / "d.npz", x=X, labels=Y[:5]), p / "d.npz")[1],
               "labels has shape (5,)", "one class label per example"),
    "strings": (lambda p: (np.savez(p / "d.npz", x=X, labels=np.array(["a"] * 12)), p / "d.npz")[1],
                "dtype <U1", "integer class indices"),
    "only-labels": (lambda p: (np.savez(p / "d.npz", labels=Y), p / "d.npz")[1],
                    "holds only a 'labels' array", "np.savez"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_labels_give_one_line_errors(tmp_path, case):
    make, problem, fix = BAD[case]
    path = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_labelled_vectors(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert problem in message and fix in message
