"""Audio data: WAV/FLAC files read and written with soundfile, folders of them with a fixed
seeded split by file, and the training segments a vocoder learns from.

Clips are float32 (N,) at one sample rate: files are mixed to mono (the mean of their
channels) and resampled to the run's ``data.sample_rate`` (librosa's soxr resampler). A folder
is split by file, like images (``data/images.split_indices``, seed 0): 70 % train, 10 %
validation, 20 % test, so no file's audio is in two splits.

Training segments (:func:`cut_segments`): windows of ``segment_frames`` mel frames (F * hop
samples) every half segment and one ending at the clip's last frame, each stored with its mel
context (``audio/mel.py``) from the reflect-padded clip:
(S, 1, n_fft // 2 + F * hop + n_fft // 2 - hop).

User mistakes raise :class:`~difflab.data.files.DataError` naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from difflab.atomic import atomic_write
from difflab.data.files import DataError
from difflab.data.images import split_indices
from difflab.data.speech import SpeechClip

AUDIO_EXTENSIONS = (".wav", ".flac")


def read_audio(path: str | Path, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """A file's audio as mono float32 (N,) and its sample rate; with ``sample_rate``, resampled
    to it (the returned rate is then ``sample_rate``)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"{path}: is not a readable audio file ({first}); give a WAV or FLAC file"
        ) from None
    if audio.shape[0] == 0:
        raise DataError(f"{path}: holds no samples; remove it or record some audio")
    mono = audio.mean(axis=1)
    if not np.isfinite(mono).all():
        bad = int((~np.isfinite(mono)).sum())
        raise DataError(f"{path}: {bad} samples are NaN or inf; repair or remove the file")
    if sample_rate is not None and rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
        rate = sample_rate
    return mono.astype(np.float32), int(rate)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """(N,) audio from ``orig_rate`` to ``target_rate`` (librosa.resample, soxr_hq)."""
    import librosa

    out = librosa.resample(audio.astype(np.float32), orig_sr=orig_rate, target_sr=target_rate)
    return out.astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono (N,) audio as a 16-bit PCM WAV, atomically (a failed write leaves any
    existing file intact); samples beyond [-1, 1] are clipped."""
    import soundfile as sf

    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise DataError(f"{path}: audio is written as .wav; give a file name ending in .wav")
    if not path.parent.is_dir():
        raise DataError(f"{path}: the folder {path.parent} does not exist; create it first")
    data = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: not written: the audio holds NaN or inf samples")
    atomic_write(path, lambda handle: sf.write(handle, data, sample_rate, "PCM_16", format="WAV"))
    return path


def audio_files(folder: str | Path) -> list[Path]:
    """The WAV/FLAC files under ``folder`` (recursive, sorted by path; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: is not a folder; set data.path to a folder of WAV/FLAC files")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS
    )
    if not files:
        raise DataError(f"{folder}: the folder holds no .wav or .flac files; put some audio in it")
    return files


def load_audio_folder(folder: str | Path, split: str, *, sample_rate: int) -> list[SpeechClip]:
    """The clips of ``split`` ("train", "val", "test") of a folder, resampled to
    ``sample_rate`` (no f0 track: real audio's pitch is estimated when it is scored)."""
    files = audio_files(folder)
    idx = split_indices(len(files), split)
    if idx.size == 0:
        raise DataError(
            f"{folder}: {len(files)} audio files leave the {split} split empty (70/10/20 % by "
            "file); add files (at least 10 give every split one)"
        )
    root = Path(folder)
    clips = []
    for i in idx:
        audio, _ = read_audio(files[i], sample_rate=sample_rate)
        clips.append(SpeechClip(str(files[i].relative_to(root)), audio, sample_rate))
    return clips


def cut_segments(
    clips: Sequence[SpeechClip], *, segment_frames: int, hop_length: int, n_fft: int
) -> np.ndarray:
    """Training segments of every clip (see the module docstring), (S, 1, length) float32.

    A clip shorter than one segment is an error naming it and the fix."""
    seg = segment_frames * hop_length
    left, right = n_fft // 2, n_fft // 2 - hop_length
    stride = max(hop_length, (segment_frames // 2) * hop_length)
    out = []
    for clip in clips:
        audio = clip.audio
        if audio.shape[0] < seg:
            raise DataError(
                f"{clip.name}: {audio.shape[0]} samples ({audio.shape[0] / clip.sample_rate:.3g} "
                f"s) is shorter than one training segment of {seg} samples; lower "
                "data.segment_frames or remove the clip"
            )
        mode = "reflect" if audio.shape[0] > left else "constant"
        padded = np.pad(audio, (left, left), mode=mode)
        last = (audio.shape[0] // hop_length - segment_frames) * hop_length
        starts = sorted({*range(0, last + 1, stride), last})  # the clip's end is used too
        out.extend(padded[start : start + left + seg + right] for start in starts)
    return np.stack(out)[:, None, :].astype(np.float32)
