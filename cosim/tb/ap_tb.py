"""cocotb testbench of the emitted AP core: a seeded random micro-op stream, checked
cycle by cycle against the golden model (golden/model/ap.py).

Run it through cosim/drivers/runner.py (pytest and `bfimna cosim` do), which passes these
environment variables:

    BFIMNA_CONFIG   path of the YAML configuration the Verilog was generated from
    BFIMNA_SEED     seed of the random stream
    BFIMNA_OPS      number of random micro-ops
    BFIMNA_RESULT   path of the JSON summary this test writes

Every cycle the testbench drives one micro-op on the falling edge and, one clock later,
compares tag, tag_any, tag_first, err, the read strobes and read data (row and column)
and one counter (cnt_sel rotates over all of them) with the model. Every SWEEP_EVERY
micro-ops, and at the end, it reads every row back through the row port (those reads
are micro-ops too, checked the same way) and then every counter.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from amaranth.lib.wiring import Out
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from bfimna.cosim.tb.values import unsigned
from bfimna.golden.host.stimulus import random_uops, readback_uops
from bfimna.golden.model.ap import APModel
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.uops import COUNTER_NAMES, N_COUNTERS, Op, UOp, port_widths
from bfimna.hdl.gen.ap import ap_signature

SWEEP_EVERY = 4000
OP_VALUES = {int(op) for op in Op}


class Mismatch(AssertionError):
    pass


class APBench:
    def __init__(self, dut, cfg, seed: int):
        self.dut = dut
        self.seed = seed
        self.ap = cfg.ap
        self.model = APModel(cfg.ap)
        self.fields = list(port_widths(cfg.ap))
        self.handles = {f: getattr(dut, f) for f in self.fields}
        self.outputs = {name: getattr(dut, name) for name, member in
                        ap_signature(cfg.ap).members.items() if member.flow == Out}
        self.last = {f: None for f in self.fields}
        self.cycle = 0
        self.checks = 0
        self.history: list[str] = []
        # coverage: the stream must do real work, not compare against nothing
        self.cover = {"compares_matching": 0, "writes_to_rows": 0, "illegal": 0}
        # what the testbench itself drove (not the model): micro-ops per opcode, cycles
        self.issued = {op.name.lower(): 0 for op in Op}
        # each RTL counter as last seen on `cnt`: (cycles driven so far, micro-ops of its
        # opcode driven so far, the RTL's value)
        self.rtl_seen: dict[str, tuple[int, int, int]] = {}

    def drive(self, u: UOp, cnt_sel: int) -> None:
        for f in self.fields:
            v = getattr(u, f)
            if self.last[f] != v:  # only touch what changed: fewer GPI calls
                self.handles[f].value = v
                self.last[f] = v
        self.dut.cnt_sel.value = cnt_sel

    def fail(self, what: str, got, want) -> None:
        recent = "\n  ".join(self.history[-8:])
        raise Mismatch(f"cycle {self.cycle} (seed {self.seed}): {what}: RTL {got:#x}, "
                       f"golden {want:#x}\nlast micro-ops (newest last):\n  {recent}")

    def expect(self, what: str, got: int, want: int) -> None:
        self.checks += 1
        if got != want:
            self.fail(what, got, want)

    async def issue(self, u: UOp, cnt_sel: int) -> None:
        """Drive u for one clock, then compare every observable output with the model."""
        self.drive(u, cnt_sel)
        self.history.append(str(u))
        del self.history[:-16]
        await FallingEdge(self.dut.clk)
        self.cycle += 1
        op_name = Op(u.op).name.lower() if u.op in OP_VALUES else "unknown"
        self.issued[op_name] = self.issued.get(op_name, 0) + 1
        model = self.model
        model.step(u)
        rtl = {port: unsigned(self.outputs[port].value)
               for port in model.expected_outputs(cnt_sel)}
        # coverage from the RTL's own outputs
        if u.op in (Op.CMP, Op.CMPA) and rtl["tag_any"]:
            self.cover["compares_matching"] += 1
        elif u.op == Op.WR and rtl["tag_any"]:
            self.cover["writes_to_rows"] += 1
        name = COUNTER_NAMES[cnt_sel]
        self.rtl_seen[name] = (self.cycle, self.issued.get(name, 0), rtl["cnt"])
        for port, want in model.expected_outputs(cnt_sel).items():
            self.expect(port if port != "cnt" else f"cnt ({name})", rtl[port], want)

    async def sweep(self) -> None:
        """Read the whole array back through the row port; see every counter."""
        for u in readback_uops(self.ap):
            await self.issue(u, self.cycle % N_COUNTERS)


@cocotb.test()
async def ap_random_stream(dut):
    cfg = load_config(os.environ["BFIMNA_CONFIG"])
    seed = int(os.environ.get("BFIMNA_SEED", "1"))
    n_ops = int(os.environ.get("BFIMNA_OPS", "2000"))
    dut._log.info("AP core %s: seed %d, %d random micro-ops", cfg.name, seed, n_ops)

    bench = APBench(dut, cfg, seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    bench.drive(UOp(Op.NOP), 0)
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    t0 = time.perf_counter()
    for i, u in enumerate(random_uops(bench.model, seed, n_ops)):
        await bench.issue(u, i % N_COUNTERS)
        if (i + 1) % SWEEP_EVERY == 0:
            await bench.sweep()
    await bench.sweep()
    wall = time.perf_counter() - t0

    m = bench.model
    bench.cover["illegal"] = bench.rtl_seen["illegal"][2]      # the RTL's counter
    summary = {
        "config": cfg.name, "seed": seed, "random_uops": n_ops, "cycles": bench.cycle,
        "hw_cycles": bench.rtl_seen["cycles"][2], "checks": bench.checks,
        "rtl_counters": {k: list(v) for k, v in bench.rtl_seen.items()},
        "issued": bench.issued,
        "wall_s": round(wall, 3), "cycles_per_s": round(bench.cycle / wall, 1),
        "counters": m.counter_dict(), "coverage": bench.cover,
    }
    dut._log.info("passed: %d cycles, %d checks, %.0f cycles/s", bench.cycle, bench.checks,
                  bench.cycle / wall)
    if "BFIMNA_RESULT" in os.environ:
        with open(os.environ["BFIMNA_RESULT"], "w") as fh:
            json.dump(summary, fh, indent=2)
