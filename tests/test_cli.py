"""End to end through the command line on tiny budgets, in temporary directories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.run import load_run


def test_train_sample_plot_in_process(tiny_run, tmp_path, capsys):
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["train"]["steps"] == 30 and cfg["schedule"]["T"] == 50
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert manifest["library"] == "difflab" and manifest["data"]["shape"] == [2]
    assert (tiny_run / "metrics.csv").read_text().startswith("step,loss")
    ckpts = sorted((tiny_run / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step_00000030"]
    assert {p.name for p in ckpts[0].iterdir()} == {
        "model.safetensors",
        "ema.safetensors",
        "optimizer.pt",
        "state.pt",
        "meta.json",
    }

    out = tmp_path / "s.csv"
    assert (
        main(["sample", str(tiny_run), "--n", "64", "--seed", "3", "--out", str(out), "--quiet"])
        == 0
    )
    samples = np.loadtxt(out, delimiter=",", skiprows=1)  # a header row: x0,x1
    assert samples.shape == (64, 2) and np.isfinite(samples).all()
    again = tmp_path / "s2.npy"
    assert (
        main(["sample", str(tiny_run), "--n", "64", "--seed", "3", "--out", str(again), "--quiet"])
        == 0
    )
    np.testing.assert_allclose(np.load(again), samples, rtol=1e-6, atol=1e-6)  # seeded: same draws

    assert main(["plot", str(tiny_run), "--n", "200"]) == 0
    names = {p.name for p in (tiny_run / "plots").iterdir()}
    assert names == {
        "data.png",
        "forward.png",
        "reverse.png",
        "samples.png",
        "loss.png",
        "score.png",  # the learned score field beside the reference (2-D data)
        "trajectories.png",
    }
    assert "plots/reverse.png" in capsys.readouterr().out


def test_demo_writes_summary(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", *tiny_args(), "--n", "300", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ed = summary["metrics"]["energy_distance"]
    assert (
        ed["value"] > 0
        and ed["floor"] > 0
        and ed["ratio"] == pytest.approx(ed["value"] / ed["floor"])
    )
    assert np.load(out / "samples.npy").shape == (300, 2)


def test_user_file_with_standardize(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal([100.0, -5.0, 3.0], [10.0, 2.0, 0.1], size=(400, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", data)
    out = tmp_path / "run"
    code = main(
        [
            "train",
            *tiny_args(
                "data.name=file", f"data.path={tmp_path / 'x.npy'}", "data.normalize=standardize"
            ),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    np.testing.assert_allclose(manifest["data"]["mean"], data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(manifest["data"]["std"], data.std(0), rtol=1e-4)
    # samples are mapped back to the user's units: exactly model-space output * std + mean
    run = load_run(out)
    samples, chain = run.sample(50, seed=1)
    expected = chain.x.numpy() * np.array(manifest["data"]["std"]) + np.array(
        manifest["data"]["mean"]
    )
    np.testing.assert_allclose(samples, expected, rtol=1e-5, atol=1e-4)
    assert (
        main(
            [
                "sample",
                str(out),
                "--n",
                "50",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "s.npy"),
                "--quiet",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), samples, rtol=1e-6)


def test_help_for_every_command():
    for command in ([], ["train"], ["sample"], ["plot"], ["demo"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--set", "schedule.name=cosin"], "unknown schedule.name 'cosin'"),
        (["train", "--set", "model.name=unet9"], "choose one of"),
        (["train", "--set", "data.name=spiral"], "'2spirals'"),
        (["train", "--set", "trian.steps=3"], "did you mean 'train'"),
        (["train", "--set", "schedule.beta_end=1.5"], "(0, 1)"),
        (["train", "--set", "schedule.T=0"], "schedule.T"),
        (["train", "--set", "train.steps=-5"], "train.steps"),
        (
            [
                "train",
                "--set",
                "schedule.name=linear",
                "--set",
                "schedule.beta_start=0.5",
                "--set",
                "schedule.beta_end=1e-3",
                "--set",
                "schedule.T=1",
            ],
            None,
        ),
        (["sample", "/nonexistent/run"], "does not exist"),
        (["sample", "RUN", "--out", "x.txt"], ".npy"),
        (["sample", "RUN", "--n", "0"], "--n must be >= 1"),
        (["plot", "/nonexistent/run"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, tiny_run, capsys):
    args = [str(tiny_run) if a == "RUN" else a for a in args]
    if args[0] == "train":
        args += ["--quiet", "--out", str(tiny_run.parent / "new")]
        if needle is None:  # a valid odd config: 1 step, beta = 0.5 warns but trains
            args += ["--set", "train.steps=2", "--set", "data.n_train=100"]
            assert main(args) == 0
            assert "alpha_bar_T" in capsys.readouterr().err
            return
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("difflab: error:") and needle in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty"),
        ("1,2\n3,nan\n", "NaN"),
        ("1,2\n3\n", "line 2"),
        ("1,2\n3,inf\n", "inf"),
    ],
)
def test_bad_data_files_exit_2(tmp_path, content, needle, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "run"
    code = main(
        ["train", *tiny_args("data.name=file", f"data.path={path}"), "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle.lower() in err.lower() and len(err.splitlines()) == 1
    assert not out.exists()  # nothing half-made is left behind


@pytest.mark.parametrize(
    "args", [["sample"], ["sample", "RUN", "--n", "abc"], ["nope"], ["train", "--bogus"]]
)
def test_usage_errors_are_one_line(args, tmp_path, capsys):
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err.startswith("difflab: error:") and len(err.splitlines()) == 1


def test_existing_run_is_never_overwritten(tiny_run, capsys):
    before = (tiny_run / "config.json").read_text()
    code = main(["train", *tiny_args(), "--out", str(tiny_run), "--quiet"])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (tiny_run / "config.json").read_text() == before


def test_console_entry_point_subprocess(tiny_run):
    result = run_cli("sample", str(tiny_run), "--n", "8", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "wrote 8 samples" in result.stdout
    result = run_cli("train", "--set", "schedule.name=cosin")
    assert result.returncode == 2 and "Traceback" not in result.stderr
