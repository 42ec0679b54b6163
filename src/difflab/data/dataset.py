"""A training set in memory, with the normalisation that maps it to the model's space and its
class labels, if it has them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Classes:
    """The classes of a labelled dataset: label c in 0..K-1 is ``names[c]``, with ``counts[c]``
    training examples (recorded in the run's manifest, so a run knows its classes)."""

    names: tuple[str, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.counts) or not self.names:
            raise ValueError(f"classes need one count per name, got {self.names}, {self.counts}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, labels: np.ndarray, names: list[str] | None = None) -> Classes:
        """The classes 0..max(labels) (or 0..len(names)-1) and their counts."""
        k = len(names) if names is not None else int(labels.max()) + 1
        counts = np.bincount(labels, minlength=k)
        return cls(tuple(names or [str(c) for c in range(k)]), tuple(int(v) for v in counts))

    def info(self) -> dict[str, Any]:
        return {"names": list(self.names), "counts": list(self.counts)}


@dataclass
class Dataset:
    """``x``: the training data in model space, (N, *shape) float32.

    ``mean`` and ``std`` (per feature, or None) map the user's data to model space:
    x_model = (x_user - mean) / std; :meth:`decode` maps samples back. ``levels`` is the number
    of discrete values per dimension for data on a grid scaled to [-1, 1] (256 for 8-bit
    images), so likelihoods use the discretized decoder; None for continuous data.
    ``labels``: the class of each example, (N,) int64 in 0..K-1, with ``classes`` describing
    them (a dataset loaded from a run's manifest has ``classes`` but no labels); None for
    unlabelled data.
    """

    name: str
    x: torch.Tensor
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    levels: int | None = None
    labels: torch.Tensor | None = None
    classes: Classes | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            if self.labels.shape != (self.x.shape[0],):
                raise ValueError(
                    f"{self.name}: {self.labels.shape[0]} labels for {self.x.shape[0]} examples"
                )
            if self.classes is None:
                self.classes = Classes.of(self.labels.numpy())

    @property
    def is_image(self) -> bool:
        """Images (N, C, H, W) on ``levels`` grid values in [-1, 1] (see data/images.py)."""
        return self.levels is not None and len(self.shape) == 3

    @property
    def num_classes(self) -> int | None:
        """K for labelled data (classes 0..K-1), else None."""
        return None if self.classes is None else self.classes.num_classes

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
        """What a run records about its data (manifest.json); ``classes`` only if labelled."""
        info = {
            "name": self.name,
            "shape": list(self.shape),
            "n_train": int(self.x.shape[0]),
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "levels": self.levels,
        }
        if self.classes is not None:
            info["classes"] = self.classes.info()
        return info

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Dataset:
        """An empty dataset carrying a run's recorded shape, normalisation and classes."""
        mean = None if info.get("mean") is None else np.asarray(info["mean"], dtype=np.float32)
        std = None if info.get("std") is None else np.asarray(info["std"], dtype=np.float32)
        recorded = info.get("classes")
        classes = None
        if recorded is not None:
            classes = Classes(tuple(recorded["names"]), tuple(recorded["counts"]))
        empty = torch.empty(0, *info["shape"])
        return cls(info["name"], empty, mean, std, info.get("levels"), classes=classes)


def standardize(
    name: str, x: np.ndarray, labels: np.ndarray | None = None, classes: Classes | None = None
) -> Dataset:
    """Per-feature zero mean and unit variance (constant features keep std 1); labels kept."""
    mean = x.mean(axis=0).astype(np.float32)
    std = x.std(axis=0).astype(np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    x_model = torch.from_numpy((x - mean) / std).float()
    return Dataset(name, x_model, mean, std, labels=as_label_tensor(labels), classes=classes)


def as_label_tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    """Labels (N,) as an int64 tensor (None stays None)."""
    return None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
