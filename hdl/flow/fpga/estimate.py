"""The resource estimate: LUTs and FFs of the board top from the configuration alone,
before any synthesis.

Fitted (least squares) to synthesis counts of the board top that `bfimna fpga-sweep`
measured on ECP5 (calibration.csv beside this file is a sweep.csv; scripts/bench_fpga.py
says how it was made and reports the estimate's error). The model: LUTs and FFs linear in
the CAM bits, the columns and the rows of every AP, the tiles and a constant. It decides
only whether synthesis is worth running: designs beyond REFUSE_FACTOR x the part are
refused at once; every report carries the estimate next to the measured count.

The tile's port register (`tile.port_register`) changes how the array maps (the AP cores
run from registered decode terms, docs/fpga.md), so designs with it and without it are
fitted apart, each to the calibration points of its kind (the `port_register` column).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from bfimna.golden.spec.config import Config

CALIBRATION_FILE = Path(__file__).with_name("calibration.csv")
REFUSE_FACTOR = 1.5

# iCE40 against ECP5 for the same design, measured on the smallest system (CAP 8x12 and
# a MAP 8x16, tests/test_fpga.py's TINY): ECP5 7,173 LUTs and 1,279 FFs, iCE40 5,621
# LUT4 and 1,631 FFs (iCE40 has no carry cells counted as LUTs, and splits FF kinds).
FAMILY_SCALE = {"ecp5": {"luts": 1.0, "ffs": 1.0},
                "ice40": {"luts": 5621 / 7173, "ffs": 1631 / 1279}}


def cam_maps(cfg: Config) -> int:
    """MAPs per tile built as AP cores of flip-flops (`tile.map_memory: cam`); a MAP in
    block RAM (`bram`, hdl/gen/mapmem.py) costs memory blocks, not logic."""
    return cfg.tile.maps if cfg.tile.map_memory == "cam" else 0


def cam_bits(cfg: Config) -> int:
    """CAM bits (flip-flop bits) of all APs (the CAP and the cam MAPs) of all tiles."""
    return cfg.system.tiles * (cfg.ap.rows * cfg.ap.cols
                               + cam_maps(cfg) * cfg.tile.map_rows * cfg.tile.map_cols)


def features(rows: int, cols: int, maps: int, map_rows: int, map_cols: int,
             tiles: int) -> list[float]:
    """The model's inputs for a geometry: a constant, the tiles, and over every AP of
    every tile its CAM bits, its columns and its rows."""
    aps = [(rows, cols)] + [(map_rows, map_cols)] * maps
    return [1.0, tiles, tiles * sum(r * c for r, c in aps), tiles * sum(c for _r, c in aps),
            tiles * sum(r for r, _c in aps)]


def fit_model(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Least-squares fit of LUTs and FFs to sweep rows (dicts with rows, cols, maps,
    tiles, luts, ffs; numbers or strings). The counters' width is not a feature: the
    calibration holds it at 24 bits, and it moves a system by a few hundred LUTs."""
    import numpy as np
    x = np.array([features(int(p["rows"]), int(p["cols"]), int(p["maps"]), int(p["rows"]),
                           int(p["cols"]), int(p["tiles"])) for p in points])
    model: dict[str, Any] = {"points": len(points)}
    err = 0.0
    for k in ("luts", "ffs"):
        y = np.array([float(p[k]) for p in points])
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        model[k] = [float(c) for c in coef]
        err = max(err, float(np.max(np.abs(x @ coef - y) / y)))
    model["max_error_pct"] = 100 * err
    return model


def model_value(model: dict[str, Any], key: str, f: list[float]) -> float:
    """A fitted model's `key` ("luts" or "ffs") at the features `f`."""
    return sum(a * b for a, b in zip(model[key], f, strict=True))


def predict(model: dict[str, Any], cfg: Config) -> dict[str, int]:
    """ECP5 LUTs and FFs of the board top of `cfg` by a fitted model."""
    f = features(cfg.ap.rows, cfg.ap.cols, cam_maps(cfg), cfg.tile.map_rows,
                 cfg.tile.map_cols, cfg.system.tiles)
    return {k: int(round(model_value(model, k, f))) for k in ("luts", "ffs")}


def calibration_points(port_register: bool | None = None) -> list[dict[str, str]]:
    """The rows of the calibration table (comment lines skipped); with `port_register`,
    only the rows measured with (True) or without (False) the tile's port register."""
    with CALIBRATION_FILE.open() as fh:
        rows = list(csv.DictReader(ln for ln in fh if not ln.startswith("#")))
    if port_register is None:
        return rows
    return [r for r in rows if (r["port_register"] == "True") == port_register]


_MODELS: dict[bool, dict[str, Any]] = {}


def _model(port_register: bool) -> dict[str, Any]:
    if port_register not in _MODELS:
        points = calibration_points(port_register)
        need = len(features(1, 1, 0, 1, 1, 1))       # one point per coefficient at least
        if len(points) < need:
            raise ValueError(f"{CALIBRATION_FILE}: {len(points)} rows with port_register "
                             f"{port_register}; the fit needs at least {need} (bfimna "
                             f"fpga-sweep makes them)")
        _MODELS[port_register] = fit_model(points)
    return _MODELS[port_register]


def estimate(cfg: Config, family: str = "ecp5") -> dict[str, Any]:
    """LUTs and FFs the board top of `cfg` should need after synthesis for an ECP5 or
    iCE40 part, and how good the fit is on its (ECP5) calibration points (those with the
    port register when `cfg` has it, else those without)."""
    m = _model(cfg.tile.port_register)
    pred = predict(m, cfg)
    return {**{k: int(round(v * FAMILY_SCALE[family][k])) for k, v in pred.items()},
            "cam_bits": cam_bits(cfg), "calibration_points": m["points"],
            "max_error_pct": round(m["max_error_pct"], 1)}
