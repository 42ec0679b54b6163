"""``difflab evaluate`` end to end on tiny runs, the new losses through the CLI, and the
one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli, tiny_args
from difflab.app.build import build_objective, build_schedule
from difflab.app.cli import main
from difflab.app.config_files import load_config
from difflab.denoiser import Denoiser
from difflab.losses.sohl_dickstein import SohlDicksteinObjective, entropy_terms
from difflab.losses.vlb import full_bound
from difflab.models import MLP
from difflab.training import checkpoint as ckpt

FAST_EVAL = [
    "evaluate.n_samples=50",
    "evaluate.ode_rtol=1e-3",
    "evaluate.ode_atol=1e-3",
    # T = 50 cosine ends with beta = 0.999, where an untrained eps-model's error is amplified
    # 1 / sqrt(alpha_T) = 32 times; a linear schedule keeps 30-step models' samples finite
    "schedule.name=linear",
    "schedule.beta_end=0.2",
]


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["train", *tiny_args(*FAST_EVAL, *extra), "--out", str(out), "--quiet"]) == 0
    return out


def test_evaluate_writes_every_number(tmp_path, capsys):
    run = _train(tmp_path, "hybrid", "loss.name=hybrid", "model.variance=learned_range")
    assert main(["evaluate", str(run), "--n", "200"]) == 0
    printed = capsys.readouterr().out
    assert "NLL bound" in printed and "true entropy H(p)" in printed
    result = json.loads((run / "evaluate.json").read_text())
    for key in ("nll_bound_nats", "nll_ode_nats", "bits_per_dim_bound", "bits_per_dim_ode"):
        assert np.isfinite(result[key])
    assert result["bits_per_dim_ode"] == pytest.approx(result["nll_ode_nats"] / (2 * np.log(2)))
    assert result["true_entropy_nats"] == pytest.approx(0.58, abs=0.15)  # swiss roll, 200 points
    # a bound is a bound, the exact NLL cannot be far below the true entropy (KL >= 0)
    assert result["kl_ode_nats"] > -4 * result["kl_ode_se"] - 0.05
    assert len(result["bound_terms_nats"]) == 50 and "energy_distance" in result["sample_metrics"]
    assert (run / "plots" / "bound_terms.png").stat().st_size > 0
    rows = (run / "bound_terms.csv").read_text().splitlines()
    assert rows[0] == "term,t,mean_nats,se_nats" and len(rows) == 52


def test_sohl_dickstein_run_and_its_bound(tmp_path):
    run = _train(
        tmp_path,
        "sd",
        "loss.name=sohl_dickstein",
        "model.prediction=mean",
        "model.variance=learned",
        "loss.timesteps=importance",
    )
    state = torch.load(next((run / "checkpoints").iterdir()) / "state.pt", weights_only=True)
    assert state["timesteps"]["losses"].shape == (49, 10)  # the T - 1 learned steps
    assert main(["evaluate", str(run), "--n", "100"]) == 0
    assert np.isfinite(json.loads((run / "evaluate.json").read_text())["nll_bound_nats"])


def test_sohl_dickstein_bound_equals_the_full_bound_in_expectation():
    """The 2015 form (T - 1) KL_t + entropies has the expectation of prior + sum of all terms."""
    torch.manual_seed(0)
    cfg = load_config(
        None,
        [
            "loss.name=sohl_dickstein",
            "model.prediction=mean",
            "model.variance=learned",
            "schedule.T=20",
            "loss.timesteps=uniform",
        ],
    )
    schedule = build_schedule(cfg.schedule)
    model = MLP(2, 4, width=16, depth=1).double()
    objective = build_objective(cfg, schedule)
    assert isinstance(objective, SohlDicksteinObjective)
    x0 = torch.randn(8, 2, dtype=torch.float64)
    reps = 4000
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bound = objective(model, x0.repeat(reps, 1), generator=gen).terms["bound_nats"]
        denoiser = Denoiser(model, schedule, prediction="mean", variance="learned")
        full = full_bound(denoiser, x0.repeat(reps, 1), generator=gen).total
    a, b = bound.reshape(reps, 8), full.reshape(reps, 8)
    se = ((a.var(0) + b.var(0)) / reps).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() < 5 * se + 1e-6).all()
    assert entropy_terms(schedule, x0).shape == (8,)


def test_vlb_loss_with_importance_sampling_trains(tmp_path):
    run = _train(
        tmp_path,
        "vlb",
        "loss.name=vlb",
        "model.variance=learned",
        "loss.timesteps=importance",
        "train.steps=40",
    )
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 5 and all(np.isfinite(float(r.split(",")[1])) for r in rows[1:])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--set", "loss.name=vlbb"], "unknown loss.name 'vlbb'"),
        (["--set", "model.variance=learnt"], "unknown model.variance 'learnt'"),
        (["--set", "loss.name=hybrid", "--set", "model.variance=small"], "model.variance"),
        (
            ["--set", "loss.name=sohl_dickstein", "--set", "model.prediction=eps"],
            "use --set model.prediction=mean",
        ),
        (["--set", "evaluate.ode_method=euler2"], "unknown evaluate.ode_method"),
    ],
)
def test_bad_config_exits_2(tmp_path, extra, needle, capsys):
    code = main(["train", *tiny_args(), *extra, "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_evaluate_bad_input_exits_2(tiny_run, tmp_path, capsys):
    np.save(tmp_path / "three.npy", np.zeros((10, 3), dtype=np.float32))
    bad = np.zeros((10, 2), dtype=np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    learned = tmp_path / "learned"  # as an older difflab trained it: simple loss, learned variance
    args = tiny_args("model.variance=learned", "loss.name=hybrid", "train.steps=2")
    assert main(["train", *args, "--out", str(learned), "--quiet"]) == 0
    meta = ckpt.checkpoint_dirs(learned)[-1] / "meta.json"
    for path in (learned / "config.json", meta):
        text = json.loads(path.read_text())
        (text.get("config") or text)["loss"]["name"] = "simple"
        path.write_text(json.dumps(text))
    cases = [
        ([str(tiny_run), "--data", str(tmp_path / "three.npy")], "3 values per example"),
        ([str(tiny_run), "--data", str(tmp_path / "nan.npy")], "NaN"),
        ([str(learned)], "never trains that output"),
        ([str(learned), "--variance", "large"], "omit --variance"),
        ([str(tiny_run), "--variance", "huge"], "unknown variance 'huge'"),
        ([str(tmp_path / "nope")], "does not exist"),
    ]
    for args, needle in cases:
        code = main(["evaluate", *args])
        err = capsys.readouterr().err.strip()
        assert code == 2, (args, err)
        assert err.startswith("difflab: error:") and needle in err and len(err.splitlines()) == 1
    # and through a real subprocess once
    result = run_cli("evaluate", str(tiny_run), "--data", str(tmp_path / "three.npy"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tiny_run / "evaluate.json").exists()


def test_evaluate_help():
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0


def test_evaluate_on_a_score_run_is_a_one_line_error(tmp_path, capsys):
    """A score network defines no likelihood: one line that says what can be done instead."""
    run = _train(
        tmp_path,
        "dsm",
        "loss.name=dsm",
        "model.name=score_mlp",
        "sample.sampler=langevin",
        "sample.steps=20",
    )
    assert main(["evaluate", str(run), "--n", "50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("difflab: error:") and err.count("\n") == 1
    assert "defines no likelihood" in err and "difflab plot" in err
    assert not (run / "evaluate.json").exists()


def test_standardized_runs_report_nlls_in_the_users_units(tmp_path):
    """Change of variables: data Y = 3 X standardise to the same model-space data as X, so two
    runs trained the same way learn the same model there, and every NLL of Y in the user's
    units is that of X plus D log 3 (D = 2); the entropy of the model-space data is not
    shifted. Tolerance: the two trainings see model-space data that differ by float32 rounding
    (~1e-7): measured 1e-8 (bound) and 2e-5 (ODE, whose adaptive steps follow the numbers);
    a missing or doubled sum(log std) would be off by D log 3 = 2.2."""
    from difflab.data.toy import sample_toy

    x = sample_toy("moons", 600, seed=5)
    held = sample_toy("moons", 200, seed=6)
    results = {}
    for scale in (1.0, 3.0):
        data, held_out = tmp_path / f"x{scale}.npy", tmp_path / f"h{scale}.npy"
        np.save(data, scale * x)
        np.save(held_out, scale * held)
        run = _train(
            tmp_path,
            f"s{scale}",
            "data.name=file",
            f"data.path={data}",
            "data.normalize=standardize",
            "evaluate.n_samples=0",
        )
        assert main(["evaluate", str(run), "--data", str(held_out)]) == 0
        results[scale] = json.loads((run / "evaluate.json").read_text())
    shift = 2 * np.log(3.0)
    for key in ("nll_bound_nats", "nll_ode_nats"):
        assert results[3.0][key] - results[1.0][key] == pytest.approx(shift, abs=2e-4), key
