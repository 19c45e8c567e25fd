"""`bfimna exec`: assemble a program in the text form and run it on a freshly reset AP
controller, golden or RTL (Verilator / Icarus, through the tile's replay harness,
cosim/replay/tile.py), from an optional initial array, returning the final array, the
counters and the named fields.

Initial data (`--init FILE.npz`): an array `cam` (R x C, 0/1) and/or one array per
`.field` the program declares (R values, or one value for every row). The reserved top
column starts at zero whatever the file says (the host cannot write it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.golden.model.ap import APModel
from bfimna.golden.model.controller import Controller
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import RESERVED_COLS, assemble, encode, field_names

RESERVED_KEYS = ("cam", "error")


class ExecInputError(ValueError):
    """The initial-data file does not fit the program or the configuration."""


@dataclass
class ExecResult:
    backend: str
    cam: np.ndarray                  # R x C bool
    counters: dict[str, int]
    error: bool
    fields: dict[str, np.ndarray]    # every .field, decoded (signed where declared so)
    n_instructions: int


def initial_cam(cfg: Config, fields: dict, init: dict | None) -> np.ndarray:
    R, C = cfg.ap.rows, cfg.ap.cols
    cam = np.zeros((R, C), dtype=bool)
    if not init:
        return cam
    model = APModel(cfg.ap)
    for key, value in init.items():
        arr = np.asarray(value)
        if key == "cam":
            if arr.shape != (R, C):
                raise ExecInputError(f"init: cam has shape {arr.shape}, the AP is {R} x {C}")
            model.cam[:] = arr.astype(bool)
        elif key in fields:
            start, width, _signed = fields[key]
            if arr.ndim == 0:
                arr = np.full(R, int(arr))
            if arr.shape != (R,):
                raise ExecInputError(f"init: field {key} has shape {arr.shape}, need ({R},)")
            model.write_field(start, width, arr)
        else:
            known = ", ".join(["cam", *fields]) or "cam"
            raise ExecInputError(f"init: {key!r} is neither `cam` nor a .field of the "
                                 f"program (known: {known})")
    cam = model.cam.copy()
    cam[:, C - RESERVED_COLS:] = False
    return cam


def exec_program(text: str, cfg: Config, backend: str, init: dict | None = None,
                 build_root: str | Path = Path("build") / "cosim") -> ExecResult:
    prog = assemble(text, cfg.ap)
    fields = field_names(text)
    for name in fields:
        if name in RESERVED_KEYS:
            raise ExecInputError(f".field name {name!r} is reserved for the dump file")
    words = [encode(i) for i in prog]
    cam0 = initial_cam(cfg, fields, init)
    if backend == "golden":
        ctl = Controller(cfg.ap)
        ctl.ap.cam[:] = cam0
        ctl.run(words)
        cam, counters, error = ctl.ap.cam.copy(), dict(ctl.counters), ctl.error
    else:
        from bfimna.cosim.drivers.runner import run_program_rtl

        res = run_program_rtl(cfg, backend, words, cam0.astype(np.uint8),
                              build_root=build_root)
        if not res.passed:
            why = "timed out" if res.timed_out else "did not finish"
            raise RuntimeError(f"{backend} run {why}; log {res.log}"
                               + (f"; rerun: {res.command}" if res.command else ""))
        cam = np.array([[(row >> c) & 1 for c in range(cfg.ap.cols)] for row in res.rows],
                       dtype=bool)
        counters, error = res.counters, res.error
    view = APModel(cfg.ap)
    view.cam[:] = cam
    decoded = {name: view.read_field(start, width, signed)
               for name, (start, width, signed) in fields.items()}
    return ExecResult(backend=backend, cam=cam, counters=counters, error=error,
                      fields=decoded, n_instructions=len(prog))


def save_dump(path: str | Path, res: ExecResult) -> None:
    # Any: numpy's stub would match **arrays against savez's allow_pickle: bool
    arrays: dict[str, Any] = {"cam": res.cam.astype(np.uint8),
                              "error": np.array(int(res.error))}
    arrays.update({f"counter_{k}": np.array(v) for k, v in res.counters.items()})
    arrays.update(res.fields)
    np.savez(path, **arrays)
