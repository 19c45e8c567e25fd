"""Shared Amaranth-simulator steps for the tile testbenches (test_hdl_*, test_rules,
test_widths): loading APs through the tile's host port."""

from __future__ import annotations

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
