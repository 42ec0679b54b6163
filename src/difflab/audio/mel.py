"""Log-mel spectrograms: the conditioning of the vocoder and the basis of its metrics.

One :class:`MelSpectrogram` computes the features in training, vocoding, evaluation and the
Griffin-Lim baseline, so their settings can never drift apart (a known source of pitch
artefacts in public vocoder code).

Defaults (:class:`MelSettings`, the ``[mel]`` config section): 16 kHz audio, ``n_fft`` 1024,
a Hann window of ``win_length`` 800 samples (50 ms) every ``hop_length`` 200 samples (12.5 ms,
the WaveGrad paper's 50 ms / 12.5 ms), 80 bands from ``f_min`` 20 Hz to ``f_max`` (None:
sample_rate / 2) with librosa's Slaney mel filterbank (area-normalised triangles), magnitude
(not power) spectra, a log floor of 1e-5 (-100 dB in amplitude).

Frames: a clip of N samples has N // hop frames; frame k is centred on sample k * hop (the
clip is reflect-padded by n_fft // 2 on each side), so a vocoder turns F frames into exactly
F * hop samples. Features are ln(max(mel, floor)) mapped linearly so that the floor is -1 and
magnitude 1 is +1: features = 1 + 2 ln(max(mel, floor)) / (-ln floor).

Training segments carry their own context (:meth:`MelSpectrogram.context`): a segment of
F * hop samples is stored with n_fft // 2 samples before it and n_fft // 2 - hop after it, cut
from the reflect-padded clip, so its mel (:meth:`MelSpectrogram.features_of_padded`) equals
frames of the whole clip's mel exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class MelSettings:
    """The mel analysis (see the module docstring for the defaults and their sources)."""

    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float | None = None
    floor: float = 1e-5

    def __post_init__(self) -> None:
        _require(
            self.sample_rate >= 1000, "data.sample_rate", self.sample_rate, "an integer >= 1000"
        )
        _require(self.n_fft >= 16, "mel.n_fft", self.n_fft, "an integer >= 16")
        _require(
            1 <= self.hop_length <= self.n_fft // 2,
            "mel.hop_length",
            self.hop_length,
            f"in [1, n_fft / 2 = {self.n_fft // 2}] (windows must overlap)",
        )
        _require(
            1 <= self.win_length <= self.n_fft,
            "mel.win_length",
            self.win_length,
            f"in [1, mel.n_fft = {self.n_fft}]",
        )
        _require(self.n_mels >= 1, "mel.n_mels", self.n_mels, "an integer >= 1")
        top = self.top_frequency
        _require(0 <= self.f_min < top, "mel.f_min", self.f_min, f"in [0, f_max = {top:g} Hz)")
        _require(
            top <= self.sample_rate / 2,
            "mel.f_max",
            self.f_max,
            f"at most sample_rate / 2 = {self.sample_rate / 2:g} Hz, or omitted",
        )
        _require(0 < self.floor < 1, "mel.floor", self.floor, "a number in (0, 1)")

    @property
    def top_frequency(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    @property
    def context(self) -> tuple[int, int]:
        """Samples a training segment keeps before and after itself (see the module doc)."""
        return self.n_fft // 2, self.n_fft // 2 - self.hop_length

    def frames(self, n_samples: int) -> int:
        """Mel frames of a clip of ``n_samples``: n_samples // hop."""
        return n_samples // self.hop_length


def _require(ok: bool, key: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"{key} = {value!r} is invalid: it must be {rule}")


def mel_filterbank(settings: MelSettings) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney mel filterbank (librosa.filters.mel), float32."""
    import librosa

    return librosa.filters.mel(
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        n_mels=settings.n_mels,
        fmin=settings.f_min,
        fmax=settings.top_frequency,
    ).astype(np.float32)


class MelSpectrogram(nn.Module):
    """Mel magnitudes and log-mel features of waveforms (..., N) -> (..., n_mels, N // hop)."""

    def __init__(self, settings: MelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.register_buffer("filterbank", torch.from_numpy(mel_filterbank(settings)), False)
        window = torch.hann_window(settings.win_length, periodic=True)
        self.register_buffer("window", window, persistent=False)

    def magnitude_of_padded(self, y: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes of already padded audio (..., M): frames start every hop samples,
        1 + (M - n_fft) // hop of them (no padding added)."""
        s = self.settings
        lead = y.shape[:-1]
        flat = y.reshape(-1, y.shape[-1]).float()
        spec = torch.stft(
            flat,
            s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=self.window,
            center=False,
            return_complex=True,
        ).abs()
        mel = torch.matmul(self.filterbank, spec)
        return mel.reshape(*lead, *mel.shape[-2:])

    def pad(self, y: torch.Tensor) -> torch.Tensor:
        """Reflect-pad (..., N) by n_fft // 2 on each side (clips shorter than that: zeros)."""
        half = self.settings.n_fft // 2
        flat = y.reshape(-1, 1, y.shape[-1]).float()
        mode = "reflect" if y.shape[-1] > half else "constant"
        padded = nn.functional.pad(flat, (half, half), mode=mode)
        return padded.reshape(*y.shape[:-1], padded.shape[-1])

    def magnitude(self, y: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes (..., n_mels, N // hop) of clips (..., N): frame k centred on k * hop."""
        frames = self.settings.frames(y.shape[-1])
        if frames < 1:
            raise ValueError(
                f"a clip of {y.shape[-1]} samples is shorter than one mel frame "
                f"(hop {self.settings.hop_length})"
            )
        return self.magnitude_of_padded(self.pad(y))[..., :frames]

    def to_features(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel magnitudes -> features in [-1, ~1]: 1 + 2 ln(max(mel, floor)) / (-ln floor)."""
        log_floor = math.log(self.settings.floor)
        return 1.0 + 2.0 * torch.log(mel.clamp(min=self.settings.floor)) / (-log_floor)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_features` (values at the floor come back as the floor)."""
        log_floor = math.log(self.settings.floor)
        return torch.exp((features - 1.0) * (-log_floor) / 2.0)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Features of clips (..., N) -> (..., n_mels, N // hop)."""
        return self.to_features(self.magnitude(y))

    def features_of_padded(self, y: torch.Tensor) -> torch.Tensor:
        """Features of training segments stored with their context (see the module doc)."""
        return self.to_features(self.magnitude_of_padded(y))

    def log_mel_db(self, y: torch.Tensor) -> torch.Tensor:
        """20 log10(max(mel, floor)): the log-mel spectrogram in dB, for metrics."""
        return 20.0 * torch.log10(self.magnitude(y).clamp(min=self.settings.floor))
