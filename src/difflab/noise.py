"""Noise processes: x_t = alpha(t) x_0 + sigma(t) eps, as samplers and Denoisers see them.

A sampler needs only alpha and sigma at the times of its grid, and quantities derived from
them: the log signal-to-noise ratio log(alpha^2 / sigma^2), the forward law between two times
and the Gaussian posterior. Every process answers in float64 at a *process time* t, with t = 0
the data (alpha = 1, sigma = 0) and ``t_max`` the start of sampling.

For the discrete schedules of DDPM (:class:`DiscreteProcess`) the process time is the paper's
time s in {0, 1, ..., T}: s = t + 1 is the state after the step of index t, which is the index
networks and schedule tables use (docs/conventions.md). Fractional times interpolate
u = -log alpha_bar linearly between the integers (as the ODE likelihood does).

Grids and the EDM sampler also need the inverse: ``time_at_sigma_bar(sigma_bar)`` is the time
whose noise level sigma / alpha is ``sigma_bar`` (Karras et al. 2022 cast every process in this
frame, their sigma). ``t_min`` is the smallest noise level a model of the process is used at
(the likelihood reads the data's density there); continuous processes live in continuous.py.

Symbols: for times t > s, q(x_t | x_s) = N(alpha_{t|s} x_s, sigma_{t|s}^2 I) with
alpha_{t|s} = alpha_t / alpha_s and sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2, and the
posterior q(x_s | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, sigma_{t|s}^2 sigma_s^2 / sigma_t^2 I)
with c_x0 = alpha_s sigma_{t|s}^2 / sigma_t^2, c_xt = alpha_{t|s} sigma_s^2 / sigma_t^2
(Kingma et al. 2021, Eqs. 2-3 and App. A).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from difflab.schedules import NoiseSchedule


class Posterior(NamedTuple):
    """q(x_s | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, var I), and log var (-inf at s = 0)."""

    c_x0: float
    c_xt: float
    var: float
    log_var: float


class NoiseProcess(ABC):
    """The interface every noise process implements: ``alpha(t)`` and ``sigma(t)`` (float64
    at a process time t, 0 the data) and ``t_max``; the rest derives from them. Subclasses may
    override ``transition`` with a form that is exact where the generic one cancels."""

    t_max: float
    t_min: float

    @abstractmethod
    def alpha(self, t: float) -> float:
        """The signal scale alpha(t), 1 at t = 0."""

    @abstractmethod
    def sigma(self, t: float) -> float:
        """The noise scale sigma(t), 0 at t = 0."""

    def log_snr(self, t: float) -> float:
        """log(alpha^2 / sigma^2): +inf at the data."""
        sigma = self.sigma(t)
        return math.inf if sigma == 0 else 2.0 * math.log(self.alpha(t) / sigma)

    def sigma_bar(self, t: float) -> float:
        """sigma / alpha: the noise level of the scaled state x / alpha (Karras et al. 2022)."""
        return self.sigma(t) / self.alpha(t)

    @abstractmethod
    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        """The time t whose sigma_bar(t) is ``sigma_bar`` (0 at 0): the inverse grids need."""

    def time_at_log_snr(self, log_snr: float) -> float:
        """The time whose log-SNR is ``log_snr`` (log-SNR = -2 log sigma_bar)."""
        return self.time_at_sigma_bar(math.exp(-0.5 * log_snr))

    @property
    def sigma_bar_max(self) -> float:
        """The largest noise level, sigma_bar(t_max)."""
        return self.sigma_bar(self.t_max)

    @property
    def sigma_bar_limit(self) -> float:
        """The largest noise level the process defines (grids and EDM's churn stay below it):
        sigma_bar_max, or infinity for a process defined at every level (EDM's)."""
        return self.sigma_bar_max

    @property
    def sigma_bar_min(self) -> float:
        """The smallest noise level a model is used at, sigma_bar(t_min)."""
        return self.sigma_bar(self.t_min)

    def _check_sigma_bar(self, sigma_bar: float) -> None:
        if not 0 <= sigma_bar <= self.sigma_bar_limit * (1 + 1e-9):
            raise ValueError(
                f"noise level sigma = {sigma_bar:g} is outside this process's range "
                f"[0, {self.sigma_bar_limit:g}]"
            )

    def transition(self, t: float, s: float) -> tuple[float, float]:
        """(alpha_{t|s}, sigma_{t|s}^2) of q(x_t | x_s) for t > s."""
        ratio = self.alpha(t) / self.alpha(s)
        return ratio, self.sigma(t) ** 2 - ratio**2 * self.sigma(s) ** 2

    def posterior(self, t: float, s: float) -> Posterior:
        """q(x_s | x_t, x_0) for s < t (see the module docstring)."""
        ratio, var_ts = self.transition(t, s)
        var_t, var_s = self.sigma(t) ** 2, self.sigma(s) ** 2
        var = var_ts * var_s / var_t
        log_var = math.log(var) if var > 0 else -math.inf
        return Posterior(self.alpha(s) * var_ts / var_t, ratio * var_s / var_t, var, log_var)

    @abstractmethod
    def default_grid(self) -> list[float]:
        """The times a sampler visits when given no grid, from t_max down to 0."""


class DiscreteProcess(NoiseProcess):
    """The VP process of a discrete schedule: alpha_s = sqrt(alpha_bar_s), sigma_s =
    sqrt(1 - alpha_bar_s) at the paper time s in {0..T} (alpha_bar_0 = 1), computed from
    log alpha_bar in float64 (expm1 near s = 0, where float32 tables cannot resolve 1 - abar)."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        betas = schedule.betas.detach().double().cpu().numpy()
        self.T = int(betas.shape[0])
        self.t_max = float(self.T)
        self.t_min = 1.0
        #: log alpha_bar by paper time: entry 0 is the data, entry s is log alphas_cumprod[s - 1]
        self.log_alpha_bars = np.concatenate([[0.0], np.cumsum(np.log1p(-betas))])

    def log_alpha_bar(self, t: float) -> float:
        """log alpha_bar at paper time t in [0, T], linear between the integers."""
        if not 0 <= t <= self.T:
            raise ValueError(f"time {t} is outside the process's [0, T = {self.T}]")
        k = min(math.floor(t), self.T - 1)
        frac = t - k
        la = self.log_alpha_bars
        return float(la[k]) if frac == 0 else float(la[k] + frac * (la[k + 1] - la[k]))

    def alpha(self, t: float) -> float:
        return math.exp(0.5 * self.log_alpha_bar(t))

    def sigma(self, t: float) -> float:
        return math.sqrt(-math.expm1(self.log_alpha_bar(t)))

    def log_snr(self, t: float) -> float:
        la = self.log_alpha_bar(t)
        return math.inf if la == 0 else la - math.log(-math.expm1(la))

    def sigma_bar(self, t: float) -> float:
        return math.sqrt(math.expm1(-self.log_alpha_bar(t)))

    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        """The fractional paper time with u = -log alpha_bar = log(1 + sigma_bar^2), inverting
        the linear interpolation of u between the integers."""
        self._check_sigma_bar(sigma_bar)
        u = math.log1p(sigma_bar**2)
        knots = -self.log_alpha_bars  # increasing from 0
        k = int(np.clip(np.searchsorted(knots, u), 1, self.T))
        lo, hi = float(knots[k - 1]), float(knots[k])
        return (k - 1) + min(max((u - lo) / (hi - lo), 0.0), 1.0)

    def transition(self, t: float, s: float) -> tuple[float, float]:
        diff = self.log_alpha_bar(t) - self.log_alpha_bar(s)
        return math.exp(0.5 * diff), -math.expm1(diff)

    def default_grid(self) -> list[float]:
        """Every paper time, T down to 0: the full ancestral chain."""
        return list(range(self.T, -1, -1))
