"""Objective audio metrics of a vocoded clip against its reference (no listening panel).

- :func:`log_mel_distance`: the log-mel spectral distance in dB: per frame the RMS over bands
  of 20 log10(mel_ref / mel_out) (both floored at ``mel.floor``), averaged over frames; the
  mel is the run's own analysis (``audio/mel.py``).
- :func:`mr_stft_distance`: the multi-resolution STFT distance (Yamamoto et al. 2020, Eqs.
  1-3): at FFT sizes 512, 1024, 2048 (hops 128, 256, 512, Hann windows of the FFT size) the
  spectral convergence ||S_ref - S_out||_F / ||S_ref||_F plus the mean |log S_ref - log S_out|
  (magnitudes floored at 1e-7), averaged over the resolutions.
- :func:`snr_db`: 10 log10(sum y^2 / sum (y - y_hat)^2), phase-sensitive.
- :func:`f0_errors`: f0 RMSE in Hz and in cents over frames voiced in both tracks, and the
  voicing error (the fraction of frames whose voiced/unvoiced decision differs); tracks are
  on the mel frames' grid (frame k centred on sample k * hop). :func:`estimate_f0` is
  librosa's pyin (Mauch & Dixon 2014) between 60 and 400 Hz.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from difflab.audio.mel import MelSpectrogram

#: (n_fft, hop) of the multi-resolution STFT distance.
MR_STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
F0_MIN, F0_MAX = 60.0, 400.0


def _as_tensor(y: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1)


def _same_length(ref, out) -> tuple[torch.Tensor, torch.Tensor]:
    ref, out = _as_tensor(ref), _as_tensor(out)
    n = min(ref.shape[0], out.shape[0])
    return ref[:n], out[:n]


def log_mel_distance(ref, out, mel: MelSpectrogram) -> float:
    """Log-mel spectral distance in dB (see the module docstring); 0 for identical clips."""
    ref, out = _same_length(ref, out)
    with torch.no_grad():
        diff = mel.log_mel_db(ref) - mel.log_mel_db(out)
    return float(diff.pow(2).mean(dim=0).sqrt().mean())


def _stft_magnitude(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft)
    spec = torch.stft(y, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
    return spec.abs().clamp(min=1e-7)


def mr_stft_distance(
    ref, out, resolutions: Sequence[tuple[int, int]] = MR_STFT_RESOLUTIONS
) -> dict[str, float]:
    """Spectral convergence, log-magnitude L1 and their sum, each averaged over resolutions."""
    ref, out = _same_length(ref, out)
    sc, mag = [], []
    for n_fft, hop in resolutions:
        if ref.shape[0] <= n_fft // 2:
            continue  # too short for this resolution's reflect padding
        s_ref, s_out = _stft_magnitude(ref, n_fft, hop), _stft_magnitude(out, n_fft, hop)
        sc.append(float(torch.linalg.norm(s_ref - s_out) / torch.linalg.norm(s_ref)))
        mag.append(float((s_ref.log() - s_out.log()).abs().mean()))
    if not sc:
        raise ValueError(f"a clip of {ref.shape[0]} samples is too short for the STFT distance")
    sc_mean, mag_mean = float(np.mean(sc)), float(np.mean(mag))
    return {"spectral_convergence": sc_mean, "log_magnitude": mag_mean, "total": sc_mean + mag_mean}


def snr_db(ref, out) -> float:
    """Signal-to-noise ratio of ``out`` against ``ref`` in dB (+inf when identical)."""
    ref, out = _same_length(ref, out)
    noise = float((ref - out).double().pow(2).sum())
    signal = float(ref.double().pow(2).sum())
    return math.inf if noise == 0 else 10.0 * math.log10(max(signal, 1e-30) / noise)


def estimate_f0(
    audio, sample_rate: int, hop_length: int, *, frame_length: int = 1024
) -> np.ndarray:
    """pyin's f0 in Hz at frames k * hop (N // hop of them), 0 where unvoiced."""
    import librosa

    y = np.asarray(audio, dtype=np.float64).reshape(-1)
    f0, voiced, _ = librosa.pyin(
        y,
        fmin=F0_MIN,
        fmax=F0_MAX,
        sr=sample_rate,
        frame_length=frame_length,
        hop_length=hop_length,
        center=True,
    )
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0)
    return f0[: y.shape[0] // hop_length]


def f0_errors(f0_ref: np.ndarray, f0_out: np.ndarray) -> dict[str, float]:
    """f0 RMSE (Hz, cents) over frames voiced in both, voicing error over all frames; tracks
    in Hz with 0 for unvoiced, cut to the shorter one. NaN RMSE when no frame is voiced in both."""
    n = min(len(f0_ref), len(f0_out))
    ref, out = np.asarray(f0_ref[:n], float), np.asarray(f0_out[:n], float)
    both = (ref > 0) & (out > 0)
    voicing = float(np.mean((ref > 0) != (out > 0))) if n else math.nan
    if not both.any():
        return {"f0_rmse_hz": math.nan, "f0_rmse_cents": math.nan, "voicing_error": voicing}
    hz = float(np.sqrt(np.mean((ref[both] - out[both]) ** 2)))
    cents = float(np.sqrt(np.mean((1200.0 * np.log2(out[both] / ref[both])) ** 2)))
    return {"f0_rmse_hz": hz, "f0_rmse_cents": cents, "voicing_error": voicing}
