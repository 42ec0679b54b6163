"""Sampling and evaluating on several processes: 2 torchrun processes (gloo) give what one
process gives with the same seed, and only rank 0 writes (app/ranks.py, RowSplit)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SRC
from difflab.app.cli import main
from difflab.models import MLP
from difflab.training.distributed import DistContext, GatheredForward, RowSplit, gather_rows

FIXTURES = Path(__file__).parent / "fixtures"

#: Rows computed by a network on a shard of the batch equal those computed on the whole batch
#: up to the float32 summation order of a matmul of another batch size: measured 0 (bitwise) for
#: these runs on CPU; 1e-5 would still catch any mix-up of rows or noise (O(1) differences).
TOLERANCE = 1e-5

#: The ODE NLL is computed by an adaptive solver (rtol = atol = 1e-5) whose accepted steps
#: change when the drift changes in its last bits (shards of 50 and 51 rows round differently
#: than 101): the mean NLL then moves within the solver's accuracy, measured 4.9e-5 nats (one
#: point's NLL by up to 1.8e-3). 5e-4 nats is ten times that; a wrong row would move it by O(1).
ODE_TOLERANCE = 5e-4


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("DIFFLAB_DEBUG", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, "-m", "difflab", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_one_process_split_is_the_network_itself():
    """Without torchrun a RowSplit of world size 1 runs the network on every row."""
    torch.manual_seed(0)
    net = MLP(2, 2, width=8, depth=1)
    x, t = torch.randn(5, 2), torch.tensor([3]).expand(5)
    out = GatheredForward(net, RowSplit(DistContext()))(x, t)
    assert torch.equal(out, net(x, t))
    part = torch.randn(5, 3)
    assert gather_rows(part, 5, DistContext()) is part


def test_two_processes_sample_what_one_process_samples(tmp_path, capsys):
    """`torchrun --nproc_per_node=2 -m difflab sample` on the digits U-Net (ancestral, so the
    noise of every step must be the same draw) writes the samples and the grid of one process."""
    run = Path(shutil.copytree(FIXTURES / "digits_b9ffbd5", tmp_path / "digits"))
    one, two = tmp_path / "one.npy", tmp_path / "two.npy"
    assert main(["sample", str(run), "-n", "10", "--seed", "3", "--out", str(one), "--quiet"]) == 0
    proc = _torchrun(
        "sample", str(run), "-n", "10", "--seed", "3", "--out", str(two), "--quiet",
        "--grid", str(tmp_path / "grid.png"),
    )  # fmt: skip
    assert proc.stdout.count("wrote 10 samples") == 1  # rank 0 only
    a, b = np.load(one), np.load(two)
    assert a.shape == b.shape == (10, 8, 8)
    np.testing.assert_array_equal(a, b)  # integer levels: equal floats round the same
    assert (tmp_path / "grid.png").is_file()


def test_two_processes_evaluate_what_one_process_evaluates(tmp_path, capsys):
    """`torchrun ... -m difflab evaluate` (vector run): the bound (the network on each rank's
    rows at every t), the ODE NLL (each rank's rows of the drift and divergence, one solver
    for the whole batch) and the sample metrics equal those of one process; 101 points do not
    split evenly."""
    run = Path(shutil.copytree(FIXTURES / "run_b9ffbd5", tmp_path / "run"))
    assert main(["evaluate", str(run), "-n", "101"]) == 0
    one = json.loads((run / "evaluate.json").read_text())
    (run / "evaluate.json").unlink()
    proc = _torchrun("evaluate", str(run), "-n", "101")
    assert proc.stdout.count("wrote") == 1
    two = json.loads((run / "evaluate.json").read_text())
    for key in ("nll_bound_nats", "nll_bound_se", "kl_bound_nats", "true_entropy_nats"):
        assert two[key] == pytest.approx(one[key], abs=TOLERANCE), key
    for key in ("nll_ode_nats", "kl_ode_nats"):
        assert two[key] == pytest.approx(one[key], abs=ODE_TOLERANCE), key
    assert two["bound_terms_nats"] == pytest.approx(one["bound_terms_nats"], abs=TOLERANCE)
    energy = (one["sample_metrics"]["energy_distance"], two["sample_metrics"]["energy_distance"])
    assert energy[1]["value"] == pytest.approx(energy[0]["value"], abs=TOLERANCE)
