"""The ``[mel]`` section: the log-mel analysis of audio runs (the sections of every run are in
``app/sections.py``; this one lives apart to keep that module short)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from difflab.audio.mel import MelSettings


@dataclass(frozen=True)
class MelConfig:
    """The log-mel analysis of audio runs (``audio/mel.py``: WaveGrad's conditioning and the
    metrics): FFT size, hop and Hann window length in samples at ``data.sample_rate``, bands
    between ``f_min`` and ``f_max`` (omitted: sample_rate / 2), the log floor of magnitudes."""

    # the defaults are the analysis's own (audio/mel.py), written once there
    n_fft: int = MelSettings.n_fft
    hop_length: int = MelSettings.hop_length
    win_length: int = MelSettings.win_length
    n_mels: int = MelSettings.n_mels
    f_min: float = MelSettings.f_min
    f_max: float | None = MelSettings.f_max
    floor: float = MelSettings.floor

    def __post_init__(self) -> None:
        self.settings(10**7)  # the checks that need no sample rate (config.py checks the rest)

    def settings(self, sample_rate: int) -> MelSettings:
        """The analysis at ``sample_rate`` (validated: one-line errors name the key)."""
        return MelSettings(sample_rate=sample_rate, **asdict(self))
