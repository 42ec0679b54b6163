"""Cost of one training step of exact, sliced and denoising score matching (issue 4).

For data dimension D in 2, 16, 64, 256: a score MLP (width 128, depth 3) on a batch of 256
Gaussian vectors, one optimiser step (loss, backward, Adam) per call, timed as the median of
``--repeats`` repeats of a few steps each, one thread. Sliced score matching is timed with both
ways of computing v^T (grad s) v: forward-mode JVP (torch.func.jvp) and double backward.

Usage (under the shared lock):
    flock /tmp/difflab-cpu.lock env PYTHONPATH=src \
        python benchmarks/bench_score_matching_cost.py [--repeats 5] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from difflab.losses.score_matching import (
    DenoisingObjective,
    ExactObjective,
    SlicedObjective,
)
from difflab.models import ScoreMLP

DIMS = (2, 16, 64, 256)
BATCH = 256


def objectives():
    return {
        "exact": ExactObjective(),
        "sliced (jvp)": SlicedObjective(method="jvp"),
        "sliced (double backward)": SlicedObjective(method="double_backward"),
        "sliced_vr (jvp)": SlicedObjective(method="jvp", variance_reduced=True),
        "sliced_vr (double backward)": SlicedObjective(
            method="double_backward", variance_reduced=True
        ),
        "dsm": DenoisingObjective(0.1),
    }


def step_time(name: str, objective, dim: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = ScoreMLP(dim, width=128, depth=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(BATCH, dim)
    g = torch.Generator().manual_seed(0)

    def one_step() -> None:
        loss = objective(model, x, generator=g).loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one_step()  # warm-up
    steps = 2 if name == "exact" and dim >= 64 else 10
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table: dict[str, dict[int, float]] = {}
    for name, objective in objectives().items():
        table[name] = {d: step_time(name, objective, d, args.repeats) for d in DIMS}
        print(name, {d: f"{1e3 * t:.2f} ms" for d, t in table[name].items()}, flush=True)
    lines = ["| objective | " + " | ".join(f"D = {d}" for d in DIMS) + " |"]
    lines.append("|---|" + "---|" * len(DIMS))
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{1e3 * row[d]:.2f} ms" for d in DIMS) + " |")
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({k: {str(d): v for d, v in row.items()} for k, row in table.items()}, handle)


if __name__ == "__main__":
    main()
