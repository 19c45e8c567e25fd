"""The macro-instruction set: fields, 64-bit encoding, validation, assembler and
disassembler. docs/isa.md is the written specification; this module is its reference.

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
from dataclasses import dataclass, field

from bfimna.golden.spec.config import APConfig

WORD_BITS = 64
MAX_WIDTH = 32       # largest precision (n) and result width an instruction may name
IMM_BITS = 16
RESERVED_COLS = 1    # the top column (C-1): the carry, borrow or flag of the controller


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


TRANSFER_OPS = (Opc.XROWS, Opc.MOVW)

# operands each opcode takes (in canonical order) and whether .s/.u applies
OPERANDS: dict[Opc, tuple[tuple[str, ...], bool]] = {
    Opc.NOP: ((), False),
    Opc.ROWS: (("lo", "hi"), False),
    Opc.CLEAR: (("d", "n"), False),
    Opc.COPY: (("d", "a", "n"), False),
    Opc.ADD: (("d", "a", "n"), False),
    Opc.SUB: (("d", "a", "n"), False),
    Opc.ADDI: (("d", "imm", "n"), False),
    Opc.SUBI: (("d", "imm", "n"), False),
    Opc.MUL: (("d", "a", "b", "n", "m"), True),
    Opc.MAC: (("d", "a", "imm", "n", "m"), True),
    Opc.RELU: (("d", "n"), False),
    Opc.MAX: (("d", "a", "n"), True),
    Opc.MIN: (("d", "a", "n"), True),
    Opc.CLAMP: (("d", "n", "m"), True),
    Opc.SHR: (("d", "n", "m"), True),
    Opc.REDUCE: (("d", "a", "n", "m"), False),
    Opc.XROWS: (("srow", "drow", "stride"), False),
    Opc.MOVW: (("sap", "dap", "d", "a", "n", "count"), False),
}

# bit fields of the 64-bit word: name -> (lsb, width). ROWS reuses bits 18..49 for lo/hi.
FIELDS = {"op": (0, 5), "s": (5, 1), "n": (6, 6), "m": (12, 6), "d": (18, 9),
          "a": (27, 9), "b": (36, 9), "imm": (45, 16), "rsv": (61, 3)}
ROWS_FIELDS = {"op": (0, 5), "lo": (18, 16), "hi": (34, 16)}
XROWS_FIELDS = {"op": (0, 5), "srow": (18, 16), "drow": (34, 16), "stride": (50, 8)}
MOVW_FIELDS = {"op": (0, 5), "n": (6, 6), "sap": (12, 3), "dap": (15, 3), "d": (18, 9),
               "a": (27, 9), "count": (45, 16), "rsv": (61, 3)}
LAYOUTS = {Opc.ROWS: ROWS_FIELDS, Opc.XROWS: XROWS_FIELDS, Opc.MOVW: MOVW_FIELDS}


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
    rsv: int = 0          # reserved bits of a decoded word (must be 0)
    line: int = field(default=0, compare=False)  # source line, for messages

    @property
    def name(self) -> str:
        try:
            return Opc(self.op).name
        except ValueError:
            return f"OP{self.op}"


# -- encoding ----------------------------------------------------------------------------

def encode(ins: Instr) -> int:
    word = 0
    layout = LAYOUTS.get(ins.op, FIELDS)
    for name, (lsb, width) in layout.items():
        v = int(getattr(ins, name))
        if name == "imm":
            if not -(1 << (IMM_BITS - 1)) <= v < (1 << (IMM_BITS - 1)):
                raise ValueError(f"imm {v} does not fit {IMM_BITS} signed bits")
            v &= (1 << IMM_BITS) - 1
        elif not 0 <= v < (1 << width):
            raise ValueError(f"{name}={v} does not fit its {width}-bit field")
        word |= v << lsb
    return word


def decode(word: int) -> Instr:
    """Any 64-bit word decodes; whether it is legal is validate()'s call."""
    def get(lsb, width):
        return (word >> lsb) & ((1 << width) - 1)
    op = get(*FIELDS["op"])
    if op in (Opc.ROWS, Opc.XROWS):
        layout = LAYOUTS[op]
        rest = word
        for lsb, width in layout.values():
            rest &= ~(((1 << width) - 1) << lsb)
        return Instr(op=op, rsv=int(rest != 0),
                     **{k: get(*v) for k, v in layout.items() if k != "op"})
    if op == Opc.MOVW:
        return Instr(op=op, **{k: get(*v) for k, v in MOVW_FIELDS.items() if k != "op"})
    imm = get(*FIELDS["imm"])
    if imm >> (IMM_BITS - 1):
        imm -= 1 << IMM_BITS
    return Instr(op=op, s=bool(get(*FIELDS["s"])), n=get(*FIELDS["n"]), m=get(*FIELDS["m"]),
                 d=get(*FIELDS["d"]), a=get(*FIELDS["a"]), b=get(*FIELDS["b"]), imm=imm,
                 rsv=get(*FIELDS["rsv"]))


# -- validation ----------------------------------------------------------------------------

def operand_fields(ins: Instr) -> dict[str, tuple[int, int]]:
    """Column ranges (start, width) each operand occupies: 'd' (destination), 'a', 'b'."""
    op, n, m = ins.op, ins.n, ins.m
    f: dict[str, tuple[int, int]] = {}
    if op in (Opc.CLEAR, Opc.RELU, Opc.CLAMP, Opc.SHR, Opc.ADDI, Opc.SUBI):
        f["d"] = (ins.d, n)
    elif op in (Opc.COPY, Opc.ADD, Opc.SUB, Opc.MAX, Opc.MIN, Opc.REDUCE):
        f["d"], f["a"] = (ins.d, n), (ins.a, n)
    elif op == Opc.MUL:
        f["d"], f["a"], f["b"] = (ins.d, n + m), (ins.a, n), (ins.b, m)
    elif op == Opc.MAC:
        f["d"], f["a"] = (ins.d, m), (ins.a, n)
    return f


def _overlap(f, g) -> bool:
    return f[0] < g[0] + g[1] and g[0] < f[0] + f[1]


def usable_cols(ap: APConfig, index: int) -> int:
    """Columns instructions may name in AP `index` of a tile (the CAP reserves its top)."""
    return ap.cols - RESERVED_COLS if index == 0 else ap.cols


def validate(ins: Instr, ap: APConfig, cfg=None, xrows=(0, 0, 0)) -> str | None:
    """None if the AP controller executes `ins`, else the reason it is illegal.

    Transfer instructions need the tile: `cfg` (a golden.config.Config whose `ap` is
    `ap`) and, for MOVW, the transfer row registers `xrows` = (srow, drow, stride) set
    by the last XROWS.
    """
    try:
        op = Opc(ins.op)
    except ValueError:
        return f"unknown opcode {ins.op}"
    if ins.rsv:
        return "reserved bits are not zero"
    usable = ap.cols - RESERVED_COLS
    if op in (Opc.NOP, Opc.XROWS):
        return None
    if op == Opc.MOVW:
        return _validate_movw(ins, cfg, xrows)
    if op == Opc.ROWS:
        if not ins.lo <= ins.hi <= ap.rows:
            return f"row range [{ins.lo}, {ins.hi}) is not within [0, {ap.rows}]"
        return None
    if not 1 <= ins.n <= MAX_WIDTH:
        return f"width n={ins.n} outside 1..{MAX_WIDTH}"
    if op in (Opc.MUL, Opc.MAC, Opc.CLAMP, Opc.SHR, Opc.REDUCE) and not 1 <= ins.m <= MAX_WIDTH:
        return f"m={ins.m} outside 1..{MAX_WIDTH}"
    if op == Opc.MUL and ins.n + ins.m > MAX_WIDTH:
        return f"product width n+m={ins.n + ins.m} above {MAX_WIDTH}"
    if op in (Opc.CLAMP, Opc.SHR) and ins.m >= ins.n:
        return f"m={ins.m} must be below n={ins.n}"
    if op == Opc.REDUCE:
        if not ap.two_d:
            return "REDUCE needs a 2D AP (column moves)"
        if (1 << (ins.m - 1)) >= ap.rows:
            return f"m={ins.m} stages span 2^{ins.m - 1} >= {ap.rows} rows"
    if op in (Opc.ADDI, Opc.SUBI, Opc.MAC) and not \
            -(1 << (IMM_BITS - 1)) <= ins.imm < (1 << (IMM_BITS - 1)):
        return f"imm {ins.imm} outside signed {IMM_BITS} bits"
    fields = operand_fields(ins)
    for name, (start, width) in fields.items():
        if start + width > usable:
            return (f"operand {name} [{start}, {start + width}) outside the usable columns "
                    f"[0, {usable}) (the top {RESERVED_COLS} are reserved)")
    names = list(fields)
    for i, p in enumerate(names):
        for q in names[i + 1:]:
            if _overlap(fields[p], fields[q]):
                return f"operands {p} and {q} overlap"
    return None


def _validate_movw(ins: Instr, cfg, xrows) -> str | None:
    if cfg is None:
        return "MOVW needs a tile configuration"
    k = cfg.tile.maps
    if ins.sap > k or ins.dap > k:
        return f"AP {max(ins.sap, ins.dap)} does not exist (0 = CAP, 1..{k} = MAPs)"
    if ins.sap == ins.dap:
        return f"source and destination are the same AP ({ins.sap})"
    if not 1 <= ins.n <= MAX_WIDTH:
        return f"width n={ins.n} outside 1..{MAX_WIDTH}"
    if ins.count < 1:
        return "count=0 moves nothing"
    src, dst = cfg.ap_of(ins.sap), cfg.ap_of(ins.dap)
    for name, start, index, ap_ in (("a", ins.a, ins.sap, src), ("d", ins.d, ins.dap, dst)):
        u = usable_cols(ap_, index)
        if start + ins.n > u:
            return (f"operand {name} [{start}, {start + ins.n}) outside the usable columns "
                    f"[0, {u}) of AP {index}")
    srow, drow, stride = xrows
    last_src = srow + (ins.count - 1) * stride
    if last_src >= src.rows:
        return f"source rows reach {last_src}, AP {ins.sap} has {src.rows}"
    if drow + ins.count > dst.rows:
        return f"destination rows [{drow}, {drow + ins.count}) outside AP {ins.dap}'s {dst.rows}"
    return None


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
            wanted, has_sign = OPERANDS[op]
            if suffix and not has_sign:
                raise ValueError(f"{mnem} takes no .s/.u suffix")
            ops: dict[str, int] = {}
            for tok in rest.replace(",", " ").split():
                if "=" not in tok:
                    raise ValueError(f"operand {tok!r} is not key=value")
                k, v = tok.split("=", 1)
                if k not in wanted:
                    raise ValueError(f"{mnem} has no operand {k!r} (it takes {', '.join(wanted) or 'none'})")
                if k in ops:
                    raise ValueError(f"operand {k!r} given twice")
                try:
                    ops[k] = _parse_int(v, names)
                except ValueError:
                    raise ValueError(f"operand {k}={v!r} is not an integer or a .field name") from None
            missing = [k for k in wanted if k not in ops]
            if missing:
                raise ValueError(f"{mnem} is missing operand(s) {', '.join(missing)}")
            for k, v in ops.items():
                if k != "imm" and v < 0:
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
    wanted, has_sign = OPERANDS[op]
    mnem = op.name + ((".s" if ins.s else ".u") if has_sign else "")
    args = " ".join(f"{k}={getattr(ins, k)}" for k in wanted)
    return f"{mnem} {args}".strip()
