"""Embeddings of the time step (or noise level) fed to networks."""

from __future__ import annotations

import math

import torch
from torch import nn

from difflab.choices import StrEnum, parse_enum


class Activation(StrEnum):
    SILU = "silu"
    RELU = "relu"
    GELU = "gelu"
    SOFTPLUS = "softplus"
    TANH = "tanh"


_ACTIVATIONS = {
    Activation.SILU: nn.SiLU,
    Activation.RELU: nn.ReLU,
    Activation.GELU: nn.GELU,
    Activation.SOFTPLUS: nn.Softplus,
    Activation.TANH: nn.Tanh,
}


def make_activation(name: str | Activation) -> nn.Module:
    """An activation module by name (silu, relu, gelu, softplus, tanh)."""
    return _ACTIVATIONS[parse_enum(Activation, name, "model.activation")]()


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar per example (Vaswani et al. 2017).

    t: (B,) integer or float -> (B, dim). ``scale`` multiplies t first (e.g. 1000 / T so that
    every T spans the same frequencies).
    """

    def __init__(self, dim: int, *, max_period: float = 10_000.0, scale: float = 1.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dimension must be even and >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = float(scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (t.to(self.freqs.dtype) * self.scale)[:, None] * self.freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)
