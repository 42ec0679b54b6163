"""Continuous formulations end to end through the CLI on tiny budgets: train (sigma_data
measured into config.json), every sampler on every grid, evaluate (the ODE NLL), bench-samplers,
plot, tune-schedule and sampling with the tuned schedule; and the one-line errors for bad input
(exit code 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY
from difflab.app.cli import main
from difflab.app.tune import format_result

#: The tiny budget without schedule.T, which continuous formulations do not read.
TINY_CONTINUOUS = [item for item in TINY if not item.startswith("schedule.")]

LOSSES = ("edm", "flow_matching", "vp_continuous")


def _args(*extra: str) -> list[str]:
    out: list[str] = []
    for item in (*TINY_CONTINUOUS, *extra):
        out += ["--set", item]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("continuous")
    made = {}
    for loss in LOSSES:
        out = base / loss
        assert main(["train", *_args(f"loss.name={loss}"), "--out", str(out), "--quiet"]) == 0
        made[loss] = out
    return made


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def test_training_records_the_measured_data_scale(runs):
    for loss, run in runs.items():
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["loss"]["name"] == loss
        assert 0.5 < cfg["loss"]["sigma_data"] < 0.9  # the swiss roll's std is about 0.69


@pytest.mark.parametrize(
    "flags",
    [
        ["--sampler", "dpmpp2m", "--steps", "6"],
        ["--sampler", "dpmpp3m", "--steps", "6", "--noise-grid", "logsnr"],
        ["--sampler", "heun", "--steps", "4", "--noise-grid", "time", "--sigma-max", "5"],
        ["--sampler", "edm", "--steps", "4", "--s-churn", "2", "--s-tmin", "0.01"],
        ["--sampler", "ddim", "--steps", "5", "--eta", "0.5", "--final-step", "none"],
        ["--sampler", "ddpm", "--steps", "8", "--rho", "3"],
        ["--sampler", "euler", "--steps", "3", "--sigma-min", "0.01"],
        ["--sampler", "pc", "--steps", "4"],
        ["--sampler", "dpmpp2m_sde", "--steps", "5", "--noise-grid", "logsnr"],
    ],
)
def test_every_sampler_samples_every_formulation(runs, tmp_path, flags, capsys):
    for loss, run in runs.items():
        out = tmp_path / f"{loss}.npy"
        assert main(["sample", str(run), "--n", "64", "--out", str(out), "--quiet", *flags]) == 0
        x = np.load(out)
        assert x.shape == (64, 2) and np.isfinite(x).all(), (loss, flags)


def test_evaluate_reports_the_ode_nll_and_no_bound(runs, tmp_path, capsys):
    run = _copy(runs["flow_matching"], tmp_path)
    assert main(["evaluate", str(run), "--n", "64"]) == 0
    result = json.loads((run / "evaluate.json").read_text())
    assert np.isfinite(result["nll_ode_nats"]) and "nll_bound_nats" not in result
    assert "kl_ode_nats" in result and "kl_bound_nats" not in result
    assert "no bound: a continuous-time formulation" in capsys.readouterr().out


def test_bench_and_plot_on_a_continuous_run(runs, tmp_path, capsys):
    run = _copy(runs["edm"], tmp_path)
    args = ["bench-samplers", str(run), "--samplers", "dpmpp2m,edm", "--steps", "3,30"]
    assert main([*args, "--n", "200", "--floor-draws", "1"]) == 0
    rows = json.loads((run / "bench_samplers.json").read_text())["rows"]
    assert [r["nfe"] for r in rows] == [3, 30, 5, 59]  # edm: 2K - 1; K = 30 > schedule.T is fine
    assert main(["plot", str(run), "--n", "200"]) == 0
    assert (run / "plots" / "forward.png").is_file() and (run / "plots" / "reverse.png").is_file()


def test_tune_schedule_and_sample_with_it(runs, tmp_path, capsys):
    run = _copy(runs["vp_continuous"], tmp_path)
    args = ["tune-schedule", str(run), "--steps", "4", "--sampler", "ddim", "--n", "300"]
    assert main([*args, "--budget", "12", "--check-seeds", "1"]) == 0
    content = json.loads((run / "tuned_schedule.json").read_text())
    crit = content["criterion"]
    # never worse than its start on the criterion it minimised (the search keeps improvements)
    assert crit["value"] <= crit["start"]["value"] == min(crit["fixed"].values())
    assert content["steps"] == 4 and len(content["times"]) == 5 and "eta" in content["noise"]
    assert content["cost"]["criterion_evaluations"] <= 12 + len(crit["fixed"])
    out = tmp_path / "tuned.npy"
    assert main(["sample", str(run), "--schedule", "tuned", "--n", "32", "--out", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert np.load(out).shape == (32, 2)
    printed = capsys.readouterr().out
    assert "criterion evaluations" in printed and "tuned levels" in printed
    # the verdict line follows the check; a loss names the fix (a larger --n)
    beats = content["check"]["tuned_beats_best_fixed"]
    assert ("tuned beats the best fixed grid" in printed) == beats
    assert ("tune again with a larger --n" in printed) == (not beats)
    content["check"]["tuned_beats_best_fixed"] = not beats
    lines = format_result(content, run / "tuned_schedule.json")
    assert any("tune again with a larger --n" in line for line in lines) == beats


def test_tune_schedule_tunes_the_sde_noise(runs, tmp_path, capsys):
    """For dpmpp2m_sde the search's noise knob is sample.sde_eta (in [0, 1]); the tuned value is
    what --schedule tuned samples with, and --sde-eta cannot override it."""
    run = _copy(runs["flow_matching"], tmp_path)
    args = ["tune-schedule", str(run), "--steps", "3", "--sampler", "dpmpp2m_sde", "--n", "300"]
    assert main([*args, "--budget", "6", "--check-seeds", "1"]) == 0
    content = json.loads((run / "tuned_schedule.json").read_text())
    assert set(content["noise"]) == {"sde_eta"} and 0 <= content["noise"]["sde_eta"] <= 1
    assert "sde_eta = " in capsys.readouterr().out
    sample = ["sample", str(run), "--schedule", "tuned", "--n", "8", "--quiet"]
    assert main([*sample, "--out", str(tmp_path / "x.npy")]) == 0
    assert "--sde-eta is fixed by the tuned schedule" in _error([*sample, "--sde-eta", "0"], capsys)


def _error(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("difflab: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--sigma-min", "5", "--sigma-max", "1"], "sample.sigma_min = 5.0 is invalid"),
        (["--sigma-min", "0.5"], ""),  # valid, for contrast: no error
        (["--sigma-max", "1e6", "--sampler", "ddim"], ""),  # EDM's process has every level
        (["--rho", "0"], "sample.rho = 0.0 is invalid: it must be > 0"),
        (["--rho", "-7"], "sample.rho = -7.0 is invalid"),
        (["--steps", "0"], "sample.steps = 0 is invalid"),
        (["--steps", "200000"], "sample.steps = 200000 is invalid: it must be at most 100000"),
        (["--sampler", "edm", "--s-churn", "-1"], "sample.s_churn = -1.0 is invalid"),
        (["--sampler", "heun", "--s-churn", "3"], "--s-churn applies to the edm sampler only"),
        (["--noise-grid", "karas"], "unknown sample.grid 'karas'; choose one of 'karras'"),
        (["--final-step", "last"], "unknown sample.final_step 'last'"),
        (["--spacing", "quadratic"], "sample.spacing = 'quadratic' picks K of a discrete"),
    ],
)
def test_bad_sampling_input(runs, tmp_path, flags, needle, capsys):
    args = ["sample", str(runs["edm"]), "--n", "8", "--out", str(tmp_path / "x.npy"), "--quiet"]
    if flags[:2] == ["--sigma-max", "1e6"]:  # the cosine VP's noise level is bounded (118.8)
        vp = ["sample", str(runs["vp_continuous"]), "--n", "8", "--quiet", *flags]
        assert "exceeds the largest noise level of this process (118.8" in _error(vp, capsys)
    if not needle:
        assert main([*args, *flags]) == 0
        return
    assert needle in _error([*args, *flags], capsys)
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["loss.name=edm", "loss.sigma_data=0"], "loss.sigma_data = 0.0 is invalid"),
        (["loss.name=edm", "loss.sigma_data=-0.5"], "loss.sigma_data = -0.5 is invalid"),
        (["loss.name=edm", "loss.p_std=0"], "loss.p_std = 0.0 is invalid"),
        (["loss.sigma_data=0.5"], "loss.sigma_data = 0.5 is not read for loss.name = 'simple'"),
        (["loss.name=edm", "schedule.T=50"], "schedule.T = 50 is not read for loss.name = 'edm'"),
        (["loss.name=vp_continuous", "schedule.name=sigmoid"], "'linear' or 'cosine'"),
        (["schedule.beta_min=0.2"], "schedule.beta_min = 0.2 is not read for loss.name"),
        (["loss.name=edm", "model.prediction=eps"], "model.prediction = 'eps' is not read"),
        (["loss.name=flow_matching", "model.variance=learned_range"], "needs model.variance in"),
        (["loss.name=edm", "model.name=conditional_linear"], "takes integer steps only"),
        (["loss.name=flow_matching", "loss.time_distribution=beta"], "unknown loss.time_dist"),
        (["loss.name=edm", "sample.sampler=edm", "sample.s_tmin=2", "sample.s_tmax=1"],
         "sample.s_tmax = 1.0 is invalid"),
    ],
)  # fmt: skip
def test_bad_training_input(tmp_path, sets, needle, capsys):
    out = tmp_path / "run"
    args = ["train"]
    for item in (*TINY_CONTINUOUS, *sets):
        args += ["--set", item]
    assert needle in _error([*args, "--out", str(out), "--quiet"], capsys)
    assert not out.exists()


def test_a_schedule_file_from_another_run_or_formulation(runs, tmp_path, capsys):
    edm, flow = _copy(runs["edm"], tmp_path), _copy(runs["flow_matching"], tmp_path)
    args = ["tune-schedule", str(edm), "--steps", "3", "--n", "200", "--budget", "2"]
    assert main([*args, "--check-seeds", "1"]) == 0
    shutil.copy(edm / "tuned_schedule.json", flow / "tuned_schedule.json")
    sample = ["--n", "8", "--out", str(tmp_path / "x.npy"), "--quiet"]
    err = _error(["sample", str(flow), "--schedule", "tuned", *sample], capsys)
    assert "was tuned for another formulation (loss.name = 'edm'" in err
    # the same config and data, other weights at the same step: another run
    other = tmp_path / "other"
    cfg = json.loads((edm / "config.json").read_text())
    sets = [f"{s}.{k}={json.dumps(v)}" for s in ("data", "model", "loss", "train")
            for k, v in cfg[s].items() if v is not None]  # fmt: skip
    train = ["train", *(a for s in sets for a in ("--set", s)), "--set", "model.width=33"]
    assert main([*train, "--out", str(other), "--quiet"]) == 0
    err = _error(["sample", str(other), "--schedule", str(edm / "tuned_schedule.json"), *sample],
                 capsys)  # fmt: skip
    assert "was tuned for another run" in err
    (flow / "tuned_schedule.json").write_text("{not json")
    assert "is not a tuned schedule" in _error(
        ["sample", str(flow), "--schedule", "tuned", *sample], capsys
    )
    err = _error(["sample", str(edm), "--schedule", "tuned", "--sampler", "ddim", *sample], capsys)
    assert "the tuned schedule is for --sampler" in err
    err = _error(["sample", str(edm), "--schedule", "tuned", "--sigma-max", "3", *sample], capsys)
    assert "--sigma-max is fixed by the tuned schedule" in err
    missing = _copy(runs["vp_continuous"], tmp_path)
    err = _error(["sample", str(missing), "--schedule", "tuned", *sample], capsys)
    assert "does not exist; run `difflab tune-schedule RUN --steps K` first" in err


def test_tune_schedule_needs_held_out_data(tmp_path, capsys):
    points = tmp_path / "points.npy"
    np.save(points, np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    run = tmp_path / "run"
    sets = _args("loss.name=flow_matching", "data.name=file", f"data.path={points}")
    assert main(["train", *sets, "--out", str(run), "--quiet"]) == 0
    err = _error(["tune-schedule", str(run), "--steps", "3"], capsys)
    assert "tune-schedule needs held-out data" in err and "--data FILE" in err
    assert not (run / "tuned_schedule.json").exists()
    err = _error(["tune-schedule", str(run), "--steps", "3", "--criterion", "neg_log_p"], capsys)
    assert "--criterion 'neg_log_p' does not apply to data 'file'" in err


def test_tune_schedule_default_n_grows_with_k_on_vector_data():
    """At K >= 10 the energy criterion of 2000 samples is as noisy as the grids' differences
    (docs/continuous.md), so vector runs default to 10,000 there; images keep 2000."""
    from types import SimpleNamespace

    from difflab.app.config_files import load_config
    from difflab.app.tune import default_n

    toy = SimpleNamespace(config=load_config(None, []))
    digits_toml = Path(__file__).resolve().parents[1] / "configs" / "digits.toml"
    digits = SimpleNamespace(config=load_config(digits_toml, []))
    assert [default_n(toy, k) for k in (3, 9, 10, 20)] == [2000, 2000, 10_000, 10_000]
    assert default_n(digits, 20) == 2000


def test_class_conditional_continuous_run(tmp_path, capsys):
    """A class-conditional EDM run trains, samples a class with guidance (the labels kept in
    the .npz) and evaluates (the ODE NLL given the labels, and the samples' classes)."""
    run = tmp_path / "c8"
    sets = _args("loss.name=edm", "data.name=8gaussians", "model.class_conditional=true",
                 "evaluate.n_samples=160")  # fmt: skip
    assert main(["train", *sets, "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "three.npz"
    flags = ["--class", "3", "--guidance", "2", "--sampler", "dpmpp2m", "--steps", "8"]
    assert main(["sample", str(run), "--n", "24", *flags, "--out", str(out), "--quiet"]) == 0
    with np.load(out) as z:
        assert z["x"].shape == (24, 2) and set(z["labels"].tolist()) == {3}
        assert np.isfinite(z["x"]).all()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--n", "64"]) == 0
    printed = capsys.readouterr().out
    assert "-log p(x | c)" in printed and "class accuracy of the samples" in printed
