"""Amaranth generator of one AP core (a CAM array that computes in place).

One micro-operation per clock cycle, as specified by the golden model (golden/model/ap.py) and
the opcode table (golden/spec/uops.py); docs/ap_core.md describes the ports and timing.

The CAM is R row registers of C bits. Per row and cycle the core evaluates the masked
compare against the key (and the row enable), and applies at most one write: the
tag-enabled broadcast write, the row port write, or the column write / column move
(2D only). Reads (row and column) are registered: their data and valid strobe appear
the cycle after the micro-op.

`fault` deliberately breaks one micro-op (see FAULTS). It exists so that the tests can
show that the testbenches catch a wrong generator; it is never used to emit real RTL.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.uops import CNT_CYCLES, CNT_ILLEGAL, N_COUNTERS, Op, addr_bits, port_widths

FAULTS = {
    "cmp_ignores_mask": "compare tests every column, not only the masked ones",
    "cmpa_overwrites": "accumulating compare replaces the tag instead of OR-ing into it",
    "cmp_ignores_rowen": "disabled rows still match",
    "wr_ignores_tag": "tag-enabled write writes every row",
    "wrrow_ignores_mask": "row write writes the whole word",
    "shift_off_by_one": "column write/move shifts by one row more than asked",
    "move_ignores_rowen": "column move takes its source from disabled rows too",
    "wr_not_counted": "the WR counter never counts",
}


def ap_module_name(ap: APConfig) -> str:
    """Verilog module name of the AP core; it carries every generator parameter."""
    return f"bfimna_ap{ap.dims}d_r{ap.rows}_c{ap.cols}_n{ap.counter_bits}"


def ap_signature(ap: APConfig) -> wiring.Signature:
    members = {name: In(width) for name, width in port_widths(ap).items()}
    members.update(
        cnt_sel=In(4),
        rdata=Out(ap.cols), rd_valid=Out(1),
        tag=Out(ap.rows), tag_any=Out(1), tag_first=Out(addr_bits(ap.rows)),
        err=Out(1), cnt=Out(ap.counter_bits),
    )
    if ap.two_d:
        members.update(rcol=Out(ap.rows), rcol_valid=Out(1))
    return wiring.Signature(members)


class APCore(wiring.Component):
    def __init__(self, ap: APConfig, fault: str | None = None):
        if fault is not None and fault not in FAULTS:
            self._MustUse__silence = True  # never elaborated: no "unused" warning
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.ap = ap
        self.fault = fault
        super().__init__(ap_signature(ap))

    def elaborate(self, platform):
        m = Module()
        ap, fault = self.ap, self.fault
        R, C = ap.rows, ap.cols
        op = self.op

        rows = [Signal(C, name=f"row{r}") for r in range(R)]
        tag = Signal(R)
        rowen = Signal(R, init=(1 << R) - 1)
        m.d.comb += self.tag.eq(tag)

        # -- legality: an illegal micro-op is executed as a NOP and sets err ----------
        legal = Signal()
        with m.Switch(op):
            with m.Case(Op.NOP, Op.CMP, Op.CMPA, Op.WR):
                m.d.comb += legal.eq(1)
            with m.Case(Op.RDROW, Op.WRROW):
                m.d.comb += legal.eq(self.addr < R)
            with m.Case(Op.ROWEN):
                m.d.comb += legal.eq((self.addr <= self.addr2) & (self.addr2 <= R))
            if ap.two_d:
                with m.Case(Op.RDCOL):
                    m.d.comb += legal.eq(self.col < C)
                with m.Case(Op.WRCOL):
                    m.d.comb += legal.eq((self.col < C) & (self.shift < R))
                with m.Case(Op.MVCOL):
                    m.d.comb += legal.eq((self.col < C) & (self.col2 < C) & (self.shift < R))
        with m.If(~legal):
            m.d.sync += self.err.eq(1)
        is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in Op}
        for o, s in is_op.items():
            m.d.comb += s.eq(legal & (op == o))

        # -- compare: tag <- match (CMP) or tag | match (CMPA) ------------------------
        cmp_mask = Const((1 << C) - 1, C) if fault == "cmp_ignores_mask" else self.mask
        match = Signal(R)
        for r in range(R):
            hit = ((rows[r] ^ self.key) & cmp_mask) == 0
            if fault != "cmp_ignores_rowen":
                hit = hit & rowen[r]
            m.d.comb += match[r].eq(hit)
        with m.If(is_op[Op.CMP]):
            m.d.sync += tag.eq(match)
        with m.If(is_op[Op.CMPA]):
            m.d.sync += tag.eq(match if fault == "cmpa_overwrites" else (tag | match))

        # -- row enable -------------------------------------------------------------------
        with m.If(is_op[Op.ROWEN]):
            m.d.sync += rowen.eq(Cat((self.addr <= r) & (self.addr2 > r) for r in range(R)))

        # -- row port: registered read, masked write ----------------------------------
        m.d.sync += self.rd_valid.eq(is_op[Op.RDROW])
        with m.If(is_op[Op.RDROW]):
            m.d.sync += self.rdata.eq(Array(rows)[self.addr])
        row_mask = Const((1 << C) - 1, C) if fault == "wrrow_ignores_mask" else self.mask
        row_sel = Signal(R)
        m.d.comb += row_sel.eq(Mux(is_op[Op.WRROW], Const(1, 1) << self.addr, 0))

        # -- column port (2D): registered read, write and move with a row shift -------
        if ap.two_d:
            m.d.sync += self.rcol_valid.eq(is_op[Op.RDCOL])
            with m.If(is_op[Op.RDCOL]):
                m.d.sync += self.rcol.eq(Cat(row.bit_select(self.col, 1) for row in rows))
            src_col = Cat(row.bit_select(self.col2, 1) for row in rows)
            if fault != "move_ignores_rowen":
                src_col = src_col & rowen
            col_src = Mux(is_op[Op.MVCOL], src_col, self.vec)
            shift = self.shift + 1 if fault == "shift_off_by_one" else self.shift
            col_data = Signal(R)
            m.d.comb += col_data.eq(col_src >> shift)
            col_onehot = Signal(C)
            m.d.comb += col_onehot.eq(Const(1, 1) << self.col)
            col_wr = Signal(R)
            m.d.comb += col_wr.eq(Mux(is_op[Op.WRCOL] | is_op[Op.MVCOL], rowen, 0))

        # -- the one write each row can take per cycle --------------------------------
        wr_sel = Const((1 << R) - 1, R) if fault == "wr_ignores_tag" else tag
        for r in range(R):
            row = rows[r]
            with m.If(is_op[Op.WR] & wr_sel[r]):
                m.d.sync += row.eq((row & ~self.mask) | (self.key & self.mask))
            with m.If(row_sel[r]):
                m.d.sync += row.eq((row & ~row_mask) | (self.data & row_mask))
            if ap.two_d:
                with m.If(col_wr[r]):
                    m.d.sync += row.eq((row & ~col_onehot) | Mux(col_data[r], col_onehot, 0))

        # -- tag utilities --------------------------------------------------------------
        m.d.comb += self.tag_any.eq(tag.any())
        for r in reversed(range(R)):
            with m.If(tag[r]):
                m.d.comb += self.tag_first.eq(r)

        # -- counters -------------------------------------------------------------------
        counters = [Signal(ap.counter_bits, name=f"cnt_{i}") for i in range(N_COUNTERS)]
        m.d.sync += counters[CNT_CYCLES].eq(counters[CNT_CYCLES] + 1)
        with m.If(~legal):
            m.d.sync += counters[CNT_ILLEGAL].eq(counters[CNT_ILLEGAL] + 1)
        for o in Op:
            if fault == "wr_not_counted" and o == Op.WR:
                continue
            with m.If(is_op[o]):
                m.d.sync += counters[o].eq(counters[o] + 1)
        with m.Switch(self.cnt_sel):
            for i, c in enumerate(counters):
                with m.Case(i):
                    m.d.comb += self.cnt.eq(c)
        return m
