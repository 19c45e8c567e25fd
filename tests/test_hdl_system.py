"""The system top (hdl/gen/system.py) against the golden system (golden/model/system.py) in
Amaranth's simulator: random host programs with idle input cycles and output
back-pressure; every response word, the status and every counter are compared."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from bfimna.golden.host.program import split_responses
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.model.system import System as GoldenSystem
from bfimna.golden.spec.config import config_from_dict
from bfimna.golden.spec.regs import (
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    ID_MAGIC,
    REG_CAP_GEOM,
    REG_CONFIG,
    REG_CONTROL,
    REG_ID,
    REG_MAP_GEOM,
    REG_STATUS,
    REG_TILE_BUSY,
    REG_TILE_ERROR,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
)
from bfimna.hdl.gen.system import System

CFGS = {
    "t2k2": config_from_dict({"name": "t2k2", "ap": {"rows": 8, "cols": 18, "dims": 2,
                                                      "counter_bits": 24},
                              "ctrl": {"queue_depth": 4},
                              "tile": {"maps": 2, "map_rows": 6, "map_cols": 70},
                              "system": {"tiles": 2}}),
    "t1k1_1d": config_from_dict({"name": "t1", "ap": {"rows": 5, "cols": 12, "dims": 1},
                                 "tile": {"maps": 1}}),
    # the port registers: host reads answer three cycles later, COPY takes count + 4
    # bus cycles (golden/spec/isa.py: host_read_latency, copy_cycles)
    "t2k2_preg": config_from_dict({"name": "t2k2p", "ap": {"rows": 8, "cols": 18, "dims": 2,
                                                           "counter_bits": 24},
                                   "ctrl": {"queue_depth": 4},
                                   "tile": {"maps": 2, "map_rows": 6, "map_cols": 70,
                                            "port_register": True},
                                   "system": {"tiles": 2}}),
}


def register_addresses(cfg):
    """Every named register, both halves of every counter, and addresses next to them
    that map nothing (they must read 0)."""
    T = cfg.system.tiles
    named = [REG_ID, REG_CONFIG, REG_CAP_GEOM, REG_MAP_GEOM, REG_STATUS, REG_TILE_BUSY,
             REG_TILE_ERROR, REG_CONTROL, 0x020, 0x0FC]
    glob = [GLOBAL_COUNTER_BASE + 4 * i for i in range(2 * len(GLOBAL_COUNTERS) + 2)]
    tile = [TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t + 4 * i
            for t in range(T + 1) for i in range(2 * len(COUNTER_KEYS) + 2)]
    return named + glob + tile + [0xFFFC]


def run_rtl(cfg, prog, seed, idle=0.3, backpressure=0.3):
    dut = System(cfg)
    sim = Simulator(dut)
    rng = np.random.default_rng(seed)
    beats = prog.beats()
    res = {"out": [], "regs": {}}

    async def axil_read(ctx, addr):
        ctx.set(dut.s_axil_araddr, addr)
        ctx.set(dut.s_axil_arvalid, 1)
        await ctx.tick().until(dut.s_axil_rvalid)
        ctx.set(dut.s_axil_arvalid, 0)
        ctx.set(dut.s_axil_rready, 1)
        value = ctx.get(dut.s_axil_rdata)
        await ctx.tick()
        ctx.set(dut.s_axil_rready, 0)
        return value

    async def bench(ctx):
        i, quiet = 0, 0
        while quiet < 8:
            offer = i < len(beats) and rng.random() >= idle
            ctx.set(dut.s_axis_tvalid, offer)
            if offer:
                ctx.set(dut.s_axis_tdata, beats[i][0])
                ctx.set(dut.s_axis_tlast, beats[i][1])
            take = rng.random() >= backpressure
            ctx.set(dut.m_axis_tready, take)
            ready, ovalid = ctx.get(dut.s_axis_tready), ctx.get(dut.m_axis_tvalid)
            out = (ctx.get(dut.m_axis_tdata), ctx.get(dut.m_axis_tlast))
            busy = ctx.get(dut.busy)
            await ctx.tick()
            if offer and ready:
                i += 1
            if take and ovalid:
                res["out"].append(out)
            quiet = quiet + 1 if i == len(beats) and not busy else 0
        ctx.set(dut.s_axis_tvalid, 0)
        res["regs"]["id"] = await axil_read(ctx, REG_ID)
        res["regs"]["status"] = await axil_read(ctx, REG_STATUS)
        res["by_addr"] = {a: await axil_read(ctx, a) for a in register_addresses(cfg)}
        for gi, key in enumerate(GLOBAL_COUNTERS):
            res["regs"][key] = await axil_read(ctx, GLOBAL_COUNTER_BASE + 8 * gi)
        for t in range(cfg.system.tiles):
            for ci, key in enumerate(COUNTER_KEYS):
                res["regs"][f"t{t}_{key}"] = await axil_read(
                    ctx, TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t + 8 * ci)
        # CONTROL clears the protocol error; any other address answers SLVERR
        for addr, want in ((REG_CONTROL, 0), (REG_ID, 2)):
            ctx.set(dut.s_axil_awaddr, addr)
            ctx.set(dut.s_axil_wdata, 1)
            ctx.set(dut.s_axil_wstrb, 0xF)
            ctx.set(dut.s_axil_awvalid, 1)
            ctx.set(dut.s_axil_wvalid, 1)
            await ctx.tick().until(dut.s_axil_bvalid)
            ctx.set(dut.s_axil_awvalid, 0)
            ctx.set(dut.s_axil_wvalid, 0)
            assert ctx.get(dut.s_axil_bresp) == want
            ctx.set(dut.s_axil_bready, 1)
            await ctx.tick()
            ctx.set(dut.s_axil_bready, 0)
        res["regs"]["status_after_clear"] = await axil_read(ctx, REG_STATUS)

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


@pytest.mark.parametrize("name", sorted(CFGS))
def test_system_matches_golden(name, seed):
    cfg = CFGS[name]
    mod = 1 << cfg.ap.counter_bits
    for s in range(seed, seed + 2):
        print(f"config {name}, seed {s}")
        prog = random_host_program(cfg, s, n_packets=25)
        gold = GoldenSystem(cfg)
        want_out = gold.feed(prog.beats())
        got = run_rtl(cfg, prog, s)
        want_frames, got_frames = split_responses(want_out), split_responses(got["out"])
        assert len(got_frames) == len(want_frames) == len(prog.responses)
        for i, (g, w) in enumerate(zip(got_frames, want_frames, strict=True)):
            assert g == w, f"response {i} ({prog.responses[i]}) differs, seed {s}"
        regs = got["regs"]
        assert regs["id"] == ID_MAGIC
        for key in GLOBAL_COUNTERS:
            assert regs[key] == gold.counters[key] % mod, f"{key}, seed {s}"
        for t, tile in enumerate(gold.tiles):
            for key in COUNTER_KEYS:
                assert regs[f"t{t}_{key}"] == tile.counters[key] % mod, f"tile {t} {key}"
        want_status = int(gold.proto_error) << 1 | int(gold.tile_errors != 0) << 2
        assert regs["status"] == want_status
        assert regs["status_after_clear"] == want_status & ~2
        for addr, value in got["by_addr"].items():     # the golden register map, everywhere
            assert value == gold.register(addr), f"register {addr:#06x}, seed {s}"
        assert gold.counters["packets"] > 10
