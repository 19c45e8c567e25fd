"""The macro-instruction set, declared once: word formats, the opcode table, encoding,
validation, assembler and disassembler. docs/isa.md is the written specification; this
module is its reference.

Every opcode is one `OpSpec` entry of `OPCODES`: its word format, its operands and text
form, the columns its operands occupy, the rules a legal instruction obeys, what it does
to the fields of a row (`effect`), and how the cost table exercises it. Everything else
reads the table: encode/decode, validate, the assembler and disassembler (here), the
cost table (golden/spec/costs.py), the fast golden tile (golden/model/fast.py), the
random stimulus (golden/host/stimulus.py), the scheduler and the RTL decoder and
validator (hdl/gen/controller.py, through Amaranth views of the same formats and the same
rule objects). Adding an opcode is an entry here, its micro-op expansion
(golden/model/controller.py: expand) and its sequencing in hdl/gen/controller.py.

Text form, one instruction per line (`;` or `#` start a comment):

    .field x 0 8            ; name a field: start column, width (names resolve to starts)
    ROWS lo=0 hi=100        ; enable rows [0, 100)
    ADD d=x a=8 n=8         ; mnemonic, then key=value operands in any order
    MUL.s d=16 a=0 b=8 n=8 m=8

Mnemonics take `.s` (signed) or `.u` (unsigned, the default) where signedness matters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bfimna.golden.spec.config import APConfig, Config
from bfimna.golden.spec.layout import BitLayout

WORD_BITS = 64
MAX_WIDTH = 32       # largest precision (n) and result width an instruction may name
IMM_BITS = 16
RESERVED_COLS = 1    # the top column (C-1): the carry, borrow or flag of the controller

# -- word formats ----------------------------------------------------------------------------
# Every bit of a word is a field or reserved (a legal word has it zero). Fields an opcode
# does not read are ignored: e.g. NOP ignores all but `op`, MOVW ignores `s` and `b`.

GENERIC = BitLayout("instruction", WORD_BITS, {
    "op": (0, 5), "s": (5, 1), "n": (6, 6), "m": (12, 6), "d": (18, 9), "a": (27, 9),
    "b": (36, 9), "imm": (45, IMM_BITS, True)}, gaps="reserved")          # 63:61 reserved
ROWS_FORMAT = BitLayout("ROWS instruction", WORD_BITS, {
    "op": (0, 5), "lo": (18, 16), "hi": (34, 16)}, gaps="reserved")
XROWS_FORMAT = BitLayout("XROWS instruction", WORD_BITS, {
    "op": (0, 5), "srow": (18, 16), "drow": (34, 16), "stride": (50, 8)}, gaps="reserved")
MOVW_FORMAT = BitLayout("MOVW instruction", WORD_BITS, {   # GENERIC with m -> sap, dap
    "op": (0, 5), "s": (5, 1), "n": (6, 6), "sap": (12, 3), "dap": (15, 3), "d": (18, 9),
    "a": (27, 9), "b": (36, 9), "count": (45, 16)}, gaps="reserved")      # imm -> count
FORMATS = (GENERIC, ROWS_FORMAT, XROWS_FORMAT, MOVW_FORMAT)
OP_FIELD = GENERIC["op"]   # the same bits in every format


class Opc(enum.IntEnum):
    NOP = 0
    ROWS = 1
    CLEAR = 2
    COPY = 3
    ADD = 4
    SUB = 5
    ADDI = 6
    SUBI = 7
    MUL = 8
    MAC = 9
    RELU = 10
    MAX = 11
    MIN = 12
    CLAMP = 13
    SHR = 14
    REDUCE = 15
    XROWS = 16   # transfer row registers (tile)
    MOVW = 17    # move words between the APs of a tile


# -- validity rules ------------------------------------------------------------------------
# A rule's `ok(ins, t, cols)` is written with &, |, comparisons and + only, so that it
# evaluates both on an Instr (golden: Python ints) and on Amaranth views of the word (RTL:
# hdl/gen/controller.py). `t` is the target (golden: `Target`; RTL: its signals): the CAP
# configuration `t.ap`, `t.tile` (a tile configuration is known), `t.maps`, `t.xrows`
# (srow, drow, stride of the last XROWS), `t.usable(ap)` and `t.rows(ap)` per AP index.
# `cols` are the opcode's operand columns. `why` gives the reason (golden only).

@dataclass(frozen=True)
class Rule:
    ok: Callable
    why: Callable
    hw: bool = True      # False: a decoded word always passes (the RTL skips it)
    name: str = ""       # unique within its opcode: rules tables, `drop_rule:` faults


def rule(ok: Callable, why: Callable | str, hw: bool = True, name: str = "") -> Rule:
    """A rule on (ins, target) alone."""
    return Rule(lambda i, t, c: ok(i, t),
                (lambda i, t, c: why) if isinstance(why, str) else (lambda i, t, c: why(i, t)),
                hw, name)


def all_of(values):
    """AND of bools or Amaranth values (True when empty)."""
    out = True
    for v in values:
        out = v if out is True else out & v
    return out


def _fits(i, t, cols):
    return all_of(start + width <= t.usable(ap) for start, width, ap in _cols(cols))


def _fits_why(i, t, cols):
    for name, (start, width, ap) in zip(cols, _cols(cols), strict=True):
        u = t.usable(ap)
        if start + width > u:
            where = (f"of AP {ap}" if len(cols[name]) == 3 else
                     f"(the top {RESERVED_COLS} are reserved)")
            return f"operand {name} [{start}, {start + width}) outside the usable columns " \
                   f"[0, {u}) {where}"
    raise AssertionError("columns fit")


def _cols(cols):
    """(start, width, AP index) of each column (index 0, the CAP, unless given)."""
    return [c if len(c) == 3 else (*c, 0) for c in cols.values()]


def _pairs(cols):
    names = list(cols)
    return [(p, q) for k, p in enumerate(names) for q in names[k + 1:]]


def _apart(i, t, cols):
    return all_of((cols[p][0] + cols[p][1] <= cols[q][0]) | (cols[q][0] + cols[q][1] <= cols[p][0])
                  for p, q in _pairs(cols))


def _apart_why(i, t, cols):
    for p, q in _pairs(cols):
        (s1, w1), (s2, w2) = cols[p][:2], cols[q][:2]
        if s1 < s2 + w2 and s2 < s1 + w1:
            return f"operands {p} and {q} overlap"
    raise AssertionError("operands apart")


FITS = Rule(_fits, _fits_why, name="fits")     # every operand column lies in the usable columns
APART = Rule(_apart, _apart_why, name="apart")  # no two operand columns overlap
N_OK = rule(lambda i, t: (i.n >= 1) & (i.n <= MAX_WIDTH),
            lambda i, t: f"width n={i.n} outside 1..{MAX_WIDTH}", name="n_range")
M_OK = rule(lambda i, t: (i.m >= 1) & (i.m <= MAX_WIDTH),
            lambda i, t: f"m={i.m} outside 1..{MAX_WIDTH}", name="m_range")
M_BELOW_N = rule(lambda i, t: i.m < i.n, lambda i, t: f"m={i.m} must be below n={i.n}",
                 name="m_below_n")
NEEDS_2D = rule(lambda i, t: t.ap.two_d,
                lambda i, t: f"{Opc(i.op).name} needs a 2D AP (column moves)", name="needs_2d")
IMM_OK = rule(lambda i, t: (i.imm >= -(1 << (IMM_BITS - 1))) & (i.imm < (1 << (IMM_BITS - 1))),
              lambda i, t: f"imm {i.imm} outside signed {IMM_BITS} bits", hw=False,
              name="imm_range")


# -- the opcode table ----------------------------------------------------------------------

def sx(v, width: int, signed: bool = True):
    """`v` (the unsigned value of a `width`-bit field; int or numpy array) read as two's
    complement when `signed`."""
    return v - (((v >> (width - 1)) & 1) << width) if signed else v


@dataclass(frozen=True)
class OpSpec:
    """What one opcode is.

    fmt       its word format
    operands  its operands in canonical text order (the format fields it reads)
    signed    takes the .s/.u suffix
    columns   ins -> {operand: (start, width)} (or (start, width, AP index) on a tile):
              the columns each operand occupies; the same lambda runs on RTL views
    rules     what a legal instruction obeys, checked in order (golden and RTL)
    m         what the `m` operand is: "width" (of operand b), "acc" (the accumulator
              width), "below" (a width or shift below n), "stages" (of a reduction)
    effect    (ins, values, enabled rows) -> {operand: new value}: what it does to the
              fields of every enabled row; values are the operand columns' unsigned
              values (numpy int64 arrays over all rows), results wrap to the column width
    transfer  runs in the tile controller (docs/isa.md, "Transfers inside a tile")
    counts    ins -> counter increments, for an instruction that issues no CAP micro-ops
              (the others count the micro-ops golden/model/controller.py `expand` issues)
    cost_rows rows of the cost table (mnemonics with .s/.u), `example(n, rows, signed)`
              the operands of the representative instruction (None: n does not apply)
    csd       its cost depends on the canonical signed digits of `imm`
    doc       its effect, as docs/isa.md's table says it
    """

    fmt: BitLayout
    operands: tuple[str, ...]
    doc: str = ""
    signed: bool = False
    columns: Callable = lambda i: {}
    rules: tuple[Rule, ...] = ()
    m: str | None = None
    effect: Callable | None = None
    transfer: bool = False
    counts: Callable | None = None
    cost_rows: tuple[str, ...] = ()
    example: Callable | None = None
    csd: bool = False


# MOVW's two rules on the transfer rows (XROWS srow, drow, stride), on ints or Amaranth
# values: declared once for its rules below and for the fast paths that check a gather
# without building a Target (golden/model/fast.py, sched/schedule.py)
def movw_src_rows_ok(srow, stride, count, src_rows):
    """Its `count` source rows lie in the source AP."""
    return srow + (count - 1) * stride < src_rows


def movw_dst_rows_ok(drow, count, dst_rows):
    """Its `count` destination rows lie in the destination AP."""
    return drow + count <= dst_rows


def movw_cycles(count: int) -> int:
    """Cycles of one MOVW of `count` words (reads and writes overlap by one)."""
    return count + 1


def host_read_latency(port_register: bool) -> int:
    """Cycles from a read request on a tile's host port to its data (`host_rvalid`): the
    AP answers the cycle after it executes. The tile's port registers
    (`tile.port_register`) add three: the request waits in the host port's request
    register, before the tile's port multiplexer, and in the APs' port register, after
    it; and the data read waits in the host port's data register, after the multiplexer
    of the answering AP (hdl/gen/tile.py: HostPort, Tile)."""
    return 1 + 3 * int(port_register)


def copy_cycles(count: int, port_register: bool) -> int:
    """Bus cycles of one COPY / COPYCOL of `count` words between tiles: in cycle k it
    reads word k from the source and writes the word read host_read_latency cycles
    earlier into the destination."""
    return count + host_read_latency(port_register)


def _far(n: int) -> int:
    return 4 * n + 8   # operands this far apart: positions do not change the cost


def _alternating(n: int) -> int:
    return sum(1 << k for k in range(0, n, 2))


def _d(i):
    return {"d": (i.d, i.n)}


def _da(i):
    return {"d": (i.d, i.n), "a": (i.a, i.n)}


def _ex_da(n, rows, s):
    return dict(s=s, d=0, a=_far(n), n=n)


def _ex_below(n, rows, s):
    return None if n < 2 else dict(s=s, d=0, n=n, m=max(1, n // 2))


def _reduce(i, v, en):
    """REDUCE: log2 steps; each moves d up by 2^k rows into the scratch a (0 from rows
    outside the range) and adds it to d."""
    d, a = v["d"], v["a"]
    for st in range(i.m):
        sh = 1 << st
        src = np.where(en, d, 0)
        moved = np.zeros_like(src)
        moved[:len(d) - sh] = src[sh:]
        a = np.where(en, moved, a)
        d = np.where(en, (d + a) & ((1 << i.n) - 1), d)
    return {"d": d, "a": a}


def _clamp_bounds(i):
    return (-(1 << (i.m - 1)), (1 << (i.m - 1)) - 1) if i.s else (0, (1 << i.m) - 1)

_ARITH = (N_OK, FITS, APART)
_ARITH_IMM = (N_OK, IMM_OK, FITS, APART)
_WIDE = (N_OK, M_OK, M_BELOW_N, FITS, APART)

OPCODES: dict[Opc, OpSpec] = {
    Opc.NOP: OpSpec(GENERIC, (), "one idle cycle"),
    Opc.ROWS: OpSpec(
        ROWS_FORMAT, ("lo", "hi"), "enable rows [lo, hi); lo <= hi <= R",
        rules=(rule(lambda i, t: (i.lo <= i.hi) & (i.hi <= t.ap.rows),
                    lambda i, t: f"row range [{i.lo}, {i.hi}) is not within [0, {t.ap.rows}]",
                    name="row_range"),)),
    Opc.CLEAR: OpSpec(
        GENERIC, ("d", "n"), "d = 0", columns=_d, rules=_ARITH,
        effect=lambda i, v, en: {"d": 0}, cost_rows=("CLEAR",),
        example=lambda n, rows, s: dict(d=0, n=n)),
    Opc.COPY: OpSpec(
        GENERIC, ("d", "a", "n"), "d = a", columns=_da, rules=_ARITH,
        effect=lambda i, v, en: {"d": v["a"]}, cost_rows=("COPY",), example=_ex_da),
    Opc.ADD: OpSpec(
        GENERIC, ("d", "a", "n"), "d = d + a (mod 2^n)", columns=_da, rules=_ARITH,
        effect=lambda i, v, en: {"d": v["d"] + v["a"]}, cost_rows=("ADD",), example=_ex_da),
    Opc.SUB: OpSpec(
        GENERIC, ("d", "a", "n"), "d = d - a (mod 2^n)", columns=_da, rules=_ARITH,
        effect=lambda i, v, en: {"d": v["d"] - v["a"]}, cost_rows=("SUB",), example=_ex_da),
    Opc.ADDI: OpSpec(
        GENERIC, ("d", "imm", "n"), "d = d + imm (imm: signed 16 bits, sign-extended to n)",
        columns=_d, rules=_ARITH_IMM, effect=lambda i, v, en: {"d": v["d"] + i.imm},
        cost_rows=("ADDI",), example=lambda n, rows, s: dict(d=0, imm=1, n=n)),
    Opc.SUBI: OpSpec(
        GENERIC, ("d", "imm", "n"), "d = d - imm (imm: signed 16 bits, sign-extended to n)",
        columns=_d, rules=_ARITH_IMM, effect=lambda i, v, en: {"d": v["d"] - i.imm},
        cost_rows=("SUBI",), example=lambda n, rows, s: dict(d=0, imm=1, n=n)),
    Opc.MUL: OpSpec(
        GENERIC, ("d", "a", "b", "n", "m"),
        "d[n+m] = a[n] * b[m] (exact); d must not overlap a, b", signed=True, m="width",
        columns=lambda i: {"d": (i.d, i.n + i.m), "a": (i.a, i.n), "b": (i.b, i.m)},
        rules=(N_OK, M_OK,
               rule(lambda i, t: i.n + i.m <= MAX_WIDTH,
                    lambda i, t: f"product width n+m={i.n + i.m} above {MAX_WIDTH}",
                    name="product_width"),
               FITS, APART),
        effect=lambda i, v, en: {"d": sx(v["a"], i.n, i.s) * sx(v["b"], i.m, i.s)},
        cost_rows=("MUL.u", "MUL.s"),
        example=lambda n, rows, s: dict(s=s, d=0, a=_far(n), b=2 * _far(n), n=n, m=n)),
    Opc.MAC: OpSpec(
        GENERIC, ("d", "a", "imm", "n", "m"),
        "d[m] = d + a[n] * imm (mod 2^m); a unsigned / signed, imm signed 16 bits",
        signed=True, m="acc", columns=lambda i: {"d": (i.d, i.m), "a": (i.a, i.n)},
        rules=(N_OK, M_OK, IMM_OK, FITS, APART),
        effect=lambda i, v, en: {"d": v["d"] + sx(v["a"], i.n, i.s) * i.imm},
        cost_rows=("MAC.u", "MAC.s"), csd=True,
        example=lambda n, rows, s: dict(s=s, d=0, a=_far(n), n=n, m=2 * n + 4,
                                        imm=min(_alternating(n), (1 << 15) - 1))),
    Opc.RELU: OpSpec(
        GENERIC, ("d", "n"), "d = max(d, 0), d signed", columns=_d, rules=_ARITH,
        effect=lambda i, v, en: {"d": np.maximum(sx(v["d"], i.n), 0)},
        cost_rows=("RELU",), example=lambda n, rows, s: dict(d=0, n=n)),
    Opc.MAX: OpSpec(
        GENERIC, ("d", "a", "n"), "d = max(d, a)", signed=True, columns=_da, rules=_ARITH,
        effect=lambda i, v, en: {"d": np.maximum(sx(v["d"], i.n, i.s), sx(v["a"], i.n, i.s))},
        cost_rows=("MAX.s",), example=_ex_da),
    Opc.MIN: OpSpec(
        GENERIC, ("d", "a", "n"), "d = min(d, a)", signed=True, columns=_da, rules=_ARITH,
        effect=lambda i, v, en: {"d": np.minimum(sx(v["d"], i.n, i.s), sx(v["a"], i.n, i.s))},
        cost_rows=("MIN.s",), example=_ex_da),
    Opc.CLAMP: OpSpec(
        GENERIC, ("d", "n", "m"),
        "saturate d to m bits (.s: [-2^(m-1), 2^(m-1)-1], .u: [0, 2^m-1]); the field stays "
        "n bits (sign/zero-extended); m < n", signed=True, m="below", columns=_d, rules=_WIDE,
        effect=lambda i, v, en: {"d": np.clip(sx(v["d"], i.n, i.s), *_clamp_bounds(i))},
        cost_rows=("CLAMP.s",), example=_ex_below),
    Opc.SHR: OpSpec(
        GENERIC, ("d", "n", "m"),
        "rounding right shift by m: the (n-m)-bit field at d+m becomes "
        "floor((d + 2^(m-1)) / 2^m) mod 2^(n-m); the low m bits are left as they were; m < n",
        signed=True, m="below", columns=_d, rules=_WIDE,
        effect=lambda i, v, en: {"d": (v["d"] & ((1 << i.m) - 1))
                                 | (((v["d"] + (1 << (i.m - 1))) >> i.m) << i.m)},
        cost_rows=("SHR",), example=_ex_below),
    Opc.REDUCE: OpSpec(
        GENERIC, ("d", "a", "n", "m"),
        "2D only: every enabled row r gets d = sum of d over enabled rows r .. r+2^m-1 "
        "(mod 2^n); a is an n-bit scratch field (clobbered); 2^(m-1) < R",
        m="stages", columns=_da,
        rules=(N_OK, M_OK,
               NEEDS_2D,
               rule(lambda i, t: i.m <= (t.ap.rows - 1).bit_length(),    # 2^(m-1) < R
                    lambda i, t: f"m={i.m} stages span 2^{i.m - 1} >= {t.ap.rows} rows",
                    name="stages"),
               FITS, APART),
        effect=_reduce, cost_rows=("REDUCE",),
        example=lambda n, rows, s: dict(d=0, a=_far(n), n=n,
                                        m=max(1, (rows - 1).bit_length()))),
    Opc.XROWS: OpSpec(
        XROWS_FORMAT, ("srow", "drow", "stride"),
        "tile: set the transfer row registers (first source row, first destination row, "
        "source step 0..255); one cycle", transfer=True),
    Opc.MOVW: OpSpec(
        MOVW_FORMAT, ("sap", "dap", "d", "a", "n", "count"),
        "tile: for k < count, AP dap row drow+k bits [d, d+n) = AP sap row srow+k*stride "
        "bits [a, a+n); count + 1 cycles", transfer=True,
        columns=lambda i: {"a": (i.a, i.n, i.sap), "d": (i.d, i.n, i.dap)},
        rules=(rule(lambda i, t: t.tile, "MOVW needs a tile configuration", name="needs_tile"),
               rule(lambda i, t: (i.sap <= t.maps) & (i.dap <= t.maps),
                    lambda i, t: f"AP {max(i.sap, i.dap)} does not exist "
                                 f"(0 = CAP, 1..{t.maps} = MAPs)", name="aps_exist"),
               rule(lambda i, t: i.sap != i.dap,
                    lambda i, t: f"source and destination are the same AP ({i.sap})",
                    name="aps_differ"),
               N_OK,
               rule(lambda i, t: i.count >= 1, "count=0 moves nothing", name="count"),
               FITS,
               rule(lambda i, t: movw_src_rows_ok(t.xrows[0], t.xrows[2], i.count,
                                                  t.rows(i.sap)),
                    lambda i, t: f"source rows reach {t.xrows[0] + (i.count - 1) * t.xrows[2]}"
                                 f", AP {i.sap} has {t.rows(i.sap)}", name="src_rows"),
               rule(lambda i, t: movw_dst_rows_ok(t.xrows[1], i.count, t.rows(i.dap)),
                    lambda i, t: f"destination rows [{t.xrows[1]}, {t.xrows[1] + i.count}) "
                                 f"outside AP {i.dap}'s {t.rows(i.dap)}", name="dst_rows")),
        counts=lambda i: {"cycles": movw_cycles(i.count), "row_transfers": 2 * i.count}),
}

# derived views of the table
OPERANDS: dict[Opc, tuple[tuple[str, ...], bool]] = {
    op: (s.operands, s.signed) for op, s in OPCODES.items()}
TRANSFER_OPS = tuple(op for op, s in OPCODES.items() if s.transfer)


def runs_on(spec: OpSpec, ap: APConfig) -> bool:
    """Whether the opcode can be legal on a CAP like `ap` (REDUCE needs 2D) and issues
    micro-ops to it (not a transfer)."""
    return not spec.transfer and (ap.two_d or NEEDS_2D not in spec.rules)


def spec_of(op: int) -> OpSpec | None:
    """The table entry of opcode `op` (None: not an opcode)."""
    try:
        return OPCODES[Opc(op)]
    except ValueError:
        return None


def format_of(op: int) -> BitLayout:
    """The word format of opcode `op` (an unknown opcode decodes as GENERIC)."""
    s = spec_of(op)
    return s.fmt if s else GENERIC


# -- instructions and their words --------------------------------------------------------------

@dataclass(frozen=True)
class Instr:
    op: int
    s: bool = False
    n: int = 0
    m: int = 0
    d: int = 0
    a: int = 0
    b: int = 0
    imm: int = 0
    lo: int = 0
    hi: int = 0
    srow: int = 0         # XROWS: first source row, first destination row, source stride
    drow: int = 0
    stride: int = 0
    sap: int = 0          # MOVW: source and destination AP (0 CAP, 1..K MAPs), word count
    dap: int = 0
    count: int = 0
    rsv: int = 0          # the reserved bits of a decoded word, in place (legal: 0)
    line: int = field(default=0, compare=False)  # source line, for messages

    @property
    def name(self) -> str:
        try:
            return Opc(self.op).name
        except ValueError:
            return f"OP{self.op}"


def encode(ins: Instr) -> int:
    """The word of `ins`, packed through its opcode's format (a value that does not fit
    its field raises ValueError). encode(decode(w)) == w for every 64-bit word."""
    fmt = format_of(ins.op)
    word = fmt.pack(**{k: int(getattr(ins, k)) for k in fmt.fields})
    return word | (ins.rsv & fmt.gap_mask)


def decode(word: int) -> Instr:
    """Any 64-bit word decodes; whether it is legal is validate()'s call."""
    fmt = format_of(GENERIC.get(word, "op"))
    vals: dict[str, Any] = fmt.unpack(word)   # `s` becomes a bool
    if "s" in vals:
        vals["s"] = bool(vals["s"])
    return Instr(rsv=fmt.reserved_bits(word), **vals)


# -- validation ----------------------------------------------------------------------------

def operand_fields(ins: Instr) -> dict[str, tuple[int, int]]:
    """Column ranges (start, width) each operand occupies: 'd' (destination), 'a', 'b'."""
    s = spec_of(ins.op)
    return {k: c[:2] for k, c in s.columns(ins).items()} if s else {}


def usable_cols(ap: APConfig, index: int) -> int:
    """Columns instructions may name in AP `index` of a tile (the CAP reserves its top)."""
    return ap.cols - RESERVED_COLS if index == 0 else ap.cols


@dataclass(frozen=True)
class Target:
    """Where an instruction runs, as the rules see it (golden side): the CAP `ap`, the
    tile configuration `cfg` (None: no tile), the transfer row registers `xrows`."""

    ap: APConfig
    cfg: Config | None = None
    xrows: tuple[int, int, int] = (0, 0, 0)

    @property
    def tile(self) -> bool:
        return self.cfg is not None

    @property
    def maps(self) -> int:
        return self.cfg.tile.maps if self.cfg is not None else 0

    def ap_of(self, index: int) -> APConfig:
        if index == 0:
            return self.ap
        if self.cfg is None:   # the rules check t.tile before they name a MAP
            raise ValueError(f"AP {index} needs a tile configuration")
        return self.cfg.ap_of(index)

    def usable(self, index: int) -> int:
        return usable_cols(self.ap_of(index), index)

    def rows(self, index: int) -> int:
        return self.ap_of(index).rows


def validate(ins: Instr, ap: APConfig, cfg=None, xrows=(0, 0, 0)) -> str | None:
    """None if the tile controller executes `ins`, else the reason it is illegal.

    Transfer instructions need the tile: `cfg` (a golden.config.Config whose `ap` is
    `ap`) and, for MOVW, the transfer row registers `xrows` = (srow, drow, stride) set
    by the last XROWS.
    """
    spec = spec_of(ins.op)
    if spec is None:
        return f"unknown opcode {ins.op}"
    if ins.rsv:
        return "reserved bits are not zero"
    t = Target(ap, cfg, tuple(xrows))
    cols = spec.columns(ins)
    for r in spec.rules:
        if not r.ok(ins, t, cols):
            return r.why(ins, t, cols)
    return None


# Every check validate() makes, by name: "unknown_opcode" (no table entry), "reserved"
# (a reserved bit of the opcode's format set), then each rule of its entry by `Rule.name`.
# tests/test_rules.py builds its table of violating words from these; the RTL takes the
# same names in its `drop_rule:<opcode>:<rule>` faults (hdl/gen/controller.py).
UNKNOWN_OPCODE, RESERVED = "unknown_opcode", "reserved"


def rule_names(spec: OpSpec) -> list[str]:
    """The checks of one opcode, in validate()'s order: "reserved", then its rules."""
    return [RESERVED] + [r.name for r in spec.rules]


def failing_checks(ins: Instr, ap: APConfig, cfg=None, xrows=(0, 0, 0)) -> list[str]:
    """Every check `ins` fails (validate() reports the first): [] when it is legal."""
    spec = spec_of(ins.op)
    if spec is None:
        return [UNKNOWN_OPCODE]
    out = [RESERVED] if ins.rsv else []
    t = Target(ap, cfg, tuple(xrows))
    cols = spec.columns(ins)
    return out + [r.name for r in spec.rules if not r.ok(ins, t, cols)]


# -- assembler / disassembler ---------------------------------------------------------------

class AsmError(ValueError):
    """A program does not assemble; the message lists every bad line with its reason."""


_LINE = re.compile(r"^\s*([A-Za-z]+)(\.[su])?\s*(.*)$")


def _parse_int(text: str, fields: dict[str, int]) -> int:
    if text in fields:
        return fields[text]
    return int(text, 0)


def assemble(text: str, ap: APConfig, cfg=None) -> list[Instr]:
    """Text -> validated instructions. Raises AsmError naming each bad line and why.

    `cfg` (the whole configuration) enables the tile's transfer instructions."""
    prog: list[Instr] = []
    xrows = (0, 0, 0)
    errors: list[str] = []
    names: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"[;#]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        try:
            if line.startswith(".field"):
                parts = line.split()
                if len(parts) not in (4, 5) or not parts[1].isidentifier():
                    raise ValueError("expected `.field NAME START WIDTH [s|u]`")
                names[parts[1]] = int(parts[2], 0)
                continue
            mt = _LINE.match(line)
            if not mt:
                raise ValueError("cannot parse")
            mnem, suffix, rest = mt.group(1).upper(), mt.group(2), mt.group(3)
            if mnem not in Opc.__members__:
                raise ValueError(f"unknown opcode {mnem!r}")
            op = Opc[mnem]
            spec = OPCODES[op]
            wanted = spec.operands
            if suffix and not spec.signed:
                raise ValueError(f"{mnem} takes no .s/.u suffix")
            ops: dict[str, int] = {}
            for tok in rest.replace(",", " ").split():
                if "=" not in tok:
                    raise ValueError(f"operand {tok!r} is not key=value")
                k, v = tok.split("=", 1)
                if k not in wanted:
                    takes = ", ".join(wanted) or "none"
                    raise ValueError(f"{mnem} has no operand {k!r} (it takes {takes})")
                if k in ops:
                    raise ValueError(f"operand {k!r} given twice")
                try:
                    ops[k] = _parse_int(v, names)
                except ValueError:
                    raise ValueError(f"operand {k}={v!r} is not an integer or a .field "
                                     "name") from None
            missing = [k for k in wanted if k not in ops]
            if missing:
                raise ValueError(f"{mnem} is missing operand(s) {', '.join(missing)}")
            for k, v in ops.items():
                if v < 0 and not spec.fmt[k].signed:
                    raise ValueError(f"operand {k}={v} is negative")
            ins = Instr(op=op, s=suffix == ".s", line=lineno, **ops)
            reason = validate(ins, ap, cfg, xrows)
            if reason:
                raise ValueError(reason)
            if op == Opc.XROWS:
                xrows = (ins.srow, ins.drow, ins.stride)
            prog.append(ins)
        except ValueError as exc:
            errors.append(f"line {lineno}: {exc}: {raw.strip()}")
    if errors:
        raise AsmError("\n".join(errors))
    return prog


def field_names(text: str) -> dict[str, tuple[int, int, bool]]:
    """The `.field` declarations of a program: name -> (start, width, signed)."""
    out = {}
    for raw in text.splitlines():
        parts = re.split(r"[;#]", raw, maxsplit=1)[0].split()
        if len(parts) in (4, 5) and parts[0] == ".field":
            out[parts[1]] = (int(parts[2], 0), int(parts[3], 0),
                             len(parts) == 5 and parts[4] == "s")
    return out


def disassemble(ins: Instr) -> str:
    """Canonical text of one instruction (assemble(disassemble(i)) == [i])."""
    try:
        op = Opc(ins.op)
    except ValueError:
        return f"; illegal word: opcode {ins.op}"
    spec = OPCODES[op]
    mnem = op.name + ((".s" if ins.s else ".u") if spec.signed else "")
    args = " ".join(f"{k}={getattr(ins, k)}" for k in spec.operands)
    return f"{mnem} {args}".strip()
