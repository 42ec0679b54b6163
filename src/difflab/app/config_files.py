"""Reading and writing configs: TOML files, ``--set section.key=value`` overrides and a run's
``config.json``, with one-line errors that name the key and suggest the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from difflab.app import registry
from difflab.app.config import Config, DataConfig, LossConfig

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
    """The defaults, updated by a TOML file (if any), then by ``--set`` overrides.

    A relative ``data.path`` is made absolute: from the TOML file's folder when the file sets
    it, from the current folder when ``--set`` does, so the run finds its data from anywhere.
    Keys the user sets in neither follow the loss and the data (:func:`follow_choices`).
    """
    raw = read_toml(path) if path is not None else {}
    if path is not None:
        raw = with_absolute_data_path(raw, Path(path).parent)
    merged = with_absolute_data_path(apply_overrides(raw, overrides or []), Path.cwd())
    return config_from_dict(follow_choices(merged))


def with_absolute_data_path(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of ``raw`` whose ``data.path``, if a relative string, is joined to ``base``."""
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not data["path"]:
        return raw
    expanded = os.path.expanduser(data["path"])
    absolute = os.path.abspath(os.path.join(base, expanded))
    return {**raw, "data": {**data, "path": absolute}}


def _name(raw: dict[str, Any], section: str, default: str) -> Any:
    table = raw.get(section, {})
    return table.get("name", default) if isinstance(table, dict) else None


def follow_choices(raw: dict[str, Any]) -> dict[str, Any]:
    """Fill the keys the user did not set that follow from ``loss.name`` and ``data.name``
    (``registry.following_defaults``): ``--set loss.name=ncsn`` alone trains the score
    network and samples with annealed Langevin; ``data.name = "digits"`` alone gets the
    U-Net. Keys the user set are never changed (a wrong combination is then an error)."""
    loss, data = _name(raw, "loss", LossConfig.name), _name(raw, "data", DataConfig.name)
    if not (isinstance(loss, str) and isinstance(data, str)):
        return raw  # a malformed section: validation reports it
    if loss not in registry.LOSSES or data not in registry.DATASETS:
        return raw  # an unknown name: validation reports it
    merged = {name: dict(v) if isinstance(v, dict) else v for name, v in raw.items()}
    for key, value in registry.following_defaults(loss, data).items():
        section, name = key.split(".")
        table = merged.setdefault(section, {})
        if isinstance(table, dict):
            table.setdefault(name, value)
    return merged


def config_from_json(path: str | Path) -> Config:
    """Read a run's ``config.json``."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read run config {str(path)!r}: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"run config {str(path)!r} holds a JSON {type(raw).__name__}, not an object of "
            "config sections; restore the config.json the run was trained with"
        )
    return config_from_dict(raw)
