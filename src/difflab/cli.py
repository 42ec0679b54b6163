"""The ``difflab`` command line: parse arguments -> config -> library calls. No math here.

User mistakes (bad config values, bad files, a missing run) end with one line on stderr,
``difflab: error: ...``, and exit code 2. Set DIFFLAB_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2), like every other user mistake."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"difflab: error: {message} (see `{self.prog} --help`)\n")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="a TOML config file (default: the built-in defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.steps=2000 (repeatable)",
    )
    p.add_argument("--out", help="the run directory to create (default: runs/<time>-<data>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="difflab",
        description="Diffusion probabilistic models and score-based generative models: train, "
        "sample, evaluate and plot.",
        epilog="Run `difflab COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model from a TOML config and --set overrides; the "
        "run directory gets config.json, manifest.json, metrics and checkpoints. "
        "SIGINT/SIGTERM write a checkpoint and stop; --resume continues exactly. "
        "Several processes: torchrun --nproc_per_node=N -m difflab train ...",
    )
    _add_config_args(p)
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest good checkpoint (only --set train.steps, "
        "checkpoint_every, keep_checkpoints, log_every, max_nonfinite, device may change)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config and the data, print the resolved config, write nothing",
    )

    p = sub.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Draw samples from a run's newest checkpoint (EMA weights).",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, help="number of samples (default: sample.n of the run)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--out",
        help="output file, .npy or .csv (default: RUN_DIR/samples.npy); image runs write .npy "
        "integer images (N, H, W[, C]) in 0..levels-1, like their input",
    )
    p.add_argument("--grid", metavar="FILE.png", help="image runs: also write a PNG grid")
    _add_sampler_args(p)
    p.add_argument("--steps", type=int, help="sampling steps K in [1, T] (default: all T)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "bench-samplers",
        help="compare the samplers' quality and cost on a trained run",
        description="Each sampler at K in {5, 10, 20, 50, 100, 1000} (K <= T): network "
        "evaluations, wall time, and energy-distance and MMD ratios to their noise floors (toy "
        "data). Prints a table and writes RUN_DIR/bench_samplers.json and "
        "RUN_DIR/plots/bench_samplers.png.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument(
        "--samplers", help="comma-separated samplers (default: all: ddpm,ddim,euler,heun,dpmpp2m)"
    )
    p.add_argument("--steps", help="comma-separated step counts K (default: 5,10,20,50,100,1000)")
    p.add_argument("--n", type=int, default=5000, help="samples per row (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--floor-draws", type=int, default=5, help="data draws for the noise floors (default 5)"
    )
    p.add_argument("--eta", type=float, help="DDIM's eta in [0, 1] (default: sample.eta)")
    p.add_argument(
        "--spacing", help="step spacing: linspace, leading, trailing, quadratic (default: run's)"
    )

    p = sub.add_parser(
        "plot",
        help="write the run's figures as PNG files",
        description="Data, forward process q(x_t) at 10 times (for NCSN: the data at its "
        "noise levels), the sampler's chain at 10 times, loss curve, samples beside data, and "
        "for 2-D data the learned score field beside a reference score (score.png) and sampler "
        "chains drawn as arrows (trajectories.png): RUN_DIR/plots/*.png. For image runs: "
        "grids of data and samples, and forward/reverse trajectory grids (a row per image).",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, default=2000, help="points per panel (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = sub.add_parser(
        "doctor",
        help="check a run for the usual reasons samples look like noise",
        description="Checks data range and scaling, the schedule's terminal SNR, config vs "
        "checkpoint, EMA age vs decay, non-finite weights, and compares raw and EMA samples "
        "(RUN_DIR/doctor/preview.png). Each finding says what to change. Exit code 1 when "
        "a finding is a problem.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, default=500, help="samples in the preview (default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-preview", action="store_true", help="skip sampling")

    p = sub.add_parser(
        "evaluate",
        help="likelihood of a trained run: the bound, the ODE NLL, the true entropy",
        description="On held-out data: the variational bound (all T terms, per-t breakdown in "
        "bound_terms.csv and plots/bound_terms.png), the exact NLL through the probability-flow "
        "ODE, the true entropy H(p) of toy data, and sample metrics; writes "
        "RUN_DIR/evaluate.json. Solver settings: the run's [evaluate] config section. Image runs: "
        "bits/dim on the test split with the discretized decoder on the data's levels, and for "
        "digits the Frechet distance of --n samples (default 1000) to the test split with its "
        "noise floor, and their predicted classes.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--data", help="held-out data, .npy/.npz/.csv (default: a fresh toy draw)")
    p.add_argument("--n", type=int, help="number of held-out points (default: evaluate.n)")
    p.add_argument("--rtol", type=float, help="ODE relative tolerance (default: evaluate.ode_rtol)")
    p.add_argument("--atol", type=float, help="ODE absolute tolerance (default: evaluate.ode_atol)")
    p.add_argument(
        "--variance",
        help="evaluate a fixed-variance model with another fixed variance: small (posterior "
        "variance) or large (beta_t); default: model.variance of the run",
    )

    p = sub.add_parser(
        "demo",
        help="train on the swiss roll, sample, score and plot",
        description="The main job on the built-in default: train, sample 5000 "
        "points, compare them with fresh data (energy distance and MMD with their "
        "noise floors), write plots and summary.json.",
    )
    _add_config_args(p)
    p.add_argument("--n", type=int, default=5000, help="number of samples (default 5000)")
    return parser


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sampler",
        help="sampler (default: sample.sampler of the run): ddpm, ddim, euler, heun, dpmpp2m "
        "or pc for diffusion models, langevin or annealed_langevin (NCSN) for score models",
    )
    p.add_argument(
        "--eta", type=float, help="ddim only: noise scale in [0, 1] (0 deterministic, default)"
    )
    p.add_argument(
        "--spacing",
        help="which K of the T steps: linspace (default), leading, trailing, quadratic",
    )


def _int_list(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None


def _positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from difflab.training.distributed import fail_together, shutdown_distributed

    try:  # under torchrun, an error on one rank ends every rank (with that rank's message)
        return fail_together(
            lambda: _train(args),
            user_errors=(ValueError, FileNotFoundError),  # those main() reports in one line
            debug=bool(os.environ.get("DIFFLAB_DEBUG")),
        )
    finally:
        shutdown_distributed()


def _train(args: argparse.Namespace) -> int:
    from difflab.config import load_config
    from difflab.experiment import check_config, resume_run, train_run

    if args.resume:
        if args.config or args.out or args.dry_run:
            raise ValueError(
                "--resume RUN_DIR takes its config from RUN_DIR: drop the config file, --out "
                "and --dry-run (only --set train.steps=... and the like may change)"
            )
        run_dir, summary = resume_run(args.resume, args.overrides, progress=not args.quiet)
    else:
        cfg = load_config(args.config, args.overrides)
        if args.dry_run:
            print(cfg.to_json(), end="")
            print(check_config(cfg))
            return 0
        run_dir, summary = train_run(cfg, args.out, progress=not args.quiet)
    from difflab.training.distributed import is_main_process

    if not is_main_process():
        return 0 if not summary.interrupted else 143
    if summary.interrupted:
        print(
            f"difflab: stopped by {summary.interrupted} at step {summary.steps}; checkpoint "
            f"{summary.checkpoint}; continue with: difflab train --resume {run_dir}",
            file=sys.stderr,
        )
        return 130 if summary.interrupted == "SIGINT" else 143
    skipped = f", {summary.skipped_steps} non-finite steps skipped" if summary.skipped_steps else ""
    print(
        f"trained to step {summary.steps} in {summary.wall_s:.1f} s "
        f"({summary.steps_per_s:.0f} steps/s), final loss {summary.final_loss:.4f}{skipped}"
    )
    print(f"run directory: {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from difflab.data.files import check_output_path
    from difflab.data.images import check_image_output_path
    from difflab.experiment import save_samples
    from difflab.plots import save_image_grid
    from difflab.run import load_run

    _positive(args.n, "--n")
    run = load_run(args.run_dir)
    out = Path(args.out) if args.out else run.run_dir / "samples.npy"
    (check_image_output_path if run.data.is_image else check_output_path)(out)
    if args.grid and not run.data.is_image:
        raise ValueError("--grid draws image samples; this run's data are vectors (use plot)")
    grid = Path(args.grid) if args.grid else None
    if grid is not None and (grid.suffix.lower() != ".png" or not grid.parent.is_dir()):
        raise ValueError(f"--grid {grid}: give a .png file in an existing directory")
    run.override_sampling(
        sampler=args.sampler, steps=args.steps, eta=args.eta, spacing=args.spacing
    )
    if args.eta is not None and run.config.sample.sampler != "ddim":
        raise ValueError(
            f"--eta applies to the ddim sampler only, not {run.config.sample.sampler!r}; "
            "add --sampler ddim or drop --eta"
        )
    n = args.n or run.config.sample.n
    samples, _ = run.sample(n, seed=args.seed, progress=not args.quiet)
    save_samples(run, samples, out)
    print(f"wrote {n} samples to {out}")
    if grid is not None:
        save_image_grid(samples[:400], grid)
        print(f"wrote a grid of {min(n, 400)} samples to {grid}")
    return 0


def cmd_bench_samplers(args: argparse.Namespace) -> int:
    from difflab.data.toy import toy_names
    from difflab.run import load_run
    from difflab.sampler_bench import bench_samplers, format_row, table_header

    _positive(args.n, "--n")
    samplers = [v.strip() for v in args.samplers.split(",")] if args.samplers else None
    steps = _int_list(args.steps, "--steps")
    run = load_run(args.run_dir)
    run.override_sampling(eta=args.eta, spacing=args.spacing)
    print(table_header(run.data.name in toy_names()))
    result = bench_samplers(
        run,
        samplers=samplers,
        steps=steps,
        n=args.n,
        seed=args.seed,
        floor_draws=args.floor_draws,
        log=lambda row: print(format_row(row), flush=True),
    )
    print(f"wrote {result['json']}" + (f" and {result['plot']}" if result["plot"] else ""))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from difflab.experiment import plot_run
    from difflab.run import load_run

    _positive(args.n, "--n")
    run = load_run(args.run_dir)
    for path in plot_run(run, n=args.n, seed=args.seed):
        print(path)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from difflab.doctor import diagnose, format_findings

    _positive(args.n, "--n")
    findings = diagnose(args.run_dir, n=args.n, seed=args.seed, preview=not args.no_preview)
    for line in format_findings(findings):
        print(line)
    return 1 if any(f.level == "problem" for f in findings) else 0


def _evaluate_images(run, *, n: int) -> int:
    from difflab.experiment import evaluate_image_run, format_metrics

    result = evaluate_image_run(run, n_samples=n)
    bpd = result["bits_per_dim"]
    print(
        f"test bits/dim (bound): {bpd['bits_per_dim_bound']:.4f} +- {bpd['stderr']:.4f} "
        f"({bpd['n_images']} images, {bpd['levels']} levels, T = {bpd['T']})"
    )
    print(f"  prior {bpd['prior']:.4f}, decoder {bpd['decoder']:.4f}, KL terms {bpd['kl']:.4f}")
    if "sample_metrics" in result:
        for line in format_metrics(result["sample_metrics"]):
            print("  " + line)
    print(f"wrote {run.run_dir / 'evaluate.json'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from difflab.evaluation import evaluate_run, format_report
    from difflab.run import load_run

    _positive(args.n, "--n")
    run = load_run(args.run_dir)
    if run.data.is_image:
        return _evaluate_images(run, n=args.n or 1000)
    changes = {k: v for k, v in {"ode_rtol": args.rtol, "ode_atol": args.atol}.items() if v}
    if changes:
        run.config = run.config.replace("evaluate", **changes)
    if args.variance is not None:
        run.override_variance(args.variance)
    result = evaluate_run(run, data_path=args.data, n=args.n)
    for line in format_report(result):
        print(line)
    print(f"wrote {run.run_dir / 'evaluate.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from difflab.config import load_config
    from difflab.experiment import demo, format_metrics

    _positive(args.n, "--n")
    cfg = load_config(args.config, args.overrides)
    result = demo(cfg, args.out, n=args.n, progress=not args.quiet)
    print(
        f"\ntrained {result['train_steps']} steps in {result['train_s']} s, "
        f"sampled {result['n_samples']} points in {result['sample_s']} s"
    )
    for line in format_metrics(result["metrics"]):
        print("  " + line)
    print(f"results: {result['run_dir']} (summary.json, samples.npy, plots/)")
    return 0


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "bench-samplers": cmd_bench_samplers,
    "plot": cmd_plot,
    "doctor": cmd_doctor,
    "evaluate": cmd_evaluate,
    "demo": cmd_demo,
}


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"difflab: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``difflab`` console script."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warnings
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("DIFFLAB_DEBUG"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"difflab: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("difflab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
