"""How long ``difflab report`` takes and how big its file is (targets: a default run in at most
5 s on 2 cores and at most 5 MB; a 5-run comparison in at most 15 s).

A default run (the built-in config; ``--steps`` shortens its training, which changes nothing
the report reads but the number of logged rows) gets every artifact the report shows:
``plot``, ``evaluate`` (``--eval-n`` held-out points), ``bench-samplers`` (the default plan,
``--bench-n`` samples per row) and ``doctor``. Then, each repeated, timed as the user waits for
them (a fresh ``python -m difflab report`` process, imports included):

- the report of that run;
- a comparison of 5 runs: copies of it whose config.json differ in train.lr, so the config
  diff has something to show (every artifact is the same size as the original's).

    flock /tmp/difflab-cpu.lock .venv/bin/python benchmarks/bench_report.py --work runs/bench
    .venv/bin/python benchmarks/bench_report.py --run runs/bench/default   # reuse the run

Results: benchmarks/results/report.json (medians, every repeat, the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def difflab(*args: str) -> float:
    """Run ``python -m difflab ARGS`` in a fresh process; its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "difflab", *args], check=True, env=env, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def build_run(work: Path, *, steps: int | None, eval_n: int, bench_n: int) -> Path:
    run = work / "default"
    train = ["train", "--out", str(run), "--quiet"]
    if steps is not None:
        train += ["--set", f"train.steps={steps}"]
    stages = {
        "train": train,
        "plot": ["plot", str(run)],
        "evaluate": ["evaluate", str(run), "--n", str(eval_n)],
        "bench-samplers": ["bench-samplers", str(run), "--n", str(bench_n)],
        "doctor": ["doctor", str(run)],
    }
    for name, args in stages.items():
        print(f"{name}: {difflab(*args):.1f} s", flush=True)
    return run


def copies(run: Path, work: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        target = work / f"copy{i + 1}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(run, target)
        config = json.loads((target / "config.json").read_text())
        config["train"]["lr"] = config["train"]["lr"] * (1 + 0.1 * i)
        (target / "config.json").write_text(json.dumps(config, indent=2))
        out.append(target)
    return out


def timed(args: list[str], repeats: int) -> list[float]:
    return [round(difflab(*args), 3) for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench-report", help="where the runs go")
    parser.add_argument("--run", help="an existing run with its artifacts (skip building)")
    parser.add_argument("--steps", type=int, help="train.steps of the default run")
    parser.add_argument("--eval-n", type=int, default=2000)
    parser.add_argument("--bench-n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "report.json"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    run = (
        Path(args.run)
        if args.run
        else build_run(work, steps=args.steps, eval_n=args.eval_n, bench_n=args.bench_n)
    )
    load_before = os.getloadavg()
    single = work / "single.html"
    one = timed(["report", str(run), "--out", str(single)], args.repeats)
    five = copies(run, work, 5)
    compare = work / "compare5.html"
    many = timed(["report", *map(str, five), "--out", str(compare)], args.repeats)
    result = {
        "load_average_before": load_before,
        "run": str(run),
        "single_s": {"median": statistics.median(one), "repeats": one, "target": 5.0},
        "single_mb": round(single.stat().st_size / 1e6, 3),
        "size_target_mb": 5.0,
        "compare5_s": {"median": statistics.median(many), "repeats": many, "target": 15.0},
        "compare5_mb": round(compare.stat().st_size / 1e6, 3),
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
