"""Exact resume: a training process really killed (SIGKILL) or stopped (SIGTERM, SIGINT) and
resumed ends with bitwise the same weights, EMA and optimiser state as an uninterrupted run.
SIGINT takes the same path as SIGTERM (training/signals.py); it is tested in-process in
tests/test_trainer.py to keep the suite quick."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from conftest import SRC
from difflab.app.cli import main
from difflab.training import checkpoint as ckpt
from difflab.training.metrics_log import read_metrics

STEPS, EVERY = 200, 20
RUN = [
    f"train.steps={STEPS}",
    f"train.checkpoint_every={EVERY}",
    "train.batch_size=32",
    "train.log_every=10",
    "train.warmup_steps=10",
    "schedule.T=50",
    "model.width=16",
    "model.depth=2",
    "data.name=moons",
    "data.n_train=256",
]


def _args(*extra: str) -> list[str]:
    return [a for item in (*RUN, *extra) for a in ("--set", item)]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("DIFFLAB_DEBUG", None)
    cmd = [sys.executable, "-m", "difflab", "train", *_args(), "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(run_dir: Path, step: int, proc: subprocess.Popen) -> None:
    target = run_dir / "checkpoints" / f"step_{step:08d}" / "meta.json"
    deadline = time.monotonic() + 120
    while not target.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    last = ckpt.checkpoint_dirs(run_dir)[-1]
    assert last.name == f"step_{STEPS:08d}"
    state = {}
    for name in ("model", "ema"):
        for k, v in safetensors.torch.load_file(str(last / f"{name}.safetensors")).items():
            state[f"{name}.{k}"] = v
    opt = ckpt.load_torch(last / "optimizer.pt")["state"]
    for i, per_param in opt.items():
        for k, v in per_param.items():
            state[f"opt.{i}.{k}"] = torch.as_tensor(v)
    return state


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *_args(), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_interrupted_run_resumes_bitwise(tmp_path, reference, sig, capsys):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(out, 2 * EVERY, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    stopped_at = ckpt.checkpoint_dirs(out)[-1]
    assert int(stopped_at.name[5:]) < STEPS, "the run ended before the signal arrived"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        # the newest checkpoint is damaged too: resuming must fall back to the one before
        (stopped_at / "model.safetensors").write_bytes(b"truncated")
    else:
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
        assert f"stopped by {sig.name}" in stderr and "--resume" in stderr
        assert "Traceback" not in stderr
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    warned = "corrupt" in capsys.readouterr().err
    assert warned == (sig == signal.SIGKILL)
    diff = _max_abs_diff(_final_state(out), _final_state(reference))
    print(f"{sig.name}: stopped at {stopped_at.name}, max |resumed - uninterrupted| = {diff}")
    assert diff == 0.0
    steps = [row["step"] for row in read_metrics(out)]
    assert steps == [row["step"] for row in read_metrics(reference)]


def test_resume_refuses_other_changes_and_finished_runs(tmp_path, reference, capsys):
    assert main(["train", "--resume", str(reference), "--set", "model.width=8"]) == 2
    assert "cannot change when resuming" in capsys.readouterr().err
    assert main(["train", "--resume", str(reference), "--quiet"]) == 2
    assert "already trained to step 200" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_resume_detects_edited_config_and_changed_data(tmp_path, capsys):
    import json

    import numpy as np

    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32))
    out = tmp_path / "run"
    tiny = _args("train.steps=20", "data.name=file", f"data.path={data}")
    assert main(["train", *tiny, "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    cfg["model"]["activation"] = "relu"
    (out / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "--resume", str(out), "--set", "train.steps=40"]) == 2
    err = capsys.readouterr().err
    assert "model.activation: 'silu' -> 'relu'" in err and len(err.splitlines()) == 1
    cfg["model"]["activation"] = "silu"
    (out / "config.json").write_text(json.dumps(cfg))
    np.save(data, np.random.default_rng(1).normal(size=(64, 2)).astype(np.float32))
    assert main(["train", "--resume", str(out), "--set", "train.steps=40"]) == 2
    assert "training data differ" in capsys.readouterr().err
