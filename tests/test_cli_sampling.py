"""The fast samplers through the command line: `difflab sample --sampler/--steps/--eta/
--spacing` and `difflab bench-samplers`, on the tiny run (T = 50)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from difflab.app.cli import main


def test_every_sampler_from_the_cli(tiny_run, tmp_path, capsys):
    for args in (
        ["--sampler", "ddpm", "--steps", "10", "--spacing", "trailing"],
        ["--sampler", "ddim", "--steps", "10", "--eta", "0.5"],
        ["--sampler", "ddim", "--steps", "1"],
        ["--sampler", "euler", "--steps", "50"],
        ["--sampler", "heun", "--steps", "5", "--spacing", "quadratic"],
        ["--sampler", "dpmpp2m", "--steps", "10", "--spacing", "leading"],
        ["--sampler", "dpmpp2m_sde", "--steps", "10", "--sde-eta", "0.5"],
    ):
        out = tmp_path / f"{args[1]}-{args[3]}.npy"
        assert (
            main(["sample", str(tiny_run), "--n", "32", "--out", str(out), "--quiet", *args]) == 0
        )
        x = np.load(out)
        assert x.shape == (32, 2) and np.isfinite(x).all(), args
    # the deterministic samplers ignore the seed's noise after x_T: same seed, same samples
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for out in (a, b):
        main(["sample", str(tiny_run), "--n", "16", "--sampler", "dpmpp2m", "--steps", "5",
              "--out", str(out), "--quiet"])  # fmt: skip
    np.testing.assert_array_equal(np.load(a), np.load(b))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sampler", "ddim", "--steps", "0"], "sample.steps = 0"),
        (["--sampler", "ddim", "--steps", "51"], "at most schedule.T = 50"),
        (["--sampler", "ddim", "--eta", "-0.1"], "sample.eta"),
        (["--sampler", "plms"], "unknown sample.sampler 'plms'"),
        (["--sampler", "ddim", "--spacing", "even"], "unknown sample.spacing 'even'"),
        (["--sampler", "heun", "--eta", "0.5"], "--eta applies to the ddim sampler only"),
        (["--sampler", "dpmpp2m_sde", "--sde-eta", "1.3"], "sample.sde_eta = 1.3 is invalid"),
        (["--sampler", "dpmpp2m_sde", "--eta", "0.5"], "--eta applies to the ddim sampler only"),
        (["--sampler", "ddim", "--sde-eta", "0.5"], "--sde-eta applies to the dpmpp2m_sde"),
    ],
)
def test_bad_sampling_input_is_one_line_exit_2(tiny_run, capsys, args, needle):
    assert main(["sample", str(tiny_run), "--n", "8", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("difflab: error:") and needle in err and err.count("\n") == 1, err


def test_bench_samplers(tiny_run, tmp_path, capsys):
    proc = run_cli(
        "bench-samplers", str(tiny_run), "--samplers", "ddpm,ddim,heun,dpmpp2m",
        "--steps", "5,50", "--n", "200", "--floor-draws", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "sampler", "K", "NFE", "wall_s", "energy/fl", "MMD/fl", "E[-log", "p]", "H(p)"
    ]  # fmt: skip
    result = json.loads((tiny_run / "bench_samplers.json").read_text())
    rows = {(r["sampler"], r["steps"]): r for r in result["rows"]}
    assert set(rows) == {(s, k) for s in ("ddpm", "ddim", "heun", "dpmpp2m") for k in (5, 50)}
    assert [rows["heun", k]["nfe"] for k in (5, 50)] == [8, 98]
    assert rows["ddpm", 50]["nfe"] == 50 and rows["dpmpp2m", 5]["nfe"] == 5
    for r in rows.values():
        assert r["energy_ratio"] > 0 and r["mmd_ratio"] > 0 and r["wall_s"] > 0
        # the swiss roll's entropy is about 0.59 nats; a 30-step model's samples are blurrier
        assert abs(r["true_entropy"] - 0.59) < 0.1 and r["neg_log_p"] > r["true_entropy"]
    assert (tiny_run / "plots" / "bench_samplers.png").stat().st_size > 1000
    # bad input: one line, exit 2
    for args, needle in [
        (["--steps", "0"], "[1, T = 50]"),
        (["--steps", "5,100"], "[1, T = 50]"),
        (["--samplers", "ddim,plms"], "unknown sampler 'plms'"),
        (["--spacing", "even"], "unknown sample.spacing"),
        (["--eta", "1.5"], "sample.eta"),
        (["--samplers", "dpmpp2m_sde", "--sde-eta", "-1"], "sample.sde_eta = -1.0 is invalid"),
        (["--samplers", "heun", "--sde-eta", "0.5"], "--sde-eta applies to the dpmpp2m_sde"),
    ]:
        capsys.readouterr()
        assert main(["bench-samplers", str(tiny_run), "--n", "50", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("difflab: error:") and needle in err and err.count("\n") == 1


def test_tune_schedule_tries_every_step_spacing(tiny_run):
    """On a discrete run the search's fixed grids hold every step spacing (the config's first)
    beside the noise-level grids; a spacing that repeats another's levels is left out (at T =
    50, K = 5 leading and trailing are linspace)."""
    from difflab.app.run import load_run
    from difflab.app.tune import _tuning_config, fixed_grids

    run = load_run(tiny_run)
    grids = fixed_grids(run, _tuning_config(run, "dpmpp2m", 5))
    assert list(grids) == ["spacing:linspace", "spacing:quadratic", "karras", "logsnr", "time"]
    assert all(len(levels) == 5 for levels in grids.values())
    # quadratic is dense near the data: its lowest level is below linspace's
    assert grids["spacing:quadratic"][-1] < grids["spacing:linspace"][-1]
    run.config = run.config.replace("sample", spacing="trailing")
    names = list(fixed_grids(run, _tuning_config(run, "dpmpp2m", 5)))
    assert names[:2] == ["spacing:trailing", "spacing:quadratic"]
