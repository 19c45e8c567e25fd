"""cocotb testbench of the emitted system top, through its AXI interfaces with
cocotbext-axi (AxiStreamSource / AxiStreamSink / AxiLiteMaster): it sends a host
program's frames, collects every response frame, waits for the system to go idle and
reads status and every counter over AXI4-Lite. Random idle cycles on the input stream
and random back-pressure on the output stream come from seeded pause generators.

With a reset scenario it first sends another program, asserts reset in the middle of
it, checks that the system comes back idle with every counter at zero and nothing on
its output, and only then runs the program proper.

Comparison with the golden system happens outside (cosim/drivers/backends.py), so this driver
serves the tests, the host driver and the benchmarks alike.

Environment (set by cosim/drivers/runner.py):
    BFIMNA_CONFIG   validated configuration (JSON)
    BFIMNA_JOB      JSON: frames (hex words), n_responses, seed, idle, backpressure,
                    max_cycles, optional reset {frames, after_cycles}, optional
                    axil_writes [[addr, data, strb], ...] done at the end (each answer:
                    BRESP, then STATUS and ID read back)
    BFIMNA_RESULT   JSON written at the end: responses, registers, cycles, timing
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    FallingEdge,
    RisingEdge,
    SimTimeoutError,
    Timer,
    with_timeout,
)
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from bfimna.cosim.replay.system import register_reads, registers_from
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.regs import (
    GLOBAL_COUNTER_BASE,
    REG_ID,
    REG_STATUS,
    REG_TILE_BUSY,
    STATUS_WORD,
)

PERIOD_NS = 10


def pauses(rng: random.Random, share: float):
    """Per-cycle pause flags: True (pause) with probability `share`."""
    while True:
        yield share > 0 and rng.random() < share


class Host:
    def __init__(self, dut, job):
        self.dut = dut
        self.cfg = load_config(os.environ["BFIMNA_CONFIG"])
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst,
                                   byte_lanes=1)  # one 64-bit word per beat
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst,
                                  byte_lanes=1)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for lg in (self.src.log, self.sink.log, self.axil.write_if.log,
                   self.axil.read_if.log):
            lg.setLevel("WARNING")
        rng = random.Random(job["seed"])
        self.src.set_pause_generator(pauses(rng, job["idle"]))
        self.sink.set_pause_generator(pauses(random.Random(job["seed"] + 1), job["backpressure"]))

    async def reset(self, cycles: int = 4) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def send(self, frames) -> None:
        for f in frames:
            self.src.send_nowait(AxiStreamFrame([int(w, 16) for w in f]))

    async def responses(self, n: int) -> list[list[int]]:
        out = []
        for _ in range(n):
            frame = await self.sink.recv()
            out.append([int(w) for w in frame.tdata])
        return out

    async def read(self, addr: int) -> int:
        return await self.axil.read_dword(addr)

    async def read64(self, addr: int) -> int:
        return await self.read(addr) | (await self.read(addr + 4)) << 32

    async def wait_idle(self) -> None:
        await self.src.wait()
        while STATUS_WORD.get(await self.read(REG_STATUS), "busy"):
            await ClockCycles(self.dut.clk, 8)

    async def raw_write(self, addr: int, data: int, strb: int) -> int:
        """One AXI4-Lite write driven by hand (any strobe, any address, the data bytes a
        strobe leaves out included, which cocotbext-axi's master would not send); returns
        BRESP. Only while the bus model is idle."""
        d = self.dut
        d.s_axil_awaddr.value, d.s_axil_awvalid.value = addr, 1
        d.s_axil_wdata.value, d.s_axil_wstrb.value, d.s_axil_wvalid.value = data, strb, 1
        d.s_axil_bready.value = 0
        for _ in range(100):
            await RisingEdge(d.clk)
            if d.s_axil_awready.value and d.s_axil_wready.value:
                break
        else:
            raise AssertionError(f"AXI4-Lite write to {addr:#x} not taken in 100 cycles")
        await FallingEdge(d.clk)
        d.s_axil_awvalid.value = d.s_axil_wvalid.value = 0
        for _ in range(100):
            if d.s_axil_bvalid.value:
                break
            await FallingEdge(d.clk)
        else:
            raise AssertionError(f"no write response for {addr:#x} in 100 cycles")
        bresp = int(d.s_axil_bresp.value)
        d.s_axil_bready.value = 1
        await RisingEdge(d.clk)
        await FallingEdge(d.clk)
        d.s_axil_bready.value = 0
        assert not d.s_axil_bvalid.value, "BVALID stayed high after the response was taken"
        return bresp

    async def registers(self) -> dict:
        """Every register the result holds, read over AXI4-Lite (the same addresses and
        layout as the replay harness: cosim/replay/system.py)."""
        return registers_from(self.cfg, {a: await self.read(a)
                                         for a in register_reads(self.cfg)})


@cocotb.test()
async def run_host_program(dut):
    with open(os.environ["BFIMNA_JOB"]) as fh:
        job = json.load(fh)
    max_cycles = job["max_cycles"]
    # every input defined, reset asserted, before the bus models look at the signals
    dut.rst.value = 1
    for name in ("s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready",
                 "s_axil_awvalid", "s_axil_wvalid", "s_axil_bready", "s_axil_arvalid",
                 "s_axil_rready"):
        getattr(dut, name).value = 0
    await Timer(1, unit="ns")
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    host = Host(dut, job)
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    result: dict = {}

    if job.get("reset"):
        # a program is cut off by reset: afterwards the system must be clean and idle
        host.send(job["reset"]["frames"])
        await ClockCycles(dut.clk, job["reset"]["after_cycles"])
        words_in_before = await host.read(GLOBAL_COUNTER_BASE)
        busy_before = await host.read(REG_TILE_BUSY)
        host.src.clear()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 4)
        host.sink.clear()
        dut.rst.value = 0
        await ClockCycles(dut.clk, 4)
        regs = await host.registers()
        result["after_reset"] = {"words_in_before": words_in_before,
                                 "tile_busy_before": busy_before, "registers": regs,
                                 "output_words": host.sink.count()}
        await ClockCycles(dut.clk, 50)
        result["after_reset"]["output_words_later"] = host.sink.count()

    t0 = time.perf_counter()
    sim_t0 = cocotb.utils.get_sim_time("ns")
    host.send(job["frames"])

    async def whole():
        resp = await host.responses(job["n_responses"])
        await host.wait_idle()
        return resp

    try:
        responses = await with_timeout(whole(), max_cycles * PERIOD_NS, "ns")
    except SimTimeoutError:
        result.update(timed_out=True, max_cycles=max_cycles,
                      status=await host.read(REG_STATUS), responses_so_far=host.sink.count())
        with open(os.environ["BFIMNA_RESULT"], "w") as fh:
            json.dump(result, fh)
        raise AssertionError(f"not idle after {max_cycles} cycles") from None
    wall = time.perf_counter() - t0
    sim_cycles = int((cocotb.utils.get_sim_time("ns") - sim_t0) // PERIOD_NS)
    regs = await host.registers()
    await FallingEdge(dut.clk)
    extra = host.sink.count()      # beats after the last expected response, while idle
    if job.get("axil_writes"):     # [addr, data, strb]: BRESP and STATUS after each
        result["axil_writes"] = []
        for addr, data, strb in job["axil_writes"]:
            bresp = await host.raw_write(addr, data, strb)
            result["axil_writes"].append([bresp, await host.read(REG_STATUS),
                                          await host.read(REG_ID)])
    result.update(
        timed_out=False, responses=[[f"{w:x}" for w in r] for r in responses],
        extra_output_frames=extra, registers=regs,
        sim_cycles=sim_cycles, wall_s=round(wall, 4),
        cycles_per_s=round(sim_cycles / wall, 1) if wall > 0 else None)
    with open(os.environ["BFIMNA_RESULT"], "w") as fh:
        json.dump(result, fh, indent=1)
    dut._log.info("%d frames, %d responses: %d cycles in %.2f s (%.0f cycles/s)",
                  len(job["frames"]), len(responses), sim_cycles, wall,
                  sim_cycles / wall if wall else 0)
    assert extra == 0, f"{extra} output frames beyond the {job['n_responses']} expected"
    await RisingEdge(dut.clk)
