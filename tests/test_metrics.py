"""Energy distance, MMD and the noise-floor comparison."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import cdist, pdist

from difflab.metrics import compare_to_reference, energy_distance, median_bandwidth, mmd_rbf


def _gauss(n: int, seed: int, shift: float = 0.0, d: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _energy_brute(x: np.ndarray, y: np.ndarray) -> float:
    return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()


def _mmd_brute(x: np.ndarray, y: np.ndarray, h: float) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-cdist(a, b, "sqeuclidean") / (2 * h**2)).mean())

    return k(x, x) + k(y, y) - 2 * k(x, y)


def test_energy_distance_zero_symmetric_and_brute_force() -> None:
    x, y = _gauss(300, 0), _gauss(200, 1, shift=0.3)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)
    assert energy_distance(x, y) == pytest.approx(_energy_brute(x, y), rel=1e-10)
    assert energy_distance(x, _gauss(200, 2, shift=1.0)) > energy_distance(x, y) > 0


def test_energy_distance_is_scipy_squared_in_1d() -> None:
    # scipy: D(u, v) = sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) over the empirical distributions,
    # which is sqrt(2) times the Cramér distance; so our V-statistic is scipy's value squared.
    u, v = _gauss(150, 3, d=1), _gauss(120, 4, shift=0.5, d=1)
    scipy_value = scipy.stats.energy_distance(u[:, 0], v[:, 0])
    assert energy_distance(u, v) == pytest.approx(scipy_value**2, rel=1e-10)


def test_mmd_zero_positive_and_brute_force() -> None:
    x, y = _gauss(300, 0), _gauss(200, 1, shift=0.5)
    assert mmd_rbf(x, x) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(x, y, bandwidth=0.7) == pytest.approx(_mmd_brute(x, y, 0.7), rel=1e-10)
    h = median_bandwidth(y)
    assert mmd_rbf(x, y) == pytest.approx(_mmd_brute(x, y, h), rel=1e-10)
    assert mmd_rbf(x, _gauss(200, 2, shift=1.5), bandwidth=h) > mmd_rbf(x, y, bandwidth=h) > 0


def test_chunked_equals_unchunked() -> None:
    x, y = _gauss(53, 0, d=3), _gauss(37, 1, shift=0.2, d=3)
    for chunk in (1, 7, 16):
        assert energy_distance(x, y, chunk_size=chunk) == pytest.approx(
            energy_distance(x, y, chunk_size=10_000), rel=1e-12
        )
        assert mmd_rbf(x, y, bandwidth=1.0, chunk_size=chunk) == pytest.approx(
            mmd_rbf(x, y, bandwidth=1.0, chunk_size=10_000), rel=1e-12
        )


def test_median_bandwidth_uses_first_2000_rows() -> None:
    y = _gauss(2100, 5)
    y[2000:] *= 100  # rows beyond the subsample must not matter
    assert median_bandwidth(y) == pytest.approx(float(np.median(pdist(y[:2000]))), rel=1e-12)


def test_torch_and_numpy_inputs_agree() -> None:
    x, y = _gauss(100, 0), _gauss(80, 1)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    x32, y32 = xt.double().numpy(), yt.double().numpy()
    assert energy_distance(xt, yt) == pytest.approx(energy_distance(x32, y32), rel=1e-12)
    assert mmd_rbf(xt, y32) == pytest.approx(mmd_rbf(x32, yt), rel=1e-12)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros(5), np.zeros((5, 1)), "2-D"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "same dimension"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN/inf"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 rows"),
        (np.ones((3, 2), dtype=complex), np.zeros((3, 2)), "real numbers"),
    ],
)
def test_invalid_inputs(x: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        energy_distance(x, y)
    with pytest.raises(ValueError, match=match):
        mmd_rbf(x, y, bandwidth=1.0)


def test_bad_bandwidth_and_chunk_size() -> None:
    x = _gauss(10, 0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_rbf(x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        energy_distance(x, x, chunk_size=0)


def test_compare_to_reference_noise_floor() -> None:
    # For N(0, I) data with n = 500 and 4 floor draws, the same-distribution ratio ranged over
    # 0.25..1.8 (energy) and 0.15..2.0 (MMD) across 20 seeds, while a shift of 0.5 gave ~35:
    # a single ratio is noisy, so the bounds here are loose.
    n = 500
    reference = _gauss(2000, 0)
    floor_draws = [_gauss(n, 10 + i) for i in range(4)]
    same = compare_to_reference(_gauss(n, 1), reference, floor_draws)
    shifted = compare_to_reference(_gauss(n, 2, shift=0.5), reference, floor_draws)
    assert set(same) == {"energy_distance", "mmd"}
    for name in same:
        assert set(same[name]) == {"value", "floor", "ratio", "floor_std"}
        assert same[name]["ratio"] == pytest.approx(same[name]["value"] / same[name]["floor"])
        assert 0.1 < same[name]["ratio"] < 3.0
        assert shifted[name]["ratio"] > 10.0
        assert shifted[name]["floor"] == same[name]["floor"]


def test_compare_to_reference_validates_floor_draws() -> None:
    x = _gauss(50, 0)
    with pytest.raises(ValueError, match="at least one"):
        compare_to_reference(x, x, [])
    with pytest.raises(ValueError, match="same sample size"):
        compare_to_reference(x, x, [_gauss(40, 1)])
    with pytest.raises(ValueError, match="same sample size and dimension"):
        compare_to_reference(x, x, [_gauss(50, 1, d=3)])
