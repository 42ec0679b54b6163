"""Class conditioning: the null class, label dropout, and a network bound to a batch's labels.

A class-conditional network (``models.MLP`` / ``models.UNet`` with ``num_classes`` = K) is
called as ``net(x, t, labels)`` with labels (B,) in 0..K, where K is the *null class*: no label,
the network then models p(x). Classifier-free guidance trains both at once by replacing each
training label with the null class with probability p_uncond (Ho & Salimans 2022, Algorithm 1,
"label dropout"); guidance.py combines the two at sampling time.

Objectives call ``model(x_t, t)``; the trainer hands them :class:`WithLabels`, the network with
the batch's (dropped-out) labels bound, so no objective needs to know about labels. Labels
ride along row by row: any objective whose per-example losses use only its own row (every
objective here) trains p(x | c) with the same loss it trains p(x) with.
"""

from __future__ import annotations

import torch
from torch import nn


def num_classes_of(net: nn.Module) -> int | None:
    """K for a class-conditional network (its ``num_classes``), None for any other; looks
    through wrappers that keep the network as ``.net`` or ``.module`` (DDP, ShardedForward)."""
    while True:
        k = getattr(net, "num_classes", None)
        if k is not None:
            return int(k)
        inner = getattr(net, "net", None)
        if inner is None:
            inner = getattr(net, "module", None)
        if not isinstance(inner, nn.Module):
            return None
        net = inner


def null_labels(n: int, num_classes: int, *, device: torch.device | str | None = None):
    """(n,) labels all equal to the null class K (shared storage: ``expand``)."""
    return torch.full((1,), num_classes, dtype=torch.long, device=device).expand(n)


def drop_labels(
    labels: torch.Tensor,
    p_uncond: float,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Each label replaced by the null class ``num_classes`` independently with probability
    ``p_uncond`` (one uniform draw per example from ``generator``; none when p_uncond = 0).

    labels: (B,) int64 in 0..num_classes-1 -> (B,) int64 in 0..num_classes.
    """
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"label dropout must be in [0, 1), got {p_uncond}")
    if p_uncond == 0.0:
        return labels
    u = torch.rand(labels.shape, generator=generator, device=labels.device)
    return torch.where(u < p_uncond, torch.full_like(labels, num_classes), labels)


class WithLabels(nn.Module):
    """``net`` with ``labels`` bound: ``forward(x, t)`` = ``net(x, t, labels)``, for objectives
    that call ``model(x_t, t)`` on the training batch (labels (B,) per row of that batch)."""

    def __init__(self, net: nn.Module, labels: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.labels = labels

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"the objective called the network on {x.shape[0]} rows but the batch has "
                f"{self.labels.shape[0]} labels; class-conditional training needs objectives "
                "that evaluate the network on the batch's own rows"
            )
        return self.net(x, t, self.labels)
