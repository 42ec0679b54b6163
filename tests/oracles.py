"""Analytic models every test shares.

Gaussian data x_0 ~ N(mu, diag(s^2)) make every quantity of a discrete diffusion closed-form.
With a = sqrt(abar_t), b = sqrt(1 - abar_t), x_t = a x_0 + b eps is Gaussian with
Var(x_t) = a^2 s^2 + b^2 and Cov(eps, x_t) = b, so the optimal noise predictor (the regression
of eps on x_t) is

    eps*(x_t, t) = E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2),

and the optimal x0-, v- and mean-predictions follow from it (parameterization.py). The optimal
reverse variance of one step t -> t-1 is Var(x_{t-1} | x_t) = V' - alpha_t V'^2 /
(alpha_t V' + beta_t) with V' = Var(x_{t-1}) = abar_{t-1} s^2 + 1 - abar_{t-1}.

``t`` follows the library: an int64 (B,) step index in {0..T-1} (index 0 is x_1); a floating t
is a fractional index, read with the log-linear interpolation of ``noise.DiscreteProcess``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from difflab.noise import DiscreteProcess
from difflab.parameterization import posterior_mean
from difflab.schedules import NoiseSchedule, expand_like
from difflab.timesteps import TimestepSampler


def _per_example(values, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).reshape(1, -1, *([1] * (x.dim() - 2)))


class GaussianOracle(nn.Module):
    """The optimal network for data N(mu, diag(var)) on ``schedule``.

    ``prediction``: eps, x0, v or mean. ``variance_half``: None (no variance output), "zeros"
    (a learned-variance half of zeros: the middle of learned_range, log-variance 0 for
    learned) or "optimal" (the optimal log-variance, for model.variance = "learned").
    ``untrained_below``: steps t < this return zeros, as a network never trained there (the
    2015 model's fixed t = 0). ``mu`` and ``var`` are per channel (dim 1) or scalars.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        mu=0.0,
        var=1.0,
        *,
        prediction: str = "eps",
        variance_half: str | None = None,
        untrained_below: int = 0,
    ) -> None:
        super().__init__()
        self.schedule, self.mu, self.var = schedule, mu, var
        self.prediction, self.variance_half = prediction, variance_half
        self.untrained_below = untrained_below
        self.calls = 0
        self.time_dtypes: set[torch.dtype] = set()  # what the network was asked with
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))  # a device and a dtype

    def alpha_bar(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """abar at step index t in float64, from the schedule's betas (as the samplers' noise
        process forms it), so that samplers and oracle share the schedule to round-off."""
        process = DiscreteProcess(self.schedule)
        if t.dtype == torch.long:
            log_abar = torch.from_numpy(process.log_alpha_bars)[t.cpu() + 1]
            return expand_like(log_abar.exp(), x)
        values = [process.alpha(float(v) + 1.0) ** 2 for v in t.reshape(-1).cpu()]
        return expand_like(torch.tensor(values, dtype=torch.float64), x)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.time_dtypes.add(t.dtype)
        x = x_t.double().cpu()
        abar = self.alpha_bar(t, x)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        mu, var = _per_example(self.mu, x), _per_example(self.var, x)
        eps = b * (x - a * mu) / (a**2 * var + b**2)
        out = self._as_prediction(x, t, eps, a, b)
        if self.untrained_below and t.dtype == torch.long:
            out = torch.where(expand_like(t.cpu() < self.untrained_below, x), 0.0, out)
        if self.variance_half == "zeros":
            out = torch.cat([out, torch.zeros_like(out)], 1)
        elif self.variance_half == "optimal":
            out = torch.cat([out, self.optimal_log_var(t, x).expand_as(out)], 1)
        return out.to(device=x_t.device, dtype=x_t.dtype)

    def _as_prediction(self, x, t, eps, a, b):
        """The prediction from eps, with x_t = a x_0 + b eps (written out here, independently of
        the library's parameterization module)."""
        if self.prediction == "eps":
            return eps
        x0 = (x - b * eps) / a
        if self.prediction == "x0":
            return x0
        if self.prediction == "v":
            return a * eps - b * x0
        if t.dtype != torch.long:
            raise ValueError("the mean oracle takes integer steps")
        return posterior_mean(self.schedule, x0, x, t.cpu())

    def optimal_log_var(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log Var(x_{t-1} | x_t) of the data's exact reverse process (see the module doc)."""
        sch, t = self.schedule, t.cpu()
        var = _per_example(self.var, x)
        abar_prev = expand_like(sch.alphas_cumprod_prev.double()[t], x)
        alpha = expand_like(sch.alphas.double()[t], x)
        beta = expand_like(sch.betas.double()[t], x)
        v_prev = abar_prev * var + 1.0 - abar_prev
        return (v_prev - alpha * v_prev**2 / (alpha * v_prev + beta)).log()


def gaussian_data(
    n: int, mu=0.0, var=1.0, *, dim: int = 2, seed: int = 0, shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """n draws of N(mu, diag(var)) in float64, shape (n, dim), or (n, *shape) when ``shape`` is
    given (e.g. (C, H, W)); ``mu`` and ``var`` are per channel (dim 1) or scalars."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *(shape if shape is not None else (dim,)), generator=g, dtype=torch.float64)
    return _per_example(mu, z) + _per_example(var, z).sqrt() * z


def gaussian_nll(x: torch.Tensor, mu=0.0, var=1.0) -> torch.Tensor:
    """-log N(x; mu, diag(var)) per example (B,), nats; x: (B, ...), ``mu`` and ``var`` per
    channel (dim 1) or scalars."""
    x = x.double()
    mu = _per_example(mu, x)
    var = _per_example(var, x) * torch.ones_like(x[:1])
    z2 = ((x - mu) ** 2 / var).reshape(x.shape[0], -1).sum(1)
    return 0.5 * (z2 + var.log().sum() + x[0].numel() * math.log(2 * math.pi))


class ConstantNet(nn.Module):
    """Returns ``output`` whatever its input (a fixed prediction); counts its calls."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output
        self.calls = 0

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.output


class ZeroNet(nn.Module):
    """Zeros with ``channels_factor`` times x's channels (2: a learned-variance half), and
    optionally a constant log-variance half (``log_var``)."""

    def __init__(self, channels_factor: int = 1, log_var: float | None = None) -> None:
        super().__init__()
        self.k, self.log_var = channels_factor, log_var

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x_t.shape[0], x_t.shape[1] * self.k, *x_t.shape[2:], dtype=x_t.dtype)
        if self.log_var is None:
            return out.to(x_t.device)
        return torch.cat([out, torch.full_like(out, self.log_var)], dim=1).to(x_t.device)


class FixedTimesteps(TimestepSampler):
    """A timestep sampler that returns chosen steps: ``t`` an int (every example at that step)
    or an int64 (B,) tensor, with ``weights`` (B,) (default ones). It draws nothing from the
    generator, so an objective's noise is the generator's first draw, and it keeps what the
    objective gives ``update`` in ``recorded`` as (t, losses) pairs."""

    def __init__(self, T: int, t, weights: torch.Tensor | None = None) -> None:
        super().__init__(T)
        self.t, self.weights = t, weights
        self.recorded: list[tuple[torch.Tensor, torch.Tensor]] = []

    def sample(
        self, batch_size: int, *, generator: torch.Generator | None = None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.t, int):
            t = torch.full((batch_size,), self.t, dtype=torch.long)
        else:
            t = torch.as_tensor(self.t, dtype=torch.long)
        if t.shape != (batch_size,) or not ((t >= 0) & (t < self.T)).all():
            raise ValueError(f"FixedTimesteps: t must be (B,) = ({batch_size},) in 0..{self.T - 1}")
        w = torch.ones(batch_size) if self.weights is None else torch.as_tensor(self.weights)
        return t.to(device), w.to(device)

    def record(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        self.recorded.append((t.detach().clone(), losses.detach().clone()))


#: Three-point Gauss-Hermite rule for N(0, 1): sum_k W_k f(Z_k) = E[f(Z)] for polynomials f of
#: degree <= 5. For f(eps) = sum_d f_d(eps_d) (a sum over coordinates, each f_d of degree <= 5)
#: the rule needs no product grid: giving every coordinate of row k the node Z_k,
#: sum_k W_k f(Z_k, ..., Z_k) = sum_d sum_k W_k f_d(Z_k) = E[f(eps)] exactly.
GH3_NODES = (-math.sqrt(3.0), 0.0, math.sqrt(3.0))
GH3_WEIGHTS = (1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0)


def node_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row of x (B, ...) three times (B * 3, ...), one per node of the rule above."""
    return x.repeat_interleave(3, dim=0)


def node_noise(x: torch.Tensor) -> torch.Tensor:
    """Noise shaped like x (3B, ...) whose row 3 i + k is the node Z_k in every coordinate."""
    z = torch.tensor(GH3_NODES, dtype=x.dtype, device=x.device).repeat(x.shape[0] // 3)
    return z.reshape(-1, *([1] * (x.dim() - 1))).expand_as(x).clone()


def node_average(values: torch.Tensor) -> torch.Tensor:
    """(3B,) values at the node rows -> (B,) expectations over the noise."""
    w = torch.tensor(GH3_WEIGHTS, dtype=values.dtype, device=values.device)
    return (values.reshape(-1, 3) * w).sum(1)


class ContinuousGaussianOracle(nn.Module):
    """The optimal network of a continuous formulation (formulation.py) for data
    N(mu, diag(var)), written out from the definitions, independently of the library's
    conversions: with a = alpha(t), s = sigma(t), E[x_0 | x_t] = mu + a var (x_t - a mu) /
    (a^2 var + s^2) and E[eps | x_t] = s (x_t - a mu) / (a^2 var + s^2). The network input
    is what the formulation feeds it: x_t and the noise input (t, or ln(sigma_bar) / 4 for
    EDM, whose input is also scaled by c_in = 1 / sqrt(sigma_bar^2 + sd^2) in the frame
    y = x / a). It returns the output the formulation reads: eps, x0, v = a eps - s x0, the
    velocity a' x0 + s' eps, or EDM's F = (x0 - c_skip y) / c_out."""

    def __init__(self, formulation, mu=0.0, var=1.0) -> None:
        super().__init__()
        self.formulation, self.mu, self.var = formulation, mu, var
        self.calls = 0
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def _times(self, noise: torch.Tensor) -> torch.Tensor:
        """The process times (B,) float64 of the network's noise input."""
        process = self.formulation.process
        if self.formulation.noise_input == "time":
            return noise.double()
        # ln(sigma_bar) / 4 -> sigma_bar (a float32 input rounds it: keep it within range)
        sigma_bar = (4.0 * noise.double()).exp().clamp(max=process.sigma_bar_limit)
        if type(process).__name__ == "EDMProcess":  # t = sigma_bar
            return sigma_bar
        times = [process.time_at_sigma_bar(float(v)) for v in sigma_bar]
        return torch.tensor(times, dtype=torch.float64)

    def forward(self, x_in: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x_in64 = x_in.double().cpu()
        level = noise[:1] if noise.shape[0] > 1 and noise.stride(0) == 0 else noise
        t = self._times(level.cpu())
        out = self._optimal(x_in64, t.reshape(-1, *([1] * (x_in.dim() - 1))))
        return out.to(device=x_in.device, dtype=x_in.dtype)

    def _optimal(self, x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        form, process = self.formulation, self.formulation.process
        a, s = process.alpha_sigma(t)
        sd, kind = form.sigma_data, str(form.prediction)
        # EDM's input is c_in y, y = x / a
        x = a * x_in * ((s / a) ** 2 + sd**2).sqrt() if kind == "edm" else x_in
        mu, var = _per_example(self.mu, x), _per_example(self.var, x)
        total = a**2 * var + s**2
        x0 = mu + a * var * (x - a * mu) / total
        eps = s * (x - a * mu) / total
        if kind == "eps":
            return eps
        if kind == "x0":
            return x0
        if kind == "v":
            return a * eps - s * x0
        if kind == "velocity":  # (the derivatives are tested against finite differences)
            da, ds = process.derivatives(t)
            return da * x0 + ds * eps
        sigma_bar, y = s / a, x / a
        c_skip = sd**2 / (sigma_bar**2 + sd**2)
        c_out = sigma_bar * sd / (sigma_bar**2 + sd**2).sqrt()
        return (x0 - c_skip * y) / c_out


class GaussianVocoder(torch.nn.Module):
    """The optimal eps predictor for audio y_0 ~ N(0, v I) independent of the mel:
    E[eps | y] = sqrt(1 - l^2) y / (l^2 v + 1 - l^2). Records the levels it is asked at."""

    def __init__(self, v: float, hop: int = 10) -> None:
        super().__init__()
        self.v, self.hop_length, self.levels = v, hop, []
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a device for the samplers

    def forward(self, y, level, mel):
        assert y.shape[-1] == mel.shape[-1] * self.hop_length
        self.levels.append(float(level[0]))
        l2 = (level**2)[:, None, None]
        return torch.sqrt(1 - l2) * y / (l2 * self.v + 1 - l2)


class MixtureOracle(GaussianOracle):
    """The optimal class-conditional network for an equal-weight mixture of K Gaussians
    N(mu_c, var I), ``mus`` (K, *shape), with the null class K for the mixture itself.

    With a = sqrt(abar_t), b = sqrt(1 - abar_t) and v = a^2 var + b^2, component c gives
    x_t ~ N(a mu_c, v I) and eps*_c(x_t) = b (x_t - a mu_c) / v (GaussianOracle per component);
    the mixture's optimal predictor is E[eps | x_t] = sum_c p(c | x_t) eps*_c(x_t), with
    p(c | x_t) = softmax_c(-|x_t - a mu_c|^2 / (2 v)). ``forward(x_t, t, labels)``: labels (B,)
    in 0..K (None: the null class for all); ``calls`` and ``batch_sizes`` record its use.
    """

    def __init__(self, schedule: NoiseSchedule, mus: torch.Tensor, var: float, **kwargs) -> None:
        super().__init__(schedule, 0.0, var, **kwargs)
        self.mus = torch.as_tensor(mus, dtype=torch.float64)
        self.num_classes = int(self.mus.shape[0])
        self.batch_sizes: list[int] = []

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(x_t.shape[0])
        x = x_t.double().cpu()
        abar = self.alpha_bar(t, x)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        v = a**2 * self.var + b**2
        # eps*_c for every component: (K, B, ...)
        eps_all = torch.stack([b * (x - a * mu) / v for mu in self.mus])
        d2 = torch.stack(
            [((x - a * mu) ** 2 / v).reshape(x.shape[0], -1).sum(1) for mu in self.mus]
        )
        post = torch.softmax(-0.5 * d2, dim=0)  # p(c | x_t), (K, B)
        mixture = (post.reshape(*post.shape, *([1] * (x.dim() - 1))) * eps_all).sum(0)
        if labels is None:
            labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
        labels = labels.cpu()
        rows = torch.arange(x.shape[0])
        component = eps_all[labels.clamp(max=self.num_classes - 1), rows]
        null = expand_like(labels == self.num_classes, x)
        eps = torch.where(null, mixture, component)
        out = self._as_prediction(x, t, eps, a, b)
        return out.to(device=x_t.device, dtype=x_t.dtype)
