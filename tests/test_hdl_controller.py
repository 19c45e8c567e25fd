"""The AP controller generator (hdl/gen/controller.py) in Amaranth's simulator: the micro-op
stream it issues must be exactly golden `expand` for each instruction (illegal ones: one
NOP), back to back with no idle cycle; final array, counters and status must equal the
golden controller's.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_host import host_load

from bfimna.golden.host.stimulus import random_program
from bfimna.golden.model.controller import COUNTER_KEYS, Controller, expand
from bfimna.golden.spec.config import config_from_dict
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, decode, encode, validate
from bfimna.golden.spec.uops import Op
from bfimna.hdl.gen.controller import HOST_READ, APController

CFG2 = config_from_dict({"name": "c2", "ap": {"rows": 9, "cols": 40, "dims": 2,
                                              "counter_bits": 16}, "ctrl": {"queue_depth": 4}})
CFG1 = config_from_dict({"name": "c1", "ap": {"rows": 6, "cols": 36, "dims": 1,
                                              "counter_bits": 20}, "ctrl": {"queue_depth": 2}})
UOP_FIELDS = ("op", "key", "mask", "addr", "addr2", "col", "col2", "shift")


def expected_stream(cfg, words):
    out = []
    for w in words:
        ins = decode(w)
        out += list(expand(ins, cfg.ap)) if validate(ins, cfg.ap) is None else ["illegal"]
    return out


def same_uop(got: dict, want) -> bool:
    if want == "illegal":
        return got["op"] == Op.NOP
    if (got["op"], got["key"], got["mask"]) != (want.op, want.key, want.mask):
        return False
    if want.op == Op.ROWEN:
        return (got["addr"], got["addr2"]) == (want.addr, want.addr2)
    if want.op == Op.MVCOL:
        return (got["col"], got["col2"], got["shift"]) == (want.col, want.col2, want.shift)
    return True


async def read_counters(ctx, dut) -> dict[str, int]:
    """Every controller counter through the CSR mux (combinational: no clock needed)."""
    out = {}
    for idx, key in enumerate(COUNTER_KEYS):
        ctx.set(dut.csr_sel, idx)
        await ctx.delay(1e-9)
        out[key] = ctx.get(dut.csr_data)
    return out


def run_rtl(cfg, words, init_rows, seed, gaps=True):
    """Load rows through the host port, stream the program (with random gaps), then read
    everything back. Returns the issued micro-ops, cycle gaps, array, counters, status."""
    dut = APController(cfg)
    sim = Simulator(dut)  # elaborates: dut.uop (the internal micro-op signals) exists now
    rng = np.random.default_rng(seed)
    fields = [f for f in UOP_FIELDS if f in dut.uop]
    res = {"uops": [], "rows": [], "counters": {}, "bubbles": 0}

    async def bench(ctx):
        await host_load(ctx, dut, 0, init_rows, (1 << (cfg.ap.cols - 1)) - 1)
        pending = list(words)
        started = False
        idle_run = 0
        while True:
            offer = bool(pending) and (not gaps or rng.random() < 0.8)
            ctx.set(dut.s_valid, offer)
            if offer:
                ctx.set(dut.s_data, pending[0])
            valid = ctx.get(dut.uop["valid"])
            snapshot = {f: ctx.get(dut.uop[f]) for f in fields}
            ready = ctx.get(dut.s_ready)
            busy = ctx.get(dut.busy)
            await ctx.tick()
            if offer and ready:
                pending.pop(0)
            if valid:
                res["uops"].append(snapshot)
                started = True
            elif started and busy:
                res["bubbles"] += 1  # queue held work but nothing was issued
            if not pending and not busy:
                idle_run += 1
                if idle_run > 2:
                    break
        ctx.set(dut.s_valid, 0)
        for r in range(cfg.ap.rows):
            ctx.set(dut.host_op, HOST_READ)
            ctx.set(dut.host_addr, r)
            await ctx.tick()  # registered read: data and strobe the cycle after
            assert ctx.get(dut.host_rvalid)
            res["rows"].append(ctx.get(dut.host_rdata))
        ctx.set(dut.host_op, 0)
        res["counters"] = await read_counters(ctx, dut)
        res["error"] = ctx.get(dut.error)

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


def golden_run(cfg, words, init_rows):
    ctl = Controller(cfg.ap)
    usable = (1 << (cfg.ap.cols - RESERVED_COLS)) - 1
    for r, v in enumerate(init_rows):
        ctl.ap.row_write(r, v, usable)
    ctl.run(words)
    return ctl


@pytest.mark.parametrize("cfg", [CFG2, CFG1], ids=["2d", "1d"])
def test_controller_matches_golden(cfg, seed):
    rng = np.random.default_rng(seed)
    words = random_program(cfg.ap, seed, 40, illegal_share=0.1, max_width=8)
    init = [int(x) for x in rng.integers(0, 1 << (cfg.ap.cols - RESERVED_COLS),
                                         size=cfg.ap.rows)]
    rtl = run_rtl(cfg, words, init, seed)
    want = expected_stream(cfg, words)
    assert len(rtl["uops"]) == len(want), f"seed {seed}: {len(rtl['uops'])} vs {len(want)}"
    for k, (g, w) in enumerate(zip(rtl["uops"], want, strict=True)):
        assert same_uop(g, w), f"seed {seed}, micro-op {k}: RTL {g}, golden {w}"
    gold = golden_run(cfg, words, init)
    assert rtl["rows"] == gold.ap.rows_as_ints(), f"seed {seed}: final array differs"
    mod = 1 << cfg.ap.counter_bits
    assert rtl["counters"] == {k: v % mod for k, v in gold.counters.items()}
    assert rtl["error"] == int(gold.error)


def test_no_idle_cycle_between_instructions(seed):
    """With the queue kept full, instructions follow each other with no bubble."""
    words = [encode(Instr(op=Opc.ADDI, d=0, imm=3, n=4)), encode(Instr(op=Opc.NOP)),
             encode(Instr(op=Opc.RELU, d=0, n=4)), 0x1F, encode(Instr(op=Opc.ROWS, lo=0, hi=9)),
             encode(Instr(op=Opc.MAC, d=0, a=8, imm=0, n=4, m=8))] * 3
    rtl = run_rtl(CFG2, words, [0] * CFG2.ap.rows, seed, gaps=False)
    assert rtl["bubbles"] == 0
    assert len(rtl["uops"]) == len(expected_stream(CFG2, words))
    assert rtl["error"] == 1 and rtl["counters"]["errors"] == 3
