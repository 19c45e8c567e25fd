"""Hardware-instance configuration: loading and validation of the YAML file.

One YAML file describes one hardware instance; the Verilog generator, the golden model,
the scheduler and the tests all read it through :func:`load_config`. Every field is
checked here, and a bad file fails with a :class:`ConfigError` that names the field
(as a dotted path such as ``ap.rows``) and the allowed values.

The schema is the table ``SCHEMA`` below; ``docs/config.md`` documents it for users.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has an invalid field."""


@dataclass(frozen=True)
class IntField:
    lo: int
    hi: int
    doc: str
    default: int | None = None  # None: required

    def check(self, path: str, value: Any) -> int:
        # bool is a subclass of int in Python; `rows: true` is a type error, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{path}: expected an integer in [{self.lo}, {self.hi}], "
                f"got {type(value).__name__} {value!r}")
        if not self.lo <= value <= self.hi:
            raise ConfigError(f"{path}: must be in [{self.lo}, {self.hi}], got {value}")
        return value


@dataclass(frozen=True)
class ChoiceField:
    choices: tuple
    doc: str
    default: Any = None  # None: required

    def check(self, path: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(f"{path}: must be one of {allowed}, got {value!r}")
        return value


@dataclass(frozen=True)
class StrField:
    doc: str
    default: str | None = None

    def check(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value or not all(
                ch.isalnum() or ch in "_-" for ch in value):
            raise ConfigError(
                f"{path}: expected a non-empty name of letters, digits, '_' or '-', "
                f"got {value!r}")
        return value


# section -> field -> spec. Ranges are what the generators support and test.
SCHEMA: dict[str, Any] = {
    "name": StrField("name of the instance, used in generated module and file names"),
    "ap": {
        "rows": IntField(1, 4096, "words of the CAM array (SIMD lanes)"),
        "cols": IntField(2, 256, "bit columns per word"),
        "dims": ChoiceField((1, 2), "1: memory AP (row access only); "
                                    "2: computing AP (adds column read, write and move)"),
        "counter_bits": IntField(8, 64, "width of each micro-op counter", default=32),
    },
    "ctrl": {
        "queue_depth": IntField(2, 1024, "instructions the controller's queue holds",
                                default=16),
    },
    "tile": {
        "maps": IntField(0, 7, "memory APs (MAPs, 1D) per tile beside the computing AP",
                         default=1),
        "map_rows": IntField(1, 4096, "rows of each MAP (default: ap.rows)",
                             default="ap.rows"),
        "map_cols": IntField(2, 256, "bit columns of each MAP (default: ap.cols)",
                             default="ap.cols"),
    },
    "system": {
        "tiles": IntField(1, 16, "tiles (each one CAP, its MAPs and a tile controller)",
                          default=1),
        "topology": ChoiceField(("bus",), "interconnect between tiles and the host port",
                                default="bus"),
    },
}


def _validate(section_schema: dict, data: Any, prefix: str) -> dict:
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "configuration"
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key in data:
        if key not in section_schema:
            known = ", ".join(section_schema)
            raise ConfigError(f"{prefix}{key}: unknown field (known here: {known})")
    for key, spec in section_schema.items():
        path = f"{prefix}{key}"
        if isinstance(spec, dict):
            if key in data:
                out[key] = _validate(spec, data[key], path + ".")
            elif all(not isinstance(f, dict) and f.default is not None for f in spec.values()):
                out[key] = _validate(spec, {}, path + ".")  # every field has a default
            else:
                raise ConfigError(f"{path}: missing section")
        elif key in data:
            out[key] = spec.check(path, data[key])
        elif isinstance(spec.default, str) and "." in spec.default:
            out[key] = spec.default  # another field's value: resolved by the caller
        elif spec.default is not None:
            out[key] = spec.default
        else:
            raise ConfigError(f"{path}: missing field ({spec.doc})")
    return out


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
                self.tile.map_cols or self.ap.cols))

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
                         "map_cols": self.tile.map_cols},
                "system": {"tiles": self.system.tiles, "topology": self.system.topology}}

    @property
    def hash(self) -> str:
        """SHA-256 of the validated configuration (defaults filled in), canonical JSON."""
        canon = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


def config_from_dict(data: Any, source: str = "<dict>") -> Config:
    v = _validate(SCHEMA, data, "")
    for sec in v.values():
        if isinstance(sec, dict):
            for k, val in sec.items():
                if isinstance(val, str) and "." in val:   # default taken from another field
                    s, f = val.split(".")
                    sec[k] = v[s][f]
    return Config(name=v["name"], ap=APConfig(**v["ap"]), ctrl=CtrlConfig(**v["ctrl"]),
                  tile=TileConfig(**v["tile"]), system=SystemConfig(**v["system"]),
                  source=source)


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML hardware configuration."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(data, source=str(p))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def default_config_path() -> Path:
    """The configuration `make demo` and the CLI use when none is given."""
    return Path(__file__).resolve().parents[2] / "configs" / "default.yaml"
