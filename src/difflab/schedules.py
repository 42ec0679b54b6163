"""Noise schedules: the beta_t of the forward process and every table derived from it.

Time convention (docs/conventions.md): ``t`` is an int64 tensor of shape (B,) in {0, ..., T-1};
index t = 0 is the paper's x_1, one step of noise, and index T-1 is x_T.

Symbols (Ho et al. 2020, Sec. 2):

==============================  ==================================================
``betas[t]``                    beta_t, the variance added at step t
``alphas[t]``                   alpha_t = 1 - beta_t
``alphas_cumprod[t]``           alpha_bar_t = prod_{s<=t} alpha_s
``alphas_cumprod_prev[t]``      alpha_bar_{t-1} (1 at t = 0)
``posterior_variance[t]``       beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
``posterior_log_variance_clipped``  log beta_tilde_t, beta_tilde_1 (= 0) replaced by beta_tilde_2
``posterior_mean_coef1/2[t]``   the weights of x_0 and x_t in mu_tilde_t (Ho et al. 2020, Eq. 7)
``snr[t]``                      alpha_bar_t / (1 - alpha_bar_t)
==============================  ==================================================

Tables are computed in float64 and stored as float32 buffers, so ``schedule.to(device)`` moves
them with a model.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum


class ScheduleName(StrEnum):
    CONSTANT = "constant"
    LINEAR = "linear"
    QUAD = "quad"
    SIGMOID = "sigmoid"
    COSINE = "cosine"


class ScheduleWarning(UserWarning):
    """The schedule is valid but probably not what the user wants."""


#: alpha_bar_T above this means x_T keeps visible signal: sampling from N(0, I) starts wrong.
TERMINAL_ALPHA_BAR_TOLERANCE = 1e-2


def expand_like(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-example tensor of shape (B,) to (B, 1, ..., 1) to broadcast against x."""
    return values.reshape(values.shape[0], *([1] * (x.dim() - 1)))


def extract(table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``table[t]`` shaped to broadcast against x. t: int64 (B,) in {0..T-1}.

    A t made with ``expand`` (stride 0, one step shared by the batch, as samplers make it) is
    gathered once and returned with batch size 1, which broadcasts the same way.
    """
    if t.dim() == 1 and t.shape[0] > 1 and t.stride(0) == 0:
        t = t[:1]
    return expand_like(table[t].to(x.dtype), x)


def full_timesteps(
    t: int, batch_size: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The step index ``t`` for a whole batch, as an expanded int64 (B,) tensor (stride 0)."""
    return torch.tensor([t], dtype=torch.long, device=device).expand(batch_size)


def make_betas(
    name: str | ScheduleName,
    T: int,
    *,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
    cosine_s: float = 0.008,
    max_beta: float = 0.999,
) -> torch.Tensor:
    """Beta schedule of length T in float64.

    constant: beta_end everywhere; linear and quad: Ho et al. 2020 (quad is linear in sqrt(beta));
    sigmoid: sigmoid(linspace(-6, 6, T)) * (end - start) + start, as in the tutorial;
    cosine: Nichol & Dhariwal 2021, Eq. 17, with s = 0.008 and beta capped at ``max_beta``.
    """
    name = parse_enum(ScheduleName, name, "schedule")
    if int(T) != T or T < 1:
        raise ValueError(f"schedule.T must be an integer >= 1, got {T!r}")
    kw = {"dtype": torch.float64}
    if name is ScheduleName.CONSTANT:
        return torch.full((T,), float(beta_end), **kw)
    if name is ScheduleName.LINEAR:
        return torch.linspace(beta_start, beta_end, T, **kw)
    if name is ScheduleName.QUAD:
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, **kw) ** 2
    if name is ScheduleName.SIGMOID:
        return torch.sigmoid(torch.linspace(-6, 6, T, **kw)) * (beta_end - beta_start) + beta_start
    # cosine: abar(u) = cos^2(((u / T) + s) / (1 + s) * pi / 2), beta_t = 1 - abar_t / abar_{t-1}
    u = torch.arange(T + 1, **kw) / T
    alpha_bar = torch.cos((u + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def validate_betas(betas: torch.Tensor) -> None:
    """Raise ValueError unless betas is a non-empty 1-D finite tensor with 0 < beta < 1."""
    if betas.dim() != 1 or betas.numel() < 1:
        raise ValueError(
            f"betas must be a 1-D tensor with T >= 1 entries, got shape {tuple(betas.shape)}"
        )
    if not torch.isfinite(betas).all():
        raise ValueError("betas contain NaN or inf; every beta_t must be a finite number in (0, 1)")
    bad = (betas <= 0) | (betas >= 1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"beta at t={i} is {float(betas[i]):.6g}; every beta_t must lie in (0, 1) "
            "(check schedule.beta_start and schedule.beta_end)"
        )


class NoiseSchedule(nn.Module):
    """The forward process's variance schedule and its derived tables (see the module docstring).

    Build it from betas (any 1-D sequence) or with :meth:`from_name`. A warning of category
    :class:`ScheduleWarning` is issued when alpha_bar_T is not near 0, i.e. x_T is not N(0, I).
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    def __init__(self, betas: torch.Tensor | list[float], *, warn: bool = True) -> None:
        super().__init__()
        b = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        validate_betas(b)
        for name, value in _tables(b).items():
            self.register_buffer(name, value.to(torch.float32), persistent=False)
        terminal = float(torch.prod(1 - b))
        if warn and terminal > TERMINAL_ALPHA_BAR_TOLERANCE:
            warnings.warn(
                f"alpha_bar_T = {terminal:.3g}: x_T keeps {math.sqrt(terminal):.0%} of the signal, "
                "so x_T is far from N(0, I) and sampling starts from the wrong distribution; "
                "raise schedule.beta_end or schedule.T, or use schedule.name = 'cosine'",
                ScheduleWarning,
                stacklevel=3,
            )

    @classmethod
    def from_name(cls, name: str, T: int, *, warn: bool = True, **kwargs: float) -> NoiseSchedule:
        """Build from a schedule name (constant, linear, quad, sigmoid, cosine); see make_betas."""
        return cls(make_betas(name, T, **kwargs), warn=warn)

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.betas.shape[0])

    def extra_repr(self) -> str:
        return f"T={self.T}, alpha_bar_T={float(self.alphas_cumprod[-1]):.3g}"


def _tables(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every derived table, in float64 (Ho et al. 2020, Eqs. 4, 6, 7)."""
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    # beta_tilde at t = 0 is 0; its log is clipped to the next value (or to log beta_1 if T = 1).
    first = posterior_variance[1:2] if betas.numel() > 1 else betas[:1]
    log_var_clipped = torch.log(torch.cat([first, posterior_variance[1:]]))
    return {
        "betas": betas,
        "alphas": alphas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas": alphas.sqrt(),
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
        "sqrt_alphas_cumprod_prev": alphas_cumprod_prev.sqrt(),
        "one_minus_alphas_cumprod": 1.0 - alphas_cumprod,
        "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": torch.log1p(-alphas_cumprod),
        "sqrt_recip_alphas_cumprod": alphas_cumprod.rsqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1.0).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": log_var_clipped,
        "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev)
        * alphas.sqrt()
        / (1.0 - alphas_cumprod),
        "log_betas": torch.log(betas),
        "snr": alphas_cumprod / (1.0 - alphas_cumprod),
    }
