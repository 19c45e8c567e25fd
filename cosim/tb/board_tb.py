"""cocotb testbench of the board-level top (hdl/gen/board.py): the host talks to it over a
simulated UART with the byte protocol of golden/spec/link.py, the way it would over a USB
serial port: every AXI4-Stream beat as 'W' + word + flags (waiting for 'K'), output
beats collected from 'D' messages, registers read with 'R'. Same job and result files
as cosim/tb/sys_tb.py, so cosim/drivers/backends.py runs a HostProgram over either. The
default path of the board top is its replay harness (cosim/replay/board.py, the
simulator's own speed); this testbench is the `--path cocotb` one, and
tests/test_replay_board.py checks that both give identical responses and counters.

Environment: BFIMNA_CONFIG, BFIMNA_JOB (frames, n_responses, max_cycles, divisor, and
optionally pre_frames: a program sent first, then the link's reset 'Z'), BFIMNA_RESULT.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, SimTimeoutError, Timer, with_timeout

from bfimna.cosim.tb.values import unsigned
from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.link import LinkParser, read_bytes, reset_bytes, word_bytes
from bfimna.golden.spec.regs import (
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    REG_ID,
    REG_STATUS,
    REG_TILE_BUSY,
    REG_TILE_ERROR,
    STATUS_WORD,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
)

PERIOD_NS = 10


class UartHost:
    def __init__(self, dut, divisor: int):
        self.dut, self.div = dut, divisor
        self.parser = LinkParser()
        self.events: list[tuple] = []
        self.data: list[tuple[int, bool]] = []
        cocotb.start_soon(self._receive())

    async def send(self, data: bytes, stop: int = 1) -> None:
        """Bytes, 8N1; stop=0: each with a low stop bit (a framing error), the line then
        back high for a bit time."""
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
                self.dut.uart_rx.value = bit
                await ClockCycles(self.dut.clk_in, self.div)
            if not stop:
                self.dut.uart_rx.value = 1
                await ClockCycles(self.dut.clk_in, self.div)

    async def _receive(self) -> None:
        d, div = self.dut, self.div
        while True:
            await FallingEdge(d.uart_tx)
            await ClockCycles(d.clk_in, div // 2)        # middle of the start bit
            byte = 0
            for i in range(8):
                await ClockCycles(d.clk_in, div)
                byte |= unsigned(d.uart_tx.value) << i
            await ClockCycles(d.clk_in, div)             # stop bit
            for ev in self.parser.feed(bytes([byte])):
                if ev[0] == "data":
                    self.data.append((ev[1], ev[2]))
                else:
                    self.events.append(ev)

    async def _wait_event(self) -> tuple:
        while not self.events:
            await ClockCycles(self.dut.clk_in, self.div)
        return self.events.pop(0)

    async def beat(self, word: int, last: bool) -> None:
        await self.send(word_bytes(word, last))
        ev = await self._wait_event()
        assert ev == ("ack",), f"expected 'K' after a beat, got {ev}"

    async def read(self, addr: int) -> int:
        await self.send(read_bytes(addr))
        ev = await self._wait_event()
        assert ev[0] == "reg", f"expected 'R' after a register read, got {ev}"
        return ev[1]


@cocotb.test()
async def run_over_uart(dut):
    with open(os.environ["BFIMNA_JOB"]) as fh:
        job = json.load(fh)
    cfg = load_config(os.environ["BFIMNA_CONFIG"])
    dut.uart_rx.value = 1
    await Timer(1, unit="ns")
    cocotb.start_soon(Clock(dut.clk_in, PERIOD_NS, unit="ns", impl="gpi").start())
    await ClockCycles(dut.clk_in, 40)                    # power-on reset
    host = UartHost(dut, job["divisor"])
    result_link = []
    t0 = time.perf_counter()
    sim_t0 = cocotb.utils.get_sim_time("ns")

    async def link_errors():
        """job["link_script"]: steps, each a list of [kind, hex bytes] parts ("send", or
        "bad": bytes with a low stop bit) followed by one answer of the board; the
        answers go in the result (the test compares them with golden/model/board.py's)."""
        seen = []
        for step in job["link_script"]:
            for kind, data in step:
                await host.send(bytes.fromhex(data), stop=0 if kind == "bad" else 1)
            seen.append(list(await host._wait_event()))
        return seen

    async def whole():
        if job.get("link_script"):
            result_link.extend(await link_errors())
        if job.get("pre_frames"):           # a first program, then the link's reset
            for frame in job["pre_frames"]:
                words = [int(w, 16) for w in frame]
                for i, w in enumerate(words):
                    await host.beat(w, i == len(words) - 1)
            await host.send(reset_bytes())
            ev = await host._wait_event()
            assert ev == ("ack",), f"expected 'K' after a reset, got {ev}"
            host.data.clear()               # output beats from before the reset
        for frame in job["frames"]:
            words = [int(w, 16) for w in frame]
            for i, w in enumerate(words):
                await host.beat(w, i == len(words) - 1)
        while sum(1 for _w, last in host.data if last) < job["n_responses"]:
            await ClockCycles(dut.clk_in, 64)
        while STATUS_WORD.get(await host.read(REG_STATUS), "busy"):
            await ClockCycles(dut.clk_in, 64)

    try:
        await with_timeout(whole(), job["max_cycles"] * PERIOD_NS, "ns")
    except SimTimeoutError:
        with open(os.environ["BFIMNA_RESULT"], "w") as fh:
            json.dump({"timed_out": True}, fh)
        raise AssertionError(f"not done after {job['max_cycles']} cycles") from None
    wall = time.perf_counter() - t0
    sim_cycles = int((cocotb.utils.get_sim_time("ns") - sim_t0) // PERIOD_NS)

    async def r64(a):
        return await host.read(a) | (await host.read(a + 4)) << 32

    regs = {"id": await host.read(REG_ID), "status": await host.read(REG_STATUS),
            "tile_busy": await host.read(REG_TILE_BUSY),
            "tile_error": await host.read(REG_TILE_ERROR),
            "global": {k: await r64(GLOBAL_COUNTER_BASE + 8 * i)
                       for i, k in enumerate(GLOBAL_COUNTERS)},
            "tiles": [{k: await r64(TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t + 8 * i)
                       for i, k in enumerate(COUNTER_KEYS)} for t in range(cfg.system.tiles)]}
    # every beat that came, also while the registers were read: exactly the responses asked for
    responses, cur = [], []
    for w, last in host.data:
        cur.append(f"{w:x}")
        if last:
            responses.append(cur)
            cur = []
    extra = len(responses) - job["n_responses"] + (1 if cur else 0)
    result = {"timed_out": False, "responses": responses, "extra_output_frames": extra,
              "link_events": result_link,
              "registers": regs, "sim_cycles": sim_cycles, "wall_s": round(wall, 3),
              "cycles_per_s": round(sim_cycles / wall, 1) if wall else None}
    with open(os.environ["BFIMNA_RESULT"], "w") as fh:
        json.dump(result, fh, indent=1)
    assert not cur, f"an output frame without tlast ({len(cur)} words)"
    assert extra == 0, (f"{extra} output frames beyond the {job['n_responses']} expected: "
                        f"the stream has beats nobody asked for")
    assert not host.events, f"unexpected link messages {host.events}"
