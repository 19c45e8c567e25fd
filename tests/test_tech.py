"""Technology tables (configs/tech/*.yaml) and their loader (golden/spec/tech.py).

The values are joules, watts and square metres (1e-15 .. 1e-5): every pytest.approx here
sets abs=0, since its default absolute tolerance (1e-12) would accept any of them."""

import copy
import math
import re

import pytest
import yaml

from bfimna.golden.spec.tech import (
    AREA_NAMES,
    ENERGY_NAMES,
    LEAKAGE_NAMES,
    TechError,
    default_tech_paths,
    default_techs,
    find_tech,
    load_tech,
    tech_dir,
    tech_from_dict,
    tech_names,
)

TECHS = default_techs()
BY_NAME = {t.name: t for t in TECHS}


# -- the shipped tables ------------------------------------------------------------------------
def test_shipped_tables_sram_first():
    assert len(TECHS) >= 2
    assert tech_names() == [t.name for t in TECHS]
    assert tech_names()[0] == "sram_cam"              # the CLI default
    assert "reram_2t2r_cam" in BY_NAME
    assert default_tech_paths()[0] == tech_dir() / "sram_cam.yaml"
    assert find_tech().name == "sram_cam"
    assert find_tech("reram_2t2r_cam").name == "reram_2t2r_cam"
    assert find_tech(tech_dir() / "sram_cam.yaml").name == "sram_cam"
    with pytest.raises(TechError, match=r"unknown technology 'nope' \(known: sram_cam, "):
        find_tech("nope")


@pytest.mark.parametrize("tech", TECHS, ids=lambda t: t.name)
def test_shipped_table_is_complete(tech):
    assert len(tech.voltages) >= 3
    assert tech.nominal_vdd in tech.voltages
    assert tech.point().vdd == tech.nominal_vdd and tech.node_nm == 45
    for p in (tech.point(v) for v in tech.voltages):
        assert set(p.energy) == set(ENERGY_NAMES)
        assert set(p.leakage) == set(LEAKAGE_NAMES)
        assert set(p.area) == set(AREA_NAMES)
        for d in (p.energy, p.leakage, p.area):
            assert all(math.isfinite(x) and x > 0 for x in d.values())
        assert set(p.sources) == {"clock", "timing.write", *ENERGY_NAMES, *LEAKAGE_NAMES,
                                  *AREA_NAMES}
        assert p.match_cols == 64 and p.write_s > 0 and p.write_cycles >= 1
        assert all(re.match(r"(source|derived|assumption): \S", s) for s in p.sources.values())
        assert 50e6 < p.clock_hz < 5e9
    p = tech.point()
    # orders of magnitude (docs/tech.md): fJ-class search per cell, pW..nW leakage per cell
    assert 0.1e-15 < p.energy["cam.search"] < 10e-15
    assert 1e-15 < p.energy["cam.match"] < 1e-12
    assert 1e-13 < p.area["cam.cell"] < 1e-12             # 0.1 .. 1 um^2
    assert 1e-12 < p.leakage["cam.leakage"] < 1e-9


@pytest.mark.parametrize("tech", TECHS, ids=lambda t: t.name)
def test_lower_voltage_costs_less_and_runs_slower(tech):
    pts = sorted((tech.point(v) for v in tech.voltages), key=lambda p: p.vdd)
    for lo, hi in zip(pts, pts[1:], strict=False):
        assert lo.clock_hz < hi.clock_hz
        for k in ENERGY_NAMES:
            assert lo.energy[k] <= hi.energy[k], k
        for k in LEAKAGE_NAMES:
            assert lo.leakage[k] <= hi.leakage[k], k
        assert lo.area == hi.area


@pytest.mark.parametrize("tech", TECHS, ids=lambda t: t.name)
def test_voltage_points_follow_the_stated_scaling(tech):
    """Every non-nominal point is the nominal one scaled by the laws of `scaling:`."""
    s = tech.scaling
    assert s is not None
    n, fixed = s["energy"]["exponent"], s["energy"].get("fixed_fraction", {})
    alpha, vth, m = s["clock"]["alpha"], s["clock"]["vth"], s["leakage"]["exponent"]
    nom = tech.point()
    v0 = nom.vdd

    def g(v):
        return (v - vth) ** alpha / v

    for v in tech.voltages:
        p = tech.point(v)
        assert p.clock_hz == pytest.approx(nom.clock_hz * g(v) / g(v0), rel=2e-3, abs=0)
        for k in ENERGY_NAMES:
            f = fixed.get(k, 0.0)
            want = nom.energy[k] * (f + (1 - f) * (v / v0) ** n)
            assert p.energy[k] == pytest.approx(want, rel=2e-3, abs=0), (v, k)
        for k in LEAKAGE_NAMES:
            assert p.leakage[k] == pytest.approx(nom.leakage[k] * (v / v0) ** m, rel=2e-3, abs=0)


def test_reram_versus_sram_sanity_of_the_sources():
    sram, reram = BY_NAME["sram_cam"].point(), BY_NAME["reram_2t2r_cam"].point()
    assert reram.energy["cam.write"] > 100 * sram.energy["cam.write"]    # pJ vs fJ
    assert reram.energy["cam.write"] > 0.3e-12
    assert reram.leakage["cam.leakage"] < sram.leakage["cam.leakage"]
    assert reram.area["cam.cell"] < sram.area["cam.cell"]
    # ReRAM writes come from a fixed SET/RESET supply: no saving at a lower VDD
    low = BY_NAME["reram_2t2r_cam"].point(min(BY_NAME["reram_2t2r_cam"].voltages))
    assert low.energy["cam.write"] == reram.energy["cam.write"]


def test_point_rejects_a_voltage_not_in_the_table():
    t = BY_NAME["sram_cam"]
    assert t.point(0.9).vdd == 0.9 and t.point(1.1) is t.point()
    with pytest.raises(TechError) as exc:
        t.point(0.95)
    assert str(exc.value) == (f"{t.path}: vdd: no voltage point at 0.95 V in technology "
                              f"'sram_cam' (allowed: 1.1, 1, 0.9 V; values are not "
                              f"interpolated)")
    assert exc.value.path == "vdd"
    with pytest.raises(TechError, match="vdd: expected a number in V, got str '1.0'"):
        t.point("1.0")


# -- a tiny table, written to tmp_path ---------------------------------------------------------
def _e(value, unit):
    return {"value": value, "unit": unit, "source": "ref: table 1"}


def _point(vdd, scale=1.0):
    return {
        "vdd": vdd,
        "clock_mhz": {"value": 500 * scale, "derived": "1 / 2 ns"},
        "energy": {
            "cam": {"search": _e(1.5 * scale, "fJ"), "match": _e(2 * scale, "pJ"),
                    "write": _e(3 * scale, "nJ"), "column": _e(4 * scale, "J"),
                    "row": _e(5 * scale, "uJ")},
            "controller": {"cycle": _e(6 * scale, "pJ")},
            "host": {"word": _e(7 * scale, "fJ")},
        },
        "leakage": {"cam": _e(8 * scale, "pW"), "controller": _e(9 * scale, "uW")},
    }


GOOD = {
    "name": "tiny", "order": 5, "title": "a test table", "node_nm": 45, "cell": "10T",
    "cmos": "45 nm", "nominal_vdd": 1.0,
    "array": {"rows": 256, "cols": 32},
    "timing": {"write": _e(3, "ns")},
    "area": {"cam": {"cell": _e(292, "F2"), "row_periphery": _e(10, "nm2"),
                     "column_periphery": _e(11, "mm2")},
             "controller": {"tile": {"value": 12, "unit": "um2", "assumption": "a guess"}}},
    "voltages": [_point(1.0), _point(0.5, 0.25)],
    "references": {"ref": "A. Author, a paper, 2024"},
}


def _write(tmp_path, data, name="tiny.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_units_are_converted_exactly(tmp_path):
    t = load_tech(_write(tmp_path, GOOD))
    assert (t.name, t.order, t.voltages, t.path) == ("tiny", 5, (1.0, 0.5),
                                                     str(tmp_path / "tiny.yaml"))
    p = t.point()
    assert p.vdd == 1.0 and p.clock_hz == pytest.approx(500e6, rel=1e-12, abs=0)
    want = {"cam.search": 1.5e-15, "cam.match": 2e-12, "cam.write": 3e-9, "cam.column": 4.0,
            "cam.row": 5e-6, "controller.cycle": 6e-12, "host.word": 7e-15}
    assert p.energy == pytest.approx(want, rel=1e-12, abs=0)
    assert p.leakage == pytest.approx({"cam.leakage": 8e-12, "controller.leakage": 9e-6},
                                      rel=1e-12, abs=0)
    assert p.area == pytest.approx({"cam.cell": 292 * 45e-9 ** 2, "cam.row_periphery": 10e-18,
                                    "cam.column_periphery": 11e-6, "controller.tile": 12e-12},
                                   rel=1e-12, abs=0)
    assert p.area["cam.cell"] == pytest.approx(0.5913e-12, rel=1e-12, abs=0)
    assert p.sources["cam.search"] == "source: ref: table 1"
    assert p.sources["clock"] == "derived: 1 / 2 ns"
    assert p.sources["controller.tile"] == "assumption: a guess"
    low = t.point(0.5)
    assert low.energy["cam.search"] == pytest.approx(1.5e-15 / 4, rel=1e-12, abs=0)
    assert low.clock_hz == pytest.approx(125e6, rel=1e-12, abs=0)
    # a 3 ns write: 2 cycles of 2 ns at 500 MHz, 1 cycle of 8 ns at 125 MHz
    assert p.write_s == pytest.approx(3e-9) and (p.write_cycles, low.write_cycles) == (2, 1)
    assert p.match_cols == 32 and p.sources["timing.write"] == "source: ref: table 1"


def _bad(**changes):
    """GOOD with changes: key 'a.b.0.c' -> value (None deletes the key)."""
    d = copy.deepcopy(GOOD)
    for path, value in changes.items():
        keys = [int(k) if k.isdigit() else k for k in path.split("/")]
        node = d
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return d


E = "voltages/1/energy/cam"
CASES = [
    # unknown fields
    (_bad(colour="red"), "colour", "unknown field (known here: name, order, title, node_nm, "
     "cell, cmos, nominal_vdd, scaling, array, timing, area, voltages, references)"),
    (_bad(**{f"{E}/serch": _e(1, "fJ")}), "voltages[1].energy.cam.serch",
     "unknown action (known here: search, match, write, column, row)"),
    (_bad(**{f"{E}/write/units": "fJ"}), "voltages[1].energy.cam.write.units",
     "unknown field (known here: value, unit, source, derived, assumption)"),
    # missing fields
    (_bad(node_nm=None), "node_nm", "missing field (CMOS feature size F in nm (F2 areas use it))"),
    (_bad(**{f"{E}/write": None}), "voltages[1].energy.cam.write",
     "missing action (per written bit-cell: one masked column in one enabled row in one write "
     "cycle [J])"),
    (_bad(**{"voltages/0/leakage/controller": None}), "voltages[0].leakage.controller",
     "missing component (static power per tile controller [W])"),
    (_bad(**{"area/cam/cell/value": None}), "area.cam.cell.value", "missing field (the number)"),
    # values
    (_bad(**{f"{E}/write/value": -1}), "voltages[1].energy.cam.write.value", "must be > 0, got -1"),
    (_bad(**{f"{E}/write/value": 0}), "voltages[1].energy.cam.write.value", "must be > 0, got 0"),
    (_bad(**{f"{E}/write/value": "1 fJ"}), "voltages[1].energy.cam.write.value",
     "expected a number > 0, got str '1 fJ'"),
    (_bad(**{f"{E}/write/value": True}), "voltages[1].energy.cam.write.value",
     "expected a number > 0, got bool True"),
    (_bad(**{"voltages/0/leakage/cam/value": -3}), "voltages[0].leakage.cam.value",
     "must be > 0, got -3"),
    # units
    (_bad(**{f"{E}/write/unit": "kJ"}), "voltages[1].energy.cam.write.unit",
     "must be one of 'fJ', 'pJ', 'nJ', 'uJ', 'J', got 'kJ'"),
    (_bad(**{"voltages/0/leakage/cam/unit": "fJ"}), "voltages[0].leakage.cam.unit",
     "must be one of 'pW', 'nW', 'uW', 'mW', 'W', got 'fJ'"),
    (_bad(**{"area/cam/cell/unit": "cm2"}), "area.cam.cell.unit",
     "must be one of 'nm2', 'um2', 'mm2', 'm2', 'F2', got 'cm2'"),
    (_bad(**{"voltages/0/clock_mhz/unit": "GHz"}), "voltages[0].clock_mhz.unit",
     "must be one of 'MHz', got 'GHz'"),
    # provenance
    (_bad(**{f"{E}/write/source": None}), "voltages[1].energy.cam.write",
     "missing source: give one of 'source' (a reference key, then where in it), 'derived' "
     "(the formula from sourced numbers) or 'assumption' (the reasoning)"),
    (_bad(**{f"{E}/write/derived": "x 2"}), "voltages[1].energy.cam.write.derived",
     "give only one of 'source', 'derived', 'assumption', got source, derived"),
    (_bad(**{f"{E}/write/source": ""}), "voltages[1].energy.cam.write.source",
     "expected a non-empty string, got str ''"),
    (_bad(**{f"{E}/write/source": "nobody: p. 3"}), "voltages[1].energy.cam.write.source",
     "must start with a key of 'references' and a colon (known: ref), got 'nobody: p. 3'"),
    # voltages
    (_bad(**{"voltages/1/vdd": 1.0}), "voltages[1].vdd",
     "duplicate supply voltage 1 V (also voltages[0])"),
    (_bad(**{"voltages/1/vdd": "0.5 V"}), "voltages[1].vdd", "expected a number > 0, got str "
     "'0.5 V'"),
    (_bad(**{"voltages/1/vdd": 0}), "voltages[1].vdd", "must be > 0, got 0"),
    (_bad(**{"voltages/1/vdd": -0.5}), "voltages[1].vdd", "must be > 0, got -0.5"),
    (_bad(nominal_vdd=0.9), "nominal_vdd",
     "must be one of the voltage points' vdd (1, 0.5), got 0.9"),
    (_bad(voltages=[]), "voltages", "expected a non-empty list, got 0 entries"),
    (_bad(**{"voltages/1/energy": None}), "voltages[1].energy", "missing section"),
    (_bad(references={}), "references", "expected a mapping, got an empty mapping"),
]


@pytest.mark.parametrize("data, path, reason", CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_validation_errors_name_file_field_and_expectation(tmp_path, data, path, reason):
    p = _write(tmp_path, data)
    with pytest.raises(TechError) as exc:
        load_tech(p)
    assert str(exc.value) == f"{p}: {path}: {reason}"
    assert (exc.value.file, exc.value.path, exc.value.reason) == (str(p), path, reason)


def test_file_level_errors(tmp_path):
    with pytest.raises(TechError, match=re.escape(f"{tmp_path / 'no.yaml'}: technology table "
                                                  "file not found")):
        load_tech(tmp_path / "no.yaml")
    p = tmp_path / "empty.yaml"
    p.write_text("")
    with pytest.raises(TechError, match=re.escape(f"{p}: technology table: expected a "
                                                  "mapping, got NoneType")):
        load_tech(p)
    with pytest.raises(TechError, match=re.escape("voltages[1].vdd: must be > 0, got 0")):
        tech_from_dict(_bad(**{"voltages/1/vdd": 0}))


def test_folder_ordering_and_duplicate_names(tmp_path):
    _write(tmp_path, {**GOOD, "name": "b", "order": 1}, "a.yaml")
    _write(tmp_path, {**GOOD, "name": "a", "order": 1}, "b.yaml")
    _write(tmp_path, {**GOOD, "name": "z", "order": 0}, "c.yaml")
    assert tech_names(tmp_path) == ["z", "a", "b"]          # by (order, name)
    assert [p.name for p in default_tech_paths(tmp_path)] == ["c.yaml", "b.yaml", "a.yaml"]
    assert find_tech(folder=tmp_path).name == "z"
    _write(tmp_path, {**GOOD, "name": "z", "order": 3}, "d.yaml")
    with pytest.raises(TechError, match=r"d\.yaml: name: technology 'z' is also defined in "):
        tech_names(tmp_path)
