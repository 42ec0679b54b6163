"""Image data: scikit-learn's 8x8 digits, folders of PNG/JPEG files, and image arrays in .npy/.npz.

Images live in two spaces:

- the user's: integer arrays (N, H, W) or (N, H, W, C) with values 0..levels-1 (uint8 for files;
  0..16 for the digits, as scikit-learn ships them);
- the model's: float32 (N, C, H, W) in [-1, 1], x_model = 2 * x / (levels - 1) - 1, so the
  discretized decoder knows its bins from ``levels`` (17 for digits, 256 for 8-bit images).

Every source is split the same way into train / validation / test with a fixed permutation
(:func:`split_indices`, seed 0): 70 % / 10 % / 20 % of the images. For the 1797 digits this
is 1258 train, 180 validation and 359 test images.

Labels (classes 0..K-1): the digits' 10 classes; a ``labels`` array beside the images in an
.npz; for a folder, one sub-folder of images per class (the ImageFolder convention: classes
are the sub-folders sorted by name).

User mistakes raise :class:`~difflab.data.files.DataError` with one line naming the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from difflab.atomic import atomic_write
from difflab.data.files import DataError, _read_npy, read_npz_with_labels
from difflab.data.labels import check_labels

DIGITS_LEVELS = 17
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
COLORS = ("auto", "grayscale", "rgb")


def split_indices(n: int, split: str, *, seed: int = SPLIT_SEED) -> np.ndarray:
    """The sorted indices of ``split`` ("train", "val" or "test") among n images: a fixed
    seeded permutation cut 70 % / 10 % / 20 %; the three splits are disjoint and cover 0..n-1."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = round(n * SPLIT_FRACTIONS[2])
    n_val = round(n * SPLIT_FRACTIONS[1])
    n_train = n - n_val - n_test
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }
    lo, hi = bounds[split]
    return np.sort(perm[lo:hi])


def load_digits_images() -> np.ndarray:
    """All 1797 of scikit-learn's 8x8 digits as (1797, 8, 8) uint8 with values 0..16 (shipped
    with scikit-learn, nothing is downloaded)."""
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.uint8)


def load_digits_labels() -> np.ndarray:
    """The class (0..9) of each digit, aligned with :func:`load_digits_images`."""
    from sklearn.datasets import load_digits

    return load_digits().target.astype(np.int64)


def load_image_array(path: str | Path, *, levels: int = 256) -> np.ndarray:
    """Read (N, H, W) or (N, H, W, C) integer images from .npy/.npz (C = 1 or 3), values in
    0..levels-1 (uint8 for 8-bit images). Returns the array as uint8 (or uint16 past 256 levels)."""
    return load_labelled_image_array(path, levels=levels, labels=False)[0]


def load_labelled_image_array(
    path: str | Path, *, levels: int = 256, labels: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The images of :func:`load_image_array` and the .npz's ``labels`` (N,) int64 (checked),
    or None; ``labels`` False: ignore them, as :func:`load_image_array` does."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check data.path")
    ext = path.suffix.lower()
    if ext not in (".npy", ".npz"):
        raise DataError(f"{path}: image arrays must be .npy or .npz files, got {ext or '(none)'!r}")
    if ext == ".npy":
        x, y = _read_npy(path), None
    else:
        x, y = read_npz_with_labels(path, labels=labels)
    if x.dtype.kind not in "iu":
        raise DataError(
            f"{path}: has dtype {x.dtype} but integer pixels are needed; save uint8 images, "
            "e.g. np.save(path, (x * 255).round().astype(np.uint8))"
        )
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        raise DataError(
            f"{path}: has shape {x.shape}; the last axis must be 1 or 3 channels (N, H, W, C)"
        )
    if x.ndim not in (3, 4):
        raise DataError(
            f"{path}: has shape {x.shape} but images (N, H, W) or (N, H, W, C) are needed; "
            "reshape it, e.g. x.reshape(-1, 28, 28)"
        )
    if x.shape[0] < 2 or min(x.shape[1:3]) < 1:
        raise DataError(f"{path}: has shape {x.shape}; at least 2 non-empty images are needed")
    if x.size and (x.min() < 0 or x.max() >= levels):
        raise DataError(
            f"{path}: pixel values span {x.min()}..{x.max()} but data.levels = {levels} allows "
            f"0..{levels - 1}; set data.levels to the number of intensity levels"
        )
    y = None if y is None else check_labels(path, y, x.shape[0])
    return x.astype(np.uint8 if levels <= 256 else np.uint16), y


def load_image_folder(
    path: str | Path, *, image_size: int | None = None, color: str = "auto"
) -> np.ndarray:
    """Read every PNG/JPEG in a folder (sorted by name, not recursive) as (N, H, W, C) uint8,
    or, for 16-bit grayscale PNGs, (N, H, W, 1) uint16 at their full depth (65536 levels:
    :func:`image_levels`).

    ``color``: "grayscale" (C = 1), "rgb" (C = 3), or "auto" (grayscale if every file is).
    ``image_size``: resize each image to image_size x image_size (bicubic); None keeps the
    sizes, which must then all agree.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: is not a folder; set data.path to a folder of PNG/JPEG images")
    files = _visible(path, files=True)
    if not files:
        raise DataError(f"{path}: the folder holds no files; put PNG or JPEG images in it")
    images = _read_images(files)
    return _stack_images(path, files, images, image_size=image_size, color=color)


def load_labelled_image_folder(
    path: str | Path, *, image_size: int | None = None, color: str = "auto"
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """A folder of images (:func:`load_image_folder`, no labels) or, if it holds only
    sub-folders, one class per sub-folder (sorted by name): the images (N, H, W, C), their
    labels (N,) and the class names."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: is not a folder; set data.path to a folder of PNG/JPEG images")
    folders = _visible(path, files=False)
    if _visible(path, files=True) or not folders:
        return load_image_folder(path, image_size=image_size, color=color), None, None
    files, labels = [], []
    for k, folder in enumerate(folders):
        inside = _visible(folder, files=True)
        if not inside:
            raise DataError(
                f"{folder}: the class folder holds no images; put its PNG/JPEG images in it or "
                "remove it"
            )
        files += inside
        labels += [k] * len(inside)
    x = _stack_images(path, files, _read_images(files), image_size=image_size, color=color)
    return x, np.asarray(labels, dtype=np.int64), [f.name for f in folders]


def _visible(path: Path, *, files: bool) -> list[Path]:
    """The files (or sub-folders) of ``path`` not starting with a dot, sorted by name."""
    kind = Path.is_file if files else Path.is_dir
    return sorted(p for p in path.iterdir() if kind(p) and not p.name.startswith("."))


def _read_images(files: list[Path]) -> list[Image.Image]:
    images = []
    for file in files:
        if file.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DataError(f"{file}: is not a PNG or JPEG file; remove it from the image folder")
        try:
            with Image.open(file) as img:
                img.load()
                images.append(img.copy())
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(
                f"{file}: cannot be read as an image ({err}); remove or replace it"
            ) from None
    return images


#: Pillow's modes of 16-bit grayscale images (PNG); "I" holds them as int32.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def image_levels(images: np.ndarray) -> int:
    """The number of intensity levels of images read by :func:`load_image_folder`: 65536 for
    16-bit images (uint16), 256 for 8-bit ones."""
    return 65536 if images.dtype == np.uint16 else 256


def _stack_images(path, files, images, *, image_size, color) -> np.ndarray:
    if color not in COLORS:
        raise DataError(f"unknown data.color {color!r}; choose one of {', '.join(COLORS)}")
    deep = [img.mode in SIXTEEN_BIT_MODES for img in images]
    if any(deep):
        return _stack_16bit(path, files, images, deep, image_size=image_size, color=color)
    if color == "auto":
        color = "grayscale" if all(img.mode in ("L", "1") for img in images) else "rgb"
    mode = "L" if color == "grayscale" else "RGB"
    images = [img.convert(mode) for img in images]
    if image_size is not None:
        images = [img.resize((image_size, image_size), Image.Resampling.BICUBIC) for img in images]
    _check_sizes(path, files, [img.size for img in images])
    x = np.stack([np.asarray(img, dtype=np.uint8) for img in images])
    return x[..., None] if x.ndim == 3 else x


def _stack_16bit(path, files, images, deep, *, image_size, color) -> np.ndarray:
    """16-bit grayscale images as (N, H, W, 1) uint16 with their full 65536 levels (never
    squeezed into 8 bits, where 99 % of a typical 16-bit image would saturate at 255)."""
    if not all(deep):
        a = files[deep.index(True)].name
        b = files[deep.index(False)].name
        raise DataError(
            f"{path}: mixes 16-bit images ({a}) with 8-bit ones ({b}); convert them all to "
            "one depth"
        )
    if color == "rgb":
        raise DataError(
            f"{path}: holds 16-bit grayscale images, which cannot be read as data.color = "
            "'rgb'; set data.color = 'grayscale' (or 'auto')"
        )
    arrays = []
    for file, img in zip(files, images):
        values = img.convert("F")  # float32 keeps every 16-bit level exactly
        lo, hi = values.getextrema()
        if lo < 0 or hi > 65535:
            raise DataError(f"{file}: has values outside 0..65535; save it as a 16-bit PNG")
        if image_size is not None:  # bicubic may overshoot: clipped to the levels below
            values = values.resize((image_size, image_size), Image.Resampling.BICUBIC)
        x = np.asarray(values, dtype=np.float64)
        arrays.append(np.clip(np.rint(x), 0, 65535).astype(np.uint16))
    _check_sizes(path, files, [a.shape[::-1] for a in arrays])
    return np.stack(arrays)[..., None]


def _check_sizes(path, files, sizes) -> None:
    first = sizes[0]
    for file, size in zip(files, sizes):
        if size != first:
            raise DataError(
                f"{path}: images have different sizes ({files[0].name} is {first[0]}x{first[1]}, "
                f"{file.name} is {size[0]}x{size[1]}); set data.image_size to resize them"
            )
    if len(sizes) < 2:
        raise DataError(f"{path}: holds only 1 image; at least 2 are needed")


def to_model_space(images: np.ndarray, levels: int) -> np.ndarray:
    """(N, H, W[, C]) integers in 0..levels-1 -> float32 (N, C, H, W) in [-1, 1]."""
    x = images if images.ndim == 4 else images[..., None]
    x = x.astype(np.float32) * (2.0 / (levels - 1)) - 1.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_user_space(x: np.ndarray, levels: int) -> np.ndarray:
    """float (N, C, H, W) in model space -> (N, H, W) for one channel or (N, H, W, C), integers
    in 0..levels-1 (uint8 when levels <= 256), rounded to the nearest level and clipped."""
    values = np.rint((np.asarray(x, dtype=np.float64) + 1.0) * (levels - 1) / 2.0)
    values = np.clip(values, 0, levels - 1).astype(np.uint8 if levels <= 256 else np.uint16)
    values = values.transpose(0, 2, 3, 1)
    return values[..., 0] if values.shape[-1] == 1 else values


def resize_array(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resize (N, H, W[, C]) uint8 images to image_size x image_size with Pillow (bicubic)."""
    squeeze = images.ndim == 3
    x = images[..., None] if squeeze else images
    out = []
    for img in x:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        out.append(np.asarray(pil.resize((image_size, image_size), Image.Resampling.BICUBIC)))
    y = np.stack(out)
    if y.ndim == 3 and not squeeze:
        y = y[..., None]
    return y


def check_image_output_path(path: str | Path) -> Path:
    """Check, before sampling, that image samples can be saved at ``path`` (.npy, or .npz with
    their labels; existing directory); returns it as a Path."""
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(
            f"{path}: image samples are saved as .npy (N, H, W[, C]) integer arrays, or .npz "
            "with their labels; name the file *.npy or *.npz (use --grid FILE.png for a picture)"
        )
    if not path.parent.is_dir():
        raise DataError(f"{path}: directory {path.parent} does not exist; create it first")
    return path


def save_image_array(
    path: str | Path, images: np.ndarray, labels: np.ndarray | None = None
) -> None:
    """Write integer images (N, H, W[, C]) atomically, the format image_file reads: .npy, or
    .npz with arrays ``x`` and (if given) ``labels`` (N,)."""
    path = check_image_output_path(path)
    x = np.asarray(images)
    if x.dtype.kind not in "iu" or x.ndim not in (3, 4):
        raise DataError(f"{path}: expected integer images (N, H, W[, C]), got {x.dtype} {x.shape}")
    if path.suffix.lower() == ".npy":
        if labels is not None:
            raise DataError(f"{path}: an .npy holds no labels; save labelled images as .npz")
        atomic_write(path, lambda f: np.save(f, x))
        return
    arrays = {"x": x} if labels is None else {"x": x, "labels": np.asarray(labels)}
    atomic_write(path, lambda f: np.savez(f, **arrays))
