"""EDM's stochastic sampler (Karras et al. 2022, Algorithm 2), on any noise process and grid.

Karras et al. write every process in the frame y = x / alpha, whose noise level is sigma_bar =
sigma / alpha (noise.py) and whose probability-flow ODE is dy / d sigma_bar = eps_hat (their
Eq. 4 with s = alpha). For each step from level sigma_i to sigma_{i+1} of a K-step grid:

1. churn: gamma_i = min(S_churn / K, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax, else 0;
   raise the level to sigma_hat = (1 + gamma_i) sigma_i by adding fresh noise,
   y_hat = y_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise z  (z ~ N(0, I));
2. an Euler step of the ODE from sigma_hat to sigma_{i+1} with d = eps_hat(y_hat, sigma_hat);
3. Heun's correction with the slope at the new point, unless sigma_{i+1} = 0 (the data).

S_churn = 0 is their deterministic Heun sampler (Algorithm 1): Heun from the first step, Euler
on the last step to the data, 2K - 1 network evaluations (18 steps: 35); a grid that stops at
sigma_min (final_step "none") costs 2K. The churned level is kept within the largest level the
process defines (``sigma_bar_limit``: bounded for VP and flow, unbounded for EDM's process).
S_tmin and S_tmax are noise levels sigma_bar; S_tmax None means no upper limit (the paper's
infinity).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from difflab.denoiser import Denoiser
from difflab.forward import randn_like
from difflab.samplers._chain import ChainResult, Record, run_chain, start_state


def check_churn(s_churn: float, s_tmin: float, s_tmax: float | None, s_noise: float) -> None:
    """One-line errors for EDM's stochasticity settings."""
    if not s_churn >= 0:
        raise ValueError(
            f"s_churn = {s_churn!r} is invalid: it must be >= 0 (0: the deterministic Heun "
            "sampler, EDM Alg. 1; the paper uses 30-80 for its stochastic sampler)"
        )
    if not s_tmin >= 0 or (s_tmax is not None and not s_tmax > s_tmin):
        raise ValueError(
            f"s_tmin = {s_tmin!r}, s_tmax = {s_tmax!r}: the churn's noise-level window needs "
            "0 <= s_tmin < s_tmax (s_tmax omitted: no upper limit)"
        )
    if not s_noise > 0:
        raise ValueError(f"s_noise = {s_noise!r} is invalid: it must be > 0 (EDM uses 1 to 1.007)")


def edm_sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    *,
    grid: Sequence[float] | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float | None = None,
    s_noise: float = 1.0,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: Record = None,
    progress: bool = False,
) -> ChainResult:
    """Draw ``shape[0]`` samples with EDM's Algorithm 2 along ``grid`` (process times,
    descending; default: the process's default grid). Churn noise is drawn from ``generator``
    on churned steps only, in chain order."""
    check_churn(s_churn, s_tmin, s_tmax, s_noise)
    process = denoiser.process
    grid = list(process.default_grid() if grid is None else grid)
    K = len(grid) - 1
    gamma_max = min(s_churn / K, math.sqrt(2) - 1) if K > 0 else 0.0
    window_top = math.inf if s_tmax is None else s_tmax
    x = start_state(denoiser, shape, grid, x_T, generator=generator)

    def level(t: float) -> float:
        return 0.0 if t == 0 else process.sigma_bar(t)

    def step(x_t: torch.Tensor, pair: tuple[float, float]) -> torch.Tensor:
        t, t_next = pair
        sigma, sigma_next = level(t), level(t_next)
        y = x_t / process.alpha(t)
        # 1. churn: raise the noise level to sigma_hat with fresh noise
        gamma = gamma_max if s_tmin <= sigma <= window_top else 0.0
        sigma_hat, t_hat = min(sigma * (1 + gamma), process.sigma_bar_limit), t
        if sigma_hat > sigma:
            t_hat = process.time_at_sigma_bar(sigma_hat)
            noise = randn_like(y, generator)
            y = y + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * noise
        # 2. Euler step from sigma_hat to sigma_next with the slope eps_hat
        d = denoiser(process.alpha(t_hat) * y, t_hat).eps
        y_next = y + (sigma_next - sigma_hat) * d
        # 3. Heun's correction, except on the step to the data
        if t_next > 0:
            d_next = denoiser(process.alpha(t_next) * y_next, t_next).eps
            y_next = y + (sigma_next - sigma_hat) * 0.5 * (d + d_next)
        return process.alpha(t_next) * y_next

    pairs = list(itertools.pairwise(grid))
    result = run_chain(step, x, pairs, times=grid, record=record, progress=progress, desc="edm")
    return result._replace(nfe=2 * K - (1 if K and grid[-1] == 0 else 0))
