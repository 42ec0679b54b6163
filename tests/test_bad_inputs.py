"""A sweep of bad inputs through the command line: malformed configs, malformed data files and
corrupt checkpoints each end with exit code 2 and one line ``difflab: error: ...`` on stderr,
never a traceback; plus a property test over any value given with --set."""

from __future__ import annotations

import dataclasses
import json
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
    "other-model": ("sample", "another model"),
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
