"""``[data]`` -> data: the training set, the splits of an image source, and fresh draws of a toy
distribution for evaluation (the registry's ``DATASETS`` says which source each name is).

Class labels are read only when asked for (``labels=True``: class-conditional runs), so an
unconditional run reads its data exactly as before labels existed (a .csv column named
``label`` is then a data column, an .npz's ``labels`` array is ignored, class folders are
merged). Labelled sources: toy mixtures, the digits, labelled files and class folders."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from difflab.app.config import DataConfig
from difflab.app.registry import DATASETS
from difflab.app.resources import require_memory
from difflab.data import images
from difflab.data.dataset import Classes, Dataset, as_label_tensor, standardize
from difflab.data.files import load_labelled_vectors, load_vectors
from difflab.data.toy import sample_toy, sample_toy_labelled, toy_num_classes

#: Seeds for evaluation data, far from any training seed so fresh data is really fresh.
REFERENCE_SEED = 1_000_003


def build_dataset(cfg: DataConfig, *, seed: int = 0, labels: bool = False) -> Dataset:
    """The training data: a seeded toy draw of ``n_train`` points, the user's file, or the
    training split of an image source (in [-1, 1], ``levels`` recorded); with ``labels``, also
    the class labels (an error for a source without them)."""
    source = DATASETS[cfg.name].source
    if source == "image":
        return build_image_split(cfg, "train", labels=labels)
    y = None
    if source == "file":
        assert cfg.path is not None
        x, y = load_labelled_vectors(cfg.path) if labels else (load_vectors(cfg.path), None)
    elif labels:
        x, y = sample_toy_labelled(cfg.name, cfg.n_train, seed=seed)
    else:
        x = sample_toy(cfg.name, cfg.n_train, seed=seed)
    if labels and y is None:
        raise no_labels(cfg)
    classes = None if y is None else Classes.of(y, _toy_names(cfg.name))
    if cfg.normalize == "standardize":
        return standardize(cfg.name, x, y, classes)
    x_model = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return Dataset(cfg.name, x_model, labels=as_label_tensor(y), classes=classes)


#: Bytes per pixel value while images are resized and moved to model space (the resized
#: image, the stacked array, float32 in model space and its tensor).
RESIZE_BYTES_PER_VALUE = 12


def check_resize_fits(n_images: int, channels: int, image_size: int) -> None:
    """Refuse, before resizing, ``data.image_size`` values whose images cannot fit in memory."""
    needed = n_images * channels * image_size**2 * RESIZE_BYTES_PER_VALUE
    require_memory(
        needed,
        what=f"{n_images} images resized to data.image_size = {image_size}",
        fix="choose a smaller data.image_size (e.g. 32 or 64)",
    )


def _toy_names(name: str) -> list[str] | None:
    """Class names of a toy mixture: the component indices; None (0..K-1 from the labels) else."""
    k = toy_num_classes(name) if is_toy(name) else None
    return None if k is None else [str(c) for c in range(k)]


class ImageSource(NamedTuple):
    """Every image of an image source in user space, (N, H, W[, C]) integers, its levels, and
    its labels (N,) and class names (None for unlabelled images)."""

    x: np.ndarray
    levels: int
    labels: np.ndarray | None = None
    names: list[str] | None = None


def no_labels(cfg: DataConfig) -> ValueError:
    """The error for class-conditional training on data without labels."""
    where = f"{cfg.path} has" if cfg.path else f"data.name = {cfg.name!r} has"
    return ValueError(
        f"model.class_conditional = true needs class labels, but {where} none; use a toy mixture "
        "(8gaussians, pinwheel, ...), the digits, a .csv with a 'label' column, an .npz with a "
        "'labels' array or a folder of class sub-folders (or model.class_conditional = false)"
    )


def _count_image_files(folder: Path) -> int:
    """The image files of a folder and of its class sub-folders (for the memory check)."""
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        if p.is_dir() and not p.name.startswith("."):
            n += sum(1 for q in p.iterdir() if q.suffix.lower() in images.IMAGE_EXTENSIONS)
        elif p.suffix.lower() in images.IMAGE_EXTENSIONS:
            n += 1
    return n


def load_images(cfg: DataConfig, *, labels: bool = False) -> ImageSource:
    """Every image of an image source with its levels (a folder of 16-bit PNGs keeps its 65536
    levels) and, with ``labels``, its labels and class names (see :class:`ImageSource`; class
    folders are read either way)."""
    if cfg.name == "digits":
        digits = [str(c) for c in range(10)]
        y = images.load_digits_labels() if labels else None
        return ImageSource(images.load_digits_images(), images.DIGITS_LEVELS, y, digits)
    assert cfg.path is not None
    if cfg.name == "images":
        if cfg.image_size is not None:
            n_files = _count_image_files(Path(cfg.path))
            check_resize_fits(n_files, 1 if cfg.color == "grayscale" else 3, cfg.image_size)
        x, y, names = images.load_labelled_image_folder(
            cfg.path, image_size=cfg.image_size, color=cfg.color
        )
        levels = images.image_levels(x)
        return ImageSource(x, levels, y, names) if labels else ImageSource(x, levels)
    levels = cfg.levels or 256
    x, y = images.load_labelled_image_array(cfg.path, levels=levels, labels=labels)
    if cfg.image_size is not None and x.shape[1:3] != (cfg.image_size, cfg.image_size):
        check_resize_fits(x.shape[0], x.shape[3] if x.ndim == 4 else 1, cfg.image_size)
        if levels != 256:
            raise ValueError(
                f"data.image_size resizes 8-bit images only; these have data.levels = {levels}"
            )
        x = images.resize_array(x, cfg.image_size)
    return ImageSource(x, levels, y)


def build_image_split(cfg: DataConfig, split: str, *, labels: bool = False) -> Dataset:
    """The ``split`` ("train", "val", "test") of an image source as a Dataset in model space
    (N, C, H, W) in [-1, 1], with its number of levels (see data/images.split_indices) and, with
    ``labels``, its labels; the classes (names, counts) are those of the training split."""
    source = load_images(cfg, labels=labels)
    x, levels = source.x, source.levels
    idx = images.split_indices(x.shape[0], split)
    if idx.size == 0:
        raise ValueError(f"{cfg.name}: {x.shape[0]} images leave the {split} split empty")
    model_x = torch.from_numpy(images.to_model_space(x[idx], levels))
    if labels and source.labels is None:
        raise no_labels(cfg)
    if not labels or source.labels is None:
        return Dataset(cfg.name, model_x, levels=levels)
    train = source.labels[images.split_indices(x.shape[0], "train")]
    classes = Classes.of(train, source.names or [str(c) for c in range(source.labels.max() + 1)])
    labels = as_label_tensor(source.labels[idx])
    return Dataset(cfg.name, model_x, levels=levels, labels=labels, classes=classes)


def is_toy(name: str) -> bool:
    """Whether ``name`` is a toy generator (fresh draws and an exact density exist)."""
    return name in DATASETS and DATASETS[name].source == "toy"


def reference_data(name: str, n: int, *, seed: int = REFERENCE_SEED) -> np.ndarray | None:
    """Fresh data of a toy distribution (a new seeded draw), or None for other data."""
    return sample_toy(name, n, seed=seed) if is_toy(name) else None


def reference_class_data(
    name: str, label: int, n: int, *, seed: int = REFERENCE_SEED
) -> np.ndarray:
    """``n`` fresh points of class ``label`` of a toy mixture, (n, 2): the points of that class
    among a seeded labelled draw (an exact draw from p(x | c)), drawing more if needed."""
    k = toy_num_classes(name)
    if k is None or not 0 <= label < k:
        raise ValueError(f"{name!r} has no class {label}")
    m = int(1.2 * n * k) + 100
    while True:
        x, labels = sample_toy_labelled(name, m, seed=seed)
        mine = x[labels == label]
        if mine.shape[0] >= n:
            return mine[:n]
        m *= 2
