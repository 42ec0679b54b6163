"""Nothing lost, nothing half-written: outputs checked before the work, staged while it runs and
replaced together; operating-system errors in one line; leftovers of an interrupted write
cleaned on the next start; readable file modes; a double Ctrl-C that says what was lost."""

from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest

from difflab.app.cli import main
from difflab.app.outputs import Outputs, check_writable
from difflab.app.run import Run, load_run
from difflab.atomic import TEMP_PREFIX, remove_stale_temps, temp_path
from difflab.training import checkpoint as ckpt
from difflab.training.trainer import Trainer


def _no_sampling(monkeypatch):
    """Fail the test if the command gets as far as sampling."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("sampled before checking the output")

    monkeypatch.setattr(Run, "sample", refuse)


def _one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("difflab: error: ") and len(err.splitlines()) == 1, err
    assert needle in err, err
    return err


def test_staged_files_appear_together_or_not_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    with pytest.raises(RuntimeError), Outputs() as out:
        out.stage(tmp_path / "a.txt").write_text("new a")
        assert (tmp_path / "a.txt").read_text() == "old a"  # not visible before the commit
        raise RuntimeError("interrupted")
    assert [p.read_text() for p in sorted(tmp_path.iterdir())] == ["old a", "old b"]
    with Outputs() as out:
        out.stage(tmp_path / "a.txt").write_text("new a")
        out.stage(tmp_path / "b.txt").write_text("new b")
    assert [p.read_text() for p in sorted(tmp_path.iterdir())] == ["new a", "new b"]
    assert out.written == [tmp_path / "a.txt", tmp_path / "b.txt"]


def test_ctrl_c_while_evaluate_samples_keeps_the_previous_outputs(tiny_run, monkeypatch):
    """The issue's case: Ctrl-C during evaluate's sampling left the new bound_terms.csv/.png
    beside the old evaluate.json. Now all three stay from the earlier evaluation."""
    assert main(["evaluate", str(tiny_run), "--n", "50", "--quiet"]) == 0
    files = [tiny_run / "evaluate.json", tiny_run / "bound_terms.csv"]
    files.append(tiny_run / "plots" / "bound_terms.png")
    before = [p.read_bytes() for p in files]
    (tiny_run / "bound_terms.csv").write_text("marker\n")  # a change a rewrite would undo
    before[1] = b"marker\n"

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "sample", interrupted)
    assert main(["evaluate", str(tiny_run), "--n", "60", "--quiet"]) == 130
    assert [p.read_bytes() for p in files] == before
    leftovers = [p for p in tiny_run.rglob(f"{TEMP_PREFIX}*")]
    assert not leftovers


@pytest.mark.parametrize("case", ["directory", "parent-is-file", "no-parent", "exists"])
def test_unwritable_sample_outputs_fail_before_sampling(
    case, tiny_run, tmp_path, monkeypatch, capsys
):
    (tmp_path / "file").write_text("x")
    (tmp_path / "taken.npy").write_bytes(b"precious")
    out, needle = {
        "directory": (tmp_path, "is a directory"),
        "parent-is-file": (tmp_path / "file" / "s.npy", "is a file, not a directory"),
        "no-parent": (tmp_path / "nope" / "s.npy", "does not exist"),
        "exists": (tmp_path / "taken.npy", "already exists; pass --overwrite"),
    }[case]
    _no_sampling(monkeypatch)
    assert main(["sample", str(tiny_run), "--n", "10", "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, needle)
    assert (tmp_path / "taken.npy").read_bytes() == b"precious"


def test_a_read_only_folder_fails_before_sampling(tiny_run, tmp_path, monkeypatch, capsys):
    """(Tests run as root, for whom chmod does not stop writes: the probe's open fails the way
    a read-only file system makes it fail.)"""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = open

    def read_only_open(file, mode="r", *args, **kwargs):
        if str(file).startswith(str(folder)) and any(c in mode for c in "wxa"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only_open)
    _no_sampling(monkeypatch)
    assert main(["sample", str(tiny_run), "--out", str(folder / "x.npy"), "--quiet"]) == 2
    _one_line_error(capsys, "Read-only file system")


def test_a_full_disk_is_one_line_and_keeps_the_old_file(tiny_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.npy"
    np.save(out, np.zeros((3, 2)))
    before = out.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("difflab.atomic.os.fsync", full)
    args = ["sample", str(tiny_run), "--n", "10", "--out", str(out), "--overwrite", "--quiet"]
    assert main(args) == 2
    _one_line_error(capsys, "No space left on device; free some disk space")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_check_writable_accepts_a_new_file_and_leaves_nothing(tmp_path):
    assert check_writable(tmp_path / "new.npy") == tmp_path / "new.npy"
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    mine = temp_path(tmp_path / "a.png")
    mine.write_text("being written by this process")
    dead = tmp_path / f"{TEMP_PREFIX}999999999-abcd-b.png"  # no such PID
    dead.write_text("left by a kill -9")
    other = tmp_path / "c.png"
    other.write_text("a real output")
    assert remove_stale_temps(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "c.png"])


def test_resume_cleans_half_written_checkpoints(tiny_run, capsys):
    """Leftovers of a failed write, kill -9 or double Ctrl-C (this and older versions' names)
    are removed on the next start, with a warning, and the run resumes."""
    root = tiny_run / "checkpoints"
    half = root / f"{TEMP_PREFIX}999999999-abcd-step_00000040"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"half")
    old_style = root / ".step_00000050.x1y2"
    old_style.mkdir()
    (tiny_run / f"{TEMP_PREFIX}999999999-abcd-config.json").write_text("{")
    assert main(["train", "--resume", str(tiny_run), "--set", "train.steps=40", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "removed 3 leftovers of an interrupted write" in err
    assert not half.exists() and not old_style.exists()
    assert sorted(p.name for p in root.iterdir()) == ["step_00000030", "step_00000040"]
    assert not [p for p in tiny_run.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_failed_checkpoint_write_leaves_no_temporary_folder(tiny_run, monkeypatch):
    run = load_run(tiny_run)
    real_open = open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if "checkpoints" in str(file) and "w" in mode and str(file).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(
            tiny_run, step=99, model=run.model, ema_state={}, optimizer_state={}, state={}
        )
    assert sorted(p.name for p in (tiny_run / "checkpoints").iterdir()) == ["step_00000030"]


def test_run_files_are_readable_like_any_other_file(tiny_run):
    """config.json and manifest.json were 0600 (mkstemp's mode) while the rest was 0644."""
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    for name in ("config.json", "manifest.json", "metrics.csv"):
        assert stat.S_IMODE((tiny_run / name).stat().st_mode) == expected, name
    latest = ckpt.checkpoint_dirs(tiny_run)[-1]
    assert stat.S_IMODE(latest.stat().st_mode) == 0o777 & ~umask


def test_a_second_ctrl_c_says_nothing_was_saved(tiny_run, monkeypatch, capsys):
    """A double Ctrl-C stops at once: the message says the steps since the last checkpoint are
    lost and where to continue from."""
    calls = []
    real_step = Trainer.train_step

    def interrupted_step(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what the second SIGINT raises (training/signals.py)
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    assert main(["train", "--resume", str(tiny_run), "--set", "train.steps=60", "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("difflab: interrupted twice: stopped at once; step 32 was not saved")
    assert "the steps since step 30 are lost" in err and f"difflab train --resume {tiny_run}" in err
    assert json.loads((ckpt.checkpoint_dirs(tiny_run)[-1] / "meta.json").read_text())["step"] == 30
