"""A training set in memory, with the normalisation that maps it to the model's space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Dataset:
    """``x``: the training data in model space, (N, *shape) float32.

    ``mean`` and ``std`` (per feature, or None) map the user's data to model space:
    x_model = (x_user - mean) / std; :meth:`decode` maps samples back. ``levels`` is the number
    of discrete values per dimension for data on a grid scaled to [-1, 1] (256 for 8-bit
    images), so likelihoods use the discretized decoder; None for continuous data.
    """

    name: str
    x: torch.Tensor
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    levels: int | None = None

    @property
    def is_image(self) -> bool:
        """Images (N, C, H, W) on ``levels`` grid values in [-1, 1] (see data/images.py)."""
        return self.levels is not None and len(self.shape) == 3

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(self.x.shape[1:])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """User space -> model space."""
        if self.mean is None or self.std is None:
            return x.astype(np.float32)
        return ((x - self.mean) / self.std).astype(np.float32)

    def decode(self, x: np.ndarray) -> np.ndarray:
        """Model space -> user space."""
        if self.mean is None or self.std is None:
            return x
        return (x * self.std + self.mean).astype(np.float32)

    def info(self) -> dict[str, Any]:
        """What a run records about its data (manifest.json)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "n_train": int(self.x.shape[0]),
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "levels": self.levels,
        }

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Dataset:
        """An empty dataset carrying a run's recorded shape and normalisation."""
        mean = None if info.get("mean") is None else np.asarray(info["mean"], dtype=np.float32)
        std = None if info.get("std") is None else np.asarray(info["std"], dtype=np.float32)
        return cls(info["name"], torch.empty(0, *info["shape"]), mean, std, info.get("levels"))


def standardize(name: str, x: np.ndarray) -> Dataset:
    """Per-feature zero mean and unit variance (constant features keep std 1)."""
    mean = x.mean(axis=0).astype(np.float32)
    std = x.std(axis=0).astype(np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return Dataset(name, torch.from_numpy((x - mean) / std).float(), mean, std)
