"""Two-sample statistics for judging samples against data: energy distance and MMD.

Inputs are torch tensors or numpy arrays of shape (N, D) and (M, D). Pairwise terms are computed
in blocks of ``chunk_size`` rows with ``torch.cdist`` in float64, so 10,000 x 10,000 needs only
a few blocks' worth of memory. Both statistics are V-statistics (the within-sample means include
the zero diagonal): they are exactly 0 for identical sets and of order 1/n for two independent
draws of one distribution, which is the *noise floor* :func:`compare_to_reference` measures.
For class-conditional samples: the spread of samples relative to data (:func:`spread_ratio`)
and per-class rows summarized by their worst and mean values (:func:`summarize_classes`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

CHUNK_SIZE = 2048
MEDIAN_SUBSAMPLE = 2000

ArrayLike = torch.Tensor | np.ndarray


def _as_points(x: Any, name: str) -> torch.Tensor:
    """A float64 (N, D) tensor, or a ValueError saying what is wrong with ``x``."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{name} must be a numeric (N, D) array or tensor ({e})") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be real numbers, got dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if t.shape[0] < 2 or t.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column, got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN/inf values")
    return t


def _as_pair(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_points(x, "x"), _as_points(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"x and y must have the same dimension D, got {a.shape[1]} and {b.shape[1]}"
        )
    return a, b.to(a.device)


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")


def _mean_pairwise(
    a: torch.Tensor,
    b: torch.Tensor | None,
    fn: Callable[[torch.Tensor], torch.Tensor],
    chunk_size: int,
) -> float:
    """Mean over all i, j of fn(|a_i - b_j|), in (chunk_size x chunk_size) blocks.

    ``b = None`` means b = a: only blocks on and above the diagonal are computed and the
    off-diagonal ones count twice. ``fn`` may modify its argument in place.
    """
    a_blocks = a.split(chunk_size)
    b_blocks = a_blocks if b is None else b.split(chunk_size)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i, a_block in enumerate(a_blocks):
        for j, b_block in enumerate(b_blocks):
            if b is None and j < i:
                continue
            dist = torch.cdist(a_block, b_block, compute_mode="donot_use_mm_for_euclid_dist")
            weight = 2.0 if b is None and j > i else 1.0
            total += weight * fn(dist).sum()
    n_b = a.shape[0] if b is None else b.shape[0]
    return float(total) / (a.shape[0] * n_b)


def _mmd_form(
    a: torch.Tensor,
    b: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    chunk_size: int,
    *,
    yy: float | None = None,
) -> float:
    """E fn(X, X') + E fn(Y, Y') - 2 E fn(X, Y) of the distances; ``yy`` if already known."""
    if yy is None:
        yy = _mean_pairwise(b, None, fn, chunk_size)
    xx = _mean_pairwise(a, None, fn, chunk_size)
    return xx + yy - 2.0 * _mean_pairwise(a, b, fn, chunk_size)


def _negative_distance(d: torch.Tensor) -> torch.Tensor:
    """The energy distance is the MMD form with the "kernel" -|a - b| (Sejdinovic et al. 2013)."""
    return d.neg_()


def _gaussian_kernel(h: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """exp(-d^2 / (2 h^2)) of a distance block, computed in place."""

    def kernel(d: torch.Tensor) -> torch.Tensor:
        return d.square_().mul_(-0.5 / h**2).exp_()

    return kernel


def energy_distance(x: ArrayLike, y: ArrayLike, *, chunk_size: int = CHUNK_SIZE) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples (V-statistic).

    Euclidean distances; the expectations are over the empirical distributions, so the within-
    sample means include the zero diagonal. Equals ``scipy.stats.energy_distance(x, y) ** 2``
    in 1-D. Székely & Rizzo 2013, "Energy statistics: a class of statistics based on distances".

    Args:
        x: (N, D) samples. y: (M, D) samples.
        chunk_size: rows per block of the pairwise-distance computation.

    Returns:
        The (non-negative) energy distance, a Python float.
    """
    _check_chunk_size(chunk_size)
    a, b = _as_pair(x, y)
    return _mmd_form(a, b, _negative_distance, chunk_size)


def median_bandwidth(y: ArrayLike) -> float:
    """The median heuristic: median Euclidean distance between distinct points of ``y``.

    Uses the first 2000 rows of ``y`` (N, D) only, so it is deterministic and cheap.
    Gretton et al. 2012, "A kernel two-sample test".
    """
    b = _as_points(y, "y")[:MEDIAN_SUBSAMPLE]
    dist = torch.cdist(b, b, compute_mode="donot_use_mm_for_euclid_dist")
    i, j = torch.triu_indices(b.shape[0], b.shape[0], offset=1, device=b.device)
    h = float(np.median(dist[i, j].cpu().numpy()))  # torch.median takes the lower middle
    if h <= 0.0:
        raise ValueError("median_bandwidth: the points of y are (mostly) identical; pass bandwidth")
    return h


def mmd_rbf(
    x: ArrayLike,
    y: ArrayLike,
    *,
    bandwidth: float | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> float:
    """Squared MMD with the Gaussian kernel k(a, b) = exp(-|a - b|^2 / (2 h^2)) (V-statistic).

    MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y) over the empirical distributions (biased
    estimator MMD_b, diagonal included). Gretton et al. 2012, "A kernel two-sample test".

    Args:
        x: (N, D) samples. y: (M, D) reference samples.
        bandwidth: h > 0; None uses :func:`median_bandwidth` of ``y``.
        chunk_size: rows per block of the pairwise-distance computation.

    Returns:
        The squared MMD, a Python float.
    """
    _check_chunk_size(chunk_size)
    a, b = _as_pair(x, y)
    h = median_bandwidth(b) if bandwidth is None else float(bandwidth)
    if not h > 0.0 or not np.isfinite(h):
        raise ValueError(f"bandwidth must be a positive finite float, got {bandwidth}")
    return _mmd_form(a, b, _gaussian_kernel(h), chunk_size)


def compare_to_reference(
    samples: ArrayLike,
    reference: ArrayLike,
    floor_draws: Sequence[ArrayLike],
) -> dict[str, dict[str, float]]:
    """Energy distance and MMD of ``samples`` to ``reference``, each against its noise floor.

    Two independent finite samples of the *same* distribution still have a positive distance
    (of order 1/n for these V-statistics). The noise floor is that distance: the mean of the
    statistic between each extra independent data draw in ``floor_draws`` (each the same size
    as ``samples``) and ``reference``. ``ratio = value / floor``; a ratio near 1 means the
    samples are indistinguishable from the data at this sample size, and a large ratio means
    they are distinguishable. All MMDs use one bandwidth, the median heuristic of ``reference``.

    Args:
        samples: (N, D) model samples. reference: (M, D) data.
        floor_draws: one or more (N, D) data draws independent of ``reference``.

    Returns:
        ``{"energy_distance": {"value", "floor", "ratio", "floor_std"}, "mmd": {...}}``, all
        floats; ``floor_std`` is the spread of the floor draws (NaN with one draw), a scale for
        how far from 1 a ratio can land by chance.
    """
    a, ref = _as_pair(samples, reference)
    if len(floor_draws) == 0:
        raise ValueError("floor_draws must hold at least one independent data draw")
    draws = [_as_points(d, f"floor_draws[{i}]") for i, d in enumerate(floor_draws)]
    for i, d in enumerate(draws):
        if d.shape != a.shape:
            raise ValueError(
                f"floor_draws[{i}] has shape {tuple(d.shape)} but samples has "
                f"{tuple(a.shape)}; the noise floor must use the same sample size and dimension"
            )
    kernels = {
        "energy_distance": _negative_distance,
        "mmd": _gaussian_kernel(median_bandwidth(ref)),
    }
    result = {}
    for name, fn in kernels.items():
        yy = _mean_pairwise(ref, None, fn, CHUNK_SIZE)  # the reference's own term, once
        value = _mmd_form(a, ref, fn, CHUNK_SIZE, yy=yy)
        floors = np.array([_mmd_form(d, ref, fn, CHUNK_SIZE, yy=yy) for d in draws])
        floor = float(floors.mean())
        ratio = value / floor if floor > 0.0 else float("inf")
        spread = float(floors.std(ddof=1)) if len(floors) > 1 else float("nan")
        result[name] = {"value": value, "floor": floor, "ratio": ratio, "floor_std": spread}
    return result


class EnergyDistanceTo:
    """The energy distance of samples to one fixed reference set, its own term E|Y - Y'|
    computed once (a criterion evaluated many times against the same held-out data)."""

    def __init__(self, reference: ArrayLike, *, chunk_size: int = CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        self.reference = _as_points(reference, "reference")
        self.chunk_size = chunk_size
        self.yy = _mean_pairwise(self.reference, None, _negative_distance, chunk_size)

    def __call__(self, samples: ArrayLike) -> float:
        a, ref = _as_pair(samples, self.reference)
        return _mmd_form(a, ref, _negative_distance, self.chunk_size, yy=self.yy)


def spread_ratio(samples: np.ndarray, data: np.ndarray) -> float:
    """sqrt(tr Cov(samples) / tr Cov(data)): 1 as diverse as the data, < 1 collapsed."""
    q = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    p = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
    return float(np.sqrt(q.var(0, ddof=1).sum() / p.var(0, ddof=1).sum()))


def summarize_classes(result: dict[str, Any], per_class: list[dict[str, Any]]) -> dict[str, Any]:
    """``result`` with the per-class rows and their worst and mean values."""
    result["per_class"] = per_class
    result["min_class_accuracy"] = min(r["accuracy"] for r in per_class)
    for key in ("energy_ratio", "frechet_ratio"):
        values = [r[key] for r in per_class if key in r]
        if values:
            result[f"max_class_{key}"] = float(max(values))
            result[f"mean_class_{key}"] = float(np.mean(values))
    spreads = [r["spread_ratio"] for r in per_class if "spread_ratio" in r]
    if spreads:
        result["mean_spread_ratio"] = float(np.mean(spreads))
    return result
