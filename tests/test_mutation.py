"""Mutation scores on the RTL for the packet parser, the global counters, MOVW and the tile
counters (issue 17): every mutant of hdl/gen/system.py (PARSER_FAULTS, GLOBAL_COUNTER_FAULTS)
and hdl/gen/controller.py (MOVW_FAULTS, COUNTER_FAULTS) must make its catching tier
disagree with golden.

Cost: each mutant is one deliberate break, but they are not built one by one. The VERIFY
build of a generator holds every mutant behind a `tb_fault` input (a mutant schema), so
one Verilator build per configuration serves the whole matrix, each mutant selected per
run (system: one short simulation each; tile: one job each, the whole matrix in ONE
simulator process). The same build loads every counter with a preset after the reset
(`tb_load`, `tb_preset`), which is how the saturating-counter mutants are caught and the
wrap tests (tests/test_counters.py) run.

Catching tiers (the same checks as the suite's, on the VERIFY build):
- parser and global counters, on sys_t2k2 under Verilator: the host-packet rule table
  (tests/test_packet_rules.py ROWS, each bad packet followed by a SYNC, a WRITE and a READ),
  framing rows (tlast early, late, missing) and a seeded random host program (every packet
  kind), at idle / back-pressure 0.3, counters from near their top; every response word
  and every register word read over AXI4-Lite is compared with the golden system's. The
  1D-only rule (COPYCOL needs a 2D CAP) runs on ap1d_100x24 under Icarus.
- MOVW and the tile counters, on ap2d_37x16 under Verilator: seeded random tile programs
  with many XROWS + MOVW (strides 0..3), half from counters at 0 and half near their top;
  every row of every AP and every counter compared with the golden tile's.
The unmutated VERIFY build (tb_fault 0) must agree with golden on the same stimulus, so a
mutant counts as caught only through a real difference. Scores are printed and must be
complete: no mutant is equivalent (each has an input that tells it apart, in the tiers).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_packet_rules import ROWS
from test_packet_rules import program as rules_program

from bfimna.cosim.replay.system import expected_run, verify_differences
from bfimna.cosim.replay.tile import TileJobRun, run_tile_replay
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import Config, load_config
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, encode
from bfimna.golden.spec.regs import BROADCAST, PT, dest, header
from bfimna.hdl.gen.controller import (
    COUNTER_FAULTS,
    MOVW_FAULTS,
    VERIFY,
    tile_mutant_numbers,
)
from bfimna.hdl.gen.system import (
    GLOBAL_COUNTER_FAULTS,
    PARSER_FAULTS,
    system_mutant_numbers,
)

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"
ONE_D_ONLY = {"copycol_needs_2d"}     # a rule only a 1D CAP has
TILE_PROGRAMS = 8                     # random tile programs per tile mutant

# framing rules (golden System.beat): (name, config, words of the bad frame)
FRAMING = [
    ("tlast on a WRITE header", "sys_t2k2", [header(PT.WRITE, count=1, width=4)]),
    ("no tlast on a SYNC", "sys_t2k2", [header(PT.SYNC), 5]),
    ("no tlast on a COPY destination", "sys_t2k2",
     [header(PT.COPY, count=1, width=4), dest(1), 7]),
    ("tlast before the payload's end", "sys_t2k2", [header(PT.WRITE, count=3, width=4), 5]),
    ("no tlast after the payload", "sys_t2k2", [header(PT.INSTR, count=1), 0, 0]),
    # the rule table's "INSTR count 0" row is a lone header with tlast, which the
    # payload-framing check rejects as well: only a word after it tells a parser without
    # the count check (mutant instr_count) apart
    ("INSTR count 0 followed by a word", "sys_t2k2", [header(PT.INSTR, count=0), 0]),
]


def cfg_of(name: str) -> Config:
    return load_config(CONFIG_DIR / f"{name}.yaml")


def near_top(cfg: Config, gap: int) -> int:
    """A counter preset `gap` below the wrap."""
    return (1 << cfg.ap.counter_bits) - gap


def system_program(cfg: Config, seed: int) -> HostProgram:
    """The catching tier of the system mutants: every rule row and framing row of `cfg`
    (each followed by a SYNC, a WRITE and a READ), then a random host program."""
    rows = [r for r in ROWS if r[1] == cfg.name] + [
        (n, c, w, "") for n, c, w in FRAMING if c == cfg.name]
    prog = rules_program(cfg, rows)
    if cfg.system.tiles > 1:
        # one good packet of every kind (every global counter moves), then random ones
        prog.instr(BROADCAST, [encode(Instr(op=Opc.ROWS, lo=0, hi=4)),
                               encode(Instr(op=Opc.ADDI, d=0, n=6, imm=5))])
        prog.copy(0, 0, 0, 3, 1, 1, 2, col=0, width=6, dst_col=4)
        prog.copy_cols(1, 2, 3, 0, 5)
        prog.read(1, 1, 2, 3, col=4, width=6)
        prog.read(0, 0, 0, 4, width=12)
        extra = random_host_program(cfg, seed, n_packets=30)
        prog.frames += extra.frames
        prog.responses += extra.responses
    return prog


def system_score(cfg: Config, sim: str, names: list[str], seed: int) -> tuple[list, list]:
    """(caught, missed) of the system mutants `names` on `cfg`; the unmutated VERIFY build
    must agree with golden first (from 0 and from near the top)."""
    prog = system_program(cfg, seed)
    expect = {p: expected_run(cfg, prog, p, 0.3, 0.3) for p in (0, near_top(cfg, 40))}
    for preset, exp in expect.items():
        diffs, run = verify_differences(cfg, sim, prog, BUILD, 0, preset, seed=seed,
                                        idle=0.3, backpressure=0.3, expected=exp)
        assert not diffs, f"{cfg.name} unmutated, preset {preset:#x}: {diffs[:4]}; " \
                          f"rerun: {run.command}"
        run.cleanup()
    numbers = system_mutant_numbers()
    caught: list[tuple[str, list[str]]] = []
    missed: list[tuple[str, list[str]]] = []
    for name in names:
        top = near_top(cfg, 40)
        diffs, run = verify_differences(cfg, sim, prog, BUILD, numbers[name], top,
                                        seed=seed, idle=0.3, backpressure=0.3,
                                        expected=expect[top])
        (caught if diffs else missed).append((name, diffs[:1]))
        run.cleanup()
    return caught, missed


@pytest.mark.cosim
def test_parser_and_global_counter_mutants_are_caught(seed):
    cfg = cfg_of("sys_t2k2")
    names = [n for n in {**PARSER_FAULTS, **GLOBAL_COUNTER_FAULTS} if n not in ONE_D_ONLY]
    caught, missed = system_score(cfg, "verilator", names, seed)
    one_d, missed_1d = system_score(cfg_of("ap1d_100x24"), "icarus", sorted(ONE_D_ONLY), seed)
    caught, missed = caught + one_d, missed + missed_1d
    for block, faults in (("packet parser", PARSER_FAULTS),
                          ("global counters", GLOBAL_COUNTER_FAULTS)):
        c = [n for n, _ in caught if n in faults]
        print(f"\n[mutation] {block}: {len(c)}/{len(faults)} mutants caught (seed {seed})")
        for n, why in caught:
            if n in faults:
                print(f"  {n}: {why[0]}")
    assert not missed, f"mutants not caught (seed {seed}): {[n for n, _ in missed]}"
    assert len(caught) == len(PARSER_FAULTS) + len(GLOBAL_COUNTER_FAULTS)


# -- MOVW and the tile counters --------------------------------------------------------------

# every job starts with these (ap2d_37x16): ROWS, a REDUCE (MVCOL micro-ops), a signed
# CLAMP and MAX (CMPA micro-ops), and a MOVW each way with a stride above 1
PREFIX = [Instr(op=Opc.ROWS, lo=0, hi=37),
          Instr(op=Opc.REDUCE, d=0, a=4, n=4, m=2),
          Instr(op=Opc.CLAMP, s=True, d=8, n=6, m=3),
          Instr(op=Opc.MAX, s=True, d=0, a=6, n=5),
          Instr(op=Opc.XROWS, srow=1, drow=2, stride=3),
          Instr(op=Opc.MOVW, sap=1, dap=0, a=2, d=5, n=6, count=4),
          Instr(op=Opc.XROWS, srow=0, drow=3, stride=2),
          Instr(op=Opc.MOVW, sap=0, dap=1, a=1, d=3, n=7, count=5)]


def tile_job(cfg: Config, s: int):
    """A fixed prefix (PREFIX), then a random tile program heavy in XROWS + MOVW; a
    random CAP and random MAPs."""
    rng = np.random.default_rng(s)
    words = [encode(i) for i in PREFIX] + random_tile_program(
        cfg, s, int(rng.integers(12, 25)), transfer_share=0.5, illegal_share=0.05)
    cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
    cam[:, -RESERVED_COLS:] = 0
    maps = [rng.integers(0, 2, size=(cfg.map_ap.rows, cfg.map_ap.cols)).astype(np.uint8)
            for _ in range(cfg.tile.maps)]
    return words, cam, maps


def golden_tile(cfg: Config, words, cam, maps) -> Tile:
    from test_replay_tile import golden
    return golden(cfg, words, cam, maps)


def tile_difference(cfg: Config, got: TileJobRun, want: Tile, preset: int) -> str | None:
    """None when the RTL job equals the golden tile with its counters started at
    `preset` (golden's counters wrap modulo 2^counter_bits), else the first difference."""
    if got.timed_out:
        return f"timed out after {got.sim_cycles} cycles"
    if not got.passed:
        return "the harness did not finish the job"
    for k in range(cfg.tile.maps + 1):
        rows = got.rows if k == 0 else got.maps[k - 1]
        if rows != want.ap(k).rows_as_ints():
            return f"AP {k} rows differ"
    mod = 1 << cfg.ap.counter_bits
    for key, v in want.counters.items():
        if got.counters.get(key) != (v + preset) % mod:
            return f"counter {key}: {got.counters.get(key)}, expected {(v + preset) % mod}"
    if got.error != want.error:
        return "error flag"
    return None


def tile_matrix(cfg: Config, sim: str, names: list[str], seed: int, programs: int,
                gap: int):
    """Every mutant of `names` (and the unmutated build) on the same `programs` random
    programs, half from counters at 0 and half `gap` below the top, in one simulator run.
    Returns {mutant: first difference or None}, the unmutated build under ''."""
    seeds = [seed + i for i in range(programs)]
    jobs0 = [tile_job(cfg, s) for s in seeds]
    want = [golden_tile(cfg, *j) for j in jobs0]
    presets = [0 if i % 2 == 0 else near_top(cfg, gap) for i in range(programs)]
    numbers = tile_mutant_numbers()
    plan = [(name, i) for name in ["", *names] for i in range(programs)]
    jobs = [jobs0[i] for _n, i in plan]
    mutants = [(numbers[name] if name else 0, presets[i]) for name, i in plan]
    got = run_tile_replay(cfg, sim, jobs, BUILD, seed=seed, fault=VERIFY, mutants=mutants,
                          keep=True)
    out: dict[str, str | None] = {}
    for (name, i), g in zip(plan, got, strict=True):
        why = tile_difference(cfg, g, want[i], presets[i])
        if why is not None and out.get(name) is None:
            out[name] = f"program {i} (seed {seeds[i]}): {why}"
        out.setdefault(name, None)
    if got and got[0].run is not None:
        if out[""] is None:
            got[0].run.cleanup()
        else:
            out[""] += f"; rerun: {got[0].command}"
    return out, want


@pytest.mark.cosim
def test_movw_and_tile_counter_mutants_are_caught(seed):
    cfg = cfg_of("ap2d_37x16")
    names = [*MOVW_FAULTS, *COUNTER_FAULTS]
    res, want = tile_matrix(cfg, "verilator", names, seed, TILE_PROGRAMS, gap=100)
    assert res[""] is None, f"the unmutated VERIFY build differs: {res['']}"
    assert sum(w.counters["row_transfers"] for w in want) > 0     # MOVWs did run
    for block, faults in (("MOVW", MOVW_FAULTS), ("tile counters", COUNTER_FAULTS)):
        c = [n for n in faults if res[n] is not None]
        print(f"\n[mutation] {block}: {len(c)}/{len(faults)} mutants caught by "
              f"{TILE_PROGRAMS} random tile programs (seed {seed})")
        for n in c:
            print(f"  {n}: {res[n]}")
    missed = [n for n in names if res[n] is None]
    assert not missed, f"mutants not caught (seed {seed}): {missed}"


def test_tile_prefix_is_legal():
    from bfimna.golden.model.tile import Tile
    cfg = cfg_of("ap2d_37x16")
    t = Tile(cfg).run([encode(i) for i in PREFIX])
    assert t.counters["errors"] == 0 and t.counters["col_transfers"] > 0


def test_mutant_numbers_are_distinct():
    """Tile and system mutants share the tb_fault port: their numbers never collide."""
    t, s = tile_mutant_numbers(), system_mutant_numbers()
    nums = list(t.values()) + list(s.values())
    assert len(set(nums)) == len(nums) and 0 not in nums and max(nums) < 256
    assert set(t) == {*MOVW_FAULTS, *COUNTER_FAULTS}


def test_mutants_leave_real_rtl_alone():
    """Real RTL elaborates no mutant and no test port; an unknown fault name fails."""
    from bfimna.hdl.flow.emit import controller_verilog
    from bfimna.hdl.gen.controller import APController
    from bfimna.hdl.gen.system import System
    cfg = cfg_of("ap2d_37x16")
    for cls in (APController, System):
        with pytest.raises(ValueError, match="unknown fault"):
            cls(cfg, fault="no_such_mutant")
    real = controller_verilog(cfg)
    assert "tb_fault" not in real and "tb_preset" not in real
