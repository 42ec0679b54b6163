"""``[data]`` + ``[mel]`` -> audio: the clips of a split and the training segments of an audio
run (toy_speech, a folder of WAV/FLAC files, or the optional espeak-ng set).

Every source is split by clip (file) with the images' fixed permutation
(``data/images.split_indices``, seed 0): 70 / 10 / 20 % train / validation / test. Training
reads the train split, schedule tuning the validation split, ``evaluate`` and ``sample`` the
test split.
"""

from __future__ import annotations

import numpy as np
import torch

from difflab.app.config import Config
from difflab.audio.mel import MelSettings, MelSpectrogram
from difflab.data.audio import cut_segments, load_audio_folder
from difflab.data.dataset import Dataset
from difflab.data.espeak import espeak_clips
from difflab.data.files import DataError
from difflab.data.images import split_indices
from difflab.data.speech import SpeechClip, toy_speech_clip
from difflab.digits_quality import cache_dir

#: toy_speech and espeak clips are drawn with this seed (the set is fixed, like the digits).
AUDIO_DATA_SEED = 0


def mel_settings(cfg: Config) -> MelSettings:
    """The run's mel analysis at its sample rate."""
    return cfg.mel.settings(cfg.data.sample_rate)


def mel_spectrogram(cfg: Config) -> MelSpectrogram:
    return MelSpectrogram(mel_settings(cfg))


def audio_clips(cfg: Config, split: str) -> list[SpeechClip]:
    """The clips of ``split`` ("train", "val", "test") at ``data.sample_rate``; toy_speech
    clips carry their exact f0 track on the mel frames' grid."""
    data = cfg.data
    if data.name == "audio":
        assert data.path is not None
        return load_audio_folder(data.path, split, sample_rate=data.sample_rate)
    idx = split_indices(data.n_clips, split)
    if idx.size == 0:
        raise DataError(
            f"data.n_clips = {data.n_clips} leaves the {split} split empty (70/10/20 % by "
            "clip); set data.n_clips >= 10"
        )
    if data.name == "espeak":
        return espeak_clips(
            idx, seed=AUDIO_DATA_SEED, sample_rate=data.sample_rate, cache=cache_dir()
        )
    hop = cfg.mel.hop_length
    return [
        toy_speech_clip(
            int(i),
            seed=AUDIO_DATA_SEED,
            seconds=data.clip_seconds,
            sample_rate=data.sample_rate,
            hop_length=hop,
        )
        for i in idx
    ]


def build_audio_dataset(cfg: Config) -> Dataset:
    """The training segments of the train split, (S, 1, length) with their mel context."""
    clips = audio_clips(cfg, "train")
    x = cut_segments(
        clips,
        segment_frames=cfg.data.segment_frames,
        hop_length=cfg.mel.hop_length,
        n_fft=cfg.mel.n_fft,
    )
    return Dataset(cfg.data.name, torch.from_numpy(np.ascontiguousarray(x)))


def clip_features(mel: MelSpectrogram, audio: np.ndarray) -> tuple[torch.Tensor, int]:
    """(features (n_mels, F), N): a clip's mel with F = ceil(N / hop) frames, the clip padded
    with zeros to F * hop samples so the vocoded audio covers all N of them."""
    hop = mel.settings.hop_length
    n = audio.shape[0]
    frames = max(1, -(-n // hop))
    padded = np.zeros(frames * hop, dtype=np.float32)
    padded[:n] = audio
    with torch.no_grad():
        return mel(torch.from_numpy(padded)), n
