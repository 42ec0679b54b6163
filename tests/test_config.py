"""Config: defaults, TOML and JSON round trips, --set overrides, and one-line errors."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from difflab.app.config import Config
from difflab.app.config_files import (
    apply_overrides,
    config_from_dict,
    config_from_json,
    load_config,
    parse_override,
)


def test_defaults_validate_and_round_trip_json(tmp_path):
    cfg = Config()
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert config_from_json(path) == cfg


def test_default_toml_matches_the_defaults():
    """configs/default.toml documents every key; it must equal the built-in defaults."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / "default.toml"
    assert load_config(path) == Config()
    # every key is written out (or commented out, for those whose default is "omitted")
    text = path.read_text()
    parts = re.split(r"^\[(\w+)\][^\n]*$", text, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    for name, keys in Config().to_dict().items():
        missing = [k for k in keys if not re.search(rf"^#?\s*{k} =", sections[name], re.M)]
        assert not missing, f"configs/default.toml [{name}] does not name {missing}"


def test_toml_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\nname = "moons"\n[train]\nsteps = 10\nlr = 1e-3\n')
    cfg = load_config(path, ["train.steps=20", "model.activation=relu", "sample.steps=none"])
    assert cfg.data.name == "moons"
    assert cfg.train.steps == 20 and cfg.train.lr == 1e-3
    assert cfg.model.activation == "relu"
    assert cfg.sample.steps is None


def test_override_values_are_parsed_as_toml():
    assert parse_override("train.lr=3e-4") == ("train", "lr", 3e-4)
    assert parse_override("sample.clip_x0=true") == ("sample", "clip_x0", True)
    assert parse_override("data.name=moons") == ("data", "name", "moons")
    assert parse_override('data.path="a b.npy"') == ("data", "path", "a b.npy")


def test_int_accepts_integral_float_and_float_accepts_int():
    cfg = config_from_dict({"train": {"steps": 10.0, "lr": 1}})
    assert cfg.train.steps == 10 and isinstance(cfg.train.steps, int)
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"trian": {}}, "did you mean 'train'"),
        ({"train": {"step": 3}}, "did you mean 'steps'"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"train": {"steps": -1}}, "train.steps"),
        ({"train": {"lr": 0}}, "train.lr"),
        ({"train": {"steps": 1.5}}, "an integer"),
        ({"train": {"clip_x0": True}}, "unknown key train.clip_x0"),
        ({"schedule": {"name": "cosin"}}, "'cosine'"),
        ({"schedule": {"T": 0}}, "schedule.T"),
        ({"schedule": {"beta_end": 1.5}}, "(0, 1)"),
        ({"model": {"name": "transformer"}}, "'mlp'"),
        ({"data": {"name": "swissroll"}}, "'swiss_roll'"),
        ({"data": {"name": "file"}}, "data.path"),
        ({"sample": {"steps": 0}}, "sample.steps"),
        ({"train": 3}, "[train] must be a table"),
        ({"train": {"lr": float("nan")}}, "finite"),
        ({"sample": {"clip_x0": 1}}, "true or false"),
        ({"sample": {"sampler": "plms"}}, "'dpmpp2m'"),
        ({"sample": {"spacing": "uniform"}}, "'quadratic'"),
        ({"sample": {"eta": -0.5}}, "sample.eta"),
        ({"sample": {"eta": 2}}, "[0, 1]"),
        ({"schedule": {"T": 100}, "sample": {"steps": 101}}, "at most schedule.T = 100"),
    ],
)
def test_bad_values_give_one_line_errors(raw, needle):
    with pytest.raises(ValueError) as err:
        config_from_dict(raw)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_bad_override_syntax():
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["steps=3"])


def test_missing_and_invalid_toml(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.steps = 3  # type: ignore[misc]


_values = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
)


@settings(max_examples=150, deadline=None)
@given(
    section=st.sampled_from([f.name for f in dataclasses.fields(Config)]),
    data=st.data(),
    value=_values,
)
def test_any_value_is_accepted_or_rejected_with_valueerror(section, data, value):
    """Whatever a user writes, the result is a valid Config or a one-line ValueError."""
    keys = [f.name for f in dataclasses.fields(getattr(Config(), section))]
    key = data.draw(st.sampled_from(keys))
    try:
        cfg = config_from_dict({section: {key: value}})
    except ValueError as err:
        assert "\n" not in str(err)
    else:
        assert getattr(getattr(cfg, section), key) is not None or value is None
