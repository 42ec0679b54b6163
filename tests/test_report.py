"""``difflab report``: the HTML checked with a parser (sections, links, images, tables, numbers),
and what bad input gets. The same pages in a real browser: tests/test_report_browser.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, tiny_args
from difflab.app.cli import main
from difflab.app.report import build_report, write_report
from difflab.app.report.html import fmt
from difflab.app.report.rundir import read_csv_log, read_jsonl_log
from difflab.app.report.sections import SECTIONS, training_time
from report_page import FAST_EVALUATE, decoded_png_size, parse, write_wav

FIXTURES = Path(__file__).parent / "fixtures"
#: Sections of a diffusion run on vector data (no image grids, no audio).
VECTOR_SECTIONS = ("training", "figures", "evaluate", "bench", "doctor", "config", "files")


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def check_page(html: str):
    """What every page must satisfy: self-contained (no script, no URL but data: and #, a
    CSP that allows nothing else), unique ids, every internal link resolves, every image a
    decodable PNG of the size its tag says."""
    page = parse(html)
    assert page.scripts == 0
    assert page.external == []
    assert page.csp is not None and "default-src 'none'" in page.csp
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    ids = set(page.ids)
    broken = [link for link in page.links if link.startswith("#") and link[1:] not in ids]
    assert broken == []
    for img in page.images:
        assert decoded_png_size(img["src"]) == (int(img["width"]), int(img["height"]))
    return page


def test_complete_run_shows_every_section_and_its_numbers(complete_run, tmp_path):
    out = tmp_path / "r.html"
    write_report([complete_run], out)
    page = check_page(out.read_text())
    for key in VECTOR_SECTIONS:
        assert f"run1-{key}" in page.sections
    assert "run1-images" not in page.sections and "run1-audio" not in page.sections
    assert page.missing == [], page.missing  # everything was computed
    # every figure of difflab plot and the bench plot are embedded, each once
    alts = [img["alt"] for img in page.images]
    for name in ("data", "forward", "reverse", "samples", "loss", "score", "trajectories"):
        assert alts.count(f"plots/{name}.png") == 1
    assert alts.count("bench_samplers.png") == 1 and alts.count("doctor preview") == 1
    # the numbers on the page are those of the run's files
    result = json.loads((complete_run / "evaluate.json").read_text())
    assert f"{fmt(result['nll_bound_nats'])} ± {fmt(result['nll_bound_se'], 2)}" in page.text
    assert f"{fmt(result['nll_ode_nats'])} ± {fmt(result['nll_ode_se'], 2)}" in page.text
    assert fmt(result["sample_metrics"]["energy_distance"]["ratio"]) in page.text
    bench = json.loads((complete_run / "bench_samplers.json").read_text())
    table = next(t for t in page.tables if t["headers"][:3] == ["sampler", "K", "NFE"])
    assert table["rows"] == 1 + len(bench["rows"])
    doctor = json.loads((complete_run / "doctor.json").read_text())
    assert all(f["message"] in page.text for f in doctor["findings"])
    # the training log: one point per logged row in the loss chart (4 rows for 30 steps)
    rows = (complete_run / "metrics.csv").read_text().splitlines()[1:]
    assert f"logged rows {len(rows)} (every 10 steps)" in " ".join(page.text.split())


def test_fresh_run_says_what_is_missing_and_how_to_compute_it(tiny_run):
    page = check_page(build_report([tiny_run]))
    commands = " ".join(page.missing)
    for command in ("plot", "evaluate", "bench-samplers", "doctor"):
        assert f"difflab {command} {tiny_run}" in commands
    # the doctor's checks are computed without the preview
    assert "checkpoint" in page.text and "is intact and matches config.json" in page.text


def test_run_without_checkpoint_reports_what_exists(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "early")
    shutil.rmtree(run / "checkpoints")
    page = check_page(build_report([run]))
    assert "no checkpoint yet" in page.text
    assert any("needs a checkpoint" in n for n in page.notes)
    assert "run1-training" in page.sections and "training loss" in page.text


def test_continuous_run_shows_the_ode_nll_without_a_bound(complete_run, tmp_path):
    """A continuous-time run (here EDM; its evaluate.json has no bound, as `difflab evaluate`
    writes it for continuous formulations): no bound row, no per-t chart, a note saying why,
    and an overview without the discrete schedule it does not read."""
    run = _copy(complete_run, tmp_path / "edm")
    config = json.loads((run / "config.json").read_text())
    config["loss"]["name"] = "edm"
    (run / "config.json").write_text(json.dumps(config))
    result = json.loads((run / "evaluate.json").read_text())
    for key in [k for k in result if k.startswith(("nll_bound", "kl_bound", "bound_"))]:
        del result[key]
    (run / "evaluate.json").write_text(json.dumps(result))
    (run / "bound_terms.csv").unlink()
    page = check_page(build_report([run]))
    text = " ".join(page.text.split())
    assert "edm, a continuous-time formulation" in text and "t drawn" not in text
    assert any(n.startswith("no bound: a continuous-time formulation") for n in page.notes)
    assert not any("bound_terms.csv" in n for n in page.notes)
    table = next(t for t in page.tables if t["headers"][:2] == ["quantity", "nats ± se"])
    assert "NLL, probability-flow ODE" in table["cells"]
    assert not any(c.startswith("NLL bound") for c in table["cells"])
    assert f"{fmt(result['nll_ode_nats'])} ± {fmt(result['nll_ode_se'], 2)}" in page.text


def test_truncated_metrics_are_shown_up_to_the_last_complete_row(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "cut")
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[: text.rindex("\n", 0, -1) + 12])  # mid-row
    page = check_page(build_report([run]))
    note = next(n for n in page.notes if "cut off mid-line" in n)
    assert "shown up to step 20" in note  # rows at 10, 20 complete; 30 cut


def test_log_readers_keep_exactly_the_complete_rows():
    full = "step,loss,lr\n10,0.5,0.1\n20,0.25,0.1\n30,0.125,0.1\n"
    table = read_csv_log(full, "metrics.csv")
    assert [r["step"] for r in table.rows] == [10, 20, 30] and table.note is None
    for cut in range(len("step,loss,lr\n10,0.5,0.1\n20,0.25,0.1\n") + 1, len(full) - 1):
        table = read_csv_log(full[:cut], "metrics.csv")
        assert [r["loss"] for r in table.rows] == [0.5, 0.25], cut
        assert "cut off mid-line" in table.note
    damaged = read_csv_log("step,loss\n10,0.5\n20,x\n30,0.1\n", "metrics.csv")
    assert [r["step"] for r in damaged.rows] == [10, 30] and "1 damaged row" in damaged.note
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (10, 20, 30)]
    jsonl = read_jsonl_log("\n".join(lines)[:-3], "metrics.jsonl")
    assert [r["step"] for r in jsonl.rows] == [10, 20] and "cut off mid-line" in jsonl.note


def test_training_time_adds_the_segments_of_resumed_runs():
    # elapsed_s restarts at each resume: 3 s, then 2 s more
    assert training_time([1.0, 2.0, 3.0, 0.5, 2.0]) == pytest.approx(5.0)
    assert training_time([float("nan"), 1.0]) == pytest.approx(1.0)


def test_damaged_files_become_notes_not_tracebacks(complete_run, tmp_path):
    run = _copy(complete_run, tmp_path / "damaged")
    (run / "evaluate.json").write_text('{"nll_bound_nats": 1.0,')  # cut off
    (run / "plots" / "forward.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (run / "doctor.json").write_text("[]")
    page = check_page(build_report([run]))
    assert any("evaluate.json is unreadable" in n for n in page.notes)
    assert any(f"difflab evaluate {run}" in m for m in page.missing)
    assert any("forward.png could not be shown" in n for n in page.notes)
    # doctor.json that is not a findings record: the checks are computed now
    assert any(f"difflab doctor {run}" in m for m in page.missing)


def test_stale_results_are_flagged(complete_run, tmp_path):
    run = _copy(complete_run, tmp_path / "stale")
    result = json.loads((run / "evaluate.json").read_text())
    result["step"] = 10
    (run / "evaluate.json").write_text(json.dumps(result))
    page = check_page(build_report([run]))
    assert any("evaluate.json was computed at step 10" in n for n in page.notes)


def test_comparison_table_and_config_diff(complete_run, tmp_path):
    other = tmp_path / "b" / "roll"
    sets = tiny_args(*FAST_EVALUATE, "train.lr=0.001")  # complete_run's config but the lr
    assert main(["train", *sets, "--out", str(other), "--quiet"]) == 0
    page = check_page(build_report([complete_run, other]))
    assert page.sections[:1] == ["comparison"]
    for key in VECTOR_SECTIONS:
        assert f"run1-{key}" in page.sections and f"run2-{key}" in page.sections
    diff = next(t for t in page.tables if t["id"] == "comparison-config")
    keys = diff["cells"][::3]  # key, run1, run2 per row
    assert keys == ["train.lr"]  # every other value is the same (both are the tiny budget)
    metrics = next(t for t in page.tables if t["id"] == "comparison-metrics")
    assert metrics["rows"] == 3  # header + two runs
    assert "NLL bound, nats" in metrics["headers"]
    # the second run has no evaluate: its cell is a dash with the command in its title
    html = build_report([complete_run, other])
    assert f'title="not computed: difflab evaluate {other}"' in html
    # two runs named "roll" are told apart by their parents
    labels = {complete_run.parent.name + "/roll", "b/roll"}
    assert all(label in page.text for label in labels)
    assert any("2 runs are named 'roll'" in n for n in page.notes)


def test_image_run_shows_grids(image_run):
    page = check_page(build_report([image_run]))
    assert "run1-images" in page.sections
    alts = [img["alt"] for img in page.images]
    assert "plots/data.png" in alts and "plots/samples.png" in alts and "samples.npy" in alts
    assert alts.count("plots/samples.png") == 1  # shown by the image section only
    grid = next(img for img in page.images if img["alt"] == "samples.npy")
    # 16 digits of 8 x 8 enlarged 4 times in 8 columns with 1 px gaps: 2 rows
    assert (int(grid["width"]), int(grid["height"])) == (8 * 33 + 1, 2 * 33 + 1)


def test_audio_files_get_players(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path / "speech")
    write_wav(run / "vocode" / "input_0.wav")
    write_wav(run / "vocode" / "vocoded_0.wav", seconds=0.5)
    page = check_page(build_report([run]))
    assert "run1-audio" in page.sections
    assert [a["src"][:22] for a in page.audio] == ["data:audio/wav;base64,"] * 2
    assert "0.25 s, 8000 Hz" in page.text and "0.50 s, 8000 Hz" in page.text


def test_old_run_directories_report(tmp_path):
    runs = [
        _copy(FIXTURES / name, tmp_path / name)
        for name in ("run_b9ffbd5", "ncsn_b9ffbd5", "digits_b9ffbd5")
    ]
    page = check_page(build_report(runs))
    assert "run3-images" in page.sections  # the digits run
    assert "run2-evaluate" not in page.sections  # NCSN has no likelihood
    assert "today's default" in page.text  # keys added since those runs were written


def test_every_section_row_names_a_command_or_none(tiny_run):
    from difflab.app.report.rundir import open_run

    run = open_run(tiny_run, "x", 0)
    for section in SECTIONS:
        command = section.command(run)
        assert command is None or command.startswith("difflab ")


def test_cli_report_and_bad_input(tiny_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    done = run_cli("report", str(tiny_run), "--out", str(out))  # the real command line, once
    assert done.returncode == 0 and f"wrote {out}" in done.stdout and out.is_file()
    before = out.read_bytes()
    cases = [
        ([str(tmp_path / "nope")], "does not exist"),
        ([str(tmp_path)], "not a difflab run directory"),
        ([str(tiny_run), str(tiny_run)], "is given twice"),
    ]
    for args, message in cases:
        assert main(["report", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("difflab: error:")
        assert out.read_bytes() == before  # the earlier report is untouched
    # without --out, a missing run is named as such (not as a missing RUN/report.html folder)
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "run directory" in capsys.readouterr().err
    for target, message in (
        (tmp_path / "missing" / "r.html", "does not exist; create it"),
        (tmp_path / "r.txt", "name it *.html"),
        (tmp_path, "is a directory"),
    ):
        assert main(["report", str(tiny_run), "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "r.txt").exists()


def test_train_report_flag(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *tiny_args(), "--out", str(out), "--quiet", "--report"]) == 0
    check_page((out / "report.html").read_text())
    assert main(["train", *tiny_args(), "--dry-run", "--report"]) == 2


def test_doctor_saves_its_findings(complete_run, capsys):
    record = json.loads((complete_run / "doctor.json").read_text())
    assert record["step"] == 30 and record["preview"] is True
    checks = [f["check"] for f in record["findings"]]
    assert checks[:3] == ["data", "schedule", "checkpoint"] and "samples" in checks
    assert all(set(f) == {"check", "level", "message", "fix"} for f in record["findings"])


@pytest.mark.parametrize(
    ("loss", "variance", "shown"),
    [
        ("simple", "large", "t drawn auto: lognormal"),
        ("hybrid", "learned_range", "t drawn auto: antithetic"),
        ("simple", "large", "t drawn uniform"),
    ],
)
def test_overview_says_what_auto_timesteps_draw(complete_run, tmp_path, loss, variance, shown):
    """loss.timesteps = "auto" (the default) is shown as what it resolves to for the loss."""
    run = _copy(complete_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["loss"]["name"], config["model"]["variance"] = loss, variance
    config["loss"]["timesteps"] = "uniform" if shown.endswith("uniform") else "auto"
    (run / "config.json").write_text(json.dumps(config))
    text = " ".join(check_page(build_report([run])).text.split())
    assert shown in text
