"""A new user's rough edges: data paths that work from any folder, defaults that follow the
loss and the data, pasteable fixes, --version, progress on stderr, flags that are not ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.config_files import load_config


def _points(path):
    np.save(path, np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    return path


def test_a_toml_data_path_is_read_from_the_files_folder(tmp_path, monkeypatch):
    """data.path in a TOML file is relative to that file, --set data.path to the current
    folder; both are stored absolute."""
    (tmp_path / "project").mkdir()
    _points(tmp_path / "project" / "points.npy")
    toml = tmp_path / "project" / "cfg.toml"
    toml.write_text('[data]\nname = "file"\npath = "points.npy"\n')
    monkeypatch.chdir(tmp_path)  # not the file's folder
    assert load_config(toml).data.path == str(tmp_path / "project" / "points.npy")
    monkeypatch.chdir(tmp_path / "project")
    cfg = load_config(None, ["data.name=file", "data.path=points.npy"])
    assert cfg.data.path == str(tmp_path / "project" / "points.npy")


def test_a_run_on_a_relative_path_works_from_another_folder(tmp_path, monkeypatch, capsys):
    """Relative paths were stored as typed: plot, doctor and --resume from elsewhere failed."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _points(tmp_path / "a" / "points.npy")
    monkeypatch.chdir(tmp_path / "a")
    args = tiny_args("data.name=file", "data.path=points.npy")
    assert main(["train", *args, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["path"]
    assert stored == str(tmp_path / "a" / "points.npy")
    monkeypatch.chdir(tmp_path / "b")
    assert main(["plot", str(tmp_path / "run"), "--n", "50", "--quiet"]) == 0
    assert main(["doctor", str(tmp_path / "run"), "--no-preview"]) in (0, 1)
    assert "no such file" not in capsys.readouterr().out
    resume = ["train", "--resume", str(tmp_path / "run"), "--set", "train.steps=40", "--quiet"]
    assert main(resume) == 0


@pytest.mark.parametrize(
    ("loss", "model", "sampler"),
    [
        ("ncsn", "score_mlp", "annealed_langevin"),
        ("dsm", "score_mlp", "langevin"),
        ("sliced", "score_mlp", "langevin"),
        ("simple", "mlp", "ddpm"),
    ],
)
def test_the_network_and_sampler_follow_the_loss(loss, model, sampler):
    cfg = load_config(None, [f"loss.name={loss}"])
    assert (cfg.model.name, cfg.sample.sampler) == (model, sampler)


def test_required_values_and_the_image_network_follow_too():
    assert load_config(None, ["loss.name=hybrid"]).model.variance == "learned_range"
    sd = load_config(None, ["loss.name=sohl_dickstein"]).model
    assert (sd.prediction, sd.variance) == ("mean", "learned")
    assert load_config(None, ["data.name=digits"]).model.name == "unet"
    # what the user set is kept: a wrong combination is an error with a line to paste
    with pytest.raises(ValueError, match="use --set model.name=score_mlp") as err:
        load_config(None, ["loss.name=ncsn", "model.name=mlp"])
    fix = str(err.value).split("use ", 1)[1].split(" (")[0].split()
    pairs = [fix[i + 1] for i in range(0, len(fix), 2)]
    assert load_config(None, ["loss.name=ncsn", "model.name=mlp", *pairs]).model.name == "score_mlp"


def test_version_and_exit_codes_in_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("difflab 0.1.0 (torch ")
    proc = run_cli("--help")
    assert "Exit codes: 0 done" in proc.stdout.replace("\n", " ")


def test_evaluate_shows_progress_unless_quiet(tiny_run, capsys):
    """evaluate took over a minute in silence; now the bound, the ODE and the sampling each
    show a progress bar on stderr (and --quiet turns them off)."""
    assert main(["evaluate", str(tiny_run), "--n", "30"]) == 0
    err = capsys.readouterr().err
    assert "bound" in err and "ODE NLL" in err
    assert main(["evaluate", str(tiny_run), "--n", "30", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_evaluate_rtol_zero_is_refused_not_replaced(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--rtol", "0", "--quiet"]) == 2
    assert "evaluate.ode_rtol = 0.0 is invalid" in capsys.readouterr().err


def test_evaluate_flags_an_image_run_does_not_read(tmp_path, capsys):
    from test_cli_images import DIGITS_TINY

    out = tmp_path / "digits"
    assert main(["train", *tiny_args(*DIGITS_TINY), "--out", str(out), "--quiet"]) == 0
    np.save(tmp_path / "x.npy", np.zeros((10, 64), dtype=np.float32))
    for flag, value in (("--data", str(tmp_path / "x.npy")), ("--rtol", "1e-3")):
        assert main(["evaluate", str(out), flag, value, "--quiet"]) == 2
        assert f"{flag} does not apply to image runs" in capsys.readouterr().err


def test_pc_takes_steps_like_the_other_samplers(tiny_run, tmp_path):
    out = tmp_path / "pc.npy"
    args = ["sample", str(tiny_run), "--sampler", "pc", "--steps", "5", "--n", "8"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0 and np.load(out).shape == (8, 2)
