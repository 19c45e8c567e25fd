"""Micro-operations of one AP core: opcodes, operand fields and port widths.

This is the interface contract between the golden AP model (golden/model/ap.py), the Amaranth
generator (hdl/gen/ap.py) and the testbenches. docs/ap_core.md is its prose version.

A micro-operation takes one clock cycle, but for MVCOL, which takes two: it reads its
source column in its own cycle and writes its destination column in the next, so the
micro-op after a legal MVCOL must be a NOP (any other is illegal: executed as a NOP that
sets err, while the move's write completes). The read and the write are apart so that the
compare network (which reads the source) and the row shift (which writes) are not one
path (docs/fpga.md, "Critical paths", after 17). Its operand fields, all presented in the
same cycle as the opcode:

    key, mask   C bits   compare pattern / write value and the columns taking part
    data        C bits   word for WRROW (written where mask is set)
    addr        AW bits  row address of RDROW/WRROW; first row of ROWEN
    addr2       AW bits  end row (exclusive) of ROWEN
    col         CW bits  column of RDCOL, destination column of WRCOL and MVCOL   (2D only)
    col2        CW bits  source column of MVCOL                                   (2D only)
    shift       AW bits  row shift of WRCOL and MVCOL: row r receives row r+shift (2D only)
    vec         R bits   column data of WRCOL                                      (2D only)

AW = bit length of R (so that ROWEN's end row R fits), CW = bit length of C-1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from bfimna.golden.spec.config import APConfig


class Op(enum.IntEnum):
    NOP = 0
    CMP = 1     # tag = match
    CMPA = 2    # tag |= match (accumulate)
    WR = 3      # tagged rows: cam[r][c] = key[c] where mask[c]
    RDROW = 4   # rdata <= cam[addr] (valid the next cycle)
    WRROW = 5   # cam[addr][c] = data[c] where mask[c]
    ROWEN = 6   # rowen[r] = addr <= r < addr2
    RDCOL = 7   # rcol <= cam[:, col] (2D only, valid the next cycle)
    WRCOL = 8   # rows with rowen: cam[r][col] = vec[r + shift] (0 past the last row) (2D)
    MVCOL = 9   # rows with rowen: cam[r][col] = cam[r + shift][col2] if row r + shift is
    #             enabled, else 0 (also past the last row) (2D); two cycles: a NOP follows


OP_BITS = 4
COLUMN_OPS = (Op.RDCOL, Op.WRCOL, Op.MVCOL)

# Counter read port: cnt_sel in [0, 9] reads the count of that opcode (legal ones only),
# CNT_ILLEGAL counts illegal micro-ops (executed as NOP, set the sticky err flag),
# CNT_CYCLES counts every clock cycle since reset.
CNT_ILLEGAL = 10
CNT_CYCLES = 11
N_COUNTERS = 12
COUNTER_NAMES = [op.name.lower() for op in Op] + ["illegal", "cycles"]


def addr_bits(rows: int) -> int:
    return max(1, rows.bit_length())


def col_bits(cols: int) -> int:
    return max(1, (cols - 1).bit_length())


@dataclass(frozen=True)
class UOp:
    op: int
    key: int = 0
    mask: int = 0
    data: int = 0
    addr: int = 0
    addr2: int = 0
    col: int = 0
    col2: int = 0
    shift: int = 0
    vec: int = 0

    def __str__(self) -> str:
        try:
            name = Op(self.op).name
        except ValueError:
            name = f"OP{self.op}"
        parts = [f"{f.name}={getattr(self, f.name):#x}" for f in fields(self)[1:]
                 if getattr(self, f.name)]
        return f"{name}({', '.join(parts)})"


def port_widths(ap: APConfig) -> dict[str, int]:
    """Width of every operand field the AP core of this configuration has."""
    w = {"op": OP_BITS, "key": ap.cols, "mask": ap.cols, "data": ap.cols,
         "addr": addr_bits(ap.rows), "addr2": addr_bits(ap.rows)}
    if ap.two_d:
        w.update(col=col_bits(ap.cols), col2=col_bits(ap.cols),
                 shift=addr_bits(ap.rows), vec=ap.rows)
    return w


def fits_ports(ap: APConfig, u: UOp) -> bool:
    """True if every field of `u` fits the port widths (a stream the RTL can be fed)."""
    w = port_widths(ap)
    for f in fields(u):
        v = getattr(u, f.name)
        if v < 0 or v >> w.get(f.name, 0):
            return False
    return True


def is_legal(ap: APConfig, u: UOp, after_mvcol: bool = False) -> bool:
    """Whether the AP core executes `u`; an illegal micro-op is a NOP that sets err.
    `after_mvcol`: the micro-op before `u` was a legal MVCOL, whose write takes `u`'s
    cycle, so only a NOP is legal."""
    if u.op not in Op.__members__.values():
        return False
    op = Op(u.op)
    if after_mvcol and op != Op.NOP:
        return False
    if op in COLUMN_OPS:
        if not ap.two_d or u.col >= ap.cols:
            return False
        if op in (Op.WRCOL, Op.MVCOL) and u.shift >= ap.rows:
            return False
        if op == Op.MVCOL and u.col2 >= ap.cols:
            return False
    if op in (Op.RDROW, Op.WRROW) and u.addr >= ap.rows:
        return False
    if op == Op.ROWEN and not (u.addr <= u.addr2 <= ap.rows):
        return False
    return True


# -- the tile controller's counters (csr_sel index = position; docs/system.md register map)
COUNTER_KEYS = ("cycles", "compares", "writes", "row_transfers", "col_transfers",
                "rowen", "nops", "instructions", "errors")
# the activity energy depends on, per tile (golden/spec/costs.py profile, docs/energy.md)
ACTIVITY_KEYS = ("cycles", "cmp_cells", "match_rows", "wr_cells", "col_cells", "row_bits",
                 "wr_ops")
# the controller counter each issued micro-op counts in (besides cycles)
UOP_COUNTER = {Op.CMP: "compares", Op.CMPA: "compares", Op.WR: "writes",
               Op.RDROW: "row_transfers", Op.WRROW: "row_transfers",
               Op.RDCOL: "col_transfers", Op.WRCOL: "col_transfers", Op.MVCOL: "col_transfers",
               Op.ROWEN: "rowen", Op.NOP: "nops"}
