"""Seeded 2-D toy distributions, each a documented generative process.

Every generator has the signature ``(n, *, generator=None) -> (n, 2) float32`` and is an explicit
process so that its exact log-density can be written down: either a finite mixture (closed
form) or a latent curve parameter with a known law plus isotropic Gaussian noise (a 1-D
integral over the latent). The constants below are the parameters those densities need.

``generator`` is a ``numpy.random.Generator``, an int seed (``numpy.random.default_rng(seed)``)
or None (fresh OS entropy). The swiss roll is the exception that proves the rule: it calls
scikit-learn, which needs a ``RandomState`` (see :func:`swiss_roll`).

Classes: every dataset but the swiss roll is a mixture of K equally likely components (moons'
arms, circles, 8 Gaussians, checkerboard squares, pinwheel arms, spirals' arms), and the
component a point was drawn from is its class label (:func:`sample_toy_labelled`); the exact
class-conditional densities p(x | c) and posteriors p(c | x) are ``toy_class_log_prob`` and
``toy_class_posterior`` in ``data/toy_density.py`` (with every exact log p(x)), and log p(x) =
log (1/K) sum_c p(x | c).

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
    x = (t cos t, t sin t) / 10 + N(0, 0.05^2 I). Exactly scikit-learn's draw (its
    ``make_swiss_roll``: the same ``RandomState`` calls in the same order, including a discarded
    height coordinate and its noise), computed here because importing scikit-learn takes
    seconds. An int or None ``generator`` seeds a ``RandomState`` as scikit-learn does (None:
    fresh entropy); a ``numpy.random.Generator`` seeds one with ``generator.integers(2**32)``.

    Returns:
        (n, 2) float32, within about [-1.2, 1.5] x [-1.3, 1.6].
    """
    _check_n(n)
    if isinstance(generator, np.random.Generator):
        random_state = np.random.RandomState(int(generator.integers(2**32)))
    else:
        random_state = np.random.RandomState(generator)
    t = 1.5 * np.pi * (1 + 2 * random_state.uniform(size=n))
    random_state.uniform(size=n)  # the height of the 3-D roll, dropped
    noise = SWISS_ROLL_NOISE * random_state.standard_normal(size=(3, n))
    x = np.stack([t * np.cos(t) + noise[0], t * np.sin(t) + noise[2]], axis=1)
    return _finish(x / SWISS_ROLL_DIVISOR)


def moons(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two interleaving half circles, sklearn's ``make_moons`` shape with a random latent.

    Process: arm k ~ Bernoulli(1/2); theta ~ Uniform(0, pi);
    arm 0: c = (cos theta, sin theta), arm 1: c = (1 - cos theta, 0.5 - sin theta);
    x = c - (0.5, 0.25) + N(0, 0.1^2 I). (sklearn spaces theta evenly and splits n exactly in
    half; a random latent makes the points i.i.d. with a simple density.)

    Returns:
        (n, 2) float32, within about [-1.8, 1.8] x [-1.1, 1.1].
    """
    return _draw_moons(n, as_generator(generator))[0]


def _draw_moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _check_n(n)
    arm = rng.integers(0, 2, size=n)
    theta = rng.uniform(0.0, np.pi, size=n)
    sign = 1.0 - 2.0 * arm  # +1 for arm 0, -1 for arm 1
    c = np.stack([arm + sign * np.cos(theta), 0.5 * arm + sign * np.sin(theta)], axis=1)
    x = c - np.asarray(MOONS_CENTER) + MOONS_NOISE_STD * rng.standard_normal((n, 2))
    return _finish(x), arm


def circles(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two concentric circles, sklearn's ``make_circles(factor=0.5)`` shape with a random latent.

    Process: circle k ~ Bernoulli(1/2) with radius r_k in (1.0, 0.5); theta ~ Uniform(0, 2 pi);
    x = r_k (cos theta, sin theta) + N(0, 0.05^2 I).

    Returns:
        (n, 2) float32, within about [-1.2, 1.2]^2.
    """
    return _draw_circles(n, as_generator(generator))[0]


def _draw_circles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _check_n(n)
    k = rng.integers(0, 2, size=n)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    c = np.asarray(CIRCLES_RADII)[k][:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return _finish(c + CIRCLES_NOISE_STD * rng.standard_normal((n, 2))), k


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
    return _draw_eight_gaussians(n, as_generator(generator))[0]


def _draw_eight_gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _check_n(n)
    k = rng.integers(0, GAUSSIANS_COUNT, size=n)
    return _finish(gaussians_centers()[k] + GAUSSIANS_STD * rng.standard_normal((n, 2))), k


def checkerboard(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """FFJORD's checkerboard without its final factor 2: uniform on 8 black unit squares.

    Process: uniform on the squares [i, i+1) x [j, j+1), i, j in {-2, -1, 0, 1}, with i + j even;
    the density is 1/8 there and 0 elsewhere. Drawn as in FFJORD:
    x1 ~ U[-2, 2); x2 = u - 2b + (floor(x1) mod 2) with u ~ U[0, 1), b ~ Bernoulli(1/2).

    Returns:
        (n, 2) float32 in [-2, 2)^2.
    """
    return _draw_checkerboard(n, as_generator(generator))[0]


def _draw_checkerboard(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Also the square: label 2 (i + 2) + (1 - b) numbers the black squares [i, i+1) x [j, j+1)
    in the order of (i, j) (j = (i mod 2) - 2 b)."""
    _check_n(n)
    x1 = rng.uniform(-2.0, 2.0, size=n)
    u = rng.uniform(0.0, 1.0, size=n)
    b = rng.integers(0, 2, size=n)
    x2 = u - 2.0 * b
    x2 = x2 + np.floor(x1) % 2
    labels = 2 * (np.floor(x1).astype(np.int64) + 2) + (1 - b)
    return _finish(np.stack([x1, x2], axis=1)), labels


def pinwheel(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """FFJORD's pinwheel with i.i.d. arm labels and without its final factor 2.

    Process: arm k ~ Uniform{0..4}; (a, b) ~ N((1, 0), diag(0.3^2, 0.1^2));
    phi = 2 pi k / 5 + 0.25 exp(a); x = (a cos phi + b sin phi, -a sin phi + b cos phi),
    i.e. (a, b) rotated by -phi. Per arm the map (a, b) -> x has Jacobian determinant
    1 + 0.25 exp(a) b, so the density is a change of variables (invert numerically, 1-D in a).

    Returns:
        (n, 2) float32, within about [-2, 2]^2.
    """
    return _draw_pinwheel(n, as_generator(generator))[0]


def _draw_pinwheel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _check_n(n)
    k = rng.integers(0, PINWHEEL_ARMS, size=n)
    std = np.array([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD])
    a, b = (rng.standard_normal((n, 2)) * std + np.array([1.0, 0.0])).T
    phi = 2.0 * np.pi * k / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(a)
    x = np.stack([a * np.cos(phi) + b * np.sin(phi), -a * np.sin(phi) + b * np.cos(phi)], axis=1)
    return _finish(x), k


def two_spirals(n: int, *, generator: SeedLike = None) -> np.ndarray:
    """Two interleaved spirals (``"2spirals"``), FFJORD's shape with pure Gaussian noise.

    Process: arm sign ~ Uniform{+1, -1}; s = 3 pi sqrt(u), u ~ U(0, 1) (density 2 s / (3 pi)^2
    on [0, 3 pi], about uniform in arc length); x = sign * (2 / (3 pi)) (-s cos s, s sin s)
    + N(0, 0.05^2 I). FFJORD adds U(0, 0.5) noise per coordinate before its scaling by 1/3 and
    then N(0, 0.1^2); here the noise is only Gaussian and the spirals end at radius 2.

    Returns:
        (n, 2) float32, within about [-2.1, 2.1]^2.
    """
    return _draw_two_spirals(n, as_generator(generator))[0]


def _draw_two_spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    _check_n(n)
    arm = rng.integers(0, 2, size=n)  # arm 0: sign +1, arm 1: sign -1
    sign = 1.0 - 2.0 * arm
    s = SPIRALS_TURN * np.sqrt(rng.uniform(0.0, 1.0, size=n))
    c = (sign * SPIRALS_SCALE * s)[:, None] * np.stack([-np.cos(s), np.sin(s)], axis=1)
    return _finish(c + SPIRALS_NOISE_STD * rng.standard_normal((n, 2))), arm


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


#: The mixtures: each draw also returns the component it came from, the class label.
_LABELLED_DRAWS: dict[str, Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "moons": _draw_moons,
    "circles": _draw_circles,
    "8gaussians": _draw_eight_gaussians,
    "checkerboard": _draw_checkerboard,
    "pinwheel": _draw_pinwheel,
    "2spirals": _draw_two_spirals,
}


def toy_num_classes(name: str) -> int | None:
    """The number of mixture components (classes) of toy dataset ``name``; None for the swiss
    roll, whose latent is continuous."""
    return {"moons": 2, "circles": 2, "8gaussians": GAUSSIANS_COUNT, "checkerboard": 8,
            "pinwheel": PINWHEEL_ARMS, "2spirals": 2}.get(name)  # fmt: skip


def _check_mixture(name: str) -> None:
    """A one-line error unless ``name`` is a toy mixture (a dataset with classes)."""
    if name in _LABELLED_DRAWS:
        return
    labelled = ", ".join(map(repr, _LABELLED_DRAWS))
    what = "has no classes (its latent is continuous)" if name in TOY_DATASETS else "is unknown"
    raise ValueError(f"toy dataset {name!r} {what}; toy data with classes: {labelled}")


def sample_toy_labelled(
    name: str, n: int, *, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of a toy mixture and their class labels ((n, 2) float32, (n,) int64): the
    same points as :func:`sample_toy` with the same seed, and the component each was drawn
    from (see each generator's docstring). Every class has probability 1 / K."""
    _check_mixture(name)
    x, labels = _LABELLED_DRAWS[name](n, as_generator(seed))
    return x, labels.astype(np.int64)
