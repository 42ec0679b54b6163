"""Non-finite samples are never written silently: `train` refuses what cannot train, `sample`
and `plot` stop with one line naming the likely cause (exit 2, nothing written), `evaluate`
keeps the likelihoods and exits 1 with a warning, `doctor` calls it a problem with the fix."""

from __future__ import annotations

import json

import numpy as np

from conftest import tiny_args
from difflab.app.cli import main
from difflab.app.run import Run


def test_train_refuses_a_variance_the_loss_never_trains(tmp_path, capsys):
    """model.variance = learned with the simple loss wrote NaN rows and values of 1e32."""
    for extra in (["--dry-run"], ["--out", str(tmp_path / "r")]):
        code = main(["train", *tiny_args("model.variance=learned"), *extra, "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "never trains that output" in err and "--set loss.name=hybrid" in err
    assert not (tmp_path / "r").exists()
    assert (
        main(["train", *tiny_args("model.variance=learned", "loss.name=hybrid"), "--dry-run"]) == 0
    )


def _langevin_run(tmp_path, step_size: float):
    out = tmp_path / "dsm"
    assert main(["train", *tiny_args("loss.name=dsm"), "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["name"] == "score_mlp" and cfg["sample"]["sampler"] == "langevin"
    cfg["sample"]["step_size"] = step_size  # sampling settings may be edited after training
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def test_a_diverging_langevin_chain_writes_nothing_and_names_the_step(tmp_path, capsys):
    """The issue's second case: a Langevin run with a large step wrote only NaN, exit 0."""
    run = _langevin_run(tmp_path, 1e4)
    out = tmp_path / "s.npy"
    assert (
        main(["sample", str(run), "--n", "50", "--steps", "300", "--out", str(out), "--quiet"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("difflab: error: 50 of 50 samples are NaN/inf")
        and "nothing was written" in err
    )
    assert "sample.step_size = 10000.0" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["plot", str(run), "--n", "50", "--quiet"]) == 2
    assert "NaN/inf" in capsys.readouterr().err and not (run / "plots" / "samples.png").exists()
    assert main(["doctor", str(run), "--n", "50", "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "[problem] samples" in printed and "smaller sample.step_size" in printed


def test_evaluate_keeps_the_likelihoods_and_exits_1(tiny_run, monkeypatch, capsys):
    real_sample = Run.sample

    def diverged(self, n, **kwargs):
        samples, chain = real_sample(self, n, **kwargs)
        samples[::2] = np.nan
        return samples, chain

    monkeypatch.setattr(Run, "sample", diverged)
    assert main(["evaluate", str(tiny_run), "--n", "50", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "difflab: warning: " in err and "samples are NaN/inf" in err
    result = json.loads((tiny_run / "evaluate.json").read_text())
    assert np.isfinite(result["nll_ode_nats"]) and result["sample_metrics"] is None
    assert "doctor" in result["sample_metrics_note"]
