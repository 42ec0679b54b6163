"""An optional small spoken set: sentences synthesised by espeak-ng (a Debian package), for a
demo closer to speech than toy_speech. Nothing is downloaded: the clips are made on this
machine by the ``espeak-ng`` program and cached as WAV files (``$DIFFLAB_CACHE_DIR/espeak``,
else ``~/.cache/difflab/espeak``). Without espeak-ng a one-line error says how to install it.

Clip i speaks sentence i mod len(:data:`SENTENCES`) with a voice variant, pitch (30-70) and
speed (140-180 words per minute) drawn from ``numpy.random.default_rng([seed, i])``. Its pitch
is not known exactly: metrics estimate it from the audio (pyin).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

from difflab.data.files import DataError
from difflab.data.speech import SpeechClip

SENTENCES = (
    "The small boat drifted slowly toward the quiet harbour.",
    "Bright lanterns lit the narrow path after sunset.",
    "She counted seven red apples in the wooden basket.",
    "A cold wind rattled the windows all night long.",
    "He painted the old fence a pale shade of green.",
    "Thick fog rolled over the hills before dawn.",
    "The children laughed as the kite climbed higher.",
    "Fresh bread cooled on the table by the open door.",
    "Two owls called softly from the tall pine trees.",
    "The river bent sharply past the ruined mill.",
    "Please close the gate when you leave the garden.",
    "Heavy rain washed the dust from the city streets.",
    "The clock in the hall struck nine without a sound.",
    "A yellow bus waited at the corner of the square.",
    "They carried the piano carefully up the stairs.",
    "Warm light spilled from the kitchen onto the snow.",
)
VOICES = ("en", "en+m3", "en+f3", "en+m5", "en+f4")


def espeak_program() -> str:
    """The espeak-ng executable, or a one-line error saying how to install it."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise DataError(
            "data.name = 'espeak' needs the espeak-ng program, which is not installed; install "
            "it (Debian/Ubuntu: apt-get install espeak-ng) or use data.name = 'toy_speech'"
        )
    return program


def _speak(program: str, text: str, voice: str, pitch: int, speed: int, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp.wav")
    cmd = [program, "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(tmp), text]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        tmp.unlink(missing_ok=True)
        raise DataError(f"espeak-ng failed on {text!r} ({err}); check the installation") from None
    tmp.replace(path)


def espeak_clips(
    indices: list[int] | np.ndarray, *, seed: int, sample_rate: int, cache: Path
) -> list[SpeechClip]:
    """Clips ``indices`` of the espeak set at ``sample_rate``, made once and cached."""
    from difflab.data.audio import read_audio

    program = espeak_program()
    folder = cache / "espeak"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in indices:
        rng = np.random.default_rng([seed, int(i)])
        text = SENTENCES[int(i) % len(SENTENCES)]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        pitch, speed = int(rng.integers(30, 71)), int(rng.integers(140, 181))
        key = hashlib.sha256(f"{text}|{voice}|{pitch}|{speed}".encode()).hexdigest()[:16]
        path = folder / f"{key}.wav"
        if not path.is_file():
            _speak(program, text, voice, pitch, speed, path)
        audio, _ = read_audio(path, sample_rate=sample_rate)
        clips.append(SpeechClip(f"espeak_{seed}_{int(i)}", audio, sample_rate))
    return clips
