"""Continuous time side by side (issue 13): discrete DDPM (v), the continuous VP-SDE (v), EDM
and flow matching, with the same default network and training budget on the swiss roll.

Parts (``--parts``, comma-separated):

- ``train``: the four runs with the default network and the budget the tables were measured
  with (``BUDGET``: 8000 steps at lr 2e-3, batch 512, MLP 128 x 3; the default recipe until
  issue 16 made it 3000 steps at 4e-3 with lognormal t), only the loss changed: ``simple``
  (discrete, cosine, v, antithetic t), ``vp_continuous`` (cosine, v), ``edm``,
  ``flow_matching``; training times;
- ``range``: the noise-level range probe behind the default sigma_max: dpmpp2m at 10
  evaluations and EDM's Heun (edm, s_churn 0) at 18 steps (35 evaluations) on the Karras grid
  with sigma_max = k * sigma_data, for each continuous run;
- ``quality``: every sampler at 5, 10, 20, 50 and 1000 network evaluations (K chosen so that
  the sampler makes that many: heun 2K - 2, edm 2K - 1), each over ``--seeds`` sample seeds:
  the energy distance of 5000 samples to 5000 fresh points over its noise floor (the mean of 5
  independent data draws' distances), and E_q[-log p] of the samples beside H(p); medians;
- ``likelihood``: the ODE NLL of 10,000 held-out points minus H(p) (``difflab evaluate``'s);
- ``tune``: ``difflab tune-schedule --steps 6`` with dpmpp2m on each continuous run: the
  search's own value and, on 5 fresh seeds against an independent draw, the tuned schedule
  against the best fixed grid;
- ``tuned``: the few-step targets with tuned schedules: for each ``--plan`` entry sampler:K
  (default dpmpp2m:10, ddpm:10, ddpm:20), tune-schedule with ``--tune-n`` (10,000) points,
  then ``sample --schedule tuned`` scored as in ``quality``.

Results go to ``benchmarks/results/continuous.json`` (merged part by part). Usage, on the
shared machine under the lock:
  flock /tmp/difflab-cpu.lock env PYTHONPATH=src python benchmarks/bench_continuous.py \\
      --runs /tmp/bench_continuous --parts train,range,quality,likelihood,tune
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.app.build import build_formulation, generate
from difflab.app.config_files import load_config
from difflab.app.datasets import REFERENCE_SEED
from difflab.app.evaluate import evaluate_run
from difflab.app.run import Run, load_run
from difflab.app.train import train_run
from difflab.app.tune import tune_schedule
from difflab.data.toy import sample_toy
from difflab.data.toy_density import toy_log_prob
from difflab.metrics import EnergyDistanceTo

FORMULATIONS = {"ddpm_v": "simple", "vp_continuous": "vp_continuous", "edm": "edm",
                "flow_matching": "flow_matching"}  # fmt: skip
NFES = (5, 10, 20, 50, 1000)
#: (label, sampler, extra sample.* settings): the default grid of each run (discrete:
#: linspace spacing; continuous: karras), and DPM-Solver++ on the log-SNR grid.
SAMPLERS = (
    ("ddpm", "ddpm", {}), ("ddim", "ddim", {}), ("heun", "heun", {}), ("dpmpp2m", "dpmpp2m", {}),
    ("dpmpp3m", "dpmpp3m", {}), ("edm", "edm", {}),
    ("dpmpp2m/logsnr", "dpmpp2m", {"grid": "logsnr"}),
    ("dpmpp3m/logsnr", "dpmpp3m", {"grid": "logsnr"}),
)  # fmt: skip
#: Only these at 1000 evaluations (the others have converged long before; it saves time).
AT_1000 = ("ddpm", "dpmpp2m", "edm")
RANGE_FACTORS = (2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 80.0 / 0.686)
RESULTS = Path(__file__).parent / "results" / "continuous.json"


def steps_for(sampler: str, nfe: int) -> int | None:
    """K giving ``nfe`` evaluations (None where no K does: heun and edm at odd/even NFE)."""
    if sampler == "heun":
        return (nfe + 2) // 2 if nfe % 2 == 0 else None
    if sampler == "edm":
        return (nfe + 1) // 2 if nfe % 2 == 1 else (nfe // 2 if nfe == 1000 else None)
    return nfe


#: The training budget of the side-by-side tables (the default recipe when they were measured).
BUDGET = ["train.steps=8000", "train.lr=0.002"]


def train(runs: Path) -> dict[str, Any]:
    out = {}
    for name, loss in FORMULATIONS.items():
        t_draw = ["loss.timesteps=antithetic"] if loss == "simple" else []
        cfg = load_config(None, [f"loss.name={loss}", *BUDGET, *t_draw])
        t0 = time.perf_counter()
        _, summary = train_run(cfg, runs / name, progress=False)
        out[name] = {"wall_s": round(time.perf_counter() - t0, 1), "steps": summary.steps,
                     "final_loss": summary.final_loss}  # fmt: skip
        print(name, out[name], flush=True)
    return out


class Scorer:
    """Energy ratio to the noise floor and E_q[-log p], against one fresh swiss-roll draw."""

    def __init__(self, n: int) -> None:
        self.reference = sample_toy("swiss_roll", n, seed=REFERENCE_SEED)
        self.energy = EnergyDistanceTo(self.reference)
        draws = [sample_toy("swiss_roll", n, seed=REFERENCE_SEED + 1 + k) for k in range(5)]
        self.floor = float(np.mean([self.energy(d) for d in draws]))
        self.entropy = float(np.mean(-toy_log_prob("swiss_roll", self.reference)))

    def __call__(self, samples: np.ndarray) -> dict[str, float]:
        if not np.isfinite(samples).all():
            return {"energy_ratio": float("inf"), "neg_log_p": float("inf")}
        return {"energy_ratio": self.energy(samples) / self.floor,
                "neg_log_p": float(np.mean(-toy_log_prob("swiss_roll", samples)))}  # fmt: skip


def _score(run: Run, scorer: Scorer, n: int, seeds: int, **sample: Any) -> dict[str, Any]:
    cfg = run.config.replace("sample", **sample)
    rows, nfe = [], 0
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        result = generate(cfg, run.model, run.schedule, (n, 2), generator=gen)
        rows.append(scorer(run.data.decode(result.x.numpy())))
        nfe = result.nfe
    energy = [r["energy_ratio"] for r in rows]
    nlp = [r["neg_log_p"] for r in rows]
    return {"nfe": nfe, "energy_ratio": statistics.median(energy), "energy_ratios": energy,
            "neg_log_p": statistics.median(nlp), "entropy": scorer.entropy}  # fmt: skip


def range_probe(runs: Path, n: int, seeds: int) -> dict[str, Any]:
    scorer, out = Scorer(n), {}
    for name in ("vp_continuous", "edm", "flow_matching"):
        run = load_run(runs / name)
        sd = build_formulation(run.config).sigma_data
        out[name] = {}
        for k in RANGE_FACTORS:
            hi = min(k * sd, run.denoiser().process.sigma_bar_limit)
            row = {
                "dpmpp2m_10": _score(run, scorer, n, seeds, sampler="dpmpp2m", steps=10,
                                     grid="karras", sigma_max=hi),
                "edm_18": _score(run, scorer, n, seeds, sampler="edm", steps=18, grid="karras",
                                 sigma_max=hi),
            }  # fmt: skip
            out[name][f"{k:g}"] = row
            print(name, f"sigma_max = {hi:.3g} ({k:g} sd)",
                  {r: round(v["energy_ratio"], 3) for r, v in row.items()}, flush=True)  # fmt: skip
    return out


def quality(runs: Path, n: int, seeds: int, names: list[str]) -> dict[str, Any]:
    scorer, out = Scorer(n), {}
    for name in names:
        run, out[name] = load_run(runs / name), {}
        for label, sampler, extra in SAMPLERS:
            for nfe in NFES:
                K = steps_for(sampler, nfe)
                if K is None or (nfe == 1000 and label not in AT_1000):
                    continue
                row = _score(run, scorer, n, seeds, sampler=sampler, steps=K, **extra)
                out[name][f"{label}@{nfe}"] = {"steps": K, **row}
                print(name, label, K, row["nfe"], round(row["energy_ratio"], 3),
                      round(row["neg_log_p"], 3), flush=True)  # fmt: skip
    return out


def likelihood(runs: Path, n: int) -> dict[str, Any]:
    out = {}
    for name in FORMULATIONS:
        run = load_run(runs / name)
        run.config = run.config.replace("evaluate", n_samples=0)
        result = evaluate_run(run, n=n)
        out[name] = {k: result.get(k) for k in ("nll_ode_nats", "true_entropy_nats",
                     "kl_ode_nats", "kl_ode_se", "ode_s", "ode_nfe", "nll_bound_nats")}  # fmt: skip
        print(name, out[name], flush=True)
    return out


def tune(runs: Path, n: int) -> dict[str, Any]:
    out = {}
    for name in ("vp_continuous", "edm", "flow_matching", "ddpm_v"):
        content = tune_schedule(load_run(runs / name), steps=6, sampler="dpmpp2m", n=n)
        out[name] = {"value": content["criterion"], "check": content["check"],
                     "cost": content["cost"], "sigma_bars": content["sigma_bars"]}  # fmt: skip
        print(name, content["check"]["medians"], content["cost"], flush=True)
    return out


def tuned_quality(
    runs: Path, n: int, seeds: int, names: list[str], plan: str, tune_n: int
) -> dict[str, Any]:
    """Part ``tuned``: for each "sampler:K" of ``plan``, ``difflab tune-schedule --steps K
    --sampler S --n tune_n`` on the run, then ``difflab sample --schedule tuned`` (run.sample)
    scored like ``quality`` over ``seeds`` seeds. The search's criterion at its default n =
    2000 is at its own noise floor for K >= 10 (the tuned schedule then loses on the check),
    hence the larger ``tune_n``."""
    scorer, out = Scorer(n), {}
    for name in names:
        out[name] = {}
        for item in plan.split(","):
            sampler, K = item.split(":")
            content = tune_schedule(load_run(runs / name), steps=int(K), sampler=sampler,
                                    n=tune_n, check_seeds=3)  # fmt: skip
            run = load_run(runs / name)
            run.config = run.config.replace("sample", schedule="tuned")
            rows, nfe = [], 0
            for seed in range(seeds):
                samples, chain = run.sample(n, seed=seed)
                rows.append(scorer(np.asarray(samples)))
                nfe = chain.nfe
            energy = [r["energy_ratio"] for r in rows]
            row = {"steps": int(K), "nfe": nfe,
                   "energy_ratio": statistics.median(energy), "energy_ratios": energy,
                   "neg_log_p": statistics.median(r["neg_log_p"] for r in rows),
                   "entropy": scorer.entropy, "tune_n": tune_n, "cost": content["cost"],
                   "check": content["check"]["medians"], "sigma_bars": content["sigma_bars"],
                   "noise": content["noise"]}  # fmt: skip
            out[name][f"{sampler}@{K}"] = row
            print(name, "tuned", sampler, K, round(row["energy_ratio"], 3),
                  round(row["neg_log_p"], 3), content["cost"], flush=True)  # fmt: skip
    return out


def tables(results: dict[str, Any]) -> str:
    """The markdown tables of docs/continuous.md from the results."""
    lines = []
    if "range" in results:
        lines += ["| run | sigma_max / sd | dpmpp2m 10 NFE | edm 18 steps (35 NFE) |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for name, rows in results["range"].items():
            for k, row in rows.items():
                a, b = row["dpmpp2m_10"]["energy_ratio"], row["edm_18"]["energy_ratio"]
                lines.append(f"| {name} | {float(k):.3g} | {a:.2f} | {b:.2f} |")
        lines.append("")
    if "quality" in results:
        lik = results.get("likelihood", {})
        lines += ["| run | sampler | " + " | ".join(f"{n} NFE" for n in NFES) + " |",
                  "| --- | --- |" + " --- |" * len(NFES)]  # fmt: skip
        for name, rows in results["quality"].items():
            for sampler, _, _ in SAMPLERS:
                cells = []
                for nfe in NFES:
                    row = rows.get(f"{sampler}@{nfe}")
                    cells.append("" if row is None else
                                 f"{row['energy_ratio']:.2f} / {row['neg_log_p']:.2f}")  # fmt: skip
                lines.append(f"| {name} | {sampler} | " + " | ".join(cells) + " |")
            if name in lik:
                kl = lik[name]
                lines.append(f"| {name} | ODE NLL - H(p) | {kl['kl_ode_nats']:.3f} +- "
                             f"{kl['kl_ode_se']:.3f} (H = {kl['true_entropy_nats']:.3f}) |"
                             + " |" * (len(NFES) - 1))  # fmt: skip
        lines.append("")
    if "tune" in results:
        lines += ["| run | best fixed grid (check) | tuned (check) | search | cost |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, row in results["tune"].items():
            med, best = row["check"]["medians"], row["check"]["best_fixed"]
            cost = row["cost"]
            lines.append(
                f"| {name} | {best} {med[best]:.3g} | {med['tuned']:.3g} | "
                f"{row['value']['start']['value']:.3g} -> {row['value']['value']:.3g} | "
                f"{cost['criterion_evaluations']} evaluations, {cost['wall_s']} s |"
            )
    if "tuned" in results:
        lines += ["", "| run | tuned sampler | NFE | energy ratio | E_q[-log p] (H) | search |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, rows in results["tuned"].items():
            for label, row in rows.items():
                lines.append(
                    f"| {name} | {label} | {row['nfe']} | {row['energy_ratio']:.2f} | "
                    f"{row['neg_log_p']:.2f} ({row['entropy']:.2f}) | "
                    f"{row['cost']['criterion_evaluations']} evaluations, "
                    f"{row['cost']['wall_s']} s (n = {row['tune_n']}) |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="where the four runs live")
    parser.add_argument("--parts", default="train,range,quality,likelihood,tune")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated formulations for quality and tuned")
    parser.add_argument(
        "--plan",
        default="dpmpp2m:10,ddpm:10,ddpm:20",
        help="part tuned: the sampler:K schedules to tune",
    )
    parser.add_argument("--tune-n", type=int, default=10_000, help="part tuned: the search's n")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    names = args.only.split(",") if args.only else list(FORMULATIONS)
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        if part == "train":
            results["train"] = train(args.runs)
        elif part == "range":
            results["range"] = range_probe(args.runs, args.n, args.seeds)
        elif part == "quality":
            results.setdefault("quality", {}).update(quality(args.runs, args.n, args.seeds, names))
        elif part == "likelihood":
            results["likelihood"] = likelihood(args.runs, 10_000)
        elif part == "tune":
            results["tune"] = tune(args.runs, 2000)
        elif part == "tuned":
            tuned = tuned_quality(args.runs, args.n, args.seeds, names, args.plan, args.tune_n)
            for name, rows in tuned.items():  # merged per run: other plans' rows stay
                results.setdefault("tuned", {}).setdefault(name, {}).update(rows)
        elif part == "table":
            print(tables(results))
            continue
        else:
            raise SystemExit(f"unknown part {part!r}")
        results.setdefault("part_seconds", {})[part] = round(time.perf_counter() - t0, 1)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
