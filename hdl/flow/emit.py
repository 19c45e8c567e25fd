"""Verilog emission: one file per generated module plus a JSON manifest.

The manifest lists, for every module, its file, its ports (name, direction, width) and
the generator parameters, together with the configuration's hash and tool versions, so
that a user (or a later flow step) can check which configuration a netlist came from.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
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

# -- a cache of emitted Verilog ------------------------------------------------------------
# Elaborating a large top takes Amaranth tens of seconds (the default system: 25-80 s on a
# loaded 2-core machine), longer than most simulations of it. Every text is kept per
# process and on disk, in $BFIMNA_VERILOG_CACHE (default build/verilog-cache under the
# working directory), keyed by the configuration's hash, the call's arguments and a digest
# of every source the generators read (hdl/, golden/, Amaranth's version and its Yosys):
# editing a generator invalidates every entry, nothing stale is ever reused.
_MEMO: dict[str, str] = {}


@functools.cache
def generator_digest() -> str:
    """A digest of everything emitted Verilog depends on besides the configuration."""
    import bfimna.golden
    import bfimna.hdl

    h = hashlib.sha256(f"{amaranth.__version__}\0"
                       f"{os.environ.get('AMARANTH_USE_YOSYS', '')}".encode())
    for pkg in (bfimna.hdl, bfimna.golden):
        root = Path(str(pkg.__file__)).parent
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".py", ".json", ".yaml") and \
                    "__pycache__" not in p.parts:
                h.update(f"{pkg.__name__}/{p.relative_to(root)}\0".encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("BFIMNA_VERILOG_CACHE", Path("build") / "verilog-cache"))


def _cached(kind: str) -> Callable:
    def wrap(gen: Callable[..., str]) -> Callable[..., str]:
        sig = inspect.signature(gen)

        @functools.wraps(gen)
        def cached(cfg: Config, *args, **kw) -> str:
            # the arguments as the generator sees them, defaults applied: f(cfg) and
            # f(cfg, None) are one entry (they were two, each generating the same text)
            bound = sig.bind(cfg, *args, **kw)
            bound.apply_defaults()
            rest = [(k, v) for k, v in bound.arguments.items() if k != "cfg"]
            key = hashlib.sha256(f"{kind}\0{cfg.hash}\0{rest!r}\0"
                                 f"{generator_digest()}".encode()).hexdigest()[:32]
            if key in _MEMO:
                return _MEMO[key]
            path = cache_dir() / f"{cfg.name}-{kind}-{key}.v"
            try:
                text = path.read_text()
            except OSError:
                text = gen(cfg, *args, **kw)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                    tmp.write_text(text)
                    tmp.replace(path)       # atomic: another process never reads half
                except OSError:
                    pass                    # a read-only place: the memo still works
            _MEMO[key] = text
            return text
        return cached
    return wrap


def _ports(signature: wiring.Signature) -> list[dict]:
    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for name, member in signature.members.items():
        ports.append({"name": name, "dir": "in" if member.flow == wiring.In else "out",
                      "width": Shape.cast(member.shape).width})
    return ports


@_cached("ap")
def ap_verilog(cfg: Config, fault: str | None = None) -> str:
    """Verilog text of the AP core of `cfg` (top module named by ap_module_name)."""
    core = APCore(cfg.ap, fault=fault)
    return verilog.convert(core, name=ap_module_name(cfg.ap), emit_src=False)


@_cached("tile")
def controller_verilog(cfg: Config, fault: str | None = None) -> str:
    """Verilog text of the AP controller (queue, sequencer and its AP core)."""
    return verilog.convert(APController(cfg, fault=fault), name=controller_module_name(cfg),
                           emit_src=False)


@_cached("system")
def system_verilog(cfg: Config) -> str:
    """Verilog text of the system top (tiles, global controller, AXI host interface)."""
    return verilog.convert(System(cfg), name=system_module_name(cfg), emit_src=False)


@_cached("board")
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
             "contains": [f"{ctl_name}.core (CAP)",
                          f"{ctl_name}.queue (instruction queue and decoder)",
                          f"{ctl_name}.queue.fifo (FIFO)", f"{ctl_name}.seq (sequencer)",
                          f"{ctl_name}.transfer (transfer unit)",
                          f"{ctl_name}.host (host port)", f"{ctl_name}.ctr (counters)"]
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
