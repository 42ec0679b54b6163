"""Score models end to end through the CLI on tiny budgets, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.run import load_run

NCSN = ("loss.name=ncsn", "model.name=score_mlp", "sample.sampler=annealed_langevin")


def train(tmp_path, *extra: str) -> str:
    out = tmp_path / "score_run"
    assert main(["train", *tiny_args(*extra), "--out", str(out), "--quiet"]) == 0
    return str(out)


def test_ncsn_train_sample_plot(tmp_path):
    run_dir = train(tmp_path, *NCSN, "loss.n_sigmas=4", "sample.n_steps_each=3")
    cfg = json.loads((tmp_path / "score_run" / "config.json").read_text())
    assert cfg["loss"]["name"] == "ncsn" and cfg["sample"]["n_steps_each"] == 3
    out = tmp_path / "s.npy"
    assert main(["sample", run_dir, "--n", "40", "--seed", "2", "--out", str(out), "--quiet"]) == 0
    samples = np.load(out)
    assert samples.shape == (40, 2) and np.isfinite(samples).all()
    run = load_run(run_dir)
    again, chain = run.sample(40, seed=2, record=[12, 0])
    np.testing.assert_allclose(again, samples, rtol=1e-6, atol=1e-6)
    assert chain.nfe == 4 * 3 and sorted(chain.trajectory) == [0, 12]
    assert main(["plot", run_dir, "--n", "200"]) == 0
    names = {p.name for p in (tmp_path / "score_run" / "plots").iterdir()}
    assert {"score.png", "trajectories.png", "forward.png", "reverse.png"} <= names


@pytest.mark.parametrize("loss", ["exact", "sliced", "sliced_vr", "dsm"])
def test_single_scale_losses_train_and_sample_with_langevin(tmp_path, loss):
    run_dir = train(
        tmp_path, f"loss.name={loss}", "model.name=score_mlp", "sample.sampler=langevin"
    )
    rows = (tmp_path / "score_run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and all(np.isfinite(float(r.split(",")[1])) for r in rows[1:])
    out = tmp_path / "s.npy"
    assert (
        main(["sample", run_dir, "--n", "30", "--steps", "20", "--out", str(out), "--quiet"]) == 0
    )
    assert np.load(out).shape == (30, 2)


def test_pc_sampler_on_a_diffusion_run(tiny_run, tmp_path):
    out = tmp_path / "pc.npy"
    code = main(
        ["sample", str(tiny_run), "--sampler", "pc", "--n", "30", "--out", str(out), "--quiet"]
    )
    assert code == 0 and np.isfinite(np.load(out)).all()
    assert main(["plot", str(tiny_run), "--n", "200"]) == 0
    assert (tiny_run / "plots" / "score.png").is_file()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (  # loss.name=ncsn alone picks both (tests/test_new_user.py); set wrong, a line to paste
            ("loss.name=ncsn", "model.name=mlp", "sample.sampler=ddpm"),
            "use --set model.name=score_mlp --set sample.sampler=annealed_langevin",
        ),
        (
            ("loss.name=exact", "model.name=conditional_linear", "sample.sampler=langevin"),
            "use --set model.name=score_mlp",
        ),
        (
            ("loss.name=dsm", "model.name=score_mlp", "sample.sampler=ddpm"),
            "use --set sample.sampler=langevin",
        ),
        (("model.name=score_mlp",), "cannot train"),
        (("sample.sampler=langevin",), "runs a score network"),
        (("loss.sigma=0",), "loss.sigma"),
        (("loss.sigma_min=-0.1",), "loss.sigma_min"),
        (("loss.sigma_max=0.005",), "loss.sigma_max"),
        (("loss.n_sigmas=1",), "loss.n_sigmas"),
        (("loss.n_projections=0",), "loss.n_projections"),
        (("loss.projection=uniform",), "'rademacher'"),
        (("sample.step_size=0",), "sample.step_size"),
        (("sample.step_size=-1e-3",), "sample.step_size"),
        (("sample.step_decay=1.5",), "sample.step_decay"),
        (("sample.snr=0",), "sample.snr"),
        ((*NCSN, "sample.steps=10"), "omit --steps"),
    ],
)
def test_bad_score_settings_fail_before_training(tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    assert main(["train", *tiny_args(*extra), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("difflab: error: ") and needle in err and err.count("\n") == 1
    assert not out.exists()  # nothing was written: the error came before training


def test_wrong_sampler_for_a_run_is_a_one_line_error(tiny_run, tmp_path):
    result = run_cli("sample", str(tiny_run), "--sampler", "langevin", "--quiet")
    assert result.returncode == 2
    assert result.stderr.startswith("difflab: error: sample.sampler = 'langevin'")
    names = "'ddpm', 'ddim', 'euler', 'heun', 'dpmpp2m', 'dpmpp3m', 'dpmpp2m_sde', 'edm', 'pc'"
    assert names in result.stderr
    assert result.stderr.count("\n") == 1
    run_dir = train(tmp_path, *NCSN)
    assert main(["sample", run_dir, "--sampler", "ddpm", "--quiet"]) == 2
    assert main(["sample", run_dir, "--sampler", "langevin", "--quiet"]) == 2


def test_shipped_ncsn_config_is_valid():
    from pathlib import Path

    from difflab.app.config_files import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "ncsn.toml")
    assert (cfg.loss.name, cfg.model.name, cfg.sample.sampler) == (
        "ncsn",
        "score_mlp",
        "annealed_langevin",
    )
