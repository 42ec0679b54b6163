"""toy_speech: seeded, shipped (no download), and its recorded f0 track is the pitch that an
independent estimator (librosa's pyin) hears in the audio."""

from __future__ import annotations

import numpy as np
import pytest

from difflab.audio.metrics import estimate_f0
from difflab.data.speech import F0_RANGE, toy_speech, toy_speech_clip


def test_clips_are_seeded_and_independent_of_the_set_size():
    a = toy_speech(3, seconds=0.5)
    b = toy_speech(5, seconds=0.5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)
        np.testing.assert_array_equal(x.f0, y.f0)
    assert not np.array_equal(a[0].audio, a[1].audio)
    assert not np.array_equal(toy_speech_clip(0, seed=1).audio, toy_speech_clip(0).audio)


def test_shapes_range_and_track():
    clip = toy_speech_clip(4, seconds=1.5, sample_rate=16000, hop_length=200)
    assert clip.audio.shape == (24000,) and clip.audio.dtype == np.float32
    assert 0.29 < np.abs(clip.audio).max() < 0.72  # peak in 0.3..0.7 plus the -60 dB floor
    assert clip.f0.shape == (120,)
    voiced = clip.f0[clip.f0 > 0]
    assert voiced.size > 0
    assert voiced.min() >= F0_RANGE[0] * 0.7 * 0.98 and voiced.max() <= F0_RANGE[1] * 1.3 * 1.02


@pytest.mark.parametrize("index", [0, 3, 7])
def test_the_recorded_f0_matches_the_pitch_estimated_from_the_audio(index):
    """Where both call a frame voiced, pyin agrees with the recorded f0 to a median of 15
    cents and 90 % of frames within 50 cents (pyin's own resolution is 10 cents, and frames at
    the glides' and vibrato's fastest change blur); the voiced/unvoiced decisions agree on at
    least 85 % of frames (the envelope threshold of the track vs pyin's at onsets and decays).
    Measured on clips 0-11: medians 3-7 cents, 90th percentiles <= 30 cents, agreement
    0.86-0.94; a wrong track (e.g. off by a semitone, 100 cents) fails."""
    clip = toy_speech_clip(index)
    estimate = estimate_f0(clip.audio, clip.sample_rate, clip.hop_length)
    both = (clip.f0 > 0) & (estimate > 0)
    cents = 1200 * np.abs(np.log2(estimate[both] / clip.f0[both]))
    assert both.sum() > 0.25 * clip.f0.size
    assert np.median(cents) < 15
    assert np.percentile(cents, 90) < 50
    assert np.mean((clip.f0 > 0) == (estimate > 0)) >= 0.85
