"""A sweep of bad inputs through the command line: malformed configs, malformed data files and
corrupt checkpoints each end with exit code 2 and one line ``difflab: error: ...`` on stderr,
never a traceback; plus a property test over any value given with --set. The sweep of issue 11
(``SWEEP``) holds a case of each class it fixed, each also run in a separate process to check
that no command prints a traceback."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.config import Config
from difflab.training import checkpoint as ckpt


def _fails_cleanly(capsys, argv: list[str], needle: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, captured.out[-500:], err)
    assert err.startswith("difflab: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert needle in err, err
    return err


CONFIG_CASES = {
    # wrong types
    "steps-word": (["train.steps=many"], "train.steps = 'many' has the wrong type"),
    "lr-bool": (["train.lr=true"], "must be a number"),
    "width-float": (["model.width=3.5"], "must be an integer"),
    "clip-int": (["sample.clip_x0=1"], "true or false"),
    "section-scalar": (["train=3"], "section.key=value"),
    # unknown keys and sections, with a did-you-mean
    "key-typo": (["train.step=3"], "did you mean 'steps'"),
    "width-typo": (["model.widht=3"], "did you mean 'width'"),
    "section-typo": (["trian.steps=3"], "did you mean 'train'"),
    "choice-typo": (["schedule.name=cosin"], "'cosine'"),
    # out of range
    "lr-zero": (["train.lr=0"], "train.lr"),
    "T-zero": (["schedule.T=0"], "schedule.T"),
    "beta-big": (["schedule.beta_end=1.5"], "(0, 1)"),
    "decay-one": (["train.ema_decay=1"], "train.ema_decay"),
    "batch-zero": (["train.batch_size=0"], "train.batch_size"),
    "nonfinite-zero": (["train.max_nonfinite=0"], "train.max_nonfinite"),
    "precision": (["train.precision=float16"], "'bfloat16'"),
    "lr-nan": (["train.lr=nan"], "finite"),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=list(CONFIG_CASES))
def test_malformed_config_values(case, tmp_path, capsys):
    overrides, needle = CONFIG_CASES[case]
    args = [a for o in overrides for a in ("--set", o)]
    _fails_cleanly(capsys, ["train", *tiny_args(), *args, "--out", str(tmp_path / "r")], needle)
    assert not (tmp_path / "r").exists()  # nothing written


TOML_CASES = {
    "syntax": ("[train\nsteps = ", "not valid TOML"),
    "string-for-int": ('[train]\nsteps = "10"\n', "train.steps = '10' has the wrong type"),
    "unknown-section": ("[modle]\nwidth = 3\n", "did you mean 'model'"),
    "table-expected": ("train = 3\n", "[train] must be a table"),
    "binary": ("\udcff", "not valid TOML"),
}


@pytest.mark.parametrize("case", TOML_CASES, ids=list(TOML_CASES))
def test_malformed_config_files(case, tmp_path, capsys):
    text, needle = TOML_CASES[case]
    path = tmp_path / "c.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    _fails_cleanly(capsys, ["train", str(path), "--out", str(tmp_path / "r")], needle)


def test_missing_config_file(tmp_path, capsys):
    _fails_cleanly(capsys, ["train", str(tmp_path / "nope.toml")], "does not exist")


def _write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    return path


DATA_CASES = {
    "empty.csv": ("", "the file is empty"),
    "empty.npy": (b"", "the file is empty"),
    "no-rows.npy": (np.zeros((0, 2)), "contains no rows"),
    "nan.csv": ("1,2\n3,nan\n5,6\n", "NaN/inf"),
    "inf.npy": (np.array([[1.0, 2.0], [np.inf, 0.0], [1.0, 1.0]]), "NaN/inf"),
    "ragged.csv": ("1,2\n3,4,5\n6,7\n", "line 2 has 3 values"),
    "words.csv": ("1,2\n3,x\n", "'x' is not a number"),
    "3d.npy": (np.zeros((4, 2, 2)), "(N, D) is needed"),
    "1d.npy": (np.zeros(5), "reshape to (N, 1)"),
    "huge.npy": (np.array([[1.0, 2.0], [3e9, 1.0], [0.0, 0.0]]), "rescale"),
    "one-row.csv": ("1,2\n", "at least 2 rows"),
    "garbage.npy": (b"not numpy at all", "no .npy or .npz header"),
    "data.txt": ("1,2\n", "unknown extension"),
}


@pytest.mark.parametrize("name", DATA_CASES, ids=list(DATA_CASES))
def test_malformed_data_files(name, tmp_path, capsys):
    content, needle = DATA_CASES[name]
    path = _write(tmp_path / name, content)
    args = tiny_args("data.name=file", f"data.path={path}")
    _fails_cleanly(capsys, ["train", *args, "--out", str(tmp_path / "r")], needle)
    assert not (tmp_path / "r").exists()


def test_data_of_another_dimension_than_the_run(tiny_run, tmp_path, capsys):
    """A run's checkpoint applied to data of another dimension says what differs."""
    cfg = json.loads((tiny_run / "config.json").read_text())
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    manifest["data"]["shape"] = [3]
    (tiny_run / "manifest.json").write_text(json.dumps(manifest))
    assert cfg["data"]["name"] == "swiss_roll"
    _fails_cleanly(capsys, ["sample", str(tiny_run), "--n", "10"], "shapes differ")


def _corrupt(run: Path, how: str) -> None:
    latest = ckpt.checkpoint_dirs(run)[-1]
    if how == "truncated-weights":
        data = (latest / "model.safetensors").read_bytes()
        (latest / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "flipped-byte":
        data = bytearray((latest / "ema.safetensors").read_bytes())
        data[-3] ^= 0xFF
        (latest / "ema.safetensors").write_bytes(bytes(data))
    elif how == "garbage-meta":
        (latest / "meta.json").write_text("{not json")
    elif how == "garbage-state":
        (latest / "state.pt").write_bytes(b"garbage")
    elif how == "missing-manifest":
        (run / "manifest.json").unlink()
    elif how == "other-model":
        cfg = json.loads((run / "config.json").read_text())
        cfg["model"]["depth"] = 4
        (run / "config.json").write_text(json.dumps(cfg))


CKPT_CASES = {
    "truncated-weights": ("sample", "is corrupt"),
    "flipped-byte": ("sample", "SHA-256 does not match"),
    "garbage-meta": ("sample", "meta.json is corrupt"),
    "garbage-state": ("resume", "no usable checkpoint"),
    "missing-manifest": ("plot", "no manifest.json"),
    "other-model": ("sample", "no longer matches checkpoint"),
}


@pytest.mark.parametrize("how", CKPT_CASES, ids=list(CKPT_CASES))
def test_corrupt_checkpoints(how, tiny_run, capsys):
    command, needle = CKPT_CASES[how]
    _corrupt(tiny_run, how)
    if command == "resume":
        argv = ["train", "--resume", str(tiny_run), "--set", "train.steps=40", "--quiet"]
    else:
        argv = [command, str(tiny_run), "--n", "10"]
    _fails_cleanly(capsys, argv, needle)


def test_a_real_process_prints_no_traceback(tiny_run, tmp_path):
    """The same guarantee from a separate process (no in-process exception handling)."""
    _corrupt(tiny_run, "truncated-weights")
    proc = run_cli("train", "--resume", str(tiny_run), "--set", "train.steps=40")
    assert proc.returncode == 2
    assert proc.stderr.startswith("difflab: error: no usable checkpoint")
    assert len(proc.stderr.strip().splitlines()) == 1


_SECTIONS = {f.name: getattr(Config(), f.name) for f in dataclasses.fields(Config)}
_KEYS = [(s, f.name) for s, obj in _SECTIONS.items() for f in dataclasses.fields(obj)]
_VALUE_TEXT = st.one_of(
    st.integers(-(10**5), 10**5).map(str),  # larger valid sizes only cost time
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    st.sampled_from(["none", '""', "[1, 2]", "{a = 1}", "'quoted'", "1e400", "-0"]),
    st.text(max_size=10),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(_KEYS), value=_VALUE_TEXT)
def test_any_set_value_is_accepted_or_rejected_in_one_line(key, value, capsys):
    """Whatever follows --set, `train --dry-run` prints a valid config or exits 2 with one
    line; it never crashes with another exit code or a traceback."""
    section, name = key
    small = tiny_args("data.n_train=200") if key != ("data", "n_train") else []
    code = main(["train", "--dry-run", *small, "--set", f"{section}.{name}={value}"])
    captured = capsys.readouterr()
    if code == 0:
        resolved = json.loads(captured.out[: captured.out.rindex("}") + 1])
        assert name in resolved[section]
        assert "config OK" in captured.out
    else:
        assert code == 2
        err = captured.err.strip()
        assert err.startswith("difflab: error: ") and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Issue 11's sweep: one case (or a few) of each class of defect it fixed. Each case prepares a
# copy of a trained run (or a folder) and gives the command line, the exit code, the stream and
# a phrase the one line must hold. Exit 0 cases check that the input is handled, not refused.


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "run"
    assert main(["train", *tiny_args(), "--out", str(out), "--quiet"]) == 0
    return out


def _edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _set(section: str, key: str, value):
    def edit(cfg):
        cfg[section][key] = value
        return cfg

    return edit


def _hold_lock(run: Path, keep: list) -> None:
    from difflab.training.run_lock import RunLock

    keep.append(RunLock(run).acquire())  # released when the test's list goes away


def _one_dim_file(tmp: Path) -> Path:
    np.save(tmp / "line.npy", np.random.default_rng(0).normal(size=(300, 1)).astype(np.float32))
    return tmp / "line.npy"


def _train_one_dim(tmp: Path) -> None:
    args = tiny_args("data.name=file", f"data.path={_one_dim_file(tmp)}")
    assert main(["train", *args, "--out", str(tmp / "line"), "--quiet"]) == 0


def _train_relative(tmp: Path) -> None:
    """A run trained on data.path=line.npy typed relative to the folder it was trained from
    (then used from another folder: the stored path must be absolute)."""
    _one_dim_file(tmp)
    (tmp / "elsewhere").mkdir()
    here = os.getcwd()
    os.chdir(tmp)
    try:
        args = tiny_args("data.name=file", "data.path=line.npy")
        assert main(["train", *args, "--out", str(tmp / "rel"), "--quiet"]) == 0
    finally:
        os.chdir(here)


def _mixed_depth_folder(tmp: Path) -> Path:
    from PIL import Image

    folder = tmp / "mixed"
    folder.mkdir()
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(folder / "a.png")
    Image.new("L", (4, 4), 3).save(folder / "b.png")
    return folder


def _case(run: Path, tmp: Path, name: str, keep: list) -> tuple[list[str], Path | None]:
    """Prepare case ``name`` on ``run`` (a fresh copy of the trained run); returns its argv and
    the folder to run it from (None: anywhere)."""
    r = str(run)
    latest = ckpt.checkpoint_dirs(run)[-1]
    cases = {
        # 1. one writer per run directory
        "lock:resume-while-training": lambda: (_hold_lock(run, keep), ["train", "--resume", r]),
        # 2. what cannot train is refused
        "nonfinite:learned-variance-simple": lambda: (
            None,
            ["train", *tiny_args("model.variance=learned"), "--out", str(tmp / "new")],
        ),
        # 3. config.json vs checkpoint
        "config:edited-T": lambda: (
            _edit_json(run / "config.json", _set("schedule", "T", 80)),
            ["sample", r, "--n", "5"],
        ),
        # 4. image depth
        "png:mixed-depth": lambda: (
            None,
            [
                "train",
                "--set",
                "data.name=images",
                "--set",
                f"data.path={_mixed_depth_folder(tmp)}",
                "--dry-run",
            ],
        ),
        # 5. outputs replaced together or not at all: refused before any of them is written
        "atomic:plots-is-a-file": lambda: (
            (run / "plots").write_text("x"),
            ["evaluate", r, "--n", "20"],
        ),
        # 6. operating-system errors before the work
        "os:out-is-a-directory": lambda: (None, ["sample", r, "--out", str(tmp)]),
        "os:train-out-is-a-file": lambda: (
            (tmp / "f").write_text("x"),
            ["train", *tiny_args(), "--out", str(tmp / "f")],
        ),
        "os:cache-is-a-file": lambda: (
            None,
            ["demo", "--set", "data.name=digits", "--out", str(tmp / "d")],
        ),
        # 7. leftovers of an interrupted write are cleaned on the next start
        "temps:leftover-checkpoint": lambda: (
            (run / "checkpoints" / ".step_00000040.dead").mkdir(),
            ["train", "--resume", r, "--set", "train.steps=35"],
        ),
        # 8. tracebacks that were still reachable
        "trace:config-json-list": lambda: ((run / "config.json").write_text("[1, 2]"), ["plot", r]),
        "trace:manifest-empty-list": lambda: (
            (run / "manifest.json").write_text("[]"),
            ["sample", r, "--n", "5"],
        ),
        "trace:manifest-no-data": lambda: (
            _edit_json(
                run / "manifest.json", lambda m: {k: v for k, v in m.items() if k != "data"}
            ),
            ["doctor", r],
        ),
        "trace:manifest-string-shape": lambda: (
            _edit_json(run / "manifest.json", lambda m: {**m, "data": {**m["data"], "shape": "2"}}),
            ["evaluate", r],
        ),
        "trace:huge-n": lambda: (None, ["sample", r, "--n", "10000000000"]),
        "trace:nan-weights": lambda: (_nan_weights(latest), ["evaluate", r, "--n", "20"]),
        "trace:plot-1d": lambda: (_train_one_dim(tmp), ["plot", str(tmp / "line"), "--n", "100"]),
        # 9. relative data paths are stored absolute
        "paths:relative-data": lambda: (
            _train_relative(tmp),
            ["doctor", str(tmp / "rel"), "--no-preview"],
        ),
        # 10. resource limits
        "memory:wide-model": lambda: (None, ["train", "--dry-run", "--set", "model.width=100000"]),
        # 11. flags silently ignored, messages that leaked
        "flags:rtol-zero": lambda: (None, ["evaluate", r, "--rtol", "0"]),
        "flags:bench-empty-samplers": lambda: (None, ["bench-samplers", r, "--samplers", ""]),
        "flags:bench-eta-heun": lambda: (
            None,
            ["bench-samplers", r, "--samplers", "heun", "--eta", "0.5"],
        ),
        "flags:negative-seed": lambda: (None, ["train", "--dry-run", "--set", "train.seed=-1"]),
        "flags:huge-seed": lambda: (None, ["sample", r, "--seed", "12345678901234567890123"]),
        "flags:step-banana": lambda: (
            (run / "checkpoints" / "step_banana").mkdir(),
            ["sample", r, "--n", "5", "--out", str(tmp / "b.npy")],
        ),
        "flags:plot-n-1": lambda: (None, ["plot", r, "--n", "1"]),
        "flags:evaluate-n-1": lambda: (None, ["evaluate", r, "--n", "1"]),
        "flags:manifest-format-2": lambda: (
            _edit_json(run / "manifest.json", lambda m: {**m, "format": 2}),
            ["sample", r],
        ),
        "flags:meta-without-checksums": lambda: (
            _edit_json(
                latest / "meta.json", lambda m: {k: v for k, v in m.items() if k != "sha256"}
            ),
            ["sample", r, "--n", "5", "--out", str(tmp / "m.npy")],
        ),
        # 12. defaults follow the loss; a wrong combination prints a line to paste
        "defaults:ncsn-with-mlp": lambda: (
            None,
            ["train", "--dry-run", "--set", "loss.name=ncsn", "--set", "model.name=mlp"],
        ),
        # 13. no silent overwrite
        "overwrite:existing-samples": lambda: (
            (tmp / "s.npy").write_bytes(b"keep"),
            ["sample", r, "--out", str(tmp / "s.npy")],
        ),
        # 14. threads
        "threads:negative": lambda: (None, ["train", "--dry-run", "--set", "train.threads=-1"]),
        # 15. doctor's sample check: a 30-step model's samples are a blob
        "doctor:blob": lambda: (None, ["doctor", r, "--n", "300"]),
    }
    _, argv = cases[name]()
    return [*argv, "--quiet"], tmp / "elsewhere" if name == "paths:relative-data" else None


def _nan_weights(latest: Path) -> None:
    """Put a NaN into the EMA weights and re-sign the checkpoint (an intact, diverged model)."""
    import hashlib

    import safetensors.torch

    state = safetensors.torch.load_file(str(latest / "ema.safetensors"))
    first = next(iter(state))
    state[first].view(-1)[0] = float("nan")
    data = safetensors.torch.save(state)
    (latest / "ema.safetensors").write_bytes(data)
    _edit_json(
        latest / "meta.json",
        lambda m: {
            **m,
            "sha256": {**m["sha256"], "ema.safetensors": hashlib.sha256(data).hexdigest()},
        },
    )


#: case -> (exit code, stream, phrase in the last line of that stream)
SWEEP = {
    "lock:resume-while-training": (2, "err", "is in use by another difflab process"),
    "nonfinite:learned-variance-simple": (2, "err", "never trains that output"),
    "config:edited-T": (2, "err", "no longer matches checkpoint step_00000030"),
    "png:mixed-depth": (2, "err", "mixes 16-bit images (a.png) with 8-bit ones (b.png)"),
    "atomic:plots-is-a-file": (2, "err", "cannot write in"),
    "os:out-is-a-directory": (2, "err", "is a directory"),
    "os:train-out-is-a-file": (2, "err", "is a file; give the path of a new directory"),
    "os:cache-is-a-file": (2, "err", "the digits classifier cache"),
    "temps:leftover-checkpoint": (0, "err", "removed 1 leftovers of an interrupted write"),
    "trace:config-json-list": (2, "err", "holds a JSON list"),
    "trace:manifest-empty-list": (2, "err", "is not a JSON object"),
    "trace:manifest-no-data": (2, "err", "has no 'data' object"),
    "trace:manifest-string-shape": (2, "err", "'shape' must be a list"),
    "trace:huge-n": (2, "err", "use a smaller --n"),
    "trace:nan-weights": (2, "err", "NaN/inf weights"),
    "trace:plot-1d": (0, "out", "plots/samples.png"),
    "paths:relative-data": (0, "out", "[ok] data: (300, 1) in model space"),
    "memory:wide-model": (2, "err", "needs about"),
    "flags:rtol-zero": (2, "err", "evaluate.ode_rtol = 0.0 is invalid"),
    "flags:bench-empty-samplers": (2, "err", "unknown sampler ''"),
    "flags:bench-eta-heun": (2, "err", "--eta applies to the ddim sampler only"),
    "flags:negative-seed": (2, "err", "train.seed = -1 is invalid"),
    "flags:huge-seed": (2, "err", "--seed = 12345678901234567890123 is invalid"),
    "flags:step-banana": (0, "out", "wrote 5 samples"),
    "flags:plot-n-1": (2, "err", "--n must be >= 2"),
    "flags:evaluate-n-1": (2, "err", "--n must be >= 2"),
    "flags:manifest-format-2": (2, "err", "manifest format 2"),
    "flags:meta-without-checksums": (0, "out", "wrote 5 samples"),
    "defaults:ncsn-with-mlp": (2, "err", "use --set model.name=score_mlp"),
    "overwrite:existing-samples": (2, "err", "already exists; pass --overwrite"),
    "threads:negative": (2, "err", "train.threads = -1 is invalid"),
    "doctor:blob": (1, "out", "the samples are no better than a blob"),
}

#: Cases that also warn (stderr) while they succeed.
SWEEP_WARNINGS = {
    "flags:step-banana": "ignoring",
    "flags:meta-without-checksums": "lists no SHA-256 checksums",
}


def _prepare(name: str, trained: Path, tmp_path: Path, keep: list):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return _case(run, tmp_path, name, keep)


def _check(name: str, code: int, out: str, err: str) -> None:
    want, stream, needle = SWEEP[name]
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    assert code == want, (name, code, out[-500:], err[-1000:])
    text = (err if stream == "err" else out).strip()
    where = text.splitlines()[-1] if stream == "err" else text  # errors: the last line
    assert needle in where, (name, text[-800:])
    if want == 2:
        assert err.strip().startswith("difflab: error: ") and len(err.strip().splitlines()) == 1
    if name in SWEEP_WARNINGS:
        assert SWEEP_WARNINGS[name] in err, err


@pytest.mark.parametrize("name", list(SWEEP))
def test_issue_11_sweep(name, trained, tmp_path, monkeypatch, capsys):
    keep: list = []
    monkeypatch.setenv("DIFFLAB_CACHE_DIR", str(tmp_path / "cache-file"))
    (tmp_path / "cache-file").write_text("not a folder")
    argv, cwd = _prepare(name, trained, tmp_path, keep)
    if cwd is not None:
        monkeypatch.chdir(cwd)
    code = main(argv)
    captured = capsys.readouterr()
    _check(name, code, captured.out, captured.err)


def _forked(argv: list[str], *, cwd: Path | None, env: dict[str, str], timeout: float = 240):
    """Run ``difflab ARGV`` in a forked child process: its own stdout/stderr files, exit status
    and top-level exception handling (an uncaught exception prints a real traceback), like
    ``python -m difflab`` but without paying torch's import again for every case."""
    import multiprocessing
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out_file, err_file = Path(tmp) / "out", Path(tmp) / "err"
        child = multiprocessing.get_context("fork").Process(
            target=_child, args=(argv, cwd, env, str(out_file), str(err_file))
        )
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            raise AssertionError(f"difflab {' '.join(argv)} hung")
        return child.exitcode, out_file.read_text(), err_file.read_text()


def _child(argv, cwd, env, out_file, err_file) -> None:  # pragma: no cover - in the child
    import os
    import sys
    import traceback

    os.environ.update(env)
    os.environ.pop("DIFFLAB_DEBUG", None)
    if cwd is not None:
        os.chdir(cwd)
    with open(out_file, "w") as out, open(err_file, "w") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def test_no_command_prints_a_traceback_for_any_sweep_case(trained, tmp_path):
    """Every case of the sweep in its own process: the exit code and the one line are the same
    as in-process, and nothing prints a traceback."""
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    env = {"DIFFLAB_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    for name in SWEEP:
        case_dir = tmp_path / name.replace(":", "-")
        case_dir.mkdir()
        keep: list = []
        argv, cwd = _prepare(name, trained, case_dir, keep)
        code, out, err = _forked(argv, cwd=cwd, env=env)
        _check(name, code, out, err)
        for lock in keep:
            lock.release()
