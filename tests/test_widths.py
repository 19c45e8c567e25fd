"""Widths 17..32 (the ISA's limit) on the RTL: every operation x signedness x width on the
tile generator in Amaranth's simulator, on a configuration wide enough for them
(tests/data/wide_tile.yaml: 67 usable CAP columns), each instruction on fresh random rows
and a random row range, checked against numpy (tests/test_controller.py: reference, not
the golden model). Widths 1..16 run on the RTL in the random tiers; golden covers 1..32
(tests/test_controller.py: test_every_width_1_to_32). Prints the coverage table (op x
width x sign) and asserts it full.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_host import host_load
from rules_table import WIDE
from test_controller import SWEEP_OPS, reference, sweep_instr

from bfimna.golden.model.controller import cy_col
from bfimna.golden.spec.isa import MAX_WIDTH, RESERVED_COLS, Instr, Opc, encode, operand_fields
from bfimna.hdl.gen.controller import HOST_READ, APController

WIDTHS = range(17, MAX_WIDTH + 1)
COVERAGE: dict[tuple[str, int, bool], int] = {}


def field(rows: list[int], start: int, width: int) -> np.ndarray:
    return np.array([(r >> start) & ((1 << width) - 1) for r in rows], dtype=object)


def run_cases(cfg, cases):
    """cases: (instruction, initial CAP rows, lo, hi). Per case: write the rows, ROWS
    lo hi, the instruction, read the rows back. Returns the rows after each case."""
    dut = APController(cfg)
    sim = Simulator(dut)
    out: list[list[int]] = []

    async def send(ctx, word):
        ctx.set(dut.s_valid, 1)
        ctx.set(dut.s_data, word)
        await ctx.tick()
        ctx.set(dut.s_valid, 0)
        await ctx.tick()
        while ctx.get(dut.busy):
            await ctx.tick()

    async def bench(ctx):
        for ins, rows, lo, hi in cases:
            await host_load(ctx, dut, 0, rows, (1 << cfg.ap.cols) - 1)
            await send(ctx, encode(Instr(op=Opc.ROWS, lo=lo, hi=hi)))
            await send(ctx, encode(ins))
            got = []
            for r in range(cfg.ap.rows):
                ctx.set(dut.host_op, HOST_READ)
                ctx.set(dut.host_addr, r)
                await ctx.tick()
                got.append(ctx.get(dut.host_rdata))
            ctx.set(dut.host_op, 0)
            out.append(got)
        assert not ctx.get(dut.error)

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("op", SWEEP_OPS, ids=lambda o: o.name)
def test_wide_widths_on_rtl_match_numpy(op, seed):
    cfg = WIDE
    rng = np.random.default_rng(seed)
    usable = cfg.ap.cols - RESERVED_COLS
    cases = []
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
    results = run_cases(cfg, cases)
    for (ins, rows, lo, hi), got in zip(cases, results, strict=True):
        f = operand_fields(ins)
        vals = {k: np.array(field(rows, *f[k]), dtype=np.int64) if k in f else None
                for k in ("d", "a", "b")}
        rowen = np.zeros(cfg.ap.rows, dtype=bool)
        rowen[lo:hi] = True
        want = np.where(rowen, reference(ins, vals["d"], vals["a"], vals["b"], rowen),
                        vals["d"])
        dw = field(got, *f["d"]).astype(np.int64)
        assert np.array_equal(dw, want), f"{ins} rows {lo}..{hi} (seed {seed})"
        owned = set(range(f["d"][0], sum(f["d"]))) | {cy_col(cfg.ap)}
        if ins.op == Opc.REDUCE:
            owned |= set(range(f["a"][0], sum(f["a"])))
        keep = sum(1 << c for c in range(cfg.ap.cols) if c not in owned)
        assert [g & keep for g in got] == [r & keep for r in rows], f"{ins}: other columns"
        COVERAGE[(op.name, ins.n, ins.s)] = COVERAGE.get((op.name, ins.n, ins.s), 0) + 1
    # this op's row of the coverage table is full (checked here too, so that the check holds
    # when pytest-xdist runs the table test below in another worker)
    row = {(op.name, n, s) for s in (False, True) for n in WIDTHS
           if sweep_instr(op, n, s, np.random.default_rng(0)) is not None}
    assert row <= set(COVERAGE), sorted(row - set(COVERAGE))


def test_wide_width_coverage_is_full():
    """Runs after the sweep above (later in the file): every legal (op, width 17..32,
    sign) cell was run on the RTL."""
    want = {(op.name, n, s) for op in SWEEP_OPS for s in (False, True) for n in WIDTHS
            if sweep_instr(op, n, s, np.random.default_rng(0)) is not None}
    ran = {k[0] for k in COVERAGE}
    if ran != {op.name for op in SWEEP_OPS}:
        pytest.skip("some sweeps ran in another pytest-xdist process: each sweep test "
                    "checked its own row of the table")
    print("\n[coverage] RTL (Amaranth) op x width 17..32 x sign (u s per width; - none)")
    for op in SWEEP_OPS:
        line = " ".join("".join("x" if (op.name, n, s) in COVERAGE else
                                ("-" if (op.name, n, s) not in want else ".")
                                for s in (False, True)) for n in WIDTHS)
        print(f"  {op.name:7s} {line}")
    print(f"  {len(set(COVERAGE) & want)}/{len(want)} cells")
    assert want <= set(COVERAGE)
