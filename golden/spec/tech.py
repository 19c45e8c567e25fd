"""Technology tables: per-action energies, leakage, area and clock of a CAM technology.

The energy model multiplies exact activity counts by the per-action energies of one
technology at one supply voltage. The tables are YAML files in ``configs/tech/``, one per
technology, written in the vocabulary of Accelergy's energy and area reference tables
(ERT: component -> action -> energy; ART: component -> area), with named units and, for
every number, where it comes from. ``docs/tech.md`` documents the schema, every shipped
number and every assumption.

    tech = load_tech("configs/tech/sram_cam.yaml")
    p = tech.point()            # the nominal supply voltage; tech.point(0.9) another one
    p.energy["cam.search"]      # J per compared bit-cell
    p.clock_hz, p.leakage["cam.leakage"], p.area["cam.cell"], p.sources["cam.search"]

Validation uses the nodes of :mod:`golden.spec.schema` (one error form for every file of
the project: ``FILE: dotted.field: what was expected, got what``); a bad table raises
:class:`TechError`. Every number is an entry ``{value, unit, source | derived |
assumption}``: a number without its provenance is refused, and a ``source`` must start
with a key of the file's ``references`` section (``cacti7: tech_params/45nm.dat ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bfimna.golden.spec.config import ConfigError
from bfimna.golden.spec.schema import (
    OMIT,
    Int,
    Invalid,
    ListOf,
    MapOf,
    Name,
    Node,
    Num,
    OneOf,
    Record,
    Text,
    read_yaml,
    reporting,
    show,
    typed,
    validate,
)


class TechError(ConfigError):
    """A technology table is missing, unreadable, invalid, or asked for a voltage it
    does not have."""


# -- the names the energy model uses ---------------------------------------------------------
# component -> action -> meaning (the unit the loader converts to is in brackets)
ENERGY_ACTIONS: dict[str, dict[str, str]] = {
    "cam": {
        "search": "per compared bit-cell: a cell whose column is in the compare mask, in an "
                  "enabled row, in one compare cycle (search-line and cell share) [J]",
        "match": "per match-line evaluation: one enabled row in one compare cycle "
                 "(precharge and sense) [J]",
        "write": "per written bit-cell: one masked column in one enabled row in one write "
                 "cycle [J]",
        "column": "per bit moved by a column operation (column read, write or move), per "
                  "row [J]",
        "row": "per bit read or written through a row port (row transfers, MOVW words, host "
               "loads) [J]",
    },
    "controller": {"cycle": "per active cycle of one tile's controller (sequencer, micro-op "
                            "broadcast, decoder) [J]"},
    "host": {"word": "per 32-bit word through the system's stream interface [J]"},
}
LEAKAGE_PARTS: dict[str, str] = {
    "cam": "static power per bit-cell of a CAM macro (its periphery included) [W]",
    "controller": "static power per tile controller [W]",
}
AREA_PARTS: dict[str, dict[str, str]] = {
    "cam": {
        "cell": "per bit-cell [m^2]",
        "row_periphery": "per row: match-line precharge and sense amplifier, tag latch [m^2]",
        "column_periphery": "per column: search-line and bit-line drivers [m^2]",
    },
    "controller": {"tile": "per tile controller [m^2]"},
}
ENERGY_NAMES = tuple(f"{c}.{a}" for c, acts in ENERGY_ACTIONS.items() for a in acts)
LEAKAGE_NAMES = tuple(f"{c}.leakage" for c in LEAKAGE_PARTS)
AREA_NAMES = tuple(f"{c}.{a}" for c, parts in AREA_PARTS.items() for a in parts)

# unit -> factor to the SI unit (J, W, m^2); F2 (feature size squared) uses `node_nm`
TIME_UNITS = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6}
ENERGY_UNITS = {"fJ": 1e-15, "pJ": 1e-12, "nJ": 1e-9, "uJ": 1e-6, "J": 1.0}
POWER_UNITS = {"pW": 1e-12, "nW": 1e-9, "uW": 1e-6, "mW": 1e-3, "W": 1.0}
AREA_UNITS = {"nm2": 1e-18, "um2": 1e-12, "mm2": 1e-6, "m2": 1.0, "F2": math.nan}
PROVENANCE = ("source", "derived", "assumption")


# -- schema ------------------------------------------------------------------------------------
class Positive(Node):
    """A real number > 0 (integers accepted, booleans not); returned as float."""
    type_name = "a number > 0"

    def check(self, value, path, ctx):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value \
                or math.isinf(value):
            raise Invalid(path, f"expected a number > 0, got {typed(value)}")
        if value <= 0:
            raise Invalid(path, f"must be > 0, got {value}")
        return float(value)


def _one_provenance(entry: dict) -> None:
    kinds = [k for k in PROVENANCE if k in entry]
    if not kinds:
        raise Invalid((), "missing source: give one of 'source' (a reference key, then where "
                          "in it), 'derived' (the formula from sourced numbers) or "
                          "'assumption' (the reasoning)")
    if len(kinds) > 1:
        raise Invalid(kinds[1], f"give only one of 'source', 'derived', 'assumption', got "
                                f"{', '.join(kinds)}")


def _provenance() -> dict:
    return {k: Text(default=OMIT) for k in PROVENANCE}


def _entry(units: dict[str, float], doc: str, unit_default: Any = None) -> Record:
    unit = OneOf(*units, doc="unit") if unit_default is None else \
        OneOf(*units, default=unit_default, doc="unit")
    return Record({"value": Positive(doc="the number"), "unit": unit, **_provenance()},
                  check=_one_provenance, doc=doc)


def _actions(table: dict[str, str], units: dict[str, float]) -> Record:
    return Record({a: _entry(units, doc) for a, doc in table.items()}, what="action")


CLOCK = _entry({"MHz": 1e6}, "the clock this supply voltage allows, in MHz", unit_default="MHz")
POINT = Record({
    "vdd": Positive(doc="supply voltage in V"),
    "clock_mhz": CLOCK,
    "energy": Record({c: _actions(acts, ENERGY_UNITS) for c, acts in ENERGY_ACTIONS.items()},
                     what="component"),
    "leakage": Record({c: _entry(POWER_UNITS, doc) for c, doc in LEAKAGE_PARTS.items()},
                      what="component"),
})
SCALING = Record({
    "energy": Record({
        "exponent": Positive(doc="dynamic energy ~ VDD^exponent (2: the CV^2 law)"),
        "fixed_fraction": MapOf(Text(), Num(0, 1), default=OMIT,
                                doc="share of an action's nominal energy drawn from a supply "
                                    "that does not track VDD"),
        **_provenance()}, check=_one_provenance),
    "clock": Record({
        "alpha": Positive(doc="velocity-saturation index of the alpha-power law"),
        "vth": Positive(doc="threshold voltage in V"),
        **_provenance()}, check=_one_provenance),
    "leakage": Record({
        "exponent": Num(lo=0, doc="static power ~ VDD^exponent"),
        **_provenance()}, check=_one_provenance),
}, default=OMIT, doc="how the non-nominal voltage points were derived")


def _rules(doc: dict) -> None:
    """Rules across fields: distinct voltages, the nominal one among them, sources that
    name a reference, fixed fractions of known actions."""
    seen: dict[float, int] = {}
    for i, p in enumerate(doc["voltages"]):
        for v, j in seen.items():
            if math.isclose(v, p["vdd"], rel_tol=1e-9):
                raise Invalid(("voltages", i, "vdd"),
                              f"duplicate supply voltage {p['vdd']:g} V (also voltages[{j}])")
        seen[p["vdd"]] = i
    if not any(math.isclose(v, doc["nominal_vdd"], rel_tol=1e-9) for v in seen):
        allowed = ", ".join(f"{v:g}" for v in seen)
        raise Invalid(("nominal_vdd",), f"must be one of the voltage points' vdd ({allowed}), "
                                        f"got {doc['nominal_vdd']:g}")
    refs = doc["references"]
    for path, entry in _entries(doc):
        text = entry.get("source")
        if text is not None:
            key = text.split(":", 1)[0].strip() if ":" in text else ""
            if key not in refs:
                raise Invalid(path + ("source",),
                              f"must start with a key of 'references' and a colon "
                              f"(known: {', '.join(refs)}), got {show(text)}")
    fixed = doc.get("scaling", {}).get("energy", {}).get("fixed_fraction", {})
    for name in fixed:
        if name not in ENERGY_NAMES:
            raise Invalid(("scaling", "energy", "fixed_fraction", name),
                          f"unknown action (known: {', '.join(ENERGY_NAMES)})")


def _entries(doc: dict):
    """(path, entry) of every provenance-carrying entry of a validated table."""
    for c, parts in doc["area"].items():
        for a, e in parts.items():
            yield ("area", c, a), e
    yield ("timing", "write"), doc["timing"]["write"]
    for i, p in enumerate(doc["voltages"]):
        yield ("voltages", i, "clock_mhz"), p["clock_mhz"]
        for c, acts in p["energy"].items():
            for a, e in acts.items():
                yield ("voltages", i, "energy", c, a), e
        for c, e in p["leakage"].items():
            yield ("voltages", i, "leakage", c), e
    for part, e in doc.get("scaling", {}).items():
        yield ("scaling", part), e


SCHEMA = Record({
    "name": Name(doc="technology name, used to select it (by convention the file's stem)"),
    "order": Int(0, 10_000, default=100,
                 doc="position among configs/tech/*.yaml (the CLI default is the first)"),
    "title": Text(doc="one-line description"),
    "node_nm": Positive(doc="CMOS feature size F in nm (F2 areas use it)"),
    "cell": Text(doc="the CAM cell type"),
    "cmos": Text(doc="the CMOS of the periphery and controller"),
    "nominal_vdd": Positive(doc="supply voltage in V that Tech.point() uses by default"),
    "scaling": SCALING,
    "array": Record({
        "rows": Int(1, 1 << 20, doc="match lines (rows) of the modelled array"),
        "cols": Int(1, 1 << 12, doc="cells per match line (columns) of the modelled array"),
    }, doc="geometry of the array the figures were modelled at: cam.match is for a match "
           "line of `cols` cells (the cost model scales it to the AP's columns)"),
    "timing": Record({
        "write": _entry(TIME_UNITS, "time one row-parallel cell write (a WR micro-op) takes; "
                                    "a write longer than a clock period stalls the "
                                    "sequencer for whole cycles"),
    }),
    "area": Record({c: _actions(parts, AREA_UNITS) for c, parts in AREA_PARTS.items()},
                   what="component"),
    "voltages": ListOf(POINT, min_len=1, doc="one entry per supply voltage point"),
    "references": MapOf(Name(), Text(), doc="reference key -> full citation, URL or DOI"),
}, check=_rules)


# -- the loaded table --------------------------------------------------------------------------
@dataclass(frozen=True)
class TechPoint:
    """One technology at one supply voltage, in SI units: `energy` J per action
    (ENERGY_NAMES), `leakage` W (`cam.leakage` per bit-cell, `controller.leakage` per
    tile), `area` m^2 (AREA_NAMES), `sources` field -> 'source: ...' / 'derived: ...' /
    'assumption: ...' (keys: the names above and `clock`)."""
    tech: str
    vdd: float
    clock_hz: float
    energy: dict[str, float]
    leakage: dict[str, float]
    area: dict[str, float]
    sources: dict[str, str] = field(repr=False)
    match_cols: int = 64          # cells of the match line cam.match was modelled for
    write_s: float = 0.0          # time of one cell write (timing.write)

    @property
    def period_s(self) -> float:
        return 1.0 / self.clock_hz

    @property
    def write_cycles(self) -> int:
        """Clock cycles one WR micro-op takes at this point's clock (at least one)."""
        return max(1, math.ceil(self.write_s * self.clock_hz - 1e-9))


@dataclass(frozen=True)
class Tech:
    """A validated technology table (see load_tech)."""
    name: str
    order: int
    title: str
    node_nm: float
    cell: str
    cmos: str
    nominal_vdd: float
    points: tuple[TechPoint, ...]       # in the file's order
    references: dict[str, str] = field(repr=False)
    scaling: dict | None = field(default=None, repr=False)
    path: str = "<dict>"

    @property
    def voltages(self) -> tuple[float, ...]:
        return tuple(p.vdd for p in self.points)

    def point(self, vdd: float | None = None) -> TechPoint:
        """The table at supply voltage `vdd` (None: the nominal one). Only the voltages of
        the table exist: values are not interpolated."""
        want = self.nominal_vdd if vdd is None else vdd
        if not isinstance(want, (int, float)) or isinstance(want, bool):
            raise TechError(f"{self.path}: vdd: expected a number in V, got {typed(want)}",
                            file=self.path, path="vdd", reason="not a number")
        for p in self.points:
            if math.isclose(p.vdd, want, rel_tol=1e-9, abs_tol=1e-12):
                return p
        allowed = ", ".join(f"{v:g}" for v in self.voltages)
        reason = (f"no voltage point at {want:g} V in technology {self.name!r} (allowed: "
                  f"{allowed} V; values are not interpolated)")
        raise TechError(f"{self.path}: vdd: {reason}", file=self.path, path="vdd",
                        reason=reason)


def _si(entry: dict, units: dict[str, float], node_nm: float) -> float:
    if entry["unit"] == "F2":
        return entry["value"] * (node_nm * 1e-9) ** 2
    return entry["value"] * units[entry["unit"]]


def _provenance_text(entry: dict) -> str:
    kind = next(k for k in PROVENANCE if k in entry)
    return f"{kind}: {entry[kind]}"


def tech_from_dict(data: Any, source: str = "<dict>") -> Tech:
    """Validate `data` (a parsed table) against SCHEMA; errors name `source` when it is a
    file (`t.yaml: voltages[1].energy.cam.write: ...`), else just the field."""
    file = None if source == "<dict>" else source
    d = validate(SCHEMA, data, file=file, error=TechError, what="technology table")
    node = d["node_nm"]
    area, area_src = {}, {}
    for c, parts in d["area"].items():
        for a, e in parts.items():
            area[f"{c}.{a}"] = _si(e, AREA_UNITS, node)
            area_src[f"{c}.{a}"] = _provenance_text(e)
    points = []
    for p in d["voltages"]:
        energy, leakage, sources = {}, {}, dict(area_src)
        sources["clock"] = _provenance_text(p["clock_mhz"])
        sources["timing.write"] = _provenance_text(d["timing"]["write"])
        for c, acts in p["energy"].items():
            for a, e in acts.items():
                energy[f"{c}.{a}"] = _si(e, ENERGY_UNITS, node)
                sources[f"{c}.{a}"] = _provenance_text(e)
        for c, e in p["leakage"].items():
            leakage[f"{c}.leakage"] = _si(e, POWER_UNITS, node)
            sources[f"{c}.leakage"] = _provenance_text(e)
        points.append(TechPoint(tech=d["name"], vdd=p["vdd"],
                                clock_hz=p["clock_mhz"]["value"] * 1e6, energy=energy,
                                leakage=leakage, area=dict(area), sources=sources,
                                match_cols=d["array"]["cols"],
                                write_s=_si(d["timing"]["write"], TIME_UNITS, node)))
    return Tech(name=d["name"], order=d["order"], title=d["title"], node_nm=node,
                cell=d["cell"], cmos=d["cmos"], nominal_vdd=d["nominal_vdd"],
                points=tuple(points), references=dict(d["references"]),
                scaling=d.get("scaling"), path=source)


def load_tech(path: str | Path) -> Tech:
    """Load and validate a YAML technology table."""
    p = Path(path)
    return tech_from_dict(read_yaml(p, TechError, "technology table"), source=str(p))


# -- the shipped tables ------------------------------------------------------------------------
def tech_dir() -> Path:
    """configs/tech/ of this tree."""
    return Path(__file__).resolve().parents[2] / "configs" / "tech"


def default_techs(folder: str | Path | None = None) -> list[Tech]:
    """Every table of `folder` (default configs/tech/), sorted by (order, name): the first
    is the default technology (the SRAM one for the shipped tables)."""
    files = sorted(Path(folder or tech_dir()).glob("*.yaml"))
    techs = [load_tech(f) for f in files]
    names: dict[str, str] = {}
    for t in techs:
        if t.name in names:
            with reporting(t.path, TechError):
                raise Invalid(("name",), f"technology {t.name!r} is also defined in "
                                         f"{names[t.name]}")
        names[t.name] = t.path
    return sorted(techs, key=lambda t: (t.order, t.name))


def default_tech_paths(folder: str | Path | None = None) -> list[Path]:
    """The table files of `folder` (default configs/tech/) in default_techs() order."""
    return [Path(t.path) for t in default_techs(folder)]


def tech_names(folder: str | Path | None = None) -> list[str]:
    """The technology names in default_techs() order (the first is the default)."""
    return [t.name for t in default_techs(folder)]


def find_tech(name_or_path: str | Path | None = None,
              folder: str | Path | None = None) -> Tech:
    """A technology by name (among `folder`'s tables) or by file path; None: the first."""
    techs = default_techs(folder)
    if name_or_path is None:
        if not techs:
            raise TechError(f"{folder or tech_dir()}: no technology table (*.yaml)")
        return techs[0]
    for t in techs:
        if t.name == str(name_or_path):
            return t
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return load_tech(p)
    known = ", ".join(t.name for t in techs)
    raise TechError(f"unknown technology {str(name_or_path)!r} (known: {known}, or a path "
                    f"to a .yaml table)", reason="unknown technology")


__all__ = ["AREA_NAMES", "ENERGY_NAMES", "LEAKAGE_NAMES", "SCHEMA", "Tech", "TechError",
           "TechPoint", "default_tech_paths", "default_techs", "find_tech",
           "load_tech", "tech_dir", "tech_from_dict", "tech_names"]
