"""Cycle costs of the macro-operations, from the microcode itself.

Every figure is the length of the micro-op stream `expand` produces (one micro-op per
cycle), for the searched LUTs and for the textbook ones, so the table cannot drift from
what the controller issues; an instruction that issues no CAP micro-ops (MOVW) has its
counts in its opcode table entry (golden/spec/isa.py: OPCODES). The representative
instruction of each row (the table entry's `example`):

    ADD/SUB      d += a, n bits
    ADDI/SUBI    d += imm, n bits (cost independent of the immediate)
    MUL.u/.s     n x n bits -> 2n bits
    MAC.u/.s     acc(2n+4 bits) += x(n bits) * w, w = 0b0101..01 (n bits): the most
                 nonzero CSD digits an n-bit weight can have
    MAX/MIN.s    n bits, signed;  RELU n bits;  COPY, CLEAR n bits
    CLAMP.s      n bits to n/2 bits (at least 1)
    SHR          n bits by n/2 (at least 1) with rounding
    REDUCE       n-bit sums over 2^stages rows, stages = log2(rows)

`counts(word, ap)` and `instr_cycles(word, ap)` are the cost model of one instruction word
(the fast golden tile and the scheduler use them).
"""

from __future__ import annotations

from functools import lru_cache

from bfimna.golden.model.controller import _expand, csd_digits, cycles
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.isa import OPCODES, Instr, Opc, decode
from bfimna.golden.spec.microcode import LUTS, TEXTBOOK
from bfimna.golden.spec.uops import COUNTER_KEYS, UOP_COUNTER, Op

DEFAULT_BITS = (1, 2, 4, 8, 16)


@lru_cache(maxsize=65536)
def counts(word: int, ap: APConfig) -> tuple[int, ...]:
    """Counter increments (COUNTER_KEYS order; `instructions` and `errors` stay 0) of one
    legal instruction word on a tile whose CAP is `ap`."""
    ins = decode(word)
    c = dict.fromkeys(COUNTER_KEYS, 0)
    spec = OPCODES[Opc(ins.op)]
    if spec.counts is not None:
        c.update(spec.counts(ins))
    else:          # the bit loops are tallied, not built (controller._expand)
        tally = {"compares": 0, "writes": 0}
        for u in _expand(ins, ap, LUTS, tally):
            c[UOP_COUNTER[Op(u.op)]] += 1
        c["compares"] += tally["compares"]
        c["writes"] += tally["writes"]
        c["cycles"] = sum(c[k] for k in UOP_KEYS)
        if c["cycles"] == 0:     # nothing to do (MAC by 0): one NOP, as expand() issues
            c["cycles"] = c["nops"] = 1
    return tuple(c[k] for k in COUNTER_KEYS)


UOP_KEYS = tuple(dict.fromkeys(UOP_COUNTER.values()))   # every micro-op counts in one


def instr_cycles(word: int, ap: APConfig) -> int:
    """Exact cycles of one legal instruction word on a tile whose CAP is `ap`."""
    return counts(word, ap)[COUNTER_KEYS.index("cycles")]


def representative(op_name: str, n: int, rows: int) -> Instr | None:
    """The instruction a cost-table row stands for (None where n does not apply)."""
    signed = op_name.endswith(".s")
    op = Opc[op_name.split(".")[0]]
    example = OPCODES[op].example
    kw = example(n, rows, signed) if example else None
    return None if kw is None else Instr(op=op, **kw)


ROWS_OF_TABLE = tuple(r for s in OPCODES.values() for r in s.cost_rows)


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
            if OPCODES[Opc(ins.op)].csd:
                row["csd_digits"] = len(csd_digits(ins.imm))
            out.append(row)
    return out
