"""Image data: the fixed splits, scaling to [-1, 1] and back, folders and arrays, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from difflab.app.cli import main
from difflab.app.config import DataConfig
from difflab.app.datasets import build_dataset, build_image_split
from difflab.data.files import DataError
from difflab.data.images import (
    DIGITS_LEVELS,
    image_levels,
    load_digits_images,
    load_image_array,
    load_image_folder,
    split_indices,
    to_model_space,
    to_user_space,
)


@pytest.mark.parametrize("n", [10, 1797])
def test_splits_are_disjoint_cover_and_fixed(n):
    parts = [split_indices(n, s) for s in ("train", "val", "test")]
    joined = np.concatenate(parts)
    assert len(joined) == n and set(joined.tolist()) == set(range(n))
    assert [len(p) for p in parts] == [
        n - round(0.1 * n) - round(0.2 * n),
        round(0.1 * n),
        round(0.2 * n),
    ]
    np.testing.assert_array_equal(split_indices(n, "test"), parts[2])  # same every call


def test_digits_sizes_levels_and_scaling():
    x = load_digits_images()
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8 and x.max() == DIGITS_LEVELS - 1
    data = build_dataset(DataConfig(name="digits"))
    assert data.shape == (1, 8, 8) and data.levels == 17 and data.is_image
    assert (
        data.x.shape[0] == 1258
        and build_image_split(DataConfig(name="digits"), "test").x.shape[0] == 359
    )
    assert float(data.x.min()) == -1.0 and float(data.x.max()) == 1.0
    # Every value lies on the 17-level grid 2k/16 - 1.
    k = (data.x + 1) * 8
    assert torch_allclose_int(k)


def torch_allclose_int(k) -> bool:
    return bool(((k - k.round()).abs() < 1e-5).all())


@pytest.mark.parametrize("shape", [(5, 4, 6), (5, 4, 6, 3), (5, 4, 6, 1)])
def test_user_model_round_trip(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=shape).astype(np.uint8)
    m = to_model_space(x, 256)
    assert m.shape == (5, shape[3] if len(shape) == 4 else 1, 4, 6) and m.dtype == np.float32
    back = to_user_space(m + rng.uniform(-0.003, 0.003, m.shape), 256)  # within half a bin
    expected = x[..., 0] if len(shape) == 4 and shape[3] == 1 else x
    np.testing.assert_array_equal(back, expected)
    assert to_user_space(np.full((1, 1, 2, 2), 3.0), 17).max() == 16  # clipped to the top level


def _write(folder, name, size, mode="L", value=0):
    folder.mkdir(exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(folder / name)


def test_folder_grayscale_rgb_and_resize(tmp_path):
    gray = tmp_path / "gray"
    for i in range(3):
        _write(gray, f"{i}.png", (6, 4), value=40 * i)
    x = load_image_folder(gray)
    assert x.shape == (3, 4, 6, 1) and x.dtype == np.uint8 and x[2].max() == 80
    assert load_image_folder(gray, color="rgb").shape == (3, 4, 6, 3)
    mixed = tmp_path / "mixed"
    _write(mixed, "a.png", (5, 5))
    _write(mixed, "b.jpg", (9, 7), mode="RGB", value=200)
    y = load_image_folder(mixed, image_size=8)
    assert y.shape == (2, 8, 8, 3)  # one RGB file makes the folder RGB under color = "auto"
    data = build_dataset(DataConfig(name="images", path=str(mixed), image_size=8))
    assert data.levels == 256 and data.shape == (3, 8, 8)


def test_image_array_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 7, 7), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    np.testing.assert_array_equal(load_image_array(tmp_path / "x.npy"), x)
    np.testing.assert_array_equal(load_image_array(tmp_path / "x.npz"), x)
    data = build_dataset(DataConfig(name="image_file", path=str(tmp_path / "x.npy"), image_size=8))
    assert data.shape == (1, 8, 8) and data.levels == 256


def _bad_inputs(tmp_path):
    mixed = tmp_path / "mixed"
    _write(mixed, "a.png", (5, 5))
    _write(mixed, "b.png", (6, 5))
    (tmp_path / "empty").mkdir()
    notimg = tmp_path / "notimg"
    _write(notimg, "a.png", (5, 5))
    (notimg / "b.png").write_text("this is not a PNG")
    txt = tmp_path / "txt"
    _write(txt, "a.png", (5, 5))
    (txt / "notes.txt").write_text("hello")
    np.save(tmp_path / "rank.npy", np.zeros((4, 8), dtype=np.uint8))
    np.save(tmp_path / "dtype.npy", np.zeros((4, 8, 8), dtype=np.float32))
    np.save(tmp_path / "levels.npy", np.full((4, 8, 8), 20, dtype=np.uint8))
    return [
        ("images", mixed, [], "different sizes"),
        ("images", tmp_path / "empty", [], "holds no files"),
        ("images", notimg, [], "cannot be read as an image"),
        ("images", txt, [], "not a PNG or JPEG"),
        ("image_file", tmp_path / "rank.npy", [], "(N, H, W)"),
        ("image_file", tmp_path / "dtype.npy", [], "integer pixels"),
        ("image_file", tmp_path / "levels.npy", ["data.levels=17"], "data.levels"),
    ]


def test_bad_image_input_is_one_line_exit_2(tmp_path, capsys):
    for name, path, extra, message in _bad_inputs(tmp_path):
        sets = [
            "--set",
            f"data.name={name}",
            "--set",
            f"data.path={path}",
            "--set",
            "model.name=unet",
        ]
        for item in extra:
            sets += ["--set", item]
        code = main(["train", *sets, "--out", str(tmp_path / "never"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, (name, path)
        assert err.startswith("difflab: error: ") and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "never").exists()  # nothing written before the data is checked


def test_resize_setting_fixes_mixed_sizes(tmp_path):
    mixed = tmp_path / "mixed"
    _write(mixed, "a.png", (5, 5))
    _write(mixed, "b.png", (6, 5))
    with pytest.raises(DataError, match="data.image_size"):
        load_image_folder(mixed)
    assert load_image_folder(mixed, image_size=4).shape == (2, 4, 4, 1)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"name": "digits", "image_size": 16}, "data.image_size"),
        ({"name": "digits", "levels": 5}, "data.levels"),
        ({"name": "images"}, "needs data.path"),
        ({"name": "image_file", "path": "x.npy", "levels": 1}, "data.levels"),
        ({"name": "digits", "normalize": "standardize"}, "data.normalize"),
        ({"name": "image_file", "path": "x.npy", "color": "rgb"}, "data.color"),
    ],
)
def test_image_config_errors(values, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**values)


def _write_16bit(folder, name, values):
    folder.mkdir(exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(folder / name)


def test_16bit_pngs_keep_their_depth(tmp_path):
    """16-bit PNGs went through convert("L") and 99 % of the pixels saturated at 255; now they
    are read with their 65536 levels, exactly, and the run records them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
    for i, values in enumerate(images):
        _write_16bit(tmp_path / "deep", f"{i}.png", values)
    x = load_image_folder(tmp_path / "deep")
    assert x.dtype == np.uint16 and x.shape == (3, 5, 4, 1)
    np.testing.assert_array_equal(x[..., 0], images)
    assert image_levels(x) == 65536
    data = build_image_split(DataConfig(name="images", path=str(tmp_path / "deep")), "train")
    assert data.levels == 65536 and float(data.x.max()) <= 1.0 and float(data.x.min()) >= -1.0
    train = split_indices(3, "train")  # float32 in model space holds every 16-bit level exactly
    np.testing.assert_array_equal(to_user_space(data.x.numpy(), 65536), images[train])
    resized = load_image_folder(tmp_path / "deep", image_size=8)
    assert resized.dtype == np.uint16 and resized.shape == (3, 8, 8, 1)
    assert resized.max() > 255  # not squeezed into 8 bits


def test_16bit_and_8bit_images_cannot_be_mixed_or_read_as_rgb(tmp_path):
    _write_16bit(tmp_path / "deep", "a.png", np.full((4, 4), 40000))
    _write_16bit(tmp_path / "deep", "b.png", np.full((4, 4), 10))
    with pytest.raises(DataError, match="cannot be read as data.color = 'rgb'"):
        load_image_folder(tmp_path / "deep", color="rgb")
    _write(tmp_path / "deep", "c.png", (4, 4), value=7)
    with pytest.raises(DataError, match=r"mixes 16-bit images \(a.png\) with 8-bit ones \(c.png\)"):
        load_image_folder(tmp_path / "deep")
