"""Configuration loading and validation (golden/spec/config.py)."""

import pytest
import yaml

from bfimna.golden.spec.config import ConfigError, config_from_dict, load_config

from conftest import HW_CONFIGS

GOOD = {"name": "t", "ap": {"rows": 8, "cols": 4, "dims": 2, "counter_bits": 16}}


def _with(section, key, value):
    d = {"name": GOOD["name"], "ap": dict(GOOD["ap"])}
    if section is None:
        d[key] = value
    else:
        d[section][key] = value
    return d


def _write(tmp_path, data, text=None):
    p = tmp_path / "cfg.yaml"
    p.write_text(text if text is not None else yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("path", HW_CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.ap.rows >= 1 and cfg.ap.cols >= 2


def test_default_fills_in_counter_bits():
    d = _with("ap", "rows", 8)
    del d["ap"]["counter_bits"]
    assert config_from_dict(d).ap.counter_bits == 32


@pytest.mark.parametrize("field,value,needle", [
    ("rows", -3, "ap.rows: must be in [1, 4096], got -3"),
    ("rows", 0, "ap.rows: must be in [1, 4096], got 0"),
    ("rows", 5000, "ap.rows: must be in [1, 4096], got 5000"),
    ("cols", 0, "ap.cols: must be in [2, 256], got 0"),
    ("cols", 1, "ap.cols: must be in [2, 256], got 1"),
    ("counter_bits", 4, "ap.counter_bits: must be in [8, 64], got 4"),
    ("rows", "64", "ap.rows: expected an integer in [1, 4096], got str '64'"),
    ("rows", 8.0, "ap.rows: expected an integer in [1, 4096], got float 8.0"),
    ("rows", True, "ap.rows: expected an integer in [1, 4096], got bool True"),
    ("dims", 3, "ap.dims: must be one of 1, 2, got 3"),
    ("dims", True, "ap.dims: must be one of 1, 2, got True"),
    ("dims", "2d", "ap.dims: must be one of 1, 2, got '2d'"),
])
def test_bad_field_names_field_and_range(tmp_path, field, value, needle):
    p = _write(tmp_path, _with("ap", field, value))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert needle in str(exc.value)
    assert str(p) in str(exc.value)


def test_unknown_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"ap\.row: unknown field \(known here: rows, cols"):
        load_config(_write(tmp_path, _with("ap", "row", 8)))
    with pytest.raises(ConfigError, match=r"^.*: tiles: unknown field"):
        load_config(_write(tmp_path, _with(None, "tiles", 2)))


def test_missing_fields_and_sections(tmp_path):
    d = _with("ap", "rows", 8)
    del d["ap"]["cols"]
    with pytest.raises(ConfigError, match=r"ap\.cols: missing field"):
        load_config(_write(tmp_path, d))
    with pytest.raises(ConfigError, match=r"ap: missing section"):
        load_config(_write(tmp_path, {"name": "x"}))
    with pytest.raises(ConfigError, match=r"name: missing field"):
        load_config(_write(tmp_path, {"ap": GOOD["ap"]}))


def test_bad_name_and_shapes(tmp_path):
    with pytest.raises(ConfigError, match=r"name: expected a non-empty name"):
        load_config(_write(tmp_path, _with(None, "name", "has space")))
    with pytest.raises(ConfigError, match=r"ap: expected a mapping, got list"):
        load_config(_write(tmp_path, _with(None, "ap", [1, 2])))
    with pytest.raises(ConfigError, match=r"configuration: expected a mapping, got NoneType"):
        load_config(_write(tmp_path, None, text=""))
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_config(_write(tmp_path, None, text="ap: [rows: 1"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_hash_is_canonical_and_sensitive():
    a = config_from_dict(GOOD)
    reordered = {"ap": {k: GOOD["ap"][k] for k in reversed(GOOD["ap"])}, "name": "t"}
    assert config_from_dict(reordered).hash == a.hash
    assert config_from_dict(_with("ap", "rows", 9)).hash != a.hash


def test_ctrl_section_defaults_and_checks(tmp_path):
    assert config_from_dict(GOOD).ctrl.queue_depth == 16
    with pytest.raises(ConfigError, match=r"ctrl\.queue_depth: must be in \[2, 1024\], got 1"):
        load_config(_write(tmp_path, {**GOOD, "ctrl": {"queue_depth": 1}}))
    with pytest.raises(ConfigError, match=r"ctrl\.depth: unknown field"):
        load_config(_write(tmp_path, {**GOOD, "ctrl": {"depth": 4}}))
