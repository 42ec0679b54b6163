"""``[data]`` -> data: the training set, the splits of an image source, and fresh draws of a toy
distribution for evaluation (the registry's ``DATASETS`` says which source each name is)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from difflab.app.config import DataConfig
from difflab.app.registry import DATASETS
from difflab.app.resources import require_memory
from difflab.data import images
from difflab.data.dataset import Dataset, standardize
from difflab.data.files import load_vectors
from difflab.data.toy import sample_toy

#: Seeds for evaluation data, far from any training seed so fresh data is really fresh.
REFERENCE_SEED = 1_000_003


def build_dataset(cfg: DataConfig, *, seed: int = 0) -> Dataset:
    """The training data: a seeded toy draw of ``n_train`` points, the user's file, or the
    training split of an image source (in [-1, 1], ``levels`` recorded)."""
    source = DATASETS[cfg.name].source
    if source == "image":
        return build_image_split(cfg, "train")
    if source == "file":
        assert cfg.path is not None
        x = load_vectors(cfg.path)
    else:
        x = sample_toy(cfg.name, cfg.n_train, seed=seed)
    if cfg.normalize == "standardize":
        return standardize(cfg.name, x)
    return Dataset(cfg.name, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


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


def load_images(cfg: DataConfig) -> tuple[np.ndarray, int]:
    """Every image of an image source in user space, (N, H, W[, C]) integers, and its levels
    (a folder of 16-bit PNGs keeps its 65536 levels)."""
    if cfg.name == "digits":
        return images.load_digits_images(), images.DIGITS_LEVELS
    assert cfg.path is not None
    if cfg.name == "images":
        if cfg.image_size is not None:
            found = Path(cfg.path).iterdir() if Path(cfg.path).is_dir() else []
            n_files = sum(1 for p in found if p.suffix.lower() in images.IMAGE_EXTENSIONS)
            check_resize_fits(n_files, 1 if cfg.color == "grayscale" else 3, cfg.image_size)
        x = images.load_image_folder(cfg.path, image_size=cfg.image_size, color=cfg.color)
        return x, images.image_levels(x)
    levels = cfg.levels or 256
    x = images.load_image_array(cfg.path, levels=levels)
    if cfg.image_size is not None and x.shape[1:3] != (cfg.image_size, cfg.image_size):
        check_resize_fits(x.shape[0], x.shape[3] if x.ndim == 4 else 1, cfg.image_size)
        if levels != 256:
            raise ValueError(
                f"data.image_size resizes 8-bit images only; these have data.levels = {levels}"
            )
        x = images.resize_array(x, cfg.image_size)
    return x, levels


def build_image_split(cfg: DataConfig, split: str) -> Dataset:
    """The ``split`` ("train", "val", "test") of an image source as a Dataset in model space
    (N, C, H, W) in [-1, 1], with its number of levels (see data/images.split_indices)."""
    x, levels = load_images(cfg)
    idx = images.split_indices(x.shape[0], split)
    if idx.size == 0:
        raise ValueError(f"{cfg.name}: {x.shape[0]} images leave the {split} split empty")
    model_x = images.to_model_space(x[idx], levels)
    return Dataset(cfg.name, torch.from_numpy(model_x), levels=levels)


def is_toy(name: str) -> bool:
    """Whether ``name`` is a toy generator (fresh draws and an exact density exist)."""
    return name in DATASETS and DATASETS[name].source == "toy"


def reference_data(name: str, n: int, *, seed: int = REFERENCE_SEED) -> np.ndarray | None:
    """Fresh data of a toy distribution (a new seeded draw), or None for other data."""
    return sample_toy(name, n, seed=seed) if is_toy(name) else None
