"""One writer per run directory: a second trainer (or a resume) of a run that is training is
refused in one line, and a killed trainer leaves no stuck lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SRC, run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.run_dir import claim_new_run_dir
from difflab.training.run_lock import RunLock, RunLockedError


def test_a_second_lock_on_the_same_run_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path, what="train"):
        holder = rf"in use by another difflab process \(pid {os.getpid()}"
        with pytest.raises(RunLockedError, match=holder):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # released: free again


def test_a_killed_holder_leaves_no_stuck_lock(tmp_path):
    """flock dies with its process: kill -9 the holder and the lock is free at once."""
    code = (
        "import sys, time; from difflab.training.run_lock import RunLock; "
        f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        RunLock(tmp_path).acquire().release()
    finally:
        holder.kill()


def test_two_default_run_names_in_one_second_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("difflab.app.run_dir.time.strftime", lambda fmt: "20250101-000000")
    a, lock_a = claim_new_run_dir(None, "moons")
    b, lock_b = claim_new_run_dir(None, "moons")
    assert a != b and a.name == "20250101-000000-moons" and b.name == "20250101-000000-moons-2"
    lock_a.release()
    lock_b.release()


def test_two_trainers_started_together_on_one_out(tmp_path):
    """The issue's example, both started at once: exactly one trains, the other exits 2 with
    one line, and the run directory holds one run's log."""
    run = tmp_path / "same"
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("DIFFLAB_DEBUG", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "difflab", "train", *tiny_args(f"train.seed={seed}")]
            + ["--out", str(run), "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(text for code, text in results if code == 2)
    assert err.startswith("difflab: error: ") and err.count("\n") == 1, err
    log = (run / "metrics.csv").read_text().splitlines()
    assert log[0].startswith("step,") and [row.split(",")[0] for row in log[1:]] == [
        "10",
        "20",
        "30",
    ]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first trainer did not start"
        time.sleep(0.1)


def test_second_trainer_and_resume_of_a_training_run_are_refused(tmp_path, capsys):
    """Two `train --out same` (the issue's example: both exited 0 and mixed their files) and
    `train --resume DIR` while DIR trains: the late ones exit 2 with one line and change
    nothing; once the first is killed, --resume works (the lock is not stuck)."""
    run = tmp_path / "same"
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("DIFFLAB_DEBUG", None)
    args = tiny_args("train.steps=1000000", "train.checkpoint_every=20", "train.log_every=20")
    first = subprocess.Popen(
        [sys.executable, "-m", "difflab", "train", *args, "--out", str(run), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(run / "checkpoints", first)
        config_before = (run / "config.json").read_bytes()
        second = run_cli("train", *tiny_args("train.seed=5"), "--out", str(run))
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith("difflab: error: ") and "in use by another" in second.stderr
        assert f"pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
        resume = run_cli("train", "--resume", str(run))
        assert resume.returncode == 2 and "in use by another" in resume.stderr
        assert (run / "config.json").read_bytes() == config_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert main(["train", "--resume", str(run), "--set", "train.steps=1", "--quiet"]) == 2
    assert "is already trained to step" in capsys.readouterr().err  # got past the lock
