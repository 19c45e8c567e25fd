"""Cycle costs of the macro-operations, from the microcode itself.

Every figure is the length of the micro-op stream `expand` produces (one micro-op per
cycle), for the searched LUTs and for the textbook ones, so the table cannot drift from
what the controller issues. The representative instruction of each row:

    ADD/SUB      d += a, n bits
    ADDI/SUBI    d += imm, n bits (cost independent of the immediate)
    MUL.u/.s     n x n bits -> 2n bits
    MAC.u/.s     acc(2n+4 bits) += x(n bits) * w, w = 0b0101..01 (n bits): the most
                 nonzero CSD digits an n-bit weight can have
    MAX/MIN.s    n bits, signed;  RELU n bits;  COPY, CLEAR n bits
    CLAMP.s      n bits to n/2 bits (at least 1)
    SHR          n bits by n/2 (at least 1) with rounding
    REDUCE       n-bit sums over 2^stages rows, stages = log2(rows)
"""

from __future__ import annotations

from bfimna.golden.spec.config import APConfig
from bfimna.golden.model.controller import csd_digits, cycles
from bfimna.golden.spec.isa import Instr, Opc
from bfimna.golden.spec.microcode import LUTS, TEXTBOOK

DEFAULT_BITS = (1, 2, 4, 8, 16)


def _alternating(n: int) -> int:
    return sum(1 << k for k in range(0, n, 2))


def representative(op_name: str, n: int, rows: int) -> Instr | None:
    """The instruction a cost-table row stands for (None where n does not apply)."""
    signed = op_name.endswith(".s")
    op = Opc[op_name.split(".")[0]]
    far = 4 * n + 8  # operands far apart: positions do not change the cost
    if op in (Opc.ADD, Opc.SUB, Opc.MAX, Opc.MIN, Opc.COPY):
        return Instr(op=op, s=signed, d=0, a=far, n=n)
    if op in (Opc.ADDI, Opc.SUBI):
        return Instr(op=op, d=0, imm=1, n=n)
    if op == Opc.MUL:
        return Instr(op=op, s=signed, d=0, a=far, b=2 * far, n=n, m=n)
    if op == Opc.MAC:
        return Instr(op=op, s=signed, d=0, a=far, n=n, m=2 * n + 4,
                     imm=min(_alternating(n), (1 << 15) - 1))
    if op in (Opc.RELU, Opc.CLEAR):
        return Instr(op=op, d=0, n=n)
    if op in (Opc.CLAMP, Opc.SHR):
        return None if n < 2 else Instr(op=op, s=signed, d=0, n=n, m=max(1, n // 2))
    if op == Opc.REDUCE:
        stages = max(1, (rows - 1).bit_length())
        return Instr(op=op, d=0, a=far, n=n, m=stages)
    return None


ROWS_OF_TABLE = ("ADD", "SUB", "ADDI", "SUBI", "MUL.u", "MUL.s", "MAC.u", "MAC.s", "RELU",
                 "MAX.s", "MIN.s", "CLAMP.s", "SHR", "COPY", "CLEAR", "REDUCE")


def cost_table(bits=DEFAULT_BITS, rows: int = 256) -> list[dict]:
    ap = APConfig(rows=rows, cols=256, dims=2, counter_bits=32)  # wide enough for any field
    out = []
    for name in ROWS_OF_TABLE:
        for n in bits:
            ins = representative(name, n, rows)
            if ins is None:
                continue
            row = {"op": name, "bits": n, "cycles": cycles(ins, ap, LUTS),
                   "textbook": cycles(ins, ap, TEXTBOOK)}
            if ins.op == Opc.MAC:
                row["csd_digits"] = len(csd_digits(ins.imm))
            out.append(row)
    return out
