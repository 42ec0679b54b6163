"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021, Sec. 4.3 and D.2).

The discrete schedule is read as a variance-preserving diffusion whose marginals match it at
every step: with u = -log alpha_bar, x_u = exp(-u/2) x_0 + sqrt(1 - exp(-u)) eps, and the
probability-flow ODE is

    dx/du = -(x - eps_theta(x, u) / sqrt(1 - exp(-u))) / 2,

integrated in tau = log u (even steps across noise levels) from the first noise level
u_1 = -log alpha_bar_1 (index t = 0, the paper's x_1) to u_T, where the model's prior is N(0, I).
The network is called at the fractional step index whose -log alpha_bar is u (linear between the
table's entries). Along the path, d log p / dtau = -div f, so

    log p_1(x_1) = log N(x(tau_T); 0, I) + int div f dtau.

The data's density is read off at the first noise level: log p(x_0) = log p_1(sqrt(abar_1) x_0)
+ (D / 2) log abar_1, exact as beta_1 -> 0 (an error of about D beta_1 / (2 var(x_0)) nats).
The divergence is exact (D autograd passes) for D <= ``exact_max_dim`` and Hutchinson's
estimator with one Rademacher probe per example otherwise (unbiased; FFJORD, Grathwohl et al.
2019). ``t`` below is always the fractional step index in [0, T-1]; index 0 is x_1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torchdiffeq import odeint

from difflab.choices import parse_enum
from difflab.parameterization import Prediction, to_x0_eps
from difflab.reverse import Variance, split_output
from difflab.schedules import NoiseSchedule

EXACT_DIVERGENCE_MAX_DIM = 8


def neg_log_alpha_bars(schedule: NoiseSchedule) -> torch.Tensor:
    """u_t = -log alpha_bar_t at the integer indices, (T,) float64, increasing."""
    return -torch.log(schedule.alphas_cumprod.double().cpu())


def step_index(knots: torch.Tensor, u: float) -> float:
    """The fractional index t in [0, T-1] whose u is ``u`` (linear between the knots)."""
    k = int(
        torch.searchsorted(knots, torch.tensor([u], dtype=knots.dtype)).clamp(1, len(knots) - 1)
    )
    lo, hi = float(knots[k - 1]), float(knots[k])
    return (k - 1) + min(max((u - lo) / (hi - lo), 0.0), 1.0)


def alpha_bar_at(schedule: NoiseSchedule, t: float) -> float:
    """alpha_bar at a fractional index t: exp(-u) with u linear between the integer steps."""
    knots = neg_log_alpha_bars(schedule)
    k = min(math.floor(t), len(knots) - 2) if len(knots) > 1 else 0
    frac = t - k
    u = float(knots[k]) if len(knots) == 1 else float(knots[k] + frac * (knots[k + 1] - knots[k]))
    return math.exp(-u)


def eps_at(
    model: nn.Module,
    schedule: NoiseSchedule,
    x: torch.Tensor,
    t: float,
    abar: float,
    *,
    prediction: Prediction | str,
    variance: Variance | str,
    continuous_time: bool = True,
) -> torch.Tensor:
    """The model's noise estimate at fractional index t (alpha_bar = ``abar``), shape of x.

    A model without a continuous time input (``continuous_time = False``) and the 2015 model
    (``mean``, defined through the tables) are called at the two neighbouring integer steps and
    their noise estimates interpolated linearly, so the drift stays continuous in t.
    """
    prediction = parse_enum(Prediction, prediction, "prediction")
    if prediction is Prediction.MEAN or not continuous_time:
        lowest = 1 if prediction is Prediction.MEAN else 0  # the 2015 model's t = 0 is fixed
        t = max(t, float(lowest))
        k = min(math.floor(t), schedule.T - 1)
        frac = t - k
        eps = 0.0
        for step, weight in ((k, 1.0 - frac), (min(k + 1, schedule.T - 1), frac)):
            if weight == 0.0:
                continue
            t_batch = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
            pred, _ = split_output(model(x, t_batch), variance)
            eps = eps + weight * to_x0_eps(prediction, schedule, x, t_batch, pred)[1]
        return eps
    t_batch = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    pred, _ = split_output(model(x, t_batch), variance)
    a, s = math.sqrt(abar), math.sqrt(1.0 - abar)
    if prediction is Prediction.EPS:
        return pred
    if prediction is Prediction.X0:
        return (x - a * pred) / s
    return s * x + a * pred  # v


class ODELikelihood(NamedTuple):
    """``nll``: -log p(x_0) per example (B,), nats; ``nfe``: drift evaluations of the solver."""

    nll: torch.Tensor
    nfe: int


def _divergence(f: torch.Tensor, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
    """div f per example (B,): exact (one autograd pass per dimension) or v^T (df/dx) v."""
    if probe is not None:
        (vjp,) = torch.autograd.grad(f, x, probe, create_graph=False)
        return (vjp * probe).reshape(x.shape[0], -1).sum(1)
    flat_f = f.reshape(f.shape[0], -1)
    div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(flat_f.shape[1]):
        (g,) = torch.autograd.grad(flat_f[:, i].sum(), x, retain_graph=True)
        div = div + g.reshape(x.shape[0], -1)[:, i]
    return div


def ode_nll(
    model: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    exact_max_dim: int = EXACT_DIVERGENCE_MAX_DIM,
    continuous_time: bool = True,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> ODELikelihood:
    """-log p(x_0) (B,) in nats under the probability-flow ODE of the model (see module doc).

    x0: (B, ...) in model space. The model is run in ``dtype`` (float64 by default, so the
    solver's tolerances, not round-off, set the error).
    """
    if schedule.T < 2:
        raise ValueError("the ODE likelihood needs schedule.T >= 2")
    knots = neg_log_alpha_bars(schedule)
    model = _in_dtype(model, dtype)
    x_start = math.sqrt(float(torch.exp(-knots[0]))) * x0.to(dtype)
    D = x0[0].numel()
    probe = None
    if exact_max_dim < D:
        probe = torch.randint(0, 2, x0.shape, generator=generator).to(dtype) * 2 - 1
    nfe = 0

    def drift(tau: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        nonlocal nfe
        nfe += 1
        x = state[0]
        u = float(torch.exp(tau))
        t = step_index(knots, u)
        abar = math.exp(-u)
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            eps = eps_at(
                model,
                schedule,
                x,
                t,
                abar,
                prediction=prediction,
                variance=variance,
                continuous_time=continuous_time,
            )
            f = -0.5 * u * (x - eps / math.sqrt(1.0 - abar))
            div = _divergence(f, x, probe)
        return f.detach(), div.detach()

    taus = torch.log(torch.stack([knots[0], knots[-1]])).to(dtype)
    zero = torch.zeros(x0.shape[0], dtype=dtype)
    xs, divs = odeint(drift, (x_start, zero), taus, rtol=rtol, atol=atol, method=method)
    x_T, integral = xs[-1], divs[-1]
    log_prior = -0.5 * (x_T**2).reshape(x_T.shape[0], -1).sum(1) - 0.5 * D * math.log(2 * math.pi)
    log_p = log_prior + integral - 0.5 * D * float(knots[0])  # + (D/2) log abar_1
    return ODELikelihood(-log_p, nfe)


def _in_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of the model in ``dtype`` (the original is left as it is)."""
    import copy

    if all(p.dtype == dtype for p in model.parameters()):
        return model
    return copy.deepcopy(model).to(dtype)
