"""Sample quality for the 8x8 digits: a Frechet distance in a classifier's features and the
histogram of predicted classes (mode coverage).

The classifier is a small CNN trained once, with a fixed seed, on the digits training split
(data/images.split_indices) and cached as safetensors in the user's cache directory
(``$DIFFLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/difflab``, else ``~/.cache/difflab``); nothing
is downloaded. The Frechet distance (Heusel et al. 2017, the FID formula) is computed in its
penultimate layer (64 features) between samples and the test split; its noise floor is the
same distance between the training split and the test split, so a ratio near 1 means samples
are as close to the test images as held-out real digits are.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from difflab.atomic import atomic_write_bytes, temp_path
from difflab.data.images import (
    DIGITS_LEVELS,
    load_digits_images,
    load_digits_labels,
    split_indices,
    to_model_space,
    to_user_space,
)
from difflab.metrics import spread_ratio, summarize_classes

CLASSIFIER_FILE = "digits_classifier_v1.safetensors"
FEATURES = 64


class DigitsClassifier(nn.Module):
    """(B, 1, 8, 8) in [-1, 1] -> logits (B, 10); ``features`` gives the penultimate layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def cache_dir() -> Path:
    """Where the classifier is cached: $DIFFLAB_CACHE_DIR, $XDG_CACHE_HOME/difflab or
    ~/.cache/difflab."""
    if os.environ.get("DIFFLAB_CACHE_DIR"):
        return Path(os.environ["DIFFLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "difflab"


def digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split of the digits in model space (N, 1, 8, 8) and its labels (N,)."""
    idx = split_indices(1797, split)
    x = to_model_space(load_digits_images()[idx], DIGITS_LEVELS)
    return torch.from_numpy(x), torch.from_numpy(load_digits_labels()[idx])


def train_classifier(*, epochs: int = 30, seed: int = 0) -> DigitsClassifier:
    """Train the classifier on the training split (Adam, batches of 128, seeded)."""
    x, y = digits_split("train")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).split(128):
            # Small random shifts (up to one pixel) make the features robust to jitter.
            shifts = torch.randint(-1, 2, (2,), generator=generator).tolist()
            batch = torch.roll(x[idx], shifts=shifts, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(batch), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def check_classifier_cache(directory: str | Path | None = None) -> None:
    """A one-line ValueError, before any work, if the classifier is not cached and cannot be
    (the cache path is a file, or a folder that takes no files)."""
    path = Path(directory) if directory is not None else cache_dir()
    if (path / CLASSIFIER_FILE).is_file():
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = temp_path(path / "probe")
        probe.write_bytes(b"0")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"the digits classifier cache {path} is unusable ({err.strerror or err}); set "
            "DIFFLAB_CACHE_DIR to a writable folder"
        ) from None


def load_classifier(directory: str | Path | None = None) -> DigitsClassifier:
    """The cached classifier, trained and cached first if it is not there yet; a damaged
    cache file (truncated, not the classifier's weights) is rebuilt with a warning."""
    path = Path(directory) if directory is not None else cache_dir()
    file = path / CLASSIFIER_FILE
    model = DigitsClassifier()
    if file.is_file():
        try:
            model.load_state_dict(load_file(file))
            return model.eval()
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            message = f"the cached digits classifier {file} is damaged ({reason}); retraining it"
            warnings.warn(message, stacklevel=2)
    check_classifier_cache(path)
    model = train_classifier()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(file, safetensors.torch.save(state))
    return model


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between feature sets (N, F)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr (S_a S_b)^(1/2) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD
    # matrix: stable even when a covariance is singular (dead ReLU features).
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)


@torch.no_grad()
def _features_and_classes(
    model: DigitsClassifier, x: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    feats = model.features(x)
    return feats.numpy(), model.head(feats).argmax(1).numpy()


def digits_quality(
    samples: np.ndarray,
    *,
    classifier: DigitsClassifier | None = None,
    classifier_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Frechet distance of samples (N, 1, 8, 8) in model space to the test split, its floor
    and the ratio; the predicted-class histogram of the samples.

    The floor is the distance from min(N, 1258) training images (a seeded draw) to the test
    split: the same number of held-out real digits, since the estimate's bias depends on N.
    Samples are first rounded to the 17 levels, as ``difflab sample`` writes them. The
    classifier is the cached one (:func:`load_classifier`) unless one is given.
    """
    x = np.asarray(samples)
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
        raise ValueError(f"digits samples must have shape (N, 1, 8, 8), got {x.shape}")
    if x.shape[0] < 2:
        raise ValueError("the digits metric needs at least 2 samples")
    model = classifier if classifier is not None else load_classifier(classifier_dir)
    quantized = to_model_space(to_user_space(x, DIGITS_LEVELS), DIGITS_LEVELS)
    sample_feats, classes = _features_and_classes(model, torch.from_numpy(quantized))
    test_x, test_y = digits_split("test")
    train_x, _ = digits_split("train")
    n_floor = min(x.shape[0], train_x.shape[0])
    train_x = train_x[np.random.default_rng(0).permutation(train_x.shape[0])[:n_floor]]
    test_feats, test_pred = _features_and_classes(model, test_x)
    train_feats, _ = _features_and_classes(model, train_x)
    value = frechet_distance(sample_feats, test_feats)
    floor = frechet_distance(train_feats, test_feats)
    return {
        "frechet_distance": {"value": value, "floor": floor, "ratio": value / floor},
        "class_histogram": np.bincount(classes, minlength=10).tolist(),
        "classifier_test_accuracy": float((test_pred == test_y.numpy()).mean()),
        "n_samples": int(x.shape[0]),
        "n_floor": int(n_floor),
    }


def digits_class_quality(
    samples: np.ndarray,
    labels: np.ndarray,
    *,
    classifier: DigitsClassifier | None = None,
    classifier_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Class-conditional digits samples (N, 1, 8, 8) in model space asked to be of classes
    ``labels`` (N,): the classifier's accuracy (overall and per class, beside its accuracy on
    the test split), and per class the Frechet distance of the class's samples to the test
    images of that class with its floor (min(n_c, training images of the class) training images
    of the class against the same test images). Samples are rounded to the 17 levels first."""
    x, labels = np.asarray(samples), np.asarray(labels)
    if x.ndim != 4 or x.shape[1:] != (1, 8, 8) or labels.shape != (x.shape[0],):
        raise ValueError(
            f"need samples (N, 1, 8, 8) and labels (N,), got {x.shape}, {labels.shape}"
        )
    model = classifier if classifier is not None else load_classifier(classifier_dir)
    quantized = to_model_space(to_user_space(x, DIGITS_LEVELS), DIGITS_LEVELS)
    feats, predicted = _features_and_classes(model, torch.from_numpy(quantized))
    test_x, test_y = digits_split("test")
    train_x, train_y = digits_split("train")
    test_feats, test_pred = _features_and_classes(model, test_x)
    rng = np.random.default_rng(0)
    per_class = []
    for c in np.unique(labels):
        mine = labels == c
        row: dict[str, Any] = {"class": int(c), "n": int(mine.sum())}
        row["accuracy"] = float((predicted[mine] == c).mean())
        if mine.sum() >= 2:
            ref = test_feats[test_y.numpy() == c]
            pool = np.flatnonzero(train_y.numpy() == c)
            floor_idx = rng.permutation(pool)[: min(int(mine.sum()), pool.size)]
            floor_feats, _ = _features_and_classes(model, train_x[floor_idx])
            value, floor = frechet_distance(feats[mine], ref), frechet_distance(floor_feats, ref)
            row.update(frechet_distance=value, frechet_floor=floor, frechet_ratio=value / floor)
            row["spread_ratio"] = spread_ratio(feats[mine], ref)  # in the classifier's features
        per_class.append(row)
    return summarize_classes(
        {
            "accuracy": float((predicted == labels).mean()),
            "classifier_test_accuracy": float((test_pred == test_y.numpy()).mean()),
        },
        per_class,
    )
