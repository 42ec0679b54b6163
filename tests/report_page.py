"""What the report tests read off a page: a parse of the HTML with the standard library's parser
(ids, links, images, audio, tables, sections, notes, missing boxes, text), and the run
directories the report tests share."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from conftest import tiny_args
from difflab.app.cli import main


@dataclass
class Page:
    ids: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)
    audio: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)  # {"id", "rows", "headers", "cells"}
    sections: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scripts: int = 0
    csp: str | None = None
    text: str = ""
    external: list[str] = field(default_factory=list)  # src/href not data: or #


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._capture: list[list] = []  # stacks of (kind, buffer)
        self._table: dict | None = None
        self._cell: list[str] | None = None
        self._texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        p = self.page
        if "id" in a:
            p.ids.append(a["id"])
        for key in ("src", "href"):
            if key in a and not (a[key].startswith("data:") or a[key].startswith("#")):
                p.external.append(a[key])
        if tag == "a" and "href" in a:
            p.links.append(a["href"])
        elif tag == "img":
            p.images.append(a)
        elif tag == "audio":
            p.audio.append(a)
        elif tag == "script":
            p.scripts += 1
        elif tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            p.csp = a.get("content")
        elif tag == "section":
            p.sections.append(a.get("id", ""))
        elif tag == "table":
            self._table = {"id": a.get("id"), "rows": 0, "headers": [], "cells": []}
        elif tag == "tr" and self._table is not None:
            self._table["rows"] += 1
        elif tag in ("td", "th"):
            self._cell = []
        classes = a.get("class", "").split()
        if tag == "div" and "missing" in classes:
            self._capture.append(["missing", []])
        elif tag == "p" and "note" in classes:
            self._capture.append(["note", []])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            self._table["headers" if tag == "th" else "cells"].append(text)
            self._cell = None
        elif tag == "table" and self._table is not None:
            self.page.tables.append(self._table)
            self._table = None
        elif tag in ("div", "p") and self._capture:
            kind, buffer = self._capture.pop()
            target = self.page.missing if kind == "missing" else self.page.notes
            target.append("".join(buffer).strip())

    def handle_data(self, data):
        self._texts.append(data)
        if self._cell is not None:
            self._cell.append(data)
        for _, buffer in self._capture:
            buffer.append(data)


def parse(html: str) -> Page:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    parser.page.text = " ".join(parser._texts)
    return parser.page


def decoded_png_size(src: str) -> tuple[int, int]:
    from PIL import Image

    assert src.startswith("data:image/png;base64,"), src[:40]
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
        image.load()
        return image.size


def write_wav(path: Path, seconds: float = 0.25, rate: int = 8000) -> None:
    """A short 440 Hz tone as 16-bit mono WAV (for the audio section)."""
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


#: Overrides that keep evaluate fast on the tiny run.
FAST_EVALUATE = (
    "evaluate.n=200",
    "evaluate.n_samples=200",
    "evaluate.ode_rtol=0.001",
    "evaluate.ode_atol=0.001",
)


def complete_run(out: Path) -> Path:
    """A tiny vector run with every artifact: plot, evaluate, bench-samplers, doctor."""
    assert main(["train", *tiny_args(*FAST_EVALUATE), "--out", str(out), "--quiet"]) == 0
    assert main(["plot", str(out), "--n", "200"]) == 0
    assert main(["evaluate", str(out)]) == 0
    bench = ["--samplers", "ddim,dpmpp2m", "--steps", "5,10", "--n", "200", "--floor-draws", "2"]
    assert main(["bench-samplers", str(out), *bench]) == 0
    assert main(["doctor", str(out), "--n", "100"]) in (0, 1)  # a tiny run may have findings
    return out


def image_run(out: Path) -> Path:
    """A tiny digits run with its image grids (plot) and samples.npy."""
    config = Path(__file__).resolve().parents[1] / "configs" / "digits.toml"
    sets = [
        "train.steps=4",
        "train.batch_size=8",
        "schedule.T=10",
        "model.channels=8",
        "train.log_every=2",
    ]
    cmd = ["train", str(config), "--out", str(out), "--quiet"]
    for item in sets:
        cmd += ["--set", item]
    assert main(cmd) == 0
    assert main(["plot", str(out), "--n", "16"]) == 0
    assert main(["sample", str(out), "--n", "16", "--quiet"]) == 0
    return out
