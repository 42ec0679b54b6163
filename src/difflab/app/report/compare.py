"""The comparison at the top of a report on several runs: one table of their headline numbers
(a row per run, the best value of each column in bold), the config keys whose values differ,
and the training curves of every run on shared axes.

Each column is a row of :data:`COLUMNS`: a name, how to read it from a run, which way is better.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from difflab.app.report import html
from difflab.app.report.charts import Series, line_chart
from difflab.app.report.html import Raw, esc, fmt
from difflab.app.report.rundir import RunDir
from difflab.app.report.sections import CURVES, flatten, training_time


@dataclass(frozen=True)
class Column:
    """``read(run)`` -> a number, (number, standard error), or None when not computed;
    ``better``: "low", "high" or None (not comparable across runs); ``command``: what computes
    it, shown for a missing value."""

    name: str
    read: Callable[[RunDir], Any]
    better: str | None = "low"
    command: str | None = None


def _json(run: RunDir, name: str) -> dict[str, Any]:
    value = run.read_json(name)
    return value if isinstance(value, dict) else {}


def _evaluate(run: RunDir, key: str, se: str | None = None) -> Any:
    r = _json(run, "evaluate.json")
    if key not in r:
        return None
    return (r[key], r.get(se)) if se else r[key]


def _sample_metric(run: RunDir, metric: str, field: str = "ratio") -> Any:
    """A sample metric from evaluate.json, else from the demo's summary.json."""
    for name, key in (("evaluate.json", "sample_metrics"), ("summary.json", "metrics")):
        metrics = _json(run, name).get(key)
        if isinstance(metrics, dict) and isinstance(metrics.get(metric), dict):
            return metrics[metric].get(field)
    return None


def _bits_per_dim(run: RunDir) -> Any:
    r = _json(run, "evaluate.json")
    if isinstance(r.get("bits_per_dim"), dict):
        b = r["bits_per_dim"]
        return (b.get("bits_per_dim_bound"), b.get("stderr"))
    return r.get("bits_per_dim_bound")


def _best_bench(run: RunDir) -> Any:
    rows = _json(run, "bench_samplers.json").get("rows") or []
    scored = [r for r in rows if isinstance(r, dict) and _number(r.get("energy_ratio"))]
    if not scored:
        return None
    best = min(scored, key=lambda r: r["energy_ratio"])
    return Raw(
        f"{esc(fmt(best['energy_ratio'], 3))} "
        f'<span class="dim">({esc(best.get("sampler"))}, K = {esc(best.get("steps"))})</span>'
    ), best["energy_ratio"]


def _log_value(run: RunDir, key: str, how: str) -> Any:
    values = np.asarray(run.metrics.column(key), dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    return float(values[-1] if how == "last" else np.median(values))


def _problems(run: RunDir) -> Any:
    findings = _json(run, "doctor.json").get("findings")
    if not isinstance(findings, list):
        return None
    return sum(1 for f in findings if isinstance(f, dict) and f.get("level") == "problem")


COLUMNS = (
    Column("step", lambda r: r.step, better=None, command="difflab train"),
    Column("final loss", lambda r: _log_value(r, "loss", "last"), better=None),
    Column("training s", lambda r: training_time(r.metrics.column("elapsed_s")) or None, None),
    Column("steps/s (median)", lambda r: _log_value(r, "steps_per_s", "median"), "high"),
    Column(
        "NLL bound, nats",
        lambda r: _evaluate(r, "nll_bound_nats", "nll_bound_se"),
        command="difflab evaluate",
    ),
    Column(
        "ODE NLL, nats",
        lambda r: _evaluate(r, "nll_ode_nats", "nll_ode_se"),
        command="difflab evaluate",
    ),
    Column(
        "H(p), nats",
        lambda r: _evaluate(r, "true_entropy_nats", "true_entropy_se"),
        None,
        command="difflab evaluate",
    ),
    Column(
        "bound − H(p)",
        lambda r: _evaluate(r, "kl_bound_nats", "kl_bound_se"),
        command="difflab evaluate",
    ),
    Column(
        "ODE − H(p)", lambda r: _evaluate(r, "kl_ode_nats", "kl_ode_se"), command="difflab evaluate"
    ),
    Column("bits/dim (bound)", _bits_per_dim, command="difflab evaluate"),
    Column(
        "energy / floor", lambda r: _sample_metric(r, "energy_distance"), command="difflab evaluate"
    ),
    Column("MMD / floor", lambda r: _sample_metric(r, "mmd"), command="difflab evaluate"),
    Column(
        "Fréchet / floor",
        lambda r: _sample_metric(r, "frechet_distance"),
        command="difflab evaluate",
    ),
    Column(
        "E_q[-log p] − H(p)",
        lambda r: _sample_metric(r, "neg_log_p", "excess"),
        command="difflab evaluate",
    ),
    Column("best sampler (energy / floor)", _best_bench, command="difflab bench-samplers"),
    Column("doctor problems", _problems, command="difflab doctor"),
)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _split(value: Any) -> tuple[Any, float | None]:
    """(what to show, the number to rank by) of a column value."""
    if isinstance(value, tuple):
        shown, key = value
        if isinstance(shown, Raw):
            return shown, key if _number(key) else None
        return html.pm(shown, key), shown if _number(shown) else None
    return value, value if _number(value) else None


def metrics_table(runs: Sequence[RunDir]) -> Raw:
    """A row per run; columns no run has are left out; the best of each comparable column in
    bold; a missing value names the command that computes it."""
    values = [[_split(col.read(run)) for col in COLUMNS] for run in runs]
    keep = [j for j in range(len(COLUMNS)) if any(v[j][0] is not None for v in values)]
    best = {}
    for j in keep:
        ranked = [v[j][1] for v in values if v[j][1] is not None]
        if COLUMNS[j].better and len(ranked) > 1:
            best[j] = min(ranked) if COLUMNS[j].better == "low" else max(ranked)
    rows = []
    for run, vals in zip(runs, values):
        row: list[Any] = [Raw(f'<a href="#{run.anchor}">{esc(run.label)}</a>')]
        for j in keep:
            shown, key = vals[j]
            if shown is None:
                hint = f"{COLUMNS[j].command} {run.path}" if COLUMNS[j].command else ""
                row.append(Raw(f'<span class="dim" title="not computed: {esc(hint)}">—</span>'))
            elif j in best and key == best[j]:
                row.append(Raw(f'<span class="nondefault">{html.cell(shown)}</span>'))
            else:
                row.append(shown)
        rows.append(row)
    headers = ["run"] + [COLUMNS[j].name for j in keep]
    return html.table(
        headers,
        rows,
        caption="headline numbers (best in bold; — : not computed)",
        table_id="comparison-metrics",
    )


def config_diff(runs: Sequence[RunDir]) -> Raw:
    """The config keys (and recorded versions and data) whose values differ between runs."""
    flat = []
    for run in runs:
        values = flatten(run.full_config)
        manifest = run.manifest
        values["manifest.version"] = manifest.get("version")
        values["manifest.torch"] = manifest.get("torch")
        values["manifest.data.sha256"] = (manifest.get("data") or {}).get("sha256")
        flat.append(values)
    keys = list(dict.fromkeys(k for values in flat for k in values))
    differ = [k for k in keys if len({_key(v.get(k)) for v in flat}) > 1]
    if not differ:
        return html.note("The runs' configs are identical (and so are their versions and data).")
    rows = [[k] + [_short_hash(k, v.get(k)) for v in flat] for k in differ]
    return html.table(
        ["key"] + [run.label for run in runs],
        rows,
        table_id="comparison-config",
        caption=f"the {len(differ)} config values that differ (all others agree)",
    )


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _short_hash(key: str, value: Any) -> Any:
    return value[:12] + "…" if key.endswith("sha256") and isinstance(value, str) else value


def overlaid_curves(runs: Sequence[RunDir]) -> str:
    charts = []
    for column, title, label, log_y in CURVES[:4]:
        series = [
            Series(run.label, run.metrics.column("step"), run.metrics.column(column))
            for run in runs
            if column in run.metrics.columns
        ]
        if series:
            chart = line_chart(series, title=title, x_label="step", y_label=label, log_y=log_y)
            charts.append(chart)
    return f'<div class="grid">{"".join(charts)}</div>' if charts else ""


def render_comparison(runs: Sequence[RunDir]) -> Raw:
    body = metrics_table(runs) + config_diff(runs) + overlaid_curves(runs)
    return html.section("comparison", f"Comparison of {len(runs)} runs", body, level=2)
