"""Verilog emission: one file per generated module plus a JSON manifest.

The manifest lists, for every module, its file, its ports (name, direction, width) and
the generator parameters, together with the configuration's hash and tool versions, so
that a user (or a later flow step) can check which configuration a netlist came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Reproducible output without a system Yosys: use the Yosys that amaranth bundles.
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

import amaranth  # noqa: E402
from amaranth import Shape  # noqa: E402
from amaranth.back import verilog  # noqa: E402
from amaranth.lib import wiring  # noqa: E402

from bfimna.golden.spec.config import Config  # noqa: E402
from bfimna.hdl.gen.ap import APCore, ap_module_name, ap_signature  # noqa: E402
from bfimna.hdl.gen.controller import APController, controller_module_name, controller_signature  # noqa: E402
from bfimna.hdl.gen.system import System, system_module_name, system_signature  # noqa: E402

MANIFEST = "manifest.json"


def _ports(signature: wiring.Signature) -> list[dict]:
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for name, member in signature.members.items():
        ports.append({"name": name, "dir": "in" if member.flow == wiring.In else "out",
                      "width": Shape.cast(member.shape).width})
    return ports


def ap_verilog(cfg: Config, fault: str | None = None) -> str:
    """Verilog text of the AP core of `cfg` (top module named by ap_module_name)."""
    core = APCore(cfg.ap, fault=fault)
    return verilog.convert(core, name=ap_module_name(cfg.ap), emit_src=False)


def controller_verilog(cfg: Config, fault: str | None = None) -> str:
    """Verilog text of the AP controller (queue, sequencer and its AP core)."""
    return verilog.convert(APController(cfg, fault=fault), name=controller_module_name(cfg),
                           emit_src=False)


def system_verilog(cfg: Config) -> str:
    """Verilog text of the system top (tiles, global controller, AXI host interface)."""
    return verilog.convert(System(cfg), name=system_module_name(cfg), emit_src=False)


def board_verilog(cfg: Config, divisor: int, led_invert: bool = False,
                  pll: dict | None = None, fin_mhz: float | None = None) -> str:
    """Verilog of the board-level top (the system behind a UART link, hdl/gen/board.py);
    with `pll` (hdl/gen/board.py: ecp5_pll) clocked from an ECP5 PLL."""
    from bfimna.hdl.gen.board import BoardTop, board_module_name
    return verilog.convert(BoardTop(cfg, divisor, led_invert, pll, fin_mhz),
                           name=board_module_name(cfg), emit_src=False)


def emit(cfg: Config, out_dir: str | Path, fault: str | None = None) -> dict:
    """Write the Verilog of every module of `cfg` and the manifest into `out_dir`.

    Modules: the AP core alone (for AP-level use and its testbench), the tile (the AP
    controller with its CAP and MAPs) and the system top (every tile, the global
    controller and the AXI host interface; it is the top). Each file is self-contained.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ap_name, ctl_name = ap_module_name(cfg.ap), controller_module_name(cfg)
    sys_name = system_module_name(cfg)
    (out / f"{ap_name}.v").write_text(ap_verilog(cfg, fault=fault))
    (out / f"{ctl_name}.v").write_text(controller_verilog(cfg))
    (out / f"{sys_name}.v").write_text(system_verilog(cfg))
    ap_params = {"rows": cfg.ap.rows, "cols": cfg.ap.cols, "dims": cfg.ap.dims,
                 "counter_bits": cfg.ap.counter_bits}
    manifest = {
        "config": {"name": cfg.name, "source": cfg.source, "sha256": cfg.hash,
                   "values": cfg.as_dict()},
        "generator": {"bfimna": _version(), "amaranth": amaranth.__version__,
                      "fault_injected": fault},
        "top": sys_name,
        "modules": [
            {"name": ap_name, "kind": "ap_core", "file": f"{ap_name}.v",
             "parameters": ap_params, "ports": _ports(ap_signature(cfg.ap))},
            {"name": ctl_name, "kind": "tile", "file": f"{ctl_name}.v",
             "parameters": {**ap_params, "queue_depth": cfg.ctrl.queue_depth,
                            **{f"tile_{k}": v for k, v in cfg.as_dict()["tile"].items()}},
             "ports": _ports(controller_signature(cfg)),
             "contains": [f"{ctl_name}.core (CAP)", f"{ctl_name}.queue (FIFO)"]
             + [f"{ctl_name}.map{k + 1} (MAP)" for k in range(cfg.tile.maps)]},
            {"name": sys_name, "kind": "system", "file": f"{sys_name}.v",
             "parameters": cfg.as_dict(), "ports": _ports(system_signature(cfg)),
             "contains": [f"{sys_name}.tile{t} (tile)" for t in range(cfg.system.tiles)]
             + [f"{sys_name}.out_fifo (FIFO)"]},
        ],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("bfimna")
    except PackageNotFoundError:
        return "unknown"
