"""Widths 17..32 (the ISA's limit) on the RTL: every operation x signedness x width, on the
emitted tile Verilog under Verilator (the replay harness, cosim/replay/tile.py), on a
configuration wide enough for them (test_coverage's wide72: a 16 x 72 2D CAP, 71 usable
columns), each instruction on fresh random rows and a random row range, checked against
numpy (tests/test_controller.py: reference, not the golden model). Widths 1..16 run on the
RTL in the random tiers; golden covers 1..32 (tests/test_controller.py:
test_every_width_1_to_32); test_coverage runs a covering program of every (op, width,
sign) against the golden tile on the same model. Prints the coverage table
(op x width x sign) and asserts it full.

Until 2026-11-27 this ran the tile generator in Amaranth's simulator (297 s of the suite,
summed); on the Verilator model that test_coverage builds anyway it takes seconds, on more
rows (16 against 5).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_controller import SWEEP_OPS, reference, sweep_instr
from test_coverage import wide_config

from bfimna.cosim.replay.tile import run_tile_replay
from bfimna.golden.model.ap import int_to_bits
from bfimna.golden.model.controller import cy_col
from bfimna.golden.spec.isa import MAX_WIDTH, RESERVED_COLS, Instr, Opc, encode, operand_fields

from conftest import ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
WIDTHS = range(17, MAX_WIDTH + 1)


def field(rows: list[int], start: int, width: int) -> np.ndarray:
    return np.array([(r >> start) & ((1 << width) - 1) for r in rows], dtype=object)


def sweep_cases(cfg, seed):
    """(instruction, initial CAP rows, lo, hi) for every op x sign x width 17..32 with a
    legal instruction: fresh random rows (the reserved columns clear) and, in half the
    cases, a random row range (REDUCE: at least two rows)."""
    rng = np.random.default_rng(seed)
    usable = cfg.ap.cols - RESERVED_COLS
    cases = []
    for op in SWEEP_OPS:
        for signed in (False, True):
            for n in WIDTHS:
                ins = sweep_instr(op, n, signed, rng)
                if ins is None:
                    continue
                rows = [int.from_bytes(rng.bytes(9), "little") & ((1 << usable) - 1)
                        for _ in range(cfg.ap.rows)]
                lo, hi = sorted(int(x) for x in rng.integers(0, cfg.ap.rows + 1, size=2))
                if rng.random() < 0.5 or op == Opc.REDUCE and hi - lo < 2:
                    lo, hi = 0, cfg.ap.rows
                cases.append((ins, rows, lo, hi))
    return cases


def test_wide_widths_on_rtl_match_numpy(seed):
    cfg = wide_config()
    assert cfg.ap.cols - RESERVED_COLS >= 67       # MAC 32 -> 32, MUL 16 x 16 fit
    cases = sweep_cases(cfg, seed)
    jobs = []
    for ins, rows, lo, hi in cases:
        cam = np.array([int_to_bits(r, cfg.ap.cols) for r in rows], dtype=np.uint8)
        jobs.append(([encode(Instr(op=Opc.ROWS, lo=lo, hi=hi)), encode(ins)], cam, None))
    got = run_tile_replay(cfg, "verilator", jobs, BUILD, seed=seed, keep=True)
    coverage: set[tuple[str, int, bool]] = set()
    for k, ((ins, rows, lo, hi), g) in enumerate(zip(cases, got, strict=True)):
        where = f"case {k}: {ins} rows {lo}..{hi} (seed {seed}); rerun: {g.command}"
        assert g.passed and not g.timed_out, f"{where}: the harness did not finish"
        assert not g.error, f"{where}: the tile flagged an illegal word"
        f = operand_fields(ins)
        vals = {r: np.array(field(rows, *f[r]), dtype=np.int64) if r in f else None
                for r in ("d", "a", "b")}
        rowen = np.zeros(cfg.ap.rows, dtype=bool)
        rowen[lo:hi] = True
        want = np.where(rowen, reference(ins, vals["d"], vals["a"], vals["b"], rowen),
                        vals["d"])
        dw = field(g.rows, *f["d"]).astype(np.int64)
        assert np.array_equal(dw, want), f"{where}: d field {dw.tolist()} != {want.tolist()}"
        owned = set(range(f["d"][0], sum(f["d"]))) | {cy_col(cfg.ap)}
        if ins.op == Opc.REDUCE:
            owned |= set(range(f["a"][0], sum(f["a"])))
        keep = sum(1 << c for c in range(cfg.ap.cols) if c not in owned)
        assert [r & keep for r in g.rows] == [r & keep for r in rows], \
            f"{where}: a column the instruction does not own changed"
        coverage.add((Opc(ins.op).name, ins.n, ins.s))
    if got[0].run is not None:
        got[0].run.cleanup()

    want_cells = {(op.name, n, s) for op in SWEEP_OPS for s in (False, True) for n in WIDTHS
                  if sweep_instr(op, n, s, np.random.default_rng(0)) is not None}
    print(f"\n[coverage] RTL (Verilator, {cfg.name}) op x width 17..32 x sign "
          f"(u s per width; - none), {len(cases)} instructions, seed {seed}")
    for op in SWEEP_OPS:
        line = " ".join("".join("x" if (op.name, n, s) in coverage else
                                ("-" if (op.name, n, s) not in want_cells else ".")
                                for s in (False, True)) for n in WIDTHS)
        print(f"  {op.name:7s} {line}")
    print(f"  {len(coverage & want_cells)}/{len(want_cells)} cells")
    assert want_cells <= coverage, sorted(want_cells - coverage)
