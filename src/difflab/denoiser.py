"""The Denoiser: what every sampler, the bound and the ODE likelihood ask of a diffusion model.

A Denoiser wraps a network with its noise process (noise.py), what it predicts (eps, x0, v or
the 2015 model's mean), its variance type and the clipping of x0_hat, and answers at a state x_t
and a process time t shared by the batch (for a discrete schedule the paper time s in {1..T};
the network sees the step index s - 1, docs/conventions.md):

- ``denoiser(x_t, t)`` -> :class:`DenoiserOutput`: x0_hat, eps_hat, and the network's variance
  output (learned variances) or None;
- ``denoiser.score(x_t, t)`` = -eps_hat / sigma_t, the score of q(x_t) for the optimal model;
- ``denoiser.reverse_step(x_t, t, t_prev)`` -> :class:`reverse.ReverseStep`, the Gaussian
  p(x_{t_prev} | x_t) of an ancestral step: the posterior q(x_{t_prev} | x_t, x0_hat) with the
  variance of the variance type (on a sub-grid: of the respaced process, Nichol & Dhariwal
  2021, Sec. 4).

With x_t = alpha x_0 + sigma eps: eps -> x0 = (x_t - sigma eps) / alpha; x0 -> eps =
(x_t - alpha x0) / sigma; v = alpha eps - sigma x0 -> x0 = alpha x_t - sigma v, eps = sigma x_t +
alpha v (Salimans & Ho 2022); mean (Sohl-Dickstein et al. 2015) -> x0 = (mean - c_xt x_t) / c_x0
with the posterior's coefficients. The 2015 model's last step is fixed (its network never trains
there): p(x_0 | x_1) = N(sqrt(alpha_1) x_1, beta_1 I), so x0_hat = sqrt(alpha_1) x_1 at t = 1.

A class-conditional network gets the Denoiser's ``labels`` (B,) with every call (None: the
network's null class, i.e. the unconditional model p(x)); :meth:`Denoiser.replace` makes the
same model with other labels. Samplers never branch on the parameterization; wrappers
(classifier-free guidance in guidance.py, preconditioning) offer the same three methods.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import torch
from torch import nn

from difflab.choices import parse_enum
from difflab.noise import DiscreteProcess, NoiseProcess
from difflab.parameterization import Prediction
from difflab.reverse import ReverseStep, Variance, split_output
from difflab.schedules import NoiseSchedule


class VarianceClampWarning(UserWarning):
    """A learned reverse variance left [beta_tilde_t, beta_t] and was clamped into it."""


#: How far (in log-variance) a learned variance may leave [beta_tilde_t, beta_t] when sampling:
#: a factor of 4 in variance (2 in the noise's scale) on either side.
LOG_VAR_MARGIN = math.log(4.0)


def _within(log_var: torch.Tensor, small: float, large: float) -> tuple[torch.Tensor, float]:
    """A learned log-variance clamped to [log beta_tilde - m, log beta + m] of its step, m =
    :data:`LOG_VAR_MARGIN`, and the fraction of finite values that were outside. [beta_tilde,
    beta] is the range of the exact reverse variance for data of unit scale (Sohl-Dickstein et
    al. 2015, Sec. 2.3; Ho et al. 2020, Sec. 3.2); a trained network stays near it on the data,
    but far off the data (a chain that drifted away) its raw output can reach log-variances in
    the hundreds, whose exp overflows and turns every later state to NaN. The margin leaves a
    well-trained model's variance untouched."""
    clamped = log_var.clamp(min=small - LOG_VAR_MARGIN, max=large + LOG_VAR_MARGIN)
    outside = (clamped != log_var) & torch.isfinite(log_var)
    return clamped, float(outside.float().mean())


class DenoiserOutput(NamedTuple):
    """x0_hat and eps_hat, shaped like x_t; ``var_out``: the variance half of a network that
    learns its variance (log-variance for "learned", v in [-1, 1] for "learned_range")."""

    x0: torch.Tensor
    eps: torch.Tensor
    var_out: torch.Tensor | None


class Denoiser(nn.Module):
    """A diffusion network as samplers see it (see the module docstring).

    ``continuous_time``: the network accepts a fractional step index (a sinusoidal time
    embedding); otherwise fractional times (the ODE likelihood) interpolate eps_hat between the
    neighbouring integer times. ``labels``: (B,) class labels passed to a class-conditional
    network with every call (the batch must then have B rows), or None.
    """

    def __init__(
        self,
        net: nn.Module,
        process: NoiseProcess | NoiseSchedule,
        *,
        prediction: Prediction | str = Prediction.EPS,
        variance: Variance | str = Variance.SMALL,
        clip: tuple[float, float] | None = None,
        continuous_time: bool = False,
        labels: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        if isinstance(process, NoiseSchedule):
            process = DiscreteProcess(process)
        self.process = process
        self.prediction = parse_enum(Prediction, prediction, "prediction")
        self.variance = parse_enum(Variance, variance, "variance")
        self.clip = clip
        self.continuous_time = continuous_time
        self.clamped_steps = 0  # sampling steps whose learned variance left its range
        self.labels = labels

    def replace(self, **changes: Any) -> Denoiser:
        """The same network and process with some of the other arguments changed (e.g.
        ``labels``, ``clip``)."""
        kwargs = {
            "prediction": self.prediction,
            "variance": self.variance,
            "clip": self.clip,
            "continuous_time": self.continuous_time,
            "labels": self.labels,
        }
        return Denoiser(self.net, self.process, **{**kwargs, **changes})

    @property
    def first_trained_time(self) -> float:
        """The smallest time at which the network itself was trained: 2 for the 2015 model
        (its step 1 -> 0 is fixed), else 1. The ODE likelihood starts its drift there."""
        return 2.0 if self.prediction is Prediction.MEAN else 1.0

    def prior_std(self, t: float) -> float:
        """The std of the model's prior at the start of a chain: 1, p(x_T) = N(0, I) (Ho et al.
        2020); continuous formulations match the marginal's variance (formulation.py)."""
        return 1.0

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live (the samplers' noise is drawn there)."""
        param = next(self.net.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    def forward(self, x_t: torch.Tensor, t: float) -> DenoiserOutput:
        """x0_hat, eps_hat (and the variance output) at process time t for the whole batch."""
        t = float(t)
        if not t.is_integer():
            return self._fractional(x_t, t)
        if self.prediction is Prediction.MEAN and t == 1:
            return self._fixed_last_step(x_t)
        output = self._net(x_t, self._time_input(t - 1, x_t))
        pred, var_out = split_output(output, self.variance)
        x0, eps = self._x0_eps(x_t, t, pred)
        return DenoiserOutput(x0, eps, var_out)

    def _net(self, x_t: torch.Tensor, time_input: torch.Tensor) -> torch.Tensor:
        """The network's output, given the labels if there are any."""
        if self.labels is None:
            return self.net(x_t, time_input)
        if self.labels.shape != (x_t.shape[0],):
            raise ValueError(
                f"the Denoiser holds {tuple(self.labels.shape)} labels for a batch of "
                f"{x_t.shape[0]}; give one label per example"
            )
        return self.net(x_t, time_input, self.labels)

    def score(self, x_t: torch.Tensor, t: float) -> torch.Tensor:
        """-eps_hat / sigma_t (Song et al. 2021, Eq. 8 with the VP perturbation kernel)."""
        return -self(x_t, t).eps / self.process.sigma(t)

    def reverse_step(
        self, x_t: torch.Tensor, t: float, t_prev: float, *, clamp: bool = False
    ) -> ReverseStep:
        """p(x_{t_prev} | x_t) = N(mean, var): the posterior at x0_hat, with the variance type's
        variance (at t_prev = 0 the "small" variance is clipped to that of the step 2 -> 1,
        as the bound's decoder needs a positive variance). ``clamp``: keep a learned variance
        within [beta_tilde, beta] of the step (samplers ask for it, the bound does not)."""
        return self.reverse_step_from(self(x_t, t), x_t, t, t_prev, clamp=clamp)

    def reverse_step_from(
        self, out: DenoiserOutput, x_t: torch.Tensor, t: float, t_prev: float, *, clamp: bool
    ) -> ReverseStep:
        """:meth:`reverse_step` for a given output at (x_t, t) (a guided one, guidance.py)."""
        post = self.process.posterior(t, t_prev)
        mean = post.c_x0 * out.x0 + post.c_xt * x_t
        log_var = self.reverse_log_var(t, t_prev, out.var_out, clamp=clamp)
        if isinstance(log_var, float):  # a 0-d tensor broadcasts against x_t
            log_var = x_t.new_tensor(log_var)
        return ReverseStep(mean, log_var.exp(), log_var, out.x0, out.eps)

    def reverse_log_var(
        self, t: float, t_prev: float, var_out: torch.Tensor | None, *, clamp: bool = False
    ) -> float | torch.Tensor:
        """log Sigma of the step t -> t_prev: "small" the posterior variance, "large" the
        forward step's sigma_{t|t_prev}^2 (beta_t on the full grid), "learned_range" the
        network's interpolation between their logs, "learned" the network's log-variance (one
        step of the full grid only; Nichol & Dhariwal 2021, Eq. 15 and Sec. 4). ``clamp``:
        learned values are clamped to [small, large], with a warning (:func:`_within`)."""
        process = self.process
        large = math.log(process.transition(t, t_prev)[1])
        if self.prediction is Prediction.MEAN and t == 1:
            return large  # the fixed p(x_0 | x_1) has variance beta_1
        small = process.posterior(t, t_prev).log_var if t_prev > 0 else self._clipped_small()
        if self.variance is Variance.SMALL:
            return small
        if self.variance is Variance.LARGE:
            return large
        if var_out is None:
            raise ValueError(f"variance {self.variance.value!r} needs a network output for it")
        if self.variance is Variance.LEARNED_RANGE:
            frac = (var_out + 1.0) / 2.0
            log_var = frac * large + (1.0 - frac) * small
            return self._clamped(log_var, small, large, t) if clamp else log_var
        if t - t_prev != 1:
            raise ValueError(
                "model.variance = 'learned' was learned for single steps and cannot be "
                "respaced: sample it with all T steps (omit --steps) or use another sampler "
                "(ddim, heun, dpmpp2m)"
            )
        return self._clamped(var_out, small, large, t) if clamp else var_out

    def _clamped(self, log_var: torch.Tensor, small: float, large: float, t: float):
        """:func:`_within`, with one warning per Denoiser the first time values leave the
        range (``self.clamped_steps`` counts the steps where they did)."""
        clamped, outside = _within(log_var, small, large)
        if outside > 0:
            self.clamped_steps += 1
            if self.clamped_steps == 1:
                warnings.warn(
                    f"the network's learned variance left [beta_tilde_t / 4, 4 beta_t] (first "
                    f"at t = {t:g}, {outside:.2%} of values, max log-variance "
                    f"{float(log_var.max()):.3g} against log beta_t = {large:.3g}): sampling "
                    "clamps it into that range (warned once); values far outside come from "
                    "states off the data",
                    VarianceClampWarning,
                    stacklevel=4,
                )
        return clamped

    def _clipped_small(self) -> float:
        """log of the posterior variance of the step 2 -> 1 (log beta_1 if T = 1)."""
        process = self.process
        if process.t_max >= 2:
            return process.posterior(2.0, 1.0).log_var
        return math.log(process.transition(1.0, 0.0)[1])

    def _time_input(self, index: float, x_t: torch.Tensor) -> torch.Tensor:
        """The network's time input: the step index for the batch (stride 0, embedded once)."""
        if float(index).is_integer():
            value = torch.tensor([int(index)], dtype=torch.long, device=x_t.device)
        else:
            value = torch.tensor([index], dtype=x_t.dtype, device=x_t.device)
        return value.expand(x_t.shape[0])

    def _x0_eps(self, x_t: torch.Tensor, t: float, pred: torch.Tensor):
        """(x0_hat, eps_hat) from the prediction at time t, x0_hat clipped to ``clip``."""
        alpha, sigma = self.process.alpha(t), self.process.sigma(t)
        if self.prediction is Prediction.EPS:
            eps, x0 = pred, (x_t - sigma * pred) / alpha
        elif self.prediction is Prediction.X0:
            x0, eps = pred, (x_t - alpha * pred) / sigma
        elif self.prediction is Prediction.V:
            x0, eps = alpha * x_t - sigma * pred, sigma * x_t + alpha * pred
        else:
            post = self.process.posterior(t, t - 1)
            x0 = (pred - post.c_xt * x_t) / post.c_x0
            eps = (x_t - alpha * x0) / sigma
        if self.clip is not None:
            x0 = x0.clamp(*self.clip)
            eps = (x_t - alpha * x0) / sigma
        return x0, eps

    def _fixed_last_step(self, x_t: torch.Tensor) -> DenoiserOutput:
        """The 2015 model at t = 1: x0_hat = sqrt(alpha_1) x_1, the fixed p(x_0 | x_1)'s mean."""
        alpha_1, _ = self.process.transition(1.0, 0.0)
        x0 = alpha_1 * x_t
        eps = (x_t - self.process.alpha(1.0) * x0) / self.process.sigma(1.0)
        return DenoiserOutput(x0, eps, None)

    def _fractional(self, x_t: torch.Tensor, t: float) -> DenoiserOutput:
        """A fractional time: the network's own continuous input, or eps_hat interpolated
        linearly between the neighbouring integer times (the 2015 model: from t = 2, its first
        trained step), with x0_hat consistent with it at time t."""
        if self.continuous_time and self.prediction is not Prediction.MEAN:
            output = self._net(x_t, self._time_input(t - 1.0, x_t))
            pred, var_out = split_output(output, self.variance)
            x0, eps = self._x0_eps(x_t, t, pred)
            return DenoiserOutput(x0, eps, var_out)
        t = max(t, self.first_trained_time)
        lo = min(math.floor(t), int(self.process.t_max))
        frac = t - lo
        eps = (1.0 - frac) * self(x_t, lo).eps
        if frac > 0:
            eps = eps + frac * self(x_t, lo + 1).eps
        x0 = (x_t - self.process.sigma(t) * eps) / self.process.alpha(t)
        return DenoiserOutput(x0, eps, None)
