"""Write docs/images/report.png, the README's picture of a report, from a real run.

Trains a swiss-roll run with the default config (``--steps`` shortens it), computes what the
report shows (plot, evaluate, bench-samplers, doctor), writes its report and photographs the
top of the page in headless Chromium (the browser test's flags). ``--run DIR`` reuses a run
that has them.

    .venv/bin/python docs/make_report_screenshot.py --work runs/screenshot
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def difflab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "difflab", *args], check=True)


def build_run(run: Path, steps: int) -> None:
    difflab("train", "--out", str(run), "--set", f"train.steps={steps}", "--quiet")
    difflab("plot", str(run))
    difflab("evaluate", str(run), "--n", "2000")
    difflab("bench-samplers", str(run), "--samplers", "ddim,dpmpp2m,ddpm", "--n", "1000")
    difflab("doctor", str(run))


def screenshot(page_path: Path, out: Path, *, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    from difflab.app.report.chromium import CHROMIUM_FLAGS, chromium_executable

    executable = chromium_executable()
    if executable is None:
        raise SystemExit("no Chromium: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/screenshot")
    parser.add_argument("--run", help="an existing run with plot/evaluate/bench/doctor results")
    parser.add_argument("--steps", type=int, default=8000, help="train.steps (default 8000)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "report.png"))
    args = parser.parse_args()
    if args.run:
        run = Path(args.run)
    else:
        run = Path(args.work) / "roll"
        build_run(run, args.steps)
    page = Path(args.work) / "report.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    difflab("report", str(run), "--out", str(page))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    screenshot(page, Path(args.out), width=1280, height=1100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
