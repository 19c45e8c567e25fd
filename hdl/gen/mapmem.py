"""A MAP in block RAM: the row port of a 1D AP core, nothing else (`tile.map_memory: bram`).

The tile drives its MAPs with two micro-ops only (hdl/gen/controller.py: MOVW and the
host port): `RDROW addr` (registered read: `rdata` and `rd_valid` the next cycle) and
`WRROW addr, data, mask` (a masked write of one row). Compare, tag-enabled writes and row
enables are never issued to a MAP, so its compare logic is idle (docs/fpga.md, "A MAP in
block RAM"). `MapMemory` keeps exactly that port behaviour with an Amaranth
`lib.memory.Memory` (one write port with a per-bit enable, one synchronous read port), so
that synthesis can put the rows in block RAM or LUT RAM instead of one flip-flop and a
write multiplexer per bit.

Its signature is the AP core's (`ap_signature`): a drop-in for `APCore` as a MAP. The
outputs a MAP never drives usefully (tags, counters, err) are constant 0; the tile reads
none of them. One behaviour differs and golden models it (golden/model/system.py:
`System.reset`): a memory keeps its contents over a reset (the link's RESET frame), where
the flip-flop rows clear. An address at or beyond `rows` is ignored, as `APCore` ignores an
illegal micro-op (the tile's validator never issues one).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring

from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.uops import Op
from bfimna.hdl.gen.ap import ap_signature


class MapMemory(wiring.Component):
    """Row-port-only AP core on a memory (see the module docstring)."""

    def __init__(self, ap: APConfig):
        if ap.two_d:
            self._MustUse__silence = True
            raise ValueError("a MAP in block RAM is a 1D AP (row port only)")
        self.ap = ap
        super().__init__(ap_signature(ap))

    def elaborate(self, platform):
        m = Module()
        R, C = self.ap.rows, self.ap.cols
        m.submodules.rows = mem = memory.Memory(shape=unsigned(C), depth=R, init=[])
        wr = mem.write_port(granularity=1)
        rd = mem.read_port(domain="sync", transparent_for=())
        in_range = Signal()
        m.d.comb += in_range.eq(self.addr < R)
        is_rd, is_wr = Signal(), Signal()
        m.d.comb += [is_rd.eq((self.op == Op.RDROW) & in_range),
                     is_wr.eq((self.op == Op.WRROW) & in_range)]
        m.d.comb += [wr.addr.eq(self.addr), wr.data.eq(self.data),
                     wr.en.eq(Mux(is_wr, self.mask, 0)),
                     rd.addr.eq(self.addr), rd.en.eq(is_rd),
                     self.rdata.eq(rd.data)]
        m.d.sync += self.rd_valid.eq(is_rd)
        return m
