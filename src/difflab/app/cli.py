"""The ``difflab`` command line: parse arguments, then hand them to the command's module
(``app/train.py``, ``app/sample.py``, ...). No math here; help about names comes from the
registry.

User mistakes (bad config values, bad files, a missing run) end with one line on stderr,
``difflab: error: ...``, and exit code 2. Set DIFFLAB_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
import warnings
from collections.abc import Sequence

from difflab.app.cli_sampling import (
    add_device_arg,
    bench_samplers_parser,
    sample_parser,
    tune_schedule_parser,
    vocode_parser,
)

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
        epilog="Run `difflab COMMAND --help` for a command's options. Exit codes: 0 done, "
        "1 a problem found (doctor) or an unusable result, 2 a user or operating-system error "
        "(one line on stderr), 130/143 interrupted.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    for add in (
        _train_parser,
        sample_parser,
        vocode_parser,
        tune_schedule_parser,
        bench_samplers_parser,
        _plot_parser,
        _doctor_parser,
        _evaluate_parser,
        _report_parser,
        _demo_parser,
    ):
        add(sub)
    return parser


def _train_parser(sub) -> None:
    from difflab.app.train import RESUME_KEYS

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
        help="continue RUN_DIR from its newest good checkpoint (only --set "
        f"{', '.join(f'train.{k}' for k in RESUME_KEYS)} may change)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the config and the data, print the resolved config, write nothing",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="at the end, write RUN_DIR/report.html (see `difflab report`)",
    )


def _plot_parser(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="write the run's figures as PNG files",
        description="Data, forward process q(x_t) at 10 times (for NCSN: the data at its "
        "noise levels), the sampler's chain at 10 times, loss curve, samples beside data, and "
        "for 2-D data the learned score field beside a reference score (score.png) and sampler "
        "chains drawn as arrows (trajectories.png): RUN_DIR/plots/*.png. For image runs: "
        "grids of data and samples, and forward/reverse trajectory grids (a row per image). "
        "Audio runs: a test clip and its vocoded copy (waveforms, log-mels), its reverse chain "
        "as a strip of spectrograms, metrics against iterations (after evaluate), the loss.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, default=2000, help="points per panel (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _doctor_parser(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a run for the usual reasons samples look like noise",
        description="Checks data range and scaling, the schedule's terminal SNR, config vs "
        "checkpoint, EMA age vs decay, non-finite weights, and compares raw and EMA samples "
        "(RUN_DIR/doctor/preview.png). Each finding says what to change; they are saved in "
        "RUN_DIR/doctor.json. Exit code 1 when a finding is a problem.",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument("--n", type=int, default=1000, help="samples in the preview (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-preview", action="store_true", help="skip sampling")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="likelihood of a trained run: the bound, the ODE NLL, the true entropy",
        description="On held-out data: the variational bound (all T terms, per-t breakdown in "
        "bound_terms.csv and plots/bound_terms.png), the exact NLL through the probability-flow "
        "ODE, the true entropy H(p) of toy data, and sample metrics; writes "
        "RUN_DIR/evaluate.json. Solver settings: the run's [evaluate] config section. Image runs: "
        "bits/dim on the test split with the discretized decoder on the data's levels, and for "
        "digits the Frechet distance of --n samples (default 1000) to the test split with its "
        "noise floor, and their predicted classes. Class-conditional runs: -log p(x | c) with the "
        "held-out labels beside the true H(x | c), and class-by-class sample metrics (accuracy "
        "under the exact p(c | x) or the digits classifier, per-class energy or Frechet "
        "ratios). Several processes: torchrun --nproc_per_node=N -m difflab evaluate RUN_DIR "
        "(the same numbers as one process). "
        "Audio runs: log-mel distance, multi-resolution STFT distance, SNR, f0 RMSE and voicing "
        "error of the vocoder at evaluate.vocode_steps "
        "iterations and of Griffin-Lim from the same mel at evaluate.griffin_lim_iters, with "
        "real-time factors (RUN_DIR/evaluate.json, plots/metrics_vs_steps.png).",
    )
    p.add_argument("run_dir", help="a run directory written by `difflab train`")
    p.add_argument(
        "--data",
        help="vector runs: held-out data, .npy/.npz/.csv (default: a fresh toy draw; image runs "
        "use their test split)",
    )
    p.add_argument(
        "-n",
        "--n",
        type=int,
        help="number of held-out points (default: evaluate.n); image runs: samples scored; audio "
        "runs: test clips (default: evaluate.clips); under torchrun write -n N",
    )
    p.add_argument("--rtol", type=float, help="ODE relative tolerance (default: evaluate.ode_rtol)")
    p.add_argument("--atol", type=float, help="ODE absolute tolerance (default: evaluate.ode_atol)")
    p.add_argument(
        "--variance",
        help="evaluate a fixed-variance model with another fixed variance: small (posterior "
        "variance) or large (beta_t); default: model.variance of the run",
    )
    add_device_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _report_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page about a run, or comparing several",
        description="Write one HTML file (figures, curves and data embedded: it opens offline "
        "from any folder) with each run's config and manifest, training curves, the figures of "
        "`plot`, the results of `evaluate` and `bench-samplers`, the `doctor` findings and, "
        "for image runs, image grids; what a run has not computed yet is shown with the "
        "command that computes it. Several runs add a comparison table of their metrics and "
        "the config keys that differ.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    p.add_argument(
        "--out",
        metavar="FILE.html",
        help="where to write it (default: RUN_DIR/report.html for one run, ./report.html for "
        "several); written atomically",
    )


def _demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train on the swiss roll, sample, score and plot",
        description="The main job on the built-in default: train, sample 5000 "
        "points, compare them with fresh data (energy distance and MMD with their "
        "noise floors), write plots and summary.json.",
    )
    _add_config_args(p)
    p.add_argument("--n", type=int, default=5000, help="number of samples (default 5000)")


def _version() -> str:
    import difflab

    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # torch installed without metadata
        torch_version = "unknown"
    return f"difflab {difflab.__version__} (torch {torch_version}, Python {sys.version.split()[0]})"


#: Command -> the module whose ``command(args)`` runs it (imported only when it runs).
COMMANDS = {
    "train": "difflab.app.train",
    "sample": "difflab.app.sample",
    "vocode": "difflab.app.vocode",
    "bench-samplers": "difflab.app.bench",
    "bench-guidance": "difflab.app.bench_guidance",
    "plot": "difflab.app.plot",
    "doctor": "difflab.app.doctor",
    "evaluate": "difflab.app.evaluate",
    "demo": "difflab.app.demo",
    "tune-schedule": "difflab.app.tune",
    "report": "difflab.app.report",
}


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"difflab: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``difflab`` console script. Exit codes: 0 done; 1 done, but a finding
    is a problem (doctor) or a result is unusable (evaluate's samples diverged); 2 a user
    error or an operating-system error (one line, nothing already written was changed);
    130/143 stopped by SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warnings
    if args.command != "train":  # train picks its own from train.threads
        import torch

        from difflab.app.resources import choose_threads

        torch.set_num_threads(choose_threads())
    try:
        return importlib.import_module(COMMANDS[args.command]).command(args)
    except (ValueError, OSError) as err:
        if os.environ.get("DIFFLAB_DEBUG"):
            raise
        print(f"difflab: error: {error_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as err:
        print(f"difflab: {err or 'interrupted'}", file=sys.stderr)
        return 130


def error_line(err: BaseException) -> str:
    """The one line a user sees for a ValueError or an OSError."""
    if isinstance(err, OSError) and not isinstance(err, ValueError) and err.strerror:
        from difflab.app.outputs import describe_os_error

        return describe_os_error(err)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
