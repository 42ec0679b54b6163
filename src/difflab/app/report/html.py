"""HTML building blocks of the report: escaping and number formatting, tables, embedded PNG
images and WAV audio (base64 data URLs), notes, "missing" boxes and the page shell.

The page is self-contained: its Content-Security-Policy allows data: URLs for images and media
and inline styles, and nothing else, so the browser makes no request beyond the file itself.
There is no script.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

#: No network, no script: only embedded images/media and the inline stylesheet.
CSP = "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'"


class Raw(str):
    """HTML that is inserted as it is (everything else is escaped)."""


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A value for a table cell: numbers to ``digits`` significant digits, None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    return str(value)


def pm(value: Any, se: Any, digits: int = 4) -> str:
    """``value ± se``, or just the value when there is no standard error."""
    if se is None:
        return fmt(value, digits)
    return f"{fmt(value, digits)} ± {fmt(se, 2)}"


def cell(value: Any) -> str:
    return value if isinstance(value, Raw) else esc(fmt(value))


def table(
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    *,
    cls: str = "",
    caption: str | None = None,
    table_id: str | None = None,
) -> Raw:
    """A table; cells that are :class:`Raw` go in as HTML, others are formatted and escaped."""
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{esc(cls)}"' if cls else "")
    head = "".join(f"<th>{cell(h)}</th>" for h in headers)
    head = f"<thead><tr>{head}</tr></thead>" if any(str(h) for h in headers) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Raw(f"<table{attrs}>{cap}{head}<tbody>{body}</tbody></table>")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, decoding it fully: a ValueError if it is not a valid PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"it is {image.format}, not PNG")
            image.load()
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(str(err).splitlines()[0] if str(err) else "undecodable") from None


def image(data: bytes, alt: str, *, caption: str | None = None, pixelated: bool = False) -> Raw:
    """A PNG embedded as a data URL, with its size so the page lays out before decoding."""
    width, height = png_size(data)
    src = "data:image/png;base64," + base64.b64encode(data).decode()
    style = ' class="pixelated"' if pixelated else ""
    img = f'<img src="{src}" alt="{esc(alt)}" width="{width}" height="{height}"{style}>'
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Raw(f'<figure class="image">{img}{cap}</figure>')


def image_file(path: Path, alt: str, *, caption: str | None = None) -> Raw:
    """A PNG file embedded, or a note naming the file when it is not a readable PNG."""
    try:
        return image(path.read_bytes(), alt, caption=caption)
    except (OSError, ValueError) as err:
        return note(f"{path.name} could not be shown ({err}); write it again", "problem")


def audio_file(path: Path, *, label: str) -> Raw:
    """A WAV file embedded in an ``<audio>`` player, with its duration and rate."""
    import wave

    data = path.read_bytes()
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, frames, channels = w.getframerate(), w.getnframes(), w.getnchannels()
    except (wave.Error, EOFError) as err:
        return note(f"{path.name} is not a readable WAV file ({err})", "problem")
    src = "data:audio/wav;base64," + base64.b64encode(data).decode()
    info = f"{frames / rate:.2f} s, {rate} Hz, {channels} channel{'s' if channels > 1 else ''}"
    return Raw(
        f'<figure class="audio"><figcaption>{esc(label)} <span class="dim">({info})</span>'
        f'</figcaption><audio controls preload="metadata" src="{src}"></audio></figure>'
    )


def note(text: str, level: str = "info") -> Raw:
    """A visible remark: ``level`` is info, warning or problem."""
    return Raw(f'<p class="note {esc(level)}">{esc(text)}</p>')


def missing(what: str, command: str | None) -> Raw:
    """What a run has not computed yet, and the command that computes it."""
    how = f" Run <code>{esc(command)}</code>." if command else ""
    return Raw(f'<div class="missing">Not computed yet: {esc(what)}.{how}</div>')


def details(summary: str, body: str, *, open_: bool = False) -> Raw:
    flag = " open" if open_ else ""
    return Raw(f"<details{flag}><summary>{esc(summary)}</summary>{body}</details>")


def section(section_id: str, title: str, body: str, *, level: int = 3) -> Raw:
    return Raw(f'<section id="{esc(section_id)}"><h{level}>{esc(title)}</h{level}>{body}</section>')


STYLE = """
:root { --fg: #1d2327; --dim: #5f6b73; --line: #d9dee2; --bg: #ffffff; --band: #f4f6f8;
  --ok: #1e7b34; --warn: #9a6700; --bad: #b42318; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { padding: 14px 24px; background: var(--band); border-bottom: 1px solid var(--line); }
header.top h1 { margin: 0 0 4px; font-size: 20px; }
nav { font-size: 13px; } nav a { margin-right: 12px; }
main { padding: 8px 24px 40px; max-width: 1400px; }
a { color: var(--accent); }
h2 { margin: 28px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); font-size: 18px; }
h3 { margin: 22px 0 8px; font-size: 15px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
caption { text-align: left; color: var(--dim); padding-bottom: 4px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
tr.best td.num-best, td.best { font-weight: 700; }
.kv td:first-child { color: var(--dim); white-space: nowrap; }
.nondefault { font-weight: 700; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0; }
figure.image img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.image img.pixelated { image-rendering: pixelated; }
figure figcaption { font-size: 12px; color: var(--dim); margin: 2px 0; }
figure.chart { width: 420px; max-width: 100%; }
figure.chart svg { width: 100%; height: auto; font-size: 10px; fill: var(--dim); }
figure.chart .plot-area { fill: #fbfcfd; stroke: var(--line); }
figure.chart line { stroke: #e7eaed; stroke-width: 1; }
figure.chart .axis-label { font-size: 11px; fill: var(--fg); }
figure.chart .legend { font-size: 10px; fill: var(--fg); }
.note { color: var(--dim); margin: 4px 0; }
.note.warning { color: var(--warn); } .note.problem { color: var(--bad); }
.missing { border: 1px dashed var(--line); background: var(--band); padding: 8px 12px;
  margin: 6px 0; color: var(--dim); }
.level-ok { color: var(--ok); font-weight: 600; }
.level-warning { color: var(--warn); font-weight: 600; }
.level-problem { color: var(--bad); font-weight: 600; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
pre { background: var(--band); padding: 8px; overflow-x: auto; max-height: 420px; }
.dim { color: var(--dim); }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
"""


def page(title: str, subtitle: str, nav: str, body: str) -> str:
    """The whole document."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f'<body><header class="top"><h1>{esc(title)}</h1>'
        f'<div class="dim">{esc(subtitle)}</div><nav>{nav}</nav></header>'
        f"<main>{body}</main></body></html>\n"
    )
