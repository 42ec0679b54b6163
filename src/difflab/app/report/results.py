"""Report sections for what the commands compute: ``difflab evaluate`` (evaluate.json and
bound_terms.csv), ``difflab bench-samplers`` (bench_samplers.json and its plot) and
``difflab doctor`` (doctor.json, or the checks computed now without the sample preview)."""

from __future__ import annotations

import csv
import math
from typing import Any

from difflab.app.report import html
from difflab.app.report.charts import Series, line_chart
from difflab.app.report.html import Raw, esc, fmt, pm
from difflab.app.report.rundir import RunDir

# -- difflab evaluate -------------------------------------------------------------------------


def render_evaluate(run: RunDir) -> str | None:
    result = run.read_json("evaluate.json", command=run.command("evaluate"))
    if not isinstance(result, dict):
        return None
    run.stale("evaluate.json", result.get("step"), run.command("evaluate"))
    if isinstance(result.get("bits_per_dim"), dict):
        out = image_likelihood(result["bits_per_dim"])
    else:
        out = vector_likelihood(result)
        if "nll_bound_nats" in result:
            out += bound_terms_chart(run, result)
        else:  # a continuous-time formulation: the ODE NLL only
            out += html.note(
                "no bound: a continuous-time formulation has no discrete chain to bound"
            )
    out += sample_quality(result.get("sample_metrics"))
    if result.get("sample_metrics_note"):
        out += html.note(result["sample_metrics_note"], "warning")
    return out


def vector_likelihood(r: dict[str, Any]) -> str:
    """The bound, the ODE NLL and the true entropy, in nats and bits/dim, with H(p) excess."""
    dim = r.get("dim") or 1
    has_h = "true_entropy_nats" in r

    def row(name: str, key: str, se_key: str, kl_key: str | None = None) -> list[Any]:
        value = r.get(key)
        bpd = value / (dim * math.log(2)) if isinstance(value, (int, float)) else None
        kl = pm(r.get(kl_key), r.get(kl_key.replace("_nats", "_se"))) if kl_key else ""
        return [name, pm(value, r.get(se_key) if se_key else None), bpd] + ([kl] if has_h else [])

    rows = [
        row("NLL bound (T terms + prior)", "nll_bound_nats", "nll_bound_se", "kl_bound_nats"),
        row("NLL, probability-flow ODE", "nll_ode_nats", "nll_ode_se", "kl_ode_nats"),
    ][0 if "nll_bound_nats" in r else 1 :]
    if has_h:
        rows.append(
            row("true entropy H(p) (exact density)", "true_entropy_nats", "true_entropy_se")
        )
    rows.append(row("isotropic Gaussian fitted to the data", "isotropic_gaussian_nll_nats", ""))
    headers = ["quantity", "nats ± se", "bits/dim"] + (["− H(p), nats"] if has_h else [])
    facts = (
        f"held-out data: {r.get('data')}, n = {fmt(r.get('n'))}, dimension {fmt(dim)}, at step "
        f"{fmt(r.get('step'))}; ODE: {fmt(r.get('ode_nfe'))} drift evaluations; timings: "
        + (f"bound {fmt(r.get('bound_s'))} s, " if "bound_s" in r else "")
        + f"ODE {fmt(r.get('ode_s'))} s"
    )
    return html.table(headers, rows, caption="likelihood") + html.note(facts)


def bound_terms_chart(run: RunDir, result: dict[str, Any]) -> str:
    """The bound's KL terms L_1..L_{T-1} against t (from bound_terms.csv, else evaluate.json),
    and the decoder L_0 and prior L_T beside them: L_0 is a log-density, of another scale."""
    t, means = _bound_terms_csv(run)
    if not t and isinstance(result.get("bound_terms_nats"), list):
        means = [float(v) for v in result["bound_terms_nats"]]
        t = list(range(1, len(means) + 1))
    if not t:
        return html.note("no per-t terms (bound_terms.csv is missing)", "warning")
    chart = line_chart(
        [Series("L_t", t[1:], means[1:])],
        title="the bound's KL terms L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))",
        x_label="t (paper time)",
        y_label="mean nats",
    )
    facts = (
        f"decoder term L_0 = {fmt(means[0])} nats (t = 1), KL terms in all "
        f"{fmt(float(sum(means[1:])))} nats, prior term L_T = {fmt(result.get('prior_term_nats'))}"
        " nats (zero for a perfect x_T)"
    )
    return chart + html.note(facts)


def _bound_terms_csv(run: RunDir) -> tuple[list[float], list[float]]:
    path = run.path / "bound_terms.csv"
    if not path.is_file():
        return [], []
    t, means = [], []
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("term") != "L_T":
                    t.append(float(row["t"]))
                    means.append(float(row["mean_nats"]))
    except (OSError, KeyError, TypeError, ValueError) as err:
        run.notes.append(("problem", f"bound_terms.csv is unreadable ({err}); run evaluate again"))
        return [], []
    return t, means


def image_likelihood(b: dict[str, Any]) -> str:
    rows = [
        ["bits/dim (bound)", pm(b.get("bits_per_dim_bound"), b.get("stderr"))],
        ["prior term", b.get("prior")],
        ["decoder term", b.get("decoder")],
        ["KL terms", b.get("kl")],
    ]
    facts = (
        f"{fmt(b.get('split'))} split, {fmt(b.get('n_images'))} images, {fmt(b.get('levels'))} "
        f"levels, T = {fmt(b.get('T'))}, {fmt(b.get('seconds'))} s"
    )
    return html.table(["quantity", "bits/dim"], rows, caption="likelihood") + html.note(facts)


#: Sample metrics with a noise floor: key -> name.
FLOOR_METRICS = {
    "energy_distance": "energy distance",
    "mmd": "RBF-MMD²",
    "frechet_distance": "Fréchet distance (digits classifier features)",
}


def sample_quality(metrics: Any) -> str:
    """Each sample metric beside its noise floor (the value two data draws give), and E_q[-log
    p] of the samples beside H(p)."""
    if not isinstance(metrics, dict):
        return ""
    rows = [
        [FLOOR_METRICS.get(k, k), v.get("value"), v.get("floor"), v.get("ratio")]
        for k, v in metrics.items()
        if isinstance(v, dict) and "floor" in v
    ]
    out = html.table(
        ["sample metric", "value", "noise floor", "ratio (1: like fresh data)"],
        rows,
        caption="samples against fresh data",
    )
    p = metrics.get("neg_log_p")
    if isinstance(p, dict):
        out += html.table(
            ["E_q[-log p] of samples", "true entropy H(p)", "excess", "off the support"],
            [[p.get("value"), p.get("entropy"), p.get("excess"), p.get("off_support")]],
            caption="exact log-density of the samples under the data's generator (nats)",
        )
    hist = metrics.get("class_histogram")
    if isinstance(hist, list):
        out += html.table(
            [f"class {k}" for k in range(len(hist))],
            [hist],
            caption="predicted classes of the samples (mode coverage)",
        )
    return out


# -- difflab bench-samplers -------------------------------------------------------------------

BENCH_COLUMNS = (
    ("sampler", "sampler"),
    ("steps", "K"),
    ("nfe", "NFE"),
    ("wall_s", "wall s"),
    ("energy_ratio", "energy / floor"),
    ("mmd_ratio", "MMD / floor"),
    ("neg_log_p", "E_q[-log p]"),
    ("true_entropy", "H(p)"),
)


def render_bench(run: RunDir) -> str | None:
    result = run.read_json("bench_samplers.json", command=run.command("bench-samplers"))
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        return None
    rows = [r for r in result["rows"] if isinstance(r, dict)]
    columns = [(k, name) for k, name in BENCH_COLUMNS if any(k in r for r in rows)]
    best = min(
        (r.get("energy_ratio") for r in rows if _finite(r.get("energy_ratio"))), default=None
    )
    body = []
    for r in rows:
        cells = [r.get(k) for k, _ in columns]
        if best is not None and r.get("energy_ratio") == best:
            cells = [Raw(f'<span class="nondefault">{esc(fmt(c))}</span>') for c in cells]
        body.append(cells)
    facts = (
        f"T = {fmt(result.get('T'))}, spacing {fmt(result.get('spacing'))}, eta "
        f"{fmt(result.get('eta'))}, n = {fmt(result.get('n'))} per row, seed "
        f"{fmt(result.get('seed'))}, {fmt(result.get('floor_draws'))} floor draws; the best "
        "energy ratio is in bold"
    )
    out = html.table([name for _, name in columns], body, caption="every sampler at K steps")
    out += html.note(facts)
    if (run.path / "plots" / "bench_samplers.png").is_file():
        out += html.image_file(
            run.path / "plots" / "bench_samplers.png",
            "bench_samplers.png",
            caption="plots/bench_samplers.png: quality against NFE",
        )
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# -- difflab doctor ---------------------------------------------------------------------------


def render_doctor(run: RunDir) -> str | None:
    """doctor.json's findings; without it, the checks computed now, without the preview."""
    saved = run.read_json("doctor.json", command=run.command("doctor"))
    if isinstance(saved, dict) and isinstance(saved.get("findings"), list):
        run.stale("doctor.json", saved.get("step"), run.command("doctor"))
        out = findings_table(saved["findings"])
        out += html.note(f"from doctor.json (step {fmt(saved.get('step'))})")
    else:
        findings = live_findings(run)
        if findings is None:
            return None
        out = findings_table(findings)
        out += html.missing("the sample preview (raw vs EMA weights)", run.command("doctor"))
        out += html.note(
            "These checks were computed by the report now; difflab doctor adds "
            "the sample preview and saves doctor.json."
        )
    preview = run.path / "doctor" / "preview.png"
    if preview.is_file():
        out += html.image_file(preview, "doctor preview", caption="doctor/preview.png")
    return out


def live_findings(run: RunDir) -> list[dict[str, str]] | None:
    from difflab.app.doctor import diagnose

    try:
        return [vars(f) for f in diagnose(run.path, preview=False)]
    except (ValueError, OSError) as err:
        run.notes.append(("problem", f"the doctor's checks failed: {str(err).splitlines()[0]}"))
        return None


def findings_table(findings: list[Any]) -> Raw:
    rows = []
    for f in findings:
        if not isinstance(f, dict):
            continue
        level = str(f.get("level", ""))
        rows.append(
            [
                Raw(f'<span class="level-{esc(level)}">{esc(level)}</span>'),
                f.get("check", ""),
                f.get("message", ""),
                f.get("fix", ""),
            ]
        )
    return html.table(["level", "check", "finding", "what to change"], rows)
