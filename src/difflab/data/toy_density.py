"""The exact log-densities of the toy distributions of ``data/toy.py`` (their generators and
constants live there): log p(x), the class-conditional log p(x | c) of the mixtures and the
class posteriors p(c | x), for E_q[-log p], H(p) and the classifier-free guidance metrics.

Each ``*_log_prob(x)`` takes (n, 2) points and returns log p(x) (n,) float64, exact up to
quadrature error far below 1e-6 in relative terms: closed forms for the mixtures, the
checkerboard and the circles (a Bessel function), a change of variables for the pinwheel, and
composite Gauss-Legendre quadrature over the latent curve parameter for the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from difflab.data.toy import (
    CIRCLES_NOISE_STD,
    CIRCLES_RADII,
    GAUSSIANS_STD,
    MOONS_CENTER,
    MOONS_NOISE_STD,
    PINWHEEL_ARMS,
    PINWHEEL_RADIAL_STD,
    PINWHEEL_RATE,
    PINWHEEL_TANGENTIAL_STD,
    SPIRALS_NOISE_STD,
    SPIRALS_SCALE,
    SPIRALS_TURN,
    SWISS_ROLL_DIVISOR,
    SWISS_ROLL_NOISE,
    _check_mixture,
    gaussians_centers,
    toy_num_classes,
)

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
