"""Benchmark of the system top: lines of generated Verilog per configuration, the cycles
of every transfer kind (golden system; the tests prove the RTL counts the same), and
simulated cycles per second on Verilator and Icarus through the AXI ports.

    python scripts/bench_system.py [--quick]

Workloads: `compute`: every tile runs a long random tile program (the host only streams
instructions, then reads one field); `host-io`: the random host program of the tests
(data loads, reads, copies, bad packets) with 30% idle input and 30% back-pressure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.model.system import System
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import Instr, Opc, encode
from bfimna.hdl.flow.emit import emit

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def verilog_lines() -> None:
    print("## Generated Verilog (lines per file; each file is self-contained)\n")
    print("| config | AP core | tile | system top |")
    print("|---|---|---|---|")
    for path in CONFIGS:
        cfg = load_config(path)
        with tempfile.TemporaryDirectory() as d:
            man = emit(cfg, d)
            n = [len((Path(d) / m["file"]).read_text().splitlines()) for m in man["modules"]]
        print(f"| {cfg.name} | {n[0]:,} | {n[1]:,} | {n[2]:,} |")
    print()


def transfer_cycles() -> None:
    cfg = load_config(ROOT / "configs" / "sys_t2k2.yaml")
    print(f"## Transfer cycles ({cfg.name}: CAP {cfg.ap.rows}x{cfg.ap.cols}, MAPs "
          f"{cfg.tile.map_rows}x{cfg.tile.map_cols}; golden counters)\n")
    print("| transfer | count | cycles |")
    print("|---|---|---|")

    def tile_cycles(words):
        s = System(cfg)
        p = HostProgram(cfg)
        p.instr(0, words)
        s.feed(p.beats())
        assert not s.tiles[0].error
        return s.tiles[0].counters["cycles"]

    xr = encode(Instr(op=Opc.XROWS))
    n = 16
    for label, sap, dap in (("MAP -> CAP words (MOVW)", 1, 0), ("CAP -> MAP words (MOVW)", 0, 1),
                            ("MAP -> MAP words (MOVW)", 1, 2)):
        c = tile_cycles([xr, encode(Instr(op=Opc.MOVW, sap=sap, dap=dap, n=8, count=n))])
        print(f"| {label} | {n} | {c - 1} |")
    print(f"| XROWS | 1 | {tile_cycles([xr])} |")
    for label, build in (
            ("tile -> tile words (COPY)", lambda p: p.copy(0, 1, 0, n, 1, 0, 0, width=8)),
            ("tile -> tile CAP columns (COPYCOL)", lambda p: p.copy_cols(0, 0, 8, 1, 0))):
        s, p = System(cfg), HostProgram(cfg)
        build(p)
        s.feed(p.beats())
        k = s.counters["copy_words"] + s.counters["copy_cols"]
        print(f"| {label} | {k} | {s.counters['copy_cycles']} |")
    print("| host -> AP words (WRITE) | n | n (one per accepted beat) |")
    print("| AP -> host words (READ) | n | n + 1 when the output is never stalled |")
    print()


def compute_program(cfg, seed, n_instr):
    prog = HostProgram(cfg)
    for t in range(cfg.system.tiles):
        prog.instr(t, random_tile_program(cfg, seed + t, n_instr, illegal_share=0.0,
                                          max_width=8))
    prog.read(0, 0, 0, cfg.ap.rows)
    prog.sync(1)
    return prog


def speed(quick: bool) -> None:
    print("## Simulated cycles per second on the system top (one run each, this machine)\n")
    print("| config | simulator | workload | words in | cycles | cycles/s | wall s (with build) |")
    print("|---|---|---|---|---|---|---|")
    runs = [("sys_t2k2", "verilator", 400), ("sys_t2k2", "icarus", 150),
            ("default", "verilator", 150), ("default", "icarus", 15)]
    build = ROOT / "build" / "bench"
    for name, sim, n_instr in runs:
        if quick and name == "default":
            continue
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        for workload in ("compute", "host-io"):
            if workload == "compute":
                prog, kw = compute_program(cfg, 7, n_instr), {}
            else:
                prog = random_host_program(cfg, 7, n_packets=n_instr // 5)
                kw = {"idle": 0.3, "backpressure": 0.3}
            want = backend("golden", cfg).run(prog)
            t0 = time.perf_counter()
            got = backend(sim, cfg, build_root=build, seed=7, **kw).run(prog)
            wall = time.perf_counter() - t0
            diffs = compare(want, got, prog)
            assert not diffs, diffs[:5]
            print(f"| {name} | {sim} | {workload} | {prog.n_words} | {got.sim_cycles:,} | "
                  f"{got.cycles_per_s:,.0f} | {wall:.1f} |", flush=True)
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave out the default config runs")
    args = ap.parse_args()
    verilog_lines()
    transfer_cycles()
    speed(args.quick)


if __name__ == "__main__":
    main()
