"""Continuous-time noise processes x_t = alpha(t) x_0 + sigma(t) eps on noise.py's interface.

Each process is a closed form evaluated on float64 tensors (``alpha_sigma(t)``, vectorised for
training, where every example has its own t) and read as floats by samplers through the
interface (``alpha``, ``sigma``, the log-SNR and the inverse ``time_at_sigma_bar``). ``t_min``
and ``t_max`` bound the levels a model is used at: grids stay inside, the likelihood integrates
from t_min to t_max. sigma_bar = sigma / alpha is the noise level of x / alpha (EDM's sigma).

=========  =============================================  ================  ==================
process    alpha(t), sigma(t)                             t in              reference
=========  =============================================  ================  ==================
VP linear  exp(-t^2 (b1 - b0) / 4 - t b0 / 2), sqrt(1 -   [1e-5, 1]         Song et al. 2021,
           alpha^2); b0 = 0.1, b1 = 20                                      Eq. 33
VP cosine  cos(pi/2 (t + s)/(1 + s)) / cos(pi/2 s/(1 +    [1e-5, 0.9946]    Nichol & Dhariwal
           s)), sqrt(1 - alpha^2); s = 0.008                                2021, Eq. 17
VE         1, sigma_min sqrt((sigma_max/sigma_min)^2t -   [1e-5, 1]         Song et al. 2021,
           1) (the kernel from t = 0)                                       Eq. 30
EDM        1, t                                           [0.002, 80]       Karras et al. 2022
flow       1 - t, t                                       [1e-5, 0.999]     Lipman et al. 2023;
                                                                            Liu et al. 2023
=========  =============================================  ================  ==================

The cosine VP stops at t = 0.9946 (log-SNR -9.6, close to the linear VP's -10.1 at t = 1),
where alpha is still positive, as DPM-Solver's code does; flow stops at t = 0.999 (sigma_bar =
999), since sigma_bar = t / (1 - t) is infinite at t = 1, and q(x_0.999) is N(0, I) to 1e-6.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch

from difflab.choices import StrEnum, parse_enum
from difflab.noise import NoiseProcess

Tensor = torch.Tensor

#: Steps of the default grid of a continuous process (EDM's 18 Karras levels).
DEFAULT_STEPS = 18


def _f64(t: float | Tensor) -> Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


class ContinuousProcess(NoiseProcess):
    """A process defined by closed forms at every t in [0, t_max] (see the module docstring).

    Subclasses implement ``alpha_sigma(t)`` and ``derivatives(t)`` on float64 tensors and the
    inverse ``time_at_sigma_bar``; the float interface derives from them."""

    name: str

    @abstractmethod
    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha(t), sigma(t)) for a float64 tensor of times, elementwise."""

    @abstractmethod
    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(d alpha / dt, d sigma / dt) elementwise."""

    def alpha(self, t: float) -> float:
        return float(self.alpha_sigma(_f64(t))[0])

    def sigma(self, t: float) -> float:
        return float(self.alpha_sigma(_f64(t))[1])

    def default_grid(self) -> list[float]:
        """EDM's grid: DEFAULT_STEPS Karras levels (rho = 7) from sigma_bar_max to
        sigma_bar_min, then the data."""
        from difflab.samplers.grids import noise_level_grid

        return noise_level_grid(self, DEFAULT_STEPS, "karras")

    def describe(self) -> str:
        """A short name for messages and schedule files."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class VPSchedule(StrEnum):
    LINEAR = "linear"
    COSINE = "cosine"


class VPProcess(ContinuousProcess):
    """The variance-preserving process: alpha^2 + sigma^2 = 1, with a linear beta(t) from
    ``beta_min`` to ``beta_max`` (Song et al. 2021) or the cosine alpha (Nichol & Dhariwal)."""

    COSINE_S = 0.008

    def __init__(
        self,
        schedule: VPSchedule | str = VPSchedule.LINEAR,
        *,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
    ) -> None:
        self.schedule = parse_enum(VPSchedule, schedule, "VP schedule")
        if not 0 < beta_min < beta_max:
            raise ValueError(
                f"the VP process needs 0 < beta_min < beta_max, got {beta_min}, {beta_max}"
            )
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self.t_min = 1e-5
        self.t_max = 1.0 if self.schedule is VPSchedule.LINEAR else 0.9946
        self.name = f"vp-{self.schedule.value}"

    def describe(self) -> str:
        if self.schedule is VPSchedule.COSINE:
            return self.name
        return f"{self.name}(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"

    def _cosine_angle(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * (t + self.COSINE_S) / (1 + self.COSINE_S)

    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha(t), the half log of alpha_bar."""
        if self.schedule is VPSchedule.LINEAR:
            return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        zero = self._cosine_angle(torch.zeros((), dtype=t.dtype))
        return torch.log(torch.cos(self._cosine_angle(t))) - torch.log(torch.cos(zero))

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        log_alpha = self.log_alpha(t)
        return log_alpha.exp(), torch.sqrt(-torch.expm1(2 * log_alpha))

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        if self.schedule is VPSchedule.LINEAR:
            d_log_alpha = -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))
        else:
            scale = 0.5 * math.pi / (1 + self.COSINE_S)
            d_log_alpha = -scale * torch.tan(self._cosine_angle(t))
        alpha, sigma = self.alpha_sigma(t)
        d_alpha = alpha * d_log_alpha
        return d_alpha, -alpha * d_alpha / sigma

    def log_snr(self, t: float) -> float:
        if t == 0:
            return math.inf
        two_log_alpha = 2 * self.log_alpha(_f64(t))
        return float(two_log_alpha - torch.log(-torch.expm1(two_log_alpha)))

    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        """Solves -2 log alpha(t) = u = log(1 + sigma_bar^2) in closed form."""
        self._check_sigma_bar(sigma_bar)
        u = math.log1p(sigma_bar**2)
        if self.schedule is VPSchedule.LINEAR:
            d, b0 = self.beta_max - self.beta_min, self.beta_min
            # the positive root of d t^2 / 2 + b0 t - u = 0, written without cancellation
            return min(2 * u / (b0 + math.sqrt(b0 * b0 + 2 * d * u)), self.t_max)
        s = self.COSINE_S
        c = math.exp(-0.5 * u) * math.cos(0.5 * math.pi * s / (1 + s))
        return min(max(2 * (1 + s) / math.pi * math.acos(c) - s, 0.0), self.t_max)


class VEProcess(ContinuousProcess):
    """The variance-exploding process x_t = x_0 + sigma(t) eps with the geometric sigma of
    Song et al. 2021 between ``sigma_min`` and ``sigma_max``, as the exact kernel from t = 0:
    sigma(t)^2 = sigma_min^2 ((sigma_max / sigma_min)^(2t) - 1)."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"the VE process needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}"
            )
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.t_min, self.t_max = 1e-5, 1.0
        self.name = "ve"

    def describe(self) -> str:
        return f"ve(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.sigma_min * torch.sqrt(torch.expm1(2 * t * self.log_ratio))
        return torch.ones_like(t), sigma

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        _, sigma = self.alpha_sigma(t)
        growth = self.sigma_min**2 * torch.exp(2 * t * self.log_ratio) * self.log_ratio
        return torch.zeros_like(t), growth / sigma

    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        self._check_sigma_bar(sigma_bar)
        t = math.log1p((sigma_bar / self.sigma_min) ** 2) / (2 * self.log_ratio)
        return min(t, self.t_max)


class EDMProcess(ContinuousProcess):
    """EDM's process x = x_0 + sigma eps with the time equal to the noise level, sigma(t) = t
    (Karras et al. 2022, Sec. 4), used from ``sigma_min`` = 0.002 to ``sigma_max`` = 80 by
    default (any level exists: grids may go higher)."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"the EDM process needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}"
            )
        self.t_min, self.t_max = float(sigma_min), float(sigma_max)
        self.name = "edm"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.ones_like(t), t.clone()

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros_like(t), torch.ones_like(t)

    @property
    def sigma_bar_limit(self) -> float:
        """Every level exists (sigma_max = 80 is only the default top and the prior's level)."""
        return math.inf

    def log_snr(self, t: float) -> float:
        return math.inf if t == 0 else -2.0 * math.log(t)

    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        self._check_sigma_bar(sigma_bar)
        return float(sigma_bar)


class FlowProcess(ContinuousProcess):
    """The flow-matching / rectified-flow interpolant x_t = (1 - t) x_0 + t eps (Lipman et
    al. 2023; Liu et al. 2023): sigma_bar = t / (1 - t), so t = sigma_bar / (1 + sigma_bar)."""

    def __init__(self) -> None:
        self.t_min, self.t_max = 1e-5, 0.999
        self.name = "flow"

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return 1.0 - t, t.clone()

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.ones_like(t), torch.ones_like(t)

    def log_snr(self, t: float) -> float:
        return math.inf if t == 0 else 2.0 * (math.log1p(-t) - math.log(t))

    def time_at_sigma_bar(self, sigma_bar: float) -> float:
        self._check_sigma_bar(sigma_bar)
        return min(sigma_bar / (1.0 + sigma_bar), self.t_max)
