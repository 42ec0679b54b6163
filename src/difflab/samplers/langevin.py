"""Langevin dynamics, annealed Langevin dynamics and a predictor-corrector sampler.

Langevin dynamics draws from p(x) with only its score s(x) = grad_x log p(x):

    x_{k+1} = x_k + (eps_k / 2) s(x_k) + sqrt(eps_k) z_k,    z_k ~ N(0, I)

(Welling & Teh 2011; the noise is Gaussian, never uniform). As eps -> 0 and k -> infinity the
chain's law converges to p. Annealed Langevin (Song & Ermon 2019, Algorithm 1) runs it at each
level of a decreasing noise ladder sigma_1 > ... > sigma_L with step alpha_i = eps sigma_i^2 /
sigma_L^2, so chains cross low-density regions while the noise is large. The predictor-corrector
sampler (Song et al. 2021, Algorithms 4-5, on the discrete VP chain) alternates Langevin
corrector steps at a target signal-to-noise ratio with ancestral DDPM steps.

Trajectories: chains are labelled by the number of steps left, so the starting state of a
K-step chain has label K and the final sample label 0 (as x_T ... x_0 of diffusion samplers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

import torch
from torch import nn

from difflab.forward import randn_like
from difflab.parameterization import Prediction, score_from_eps, to_x0_eps
from difflab.reverse import Variance, split_output
from difflab.samplers._chain import ChainResult, initial_noise, run_chain
from difflab.samplers.ddpm import ddpm_step
from difflab.schedules import NoiseSchedule, expand_like, extract, full_timesteps

Score = Callable[[torch.Tensor], torch.Tensor]
NoiseScore = Callable[[torch.Tensor, float], torch.Tensor]


def langevin_step(
    score: Score,
    x: torch.Tensor,
    step_size: float | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step x + (eps / 2) s(x) + sqrt(eps) z, z ~ N(0, I); ``step_size`` eps is a float
    or a per-example (B,) tensor."""
    if noise is None:
        noise = randn_like(x, generator)
    eps = expand_like(step_size, x) if isinstance(step_size, torch.Tensor) else step_size
    return x + 0.5 * eps * score(x) + eps**0.5 * noise


def langevin_step_sizes(step_size: float, n_steps: int, decay: float = 1.0) -> list[float]:
    """The schedule eps_k = step_size * decay^k for k = 0..n_steps-1 (decay 1: constant)."""
    if not step_size > 0 or not 0 < decay <= 1 or n_steps < 1:
        raise ValueError(
            f"Langevin needs step_size > 0, decay in (0, 1] and n_steps >= 1, got "
            f"{step_size}, {decay}, {n_steps}"
        )
    return [step_size * decay**k for k in range(n_steps)]


def _start(
    shape: tuple[int, ...],
    x_init: torch.Tensor | None,
    std: float,
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    if x_init is not None:
        return x_init
    return std * torch.randn(shape, generator=generator, device=device)


def langevin_sample(
    score: Score,
    shape: tuple[int, ...],
    *,
    step_sizes: Sequence[float],
    x_init: torch.Tensor | None = None,
    init_std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Run one Langevin step per entry of ``step_sizes`` from ``x_init`` (default N(0,
    init_std^2 I)); ``record`` lists step labels in {K, ..., 0} to keep (K = len(step_sizes))."""
    x = _start(shape, x_init, init_std, generator, device)
    n = len(step_sizes)

    def step(x_k: torch.Tensor, eps: float) -> torch.Tensor:
        return langevin_step(score, x_k, eps, generator=generator)

    return run_chain(
        step,
        x,
        list(step_sizes),
        times=list(range(n, -1, -1)),
        record=record,
        progress=progress,
        desc="langevin",
    )


def annealed_langevin_sample(
    score: NoiseScore,
    sigmas: Sequence[float],
    shape: tuple[int, ...],
    *,
    n_steps_each: int,
    step_size: float,
    x_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    ``score(x, sigma)`` is a noise-conditional score; ``sigmas`` decrease. Chains start from
    N(0, sigma_1^2 I) (the data is negligible beside the largest noise) unless ``x_init`` is
    given, and run ``n_steps_each`` steps at every level with alpha_i = step_size * sigma_i^2 /
    sigma_L^2. Labels run from K = L * n_steps_each down to 0.
    """
    sigmas = [float(s) for s in sigmas]
    if any(b >= a for a, b in pairwise(sigmas)) or sigmas[-1] <= 0:
        raise ValueError(f"the sigma ladder must be positive and decreasing, got {sigmas}")
    if n_steps_each < 1 or not step_size > 0:
        raise ValueError(
            f"annealed Langevin needs n_steps_each >= 1 and step_size > 0, got "
            f"{n_steps_each}, {step_size}"
        )
    x = _start(shape, x_init, sigmas[0], generator, device)
    # 1. the step size of each level, alpha_i = eps * sigma_i^2 / sigma_L^2
    items = [(s, step_size * s**2 / sigmas[-1] ** 2) for s in sigmas for _ in range(n_steps_each)]

    def step(x_k: torch.Tensor, item: tuple[float, float]) -> torch.Tensor:
        sigma, alpha = item
        # 2. x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) z
        return langevin_step(lambda y: score(y, sigma), x_k, alpha, generator=generator)

    n = len(items)
    return run_chain(
        step,
        x,
        items,
        times=list(range(n, -1, -1)),
        record=record,
        progress=progress,
        desc="annealed langevin",
    )


def ddpm_score(
    model: nn.Module,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor,
    *,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
) -> torch.Tensor:
    """A diffusion model's score of q(x_t): -eps_theta(x_t, t) / sqrt(1 - abar_t). t: int64
    (B,) in {0..T-1}."""
    output, _ = split_output(model(x_t, t), variance)
    _, eps = to_x0_eps(prediction, schedule, x_t, t, output)
    return score_from_eps(schedule, t, eps)


def pc_corrector_step(
    score: Score,
    x: torch.Tensor,
    alpha_t: torch.Tensor | float,
    snr: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Langevin corrector at target signal-to-noise ratio ``snr`` (Song et al. 2021, Alg. 5):
    eps = 2 alpha_t (snr ||z|| / ||s||)^2, x + eps s + sqrt(2 eps) z, which is
    :func:`langevin_step` with step 2 eps.

    The norms are batch means of per-example norms, as in score_sde_pytorch: a per-example
    ratio explodes in low dimension wherever the score is near zero (at a mode), which
    inflates the variance instead of correcting it.
    """
    noise = randn_like(x, generator)
    g = score(x)
    z_norm = noise.reshape(x.shape[0], -1).norm(dim=1).mean()
    g_norm = g.reshape(x.shape[0], -1).norm(dim=1).mean().clamp_min(1e-12)
    eps = 2 * alpha_t * (snr * z_norm / g_norm) ** 2
    return langevin_step(lambda _: g, x, 2 * eps, noise=noise)


def pc_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: tuple[int, ...],
    *,
    snr: float = 0.16,
    corrector_steps: int = 1,
    prediction: Prediction | str = Prediction.EPS,
    variance: Variance | str = Variance.SMALL,
    clip: tuple[float, float] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    record: Iterable[int] | None = None,
    progress: bool = False,
) -> ChainResult:
    """Predictor-corrector sampling of a DDPM model over all T steps (Song et al. 2021).

    At each index t = T-1..0: ``corrector_steps`` Langevin corrector steps on x_{t+1} with the
    model's score at t and alpha_t = 1 - beta_t, then the ancestral predictor x_{t+1} -> x_t
    (:func:`ddpm_step`, no noise at the last step). Correcting before predicting (as
    score_sde_pytorch's ``pc_sampler`` does) keeps every corrector on a level the discrete model
    knows. ``corrector_steps = 0`` is exactly ancestral sampling. Labels: T..0 as for DDPM.
    """
    if corrector_steps < 0 or not snr > 0:
        raise ValueError(f"pc needs corrector_steps >= 0 and snr > 0, got {corrector_steps}, {snr}")
    T = schedule.T
    x = initial_noise(shape, x_T, generator=generator, device=device)

    def step(x_t: torch.Tensor, t: int) -> torch.Tensor:
        t_batch = full_timesteps(t, x_t.shape[0], x_t.device)
        alpha_t = extract(schedule.alphas, t_batch, x_t).reshape(-1)[:1]

        def score(y: torch.Tensor) -> torch.Tensor:
            return ddpm_score(model, schedule, y, t_batch, prediction=prediction, variance=variance)

        # 1. corrector: Langevin steps at the level of x_{t+1}
        for _ in range(corrector_steps):
            x_t = pc_corrector_step(score, x_t, alpha_t, snr, generator=generator)
        # 2. predictor: one ancestral step
        return ddpm_step(
            model,
            schedule,
            x_t,
            t,
            prediction=prediction,
            variance=variance,
            clip=clip,
            generator=generator,
        )

    return run_chain(
        step,
        x,
        list(range(T - 1, -1, -1)),
        times=list(range(T, -1, -1)),
        record=record,
        progress=progress,
        desc="pc",
        evals_per_item=corrector_steps + 1,
    )
