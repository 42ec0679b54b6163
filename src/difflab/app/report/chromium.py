"""Headless Chromium for the report: where it is and the flags it runs with.

The browser test (tests/test_report_browser.py) and the README's screenshot
(docs/make_report_screenshot.py) open reports in Debian's ``chromium`` driven by Playwright,
as root on a machine without a network; both take the executable and flags from here.
"""

from __future__ import annotations

import shutil

#: No sandbox (root), GPU, QUIC, background services or first-run checks: each of the last
#: would try to reach the network.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_executable() -> str | None:
    """The path of ``chromium`` (or ``chromium-browser``) on PATH, None if neither is."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
