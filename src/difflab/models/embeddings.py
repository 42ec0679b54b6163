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


class ClassEmbedding(nn.Module):
    """A learned embedding of class labels for class-conditional networks: ``num_classes`` + 1
    rows of ``dim``, the last the *null class* (no label), which classifier-free guidance's
    unconditional branch uses (Ho & Salimans 2022, Sec. 3.2).

    labels (B,) int64 in 0..num_classes (num_classes = null), or None for the null class for
    every example -> (B, dim); a batch sharing one label (``expand``) is looked up once.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"a class-conditional network needs >= 1 class, got {num_classes}")
        self.num_classes = int(num_classes)
        self.table = nn.Embedding(self.num_classes + 1, dim)

    def forward(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor:
        if labels is None:
            return self.table.weight[self.num_classes].expand(batch, -1)
        if labels.shape != (batch,) or labels.dtype != torch.long:
            got = f"{labels.dtype} {tuple(labels.shape)}"
            raise ValueError(f"labels must be int64 of shape ({batch},), got {got}")
        if labels.shape[0] > 1 and labels.stride(0) == 0:
            return self.table(labels[:1]).expand(batch, -1)
        return self.table(labels)
