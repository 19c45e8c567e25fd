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

`profile(word, ap)` is the activity energy depends on (ACTIVITY_KEYS, docs/energy.md): a
part fixed per word and a part per enabled CAP row (rows enabled by the last ROWS; only
ROWS changes them, so they are constant within an instruction):

    cycles      controller cycles (= the cycles counter)
    cmp_cells   bit-cells compared: enabled rows x columns in the mask, per CMP/CMPA
    match_rows  match-line evaluations: enabled rows, per CMP/CMPA
    wr_cells    bit-cells written: enabled rows x columns in the mask, per WR (every
                enabled row counts, tagged or not: the write drivers of a masked column
                drive the whole enabled segment; docs/energy.md says why and what the
                data-dependent count of tagged rows would change)
    col_cells   bits moved by a column operation (MVCOL of REDUCE): enabled rows, per op
    row_bits    bits through a row port: MOVW reads and writes n bits per word
    wr_ops      WR micro-ops (a technology whose cell writes outlast a cycle stalls on
                each: sched/evaluate.py)
"""

from __future__ import annotations

from functools import lru_cache

from bfimna.golden.model.controller import _expand, csd_digits, cycles
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.isa import OPCODES, Instr, Opc, decode
from bfimna.golden.spec.microcode import LUTS, TEXTBOOK
from bfimna.golden.spec.uops import ACTIVITY_KEYS, COUNTER_KEYS, UOP_COUNTER, Op

DEFAULT_BITS = (1, 2, 4, 8, 16)


def counts(word: int, ap: APConfig) -> tuple[int, ...]:
    """Counter increments (COUNTER_KEYS order; `instructions` and `errors` stay 0) of one
    legal instruction word on a tile whose CAP is `ap`."""
    return _costs(word, ap)[0]


def profile(word: int, ap: APConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(fixed, per enabled row): the activity (ACTIVITY_KEYS order) of one legal
    instruction word is fixed + rows x per_row."""
    return _costs(word, ap)[1]


@lru_cache(maxsize=65536)
def _costs(word: int, ap: APConfig) -> tuple[tuple[int, ...],
                                             tuple[tuple[int, ...], tuple[int, ...]]]:
    """counts and profile from one walk over the micro-op stream."""
    ins = decode(word)
    c = dict.fromkeys(COUNTER_KEYS, 0)
    fixed = dict.fromkeys(ACTIVITY_KEYS, 0)
    per = dict.fromkeys(ACTIVITY_KEYS, 0)
    spec = OPCODES[Opc(ins.op)]
    if spec.counts is not None:
        c.update(spec.counts(ins))
        if Opc(ins.op) == Opc.MOVW:       # each word: n bits read, n bits written
            fixed["row_bits"] = 2 * ins.n * ins.count
    else:          # the bit loops are tallied, not built (controller._expand)
        tally = {"compares": 0, "writes": 0, "cmp_bits": 0, "wr_bits": 0}
        cmp_bits = wr_bits = 0
        for u in _expand(ins, ap, LUTS, tally):
            op = Op(u.op)
            c[UOP_COUNTER[op]] += 1
            if op == Op.CMP or op == Op.CMPA:
                cmp_bits += u.mask.bit_count()
            elif op == Op.WR:
                wr_bits += u.mask.bit_count()
            elif op == Op.MVCOL:
                per["col_cells"] += 1
        c["compares"] += tally["compares"]
        c["writes"] += tally["writes"]
        c["cycles"] = sum(c[k] for k in UOP_KEYS)
        if c["cycles"] == 0:     # nothing to do (MAC by 0): one NOP, as expand() issues
            c["cycles"] = c["nops"] = 1
        per["cmp_cells"] = cmp_bits + tally["cmp_bits"]
        per["match_rows"] = c["compares"]
        per["wr_cells"] = wr_bits + tally["wr_bits"]
        fixed["wr_ops"] = c["writes"]
    fixed["cycles"] = c["cycles"]
    return (tuple(c[k] for k in COUNTER_KEYS),
            (tuple(fixed.values()), tuple(per.values())))


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
