"""Audio files and folders: WAV round trips, mono mixing, resampling, the split by file, and a
one-line error for every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from difflab.data.audio import (
    audio_files,
    cut_segments,
    load_audio_folder,
    read_audio,
    resample,
    write_wav,
)
from difflab.data.files import DataError
from difflab.data.speech import SpeechClip


def _tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_wav_round_trip_is_exact_to_16_bit_rounding(tmp_path):
    """write_wav quantises to 16-bit PCM: reading back differs by at most one step (2^-15;
    libsndfile scales by 32767 on write and 32768 on read, so not every sample rounds to the
    nearest level) plus float rounding."""
    y = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    path = write_wav(tmp_path / "x.wav", y, 16000)
    back, rate = read_audio(path)
    assert rate == 16000 and back.shape == y.shape
    assert np.abs(back - y).max() <= 2.0**-15 + 1e-7
    assert sf.info(str(path)).subtype == "PCM_16"


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = _tone(440, 0.1, 8000), _tone(660, 0.1, 8000)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 8000, subtype="FLOAT")
    mono, _ = read_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)


def test_resampling_keeps_the_frequency_and_duration(tmp_path):
    sf.write(tmp_path / "t.flac", _tone(1000.0, 1.0, 22050), 22050)
    y, rate = read_audio(tmp_path / "t.flac", sample_rate=16000)
    assert rate == 16000 and abs(y.shape[0] - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
    assert abs(np.argmax(spectrum) * 16000 / y.shape[0] - 1000.0) <= 2.0  # 1 Hz bins


def test_folder_split_is_by_file_fixed_and_disjoint(tmp_path):
    for i in range(12):
        sub = tmp_path / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"{i:02d}.wav", _tone(200 + 10 * i, 0.2, 16000), 16000)
    (tmp_path / ".hidden.wav").write_bytes(b"ignored")
    (tmp_path / "notes.txt").write_text("not audio, not listed")
    assert len(audio_files(tmp_path)) == 12
    names = {
        split: [c.name for c in load_audio_folder(tmp_path, split, sample_rate=16000)]
        for split in ("train", "val", "test")
    }
    assert [len(v) for v in names.values()] == [9, 1, 2]  # 20 % and 10 % of 12, rounded: 2 and 1
    assert set().union(*map(set, names.values())) == {str(p.relative_to(tmp_path))
                                                       for p in audio_files(tmp_path)}  # fmt: skip
    assert names["test"] == [c.name for c in load_audio_folder(tmp_path, "test", sample_rate=16000)]


def test_a_file_that_is_not_audio(tmp_path):
    (tmp_path / "x.wav").write_text("hello")
    with pytest.raises(DataError, match=r"x.wav: is not a readable audio file .*WAV or FLAC"):
        read_audio(tmp_path / "x.wav")


def test_nan_samples(tmp_path):
    y = _tone(300, 0.1, 8000)
    y[10] = np.nan
    y[20] = np.inf
    sf.write(tmp_path / "n.wav", y, 8000, subtype="FLOAT")
    with pytest.raises(DataError, match="n.wav: 2 samples are NaN or inf; repair or remove"):
        read_audio(tmp_path / "n.wav")


def test_an_empty_folder_and_a_missing_one(tmp_path):
    with pytest.raises(DataError, match="holds no .wav or .flac files"):
        audio_files(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        audio_files(tmp_path / "nope")


def test_too_few_files_for_a_split(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", _tone(300, 0.1, 8000), 8000)
    with pytest.raises(DataError, match="3 audio files leave the val split empty"):
        load_audio_folder(tmp_path, "val", sample_rate=8000)


def test_a_clip_shorter_than_one_segment():
    clip = SpeechClip("short.wav", np.zeros(1000, np.float32), 16000)
    with pytest.raises(DataError, match="short.wav: 1000 samples .* lower data.segment_frames"):
        cut_segments([clip], segment_frames=32, hop_length=200, n_fft=1024)


def test_write_refuses_non_finite_audio_and_keeps_the_old_file(tmp_path):
    path = write_wav(tmp_path / "keep.wav", np.zeros(100), 8000)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN or inf"):
        write_wav(path, np.full(100, np.nan), 8000)
    assert path.read_bytes() == before
    with pytest.raises(DataError, match="ending in .wav"):
        write_wav(tmp_path / "x.mp3", np.zeros(10), 8000)


def test_resample_is_identity_at_the_same_rate():
    y = _tone(440, 0.05, 8000)
    np.testing.assert_allclose(resample(y, 8000, 8000), y, atol=1e-6)
