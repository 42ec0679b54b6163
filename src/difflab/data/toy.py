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
class-conditional densities p(x | c) and posteriors p(c | x) are :func:`toy_class_log_prob` and
:func:`toy_class_posterior`, and log p(x) = log (1/K) sum_c p(x | c).

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


# --- exact log-densities ------------------------------------------------------------------------
#
# Each ``*_log_prob(x)`` takes (n, 2) points and returns log p(x) (n,) float64, exact up to
# quadrature error far below 1e-6 in relative terms: closed forms for the mixtures, the
# checkerboard and the circles (a Bessel function), a change of variables for the pinwheel, and
# composite Gauss-Legendre quadrature over the latent curve parameter for the rest.

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(6)
_CHUNK = 4096


def _as_points(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"toy log-densities take points of shape (n, 2), got {x.shape}")
    return x


def _gauss_legendre(
    lo: float, hi: float, curve: Callable[[np.ndarray], np.ndarray], std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Composite 6-point Gauss-Legendre nodes and weights on [lo, hi] for a latent s whose curve
    point is ``curve(s)``: panels span an arc length of at most ``std`` (the noise kernel's width)
    and at most 0.1 in s, so the integrand is resolved everywhere."""
    fine = np.linspace(lo, hi, 20_001)
    step = np.linalg.norm(np.diff(curve(fine), axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    n_panels = int(max(np.ceil(arc[-1] / std), np.ceil((hi - lo) / 0.1)))
    by_arc = np.interp(np.linspace(0.0, arc[-1], n_panels + 1), arc, fine)
    by_s = np.linspace(lo, hi, n_panels + 1)
    edges = np.sort(np.unique(np.concatenate([by_arc, by_s])))
    half = 0.5 * np.diff(edges)[:, None]
    mid = 0.5 * (edges[:-1] + edges[1:])[:, None]
    return (mid + half * _GL_NODES).ravel(), (half * _GL_WEIGHTS).ravel()


def _log_normal2(x: np.ndarray, centers: np.ndarray, std: float) -> np.ndarray:
    """log N(x_i; c_j, std^2 I) in 2-D, shape (n, m)."""
    d2 = (x**2).sum(1)[:, None] + (centers**2).sum(1)[None, :] - 2.0 * x @ centers.T
    d2 = np.maximum(d2, 0.0)  # the expanded square (BLAS, fast) can round below 0
    return -0.5 * d2 / std**2 - np.log(2.0 * np.pi * std**2)


def _logsumexp(a: np.ndarray, axis: int = 1) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - top).sum(axis=axis)) + top.squeeze(axis)


def _curve_log_prob(
    x: np.ndarray, curve_points: np.ndarray, log_weights: np.ndarray, std: float
) -> np.ndarray:
    """log sum_j w_j N(x; c_j, std^2 I): quadrature of the latent-curve mixture, chunked."""
    x = _as_points(x)
    out = np.empty(x.shape[0])
    for i in range(0, x.shape[0], _CHUNK):
        block = _log_normal2(x[i : i + _CHUNK], curve_points, std) + log_weights
        out[i : i + _CHUNK] = _logsumexp(block)
    return out


def swiss_roll_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x) of :func:`swiss_roll`: s ~ U(1.5 pi, 4.5 pi), x = s (cos s, sin s) / 10 + noise."""
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    std = SWISS_ROLL_NOISE / SWISS_ROLL_DIVISOR

    def curve(s: np.ndarray) -> np.ndarray:
        return np.stack([s * np.cos(s), s * np.sin(s)], 1) / SWISS_ROLL_DIVISOR

    s, w = _gauss_legendre(lo, hi, curve, std)
    return _curve_log_prob(x, curve(s), np.log(w) - np.log(hi - lo), std)


def _unit_circle(theta: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(theta), np.sin(theta)], 1)


def _moons_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | arm) of :func:`moons`, (n, 2): theta ~ U(0, pi) along the arm, Gaussian noise."""
    theta, w = _gauss_legendre(0.0, np.pi, _unit_circle, MOONS_NOISE_STD)
    arm0 = np.stack([np.cos(theta), np.sin(theta)], 1) - np.asarray(MOONS_CENTER)
    arm1 = np.stack([1.0 - np.cos(theta), 0.5 - np.sin(theta)], 1) - np.asarray(MOONS_CENTER)
    log_w = np.log(w / np.pi)
    return np.stack([_curve_log_prob(x, arm, log_w, MOONS_NOISE_STD) for arm in (arm0, arm1)], 1)


def _circles_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | circle) of :func:`circles`, (n, 2), in closed form: the angle integral of a
    Gaussian around a circle of radius r is exp(-(|x|^2 + r^2) / 2s^2) I_0(r |x| / s^2) /
    (2 pi s^2)."""
    from scipy.special import i0e

    x = _as_points(x)
    rho = np.linalg.norm(x, axis=1)[:, None]
    r = np.asarray(CIRCLES_RADII)[None, :]
    var = CIRCLES_NOISE_STD**2
    z = r * rho / var
    # log I_0(z) = log i0e(z) + z, stable for large z
    return -((rho - r) ** 2) / (2 * var) + np.log(i0e(z)) - np.log(2 * np.pi * var)


def _eight_gaussians_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | k) = log N(x; 2 (cos(k pi/4), sin(k pi/4)), 0.1^2 I), (n, 8)."""
    return _log_normal2(_as_points(x), gaussians_centers(), GAUSSIANS_STD)


def _checkerboard_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | square) of :func:`checkerboard`, (n, 8): 0 on the unit square (density 1),
    -inf elsewhere; squares numbered as in :func:`_draw_checkerboard`."""
    x = _as_points(x)
    i, j = np.floor(x[:, 0]), np.floor(x[:, 1])
    inside = np.all((x >= -2.0) & (x < 2.0), axis=1) & ((i + j) % 2 == 0)
    b = np.where(j == np.mod(i, 2), 0, 1)  # j = (i mod 2) - 2 b
    label = np.where(inside, 2 * (i + 2) + (1 - b), -1).astype(np.int64)
    out = np.full((x.shape[0], 8), -np.inf)
    out[inside, label[inside]] = 0.0
    return out


def _pinwheel_roots(x: np.ndarray, arm_angle: float, grid: int = 128) -> list[np.ndarray]:
    """Every (point index, a) with a = x1 cos phi(a) - x2 sin phi(a): the preimages of x."""
    radius = np.linalg.norm(x, axis=1)
    u = np.linspace(-1.0, 1.0, grid)
    a = radius[:, None] * u[None, :]  # |a| <= |x| because the map is a rotation of (a, b)

    def g(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        phi = arm_angle + PINWHEEL_RATE * np.exp(a)
        return a - (x[idx, 0:1] * np.cos(phi) - x[idx, 1:2] * np.sin(phi))

    values = g(a, np.arange(x.shape[0]))
    rows, cols = np.nonzero(np.sign(values[:, :-1]) != np.sign(values[:, 1:]))
    lo, hi = a[rows, cols], a[rows, cols + 1]
    g_lo = values[rows, cols]
    for _ in range(60):  # bisection to machine precision
        mid = 0.5 * (lo + hi)
        g_mid = g(mid[:, None], rows)[:, 0]
        left = np.sign(g_mid) == np.sign(g_lo)
        lo, g_lo = np.where(left, mid, lo), np.where(left, g_mid, g_lo)
        hi = np.where(left, hi, mid)
    return [rows, 0.5 * (lo + hi)]


def _pinwheel_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | arm) of :func:`pinwheel` by a change of variables, (n, 5): every preimage
    (a, b) of x under the arm's map contributes N(a; 1, 0.3^2) N(b; 0, 0.1^2) / |1 + 0.25
    exp(a) b|."""
    x = _as_points(x)
    density = np.zeros((x.shape[0], PINWHEEL_ARMS))
    sa, sb = PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD
    for k in range(PINWHEEL_ARMS):
        arm_angle = 2.0 * np.pi * k / PINWHEEL_ARMS
        rows, a = _pinwheel_roots(x, arm_angle)
        phi = arm_angle + PINWHEEL_RATE * np.exp(a)
        b = x[rows, 0] * np.sin(phi) + x[rows, 1] * np.cos(phi)
        log_ab = -0.5 * ((a - 1.0) / sa) ** 2 - 0.5 * (b / sb) ** 2 - np.log(2 * np.pi * sa * sb)
        jac = np.abs(1.0 + PINWHEEL_RATE * np.exp(a) * b)
        np.add.at(density[:, k], rows, np.exp(log_ab) / jac)
    with np.errstate(divide="ignore"):
        return np.log(density)


def _two_spirals_class_log_prob(x: np.ndarray) -> np.ndarray:
    """log p(x | arm) of :func:`two_spirals`, (n, 2): s with density 2 s / (3 pi)^2 along the
    arm (arm 0 the sign +1), Gaussian noise."""

    def curve(s: np.ndarray) -> np.ndarray:
        return SPIRALS_SCALE * s[:, None] * np.stack([-np.cos(s), np.sin(s)], 1)

    s, w = _gauss_legendre(0.0, SPIRALS_TURN, curve, SPIRALS_NOISE_STD)
    arm, log_w = curve(s), np.log(w * 2.0 * s / SPIRALS_TURN**2)
    return np.stack([_curve_log_prob(x, c, log_w, SPIRALS_NOISE_STD) for c in (arm, -arm)], 1)


#: log p(x | c) (n, K) of each mixture; the classes have equal probability 1 / K.
TOY_CLASS_LOG_PROBS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "moons": _moons_class_log_prob,
    "circles": _circles_class_log_prob,
    "8gaussians": _eight_gaussians_class_log_prob,
    "checkerboard": _checkerboard_class_log_prob,
    "pinwheel": _pinwheel_class_log_prob,
    "2spirals": _two_spirals_class_log_prob,
}


def _mixture_log_prob(name: str) -> Callable[[np.ndarray], np.ndarray]:
    def log_prob(x: np.ndarray) -> np.ndarray:
        return _logsumexp(TOY_CLASS_LOG_PROBS[name](x)) - np.log(toy_num_classes(name))

    log_prob.__doc__ = f"log p(x) of {name!r}: log (1/K) sum_c p(x | c)."
    return log_prob


moons_log_prob = _mixture_log_prob("moons")
circles_log_prob = _mixture_log_prob("circles")
eight_gaussians_log_prob = _mixture_log_prob("8gaussians")
checkerboard_log_prob = _mixture_log_prob("checkerboard")
pinwheel_log_prob = _mixture_log_prob("pinwheel")
two_spirals_log_prob = _mixture_log_prob("2spirals")


TOY_LOG_PROBS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "swiss_roll": swiss_roll_log_prob,
    "moons": moons_log_prob,
    "circles": circles_log_prob,
    "8gaussians": eight_gaussians_log_prob,
    "checkerboard": checkerboard_log_prob,
    "pinwheel": pinwheel_log_prob,
    "2spirals": two_spirals_log_prob,
}


def toy_log_prob(name: str, x: np.ndarray) -> np.ndarray:
    """The exact log-density (nats) of the toy dataset ``name`` at points x (n, 2): (n,) float64."""
    if name not in TOY_LOG_PROBS:
        choices = ", ".join(repr(k) for k in TOY_LOG_PROBS)
        raise ValueError(f"unknown dataset {name!r}; choose one of {choices}")
    return TOY_LOG_PROBS[name](x)


def toy_class_log_prob(name: str, x: np.ndarray) -> np.ndarray:
    """The exact class-conditional log-densities log p(x | c) (nats) of toy mixture ``name`` at
    points x (n, 2): (n, K) float64, column c the component c of its generator."""
    _check_mixture(name)
    return TOY_CLASS_LOG_PROBS[name](x)


def toy_class_posterior(name: str, x: np.ndarray) -> np.ndarray:
    """p(c | x) (n, K) of toy mixture ``name`` by Bayes' rule with equal class probabilities;
    rows of points outside every component's support (the checkerboard's white squares) are 0."""
    log_p = toy_class_log_prob(name, x)
    total = _logsumexp(log_p)
    with np.errstate(invalid="ignore"):
        post = np.exp(log_p - total[:, None])
    return np.where(np.isfinite(total)[:, None], post, 0.0)
