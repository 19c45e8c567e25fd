"""Shared Amaranth-simulator steps for the tile testbenches (test_hdl_*, test_rules):
loading and reading APs through the tile's host port."""

from __future__ import annotations

from bfimna.golden.spec.isa import host_read_latency
from bfimna.hdl.gen.controller import HOST_WRITE


async def host_load(ctx, dut, ap: int, rows, mask: int) -> None:
    """Write `rows` (ints, row 0 first) into AP `ap` of the tile through its host port,
    columns `mask`, one row per cycle; leaves the port idle."""
    for r, v in enumerate(rows):
        ctx.set(dut.host_op, HOST_WRITE)
        if hasattr(dut, "host_ap"):
            ctx.set(dut.host_ap, ap)
        ctx.set(dut.host_addr, r)
        ctx.set(dut.host_wdata, v)
        ctx.set(dut.host_mask, mask)
        await ctx.tick()
    ctx.set(dut.host_op, 0)


async def host_read(ctx, dut, cfg, op: int, ap: int, addr: int) -> int:
    """One read through the tile's host port (HOST_READ: row `addr` of AP `ap`;
    HOST_READ_COL: column `addr` of the CAP): the request for one cycle, then its data
    host_read_latency cycles after it, with host_rvalid. Leaves the port idle."""
    ctx.set(dut.host_op, op)
    if hasattr(dut, "host_ap"):
        ctx.set(dut.host_ap, ap)
    ctx.set(dut.host_addr, addr)
    await ctx.tick()
    ctx.set(dut.host_op, 0)
    for _ in range(host_read_latency(cfg.tile.port_register) - 1):
        await ctx.tick()
    assert ctx.get(dut.host_rvalid), f"host read {op} of AP {ap} at {addr}: no host_rvalid"
    return ctx.get(dut.host_rdata)
