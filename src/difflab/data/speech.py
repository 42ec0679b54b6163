"""toy_speech: seeded speech-like clips whose pitch is known exactly.

A clip is a sequence of events (each drawn from the clip's own seeded generator):

- voiced segments (0.15-0.5 s): a harmonic series on a gliding f0 (a start in 90-250 Hz,
  gliding by up to +-30 % along the segment) with vibrato (4-7 Hz, 0.5-2 % depth), under a
  formant-like spectral envelope (three resonances F1 300-900 Hz, F2 900-2500 Hz,
  F3 2300-3500 Hz, bandwidths 60-200 Hz, over a flat floor of 0.3, all under a -6 dB/octave
  tilt above 100 Hz, so the fundamental stays the strongest partial), with a raised-cosine attack
  (20-50 ms) and decay (30-80 ms);
- unvoiced bursts (30-120 ms): band-passed white noise (a low cut of 1.5-3 kHz, a high cut
  of 5-7.5 kHz, capped below Nyquist) under the same kind of envelope;
- silences (50-250 ms).

The clip is scaled to a peak drawn in 0.3-0.7, over white background noise 60 dB below the
peak (a recording's noise floor; exact digital silence would make log-spectral metrics
measure nothing but their floors). The true f0 track is kept at the mel frames'
centres (sample k * hop): f0 in Hz where a voiced segment sounds, with its envelope at least
:data:`VOICED_ENVELOPE` of its peak, else 0 (unvoiced). Clip i of seed s is drawn from
``numpy.random.default_rng([s, i])``: the same clip whatever the number of clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A frame counts as voiced where the voiced segment's envelope is at least this.
VOICED_ENVELOPE = 0.25
F0_RANGE = (90.0, 250.0)
#: Background noise standard deviation relative to the clip's peak (-60 dB).
NOISE_FLOOR = 1e-3


@dataclass(frozen=True)
class SpeechClip:
    """One clip: ``audio`` (N,) float32 at ``sample_rate``; ``f0`` (N // hop,) the true
    fundamental in Hz at frame centres k * hop, 0 where unvoiced; ``hop_length`` of that grid."""

    name: str
    audio: np.ndarray
    sample_rate: int
    f0: np.ndarray | None = None
    hop_length: int | None = None

    @property
    def voiced(self) -> np.ndarray | None:
        return None if self.f0 is None else self.f0 > 0


def _envelope(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Raised-cosine attack (20-50 ms) and decay (30-80 ms) over n samples, peak 1."""
    env = np.ones(n)
    attack = min(n // 2, int(rng.uniform(0.02, 0.05) * sr))
    decay = min(n - attack, int(rng.uniform(0.03, 0.08) * sr))
    if attack:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if decay:
        env[n - decay :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, decay + 1) / decay)
    return env


def _formant_gain(freqs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Amplitude of a three-resonance envelope with a -6 dB/octave tilt at ``freqs`` (Hz)."""
    centres = [rng.uniform(300, 900), rng.uniform(900, 2500), rng.uniform(2300, 3500)]
    gain = np.full_like(freqs, 0.3)  # the source's own spectrum between the resonances
    for k, fc in enumerate(centres):
        bw = rng.uniform(60, 200)
        gain += (1.0 / (k + 1)) / (1.0 + ((freqs - fc) / (bw / 2)) ** 2)
    return gain * (100.0 / np.maximum(freqs, 100.0))


def voiced_segment(n: int, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(audio, f0) of one voiced segment of n samples, both (n,); f0 in Hz per sample."""
    t = np.arange(n) / sr
    start = rng.uniform(*F0_RANGE)
    end = start * rng.uniform(0.7, 1.3)
    glide = start * (end / start) ** (t / max(t[-1], 1e-9))  # exponential glide
    rate, depth = rng.uniform(4.0, 7.0), rng.uniform(0.005, 0.02)
    f0 = glide * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(0.45 * sr / f0.max())
    mean_f0 = float(f0.mean())
    gains = _formant_gain(mean_f0 * np.arange(1, n_harm + 1), rng)
    audio = np.zeros(n)
    for k in range(1, n_harm + 1):
        audio += gains[k - 1] * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return audio, f0


def unvoiced_segment(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-passed white noise of n samples."""
    nyquist = sr / 2
    low = min(rng.uniform(1500, 3000), 0.6 * nyquist)
    high = min(rng.uniform(5000, 7500), 0.95 * nyquist)
    from scipy import signal  # imported here: scipy.signal takes ~1 s to import

    sos = signal.butter(4, [low, high], btype="bandpass", fs=sr, output="sos")
    return 0.3 * signal.sosfilt(sos, rng.standard_normal(n))


def toy_speech_clip(
    index: int, *, seed: int = 0, seconds: float = 2.0, sample_rate: int = 16_000,
    hop_length: int = 200,
) -> SpeechClip:  # fmt: skip
    """Clip ``index`` of the seeded toy_speech set (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    n = round(seconds * sample_rate)
    audio, f0, env_voiced = np.zeros(n), np.zeros(n), np.zeros(n)
    pos = int(rng.uniform(0.02, 0.15) * sample_rate)
    while pos < n:
        kind = rng.choice(3, p=[0.55, 0.2, 0.25])
        length = int(rng.uniform(*((0.15, 0.5), (0.03, 0.12), (0.05, 0.25))[kind]) * sample_rate)
        length = min(length, n - pos)
        if length < 16:
            break
        part = slice(pos, pos + length)
        env = _envelope(length, sample_rate, rng)
        if kind == 0:
            seg, seg_f0 = voiced_segment(length, sample_rate, rng)
            audio[part] += env * seg / (np.abs(seg).max() + 1e-12)
            f0[part], env_voiced[part] = seg_f0, env
        elif kind == 1:
            audio[part] += env * unvoiced_segment(length, sample_rate, rng)
        pos += length
    peak = rng.uniform(0.3, 0.7)
    audio *= peak / max(np.abs(audio).max(), 1e-12)
    audio += NOISE_FLOOR * peak * rng.standard_normal(n)  # a recording's background noise
    centres = np.arange(n // hop_length) * hop_length
    track = np.where(env_voiced[centres] >= VOICED_ENVELOPE, f0[centres], 0.0)
    name = f"toy_speech_{seed}_{index}"
    return SpeechClip(name, audio.astype(np.float32), sample_rate, track, hop_length)


def toy_speech(
    n_clips: int, *, seed: int = 0, seconds: float = 2.0, sample_rate: int = 16_000,
    hop_length: int = 200,
) -> list[SpeechClip]:  # fmt: skip
    """Clips 0..n_clips-1 of the seeded toy_speech set."""
    return [
        toy_speech_clip(
            i, seed=seed, seconds=seconds, sample_rate=sample_rate, hop_length=hop_length
        )
        for i in range(n_clips)
    ]
