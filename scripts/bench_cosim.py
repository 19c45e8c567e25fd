#!/usr/bin/env python3
"""Benchmark: simulated cycles per second of the three RTL simulation paths, for the AP
core, the tile and the system top of one configuration, under Verilator and Icarus, in
ONE run (the ratios are meaningful on a noisy machine only when measured side by side):

  cocotb   the cocotb testbenches (cosim/tb/ap_tb.py, ctl_tb.py, sys_tb.py), the figure
           each testbench measures itself: cycles over the wall time between its start
           and end marks (the AP's includes Python's per-cycle stimulus and golden check;
           the tile's and system's do not include the golden check, made afterwards);
           `e2e` as for the replay below (simulator and cocotb start-up included);
  replay   the replay harnesses (cosim/replay/ap.py, tile.py, system.py): `sim` is the
           simulator process alone (start-up and stimulus file included), `e2e` end to
           end: Python's stimulus generation, the simulation, parsing and the check
           against golden (the golden model's run included), builds excluded;
  plain    plain HDL testbenches (cosim/replay/plain.py): the clock, the stimulus and a
           checksum in HDL, no I/O until the end. The tile's and system's run the replay's
           workload; the AP core's draws xorshift micro-ops (the replay's op mix).

Ratios: replay e2e / cocotb e2e (like for like: stimulus to verdict, the golden model's run
counted once per program on both sides), replay sim / cocotb (the simulations), replay sim
/ plain (the harness's own cost; the project's targets: >= 30x on the system top under
Verilator for the former, >= 0.5 for the latter). Each ratio is also given over CPU time
(resource.getrusage of the child processes), steadier than wall time on a busy machine.

Every cocotb and replay result is checked against the golden models (the AP's cycle by
cycle, the tile's rows, counters and error flag, the system's responses and registers);
the plain tile and system runs against the golden checksums. Builds are not in the
cycles/s; their seconds are reported (0.0x: an up-to-date build was reused).

Workloads: AP core, random_uops micro-ops (+ readback sweeps); tile, one long
random_program from a random CAP; system top, a WRITE of random rows into the CAP, one
INSTR packet of a long random_tile_program and a READ of the CAP. Icarus runs these
designs ~100x slower than Verilator, hence a size per simulator for each.

    python scripts/bench_cosim.py [--config configs/default.yaml] [--sims verilator icarus]
        [--units ap tile sys] [--tile-instr 2000 8] [--json out.json] ...

--units board adds the board top (the system behind its UART, bench_board): the cocotb
path (cosim/tb/board_tb.py) and the replay path (cosim/replay/board.py) on the system
top's workload sent over the link at --board-divisor (no plain testbench). Not a default
unit: its cocotb Verilator build takes tens of minutes.

--reuse DIR...: up-to-date builds of the same configuration found there (e.g. the tests'
build/test-cosim) are used instead of building again: replay and plain builds are copied
(they hold relative paths only, and their stamp says whether they are current), cocotb
builds are used in place (Verilator's hold absolute paths).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.cosim.drivers.runner import (
    SIMS,
    _build,
    build_dir_for,
    build_lock,
    icarus_text,
    run_ap_cosim,
    run_program_rtl,
)
from bfimna.cosim.replay import ap as ap_replay
from bfimna.cosim.replay import plain
from bfimna.cosim.replay import system as sys_replay
from bfimna.cosim.replay import tile as tile_replay
from bfimna.cosim.replay.build import build_replay, verilator_threads
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_program, random_tile_program
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import Config, default_config_path, load_config
from bfimna.golden.spec.isa import RESERVED_COLS
from bfimna.hdl.flow.emit import ap_verilog, controller_verilog, system_verilog
from bfimna.hdl.gen.ap import ap_module_name
from bfimna.hdl.gen.controller import controller_module_name
from bfimna.hdl.gen.system import system_module_name

UNITS = ("ap", "tile", "sys", "board")
DEFAULT_UNITS = ("ap", "tile", "sys")      # the board top: --units board (see bench_board)
UNIT_LABEL = {"ap": "AP core", "tile": "tile", "sys": "system top",
              "board": "board top (UART)"}
BUILD_UNIT = {"ap": "ap", "tile": "ctl", "sys": "sys"}     # the build directories' names
TARGET_REPLAY_COCOTB = 30.0      # system top, Verilator
TARGET_REPLAY_PLAIN = 0.5


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


@dataclass
class Measure:
    """One path of one unit on one simulator."""
    cycles: int = 0
    wall_s: float = 0.0            # the time the cycles/s is over
    cycles_per_s: float = 0.0
    build_s: float | None = None
    built: bool | None = None
    ok: bool = False
    note: str = ""
    cpu_s: float | None = None     # CPU time of the simulator process (replay sim, plain;
    #                                cocotb: its whole process, start-up included)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_cycles_per_s(self) -> float | None:
        return self.cycles / self.cpu_s if self.cpu_s else None


@dataclass
class Result:
    unit: str
    sim: str
    workload: str
    cocotb: Measure | None = None
    cocotb_e2e: Measure | None = None
    replay_sim: Measure | None = None
    replay_e2e: Measure | None = None
    plain: Measure | None = None
    breakdown: dict[str, float] = field(default_factory=dict)   # replay e2e, seconds

    def ratio(self, a: str, b: str) -> float | None:
        x, y = getattr(self, a), getattr(self, b)
        if x is None or y is None or not x.ok or not y.ok or not y.cycles_per_s:
            return None
        return x.cycles_per_s / y.cycles_per_s

    def ratio_cpu(self, a: str, b: str) -> float | None:
        """The same ratio over CPU time (the simulator processes only): steadier than
        wall time on a machine busy with other work."""
        x, y = getattr(self, a), getattr(self, b)
        if x is None or y is None or not x.ok or not y.ok:
            return None
        cx, cy = x.cpu_cycles_per_s, y.cpu_cycles_per_s
        return cx / cy if cx and cy else None


def children_cpu() -> float:
    """CPU seconds of every child process waited for so far (the simulators)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def rate(cycles: int, wall: float) -> float:
    return cycles / wall if wall > 0 else 0.0


# -- builds --------------------------------------------------------------------------------

def _replay_bdir(cfg: Config, sim: str, unit: str, root: Path) -> Path:
    """The directory build_replay uses for `unit` (cosim/replay/build.py)."""
    threads = verilator_threads() if sim == "verilator" else 1
    name = f"{unit}-replay-{sim}" + (f"-t{threads}" if threads > 1 else "")
    return build_dir_for(cfg, sim, root, unit=name).parent / name


def seed_replay_build(cfg: Config, sim: str, unit: str, dut: str, harness: str, root: Path,
                      reuse: list[Path]) -> str | None:
    """Copy an up-to-date replay / plain build of `unit` from a --reuse root into `root`
    when `root` has none (build_replay then checks its stamp). Returns where from."""
    target = _replay_bdir(cfg, sim, unit, root)
    exe_rel = "obj_dir/Vreplay" if sim == "verilator" else "sim.vvp"
    if (target / "build.stamp").exists() and (target / exe_rel).exists():
        return None
    want_dut = icarus_text(dut) if sim == "icarus" else dut
    for other in reuse:
        src = _replay_bdir(cfg, sim, unit, other)
        try:
            same = ((src / "harness.v").read_text() == harness
                    and (src / "dut.v").read_text() == want_dut
                    and (src / "build.stamp").exists() and (src / exe_rel).exists())
        except OSError:
            same = False
        if not same:
            continue
        with build_lock(target):
            (target / exe_rel).parent.mkdir(parents=True, exist_ok=True)
            for rel in ("harness.v", "dut.v", exe_rel):
                shutil.copy2(src / rel, target / rel)
            shutil.copy2(src / "build.stamp", target / "build.stamp")
        return str(src)
    return None


def prebuild_replay(cfg: Config, sim: str, unit: str, dut: str, harness: str, root: Path,
                    reuse: list[Path]) -> tuple[float, bool]:
    """Build (or reuse) a replay or plain build; (seconds, compiled now)."""
    t0 = time.perf_counter()
    src = seed_replay_build(cfg, sim, unit, dut, harness, root, reuse)
    b = build_replay(cfg, sim, unit, dut, harness, root)
    took = time.perf_counter() - t0
    say(f"  {sim} {unit}: " + (f"built in {took:.1f} s" if b.built else
                               f"up to date ({took:.2f} s" + (f", from {src})" if src else ")")))
    return took, b.built


def cocotb_root(cfg: Config, sim: str, unit: str, top: str, text: str, root: Path,
                reuse: list[Path]) -> Path:
    """The build root whose cocotb build of `unit` is up to date: `root` when it is there
    or nowhere, else the first --reuse root that has it."""
    want = icarus_text(text) if sim == "icarus" else text
    for cand in [root, *reuse]:
        bdir = build_dir_for(cfg, sim, cand, unit=unit)
        exe = bdir / (top if sim == "verilator" else "sim.vvp")
        src = bdir / "rtl" / f"{top}.v"
        try:
            if exe.exists() and src.read_text() == want and \
                    exe.stat().st_mtime >= src.stat().st_mtime:
                return cand
        except OSError:
            continue
    return root


def prebuild_cocotb(cfg: Config, sim: str, unit: str, top: str, text: str, root: Path,
                    reuse: list[Path]) -> tuple[Path, float, bool, float]:
    """Build (or check) the cocotb build of `unit`; (its root, seconds, compiled now, the
    seconds of the up-to-date check every cocotb run repeats, which its end-to-end time
    leaves out)."""
    use = cocotb_root(cfg, sim, unit, top, text, root, reuse)
    bdir = build_dir_for(cfg, sim, use, unit=unit)
    exe = bdir / (top if sim == "verilator" else "sim.vvp")
    before = exe.stat().st_mtime if exe.exists() else None
    (bdir / "rtl").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with build_lock(bdir):
        _build(cfg, sim, bdir, top, text)
    took = time.perf_counter() - t0
    built = not exe.exists() or exe.stat().st_mtime != before
    t0 = time.perf_counter()
    with build_lock(bdir):
        _build(cfg, sim, bdir, top, text)
    check = time.perf_counter() - t0
    where = "" if use == root else f", in {use}"
    say(f"  {sim} {unit}-cocotb: " + (f"built in {took:.1f} s{where}" if built else
                                      f"up to date ({took:.2f} s{where})"))
    return use, took, built, check


def prebuild_all(cfg: Config, sim: str, unit: str, what: str, top: str, dut: str,
                 harness, plain_text, args, paths: set[str]):
    """Every build of `unit` the chosen paths need (harness and plain_text: callables
    giving the testbench texts). Returns (cocotb build root, cocotb build s, compiled
    now, its per-run check s, replay build s, compiled now, plain build s, compiled now)."""
    root, reuse = args.build_dir, args.reuse
    croot, cb_s, cb_new, cb_check = root, 0.0, False, 0.0
    rb_s, rb_new, pb_s, pb_new = 0.0, False, 0.0, False
    say(f"{sim}: {what} builds")
    if "cocotb" in paths:
        croot, cb_s, cb_new, cb_check = prebuild_cocotb(cfg, sim, unit, top, dut, root, reuse)
    if "replay" in paths:
        rb_s, rb_new = prebuild_replay(cfg, sim, unit, dut, harness(), root, reuse)
    if "plain" in paths:
        pb_s, pb_new = prebuild_replay(cfg, sim, f"{unit}-plain", dut, plain_text(), root,
                                       reuse)
    return croot, cb_s, cb_new, cb_check, rb_s, rb_new, pb_s, pb_new


# -- AP core -------------------------------------------------------------------------------

def bench_ap(cfg: Config, sim: str, args, k: int, paths: set[str]) -> Result:
    root, seed = args.build_dir, args.seed
    res = Result("ap", sim, f"random_uops: cocotb {args.ap_cocotb_ops[k]}, replay "
                            f"{args.ap_ops[k]} micro-ops")
    croot, cb_s, cb_new, cb_check, rb_s, rb_new, pb_s, pb_new = prebuild_all(
        cfg, sim, "ap", "AP core", ap_module_name(cfg.ap), ap_verilog(cfg),
        lambda: ap_replay.harness_text(cfg), lambda: plain.ap_plain_text(cfg), args, paths)

    if "cocotb" in paths:
        n = args.ap_cocotb_ops[k]
        say(f"{sim}: AP core, cocotb path, {n} micro-ops ...")
        t0 = time.perf_counter()
        c0 = children_cpu()
        r = run_ap_cosim(cfg, sim, seed=seed, n_ops=n, build_root=croot, path="cocotb")
        cpu = children_cpu() - c0
        call = time.perf_counter() - t0
        s = r.summary
        m = Measure(s.get("cycles", 0), s.get("wall_s", 0.0), s.get("cycles_per_s", 0.0),
                    cb_s, cb_new, r.passed, "" if r.passed else f"FAILED: see {r.log}",
                    cpu, extra={"call_s": round(call, 2)})
        res.cocotb = m
        e2e = max(call - cb_check, 1e-9)
        res.cocotb_e2e = Measure(m.cycles, e2e, rate(m.cycles, e2e), cb_s, cb_new, m.ok, m.note)
        say(f"  {m.cycles} cycles, {m.cycles_per_s:,.0f} cycles/s (e2e "
            f"{res.cocotb_e2e.cycles_per_s:,.0f}), checked: {'ok' if m.ok else m.note}")

    if "replay" in paths:
        n = args.ap_ops[k]
        say(f"{sim}: AP core, replay path, {n} micro-ops ...")
        c0 = children_cpu()
        r = run_ap_cosim(cfg, sim, seed=seed, n_ops=n, build_root=root, path="replay")
        cpu = children_cpu() - c0
        s = r.summary
        cyc = s.get("cycles", 0)
        note = "" if r.passed else f"FAILED: {s.get('failure', '')} (log {r.log})"
        res.replay_sim = Measure(cyc, s.get("sim_s", 0.0), rate(cyc, s.get("sim_s", 0.0)),
                                 rb_s, rb_new, r.passed, note, cpu)
        res.replay_e2e = Measure(cyc, s.get("wall_s", 0.0), rate(cyc, s.get("wall_s", 0.0)),
                                 rb_s, rb_new, r.passed, note)
        res.breakdown = {"gen_s": s.get("gen_s", 0.0), "sim_s": s.get("sim_s", 0.0),
                         "check_s": s.get("check_s", 0.0)}
        say(f"  {cyc} cycles, sim {res.replay_sim.cycles_per_s:,.0f} cycles/s, e2e "
            f"{res.replay_e2e.cycles_per_s:,.0f} cycles/s, checked: {'ok' if r.passed else note}")

    if "plain" in paths:
        cyc = args.ap_plain_cycles[k] or (res.replay_sim.cycles if res.replay_sim else
                                          args.ap_ops[k])
        say(f"{sim}: AP core, plain testbench, {cyc} cycles ...")
        c0 = children_cpu()
        p = plain.run_ap_plain(cfg, sim, cyc, root, seed=seed)
        cpu = children_cpu() - c0
        res.plain = Measure(p.cycles, p.wall_s, p.cycles_per_s, pb_s, pb_new, p.ok,
                            "xorshift stream, not checked" if p.ok else
                            f"FAILED: no result line (log {p.log})", cpu, {"values": p.values})
        say(f"  {p.cycles} cycles, {p.cycles_per_s:,.0f} cycles/s")
    return res


# -- tile ----------------------------------------------------------------------------------

def tile_differences(cfg: Config, rows, maps, counters, error, want: Tile) -> list[str]:
    diffs = []
    aps = [rows] + (list(maps) if maps is not None else [])
    for k, got in enumerate(aps):
        w = want.ap(k).rows_as_ints()
        bad = [r for r, (g, x) in enumerate(zip(got, w, strict=False)) if g != x]
        if bad or len(got) != len(w):
            r = bad[0] if bad else min(len(got), len(w))
            diffs.append(f"AP {k}: {len(bad)} rows differ (first: row {r})")
    mod = 1 << cfg.ap.counter_bits
    for key, v in want.counters.items():
        if counters.get(key) != v % mod:
            diffs.append(f"counter {key}: RTL {counters.get(key)}, golden {v % mod}")
    if bool(error) != bool(want.error):
        diffs.append(f"error flag: RTL {error}, golden {want.error}")
    return diffs


def bench_tile(cfg: Config, sim: str, args, k: int, paths: set[str]) -> Result:
    root, seed = args.build_dir, args.seed
    n, nc = args.tile_instr[k], args.tile_cocotb_instr[k] or args.tile_instr[k]
    res = Result("tile", sim, f"random_program: {n} instructions" +
                 (f" (cocotb {nc})" if nc != n else ""))
    croot, cb_s, cb_new, cb_check, rb_s, rb_new, pb_s, pb_new = prebuild_all(
        cfg, sim, "ctl", "tile", controller_module_name(cfg), controller_verilog(cfg),
        lambda: tile_replay.harness_text(cfg),
        lambda: plain.tile_plain_text(cfg, plain.MIN_DEPTH), args, paths)

    def workload(n_instr: int):
        words = random_program(cfg.ap, seed, n_instr)
        rng = np.random.default_rng(seed)
        cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
        cam[:, -RESERVED_COLS:] = 0
        return words, cam

    gold_cache: dict[int, tuple[Tile, float]] = {}

    def golden(words, cam) -> tuple[Tile, float]:
        """The golden tile after the program, and the seconds it took (run once per
        program: both paths count it in their end-to-end time)."""
        if len(words) not in gold_cache:
            t0 = time.perf_counter()
            t = Tile(cfg)
            usable = (1 << (cfg.ap.cols - RESERVED_COLS)) - 1
            for r, v in enumerate(tile_replay.row_ints(cam)):
                t.host_write(0, r, v, usable)
            gold_cache[len(words)] = (t.run(words), time.perf_counter() - t0)
        return gold_cache[len(words)]

    if "cocotb" in paths:
        t0 = time.perf_counter()
        words, cam = workload(nc)
        gen_s = time.perf_counter() - t0
        say(f"{sim}: tile, cocotb path, {nc} instructions ...")
        t0 = time.perf_counter()
        c0 = children_cpu()
        pr = run_program_rtl(cfg, sim, words, cam, build_root=croot, path="cocotb")
        cpu = children_cpu() - c0
        call = time.perf_counter() - t0
        want, gold_s = golden(words, cam)
        t0 = time.perf_counter()
        diffs = ["the testbench did not finish"] if not pr.passed or pr.timed_out else \
            tile_differences(cfg, pr.rows, None, pr.counters, pr.error, want)
        cmp_s = time.perf_counter() - t0
        s = pr.summary
        res.cocotb = Measure(s.get("sim_cycles", 0), s.get("wall_s", 0.0),
                             s.get("cycles_per_s") or 0.0, cb_s, cb_new, not diffs,
                             "" if not diffs else f"FAILED: {diffs[0]} (log {pr.log})",
                             cpu, extra={"call_s": round(call, 2)})
        e2e = max(gen_s + call - cb_check + gold_s + cmp_s, 1e-9)
        m = res.cocotb
        res.cocotb_e2e = Measure(m.cycles, e2e, rate(m.cycles, e2e), cb_s, cb_new, m.ok, m.note)
        say(f"  {m.cycles} cycles, {m.cycles_per_s:,.0f} cycles/s (e2e "
            f"{res.cocotb_e2e.cycles_per_s:,.0f}), checked: {'ok' if m.ok else m.note}")

    if "replay" in paths or "plain" in paths:
        t0 = time.perf_counter()
        words, cam = workload(n)
        gen_s = time.perf_counter() - t0
    if "replay" in paths:
        say(f"{sim}: tile, replay path, {n} instructions ...")
        t0, c0 = time.perf_counter(), children_cpu()
        runs = tile_replay.run_tile_replay(cfg, sim, [(words, cam)], root, seed=seed)
        call, cpu = time.perf_counter() - t0, children_cpu() - c0
        info = tile_replay.last_run_info()
        want, gold_s = golden(words, cam)
        t1 = time.perf_counter()
        j = runs[0]
        diffs = ["the harness did not finish the job"] if not j.passed else \
            tile_differences(cfg, j.rows, j.maps, j.counters, j.error, want)
        check = time.perf_counter() - t1 + gold_s
        cyc, sim_s = int(info.get("cycles") or 0), float(info.get("sim_wall_s") or 0.0)
        e2e = gen_s + call - float(info.get("build_s") or 0.0) + check
        note = "" if not diffs else f"FAILED: {diffs[0]} (rerun: {j.command})"
        res.replay_sim = Measure(cyc, sim_s, rate(cyc, sim_s), rb_s, rb_new, not diffs, note,
                                 cpu, {"program_cycles": j.sim_cycles})
        res.replay_e2e = Measure(cyc, e2e, rate(cyc, e2e), rb_s, rb_new, not diffs, note)
        res.breakdown = {"gen_s": round(gen_s + call - sim_s - float(info.get("build_s") or 0),
                                        3), "sim_s": round(sim_s, 3), "check_s": round(check, 3)}
        say(f"  {cyc} cycles ({j.sim_cycles} in the program), sim "
            f"{res.replay_sim.cycles_per_s:,.0f} cycles/s, e2e "
            f"{res.replay_e2e.cycles_per_s:,.0f} cycles/s, checked: {'ok' if not diffs else note}")
        golden_tile: Tile | None = want
    else:
        golden_tile = None

    if "plain" in paths:
        say(f"{sim}: tile, plain testbench, the same {n} instructions ...")
        c0 = children_cpu()
        p = plain.run_tile_plain(cfg, sim, words, cam, root)
        cpu = children_cpu() - c0
        if golden_tile is None:
            golden_tile = golden(words, cam)[0]
        diffs = plain.tile_differences(cfg, p, golden_tile)
        res.plain = Measure(p.cycles, p.wall_s, p.cycles_per_s, pb_s, pb_new, not diffs,
                            "" if not diffs else f"FAILED: {diffs[0]} (log {p.log})", cpu,
                            {"values": p.values})
        say(f"  {p.cycles} cycles, {p.cycles_per_s:,.0f} cycles/s, checked: "
            f"{'ok' if not diffs else res.plain.note}")
    return res


# -- system top ----------------------------------------------------------------------------

def system_program(cfg: Config, seed: int, n_instr: int) -> HostProgram:
    """Random rows into the CAP, one INSTR packet of a random tile program, the CAP read
    back: the tile busy for most of the run, the host link for the rest."""
    rng = np.random.default_rng(seed)
    width = cfg.ap.cols - RESERVED_COLS
    prog = HostProgram(cfg)
    prog.write(0, 0, 0, [int(v) for v in rng.integers(0, 1 << width, size=cfg.ap.rows,
                                                        dtype=np.uint64)], width=width)
    prog.instr(0, random_tile_program(cfg, seed, n_instr, illegal_share=0.0))
    prog.read(0, 0, 0, cfg.ap.rows)
    return prog


def bench_sys(cfg: Config, sim: str, args, k: int, paths: set[str]) -> Result:
    from bfimna.cosim.drivers.backends import backend, compare

    root, seed = args.build_dir, args.seed
    n, nc = args.sys_instr[k], args.sys_cocotb_instr[k] or args.sys_instr[k]
    res = Result("sys", sim, f"WRITE + INSTR of {n} instructions + READ" +
                 (f" (cocotb {nc})" if nc != n else ""))
    croot, cb_s, cb_new, cb_check, rb_s, rb_new, pb_s, pb_new = prebuild_all(
        cfg, sim, "sys", "system top", system_module_name(cfg), system_verilog(cfg),
        lambda: sys_replay.harness_text(cfg),
        lambda: plain.system_plain_text(cfg, plain.MIN_DEPTH), args, paths)
    gold = backend("golden", cfg)
    gold_cache: dict[int, tuple[Any, float]] = {}

    def golden(prog: HostProgram, n_instr: int):
        """The golden system's result and its seconds (once per program: both paths count
        it in their end-to-end time)."""
        if n_instr not in gold_cache:
            t0 = time.perf_counter()
            gold_cache[n_instr] = (gold.run(prog), time.perf_counter() - t0)
        return gold_cache[n_instr]

    if "cocotb" in paths:
        t0 = time.perf_counter()
        prog = system_program(cfg, seed, nc)
        gen_s = time.perf_counter() - t0
        say(f"{sim}: system top, cocotb path, {prog.n_words} words in ...")
        t0, c0 = time.perf_counter(), children_cpu()
        gold_s = 0.0
        try:
            got = backend(sim, cfg, build_root=croot, seed=seed, path="cocotb").run(prog)
            t1 = time.perf_counter()
            want_c, gold_s = golden(prog, nc)     # (timed on its own: it may be cached)
            t2 = time.perf_counter()
            diffs = compare(want_c, got, prog)
            cyc, cps = got.sim_cycles or 0, got.cycles_per_s or 0.0
            log = got.log
            call = (t1 - t0) + (time.perf_counter() - t2)
        except Exception as exc:      # a DriverError names the log
            diffs, cyc, cps, log = [f"{type(exc).__name__}: {exc}"], 0, 0.0, None
            call = time.perf_counter() - t0
        res.cocotb = Measure(cyc, cyc / cps if cps else 0.0, cps, cb_s, cb_new, not diffs,
                             "" if not diffs else f"FAILED: {diffs[0]} (log {log})",
                             children_cpu() - c0, extra={"call_s": round(call, 2)})
        e2e = max(gen_s + call - cb_check + gold_s, 1e-9)
        res.cocotb_e2e = Measure(cyc, e2e, rate(cyc, e2e), cb_s, cb_new, not diffs,
                                 res.cocotb.note)
        say(f"  {cyc} cycles, {cps:,.0f} cycles/s (e2e {res.cocotb_e2e.cycles_per_s:,.0f}), "
            f"checked: {'ok' if not diffs else res.cocotb.note}")

    if "replay" in paths or "plain" in paths:
        t0 = time.perf_counter()
        prog = system_program(cfg, seed, n)
        gen_s = time.perf_counter() - t0
        want = None
    if "replay" in paths:
        say(f"{sim}: system top, replay path, {prog.n_words} words in ...")
        rtl = backend(sim, cfg, build_root=root, seed=seed)
        t0, c0 = time.perf_counter(), children_cpu()
        try:
            got = rtl.run(prog)
            err = None
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
        call, cpu = time.perf_counter() - t0, children_cpu() - c0
        run = rtl._last_run
        sim_s = run.wall_s if run is not None else 0.0
        total = 0
        if run is not None and run.out.exists():
            for line in run.out.read_text().splitlines()[::-1]:
                if line.startswith("D "):
                    total = int(line.split()[1])
                    break
        want, gold_s = golden(prog, n)
        t1 = time.perf_counter()
        diffs = [err] if err else compare(want, got, prog)
        check = time.perf_counter() - t1 + gold_s
        e2e = gen_s + call + check
        note = "" if not diffs else f"FAILED: {diffs[0]} (rerun: {rtl.command})"
        work = 0 if err else (got.sim_cycles or 0)
        res.replay_sim = Measure(total, sim_s, rate(total, sim_s), rb_s, rb_new, not diffs,
                                 note, cpu, {"work_cycles": work})
        res.replay_e2e = Measure(total, e2e, rate(total, e2e), rb_s, rb_new, not diffs, note)
        res.breakdown = {"gen_s": round(gen_s + call - sim_s, 3), "sim_s": round(sim_s, 3),
                         "check_s": round(check, 3)}
        if run is not None and not diffs:
            run.cleanup()
        say(f"  {total} cycles ({work} first word to idle), sim "
            f"{res.replay_sim.cycles_per_s:,.0f} cycles/s, e2e "
            f"{res.replay_e2e.cycles_per_s:,.0f} cycles/s, checked: {'ok' if not diffs else note}")

    if "plain" in paths:
        say(f"{sim}: system top, plain testbench, the same {prog.n_words} words ...")
        c0 = children_cpu()
        p = plain.run_system_plain(cfg, sim, prog, root)
        cpu = children_cpu() - c0
        if want is None:
            want = golden(prog, n)[0]
        diffs = plain.system_differences(cfg, p, want.responses)
        res.plain = Measure(p.cycles, p.wall_s, p.cycles_per_s, pb_s, pb_new, not diffs,
                            "" if not diffs else f"FAILED: {diffs[0]} (log {p.log})", cpu,
                            {"values": p.values})
        say(f"  {p.cycles} cycles, {p.cycles_per_s:,.0f} cycles/s, checked: "
            f"{'ok' if not diffs else res.plain.note}")
    return res


# -- board top -----------------------------------------------------------------------------

def bench_board(cfg: Config, sim: str, args, k: int, paths: set[str]) -> Result:
    """The board top (the system behind its UART, hdl/gen/board.py) on the system top's
    workload, over the link at --board-divisor: the cocotb path (cosim/tb/board_tb.py,
    its own cycles/s: power-on to idle, the register reads left out) and the replay path
    (cosim/replay/board.py; sim: every cycle of the simulator process, register reads
    included). No plain testbench: the UART bit timing is the workload."""
    from bfimna.cosim.drivers.backends import backend, compare
    from bfimna.cosim.replay import board as board_replay
    from bfimna.hdl.flow.emit import board_verilog
    from bfimna.hdl.gen.board import board_module_name

    root, seed, div = args.build_dir, args.seed, args.board_divisor
    n = args.board_instr[k]
    res = Result("board", sim, f"WRITE + INSTR of {n} instructions + READ over the UART "
                               f"(divisor {div})")
    unit = f"board{div}"
    dut = board_verilog(cfg, div)
    croot, cb_s, cb_new, cb_check, rb_s, rb_new, _pb_s, _pb_new = prebuild_all(
        cfg, sim, unit, "board top", board_module_name(cfg), dut,
        lambda: board_replay.harness_text(cfg, div), lambda: "", args,
        paths - {"plain"})
    prog = system_program(cfg, seed, n)
    want = backend("golden", cfg).run(prog)
    for path in ("cocotb", "replay"):
        if path not in paths:
            continue
        say(f"{sim}: board top, {path} path, {prog.n_words} words in ...")
        rtl = backend(sim, cfg, build_root=croot if path == "cocotb" else root, seed=seed,
                      link="uart", divisor=div, path=path)
        t0, c0 = time.perf_counter(), children_cpu()
        try:
            got = rtl.run(prog)
            diffs = compare(want, got, prog)
        except Exception as exc:      # a DriverError names the log
            got, diffs = None, [f"{type(exc).__name__}: {exc}"]
        call, cpu = time.perf_counter() - t0, children_cpu() - c0
        note = "" if not diffs else f"FAILED: {diffs[0]}"
        if path == "cocotb":
            cyc = got.sim_cycles or 0 if got else 0
            cps = got.cycles_per_s or 0.0 if got else 0.0
            res.cocotb = Measure(cyc, cyc / cps if cps else 0.0, cps, cb_s, cb_new, not diffs,
                                 note, cpu, {"call_s": round(call, 2)})
            res.cocotb_e2e = Measure(cyc, call, rate(cyc, call), cb_s, cb_new, not diffs, note)
        else:
            run = rtl._last_run
            sim_s = run.wall_s if run is not None else 0.0
            total = 0
            if run is not None and run.out.exists():
                for line in run.out.read_text().splitlines()[::-1]:
                    if line.startswith("D "):
                        total = int(line.split()[1])
                        break
            res.replay_sim = Measure(total, sim_s, rate(total, sim_s), rb_s, rb_new,
                                     not diffs, note, cpu,
                                     {"work_cycles": got.sim_cycles if got else 0})
            res.replay_e2e = Measure(total, call, rate(total, call), rb_s, rb_new, not diffs,
                                     note)
            if run is not None and not diffs:
                run.cleanup()
        m = res.cocotb if path == "cocotb" else res.replay_sim
        assert m is not None
        say(f"  {m.cycles} cycles, {m.cycles_per_s:,.0f} cycles/s, checked: "
            f"{'ok' if not diffs else note}")
    return res


# -- report --------------------------------------------------------------------------------

def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _m(m: Measure | None) -> str:
    if m is None:
        return "-"
    return _n(m.cycles_per_s) + ("" if m.ok else " (FAILED)")


def _cyc(m: Measure | None) -> str:
    return f"{m.cycles:,}" if m is not None else "-"


def _b(m: Measure | None) -> str:
    return "-" if m is None or m.build_s is None else f"{m.build_s:.1f}" + (
        "" if m.built else "*")


def report(cfg: Config, results: list[Result]) -> list[str]:
    out = [f"## Simulated cycles per second: {cfg.name} ({cfg.ap.dims}D CAP {cfg.ap.rows} x "
           f"{cfg.ap.cols}, {cfg.tile.maps} MAPs {cfg.map_ap.rows} x {cfg.map_ap.cols}, "
           f"{cfg.system.tiles} tile(s))", "",
           "| unit | simulator | cycles (cocotb / replay / plain) | cocotb | cocotb e2e | "
           "replay sim | replay e2e | plain | build s (cocotb / replay / plain) |",
           "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        out.append(f"| {UNIT_LABEL[r.unit]} | {r.sim} | {_cyc(r.cocotb)} / "
                   f"{_cyc(r.replay_sim)} / {_cyc(r.plain)} | {_m(r.cocotb)} | "
                   f"{_m(r.cocotb_e2e)} | "
                   f"{_m(r.replay_sim)} | {_m(r.replay_e2e)} | {_m(r.plain)} | "
                   f"{_b(r.cocotb)} / {_b(r.replay_sim)} / {_b(r.plain)} |")
    out += ["", "(build s with *: an up-to-date build was reused; the time is its check. "
            "CPU time: of the simulator processes; cocotb's is its whole process, start-up "
            "included, so that ratio leans a little towards the replay)", "",
            "| unit | simulator | replay e2e / cocotb e2e | replay sim / cocotb | (CPU time) | "
            "replay sim / plain | (CPU time) | replay e2e / plain | "
            "replay e2e: gen / sim / check s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        b = r.breakdown
        bd = (f"{b['gen_s']:.2f} / {b['sim_s']:.2f} / {b['check_s']:.2f}" if b else "-")
        out.append(f"| {UNIT_LABEL[r.unit]} | {r.sim} | "
                   f"{_n(r.ratio('replay_e2e', 'cocotb_e2e'), 1)} | "
                   f"{_n(r.ratio('replay_sim', 'cocotb'), 1)} | "
                   f"{_n(r.ratio_cpu('replay_sim', 'cocotb'), 1)} | "
                   f"{_n(r.ratio('replay_sim', 'plain'), 2)} | "
                   f"{_n(r.ratio_cpu('replay_sim', 'plain'), 2)} | "
                   f"{_n(r.ratio('replay_e2e', 'plain'), 2)} | {bd} |")
    out.append("")
    sysv = next((r for r in results if r.unit == "sys" and r.sim == "verilator"), None)
    if sysv is not None:
        e2e, simr = sysv.ratio("replay_e2e", "cocotb_e2e"), sysv.ratio("replay_sim", "cocotb")
        cpur = sysv.ratio_cpu("replay_sim", "cocotb")
        if e2e is not None:
            def met(x: float | None) -> str:
                return "-" if x is None else "met" if x >= TARGET_REPLAY_COCOTB else "NOT met"
            out.append(f"- target replay/cocotb >= {TARGET_REPLAY_COCOTB:.0f}x on the system "
                       f"top (Verilator): simulation {_n(simr, 1)}x ({met(simr)}), "
                       f"{_n(cpur, 1)}x in CPU time ({met(cpur)}); end to end, golden check "
                       f"included on both sides, {e2e:.1f}x ({met(e2e)})")
    for r in results:
        rp, rc = r.ratio("replay_sim", "plain"), r.ratio_cpu("replay_sim", "plain")
        if rp is not None:
            verdict = "met" if rp >= TARGET_REPLAY_PLAIN else "NOT met"
            out.append(f"- target replay/plain >= {TARGET_REPLAY_PLAIN} ({UNIT_LABEL[r.unit]}, "
                       f"{r.sim}): {rp:.2f} wall, {_n(rc, 2)} CPU time: {verdict}")
    failed = [f"{UNIT_LABEL[r.unit]} {r.sim} {name}: {m.note}" for r in results
              for name, m in (("cocotb", r.cocotb), ("replay", r.replay_sim),
                              ("plain", r.plain)) if m is not None and not m.ok]
    out += [f"- CHECK {f}" for f in failed]
    return out


def main() -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=default_config_path())
    ap.add_argument("--sims", nargs="+", choices=SIMS, default=list(SIMS))
    ap.add_argument("--units", nargs="+", choices=UNITS, default=list(DEFAULT_UNITS))
    ap.add_argument("--paths", nargs="+", choices=("cocotb", "replay", "plain"),
                    default=["cocotb", "replay", "plain"])
    def sizes(name: str, default: tuple[int, int], what: str) -> None:
        ap.add_argument(name, type=int, nargs=2, metavar=("VERILATOR", "ICARUS"),
                        default=default, help=what)

    sizes("--ap-ops", (100_000, 1500), "AP core: micro-ops of the replay path")
    sizes("--ap-cocotb-ops", (10_000, 1000), "AP core: micro-ops of the cocotb path")
    sizes("--ap-plain-cycles", (0, 0), "AP core: cycles of the plain testbench (0: as many "
          "as the replay run)")
    sizes("--tile-instr", (2000, 16), "tile: program length")
    sizes("--tile-cocotb-instr", (0, 0), "tile: program length of the cocotb path (0: the "
          "same program)")
    sizes("--sys-instr", (2000, 24), "system top: tile program length")
    sizes("--sys-cocotb-instr", (0, 0), "system top: tile program length of the cocotb path "
          "(0: the same program)")
    sizes("--board-instr", (200, 8), "board top: tile program length")
    ap.add_argument("--board-divisor", type=int, default=8,
                    help="board top: UART clock cycles per bit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-dir", type=Path, default=Path("build") / "bench")
    ap.add_argument("--reuse", type=Path, nargs="*", default=[], metavar="DIR",
                    help="build roots whose up-to-date builds to use (see above)")
    ap.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = ap.parse_args()
    args.build_dir = args.build_dir.resolve()
    args.reuse = [p.resolve() for p in args.reuse]
    cfg = load_config(args.config)
    paths = set(args.paths)
    say(f"{cfg.name}: units {' '.join(args.units)}, simulators {' '.join(args.sims)}, "
        f"paths {' '.join(sorted(paths))}, build dir {args.build_dir}")

    t_start = time.perf_counter()
    results: list[Result] = []
    bench = {"ap": bench_ap, "tile": bench_tile, "sys": bench_sys, "board": bench_board}
    for sim in args.sims:
        k = SIMS.index(sim)
        for unit in UNITS:
            if unit in args.units:
                results.append(bench[unit](cfg, sim, args, k, paths))
    total = time.perf_counter() - t_start

    print()
    lines = report(cfg, results)
    print("\n".join(lines))
    print(f"\n({total:.0f} s in all, builds included)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "config": cfg.name, "seed": args.seed, "total_s": round(total, 1),
            "sizes": {k: list(getattr(args, k)) for k in (
                "ap_ops", "ap_cocotb_ops", "ap_plain_cycles", "tile_instr",
                "tile_cocotb_instr", "sys_instr", "sys_cocotb_instr", "board_instr")},
            "results": [asdict(r) | {"ratios": {
                "replay_e2e/cocotb_e2e": r.ratio("replay_e2e", "cocotb_e2e"),
                "replay_sim/cocotb": r.ratio("replay_sim", "cocotb"),
                "replay_sim/cocotb_cpu": r.ratio_cpu("replay_sim", "cocotb"),
                "replay_sim/plain": r.ratio("replay_sim", "plain"),
                "replay_sim/plain_cpu": r.ratio_cpu("replay_sim", "plain"),
                "replay_e2e/plain": r.ratio("replay_e2e", "plain")}} for r in results],
            "report": lines}, indent=1) + "\n")
        say(f"wrote {args.json}")
    ok = all(m.ok for r in results for m in (r.cocotb, r.replay_sim, r.plain) if m is not None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
