"""Audio runs end to end through the CLI (tiny budgets), and the bad inputs of the issue: each a
one-line error with exit code 2 that leaves what was written in place."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from difflab.app.cli import main
from difflab.data.audio import write_wav
from difflab.data.speech import toy_speech_clip

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "wavegrad.toml"
#: toy_speech: 10 clips of 0.5 s (7 train, 1 val, 2 test), 3 training steps, 3 iterations.
TINY_AUDIO = [
    "data.n_clips=10",
    "data.clip_seconds=0.5",
    "data.segment_frames=8",
    "train.steps=3",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.log_every=1",
    "sample.steps=3",
    "evaluate.clips=1",
    "evaluate.vocode_steps=[2]",
    "evaluate.griffin_lim_iters=[2]",
]


def _sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audio") / "run"
    assert main(["train", str(CONFIG), *_sets(*TINY_AUDIO), "--out", str(out), "--quiet"]) == 0
    return out


def test_train_records_an_audio_run(audio_run):
    manifest = json.loads((audio_run / "manifest.json").read_text())
    assert manifest["data"]["name"] == "toy_speech"
    assert manifest["data"]["shape"] == [1, 512 + 8 * 200 + 312]
    cfg = json.loads((audio_run / "config.json").read_text())
    assert cfg["mel"]["hop_length"] == 200 and cfg["model"]["name"] == "wavegrad"


def test_vocode_keeps_the_length_and_resamples_other_rates(audio_run, tmp_path, capsys):
    clip = toy_speech_clip(0, seconds=0.3)
    write_wav(tmp_path / "in.wav", clip.audio[:4321], 16000)
    out = tmp_path / "out.wav"
    assert main(["vocode", str(audio_run), str(tmp_path / "in.wav"), "--out", str(out),
                 "--steps", "2", "--quiet"]) == 0  # fmt: skip
    y, rate = sf.read(out)
    assert rate == 16000 and y.shape == (4321,)  # the input's length, not a multiple of hop
    assert "real-time factor" in capsys.readouterr().out
    sf.write(tmp_path / "in8k.wav", clip.audio[::2], 8000)
    assert main(["vocode", str(audio_run), str(tmp_path / "in8k.wav"), "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "is at 8000 Hz; resampled to the run's 16000 Hz" in err
    assert sf.read(out)[0].shape == (4800,)  # 0.3 s at the run's rate


def test_sample_vocodes_test_clips_into_wav_files(audio_run, tmp_path):
    out = tmp_path / "clips"
    assert main(["sample", str(audio_run), "--n", "2", "--out", str(out), "--quiet"]) == 0
    files = sorted(out.glob("*.wav"))
    assert len(files) == 2
    assert all(sf.info(str(f)).frames == 8000 for f in files)


def test_evaluate_and_plot(audio_run, capsys):
    assert main(["evaluate", str(audio_run)]) == 0
    result = json.loads((audio_run / "evaluate.json").read_text())
    methods = {(r["method"], r["iterations"]) for r in result["rows"]}
    assert methods == {("wavegrad", 2), ("griffin_lim", 2)}
    assert result["f0_reference"] == "exact (generator)"
    for row in result["rows"]:
        assert row["rtf"] > 0 and np.isfinite(row["log_mel_db"])
    assert "griffin_lim" in capsys.readouterr().out
    assert main(["plot", str(audio_run)]) == 0
    names = {p.name for p in (audio_run / "plots").iterdir()}
    assert {"vocoded.png", "reverse_chain.png", "metrics_vs_steps.png", "loss.png"} <= names


def _error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("difflab: error: ") and "\n" not in err
    return err


def test_vocode_bad_inputs(audio_run, tiny_run, tmp_path, capsys):
    good = tmp_path / "in.wav"
    write_wav(good, toy_speech_clip(1, seconds=0.2).audio, 16000)
    out = tmp_path / "keep.wav"
    out.write_bytes(b"old")
    (tmp_path / "text.wav").write_text("not audio")
    err = _error(capsys, ["vocode", str(audio_run), str(tmp_path / "text.wav"), "--out", str(out)])
    assert "is not a readable audio file" in err
    err = _error(capsys, ["vocode", str(tiny_run), str(good), "--out", str(out)])
    assert "needs an audio run" in err
    err = _error(capsys, ["vocode", str(audio_run), str(good), "--out", str(tmp_path / "o.mp3")])
    assert "give a .wav file" in err
    assert out.read_bytes() == b"old"


def test_config_errors(capsys, tmp_path):
    err = _error(capsys, ["train", str(CONFIG), *_sets("mel.hop_length=256"), "--dry-run"])
    assert "multiply to 200 samples per mel frame but mel.hop_length = 256" in err
    err = _error(capsys, ["train", *_sets("data.name=toy_speech"), "--dry-run"])
    assert "a vocoder run needs audio data, a vocoder model and its loss" in err
    err = _error(capsys, ["train", str(CONFIG), *_sets("sample.sampler=langevin"), "--dry-run"])
    assert "cannot vocode" in err
    err = _error(capsys, ["train", str(CONFIG), *_sets("loss.level_draw=uniform"), "--dry-run"])
    assert "unknown loss.level_draw 'uniform'; choose one of 'paper', 'log_uniform'" in err
    err = _error(capsys, ["train", *_sets("loss.level_draw=log_uniform"), "--dry-run"])
    assert "loss.level_draw = 'log_uniform' is not read for loss.name = 'simple'" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _error(capsys, ["train", str(CONFIG), *_sets("data.name=audio", f"data.path={empty!s}"),
                          "--out", str(tmp_path / "r")])  # fmt: skip
    assert "holds no .wav or .flac files" in err
    assert not (tmp_path / "r").exists()


def test_an_audio_folder_run_with_short_clips_says_which(capsys, tmp_path):
    folder = tmp_path / "wavs"
    folder.mkdir()
    for i in range(10):
        write_wav(folder / f"{i}.wav", toy_speech_clip(i, seconds=0.05).audio, 16000)
    sets = _sets("data.segment_frames=8", "data.name=audio", f"data.path={folder!s}")
    err = _error(capsys, ["train", str(CONFIG), *sets, "--dry-run"])
    assert "is shorter than one training segment" in err and "lower data.segment_frames" in err


def test_tune_schedule_stores_a_schedule_that_vocode_uses(audio_run, tmp_path, capsys):
    args = ["tune-schedule", str(audio_run), "--steps", "2", "--clips", "1", "--mantissas", "1,5",
            "--passes", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    stored = json.loads((audio_run / "schedules.json").read_text())["schedules"]["2"]
    assert len(stored["betas"]) == 2
    assert stored["log_mel_db"] <= stored["respaced_log_mel_db"]  # it starts from there
    capsys.readouterr()
    write_wav(tmp_path / "in.wav", toy_speech_clip(2, seconds=0.2).audio, 16000)
    assert main(["vocode", str(audio_run), str(tmp_path / "in.wav"), "--out",
                 str(tmp_path / "o.wav"), "--steps", "2", "--quiet"]) == 0  # fmt: skip
    assert "tuned schedule" in capsys.readouterr().out
    err = _error(capsys, ["tune-schedule", str(audio_run), "--steps", "1"])
    assert "at least 2 steps" in err


def test_tune_schedule_compass_search_on_the_log_mel_criterion(audio_run, capsys):
    """The one tune-schedule command takes an audio run through the generic compass search
    (schedule_search.py) on the log-mel criterion: it only accepts improvements, so the stored
    schedule scores at most its start, the respaced training schedule."""
    args = ["tune-schedule", str(audio_run), "--steps", "3", "--search", "compass", "--budget",
            "4", "--clips", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    stored = json.loads((audio_run / "schedules.json").read_text())["schedules"]["3"]
    assert stored["search"] == "compass" and stored["evaluations"] <= 4
    assert len(stored["betas"]) == 3 and all(0 < b < 1 for b in stored["betas"])
    assert stored["log_mel_db"] <= stored["respaced_log_mel_db"]
    capsys.readouterr()


def test_tune_schedule_flags_that_do_not_apply(audio_run, tiny_run, capsys):
    run = str(audio_run)
    err = _error(capsys, ["tune-schedule", run, "--steps", "2", "--n", "100"])
    assert "--n do not apply to an audio run" in err
    err = _error(capsys, ["tune-schedule", run, "--steps", "2", "--criterion", "energy"])
    assert "tuned by log_mel" in err
    err = _error(capsys, ["tune-schedule", run, "--steps", "2", "--budget", "5"])
    assert "--budget: for --search compass" in err
    err = _error(capsys, ["tune-schedule", run, "--steps", "2", "--search", "compass",
                          "--passes", "3"])  # fmt: skip
    assert "--passes: for --search mantissas" in err
    err = _error(capsys, ["tune-schedule", str(tiny_run), "--steps", "2", "--clips", "3"])
    assert "--clips: audio runs only" in err


def test_doctor_on_an_audio_run(audio_run, capsys):
    main(["doctor", str(audio_run)])
    out = capsys.readouterr().out
    assert "audio segments" in out and "Griffin-Lim" in out


def test_resume_continues_an_audio_run_exactly(tmp_path):
    """2 + 2 steps through --resume give the weights of 4 steps in one go (every random draw,
    segments, levels and noise, comes from the trainer's saved generator)."""
    from safetensors.torch import load_file

    base = [*_sets(*TINY_AUDIO[:3], "train.batch_size=2", "train.log_every=1")]
    straight, split = tmp_path / "a", tmp_path / "b"
    assert main(["train", str(CONFIG), *base, *_sets("train.steps=4"), "--out", str(straight),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["train", str(CONFIG), *base, *_sets("train.steps=2"), "--out", str(split),
                 "--quiet"]) == 0  # fmt: skip
    assert main(["train", "--resume", str(split), "--set", "train.steps=4", "--quiet"]) == 0
    a = load_file(straight / "checkpoints" / "step_00000004" / "model.safetensors")
    b = load_file(split / "checkpoints" / "step_00000004" / "model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_commands_that_do_not_apply_to_audio_runs(audio_run, capsys):
    assert "is an audio run" in _error(capsys, ["bench-samplers", str(audio_run)])
    err = _error(capsys, ["sample", str(audio_run), "--schedule", "tuned"])
    assert "do not apply to an audio run" in err
    assert "do not apply" in _error(capsys, ["sample", str(audio_run), "--sigma-max", "5"])
    err = _error(capsys, ["evaluate", str(audio_run), "--data", "x.npy", "--rtol", "1e-3"])
    assert "--data, --rtol do not apply to an audio run" in err


def test_a_run_from_before_level_encoding_loads_with_the_papers_encoding(tmp_path):
    """A run whose recorded config has no ``model.level_encoding`` (trained before the key
    existed, with the paper's encoding) loads and vocodes: the default is the paper's; the
    shipped config's log_sigma run has the extra encoder weights and vocodes too."""
    from safetensors.torch import load_file

    old = tmp_path / "old"
    assert main(["train", str(CONFIG), *_sets(*TINY_AUDIO, "model.level_encoding=level"),
                 "--out", str(old), "--quiet"]) == 0  # fmt: skip
    cfg_path = old / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["model"]["level_encoding"]
    cfg_path.write_text(json.dumps(cfg))
    weights = load_file(old / "checkpoints" / "step_00000003" / "model.safetensors")
    assert not any("encoder." in k for k in weights)
    clip = toy_speech_clip(1, seconds=0.2)
    write_wav(tmp_path / "in.wav", clip.audio, 16000)
    out = tmp_path / "out.wav"
    assert main(["vocode", str(old), str(tmp_path / "in.wav"), "--out", str(out), "--steps", "2",
                 "--quiet"]) == 0  # fmt: skip
    assert sf.read(out)[0].shape == clip.audio.shape
