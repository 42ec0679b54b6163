"""A small U-Net for images (B, C, H, W) with a sinusoidal time embedding (Ho et al. 2020,
Appendix B; the PixelCNN++-style backbone of Salimans et al. 2017 with group norm).

Resolution levels are set by ``channel_mult``: level i has ``channels * channel_mult[i]``
channels and, after the first, half the resolution of the one before (odd sizes round up:
28 -> 14 -> 7 -> 4, and the decoder resizes back to each skip's size). Each level has
``num_res_blocks`` residual blocks (group norm, SiLU, 3x3 convolutions, the time embedding
added in between); the middle of the network, at the lowest resolution, has two residual blocks
and, if ``attention`` is set, a self-attention layer between them. With ``num_classes`` the
network is class-conditional: a learned label embedding (with a null class) is added to the time
embedding, as in Dhariwal & Nichol 2021 (``label_emb``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from difflab.models.embeddings import ClassEmbedding, SinusoidalEmbedding


def norm_groups(channels: int) -> int:
    """Groups for GroupNorm: the most of 32, 16, ..., 1 that leaves >= 4 channels per group."""
    for groups in (32, 16, 8, 4, 2):
        if channels % groups == 0 and channels // groups >= 4:
            return groups
    return 1


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """h = conv(act(norm(x))) + W e(t); out = skip(x) + conv(dropout(act(norm(h))))."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(norm_groups(c_in), c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1)
        )
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(norm_groups(c_out), c_out),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(c_out, c_out, 3, padding=1)),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(h.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """x (B, in_channels, H, W), t (B,) [, labels (B,)] -> (B, out_channels, H, W), at any
    H, W >= 1; ``labels`` (class-conditional networks only) None is the null class."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        channels: int = 64,
        channel_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        dropout: float = 0.0,
        time_dim: int = 64,
        time_scale: float = 1.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if channels < 1 or not channel_mult or min(channel_mult) < 1 or num_res_blocks < 1:
            raise ValueError(
                "U-Net needs channels >= 1, channel_mult of integers >= 1 and num_res_blocks >= 1"
            )
        out_channels = in_channels if out_channels is None else out_channels
        emb_dim = 4 * channels
        self.embed = nn.Sequential(
            SinusoidalEmbedding(time_dim, scale=time_scale),
            nn.Linear(time_dim, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        self.num_classes = num_classes
        self.class_embed = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        skips, c = [channels], channels
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, width, emb_dim, dropout=dropout))
                c = width
                skips.append(c)
            last = level == len(widths) - 1
            downsample = nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1)
            if not last:
                skips.append(c)
            self.down.append(nn.ModuleDict({"blocks": blocks, "downsample": downsample}))
        self.mid1 = ResBlock(c, c, emb_dim, dropout=dropout)
        self.mid_attn = SelfAttention(c) if attention else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, dropout=dropout)
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), width, emb_dim, dropout=dropout))
                c = width
            upsample = nn.Identity() if level == 0 else nn.Conv2d(c, c, 3, padding=1)
            self.up.append(nn.ModuleDict({"blocks": blocks, "upsample": upsample}))
        self.out = nn.Sequential(
            nn.GroupNorm(norm_groups(c), c),
            nn.SiLU(),
            _zero(nn.Conv2d(c, out_channels, 3, padding=1)),
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.embed(t)
        if self.class_embed is not None:
            emb = emb + self.class_embed(labels, x.shape[0])
        elif labels is not None:
            raise ValueError("this network is not class-conditional; it takes no labels")
        h = self.conv_in(x)
        hs = [h]
        for level in self.down:
            for block in level["blocks"]:
                h = block(h, emb)
                hs.append(h)
            if not isinstance(level["downsample"], nn.Identity):
                h = level["downsample"](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for level in self.up:
            for block in level["blocks"]:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(level["upsample"], nn.Identity):
                # 2. back to the next skip's size (odd sizes: 4 -> 7), then a 3x3 convolution.
                h = level["upsample"](F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.out(h)
