"""Log-mel features: librosa's analysis exactly, frames on the hop grid, a tone in its band, and
training segments whose context gives the whole clip's frames."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from difflab.audio.mel import MelSettings, MelSpectrogram
from difflab.data.audio import cut_segments
from difflab.data.speech import toy_speech_clip

SETTINGS = MelSettings()


@pytest.fixture(scope="module")
def mel() -> MelSpectrogram:
    return MelSpectrogram(SETTINGS)


def test_magnitudes_equal_librosa(mel):
    """Same filterbank, window, centring and reflect padding as librosa.feature.melspectrogram
    (power 1): agreement to float32 rounding (1e-5 relative to the largest bin)."""
    y = toy_speech_clip(0, seconds=1.0).audio
    ours = mel.magnitude(torch.from_numpy(y)).numpy()
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=1024, hop_length=200, win_length=800, n_mels=80, fmin=20.0,
        power=1.0, pad_mode="reflect",
    )  # fmt: skip
    assert ours.shape == (80, y.shape[0] // 200)
    np.testing.assert_allclose(ours, ref[:, : ours.shape[1]], atol=1e-5 * ref.max())


def test_any_leading_shape(mel):
    y = torch.randn(2, 3, 1600)
    out = mel(y)
    assert out.shape == (2, 3, 80, 8)
    torch.testing.assert_close(out[1, 2], mel(y[1, 2]))


@pytest.mark.parametrize("freq", [200.0, 1000.0, 3500.0])
def test_a_pure_tone_peaks_in_the_band_containing_it(mel, freq):
    """The loudest band of a tone is one of the (overlapping) triangles whose support contains
    its frequency, and its centre is the nearest to the tone among them."""
    t = np.arange(16000) / 16000
    y = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    band = int(mel.magnitude(torch.from_numpy(y)).mean(-1).argmax())
    edges = librosa.mel_frequencies(n_mels=80 + 2, fmin=20.0, fmax=8000.0)
    assert edges[band] < freq < edges[band + 2]
    assert abs(edges[band + 1] - freq) <= min(abs(edges[band] - freq), abs(edges[band + 2] - freq))


def test_features_map_floor_and_unit_magnitude_and_invert(mel):
    m = torch.tensor([1e-9, SETTINGS.floor, 1e-3, 1.0, 4.0])
    f = mel.to_features(m)
    torch.testing.assert_close(f[:2], torch.tensor([-1.0, -1.0]))
    assert float(f[3]) == pytest.approx(1.0)
    torch.testing.assert_close(mel.from_features(f)[1:], m[1:], rtol=1e-5, atol=0)


def test_training_segments_carry_the_whole_clips_frames(mel):
    """A segment stored with its context has exactly the frames the whole clip's mel has there,
    also at the clip's two ends (reflect padding on both)."""
    clip = toy_speech_clip(1, seconds=1.0)
    full = mel(torch.from_numpy(clip.audio))
    frames = 16
    segments = cut_segments([clip], segment_frames=frames, hop_length=200, n_fft=1024)
    left, _ = SETTINGS.context
    stride = frames // 2
    assert segments.shape[1:] == (1, 1024 // 2 + frames * 200 + 1024 // 2 - 200)
    for i, seg in enumerate(torch.from_numpy(segments)):
        start = i * stride
        torch.testing.assert_close(
            mel.features_of_padded(seg[0]), full[:, start : start + frames], atol=2e-5, rtol=0
        )
        audio = clip.audio[start * 200 : (start + frames) * 200]
        np.testing.assert_array_equal(seg[0, left : left + frames * 200].numpy(), audio)
    assert (len(segments) - 1) * stride + frames == full.shape[1]  # the last frames are used


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hop_length": 600}, "mel.hop_length = 600 is invalid"),
        ({"win_length": 2048}, "mel.win_length = 2048 is invalid"),
        ({"f_max": 9000.0}, "mel.f_max = 9000.0 is invalid: it must be at most"),
        ({"f_min": 8000.0}, "mel.f_min = 8000.0 is invalid"),
    ],
)
def test_bad_settings_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        MelSettings(**change)


def test_segments_reach_the_end_of_a_clip():
    clip = toy_speech_clip(2, seconds=1.05)  # 84 frames: not a whole number of strides
    segments = cut_segments([clip], segment_frames=16, hop_length=200, n_fft=1024)
    left = 512
    last = segments[-1, 0, left : left + 16 * 200]
    np.testing.assert_array_equal(last, clip.audio[(84 - 16) * 200 : 84 * 200])
