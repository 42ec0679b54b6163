"""Reading and writing configs: TOML files, ``--set section.key=value`` overrides and a run's
``config.json``, with one-line errors that name the key and suggest the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from difflab.app.config import Config

#: Section name -> its dataclass.
SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type annotation ``hint`` (int, float, str, bool, X | None)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise ValueError(f"{key} = {value!r} is invalid: it must be a finite number")
    elif hint is str and isinstance(value, str):
        return value
    elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(hint)[0]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    name = getattr(hint, "__name__", str(hint))
    raise ValueError(
        f"{key} = {value!r} has the wrong type: it must be {_TYPE_WORDS.get(name, name)}"
    )


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "tuple": "a list, e.g. [1, 2]",
}


def _section_from_dict(name: str, values: Any) -> Any:
    cls = SECTIONS[name]
    if not isinstance(values, dict):
        raise ValueError(f"[{name}] must be a table of keys, got {values!r}")
    hints = typing.get_type_hints(cls)
    keys = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in keys:
            raise ValueError(
                f"unknown key {name}.{key}{_did_you_mean(key, keys)} "
                f"(valid keys: {', '.join(keys)})"
            )
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    return cls(**kwargs)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from nested dicts; missing keys take their defaults."""
    sections = {}
    for name, values in raw.items():
        if name not in SECTIONS:
            raise ValueError(
                f"unknown config section [{name}]{_did_you_mean(name, list(SECTIONS))} "
                f"(valid sections: {', '.join(SECTIONS)})"
            )
        sections[name] = values
    return Config(**{name: _section_from_dict(name, vals) for name, vals in sections.items()})


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML (numbers, true/false, "strings"),
    falling back to a bare string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ValueError(f"--set {text!r} must look like section.key=value, e.g. train.steps=2000")
    lhs, raw_value = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw_value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value.strip()
    return section, key, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``section.key=value`` applied."""
    merged = {name: dict(v) if isinstance(v, dict) else v for name, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        table = merged.setdefault(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"[{section}] must be a table of keys, got {table!r}")
        table[key] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into nested dicts, with one-line errors for a missing/bad file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {err}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The defaults, updated by a TOML file (if any), then by ``--set`` overrides."""
    raw = read_toml(path) if path is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or []))


def config_from_json(path: str | Path) -> Config:
    """Read a run's ``config.json``."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read run config {str(path)!r}: {err}") from None
    return config_from_dict(raw)
