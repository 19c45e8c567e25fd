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

from amaranth import Cat, Const, Module, Mux, Signal
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
    """One AP core. `registered` (the tile's port register, `tile.port_register`): the
    core decodes its port inputs and registers what they decode to (per row, per column),
    and executes the micro-op the cycle after, all but `data`, which it takes in the cycle
    it executes (a MOVW's write data comes back from the source only then)."""

    def __init__(self, ap: APConfig, fault: str | None = None, registered: bool = False):
        if fault is not None and fault not in FAULTS:
            self._MustUse__silence = True  # never elaborated: no "unused" warning
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.ap = ap
        self.fault = fault
        self.registered = registered
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

        # The array is built the way an FPGA's fabric wants it (docs/fpga.md, "How the CAM
        # maps to the FPGA"): every per-bit function has at most four inputs, and anything
        # that depends on the row alone or on the column alone is computed once per row or
        # once per column, not once per bit. First the port inputs are decoded into those
        # per-row and per-column terms (`dec`); `registered` registers them, so the array
        # runs from flip-flops a cycle later.
        dec = {}

        def term(name, shape, value):
            dec[name] = Signal(shape, name=f"d_{name}")
            m.d.comb += dec[name].eq(value)

        # -- legality: an illegal micro-op is executed as a NOP and sets err ----------
        # MVCOL takes two cycles (golden/spec/uops.py): the micro-op decoded while a legal
        # MVCOL executes (`after_mv`) must be a NOP, since the move writes in its cycle
        after_mv = Signal()
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
        term("legal", 1, legal & ~(after_mv & (op != Op.NOP)))
        for o in Op:
            term(f"is_{o.name.lower()}", 1, dec["legal"] & (op == o))

        # -- compare: tag <- match (CMP) or tag | match (CMPA) ------------------------
        # The same network reads a column (RDCOL, MVCOL's source): with the key all ones
        # and the mask only that column, a row matches when its bit there is 1. So a 2D
        # core has no column multiplexer per row.
        cmp_key, cmp_mask = self.key, self.mask
        if fault == "cmp_ignores_mask":
            cmp_mask = Const((1 << C) - 1, C)
        if ap.two_d:
            col_read = Signal()                  # RDCOL or MVCOL: the network reads a column
            csel = Signal.like(self.col)         # which: col for RDCOL, col2 for MVCOL
            m.d.comb += [
                col_read.eq((op == Op.RDCOL) | (op == Op.MVCOL)),
                csel.eq(Mux(op == Op.MVCOL, self.col2, self.col)),
            ]
            cmp_key = Mux(col_read, Const((1 << C) - 1, C), cmp_key)
            cmp_mask = Mux(col_read, (Const(1, 1) << csel)[:C], cmp_mask)
        term("cmp_key", C, cmp_key)
        term("cmp_mask", C, cmp_mask)

        # -- row terms: the row port's decoded address, ROWEN's new enables -------------
        row_hit = Signal(R)                      # addr decoded; shared by RDROW and WRROW
        m.d.comb += row_hit.eq(Cat(self.addr == r for r in range(R)))
        term("row_hit", R, row_hit)
        term("wrrow_rows", R, Mux(dec["is_wrrow"], row_hit, 0))
        term("rowen_set", R, Cat((self.addr <= r) & (self.addr2 > r) for r in range(R)))

        # -- the write's column terms ----------------------------------------------------
        # Row r is written (`row_we`, the flip-flops' clock enable, one per row) in the
        # columns `col_we`, with `bit_c` (by column) or `bit_r` (by row):
        #   WR           rows tagged,       columns in mask,   data key
        #   WRROW        row addr,          columns in mask,   data data
        #   WRCOL/MVCOL  rows enabled,      column col,        data col_data[r]
        # so each bit's next value is col_we[c] ? (bit_r[r] | bit_c[c]) : bit, four inputs.
        row_mask = Const((1 << C) - 1, C) if fault == "wrrow_ignores_mask" else self.mask
        col_onehot = Signal(C)
        if ap.two_d:
            m.d.comb += col_onehot.eq(Const(1, 1) << self.col)
            term("col_op", 1, dec["is_wrcol"])       # a legal WRCOL (an MVCOL's: mv_pend)
            term("vec", R, self.vec)
            shift = self.shift + 1 if fault == "shift_off_by_one" else self.shift
            term("shift", len(self.shift) + 1, shift)
        else:
            term("col_op", 1, 0)
        term("col_we", C, Mux(op == Op.WR, self.mask, Mux(op == Op.WRROW, row_mask, col_onehot)))
        # bit_c: the key for WR, `data` for a row write (taken in the cycle it executes)
        term("take_data", 1, ~dec["col_op"] & (op != Op.WR))
        term("key_bits", C, Mux(~dec["col_op"] & (op == Op.WR), self.key, 0))

        if self.registered:
            # from reset, the registered terms are those of a NOP (legal): the first cycle
            # executes one, as the golden model does when the reset's NOP is stepped
            q = {k: Signal.like(v, name=f"q_{k}", init=int(k in ("legal", "is_nop")))
                 for k, v in dec.items()}
            m.d.sync += [q[k].eq(v) for k, v in dec.items()]
        else:
            q = dec
        is_op = {o: q[f"is_{o.name.lower()}"] for o in Op}

        with m.If(~q["legal"]):
            m.d.sync += self.err.eq(1)

        hit = Signal(R)                          # the masked compare alone
        match = Signal(R)                        # ... in enabled rows
        for r in range(R):
            m.d.comb += hit[r].eq(((rows[r] ^ q["cmp_key"]) & q["cmp_mask"]) == 0)
        m.d.comb += match.eq(hit if fault == "cmp_ignores_rowen" else hit & rowen)
        with m.If(is_op[Op.CMP]):
            m.d.sync += tag.eq(match)
        with m.If(is_op[Op.CMPA]):
            m.d.sync += tag.eq(match if fault == "cmpa_overwrites" else (tag | match))

        # -- row enable -------------------------------------------------------------------
        with m.If(is_op[Op.ROWEN]):
            m.d.sync += rowen.eq(q["rowen_set"])

        # -- row port: registered read (an AND-OR over a one-hot row decode), masked write
        rd_or = Const(0, C)
        for r in range(R):
            rd_or = rd_or | Mux(q["row_hit"][r], rows[r], 0)
        m.d.sync += self.rd_valid.eq(is_op[Op.RDROW])
        with m.If(is_op[Op.RDROW]):
            m.d.sync += self.rdata.eq(rd_or)

        # -- column port (2D): registered read, write and move with a row shift -------
        # MVCOL reads its source column (the compare network's `hit`, in enabled rows) in
        # its cycle into `mv_src`, with its column and shift, and writes the cycle after
        # (`mv_pend`, the NOP's cycle): the compare and the row shift are two paths
        col_data = Signal(R)                     # the column it writes, row by row
        mv_pend = Signal()                       # a legal MVCOL executed last cycle
        col_write = q["col_op"]                  # a column is written this cycle
        if ap.two_d:
            m.d.sync += self.rcol_valid.eq(is_op[Op.RDCOL])
            with m.If(is_op[Op.RDCOL]):
                m.d.sync += self.rcol.eq(hit)
            src_col = hit if fault == "move_ignores_rowen" else hit & rowen
            mv_src, mv_col_we = Signal(R), Signal(C)
            mv_shift = Signal.like(q["shift"], name="mv_shift")
            m.d.sync += mv_pend.eq(is_op[Op.MVCOL])
            with m.If(is_op[Op.MVCOL]):
                m.d.sync += [mv_src.eq(src_col), mv_col_we.eq(q["col_we"]),
                             mv_shift.eq(q["shift"])]
            m.d.comb += [
                col_data.eq(Mux(mv_pend, mv_src, q["vec"]) >> Mux(mv_pend, mv_shift, q["shift"])),
                after_mv.eq(q["is_mvcol"] if self.registered else mv_pend),
            ]
            col_write = q["col_op"] | mv_pend

        # -- the one write each row can take per cycle --------------------------------
        wr_sel = Const((1 << R) - 1, R) if fault == "wr_ignores_tag" else tag
        row_we = Signal(R)
        m.d.comb += row_we.eq(Mux(is_op[Op.WR], wr_sel, 0) | q["wrrow_rows"]
                              | Mux(col_write, rowen, 0))
        col_we = Mux(mv_pend, mv_col_we, q["col_we"]) if ap.two_d else q["col_we"]
        bit_c = Signal(C)                        # the data of a row write, by column
        bit_r = Signal(R)                        # the data of a column write, by row
        m.d.comb += [
            # (an MVCOL's write: none, whatever the illegal micro-op beside it says)
            bit_c.eq(Mux(mv_pend, 0, Mux(q["take_data"], self.data, q["key_bits"]))),
            bit_r.eq(Mux(col_write, col_data, 0)),
        ]
        for r in range(R):
            row = rows[r]
            with m.If(row_we[r]):
                m.d.sync += row.eq((row & ~col_we) | ((bit_c | bit_r[r].replicate(C)) & col_we))

        # -- tag utilities --------------------------------------------------------------
        m.d.comb += self.tag_any.eq(tag.any())
        for r in reversed(range(R)):
            with m.If(tag[r]):
                m.d.comb += self.tag_first.eq(r)

        # -- counters -------------------------------------------------------------------
        counters = [Signal(ap.counter_bits, name=f"cnt_{i}") for i in range(N_COUNTERS)]
        m.d.sync += counters[CNT_CYCLES].eq(counters[CNT_CYCLES] + 1)
        with m.If(~q["legal"]):
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
