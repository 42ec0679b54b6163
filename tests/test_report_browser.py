"""The report in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright)
opens the file from disk and we check that nothing went wrong: no console message of level
error or warning and no script error, every image decoded (naturalWidth > 0, at the size the
parser read), every audio clip decoded to its duration, every table and section the parser
found is in the DOM, no request but the file itself, and a screenshot that is not blank.

Skips with a one-line reason where Chromium or Playwright is missing; ``.ci/run`` installs
Chromium and sets DIFFLAB_REQUIRE_BROWSER=1, which turns the skip into a failure.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

from difflab.app.report import write_report
from difflab.app.report.chromium import CHROMIUM_FLAGS, chromium_executable
from report_page import parse, write_wav

DOM = """() => ({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight})),
  audio: Array.from(document.querySelectorAll('audio')).map(a => ({duration: a.duration,
    error: a.error ? a.error.code : null})),
  tables: Array.from(document.querySelectorAll('table')).map(t => ({id: t.id,
    rows: t.rows.length, shown: t.getBoundingClientRect().height > 0})),
  sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
  charts: document.querySelectorAll('figure.chart svg polyline, figure.chart svg circle').length,
})"""


def _unavailable(reason: str) -> None:
    if os.environ.get("DIFFLAB_REQUIRE_BROWSER"):
        pytest.fail(f"DIFFLAB_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        _unavailable("no Chromium on this machine (apt-get install chromium; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS))
        yield launched
        launched.close()


def open_page(browser, path):
    """Load ``path``; the DOM facts, the console messages, script errors, requests and a
    screenshot (PNG bytes)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console, errors, requests = [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_function(
        "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)",
        timeout=15_000,
    )
    facts = page.evaluate(DOM)
    shot = page.screenshot(full_page=False)
    page.close()
    return facts, console, errors, requests, shot


def check_in_browser(browser, path) -> dict:
    facts, console, errors, requests, shot = open_page(browser, path)
    parsed = parse(path.read_text())
    assert [m for m in console if m[0] in ("error", "warning")] == []
    assert errors == []
    outside = [u for u in requests if not u.startswith("data:") and u != path.resolve().as_uri()]
    assert outside == []
    assert len(facts["images"]) == len(parsed.images) > 0
    for shown, tag in zip(facts["images"], parsed.images):
        assert shown["complete"] and shown["width"] > 0, shown["alt"]
        assert (shown["width"], shown["height"]) == (int(tag["width"]), int(tag["height"]))
    assert len(facts["tables"]) == len(parsed.tables)
    assert all(t["shown"] and t["rows"] >= 1 for t in facts["tables"])
    assert facts["sections"] == parsed.sections
    assert facts["charts"] > 0
    for clip in facts["audio"]:
        assert clip["error"] is None and clip["duration"] > 0
    assert not blank(shot)
    return facts


def blank(png: bytes) -> bool:
    """A screenshot with (almost) one colour: more than 99% of its pixels the most common."""
    from PIL import Image

    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    _, counts = np.unique(gray, return_counts=True)
    return counts.max() > 0.99 * gray.size or gray.std() < 2


def test_blank_detects_blank_pages():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    assert blank(buffer.getvalue())


def test_run_report_in_chromium(browser, complete_run, tmp_path):
    out = write_report([complete_run], tmp_path / "run.html")
    facts = check_in_browser(browser, out)
    assert "run1-evaluate" in facts["sections"] and "run1-bench" in facts["sections"]


def test_comparison_with_images_and_audio_in_chromium(
    browser, complete_run, image_run, tiny_run, tmp_path
):
    speech = shutil.copytree(tiny_run, tmp_path / "speech")
    write_wav(speech / "vocode" / "input_0.wav", seconds=0.25)
    write_wav(speech / "vocode" / "vocoded_0.wav", seconds=0.25)
    out = write_report([complete_run, image_run, speech], tmp_path / "compare.html")
    facts = check_in_browser(browser, out)
    assert facts["sections"][0] == "comparison" and "run2-images" in facts["sections"]
    assert [round(a["duration"], 2) for a in facts["audio"]] == [0.25, 0.25]
