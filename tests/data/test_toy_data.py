"""Toy generators: reproducibility, shapes, and moments of their documented processes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_swiss_roll

from difflab.data import toy
from difflab.data.toy import TOY_DATASETS, sample_toy, toy_names

NAMES = toy_names()


def test_names() -> None:
    first = ["swiss_roll", "moons", "circles", "8gaussians", "checkerboard", "pinwheel"]
    assert [*first, "2spirals"] == NAMES
    assert list(TOY_DATASETS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range(name: str) -> None:
    x = sample_toy(name, 1000, seed=0)
    assert x.shape == (1000, 2)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert np.abs(x).max() < 2.7  # "roughly within [-2, 2]"


@pytest.mark.parametrize("name", NAMES)
def test_seeded_reproducible(name: str) -> None:
    fn = TOY_DATASETS[name]
    np.testing.assert_array_equal(sample_toy(name, 200, seed=1), sample_toy(name, 200, seed=1))
    assert not np.array_equal(sample_toy(name, 200, seed=1), sample_toy(name, 200, seed=2))
    a = fn(200, generator=np.random.default_rng(5))
    b = fn(200, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    assert not np.array_equal(fn(200, generator=rng), fn(200, generator=rng))


def test_swiss_roll_is_the_sklearn_recipe() -> None:
    x3, _ = make_swiss_roll(500, noise=0.5, random_state=7)
    expected = (x3[:, [0, 2]] / 10).astype(np.float32)
    np.testing.assert_array_equal(toy.swiss_roll(500, generator=7), expected)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'x'; choose one of 'swiss_roll', "):
        sample_toy("x", 10)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match="positive int"):
        toy.moons(n)  # type: ignore[arg-type]


# E|x|^2 of each documented process (n = 20000: the tolerances are > 4 standard errors).
# swiss roll: E t^2 / 100 + 2 * 0.05^2 with t ~ U(1.5 pi, 4.5 pi), E t^2 = 9.75 pi^2.
# moons: E|c|^2 = 1 (arm 0), 2.25 - 2/pi (arm 1), E c = (0.5, 0.25): 1.3125 - 1/pi + 2 * 0.1^2.
# circles: (1 + 0.25) / 2 + 2 * 0.05^2. 8gaussians: 4 + 2 * 0.01.
# checkerboard: x1 ~ U[-2, 2] and x2 ~ U[-2, 2] marginally: 4/3 + 4/3.
# pinwheel: |x| = |(a, b)|: 1 + 0.3^2 + 0.1^2. 2spirals: (2/(3 pi))^2 (3 pi)^2 / 2 + 2 * 0.05^2.
SECOND_MOMENTS = {
    "swiss_roll": 9.75 * np.pi**2 / 100 + 2 * 0.05**2,
    "moons": 1.3125 - 1 / np.pi + 2 * 0.1**2,
    "circles": 0.625 + 2 * 0.05**2,
    "8gaussians": 4.0 + 2 * 0.1**2,
    "checkerboard": 8.0 / 3.0,
    "pinwheel": 1.0 + 0.3**2 + 0.1**2,
    "2spirals": 2.0 + 2 * 0.05**2,
}


@pytest.mark.parametrize("name", NAMES)
def test_second_moment_matches_process(name: str) -> None:
    x = sample_toy(name, 20_000, seed=0).astype(np.float64)
    assert np.mean(np.sum(x**2, axis=1)) == pytest.approx(SECOND_MOMENTS[name], rel=0.03)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "swiss_roll"])
def test_centred(name: str) -> None:
    x = sample_toy(name, 20_000, seed=0)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.05)


def test_moons_lie_on_the_arcs() -> None:
    rng = np.random.default_rng(0)
    x = toy.moons(20_000, generator=rng).astype(np.float64) + np.array(toy.MOONS_CENTER)
    # distance to the nearer arc's circle: outer centred (0, 0), inner centred (1, 0.5)
    r0 = np.abs(np.linalg.norm(x, axis=1) - 1)
    r1 = np.abs(np.linalg.norm(x - np.array([1.0, 0.5]), axis=1) - 1)
    # the residual is about the normal component of the N(0, 0.1^2 I) noise (RMS 0.1), a little
    # less where the two circles are close
    residual = np.minimum(r0, r1)
    assert np.sqrt(np.mean(residual**2)) == pytest.approx(0.1, rel=0.15)


def test_eight_gaussians_residual_std() -> None:
    x = toy.eight_gaussians(20_000, generator=0).astype(np.float64)
    centers = toy.gaussians_centers()
    nearest = centers[np.argmin(((x[:, None] - centers[None]) ** 2).sum(-1), axis=1)]
    np.testing.assert_allclose((x - nearest).std(axis=0), 0.1, rtol=0.03)
    assert len(np.unique(nearest, axis=0)) == 8


def test_checkerboard_on_black_squares() -> None:
    x = toy.checkerboard(20_000, generator=0).astype(np.float64)
    assert ((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0).all()
    assert (np.abs(x) <= 2).all()
    counts = np.unique(np.floor(x), axis=0, return_counts=True)[1]
    assert len(counts) == 8
    np.testing.assert_allclose(counts / len(x), 1 / 8, atol=0.01)


def test_circles_radii() -> None:
    x = toy.circles(20_000, generator=0).astype(np.float64)
    r = np.linalg.norm(x, axis=1)
    outer = r > 0.75
    assert outer.mean() == pytest.approx(0.5, abs=0.02)
    assert r[outer].mean() == pytest.approx(1.0, abs=0.01)
    assert r[~outer].mean() == pytest.approx(0.5, abs=0.01)
