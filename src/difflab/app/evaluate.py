"""``difflab evaluate``: how good is a trained run as a density model?

On held-out data (a fresh toy draw, or the user's file) it computes

- the variational bound, all T terms plus the prior, per example (an upper bound on the NLL),
  with the mean of each term L_t saved and plotted against t (discrete schedules only: a
  continuous formulation has no discrete chain to bound);
- the exact NLL through the probability-flow ODE (:mod:`difflab.likelihood`; any process);
- for toy data the true entropy H(p) = E[-log p(x)] from the generator's exact density, so
  every NLL is also shown as its excess over H(p), an estimate of KL(p || model);
- the 2015 normalisation: the bound in bits per dimension relative to the isotropic Gaussian
  fitted to the held-out data (negative: better than the Gaussian);
- the foundation's sample metrics (energy distance, MMD with noise floors).

A class-conditional run is evaluated as the model of p(x | c) it is: held-out points with their
labels (a fresh labelled toy draw, or a labelled --data file) give the conditional NLLs
-log p(x | c), the true entropy is the exact conditional one H(x | c), and the samples (in the
data's class proportions) get the class-by-class metrics (app/class_quality.py). Held-out data
without labels are scored under the run's unconditional model (its null class).

Each estimate comes with its standard error over the held-out points. NLLs are in the user's
units: a standardised run adds sum(log std). Data on a grid (``levels``) use the discretized
decoder in the bound and, for the ODE, the density times the bin volume (2 / (levels - 1))^D.
Image runs: ``app/evaluate_images.py``. Everything runs on the run's device. Under torchrun
every rank runs the network on its rows of each batch (the bound's and the sampler's network
calls, the ODE's drift and divergence) and rank 0 writes: the numbers of one process.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.app.class_quality import format_conditional
from difflab.app.config import untrained_output
from difflab.app.datasets import is_toy
from difflab.app.held_out import (
    check_evaluation_fits,
    check_labels_fit,
    held_out_labelled_data,
)
from difflab.app.outputs import Outputs, check_folder_writable
from difflab.app.quality import sample_metrics
from difflab.app.ranks import load_split_run, on_every_rank
from difflab.app.registry import DIFFUSION, LOSSES, VOCODER
from difflab.app.run import Run
from difflab.app.sample import check_count, nonfinite_cause, nonfinite_rows
from difflab.atomic import atomic_write_json
from difflab.data.toy_density import toy_class_log_prob, toy_log_prob
from difflab.likelihood import ode_nll
from difflab.losses.vlb import full_bound
from difflab.noise import DiscreteProcess


def check_likelihood_supported(run: Run) -> None:
    """A one-line error unless the run's model defines p(x_{t-1} | x_t) with a trained variance."""
    cfg = run.config
    if LOSSES[cfg.loss.name].trains != DIFFUSION:
        raise ValueError(
            f"{run.run_dir}: loss.name = {cfg.loss.name!r} trained a score network, which "
            "defines no likelihood; judge its samples with `difflab plot` (or train a "
            "diffusion model, e.g. loss.name = 'simple', to evaluate a likelihood)"
        )
    untrained = untrained_output(cfg)
    if untrained:
        raise ValueError(f"{run.run_dir}: the bound is meaningless: {untrained}")


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def _labelled_batches(x: torch.Tensor, labels: torch.Tensor | None, size: int):
    for i in range(0, x.shape[0], size):
        yield x[i : i + size], None if labels is None else labels[i : i + size]


def bound_per_example(
    run: Run,
    x: torch.Tensor,
    *,
    seed: int,
    labels: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Bound totals (N,) and terms (N, T + 1: L_0..L_{T-1}, then the prior) in model space;
    with ``labels`` (N,) the bound on -log p(x | c) of a class-conditional run."""
    gen = run.generator(seed)
    totals, terms = [], []
    for batch, y in _labelled_batches(x, labels, run.config.evaluate.batch_size):
        denoiser = run.denoiser(clip=False, labels=y)
        b = full_bound(
            denoiser, batch.to(run.device), levels=run.data.levels, generator=gen, progress=progress
        )
        totals.append(b.total.cpu().numpy())
        terms.append(torch.cat([b.terms, b.prior[:, None]], 1).cpu().numpy())
    return np.concatenate(totals), np.concatenate(terms)


def ode_per_example(
    run: Run,
    x: torch.Tensor,
    *,
    seed: int,
    labels: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """ODE NLL (N,) in model space and the solver's number of drift evaluations (with
    ``labels``: of p(x | c); under torchrun, on a discrete schedule, each rank computes the
    drift and divergence of its rows of the batch; a continuous formulation's ODE runs the
    whole batch on every rank)."""
    ev = run.config.evaluate
    gen = run.generator(seed)
    discrete = isinstance(run.denoiser(clip=False, split=False).process, DiscreteProcess)
    split = {"split": run.split} if discrete and run.split is not None else {}
    out, nfe = [], 0
    for batch, y in _labelled_batches(x, labels, ev.batch_size):
        denoiser = run.denoiser(clip=False, split=False, labels=y)  # ode_nll splits the rows
        res = ode_nll(
            denoiser,
            batch.to(run.device),
            rtol=ev.ode_rtol,
            atol=ev.ode_atol,
            method=ev.ode_method,
            exact_max_dim=ev.exact_divergence_max_dim,
            generator=gen,
            progress=progress,
            **split,
        )
        out.append(res.nll.cpu().numpy())
        nfe += res.nfe
    return np.concatenate(out), nfe


def _gaussian_baseline_nats(x_user: np.ndarray) -> float:
    """NLL per example of the isotropic Gaussian fitted to the data (ML mean, one variance)."""
    flat = x_user.reshape(x_user.shape[0], -1).astype(np.float64)
    var = float(((flat - flat.mean(0)) ** 2).mean())
    return 0.5 * flat.shape[1] * (math.log(2 * math.pi * var) + 1.0)


def evaluate_run(
    run: Run,
    *,
    data_path: str | Path | None = None,
    n: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Every likelihood number for ``run`` (see the module doc); writes evaluate.json,
    bound_terms.csv and plots/bound_terms.png into the run directory, together once all is
    computed (``app/outputs.py``: an interruption leaves the previous three as they were),
    and returns the summary."""
    check_likelihood_supported(run)
    x_user, labels = held_out_labelled_data(run, data_path=data_path, n=n)
    check_evaluation_fits(run, len(x_user))
    check_labels_fit(run, labels)
    y = None if labels is None else torch.from_numpy(labels)
    x = torch.from_numpy(run.data.encode(x_user)).float()
    N, D = x.shape[0], x[0].numel()
    result: dict[str, Any] = {"run_dir": str(run.run_dir), "step": run.step, "n": N, "dim": D}
    result["data"] = str(data_path) if data_path else f"{run.data.name} (fresh draw)"
    result["conditional"] = labels is not None  # NLLs of p(x | c), entropies H(x | c)
    # the model's density in the user's units: p_user(x) = p_model(x_model) / prod(std)
    shift = float(np.log(run.data.std).sum()) if run.data.std is not None else 0.0
    # 1. the bound (discrete chains only), 2. the ODE NLL, per example in the user's units
    continuous = LOSSES[run.config.loss.name].continuous
    parts = []
    if not continuous:
        bound, terms = _timed(result, "bound_s", bound_per_example, run, x, y, progress=progress)
        parts.append(("bound", bound + shift))
    ode, result["ode_nfe"] = _timed(result, "ode_s", ode_per_example, run, x, y, progress=progress)
    ode = ode + shift
    if run.data.levels is not None:  # a density -> the probability of the data's bin
        ode = ode - D * math.log(2.0 / (run.data.levels - 1))
    parts.append(("ode", ode))
    for key, values in parts:
        result[f"nll_{key}_nats"], result[f"nll_{key}_se"] = _mean_se(values)
        result[f"nll_{key}_median_nats"] = float(np.median(values))  # robust to off-data points
        result[f"bits_per_dim_{key}"] = result[f"nll_{key}_nats"] / (D * math.log(2.0))
    # 3. the 2015 normalisation: against the isotropic Gaussian fitted to the held-out data
    gauss = _gaussian_baseline_nats(x_user)
    result["isotropic_gaussian_nll_nats"] = gauss
    if not continuous:
        excess = result["nll_bound_nats"] - gauss
        result["bits_per_dim_bound_vs_isotropic_gaussian"] = excess / (D * math.log(2.0))
    # 4. toy data: the true entropy (of each point's class when labelled), and each NLL's
    # excess over it (an estimate of the KL)
    if data_path is None and is_toy(run.data.name) and run.data.levels is None:
        neg_log_p = _true_neg_log_p(run.data.name, x_user.reshape(N, -1), labels)
        result["true_entropy_nats"], result["true_entropy_se"] = _mean_se(neg_log_p)
        for key, values in parts:  # paired: the spread of -log p(x) cancels
            result[f"kl_{key}_nats"], result[f"kl_{key}_se"] = _mean_se(values - neg_log_p)
    # 5. the sample metrics (of the data's class proportions for a conditional run; NaN/inf
    # samples are reported; the likelihoods are kept); under torchrun sampled on every rank,
    # scored and written by rank 0
    if run.config.evaluate.n_samples > 0:
        seed, n_samples = run.config.evaluate.seed, run.config.evaluate.n_samples
        sample_labels = run.default_labels(n_samples)
        samples, _ = run.sample(n_samples, seed=seed, progress=progress, labels=sample_labels)
        if run.writes:
            result.update(scored_samples(run, samples, labels=sample_labels))
    if not run.writes:
        return result
    # 6. everything is computed: the three files replace the previous ones together
    with Outputs() as outputs:
        if not continuous:
            _write_terms(run, terms, result, outputs)
        atomic_write_json(outputs.stage(run.run_dir / "evaluate.json"), result)
    return result


def _timed(
    result: dict[str, Any], key: str, fn, run: Run, x: torch.Tensor, labels, *, progress: bool
):
    """``fn(run, x, seed=evaluate.seed, labels=labels)``, its wall time written to
    ``result[key]``."""
    t0 = time.perf_counter()
    out = fn(run, x, seed=run.config.evaluate.seed, labels=labels, progress=progress)
    result[key] = round(time.perf_counter() - t0, 2)
    return out


def scored_samples(
    run: Run, samples: np.ndarray, *, labels: np.ndarray | None = None
) -> dict[str, Any]:
    """``sample_metrics`` of the samples (with their classes ``labels`` for a conditional
    run), or None with a ``sample_metrics_note`` naming the likely cause when some are NaN/inf
    (the likelihoods already computed are kept)."""
    bad = nonfinite_rows(samples)
    if not bad:
        return {"sample_metrics": sample_metrics(run, samples, labels=labels)}
    note = f"{bad} of {len(samples)} samples are NaN/inf: {nonfinite_cause(run)}"
    return {"sample_metrics": None, "sample_metrics_note": note}


def _true_neg_log_p(name: str, x: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """-log p(x) of each point, or -log p(x | c) of its class c, from the exact density."""
    if labels is None:
        return -toy_log_prob(name, x)
    return -toy_class_log_prob(name, x)[np.arange(len(x)), labels]


def _write_terms(run: Run, terms: np.ndarray, result: dict[str, Any], outputs: Outputs) -> None:
    """The per-t breakdown: bound_terms.csv (paper time t = index + 1, mean, se) and a plot."""
    from difflab.plots import plot_bound_terms  # matplotlib takes seconds to import

    means = terms.mean(0)
    ses = terms.std(0, ddof=1) / math.sqrt(terms.shape[0])
    path, plot = run.run_dir / "bound_terms.csv", run.run_dir / "plots" / "bound_terms.png"
    with open(outputs.stage(path), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["term", "t", "mean_nats", "se_nats"])
        for k in range(terms.shape[1] - 1):
            writer.writerow([f"L_{k}", k + 1, f"{means[k]:.8g}", f"{ses[k]:.3g}"])
        writer.writerow(["L_T", run.schedule.T, f"{means[-1]:.8g}", f"{ses[-1]:.3g}"])
    plot_bound_terms(means[:-1], outputs.stage(plot))
    result["bound_terms_nats"] = [float(v) for v in means[:-1]]
    result["prior_term_nats"] = float(means[-1])
    result["files"] = [str(path), str(plot)]


def format_report(result: dict[str, Any]) -> list[str]:
    """The terminal table of :func:`evaluate_run`'s result."""
    D = result["dim"]
    has_h = "true_entropy_nats" in result
    h = "H(x|c)" if result.get("conditional") else "H(p)"
    lines = [
        f"held-out data: {result['data']}, n = {result['n']}, dimension {D}"
        + (" (with labels: -log p(x | c))" if result.get("conditional") else ""),
        f"{'quantity':<34}{'nats':>10}{'+- se':>9}{'bits/dim':>10}"
        + (f"{'- ' + h:>10}" if has_h else ""),
    ]

    def row(name: str, nats: float, se: float, kl: str | None = None) -> str:
        text = f"{name:<34}{nats:>10.4f}{se:>9.4f}{nats / (D * math.log(2)):>10.4f}"
        if has_h and kl is not None:
            text += f"{result[kl]:>10.4f}"
        return text

    if "nll_bound_nats" in result:
        lines.append(
            row(
                "NLL bound (T terms + prior)",
                result["nll_bound_nats"],
                result["nll_bound_se"],
                "kl_bound_nats",
            )
        )
    lines.append(
        row(
            "NLL, probability-flow ODE", result["nll_ode_nats"], result["nll_ode_se"], "kl_ode_nats"
        )
    )
    if has_h:
        lines.append(
            row(
                f"true entropy {h} (exact density)",
                result["true_entropy_nats"],
                result["true_entropy_se"],
            )
        )
    if "bits_per_dim_bound_vs_isotropic_gaussian" in result:
        lines.append(
            "bound vs isotropic Gaussian: "
            f"{result['bits_per_dim_bound_vs_isotropic_gaussian']:+.4f} bits/dim (the 2015 "
            "paper's normalisation)"
        )
    else:
        lines.append("no bound: a continuous-time formulation has no discrete chain to bound")
    bound_time = f"bound {result['bound_s']} s, " if "bound_s" in result else ""
    lines.append(
        f"timings: {bound_time}ODE {result['ode_s']} s ({result['ode_nfe']} drift evaluations)"
    )
    metrics = result.get("sample_metrics") or {}
    return lines + format_conditional(metrics.get("conditional"))


def command(args: argparse.Namespace) -> int:
    """``difflab evaluate`` (under torchrun on every rank): exit 1 when the samples scored came
    out NaN/inf (the likelihoods are still written)."""
    return on_every_rank(lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    check_count(args.n, least=2)
    run, main = load_split_run(args.run_dir, args.device)
    check_folder_writable(run.run_dir / "plots", flag=f"evaluate {run.run_dir}")
    if LOSSES[run.config.loss.name].trains == VOCODER:
        from difflab.app.evaluate_audio import evaluate_audio_run, format_audio_report

        if run.split is not None:
            raise ValueError("audio runs are evaluated on one process: run it without torchrun")
        given = {"--data": args.data, "--rtol": args.rtol, "--atol": args.atol,
                 "--variance": args.variance}  # fmt: skip
        unread = [flag for flag, value in given.items() if value is not None]
        if unread:
            raise ValueError(
                f"{', '.join(unread)} {'does' if len(unread) == 1 else 'do'} not apply to an "
                "audio run (it is scored on its test "
                "clips against Griffin-Lim); drop them"
            )

        for line in format_audio_report(evaluate_audio_run(run, clips=args.n)):
            print(line)
        print(f"wrote {run.run_dir / 'evaluate.json'}")
        return 0
    if args.variance is not None:
        run.override_variance(args.variance)
    if run.data.is_image:
        from difflab.app.evaluate_images import command_images

        for flag, value in (("--data", args.data), ("--rtol", args.rtol), ("--atol", args.atol)):
            if value is not None:
                raise ValueError(
                    f"{flag} does not apply to image runs: they are evaluated on their test "
                    "split by the bound (no ODE); drop it"
                )
        return command_images(run, n=args.n or 1000, progress=main and not args.quiet)
    changes = {"ode_rtol": args.rtol, "ode_atol": args.atol}
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes:
        run.config = run.config.replace("evaluate", **changes)
    result = evaluate_run(run, data_path=args.data, n=args.n, progress=main and not args.quiet)
    if not main:
        return 0
    for line in format_report(result):
        print(line)
    print(f"wrote {run.run_dir / 'evaluate.json'}")
    if result.get("sample_metrics_note"):
        print(f"difflab: warning: {result['sample_metrics_note']}", file=sys.stderr)
        return 1
    return 0
