"""The tile generator (CAP + MAPs + controller, hdl/gen/controller.py) against the golden tile
(golden/model/tile.py) in Amaranth's simulator: random programs that mix CAP instructions with
transfers between every pair of APs; all APs and the counters are compared."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_host import host_load, host_read
from test_hdl_controller import read_counters

from bfimna.golden.host.stimulus import random_tile_program
from bfimna.golden.model.tile import Tile, movw_cycles
from bfimna.golden.spec.config import config_from_dict
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, encode
from bfimna.hdl.gen.controller import (
    HOST_READ,
    HOST_READ_COL,
    HOST_WRITE_COL,
    APController,
)

CFGS = {
    "k2": config_from_dict({"name": "k2", "ap": {"rows": 9, "cols": 20, "dims": 2},
                            "tile": {"maps": 2, "map_rows": 13, "map_cols": 11}}),
    "k1_1d": config_from_dict({"name": "k1", "ap": {"rows": 6, "cols": 14, "dims": 1},
                               "tile": {"maps": 1, "map_rows": 4, "map_cols": 24}}),
    # MAPs in block RAM (hdl/gen/mapmem.py): the same transfers, from and to memories
    "k2_bram": config_from_dict({"name": "k2b", "ap": {"rows": 9, "cols": 20, "dims": 2},
                                 "tile": {"maps": 2, "map_rows": 13, "map_cols": 11,
                                          "map_memory": "bram"}}),
    # the APs' port inputs registered (the FPGA configurations): every micro-op
    # executes a cycle after it issues, host reads answer a cycle later
    "k2_preg": config_from_dict({"name": "k2p", "ap": {"rows": 9, "cols": 20, "dims": 2},
                                 "tile": {"maps": 2, "map_rows": 13, "map_cols": 11,
                                          "port_register": True}}),
    "k1_1d_preg": config_from_dict({"name": "k1p", "ap": {"rows": 6, "cols": 14, "dims": 1},
                                    "tile": {"maps": 1, "map_rows": 4, "map_cols": 24,
                                             "port_register": True}}),
    "k2_bram_preg": config_from_dict({"name": "k2bp", "ap": {"rows": 9, "cols": 20, "dims": 2},
                                      "tile": {"maps": 2, "map_rows": 13, "map_cols": 11,
                                               "map_memory": "bram", "port_register": True}}),
}


def initial(cfg, rng):
    """Random contents of every AP: {ap: [row values]} (CAP: usable columns only)."""
    out = {}
    for k in range(cfg.tile.maps + 1):
        a = cfg.ap_of(k)
        width = a.cols - RESERVED_COLS if k == 0 else a.cols
        out[k] = [int(v) for v in rng.integers(0, 1 << width, size=a.rows, dtype=np.uint64)]
    return out


def run_rtl(cfg, words, init, seed):
    dut = APController(cfg)
    sim = Simulator(dut)
    rng = np.random.default_rng(seed)
    res = {"aps": {}, "counters": {}, "cols": []}

    async def bench(ctx):
        for k, rows in init.items():
            await host_load(ctx, dut, k, rows,
                            (1 << 64) - 1 if k else (1 << (cfg.ap.cols - 1)) - 1)
        pending = list(words)
        idle = 0
        while idle < 3:
            offer = bool(pending) and rng.random() < 0.8
            ctx.set(dut.s_valid, offer)
            if offer:
                ctx.set(dut.s_data, pending[0])
            ready, busy = ctx.get(dut.s_ready), ctx.get(dut.busy)
            await ctx.tick()
            if offer and ready:
                pending.pop(0)
            idle = idle + 1 if not pending and not busy else 0
        ctx.set(dut.s_valid, 0)
        for k in init:
            res["aps"][k] = [await host_read(ctx, dut, cfg, HOST_READ, k, r)
                             for r in range(cfg.ap_of(k).rows)]
        if cfg.ap.two_d:   # column port: read column 0, write it back inverted to column 1
            col = await host_read(ctx, dut, cfg, HOST_READ_COL, 0, 0)
            ctx.set(dut.host_op, HOST_WRITE_COL)
            ctx.set(dut.host_addr, 1)
            ctx.set(dut.host_wdata, ~col & ((1 << cfg.ap.rows) - 1))
            await ctx.tick()
            res["cols"] = [col, await host_read(ctx, dut, cfg, HOST_READ_COL, 0, 1)]
        ctx.set(dut.host_op, 0)
        res["counters"] = await read_counters(ctx, dut)
        res["error"] = ctx.get(dut.error)

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


def golden_run(cfg, words, init):
    t = Tile(cfg)
    for k, rows in init.items():
        for r, v in enumerate(rows):
            t.host_write(k, r, v, (1 << cfg.ap_of(k).cols) - 1)
    t.run(words)
    out = {"aps": {k: [t.host_read(k, r) for r in range(cfg.ap_of(k).rows)] for k in init},
           "counters": dict(t.counters), "error": int(t.error), "cols": []}
    if cfg.ap.two_d:
        col = t.host_read_col(0)
        t.host_write_col(1, ~col & ((1 << cfg.ap.rows) - 1))
        out["cols"] = [col, t.host_read_col(1)]
    return out


@pytest.mark.parametrize("name", sorted(CFGS))
def test_tile_matches_golden(name, seed):
    cfg = CFGS[name]
    for s in range(seed, seed + 3):
        print(f"config {name}, seed {s}")
        rng = np.random.default_rng(s)
        words = random_tile_program(cfg, s, 40, transfer_share=0.4, illegal_share=0.05)
        init = initial(cfg, rng)
        got, want = run_rtl(cfg, words, init, s), golden_run(cfg, words, init)
        for k in init:
            assert got["aps"][k] == want["aps"][k], f"AP {k} differs (seed {s})"
        assert got["counters"] == want["counters"], f"seed {s}"
        assert got["error"] == want["error"]
        assert got["cols"] == want["cols"]
        assert want["counters"]["row_transfers"] > 0   # the program did move words


def test_movw_cost_and_illegal_moves():
    cfg = CFGS["k2"]
    t = Tile(cfg)
    good = [Instr(op=Opc.XROWS, srow=1, drow=0, stride=2),
            Instr(op=Opc.MOVW, sap=1, dap=0, a=0, d=0, n=8, count=6)]
    t.run([encode(i) for i in good])
    assert t.counters["cycles"] == 1 + movw_cycles(6) == 8
    assert t.counters["row_transfers"] == 12 and not t.error
    bad = [Instr(op=Opc.MOVW, sap=1, dap=1, n=4, count=1),          # same AP
           Instr(op=Opc.MOVW, sap=3, dap=0, n=4, count=1),          # no AP 3
           Instr(op=Opc.MOVW, sap=1, dap=0, n=4, count=7),          # source rows 1..13
           Instr(op=Opc.MOVW, sap=0, dap=2, a=16, n=4, count=1)]    # CAP column 19 reserved
    for ins in bad:
        before = dict(t.counters)
        t.execute(encode(ins))
        assert t.error and t.counters["errors"] == before["errors"] + 1
        assert t.counters["cycles"] == before["cycles"] + 1
    got = run_rtl(cfg, [encode(i) for i in good + bad], initial(cfg, np.random.default_rng(0)), 0)
    assert got["counters"] == t.counters
