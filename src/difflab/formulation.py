"""Continuous formulations: a noise process (continuous.py), what the network's output means,
the noise input it is fed, and EDM's preconditioning; and the Denoiser that samplers see.

EDM, flow matching and the VP-SDE differ only in the process x_t = alpha x_0 + sigma eps, the
network's parameterization, the loss weighting and the training distribution of noise levels
(Karras et al. 2022, Table 1). Here the first two are a :class:`Formulation`, which the losses
(losses/edm.py, flow.py, vp_continuous.py) and :class:`ContinuousDenoiser` share, so training
and sampling read the network the same way. With a = alpha(t), s = sigma(t), a' and s' their
time derivatives, and F the network's output:

- ``eps``: F = eps; x0_hat = (x - s F) / a, eps_hat = F;
- ``x0``: F = x_0; x0_hat = F, eps_hat = (x - a F) / s;
- ``v``: F = a eps - s x_0 (Salimans & Ho 2022); x0_hat = (a x - s F) / (a^2 + s^2),
  eps_hat = (s x + a F) / (a^2 + s^2);
- ``velocity``: F = dx_t / dt = a' x_0 + s' eps (flow matching: eps - x_0); with
  d = a s' - s a', x0_hat = (s' x - s F) / d, eps_hat = (a F - a' x) / d;
- ``edm``: F inside D = c_skip y + c_out F(c_in y; c_noise) in the frame y = x / a at the
  level sigma_bar = s / a; x0_hat = D, eps_hat = (y - D) / sigma_bar.

EDM's preconditioning (Karras et al. 2022, Table 1 and Eq. 7) at the noise level sigma_bar with
sigma_data = sd: c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4, and the loss weight lambda(sigma) =
(sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2, so lambda ||D - x_0||^2 = ||F - F_target||^2 with
F_target = (x_0 - c_skip y) / c_out. The network's noise input (``noise_input``) is the process
time t ("time": VP-SDE, flow matching) or c_noise ("log_sigma": EDM); a network scales it by
:data:`NOISE_INPUT_SCALES` in its embedding so that every formulation spans about the range of
the discrete step index 0..999.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum
from difflab.continuous import ContinuousProcess
from difflab.denoiser import Denoiser, DenoiserOutput
from difflab.reverse import Variance
from difflab.schedules import expand_like

Tensor = torch.Tensor


class ContinuousPrediction(StrEnum):
    EPS = "eps"
    X0 = "x0"
    V = "v"
    VELOCITY = "velocity"
    EDM = "edm"


class NoiseInput(StrEnum):
    TIME = "time"
    LOG_SIGMA = "log_sigma"


#: The embedding scale of each noise input: t in [0, 1] -> 0..1000; ln(sigma) / 4 in
#: [-1.55, 1.10] for sigma in [0.002, 80] -> a span of about 660.
NOISE_INPUT_SCALES = {NoiseInput.TIME: 1000.0, NoiseInput.LOG_SIGMA: 250.0}


def edm_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) at noise levels ``sigma`` (Karras et al. 2022, Table 1)."""
    var = sigma**2 + sigma_data**2
    return sigma_data**2 / var, sigma * sigma_data / var.sqrt(), 1.0 / var.sqrt(), sigma.log() / 4


def edm_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 (Karras et al. 2022, Eq. 8 / Table 1)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class NetworkPrediction(NamedTuple):
    """``raw``: the network's output F; ``x0``, ``eps``: the estimates it implies."""

    raw: Tensor
    x0: Tensor
    eps: Tensor


@dataclass(frozen=True)
class Formulation:
    """How a network over ``process`` is read (module docstring). ``sigma_data``: the data's
    standard deviation (EDM's preconditioning; the starting law's variance for all)."""

    process: ContinuousProcess
    prediction: ContinuousPrediction
    noise_input: NoiseInput
    sigma_data: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "prediction", parse_enum(ContinuousPrediction, self.prediction, "prediction")
        )
        object.__setattr__(
            self, "noise_input", parse_enum(NoiseInput, self.noise_input, "noise input")
        )
        if not (math.isfinite(self.sigma_data) and self.sigma_data > 0):
            raise ValueError(
                f"sigma_data = {self.sigma_data!r} is invalid: it must be a positive number, "
                "the data's standard deviation (loss.sigma_data; 0.5 for images in [-1, 1])"
            )

    def _coefs(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha, sigma = self.process.alpha_sigma(t.to(torch.float64))
        return expand_like(alpha, x), expand_like(sigma, x)

    def network_noise(self, t: Tensor) -> Tensor:
        """The network's noise input at times t (float64): t itself or ln(sigma_bar) / 4."""
        if self.noise_input is NoiseInput.TIME:
            return t.to(torch.float64)
        alpha, sigma = self.process.alpha_sigma(t.to(torch.float64))
        return (sigma / alpha).log() / 4

    def predict(self, net: nn.Module, x_t: Tensor, t: Tensor) -> NetworkPrediction:
        """F, x0_hat, eps_hat at x_t (B, ...) and times t of shape (B,) or (1,) (one time for
        the batch, embedded once); differentiable, so the losses train through it."""
        noise = self.network_noise(t).to(x_t.dtype).expand(x_t.shape[0])
        if self.prediction is ContinuousPrediction.EDM:
            a, s = self._coefs(t, x_t)  # float64: the coefficients, then x's dtype
            sigma_bar = s / a
            c_skip, c_out, c_in, _ = (
                c.to(x_t.dtype) for c in edm_coefficients(sigma_bar, self.sigma_data)
            )
            y = x_t / a.to(x_t.dtype)
            raw = net(c_in * y, noise)
            x0 = c_skip * y + c_out * raw
            return NetworkPrediction(raw, x0, (y - x0) / sigma_bar.to(x_t.dtype))
        raw = net(x_t, noise)
        x0, eps = self.x0_eps(raw, x_t, t)
        return NetworkPrediction(raw, x0, eps)

    def x0_eps(self, raw: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(x0_hat, eps_hat) from an eps/x0/v/velocity output (see the module table)."""
        a, s = (c.to(x_t.dtype) for c in self._coefs(t, x_t))
        kind = self.prediction
        if kind is ContinuousPrediction.EPS:
            return (x_t - s * raw) / a, raw
        if kind is ContinuousPrediction.X0:
            return raw, (x_t - a * raw) / s
        if kind is ContinuousPrediction.V:
            norm = a**2 + s**2
            return (a * x_t - s * raw) / norm, (s * x_t + a * raw) / norm
        da, ds = (expand_like(c, x_t).to(x_t.dtype) for c in self.process.derivatives(t.double()))
        det = a * ds - s * da
        return (ds * x_t - s * raw) / det, (a * raw - da * x_t) / det

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What the network's output regresses to at x_t = alpha x0 + sigma eps."""
        a, s = (c.to(x0.dtype) for c in self._coefs(t, x0))
        kind = self.prediction
        if kind is ContinuousPrediction.EPS:
            return eps
        if kind is ContinuousPrediction.X0:
            return x0
        if kind is ContinuousPrediction.V:
            return a * eps - s * x0
        if kind is ContinuousPrediction.VELOCITY:
            da, ds = (expand_like(c, x0).to(x0.dtype) for c in self.process.derivatives(t.double()))
            return da * x0 + ds * eps
        c_skip, c_out, _, _ = edm_coefficients(s.double() / a.double(), self.sigma_data)
        y = (a * x0 + s * eps) / a
        return (x0 - c_skip.to(x0.dtype) * y) / c_out.to(x0.dtype)

    def prior_std(self, t: float) -> float:
        """The std of the Gaussian a chain starts from at time t: the marginal's, for data of
        standard deviation sigma_data, sqrt(sigma^2 + alpha^2 sd^2) (the variance q(x_t) has)."""
        alpha, sigma = self.process.alpha(t), self.process.sigma(t)
        return math.sqrt(sigma**2 + alpha**2 * self.sigma_data**2)


class ContinuousDenoiser(Denoiser):
    """A network over a continuous formulation, as samplers see it: ``denoiser(x_t, t)``,
    ``score``, ``reverse_step`` at any process times (docs/conventions.md). Ancestral steps
    use a fixed variance ("small": the posterior's, "large": the forward step's)."""

    def __init__(
        self,
        net: nn.Module,
        formulation: Formulation,
        *,
        variance: Variance | str = Variance.LARGE,
        clip: tuple[float, float] | None = None,
        labels: Tensor | None = None,
    ) -> None:
        nn.Module.__init__(self)
        self.net = net
        self.labels = labels
        self.formulation = formulation
        self.process = formulation.process
        self.prediction = formulation.prediction
        self.variance = parse_enum(Variance, variance, "variance")
        if self.variance.is_learned:
            raise ValueError(
                f"model.variance = {self.variance.value!r}: a continuous formulation learns no "
                "variance; use 'large' or 'small' (the fixed variances of ancestral steps)"
            )
        self.clip = clip
        self.continuous_time = True

    def replace(self, **changes) -> ContinuousDenoiser:
        """The same network and formulation with ``variance``, ``clip`` or ``labels`` changed
        (classifier-free guidance asks for the null class's and the labels' branches)."""
        kwargs = {"variance": self.variance, "clip": self.clip, "labels": self.labels}
        return ContinuousDenoiser(self.net, self.formulation, **{**kwargs, **changes})

    @property
    def first_trained_time(self) -> float:
        return self.process.t_min

    def prior_std(self, t: float) -> float:
        return self.formulation.prior_std(t)

    def forward(self, x_t: Tensor, t: float) -> DenoiserOutput:
        """x0_hat and eps_hat at process time t (> 0) for the whole batch."""
        times = torch.tensor([float(t)], dtype=torch.float64, device=x_t.device)
        _, x0, eps = self.formulation.predict(self._net, x_t, times)  # with the labels, if any
        if self.clip is not None:
            x0 = x0.clamp(*self.clip)
            eps = (x_t - self.process.alpha(t) * x0) / self.process.sigma(t)
        return DenoiserOutput(x0, eps, None)

    def _clipped_small(self) -> float:
        """The "small" variance of a step to the data is 0 (samplers return its mean)."""
        return -math.inf
