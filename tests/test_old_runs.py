"""Run directories written by an older difflab (tests/fixtures, commit b9ffbd5) still load,
sample and evaluate, and give what that commit gave.

The expected arrays were computed by b9ffbd5 itself (tests/fixtures/README.md). Tolerance:
the samplers' coefficients may be formed in another floating-point order (float64 vs float32
tables), which moves float32 samples by ~1e-6 per step; 1e-4 absolute allows that over 50 steps
and would still catch any change of the algorithm (which moves samples by O(0.1)).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from difflab.app.cli import main
from difflab.app.run import load_run

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = FIXTURES / "expected_b9ffbd5"


def _copy(name: str, tmp_path: Path) -> Path:
    """A writable copy: tests never write into the repository."""
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


@pytest.mark.parametrize(
    ("sampler", "steps"),
    [("ddpm", None), ("ddpm", 10), ("ddim", 10), ("euler", 10), ("heun", 5), ("dpmpp2m", 10),
     ("pc", None)],
)  # fmt: skip
def test_old_vector_run_samples_as_before(tmp_path, sampler, steps):
    run = load_run(_copy("run_b9ffbd5", tmp_path))
    run.override_sampling(sampler=sampler, steps=steps)
    x, _ = run.sample(64, seed=0)
    expected = np.load(EXPECTED / f"{sampler}_{steps or 'all'}.npy")
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-4)


def test_old_score_run_samples_as_before(tmp_path):
    run = load_run(_copy("ncsn_b9ffbd5", tmp_path))
    x, _ = run.sample(64, seed=0)
    expected = np.load(EXPECTED / "ncsn_annealed_langevin.npy")
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("sampler", "steps"), [("ddpm", None), ("ddim", 5)])
def test_old_image_run_samples_as_before(tmp_path, sampler, steps):
    run = load_run(_copy("digits_b9ffbd5", tmp_path))
    run.override_sampling(sampler=sampler, steps=steps)
    x, _ = run.sample(16, seed=0)
    expected = np.load(EXPECTED / f"digits_{sampler}_{steps or 'all'}.npy")
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-4)


def test_old_vector_run_evaluates_as_before(tmp_path, capsys):
    run_dir = _copy("run_b9ffbd5", tmp_path)
    assert main(["evaluate", str(run_dir), "--n", "200"]) == 0
    result = json.loads((run_dir / "evaluate.json").read_text())
    expected = json.loads((EXPECTED / "evaluate_n200.json").read_text())
    for key in ("nll_bound_nats", "nll_ode_nats", "true_entropy_nats"):
        assert result[key] == pytest.approx(expected[key], abs=1e-4), key


def test_old_image_run_evaluates_as_before(tmp_path, capsys):
    from difflab.app.evaluate_images import evaluate_image_run

    run_dir = _copy("digits_b9ffbd5", tmp_path)

    bpd = evaluate_image_run(load_run(run_dir), n_samples=0)["bits_per_dim"]
    expected = json.loads((EXPECTED / "digits_evaluate.json").read_text())
    assert bpd["bits_per_dim_bound"] == pytest.approx(expected["bits_per_dim_bound"], abs=1e-4)


def test_old_runs_plot_and_resume(tmp_path, capsys):
    run_dir = _copy("run_b9ffbd5", tmp_path)
    assert main(["plot", str(run_dir), "--n", "200"]) == 0
    assert (run_dir / "plots" / "samples.png").is_file()
    assert main(["train", "--resume", str(run_dir), "--set", "train.steps=320", "--quiet"]) == 0
    assert load_run(run_dir).step == 320
