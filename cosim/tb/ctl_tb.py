"""cocotb driver of the emitted AP controller: load an initial array through the host
port, stream a whole program into the instruction queue, let the controller run on its
own, then read back the array, the counters and the status.

Python does not drive the execution cycle by cycle: it pushes words while the queue has
room, sleeps on `s_ready` when it is full, and sleeps on `busy` until the program ends.
Comparison with the golden controller happens outside (cosim/drivers/runner.py), so the same
driver serves the tests and `bfimna exec`.

Environment (set by cosim/drivers/runner.py):
    BFIMNA_CONFIG   validated configuration (JSON)
    BFIMNA_PROGRAM  .npz with `words` (uint64 instruction words) and `cam` (R x C bits)
    BFIMNA_RESULT   JSON written at the end: rows (hex), counters, error, cycles, timing
    BFIMNA_MAX_CYCLES  watchdog: a program still busy after this many cycles is reported
                    as timed out (the testbench never waits forever on a broken design)
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, SimTimeoutError, Timer, with_timeout

from bfimna.cosim.tb.values import unsigned
from bfimna.golden.model.ap import bits_to_int
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import RESERVED_COLS, host_read_latency
from bfimna.golden.spec.uops import COUNTER_KEYS
from bfimna.hdl.gen.controller import HOST_READ, HOST_WRITE

PERIOD_NS = 10


async def push_words(dut, words) -> None:
    """Hand every word to the valid/ready stream; sleep while the queue is full."""
    for w in words:
        await FallingEdge(dut.clk)
        if not unsigned(dut.s_ready.value):
            dut.s_valid.value = 0
            await RisingEdge(dut.s_ready)  # woken when the queue has room again
            await FallingEdge(dut.clk)
        dut.s_data.value = int(w)
        dut.s_valid.value = 1
        await RisingEdge(dut.clk)  # s_ready was 1 since the falling edge: accepted here
        dut.s_valid.value = 0


@cocotb.test()
async def run_program(dut):
    cfg = load_config(os.environ["BFIMNA_CONFIG"])
    prog = np.load(os.environ["BFIMNA_PROGRAM"])
    words = [int(w) for w in prog["words"]]
    cam = prog["cam"]
    usable_mask = (1 << (cfg.ap.cols - RESERVED_COLS)) - 1

    # the clock toggles in the simulator (C++ GPI), not in Python: Python sleeps while
    # the controller runs
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    for sig in (dut.s_valid, dut.host_op, dut.host_ap, dut.csr_sel):
        sig.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0

    # initial array through the host port (the reserved column is not writable)
    for r in range(cfg.ap.rows):
        dut.host_op.value = HOST_WRITE
        dut.host_addr.value = r
        dut.host_wdata.value = bits_to_int(cam[r]) & usable_mask
        dut.host_mask.value = usable_mask
        await FallingEdge(dut.clk)
    dut.host_op.value = 0

    max_cycles = int(os.environ.get("BFIMNA_MAX_CYCLES", "10000000"))

    async def run_to_idle():
        await push_words(dut, words)
        await FallingEdge(dut.clk)
        while unsigned(dut.busy.value):
            await FallingEdge(dut.busy)
            await FallingEdge(dut.clk)

    t0 = time.perf_counter()
    sim_t0 = cocotb.utils.get_sim_time("ns")
    try:
        await with_timeout(run_to_idle(), max_cycles * PERIOD_NS, "ns")
    except SimTimeoutError:
        with open(os.environ["BFIMNA_RESULT"], "w") as fh:
            json.dump({"timed_out": True, "max_cycles": max_cycles}, fh)
        raise AssertionError(f"still busy after {max_cycles} cycles") from None
    wall = time.perf_counter() - t0
    sim_cycles = int((cocotb.utils.get_sim_time("ns") - sim_t0) // PERIOD_NS)

    rows = []
    for r in range(cfg.ap.rows):
        dut.host_op.value = HOST_READ
        dut.host_addr.value = r
        await FallingEdge(dut.clk)
        dut.host_op.value = 0
        for _ in range(host_read_latency(cfg.tile.port_register) - 1):
            await FallingEdge(dut.clk)
        assert unsigned(dut.host_rvalid.value), f"host read of row {r} gave no data"
        try:
            rows.append(unsigned(dut.host_rdata.value))
        except ValueError:   # X or Z: say which row instead of a bare conversion error
            raise AssertionError(f"row {r} reads as {dut.host_rdata.value}") from None
    dut.host_op.value = 0
    counters = {}
    for idx, key in enumerate(COUNTER_KEYS):
        dut.csr_sel.value = idx
        await Timer(1, unit="ns")
        counters[key] = unsigned(dut.csr_data.value)
    result = {"rows": [f"{v:x}" for v in rows], "counters": counters,
              "error": unsigned(dut.error.value), "busy": unsigned(dut.busy.value),
              "words": len(words), "sim_cycles": sim_cycles, "wall_s": round(wall, 4),
              "cycles_per_s": round(sim_cycles / wall, 1) if wall > 0 else None}
    with open(os.environ["BFIMNA_RESULT"], "w") as fh:
        json.dump(result, fh, indent=1)
    dut._log.info("program of %d words: %d cycles in %.2f s (%.0f cycles/s)", len(words),
                  sim_cycles, wall, sim_cycles / max(wall, 1e-9))
