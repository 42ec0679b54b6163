"""The whole report: one run's sections, or a comparison followed by every run's sections; the
labels that name runs on the page; and the atomic write to FILE.html."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import difflab
from difflab.app.registry import LOSSES, reweights_t
from difflab.app.report import html
from difflab.app.report.compare import render_comparison
from difflab.app.report.html import Raw, esc, fmt
from difflab.app.report.rundir import RunDir, open_run
from difflab.app.report.sections import (
    SECTIONS,
    is_continuous,
    is_diffusion,
    render_section,
)
from difflab.app.run import require_run_dir
from difflab.timesteps import TimestepSampling, auto_method
from difflab.training import checkpoint as ckpt


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Each run's folder name, with as many parent folders as it takes to tell runs with the
    same name apart (runs/a/roll and runs/b/roll: a/roll and b/roll)."""
    parts = [p.resolve().parts for p in paths]
    depth = [1] * len(paths)
    while True:
        labels = ["/".join(pp[-d:]) for pp, d in zip(parts, depth)]
        clash = [i for i, lab in enumerate(labels) if labels.count(lab) > 1]
        if not clash:
            return labels
        for i in clash:
            depth[i] += 1


def open_runs(paths: Sequence[str | Path]) -> tuple[list[RunDir], list[str]]:
    """The runs, labelled; page notes about the labels. A one-line error for a path that is
    not a run or that is given twice."""
    if not paths:
        raise ValueError("give at least one run directory")
    resolved: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in resolved:
            raise ValueError(f"run {p} is given twice (as {resolved[key]}); give each run once")
        resolved[key] = str(p)
    dirs = [Path(p) for p in paths]
    labels = unique_labels(dirs)
    runs = [open_run(p, label, i) for i, (p, label) in enumerate(zip(dirs, labels))]
    notes = []
    names = [d.resolve().name for d in dirs]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        same = [lab for n, lab in zip(names, labels) if n == name]
        notes.append(f"{len(same)} runs are named {name!r}; they are labelled {', '.join(same)}")
    return runs, notes


def overview(run: RunDir) -> Raw:
    """What the run is, how far it got, and what the report found wrong while reading it."""
    g = run.get
    trained = (
        f"step {run.step} of train.steps = {fmt(g('train.steps'))}, {len(run.checkpoints)} "
        f"checkpoint{'s' if len(run.checkpoints) != 1 else ''}"
        if run.step is not None
        else "no checkpoint yet: showing what the run has written"
    )
    data = run.manifest.get("data") or {}
    steps = g("sample.steps")
    if is_diffusion(run):
        model = (
            f"{fmt(g('model.name'))}, predicts {fmt(g('model.prediction'))}, variance "
            f"{fmt(g('model.variance'))}"
        )
        draw = g("loss.timesteps")
        if draw == TimestepSampling.AUTO and g("loss.name") in LOSSES:
            draw = f"auto: {auto_method(reweights_t(g('loss.name')))}"
        loss = f"{fmt(g('loss.name'))}, t drawn {fmt(draw)}; schedule "
        loss += f"{fmt(g('schedule.name'))}, T = {fmt(g('schedule.T'))}"
        if is_continuous(run):
            loss = f"{fmt(g('loss.name'))}, a continuous-time formulation"
    else:
        model = f"{fmt(g('model.name'))} (a score network)"
        loss = f"{fmt(g('loss.name'))} (score matching)"
    rows = [
        ("directory", str(run.path.resolve())),
        ("trained", trained),
        (
            "data",
            f"{fmt(g('data.name'))}, shape {fmt(data.get('shape'))}, "
            f"{fmt(data.get('n_train'))} training examples",
        ),
        ("model", model),
        ("loss", loss),
        ("sampler", f"{fmt(g('sample.sampler'))}, {'all' if steps is None else steps} steps"),
        (
            "written by",
            f"difflab {fmt(run.manifest.get('version'))}, torch {fmt(run.manifest.get('torch'))}",
        ),
    ]
    return html.table(["", ""], rows, cls="kv")


def run_sections(run: RunDir, *, level: int) -> Raw:
    """A run's overview, notes and every section that applies to it."""
    applicable = [s for s in SECTIONS if s.applies(run)]
    run.claimed = {f for s in applicable for f in s.claims}
    bodies = [render_section(run, s) for s in applicable]  # reading files collects notes
    notes = "".join(html.note(text, lvl) for lvl, text in dict.fromkeys(run.notes))
    links = " · ".join(f'<a href="#{run.anchor}-{s.key}">{esc(s.title)}</a>' for s in applicable)
    head = overview(run) + notes + f'<p class="dim">{links}</p>'
    return html.section(run.anchor, f"Run {run.label}", head + "".join(bodies), level=level)


def build_report(paths: Sequence[str | Path]) -> str:
    """The report's HTML for one run or several."""
    runs, notes = open_runs(paths)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    subtitle = f"written {stamp} by difflab {difflab.__version__}"
    page_notes = "".join(html.note(n, "warning") for n in notes)
    if len(runs) == 1:
        run = runs[0]
        body = run_sections(run, level=2)
        nav = " ".join(
            f'<a href="#{run.anchor}-{s.key}">{esc(s.title)}</a>'
            for s in SECTIONS
            if s.applies(run)
        )
        return html.page(f"difflab report: {run.label}", subtitle, nav, page_notes + body)
    body = render_comparison(runs) + "".join(run_sections(run, level=2) for run in runs)
    nav = '<a href="#comparison">Comparison</a>' + "".join(
        f'<a href="#{run.anchor}">{esc(run.label)}</a>' for run in runs
    )
    return html.page(f"difflab report: {len(runs)} runs", subtitle, nav, page_notes + body)


def default_out(paths: Sequence[str | Path]) -> Path:
    """RUN_DIR/report.html for one run; report.html in the current folder for several."""
    return Path(paths[0]) / "report.html" if len(paths) == 1 else Path("report.html")


def check_out(out: Path) -> None:
    """A one-line error, before any work, for an output path that cannot be written."""
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name such as {out}/report.html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out {out}: the report is an HTML file; name it *.html")
    if not out.parent.is_dir():
        raise ValueError(
            f"--out {out}: folder {out.parent} does not exist; create it or choose another --out"
        )
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"--out {out}: folder {out.parent} is not writable; choose another --out")


def write_report(paths: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of ``paths`` to ``out`` (default: :func:`default_out`) atomically: a
    failure leaves any earlier file at ``out`` as it was."""
    for path in paths:  # a mistyped run is named as such, not as a missing --out folder
        require_run_dir(path)
    target = Path(out) if out is not None else default_out(paths)
    check_out(target)
    text = build_report(paths)
    try:
        ckpt.atomic_write_bytes(target, text.encode())
        os.chmod(target, 0o644)  # a page to share (the atomic write's temporary file is 0600)
    except OSError as err:
        raise ValueError(f"could not write {target}: {err.strerror or err}") from None
    return target
