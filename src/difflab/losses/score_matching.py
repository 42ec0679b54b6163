"""Score matching: learn s_theta(x) ~ grad_x log p(x) without knowing p.

- Exact (Hyvarinen 2005, Eq. 4): E_x[tr(grad_x s(x)) + 1/2 ||s(x)||^2]. The trace takes one
  backward pass per data dimension (D of them), so it costs O(D) network passes per step.
- Sliced (Song et al. 2019, Eq. 7): E_{x, v}[v^T (grad_x s) v + 1/2 (v^T s)^2] with random
  projections v (E[v v^T] = I); the variance-reduced form (their Eq. 8, "SSM-VR") replaces
  1/2 (v^T s)^2 by its expectation 1/2 ||s||^2. One Jacobian-vector product per projection.
- Denoising (Vincent 2011): E_{x, z}[1/2 ||s(x + sigma z) + z / sigma||^2], whose target
  -(x_noisy - x) / sigma^2 = -z / sigma is the score of q_sigma(x_noisy | x); its optimum is the
  score of the noised data p_sigma = p * N(0, sigma^2 I).
- NCSN (Song & Ermon 2019, Eq. 5-6): denoising over a geometric ladder of sigmas with a
  noise-conditional s(x, sigma), weighted by lambda(sigma) = sigma^2.

Every loss returns per-example values (B,), summed over data dimensions (the trace and the
squared norm are sums, so exact and sliced losses estimate the same number). x: (B, ...) of any
rank. Projections and noise are Gaussian (or Rademacher projections), never uniform.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum
from difflab.forward import randn_like
from difflab.losses.base import LossOutput
from difflab.schedules import expand_like

ScoreFn = Callable[..., torch.Tensor]


class Projection(StrEnum):
    """The law of the sliced projections v; both have E[v v^T] = I."""

    GAUSSIAN = "gaussian"
    RADEMACHER = "rademacher"


class JacobianMethod(StrEnum):
    """How v^T (grad_x s) v is computed: forward-mode JVP or a double backward pass."""

    JVP = "jvp"
    DOUBLE_BACKWARD = "double_backward"


def sum_flat(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def sample_projections(
    like: torch.Tensor,
    projection: Projection | str = Projection.GAUSSIAN,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random directions shaped like ``like``: N(0, I) or uniform signs in {-1, +1}."""
    if parse_enum(Projection, projection, "loss.projection") is Projection.GAUSSIAN:
        return randn_like(like, generator)
    signs = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return signs.to(like.dtype) * 2 - 1


def _input(x: torch.Tensor) -> torch.Tensor:
    """A leaf copy of x that autograd differentiates with respect to."""
    return x.detach().clone().requires_grad_(True)


def exact_score_matching(score: ScoreFn, x: torch.Tensor) -> LossOutput:
    """Hyvarinen's objective tr(grad_x s(x)) + 1/2 ||s(x)||^2 per example (B,).

    The trace is computed exactly: one backward pass (with ``create_graph``) per data
    dimension, each giving one diagonal entry d s_i / d x_i for the whole batch.
    """
    x = _input(x)
    s = score(x)
    s_flat = s.reshape(s.shape[0], -1)
    trace = torch.zeros(x.shape[0], dtype=s.dtype, device=s.device)
    for i in range(s_flat.shape[1]):
        (grad,) = torch.autograd.grad(s_flat[:, i].sum(), x, create_graph=True)
        trace = trace + grad.reshape(x.shape[0], -1)[:, i]
    norm = 0.5 * sum_flat(s**2)
    return LossOutput(trace + norm, {"trace": trace, "norm": norm})


def _vjv_jvp(score: ScoreFn, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """s(x) and v^T (grad_x s) v with one forward-mode JVP (torch.func.jvp)."""
    s, jv = torch.func.jvp(score, (x,), (v,))
    return s, sum_flat(v * jv)


def _vjv_double_backward(score: ScoreFn, x: torch.Tensor, v: torch.Tensor):
    """s(x) and v^T (grad_x s) v = v^T (v^T grad_x s)^T with a backward pass kept in the graph."""
    x = _input(x)
    s = score(x)
    (vj,) = torch.autograd.grad((s * v).sum(), x, create_graph=True)
    return s, sum_flat(vj * v)


def sliced_score_matching(
    score: ScoreFn,
    x: torch.Tensor,
    *,
    n_projections: int = 1,
    projection: Projection | str = Projection.GAUSSIAN,
    variance_reduced: bool = False,
    method: JacobianMethod | str = JacobianMethod.DOUBLE_BACKWARD,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """Sliced score matching per example (B,), averaged over ``n_projections`` directions.

    v^T (grad_x s) v + 1/2 (v^T s)^2 (Song et al. 2019, Eq. 7), or with ``variance_reduced``
    v^T (grad_x s) v + 1/2 ||s||^2 (their Eq. 8). The "norm" term squares the projection
    v^T s, a scalar per example, not element-wise products. ``method``: double backward is the
    default because it measured faster than forward-mode JVP on CPU at every D tried
    (benchmarks/bench_score_matching_cost.py, table in docs/score_matching.md).
    """
    if n_projections < 1:
        raise ValueError(f"loss.n_projections must be >= 1, got {n_projections}")
    batch = x.shape[0]
    x_rep = x.repeat(n_projections, *([1] * (x.dim() - 1)))  # (M * B, ...), projection-major
    v = sample_projections(x_rep, projection, generator=generator)
    method = parse_enum(JacobianMethod, method, "method")
    vjv_fn = _vjv_jvp if method is JacobianMethod.JVP else _vjv_double_backward
    s, vjv = vjv_fn(score, x_rep.detach(), v)
    # the "norm" term: 1/2 (v^T s)^2, or its expectation over v, 1/2 ||s||^2 (SSM-VR)
    norm = 0.5 * sum_flat(s**2) if variance_reduced else 0.5 * sum_flat(v * s) ** 2
    vjv = vjv.reshape(n_projections, batch).mean(0)
    norm = norm.reshape(n_projections, batch).mean(0)
    return LossOutput(vjv + norm, {"jacobian": vjv, "norm": norm})


def denoising_score_matching(
    score: ScoreFn,
    x: torch.Tensor,
    sigma: torch.Tensor | float,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """1/2 ||s(x + sigma z) - target||^2 per example (B,), target = -(x_noisy - x) / sigma^2.

    ``sigma`` is a float or a (B,) tensor (one level per example); a tensor is also passed to
    ``score`` as its second argument (a noise-conditional network), a float is not.
    """
    if noise is None:
        noise = randn_like(x, generator)
    if isinstance(sigma, torch.Tensor):
        sig = expand_like(sigma, x)
        x_noisy = x + sig * noise
        s = score(x_noisy, sigma)
    else:
        sig = sigma
        x_noisy = x + sig * noise
        s = score(x_noisy)
    target = -(x_noisy - x) / sig**2
    return 0.5 * sum_flat((s - target) ** 2)


def geometric_sigmas(sigma_max: float, sigma_min: float, n: int) -> torch.Tensor:
    """The NCSN ladder sigma_1 > ... > sigma_n, a geometric sequence (Song & Ermon 2019, 4.2)."""
    if not 0 < sigma_min < sigma_max or n < 2:
        raise ValueError(
            f"the sigma ladder needs 0 < sigma_min < sigma_max and n_sigmas >= 2, got "
            f"sigma_min = {sigma_min}, sigma_max = {sigma_max}, n_sigmas = {n}"
        )
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64).to(
        torch.float32
    )


def ncsn_loss(
    score: ScoreFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """NCSN's objective per example (B,): a level sigma drawn uniformly from ``sigmas`` for each
    example, then lambda(sigma) * denoising loss with lambda(sigma) = sigma^2 (Song & Ermon
    2019, Eq. 6), which makes every level's loss of order one."""
    sigmas = sigmas.to(x.device)
    idx = torch.randint(0, sigmas.shape[0], (x.shape[0],), generator=generator, device=x.device)
    sigma = sigmas[idx]
    dsm = denoising_score_matching(score, x, sigma, generator=generator)
    n = sigmas.shape[0]
    level = (n - 1 - idx).float() / n  # 0 for sigma_min .. (n - 1) / n for sigma_max
    return LossOutput(sigma**2 * dsm, {"dsm": dsm, "sigma": sigma}, level)


class ExactObjective:
    """Exact score matching of a single-scale score network ``model(x)``."""

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        return exact_score_matching(model, x0)


class SlicedObjective:
    """Sliced score matching (plain or variance-reduced) of a single-scale ``model(x)``."""

    def __init__(
        self,
        *,
        n_projections: int = 1,
        projection: Projection | str = Projection.GAUSSIAN,
        variance_reduced: bool = False,
        method: JacobianMethod | str = JacobianMethod.DOUBLE_BACKWARD,
    ) -> None:
        self.n_projections = n_projections
        self.projection = parse_enum(Projection, projection, "loss.projection")
        self.variance_reduced = variance_reduced
        self.method = parse_enum(JacobianMethod, method, "method")

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        return sliced_score_matching(
            model,
            x0,
            n_projections=self.n_projections,
            projection=self.projection,
            variance_reduced=self.variance_reduced,
            method=self.method,
            generator=generator,
        )


class DenoisingObjective:
    """Denoising score matching of a single-scale ``model(x)`` at one noise level ``sigma``."""

    def __init__(self, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"loss.sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        dsm = denoising_score_matching(model, x0, self.sigma, generator=generator)
        return LossOutput(dsm, {"dsm": dsm})


class NCSNObjective:
    """NCSN: denoising score matching of ``model(x, sigma)`` over a ladder of sigmas."""

    def __init__(self, sigmas: torch.Tensor) -> None:
        self.sigmas = sigmas

    def __call__(
        self, model: nn.Module, x0: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> LossOutput:
        return ncsn_loss(model, x0, self.sigmas, generator=generator)
