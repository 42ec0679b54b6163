"""1 process vs 2 processes (torchrun, gloo, CPU) with the same global batch.

Reports the max absolute weight difference after 50 steps and the training throughput of each
(median of --repeats runs; steps/s from the run's metrics log, which excludes start-up). Each
process uses one intra-op thread. Run from the repository root, under the shared lock:

    flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_distributed.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import safetensors.torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _train(out: Path, nproc: int, settings: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += ["-m", "difflab", "train", "--out", str(out), "--quiet"]
    cmd += [a for s in settings for a in ("--set", s)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)


def _weights(run: Path) -> dict:
    last = sorted((run / "checkpoints").iterdir())[-1]
    return safetensors.torch.load_file(str(last / "model.safetensors"))


def _steps_per_s(run: Path) -> float:
    lines = (run / "metrics.csv").read_text().splitlines()
    header, first, last = lines[0].split(","), lines[1].split(","), lines[-1].split(",")
    step, elapsed = header.index("step"), header.index("elapsed_s")
    steps = float(last[step]) - float(first[step])
    return steps / (float(last[elapsed]) - float(first[elapsed]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = [
        f"train.batch_size={args.batch}",
        f"model.width={args.width}",
        "data.name=moons",
        "data.n_train=5000",
        "schedule.T=1000",
    ]
    result: dict = {"batch": args.batch, "width": args.width}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for nproc in (1, 2):
            _train(root / f"w{nproc}", nproc, [*base, "train.steps=50", "train.log_every=10"])
        a, b = _weights(root / "w1"), _weights(root / "w2")
        result["max_weight_diff_50_steps"] = max(float((a[k] - b[k]).abs().max()) for k in a)
        for nproc in (1, 2):
            rates = []
            for r in range(args.repeats):
                run = root / f"t{nproc}-{r}"
                _train(run, nproc, [*base, f"train.steps={args.steps}", "train.log_every=25"])
                rates.append(_steps_per_s(run))
            result[f"steps_per_s_{nproc}proc"] = statistics.median(rates)
            result[f"samples_per_s_{nproc}proc"] = statistics.median(rates) * args.batch
            result[f"all_steps_per_s_{nproc}proc"] = rates
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
