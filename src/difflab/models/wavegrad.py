"""WaveGrad: a mel-conditioned waveform denoiser with FiLM from a continuous noise level
(Chen et al. 2020, arXiv 2009.00713, Sec. 3 and Fig. 3-5).

``net(y_noisy, level, mel)``: y_noisy (B, 1, L) the noisy waveform, level (B,) the noise level
sqrt(alpha_bar) in [0, 1] (not a step index: any inference schedule works), mel (B, n_mels, F)
log-mel features with L = F * hop, hop = prod(upsample_factors). Returns eps_hat (B, 1, L).

Layout (resolutions are fractions of the sample rate):

1. mel path: a 3-tap conv to ``mel_channels``, then one UBlock per upsampling factor
   (nearest-neighbour upsampling, 3-tap dilated convolutions with dilations (1, 2, 1, 2) in the
   first two blocks and (1, 2, 4, 8) after, leaky ReLU 0.2), ``upsample_channels`` each;
2. waveform path: a 5-tap conv to ``downsample_channels[0]`` at full rate, then one DBlock per
   factor of reversed(upsample_factors[1:]) (average-pool downsampling, dilations 1, 2, 4) to
   ``downsample_channels[1:]``;
3. FiLM: each waveform-path output (conv, leaky ReLU, + a sinusoidal encoding of the noise
   level, conv) gives (shift, scale) for the UBlock of the same rate, applied as
   shift + scale * h (paper Fig. 4);
4. a 3-tap conv from the last UBlock to one channel.

Noise-level encoding (``level_encoding``): "level", the paper's, the level times
:data:`NOISE_SCALE` = 5000 (Sec. 3.2 and its Eq. for the positional encoding) in the
transformer's sinusoidal embedding (max period 10000) with each FiLM's channel count, so levels
1e-4 apart get distinguishable encodings at l = 0.5; or "log_sigma", one sinusoidal encoding of
-ln(sigma) * :data:`LOG_SIGMA_SCALE` shared by the FiLMs (:class:`LogSigmaEncoding`), which also
separates the small sigma (1e-3 .. 1e-2, l within 5e-5 of 1) where few-step schedules end and
where 5000 l barely moves. Downsampling by average pooling (the paper says "downsample";
pooling is anti-aliased where sample picking is not).

Sizes (:data:`LAYOUTS`): "base" follows the paper (factors 5, 5, 3, 2, 2 for a hop of 300 at
24 kHz; about 15M parameters, a GPU model); "tiny" (factors 5, 5, 4, 2: hop 200, 12.5 ms at
16 kHz) runs faster than real time on two CPU cores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from difflab.choices import StrEnum, parse_enum
from difflab.models.embeddings import SinusoidalEmbedding

#: The noise level is multiplied by this before its sinusoidal encoding (Chen et al. 2020).
NOISE_SCALE = 5000.0
LEAK = 0.2


@dataclass(frozen=True)
class WaveGradLayout:
    """Channels and factors. ``upsample_factors[i]`` and ``upsample_channels[i]`` belong to
    UBlock i (from the mel rate up); ``downsample_channels`` are the waveform path's channels
    from the full rate down: entry 0 the 5-tap conv, entry j the DBlock output at the rate that
    UBlock n-1-j outputs (one entry per UBlock)."""

    upsample_factors: tuple[int, ...]
    upsample_channels: tuple[int, ...]
    downsample_channels: tuple[int, ...]
    mel_channels: int

    def __post_init__(self) -> None:
        n = len(self.upsample_factors)
        if n < 1 or any(f < 1 for f in self.upsample_factors):
            raise ValueError(
                f"model.upsample_factors = {list(self.upsample_factors)}: give at least one "
                "integer factor >= 1 (their product is the hop length)"
            )
        for key, values in (
            ("upsample_channels", self.upsample_channels),
            ("downsample_channels", self.downsample_channels),
        ):
            if len(values) != n or any(c < 1 for c in values):
                raise ValueError(
                    f"model.{key} = {list(values)}: give {n} channel counts >= 1, one per "
                    f"upsampling factor ({list(self.upsample_factors)})"
                )
        if self.mel_channels < 1:
            raise ValueError(f"model.mel_channels = {self.mel_channels}: must be >= 1")

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame: the product of the upsampling factors."""
        return math.prod(self.upsample_factors)


LAYOUTS: dict[str, WaveGradLayout] = {
    "base": WaveGradLayout(
        (5, 5, 3, 2, 2), (512, 512, 256, 128, 128), (32, 128, 128, 256, 512), 768
    ),
    "tiny": WaveGradLayout((5, 5, 4, 2), (64, 32, 16, 16), (8, 16, 16, 32), 64),
}  # fmt: skip


def layout_for(
    size: str,
    *,
    upsample_factors: Sequence[int] | None = None,
    upsample_channels: Sequence[int] | None = None,
    downsample_channels: Sequence[int] | None = None,
    mel_channels: int | None = None,
) -> WaveGradLayout:
    """The layout of ``size`` ("tiny" or "base") with any of its entries replaced."""
    if size not in LAYOUTS:
        raise ValueError(f"model.size = {size!r}: choose one of {', '.join(map(repr, LAYOUTS))}")
    base = LAYOUTS[size]
    return WaveGradLayout(
        tuple(upsample_factors or base.upsample_factors),
        tuple(upsample_channels or base.upsample_channels),
        tuple(downsample_channels or base.downsample_channels),
        mel_channels or base.mel_channels,
    )


def _conv(c_in: int, c_out: int, kernel: int = 3, dilation: int = 1) -> nn.Conv1d:
    """A 'same'-length 1-D convolution (odd kernel)."""
    return nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel // 2))


class LevelEncoding(StrEnum):
    """How the noise level reaches the FiLM modules (``model.level_encoding``)."""

    LEVEL = "level"
    LOG_SIGMA = "log_sigma"


#: ``log_sigma`` encodes -ln(sigma) times this (sigma = sqrt(1 - l^2)): sigma from 1 down to
#: 5e-4 spans 0..760, the range of a 1000-step index, so the encoding's frequencies resolve
#: every decade of sigma alike.
LOG_SIGMA_SCALE = 100.0
#: ``log_sigma`` floors sigma here before the log (the float32 level 1 - 6e-8 is sigma 3.5e-4).
MIN_SIGMA = 1e-4


class LogSigmaEncoding(nn.Module):
    """The ``log_sigma`` encoding: a sinusoidal encoding (``dim``) of -ln(sigma) *
    :data:`LOG_SIGMA_SCALE`, then two SiLU layers of width 4 ``dim`` (as DiffWave's step
    encoding), shared by every FiLM; each FiLM projects it to its channels."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.sinusoid = SinusoidalEmbedding(dim, scale=LOG_SIGMA_SCALE)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim), nn.SiLU()
        )
        self.width = 4 * dim

    @staticmethod
    def neg_log_sigma(level: torch.Tensor) -> torch.Tensor:
        """-ln(sigma), sigma = sqrt(1 - l^2) floored at :data:`MIN_SIGMA` (in float64: the
        float32 level of sigma = 1e-3 gives sigma within 3%)."""
        level = level.double()
        return -0.5 * torch.log((1.0 - level * level).clamp(min=MIN_SIGMA**2))

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(self.neg_log_sigma(level)).float())


class FiLM(nn.Module):
    """(shift, scale) from a waveform-path feature map and the noise level (paper Fig. 4).

    ``encoding_width`` None: the paper's encoding, a sinusoidal encoding of ``noise_scale`` * l
    with the block's own ``c_in`` channels; else the width of a shared encoding
    (:class:`LogSigmaEncoding`) that a linear layer projects to ``c_in`` channels."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        noise_scale: float = NOISE_SCALE,
        encoding_width: int | None = None,
    ) -> None:
        super().__init__()
        self.input_conv = _conv(c_in, c_in)
        if encoding_width is None:
            dim = c_in if c_in % 2 == 0 else c_in + 1
            self.encoding: nn.Module = SinusoidalEmbedding(dim, scale=noise_scale)
        else:
            self.encoding = nn.Linear(encoding_width, c_in)
        self.output_conv = _conv(c_in, 2 * c_out)

    def forward(
        self, h: torch.Tensor, level_or_encoding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``level_or_encoding``: the level (B,) for the paper's encoding, else the shared
        encoding (B, encoding_width)."""
        h = F.leaky_relu(self.input_conv(h), LEAK)
        h = h + self.encoding(level_or_encoding)[:, : h.shape[1], None].to(h.dtype)
        shift, scale = self.output_conv(h).chunk(2, dim=1)
        return shift, scale


class UBlock(nn.Module):
    """Upsampling block (paper Fig. 3): a 1x1 residual path and two FiLM-modulated pairs of
    dilated 3-tap convolutions, at ``factor`` times the input rate."""

    def __init__(self, c_in: int, c_out: int, factor: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.factor = factor
        self.residual = nn.Conv1d(c_in, c_out, 1)
        d = dilations
        self.convs = nn.ModuleList(
            [
                _conv(c_in, c_out, dilation=d[0]),
                _conv(c_out, c_out, dilation=d[1]),
                _conv(c_out, c_out, dilation=d[2]),
                _conv(c_out, c_out, dilation=d[3]),
            ]
        )

    def forward(self, x: torch.Tensor, film: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        shift, scale = film
        up = x.repeat_interleave(self.factor, dim=-1) if self.factor > 1 else x
        # 1. first pair: act, upsample, conv, FiLM, act, conv; plus the upsampled residual
        h = F.leaky_relu(x, LEAK)
        h = h.repeat_interleave(self.factor, dim=-1) if self.factor > 1 else h
        h = shift + scale * self.convs[0](h)
        h = self.convs[1](F.leaky_relu(h, LEAK))
        x = self.residual(up) + h
        # 2. second pair, FiLM before each activation, residual
        h = self.convs[2](F.leaky_relu(shift + scale * x, LEAK))
        h = self.convs[3](F.leaky_relu(shift + scale * h, LEAK))
        return x + h


class DBlock(nn.Module):
    """Downsampling block (paper Fig. 5): average-pool by ``factor``, three dilated 3-tap
    convolutions (dilations 1, 2, 4) with leaky ReLU, plus a pooled 1x1 residual."""

    def __init__(self, c_in: int, c_out: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.residual = nn.Conv1d(c_in, c_out, 1)
        self.convs = nn.ModuleList(
            [_conv(c_in, c_out, dilation=1), _conv(c_out, c_out, dilation=2)]
            + [_conv(c_out, c_out, dilation=4)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            x = F.avg_pool1d(x, self.factor)
        h = x
        for conv in self.convs:
            h = conv(F.leaky_relu(h, LEAK))
        return h + self.residual(x)


class WaveGrad(nn.Module):
    """The WaveGrad network (see the module docstring): ``net(y_noisy, level, mel)`` -> eps_hat.

    ``n_mels``: mel bands of the conditioning; ``layout``: channels and factors (or ``size``
    "tiny" / "base" with entries replaced by the keyword arguments); ``noise_scale``: the level's
    multiplier before the sinusoidal encoding; ``level_encoding``: "level" (the paper's: each
    FiLM encodes ``noise_scale`` * l with its own channel count) or "log_sigma" (one shared
    encoding of -ln(sigma), :class:`LogSigmaEncoding`, of ``time_dim``, projected per FiLM).
    """

    def __init__(
        self,
        n_mels: int,
        *,
        size: str = "tiny",
        upsample_factors: Sequence[int] | None = None,
        upsample_channels: Sequence[int] | None = None,
        downsample_channels: Sequence[int] | None = None,
        mel_channels: int | None = None,
        noise_scale: float = NOISE_SCALE,
        level_encoding: str = "level",
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        encoding = parse_enum(LevelEncoding, level_encoding, "model.level_encoding")
        layout = layout_for(
            size,
            upsample_factors=upsample_factors,
            upsample_channels=upsample_channels,
            downsample_channels=downsample_channels,
            mel_channels=mel_channels,
        )
        self.layout, self.n_mels = layout, n_mels
        factors, up_ch, down_ch = (
            layout.upsample_factors,
            layout.upsample_channels,
            layout.downsample_channels,
        )
        n = len(factors)
        self.mel_conv = _conv(n_mels, layout.mel_channels)
        ins = (layout.mel_channels, *up_ch[:-1])
        self.ublocks = nn.ModuleList(
            UBlock(ins[i], up_ch[i], factors[i], (1, 2, 1, 2) if i < 2 else (1, 2, 4, 8))
            for i in range(n)
        )
        self.wave_conv = _conv(1, down_ch[0], kernel=5)
        # DBlock j takes the rate of UBlock n-1-j's output to that of UBlock n-2-j's output
        self.dblocks = nn.ModuleList(
            DBlock(down_ch[j], down_ch[j + 1], factors[n - 1 - j]) for j in range(n - 1)
        )
        # FiLM j (full rate first) feeds UBlock n-1-j, which outputs that rate
        self.encoder = LogSigmaEncoding(time_dim) if encoding is LevelEncoding.LOG_SIGMA else None
        width = None if self.encoder is None else self.encoder.width
        self.films = nn.ModuleList(
            FiLM(down_ch[j], up_ch[n - 1 - j], noise_scale=noise_scale, encoding_width=width)
            for j in range(n)
        )
        self.out_conv = _conv(up_ch[-1], 1)

    @property
    def hop_length(self) -> int:
        return self.layout.hop_length

    def forward(self, y: torch.Tensor, level: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        frames, hop = mel.shape[-1], self.hop_length
        if y.dim() != 3 or y.shape[1] != 1 or y.shape[-1] != frames * hop:
            raise ValueError(
                f"WaveGrad takes waveforms (B, 1, frames * hop) = (B, 1, {frames * hop}) for "
                f"{frames} mel frames and hop {hop}; got {tuple(y.shape)}"
            )
        # 1. waveform path, full rate first; each output conditions one FiLM
        level_or_encoding = level if self.encoder is None else self.encoder(level)
        h = self.wave_conv(y)
        films = [self.films[0](h, level_or_encoding)]
        for j, block in enumerate(self.dblocks):
            h = block(h)
            films.append(self.films[j + 1](h, level_or_encoding))
        # 2. mel path, upsampled block by block, modulated at the same rate
        x = self.mel_conv(mel)
        for i, block in enumerate(self.ublocks):
            x = block(x, films[len(films) - 1 - i])
        # 3. one channel out
        return self.out_conv(F.leaky_relu(x, LEAK))
