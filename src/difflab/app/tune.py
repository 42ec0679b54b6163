"""``difflab tune-schedule RUN --steps K``: the K noise levels of a sampler (and, for a
stochastic sampler, its noise: DDIM's eta, dpmpp2m_sde's sde_eta, EDM's S_churn) that minimise
a validation criterion on held-out data (schedule_search.py; WaveGrad's schedule search,
generalised), written into the run as ``tuned_schedule.json``; ``difflab sample RUN --schedule
tuned`` uses it.

1. the held-out data: a fresh toy draw, the file of ``--data``, or the images' validation
   split (a run without any is an error); a second, independent draw checks the result;
2. the criterion (registry ``CRITERIA``: energy distance, E_q[-log p], the digits' Frechet
   distance; pluggable), on ``n`` samples drawn with one fixed seed every time;
3. every fixed grid at K steps (karras, logsnr, time; for a discrete schedule also every step
   spacing, the config's first, less those that repeat another's levels), with the run's
   noise-level range; the search starts from the best;
4. the compass search over the levels (and the noise), then the tuned schedule and every
   fixed grid are scored again on ``check_seeds`` fresh seeds against the second draw: the
   medians are reported beside the search's own value, with the search's cost.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from difflab.app.build import build_process, generate, sample_grid
from difflab.app.config import Config
from difflab.app.datasets import build_image_split, is_toy
from difflab.app.registry import CRITERIA, DIFFUSION, LOSSES, SAMPLERS, criteria_for
from difflab.app.run import Run, load_run
from difflab.app.schedule_file import SCHEDULE_FILE, write_schedule
from difflab.data.files import load_vectors
from difflab.data.toy import sample_toy
from difflab.samplers.grids import FinalStep, Grid, grid_sigma_bars
from difflab.samplers.spacing import Spacing
from difflab.schedule_search import Knob, search_levels

#: Seeds of the held-out toy draws: the search's and the check's (neither a training seed nor
#: evaluate's or the sample metrics' draws).
TUNE_SEED, CHECK_SEED = 3_000_017, 4_000_037


def held_out(run: Run, *, data_path: str | None, n: int, seed: int) -> np.ndarray:
    """Held-out data in the user's space: a toy draw, the ``--data`` file, or the validation
    split of an image source; a one-line error for a run without any."""
    if data_path is not None:
        x = load_vectors(data_path)
        if x[0].size != math.prod(run.data.shape):
            raise ValueError(
                f"--data {data_path}: {x[0].size} values per example, the run's model takes "
                f"{math.prod(run.data.shape)}; pass held-out data of the training data's shape"
            )
        return x.reshape(x.shape[0], *run.data.shape)
    if is_toy(run.data.name):
        return sample_toy(run.data.name, n, seed=seed)
    if run.data.is_image:
        return build_image_split(run.config.data, "val").x.numpy()
    raise ValueError(
        f"tune-schedule needs held-out data, and run {run.run_dir} was trained on a file: "
        "pass --data FILE with points the model never saw"
    )


class Evaluator:
    """The criterion of one schedule: sample ``n`` points with one fixed seed along the times
    of the levels (and the sampler's noise), decode, score; counts network evaluations."""

    def __init__(self, run: Run, cfg: Config, criterion, *, n: int, seed: int) -> None:
        self.run, self.cfg, self.criterion, self.n, self.seed = run, cfg, criterion, n, seed
        self.process = build_process(cfg, run.schedule)
        self.noise_key = SAMPLERS[cfg.sample.sampler].noise_key
        self.nfe = 0

    def times(self, levels: list[float]) -> list[float]:
        times = [self.process.time_at_sigma_bar(s) for s in levels]
        return times + [0.0] if self.cfg.sample.final_step == FinalStep.DENOISE else times

    def __call__(self, levels: list[float], knob: float | None, *, seed: int | None = None):
        cfg = self.cfg if knob is None else self.cfg.replace("sample", **{self.noise_key: knob})
        shape = (self.n, *self.run.data.shape)
        gen = self.run.generator(self.seed if seed is None else seed)
        result = generate(cfg, self.run.model, self.run.schedule, shape, generator=gen,
                          grid=self.times(levels))  # fmt: skip
        self.nfe += result.nfe
        samples = self.run.data.decode(result.x.cpu().numpy())
        return float(self.criterion(samples)) if np.isfinite(samples).all() else math.inf


def fixed_grids(run: Run, cfg: Config) -> dict[str, list[float]]:
    """The levels (sigma_bar, descending, no trailing data level) of every fixed grid at K."""
    grids: dict[str, list[float]] = {}
    names = [g.value for g in Grid]
    if not LOSSES[cfg.loss.name].continuous and cfg.sample.final_step == FinalStep.DENOISE:
        # every step spacing, the config's first; one that repeats another's levels is left out
        spacings = dict.fromkeys([str(cfg.sample.spacing), *(s.value for s in Spacing)])
        names = [*(f"spacing:{s}" for s in spacings), *names]
    process = build_process(cfg, run.schedule)
    for name in names:
        if name.startswith("spacing:"):
            times = sample_grid(cfg.replace("sample", grid=None, spacing=name[8:]), run.schedule)
        else:
            times = sample_grid(cfg.replace("sample", grid=name), run.schedule)
        levels = [s for s in grid_sigma_bars(process, times) if s > 0]
        if levels not in grids.values():
            grids[name] = levels
    return grids


def _knob(cfg: Config, steps: int) -> Knob | None:
    key = SAMPLERS[cfg.sample.sampler].noise_key
    if key in ("eta", "sde_eta"):
        return Knob(key, getattr(cfg.sample, key), 0.0, 1.0, 0.25)
    if key == "s_churn":  # gamma = min(S_churn / K, sqrt(2) - 1) saturates at this S_churn
        top = steps * (math.sqrt(2) - 1)
        return Knob("s_churn", min(cfg.sample.s_churn, top), 0.0, top, top / 4)
    return None


def _criterion(run: Run, name: str | None) -> str:
    allowed = criteria_for(run.data.name)
    if name is None:
        if not allowed:
            raise ValueError(f"no tune-schedule criterion applies to data {run.data.name!r}")
        return allowed[0]
    if name not in allowed:
        raise ValueError(
            f"--criterion {name!r} does not apply to data {run.data.name!r}; choose one of "
            f"{', '.join(map(repr, allowed)) or '(none)'} (all: {', '.join(CRITERIA)})"
        )
    return name


def _tuning_config(run: Run, sampler: str | None, steps: int) -> Config:
    cfg = run.config.replace("sample", sampler=sampler or run.config.sample.sampler, steps=steps,
                             schedule="grid")  # fmt: skip
    row = SAMPLERS[cfg.sample.sampler]
    if row.needs != DIFFUSION or not row.grid:
        raise ValueError(f"--sampler {cfg.sample.sampler!r} does not sample on a grid of levels")
    return cfg


def tune_schedule(
    run: Run,
    *,
    steps: int,
    sampler: str | None = None,
    criterion: str | None = None,
    n: int = 2000,
    budget: int = 150,
    seed: int = 0,
    data_path: str | None = None,
    check_seeds: int = 5,
    log=None,
) -> dict[str, Any]:
    """Search, check, write ``RUN_DIR/tuned_schedule.json``; return what was written."""
    if n < 2 or budget < 1 or check_seeds < 1:
        raise ValueError(f"need --n >= 2, --budget >= 1, --check-seeds >= 1 (got {n}, {budget}, "
                         f"{check_seeds})")  # fmt: skip
    cfg, name = _tuning_config(run, sampler, steps), _criterion(run, criterion)
    t0 = time.perf_counter()
    build = CRITERIA[name].fn
    search = Evaluator(run, cfg, build(held_out(run, data_path=data_path, n=n, seed=TUNE_SEED),
                                       run.data.name), n=n, seed=seed)  # fmt: skip
    knob = _knob(cfg, steps)
    k0 = None if knob is None else knob.value
    grids = fixed_grids(run, cfg)
    fixed = {g: search(levels, k0) for g, levels in grids.items()}
    start = min(fixed, key=fixed.get)
    process = search.process
    result = search_levels(search, grids[start], knob=knob, budget=budget,
                           bounds=(process.sigma_bar_min, process.sigma_bar_max))  # fmt: skip
    cost = {"criterion_evaluations": result.evaluations + len(fixed), "network_evaluations":
            search.nfe, "wall_s": round(time.perf_counter() - t0, 2)}  # fmt: skip
    check = _check(run, cfg, build, grids, result, k0, data_path=data_path, n=n, seed=seed,
                   seeds=check_seeds)  # fmt: skip
    noise = {} if knob is None else {knob.name: result.knob}
    content = {
        "run": {"fingerprint": run.fingerprint(), "step": run.step, "loss": cfg.loss.name,
                "process": run.process_name(), "weights": run.weights_sha256()},
        "sampler": cfg.sample.sampler, "steps": steps, "final_step": cfg.sample.final_step,
        "times": search.times(result.levels), "sigma_bars": result.levels, "noise": noise,
        "criterion": {"name": name, "n": n, "seed": seed, "value": result.value,
                      "start": {"grid": start, "value": fixed[start]}, "fixed": fixed},
        "check": check, "cost": cost,
    }  # fmt: skip
    write_schedule(run.run_dir / SCHEDULE_FILE, content)
    return content


def _check(run, cfg, build, grids, result, k0, *, data_path, n, seed, seeds) -> dict[str, Any]:
    """The tuned schedule and every fixed grid on fresh seeds against an independent draw."""
    reference = held_out(run, data_path=data_path, n=n, seed=CHECK_SEED)
    check = Evaluator(run, cfg, build(reference, run.data.name), n=n, seed=seed)
    fresh = [seed + 1 + i for i in range(seeds)]
    rows = {"tuned": [check(result.levels, result.knob, seed=s) for s in fresh]}
    rows.update({g: [check(levels, k0, seed=s) for s in fresh] for g, levels in grids.items()})
    medians = {g: statistics.median(v) for g, v in rows.items()}
    best = min((g for g in medians if g != "tuned"), key=medians.get)
    return {"seeds": fresh, "medians": medians, "values": rows, "best_fixed": best,
            "tuned_beats_best_fixed": medians["tuned"] < medians[best]}  # fmt: skip


#: Default --n: samples per criterion evaluation. From ``LARGE_K`` steps on vector data the
#: energy criterion of 2000 samples is as noisy as the fixed grids' differences (measured,
#: docs/continuous.md), so the search fits its noise; 10,000 costs ~2 minutes on 2 cores.
DEFAULT_N, LARGE_K, LARGE_K_N = 2000, 10, 10_000


def format_result(content: dict[str, Any], path: Path) -> list[str]:
    crit, check, cost = content["criterion"], content["check"], content["cost"]
    lines = [
        f"{content['sampler']} with {content['steps']} steps, criterion {crit['name']} "
        f"(n = {crit['n']}; search seed {crit['seed']}; check: median of {len(check['seeds'])} "
        "fresh seeds on an independent held-out draw)",
        f"{'grid':<18}{'search':>12}{'check':>12}",
    ]
    for grid, value in crit["fixed"].items():
        lines.append(f"{grid:<18}{value:>12.5g}{check['medians'][grid]:>12.5g}")
    lines.append(f"{'tuned':<18}{crit['value']:>12.5g}{check['medians']['tuned']:>12.5g}")
    levels = ", ".join(f"{s:.4g}" for s in content["sigma_bars"])
    noise = "".join(f", {k} = {v:.3g}" for k, v in content["noise"].items())
    verdict = "beats" if check["tuned_beats_best_fixed"] else "does NOT beat"
    larger = max(LARGE_K_N, 2 * crit["n"])
    hint = "" if check["tuned_beats_best_fixed"] else (
        f": at n = {crit['n']} the criterion's noise is as large as the grids' differences "
        f"(the search fitted it); tune again with a larger --n, e.g. --n {larger}"
    )  # fmt: skip
    lines += [
        f"tuned levels (sigma): {levels}{noise}",
        f"on the check, tuned {verdict} the best fixed grid ({check['best_fixed']}){hint}",
        f"cost: {cost['criterion_evaluations']} criterion evaluations, "
        f"{cost['network_evaluations']} network evaluations, {cost['wall_s']} s",
        f"wrote {path}; sample with: difflab sample {path.parent} --schedule tuned",
    ]
    return lines


def default_n(run, steps: int) -> int:
    """--n when it is not given: ``LARGE_K_N`` for K >= ``LARGE_K`` on vector data, else
    ``DEFAULT_N`` (images are costlier per sample and scored by bits/dim or features)."""
    vectors = not (run.config.data.is_image or run.config.data.is_audio)
    return LARGE_K_N if vectors and steps >= LARGE_K else DEFAULT_N


def command(args: argparse.Namespace) -> int:
    """``difflab tune-schedule`` (audio runs: ``tune_vocoder.command``)."""
    from difflab.app import tune_vocoder

    run = load_run(args.run_dir)
    if run.config.data.is_audio:
        return tune_vocoder.command(args, run)
    tune_vocoder.refuse_audio_flags(args, run)
    if LOSSES[run.config.loss.name].trains != DIFFUSION:
        raise ValueError(
            f"{run.run_dir}: loss.name = {run.config.loss.name!r} trained a score network, "
            "whose Langevin samplers have no noise-level grid to tune"
        )
    content = tune_schedule(
        run, steps=args.steps, sampler=args.sampler, criterion=args.criterion,
        n=default_n(run, args.steps) if args.n is None else args.n,
        budget=150 if args.budget is None else args.budget,
        seed=args.seed, data_path=args.data,
        check_seeds=5 if args.check_seeds is None else args.check_seeds,
    )  # fmt: skip
    for line in format_result(content, run.run_dir / SCHEDULE_FILE):
        print(line)
    return 0
