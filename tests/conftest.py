"""Shared fixtures: a tiny config for end-to-end runs, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import difflab

SRC = str(Path(difflab.__file__).resolve().parents[1])

#: A training budget that exercises every code path in about a second.
TINY = [
    "train.steps=30",
    "train.lr=0.002",  # the lr the tests were calibrated with (the default until issue 16)
    "train.batch_size=64",
    "train.log_every=10",
    "schedule.T=50",
    "model.width=32",
    "model.depth=2",
    "data.n_train=500",
    "sample.n=200",
]


def tiny_args(*extra: str) -> list[str]:
    """``--set`` arguments for the tiny budget plus ``extra`` overrides."""
    args: list[str] = []
    for item in (*TINY, *extra):
        args += ["--set", item]
    return args


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m difflab ARGS`` in a subprocess with this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("DIFFLAB_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "difflab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """A trained tiny run directory (in-process, fast)."""
    from difflab.app.cli import main

    out = tmp_path / "run"
    assert main(["train", *tiny_args(), "--out", str(out), "--quiet"]) == 0
    return out


def pytest_configure(config) -> None:
    """One intra-op thread per test process: pytest-xdist already runs one process per core,
    and oversubscribed OpenMP threads slow everything down many times over. OMP_NUM_THREADS
    tells difflab's automatic choice (app/resources.choose_threads) and the subprocesses."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def complete_run(tmp_path_factory) -> Path:
    """A tiny run with every artifact (plot, evaluate, bench-samplers, doctor), built once per
    test process; tests that change it work on a copy."""
    from report_page import complete_run as build

    return build(tmp_path_factory.mktemp("complete") / "roll")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    """A tiny digits run with its plots and samples.npy, built once per test process."""
    from report_page import image_run as build

    return build(tmp_path_factory.mktemp("images") / "digits")
