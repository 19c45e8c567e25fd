"""Hardware-instance configuration: loading and validation of the YAML file.

One YAML file describes one hardware instance; the Verilog generator, the golden model,
the scheduler and the tests all read it through :func:`load_config`. Every field is
checked here, and a bad file fails with a :class:`ConfigError` that names the field
(as a dotted path such as ``ap.rows``) and the allowed values.

The schema is ``SCHEMA`` below, built from the nodes of :mod:`golden.spec.schema` (the
one mechanism every YAML and .npz file of the project is checked by, with one error form:
``FILE: dotted.field: what was expected, got what``); ``docs/config.md`` documents it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bfimna.golden.spec.schema import (
    OMIT,
    Bool,
    Int,
    Name,
    OneOf,
    Record,
    SchemaError,
    read_yaml,
    validate,
)


class ConfigError(SchemaError):
    """A configuration file is missing, unreadable or has an invalid field."""


# section -> field -> node (golden/spec/schema.py). Ranges are what the generators support
# and test. The MAPs' size defaults to the CAP's (filled in by config_from_dict).
SCHEMA = Record({
    "name": Name(doc="name of the instance, used in generated module and file names"),
    "ap": Record({
        "rows": Int(1, 4096, doc="words of the CAM array (SIMD lanes)"),
        "cols": Int(2, 256, doc="bit columns per word"),
        "dims": OneOf(1, 2, doc="1: memory AP (row access only); "
                                "2: computing AP (adds column read, write and move)"),
        "counter_bits": Int(8, 64, default=32, doc="width of each micro-op counter"),
    }),
    "ctrl": Record({
        "queue_depth": Int(2, 1024, default=16, doc="instructions the controller's queue holds"),
    }),
    "tile": Record({
        "maps": Int(0, 7, default=1, doc="memory APs (MAPs, 1D) per tile beside the CAP"),
        "map_rows": Int(1, 4096, default=OMIT, doc="rows of each MAP (default: ap.rows)"),
        "map_cols": Int(2, 256, default=OMIT, doc="bit columns of each MAP (default: ap.cols)"),
        "map_memory": OneOf("cam", "bram", default="cam",
                            doc="how the RTL builds each MAP: cam (an AP core of flip-flop "
                                "rows, cleared by reset) or bram (a memory with the same row "
                                "port, for block RAM on an FPGA; keeps its rows over a reset)"),
        "port_register": Bool(default=False,
                              doc="register every AP's port inputs after the tile's port "
                                  "multiplexer (for FPGA timing, docs/fpga.md): a host read's "
                                  "data comes a cycle later and a COPY between tiles takes a "
                                  "cycle more; instruction cycles are unchanged"),
    }),
    "system": Record({
        "tiles": Int(1, 16, default=1,
                     doc="tiles (each one CAP, its MAPs and a tile controller)"),
        "topology": OneOf("bus", default="bus",
                          doc="interconnect between tiles and the host port"),
    }),
})


@dataclass(frozen=True)
class APConfig:
    rows: int
    cols: int
    dims: int
    counter_bits: int

    @property
    def two_d(self) -> bool:
        return self.dims == 2


@dataclass(frozen=True)
class CtrlConfig:
    queue_depth: int = 16


@dataclass(frozen=True)
class TileConfig:
    maps: int = 1
    map_rows: int = 0     # 0 only in a Config built without a tile section: see Config
    map_cols: int = 0
    map_memory: str = "cam"   # cam | bram (hdl/gen/mapmem.py)
    port_register: bool = False   # the APs' port inputs registered (hdl/gen/tile.py: Tile)

    def map_ap(self, ap: APConfig) -> APConfig:
        """The configuration of each MAP: a 1D AP."""
        return APConfig(rows=self.map_rows or ap.rows, cols=self.map_cols or ap.cols,
                        dims=1, counter_bits=ap.counter_bits)


@dataclass(frozen=True)
class SystemConfig:
    tiles: int = 1
    topology: str = "bus"


@dataclass(frozen=True)
class Config:
    name: str
    ap: APConfig
    ctrl: CtrlConfig = CtrlConfig()
    tile: TileConfig = TileConfig()
    system: SystemConfig = SystemConfig()
    source: str = "<dict>"

    def __post_init__(self):
        if not self.tile.map_rows or not self.tile.map_cols:  # MAPs default to the CAP's size
            object.__setattr__(self, "tile", TileConfig(
                self.tile.maps, self.tile.map_rows or self.ap.rows,
                self.tile.map_cols or self.ap.cols, self.tile.map_memory,
                self.tile.port_register))

    @property
    def map_ap(self) -> APConfig:
        return self.tile.map_ap(self.ap)

    def ap_of(self, index: int) -> APConfig:
        """AP `index` of a tile: 0 is the CAP, 1..maps the MAPs."""
        return self.ap if index == 0 else self.map_ap

    def as_dict(self) -> dict:
        return {"name": self.name,
                "ap": {"rows": self.ap.rows, "cols": self.ap.cols, "dims": self.ap.dims,
                       "counter_bits": self.ap.counter_bits},
                "ctrl": {"queue_depth": self.ctrl.queue_depth},
                "tile": {"maps": self.tile.maps, "map_rows": self.tile.map_rows,
                         "map_cols": self.tile.map_cols,
                         # only when not the default, so that the hash (and the build
                         # directories it names) of every configuration before the field
                         # stays the same
                         **({"map_memory": self.tile.map_memory}
                            if self.tile.map_memory != "cam" else {}),
                         **({"port_register": True} if self.tile.port_register else {})},
                "system": {"tiles": self.system.tiles, "topology": self.system.topology}}

    @property
    def hash(self) -> str:
        """SHA-256 of the validated configuration (defaults filled in), canonical JSON."""
        canon = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


def config_from_dict(data: Any, source: str = "<dict>") -> Config:
    """Validate `data` (a parsed configuration) against SCHEMA; errors name `source`
    when it is a file (`cfg.yaml: ap.rows: ...`), else just the field."""
    file = None if source == "<dict>" else source
    v = validate(SCHEMA, data, file=file, error=ConfigError, what="configuration")
    tile = dict(v["tile"])
    tile.setdefault("map_rows", v["ap"]["rows"])    # MAPs default to the CAP's size
    tile.setdefault("map_cols", v["ap"]["cols"])
    return Config(name=v["name"], ap=APConfig(**v["ap"]), ctrl=CtrlConfig(**v["ctrl"]),
                  tile=TileConfig(**tile), system=SystemConfig(**v["system"]),
                  source=source)


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML hardware configuration."""
    p = Path(path)
    return config_from_dict(read_yaml(p, ConfigError, "configuration"), source=str(p))


def default_config_path() -> Path:
    """The configuration `make demo` and the CLI use when none is given."""
    return Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
