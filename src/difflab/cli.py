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
        "run directory gets config.json, manifest.json, metrics and checkpoints.",
    )
    _add_config_args(p)

    p = sub.add_parser(
        "sample",
        help="draw samples from a trained run",
        description="Draw samples from a run's newest checkpoint (EMA weights).",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, help="number of samples (default: sample.n of the run)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output file, .npy or .csv (default: RUN_DIR/samples.npy)")
    p.add_argument("--sampler", help="sampler (default: sample.sampler of the run): ddpm")
    p.add_argument("--steps", type=int, help="sampling steps (default: sample.steps of the run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "plot",
        help="write the run's figures as PNG files",
        description="Data, forward process q(x_t) at 10 times, reverse trajectory "
        "at 10 times, loss curve, samples beside data: RUN_DIR/plots/*.png.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, default=2000, help="points per panel (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

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


def _positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from difflab.config import load_config
    from difflab.experiment import train_run

    cfg = load_config(args.config, args.overrides)
    run_dir, summary = train_run(cfg, args.out, progress=not args.quiet)
    print(
        f"trained {summary.steps} steps in {summary.wall_s:.1f} s "
        f"({summary.steps_per_s:.0f} steps/s), final loss {summary.final_loss:.4f}"
    )
    print(f"run directory: {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from difflab.data.files import check_output_path, save_vectors
    from difflab.run import load_run

    _positive(args.n, "--n")
    out = Path(args.out) if args.out else None
    if out is not None:
        check_output_path(out)
    run = load_run(args.run_dir)
    run.override_sampling(sampler=args.sampler, steps=args.steps)
    n = args.n or run.config.sample.n
    samples, _ = run.sample(n, seed=args.seed, progress=not args.quiet)
    out = out or run.run_dir / "samples.npy"
    save_vectors(out, samples)
    print(f"wrote {n} samples to {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from difflab.experiment import plot_run
    from difflab.run import load_run

    _positive(args.n, "--n")
    run = load_run(args.run_dir)
    for path in plot_run(run, n=args.n, seed=args.seed):
        print(path)
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


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "plot": cmd_plot, "demo": cmd_demo}


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
