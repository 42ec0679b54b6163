"""Seeded 2-D toy distributions, each a documented generative process.

Every generator has the signature ``(n, *, generator=None) -> (n, 2) float32`` and is an explicit
process so that its exact log-density can be written down: either a finite mixture (closed
form) or a latent curve parameter with a known law plus isotropic Gaussian noise (a 1-D
integral over the latent). The constants below are the parameters those densities need.

``generator`` is a ``numpy.random.Generator``, an int seed (``numpy.random.default_rng(seed)``)
or None (fresh OS entropy). The swiss roll is the exception that proves the rule: it calls
scikit-learn, which needs a ``RandomState`` (see :func:`swiss_roll`).

All data lie roughly within [-2, 2]^2. The pinwheel, checkerboard and spirals follow FFJORD
(Grathwohl et al. 2019, ``lib/toy_data.py``) in shape, with the changes stated in each docstring.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SeedLike = np.random.Generator | int | None

SWISS_ROLL_NOISE = 0.5  # sklearn noise on every coordinate, before the division by 10
SWISS_ROLL_DIVISOR = 10.0  # so the 2-D noise std is 0.05
MOONS_CENTER = (0.5, 0.25)  # subtracted from sklearn's moons
MOONS_NOISE_STD = 0.1
CIRCLES_RADII = (1.0, 0.5)  # sklearn's make_circles with factor 0.5
CIRCLES_NOISE_STD = 0.05
GAUSSIANS_RADIUS = 2.0
GAUSSIANS_STD = 0.1
GAUSSIANS_COUNT = 8
PINWHEEL_ARMS = 5
PINWHEEL_RADIAL_STD = 0.3
PINWHEEL_TANGENTIAL_STD = 0.1
PINWHEEL_RATE = 0.25
SPIRALS_TURN = 3.0 * np.pi  # the latent s runs over [0, 3 pi] (540 degrees), as in FFJORD
SPIRALS_SCALE = 2.0 / (3.0 * np.pi)  # so the spirals end at radius 2
SPIRALS_NOISE_STD = 0.05


def as_generator(generator: SeedLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a Generator, an int seed or None."""
    if isinstance(generator, np.random.Generator):
        return generator
    return np.random.default_rng(generator)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int (the number of points), got {n!r}")


def _finish(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def swiss_roll(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """The tutorial's swiss roll: ``make_swiss_roll(n, noise=0.5)[0][:, [0, 2]] / 10``.

    Process: t ~ Uniform(1.5 pi, 4.5 pi) (uniform in the angle, not in arc length);
    x = (t cos t, t sin t) / 10 + N(0, 0.05^2 I). Exactly scikit-learn's draw, which also
    consumes a discarded height coordinate. An int or None ``generator`` is passed to sklearn as
    ``random_state`` unchanged; a ``numpy.random.Generator`` seeds a ``RandomState`` with one
    draw of ``generator.integers(2**32)``.

    Returns:
        (n, 2) float32, within about [-1.2, 1.5] x [-1.3, 1.6].
    """
    _check_n(n)
    random_state: int | np.random.RandomState | None
    if isinstance(generator, np.random.Generator):
        random_state = np.random.RandomState(int(generator.integers(2**32)))
    else:
        random_state = generator
    from sklearn.datasets import make_swiss_roll  # imported here: sklearn takes seconds to load

    x3, _ = make_swiss_roll(n, noise=SWISS_ROLL_NOISE, random_state=random_state)
    return _finish(x3[:, [0, 2]] / SWISS_ROLL_DIVISOR)


def moons(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two interleaving half circles, sklearn's ``make_moons`` shape with a random latent.

    Process: arm k ~ Bernoulli(1/2); theta ~ Uniform(0, pi);
    arm 0: c = (cos theta, sin theta), arm 1: c = (1 - cos theta, 0.5 - sin theta);
    x = c - (0.5, 0.25) + N(0, 0.1^2 I). (sklearn spaces theta evenly and splits n exactly in
    half; a random latent makes the points i.i.d. with a simple density.)

    Returns:
        (n, 2) float32, within about [-1.8, 1.8] x [-1.1, 1.1].
    """
    _check_n(n)
    rng = as_generator(generator)
    arm = rng.integers(0, 2, size=n)
    theta = rng.uniform(0.0, np.pi, size=n)
    sign = 1.0 - 2.0 * arm  # +1 for arm 0, -1 for arm 1
    c = np.stack([arm + sign * np.cos(theta), 0.5 * arm + sign * np.sin(theta)], axis=1)
    x = c - np.asarray(MOONS_CENTER) + MOONS_NOISE_STD * rng.standard_normal((n, 2))
    return _finish(x)


def circles(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two concentric circles, sklearn's ``make_circles(factor=0.5)`` shape with a random latent.

    Process: circle k ~ Bernoulli(1/2) with radius r_k in (1.0, 0.5); theta ~ Uniform(0, 2 pi);
    x = r_k (cos theta, sin theta) + N(0, 0.05^2 I).

    Returns:
        (n, 2) float32, within about [-1.2, 1.2]^2.
    """
    _check_n(n)
    rng = as_generator(generator)
    radius = np.asarray(CIRCLES_RADII)[rng.integers(0, 2, size=n)]
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    c = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return _finish(c + CIRCLES_NOISE_STD * rng.standard_normal((n, 2)))


def gaussians_centers() -> np.ndarray:
    """The 8 mixture means of :func:`eight_gaussians`: 2 (cos(k pi/4), sin(k pi/4)), (8, 2)."""
    angle = 2.0 * np.pi * np.arange(GAUSSIANS_COUNT) / GAUSSIANS_COUNT
    return GAUSSIANS_RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def eight_gaussians(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """An equal-weight mixture of 8 Gaussians on a circle (``"8gaussians"``).

    Process: k ~ Uniform{0..7}; x = 2 (cos(k pi/4), sin(k pi/4)) + N(0, 0.1^2 I).
    FFJORD uses radius 4 / sqrt(2) and std 0.5 / sqrt(2); this is a sharper, smaller version.

    Returns:
        (n, 2) float32, within about [-2.4, 2.4]^2.
    """
    _check_n(n)
    rng = as_generator(generator)
    k = rng.integers(0, GAUSSIANS_COUNT, size=n)
    return _finish(gaussians_centers()[k] + GAUSSIANS_STD * rng.standard_normal((n, 2)))


def checkerboard(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """FFJORD's checkerboard without its final factor 2: uniform on 8 black unit squares.

    Process: uniform on the squares [i, i+1) x [j, j+1), i, j in {-2, -1, 0, 1}, with i + j even;
    the density is 1/8 there and 0 elsewhere. Drawn as in FFJORD:
    x1 ~ U[-2, 2); x2 = u - 2b + (floor(x1) mod 2) with u ~ U[0, 1), b ~ Bernoulli(1/2).

    Returns:
        (n, 2) float32 in [-2, 2)^2.
    """
    _check_n(n)
    rng = as_generator(generator)
    x1 = rng.uniform(-2.0, 2.0, size=n)
    x2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n)
    x2 = x2 + np.floor(x1) % 2
    return _finish(np.stack([x1, x2], axis=1))


def pinwheel(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """FFJORD's pinwheel with i.i.d. arm labels and without its final factor 2.

    Process: arm k ~ Uniform{0..4}; (a, b) ~ N((1, 0), diag(0.3^2, 0.1^2));
    phi = 2 pi k / 5 + 0.25 exp(a); x = (a cos phi + b sin phi, -a sin phi + b cos phi),
    i.e. (a, b) rotated by -phi. Per arm the map (a, b) -> x has Jacobian determinant
    1 + 0.25 exp(a) b, so the density is a change of variables (invert numerically, 1-D in a).

    Returns:
        (n, 2) float32, within about [-2, 2]^2.
    """
    _check_n(n)
    rng = as_generator(generator)
    k = rng.integers(0, PINWHEEL_ARMS, size=n)
    std = np.array([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD])
    a, b = (rng.standard_normal((n, 2)) * std + np.array([1.0, 0.0])).T
    phi = 2.0 * np.pi * k / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(a)
    x = np.stack([a * np.cos(phi) + b * np.sin(phi), -a * np.sin(phi) + b * np.cos(phi)], axis=1)
    return _finish(x)


def two_spirals(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two interleaved spirals (``"2spirals"``), FFJORD's shape with pure Gaussian noise.

    Process: arm sign ~ Uniform{+1, -1}; s = 3 pi sqrt(u), u ~ U(0, 1) (density 2 s / (3 pi)^2
    on [0, 3 pi], about uniform in arc length); x = sign * (2 / (3 pi)) (-s cos s, s sin s)
    + N(0, 0.05^2 I). FFJORD adds U(0, 0.5) noise per coordinate before its scaling by 1/3 and
    then N(0, 0.1^2); here the noise is only Gaussian and the spirals end at radius 2.

    Returns:
        (n, 2) float32, within about [-2.1, 2.1]^2.
    """
    _check_n(n)
    rng = as_generator(generator)
    sign = 1.0 - 2.0 * rng.integers(0, 2, size=n)
    s = SPIRALS_TURN * np.sqrt(rng.uniform(0.0, 1.0, size=n))
    c = (sign * SPIRALS_SCALE * s)[:, None] * np.stack([-np.cos(s), np.sin(s)], axis=1)
    return _finish(c + SPIRALS_NOISE_STD * rng.standard_normal((n, 2)))


TOY_DATASETS: dict[str, Callable[..., np.ndarray]] = {
    "swiss_roll": swiss_roll,
    "moons": moons,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
}


def toy_names() -> list[str]:
    """The names accepted by :func:`sample_toy`, in registry order."""
    return list(TOY_DATASETS)


def sample_toy(name: str, n: int, *, seed: int | None = None) -> np.ndarray:
    """``n`` points of the toy dataset ``name``, (n, 2) float32; ``seed`` makes it reproducible."""
    if name not in TOY_DATASETS:
        choices = ", ".join(repr(k) for k in TOY_DATASETS)
        raise ValueError(f"unknown dataset {name!r}; choose one of {choices}")
    return TOY_DATASETS[name](n, generator=seed)
