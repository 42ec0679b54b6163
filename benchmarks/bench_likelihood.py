"""Likelihood benchmarks for issue 3 (run under the shared lock, 2 threads):

    flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_likelihood.py RUN_DIR

RUN_DIR: a swiss-roll run trained with `difflab train` (the default config). Reports, on 10,000
held-out points, the bound (T = 1000) and the ODE NLL against the true entropy H(p), and the
wall time of each (median of --repeats runs), with targets:

- ODE NLL within 0.15 nats of H(p); bound <= H(p) + 0.5 nats;
- bound in <= 60 s and ODE NLL in <= 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from difflab.app.evaluate import bound_per_example, ode_per_example
from difflab.app.held_out import held_out_data
from difflab.app.run import load_run
from difflab.data.toy_density import toy_log_prob


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variance", default=None, help="evaluate with this fixed variance")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run_dir)
    if args.variance:
        run.override_variance(args.variance)
    x_user = held_out_data(run, data_path=None, n=args.n)
    x = torch.from_numpy(run.data.encode(x_user)).float()
    H = -toy_log_prob(run.data.name, x_user)
    out = {"n": args.n, "threads": args.threads, "variance": run.config.model.variance}
    for name, fn in (("bound", bound_per_example), ("ode", ode_per_example)):
        times, cpu, values = [], [], None
        for r in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            values = fn(run, x, seed=r)[0]
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        excess = values - H
        out[name] = {
            "nll_nats": float(values.mean()),
            "minus_H_nats": float(excess.mean()),
            "minus_H_se": float(excess.std(ddof=1) / np.sqrt(len(excess))),
            "median_s": statistics.median(times),
            # CPU seconds of this process / threads: the wall time on 2 otherwise idle cores
            "median_cpu_s_per_thread": statistics.median(cpu) / args.threads,
            "median_nats": float(np.median(values)),
            "worst_point_nats": float(values.max()),
        }
    out["H_nats"] = float(H.mean())
    out["targets"] = {
        "ode_minus_H_abs_max": 0.15,
        "bound_minus_H_max": 0.5,
        "bound_s_max": 60,
        "ode_s_max": 120,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
