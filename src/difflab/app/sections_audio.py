"""The ``[mel]`` section: the log-mel analysis of audio runs (the sections of every run are in
``app/sections.py``; this one lives apart to keep that module short)."""

from __future__ import annotations

from dataclasses import dataclass

from difflab.audio.mel import MelSettings


@dataclass(frozen=True)
class MelConfig:
    """The log-mel analysis of audio runs (``audio/mel.py``: WaveGrad's conditioning and the
    metrics): FFT size, hop and Hann window length in samples at ``data.sample_rate``, bands
    between ``f_min`` and ``f_max`` (omitted: sample_rate / 2), the log floor of magnitudes."""

    n_fft: int = 1024
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float | None = None
    floor: float = 1e-5

    def __post_init__(self) -> None:
        self.settings(10**7)  # the checks that need no sample rate (config.py checks the rest)

    def settings(self, sample_rate: int) -> MelSettings:
        """The analysis at ``sample_rate`` (validated: one-line errors name the key)."""
        return MelSettings(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mels=self.n_mels,
            f_min=self.f_min,
            f_max=self.f_max,
            floor=self.floor,
        )
