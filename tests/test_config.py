"""Configuration loading and validation (golden/spec/config.py)."""

import re

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


@pytest.mark.parametrize("path", HW_CONFIGS + sorted((HW_CONFIGS[0].parent / "scale").glob(
    "*.yaml")), ids=lambda p: p.stem)
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


# -- the common error form (golden/spec/schema.py): FILE: dotted.field: expected..., got ... --
@pytest.mark.parametrize("data, path, reason", [
    (_with("ap", "rows", 0), "ap.rows", "must be in [1, 4096], got 0"),
    (_with("ap", "colz", 4), "ap.colz",
     "unknown field (known here: rows, cols, dims, counter_bits)"),
    ({**GOOD, "tile": {"map_cols": 1}}, "tile.map_cols", "must be in [2, 256], got 1"),
    ({**GOOD, "tile": {"maps": "two"}}, "tile.maps",
     "expected an integer in [0, 7], got str 'two'"),
    ({**GOOD, "system": {"topology": "ring"}}, "system.topology",
     "must be one of 'bus', got 'ring'"),
    ({**GOOD, "system": {"tiles": 17}}, "system.tiles", "must be in [1, 16], got 17"),
    ({**GOOD, "ctrl": None}, "ctrl", "expected a mapping, got NoneType"),
    ({"name": "t", "ap": {"rows": 8, "dims": 1}}, "ap.cols",
     "missing field (bit columns per word)"),
    ({"name": "t"}, "ap", "missing section"),
    ([GOOD], "configuration", "expected a mapping, got list"),
])
def test_config_errors_have_the_common_form(tmp_path, data, path, reason):
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: {path}: {reason}"
    assert (exc.value.file, exc.value.path, exc.value.reason) == (str(p), path, reason)
    with pytest.raises(ConfigError) as exc:      # from a dict: the same, without a file
        config_from_dict(data)
    assert str(exc.value) == f"{path}: {reason}" and exc.value.file is None


def test_map_size_defaults_to_the_cap():
    cfg = config_from_dict({**GOOD, "tile": {"maps": 2, "map_rows": 5}})
    assert (cfg.tile.maps, cfg.tile.map_rows, cfg.tile.map_cols) == (2, 5, GOOD["ap"]["cols"])
    assert config_from_dict(GOOD).tile.map_rows == GOOD["ap"]["rows"]


# -- the schema nodes themselves, on a technology table (the format of configs/tech/*.yaml) --
def _tech_schema():
    from bfimna.golden.spec.schema import MapOf, Name, Num, OneOf, Record, Text
    energy = Record({"energy": Num(lo=0), "unit": OneOf("fJ", "pJ", "nJ"), "source": Text()})
    return Record({"name": Name(), "components": MapOf(Name(), MapOf(Name(), energy))})


TECH_GOOD = {"name": "cmos45", "components": {
    "cam_cell": {"search": {"energy": 0.12, "unit": "fJ", "source": "paper, table 3"},
                 "write": {"energy": 1, "unit": "fJ", "source": "paper, table 3"}}}}


def _tech(**change):
    d = yaml.safe_load(yaml.safe_dump(TECH_GOOD))
    d["components"]["cam_cell"]["search"].update(change)
    return d


@pytest.mark.parametrize("data, path, reason", [
    (_tech(energy=-1), "components.cam_cell.search.energy", "must be >= 0, got -1"),
    (_tech(energy="1 fJ"), "components.cam_cell.search.energy",
     "expected a number >= 0, got str '1 fJ'"),
    (_tech(energy=True), "components.cam_cell.search.energy",
     "expected a number >= 0, got bool True"),
    (_tech(unit="J"), "components.cam_cell.search.unit",
     "must be one of 'fJ', 'pJ', 'nJ', got 'J'"),
    (_tech(source=""), "components.cam_cell.search.source",
     "expected a non-empty string, got str ''"),
    ({**TECH_GOOD, "components": {"cam cell": {}}}, "components.cam cell",
     "bad key: expected a non-empty name of letters, digits, '_' or '-', got 'cam cell'"),
    ({**TECH_GOOD, "components": {}}, "components", "expected a mapping, got an empty mapping"),
    ({"components": TECH_GOOD["components"]}, "name", "missing field"),
])
def test_a_technology_table_is_a_few_lines_of_schema(tmp_path, data, path, reason):
    from bfimna.golden.spec.schema import load
    p = tmp_path / "tech.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load(_tech_schema(), p, error=ConfigError, what="technology table")
    assert str(exc.value) == f"{p}: {path}: {reason}"


def test_schema_returns_checked_data_and_reads_npz(tmp_path):
    import numpy as np

    from bfimna.golden.spec.schema import Array, Record, SchemaError, load
    p = tmp_path / "tech.yaml"
    p.write_text(yaml.safe_dump(TECH_GOOD))
    t = load(_tech_schema(), p, error=ConfigError)
    assert t["components"]["cam_cell"]["write"]["energy"] == 1.0
    q = tmp_path / "a.npz"
    np.savez(q, a=np.zeros((2, 3)), b=np.zeros(2, np.int32))
    shapes = Record({"a": Array(("N", 3)), "b": Array(("N",), kind="int")}, what="array")
    assert set(load(shapes, q)) == {"a", "b"}
    bad = Record({"a": Array(("N", 3)), "b": Array(("N", "N"))}, what="array")
    with pytest.raises(SchemaError, match=re.escape(
            f"{q}: b: expected shape (N, N) with N = 2, got (2,)")):
        load(bad, q)
    with pytest.raises(SchemaError, match=re.escape(f"{q}: b: unknown array (known here: a)")):
        load(Record({"a": Array()}, what="array"), q)
