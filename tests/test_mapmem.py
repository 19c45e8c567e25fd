"""A MAP in block RAM (hdl/gen/mapmem.py, `tile.map_memory: bram`) against the AP core it
replaces, in Amaranth's simulator (fast tier), and the one behaviour that differs: its rows
survive a reset, which the golden system models."""

import numpy as np
import pytest
from amaranth import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator

from bfimna.golden.model.fast import FastTile
from bfimna.golden.model.system import System
from bfimna.golden.spec.config import APConfig, ConfigError, config_from_dict
from bfimna.golden.spec.uops import Op, addr_bits
from bfimna.hdl.gen.ap import APCore
from bfimna.hdl.gen.mapmem import MapMemory

SHAPES = [APConfig(rows=20, cols=12, dims=1, counter_bits=8),    # rows not a power of 2
          APConfig(rows=16, cols=16, dims=1, counter_bits=8),
          APConfig(rows=1, cols=2, dims=1, counter_bits=8)]


class _Pair(Elaboratable):
    """Both cores on one clock domain whose reset the bench drives."""

    def __init__(self, ap: APConfig):
        self.cam, self.mem = APCore(ap), MapMemory(ap)
        self.cd = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        m.submodules.cam, m.submodules.mem = self.cam, self.mem
        return m


def _run(ap: APConfig, seed: int, n_ops: int):
    """Random row-port streams (reads, masked writes, out-of-range addresses, ops a MAP is
    never given, random don't-care fields) into both cores; every cycle rd_valid must agree
    and, when valid, rdata. Then a reset: the memory keeps a row the AP core clears."""
    rng = np.random.default_rng(seed)
    pair = _Pair(ap)
    a_bits = addr_bits(ap.rows)
    seen = {"reads": 0, "mismatch": None}

    async def bench(ctx):
        for cycle in range(n_ops):
            op = int(rng.choice([Op.RDROW, Op.WRROW, Op.WRROW, Op.NOP]))
            addr = int(rng.integers(1 << a_bits) if rng.random() < 0.2 else rng.integers(ap.rows))
            vals = {"op": op, "addr": addr,
                    "data": int(rng.integers(1 << ap.cols)),
                    "mask": int(rng.integers(1 << ap.cols)),
                    "key": int(rng.integers(1 << ap.cols))}
            for core in (pair.cam, pair.mem):
                for f, v in vals.items():
                    ctx.set(getattr(core, f), v)
            await ctx.tick()
            v_cam, v_mem = ctx.get(pair.cam.rd_valid), ctx.get(pair.mem.rd_valid)
            if v_cam != v_mem or (v_cam and ctx.get(pair.cam.rdata) != ctx.get(pair.mem.rdata)):
                seen["mismatch"] = (cycle, vals, v_cam, v_mem, ctx.get(pair.cam.rdata),
                                    ctx.get(pair.mem.rdata))
                return
            seen["reads"] += v_cam
        # write row 0 of both, reset, read it back
        for core in (pair.cam, pair.mem):
            ctx.set(core.op, Op.WRROW), ctx.set(core.addr, 0)
            ctx.set(core.data, (1 << ap.cols) - 1), ctx.set(core.mask, (1 << ap.cols) - 1)
        await ctx.tick()
        ctx.set(pair.cd.rst, 1)
        for core in (pair.cam, pair.mem):
            ctx.set(core.op, Op.NOP)
        await ctx.tick()
        ctx.set(pair.cd.rst, 0)
        for core in (pair.cam, pair.mem):
            ctx.set(core.op, Op.RDROW), ctx.set(core.addr, 0)
        await ctx.tick()
        seen["after_reset"] = (ctx.get(pair.cam.rdata), ctx.get(pair.mem.rdata))

    sim = Simulator(pair)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("ap", SHAPES, ids=lambda a: f"{a.rows}x{a.cols}")
def test_map_memory_row_port_equals_the_ap_core(ap, seed):
    print(f"seed {seed}")
    seen = _run(ap, seed, 400)
    assert seen["mismatch"] is None, f"seed {seed}: first mismatch {seen['mismatch']}"
    assert seen["reads"] > 40          # the stream did read (not a vacuous agreement)
    full = (1 << ap.cols) - 1
    assert seen["after_reset"] == (0, full)   # flip-flops clear, the memory keeps the row


def test_map_memory_refuses_a_2d_ap():
    with pytest.raises(ValueError, match="1D AP"):
        MapMemory(APConfig(rows=4, cols=4, dims=2, counter_bits=8))


def _cfg(memory: str | None):
    tile: dict[str, int | str] = {"maps": 1, "map_rows": 8, "map_cols": 8}
    if memory is not None:
        tile["map_memory"] = memory
    return config_from_dict({"name": "m", "ap": {"rows": 8, "cols": 16, "dims": 2},
                             "tile": tile})


def test_map_memory_field_validated_and_hash_of_the_default_kept():
    assert _cfg(None).tile.map_memory == "cam"
    assert _cfg(None).hash == _cfg("cam").hash != _cfg("bram").hash
    assert "map_memory" not in _cfg(None).as_dict()["tile"]
    assert config_from_dict(_cfg("bram").as_dict()).tile.map_memory == "bram"
    with pytest.raises(ConfigError, match="map_memory"):
        _cfg("sram")


@pytest.mark.parametrize("memory", ["cam", "bram"])
def test_golden_reset_keeps_bram_map_rows_only(memory):
    system = System(_cfg(memory), tile_cls=FastTile)
    system.tiles[0].host_write(1, 3, 0xA5, 0xFF)     # MAP 1, row 3
    system.tiles[0].host_write(0, 3, 0x5A, 0xFF)     # CAP row 3
    system.reset()
    assert system.tiles[0].host_read(1, 3) == (0xA5 if memory == "bram" else 0)
    assert system.tiles[0].host_read(0, 3) == 0
