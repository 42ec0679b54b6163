"""``difflab report RUN [RUN ...] [--out FILE.html]``: one self-contained HTML page per run, or
a comparison of several runs followed by each run's page.

The page embeds everything (figures as PNG data URLs, curves as inline SVG, audio as WAV data
URLs); it opens offline from any folder, and its Content-Security-Policy lets it make no
request. Each run shows its overview, training curves, figures, evaluate results, sampler
benchmark, doctor findings, config and manifest; what a run has not computed yet is shown as
missing with the command that computes it (``report/sections.py`` lists the sections).
Several runs add a table of their headline numbers, the config keys that differ and their
training curves on shared axes (``report/compare.py``).
"""

from __future__ import annotations

import argparse
import time

from difflab.app.report.page import build_report, check_out, default_out, write_report

__all__ = ["build_report", "check_out", "command", "default_out", "write_report"]


def command(args: argparse.Namespace) -> int:
    """``difflab report``."""
    t0 = time.perf_counter()
    path = write_report(args.run_dirs, args.out)
    size = path.stat().st_size / 1e6
    print(f"wrote {path} ({size:.2f} MB, {time.perf_counter() - t0:.1f} s)")
    return 0
