"""The registry is the one place a name is written: every row is consistent with the config
and its function, and a sampler added as one row is usable everywhere (config, CLI help,
`difflab sample`, the sampler benchmark's plan)."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from difflab.app import registry
from difflab.app.bench import default_samplers
from difflab.app.cli import build_parser, main
from difflab.app.config import Config
from difflab.app.config_files import load_config
from difflab.samplers import ddim_sample

SECTIONS = {
    "sample.sampler": "sample",
    "loss.name": "loss",
    "model.name": "model",
    "data.name": "data",
}


def _section_keys(section: str) -> set[str]:
    return {f.name for f in dataclasses.fields(type(getattr(Config(), section)))}


@pytest.mark.parametrize("table_key", list(registry.TABLES))
def test_every_row_names_real_config_keys_and_function_parameters(table_key):
    section = SECTIONS[table_key]
    keys = _section_keys(section)
    for name, row in registry.TABLES[table_key].items():
        assert set(row.keys) <= keys, (name, set(row.keys) - keys)
        assert set(getattr(row, "uses", ())) <= set(registry.INGREDIENT_KEYS), name
        fn = getattr(row, "fn", None)
        if fn is None:
            continue
        params = set(inspect.signature(fn).parameters)
        passed = set(row.keys) | set(getattr(row, "uses", ())) | set(getattr(row, "fixed", {}))
        assert passed <= params, (name, passed - params)
    for key in set().union(*(registry.keys_read(table_key, n) for n in registry.TABLES[table_key])):
        assert key.split(".")[1] in _section_keys(key.split(".")[0]), key


def test_unknown_names_suggest_the_closest(capsys):
    with pytest.raises(ValueError, match="unknown sample.sampler 'dpmpp2'; did you mean 'dpmpp2m'"):
        load_config(None, ["sample.sampler=dpmpp2"])
    with pytest.raises(ValueError, match="did you mean 'sohl_dickstein'"):
        load_config(None, ["loss.name=sohl_dikstein"])


def test_a_sampler_added_as_one_row_works_everywhere(monkeypatch, tiny_run, tmp_path, capsys):
    """DDIM with eta = 1 registered under a new name: nothing but the row is added."""

    def ancestral_ddim(denoiser, shape, **kwargs):
        return ddim_sample(denoiser, shape, eta=1.0, **kwargs)

    row = registry.SamplerEntry(ancestral_ddim, registry.DIFFUSION, "DDIM with eta = 1")
    monkeypatch.setitem(registry.SAMPLERS, "ddim1", row)
    assert load_config(None, ["sample.sampler=ddim1"]).sample.sampler == "ddim1"
    assert "ddim1" in build_parser()._subparsers._group_actions[0].choices["sample"].format_help()
    assert "ddim1" in default_samplers()
    out = tmp_path / "x.npy"
    args = ["sample", str(tiny_run), "--sampler", "ddim1", "--steps", "5", "--n", "16"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert np.load(out).shape == (16, 2)
    assert main([*args, "--eta", "0.5", "--out", str(out), "--quiet"]) == 2  # reads no eta
    assert "--eta applies to the ddim sampler only" in capsys.readouterr().err
