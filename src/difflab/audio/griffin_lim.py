"""The non-neural baseline: Griffin-Lim phase reconstruction from the same mel (Griffin & Lim
1984), through librosa (``feature.inverse.mel_to_stft``, then ``griffinlim``): the mel
magnitudes are mapped back to a linear spectrogram by non-negative least squares on the same
filterbank, then ``n_iter`` Griffin-Lim iterations (librosa's momentum 0.99, a seeded random
initial phase) with the same window, hop and centring as the analysis, F * hop samples long."""

from __future__ import annotations

import numpy as np
import torch

from difflab.audio.mel import MelSpectrogram


def griffin_lim(
    features: torch.Tensor, mel: MelSpectrogram, *, n_iter: int, seed: int = 0
) -> np.ndarray:
    """Audio (F * hop,) float32 from one clip's mel features (n_mels, F)."""
    import librosa

    s = mel.settings
    magnitudes = mel.from_features(features.detach().cpu().float()).numpy().astype(np.float64)
    linear = librosa.feature.inverse.mel_to_stft(
        magnitudes, sr=s.sample_rate, n_fft=s.n_fft, power=1.0, fmin=s.f_min, fmax=s.top_frequency
    )
    # our F frames are centred on 0..(F - 1) * hop; F * hop samples have one frame more, at
    # F * hop: repeat the last frame there so Griffin-Lim's re-analysis has matching shapes
    linear = np.concatenate([linear, linear[:, -1:]], axis=1)
    audio = librosa.griffinlim(
        linear,
        n_iter=n_iter,
        hop_length=s.hop_length,
        win_length=s.win_length,
        n_fft=s.n_fft,
        window="hann",
        center=True,
        pad_mode="reflect",
        length=magnitudes.shape[-1] * s.hop_length,
        random_state=np.random.default_rng(seed),
    )
    return audio.astype(np.float32)
