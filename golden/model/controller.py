"""Golden AP controller: expands macro-instructions into micro-operations and runs them
on the golden AP model, keeping the counters the RTL controller must match.

`expand(ins, ap)` is the microcode sequencer's specification: the exact micro-op stream
(and so the exact cycle count) of every instruction. It takes its per-bit passes from
golden/spec/microcode.py (LUTS); the loops, column bindings and the few whole-field passes are
here. The top column CY = C-1 is reserved for the carry, borrow or flag of the
instruction in progress (an operand bit known to be zero needs no column: the carry
then propagates through the cheaper `inc`/`dec` passes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bfimna.golden.model.ap import APModel
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, decode, validate
from bfimna.golden.spec.microcode import LUT, LUTS
from bfimna.golden.spec.uops import (  # noqa: F401 (COUNTER_KEYS re-exported)
    ACTIVITY_KEYS,
    COUNTER_KEYS,
    UOP_COUNTER,
    Op,
    UOp,
)


def cy_col(ap: APConfig) -> int:
    return ap.cols - RESERVED_COLS


def field_mask(start: int, width: int) -> int:
    return ((1 << width) - 1) << start


def lut_uops(lut: LUT, bind: dict[str, int]) -> Iterator[UOp]:
    """The passes of `lut` with its roles bound to columns."""
    for g in lut.groups:
        for i, cmp in enumerate(g.compares):
            key = mask = 0
            for role, bit in cmp:
                mask |= 1 << bind[role]
                key |= bit << bind[role]
            yield UOp(Op.CMP if i == 0 else Op.CMPA, key=key, mask=mask)
        key = mask = 0
        for role, bit in g.write:
            mask |= 1 << bind[role]
            key |= bit << bind[role]
        yield UOp(Op.WR, key=key, mask=mask)


def tag_enabled() -> UOp:
    """Tag every enabled row (a compare over no column)."""
    return UOp(Op.CMP, key=0, mask=0)


def csd_digits(w: int) -> list[tuple[int, int]]:
    """Canonical signed-digit recoding of w: [(position, +1 or -1)], no two adjacent."""
    out, k = [], 0
    while w:
        if w & 1:
            digit = 2 - (w & 3)  # +1 if w = 1 mod 4, -1 if w = 3 mod 4
            out.append((k, digit))
            w -= digit
        w >>= 1
        k += 1
    return out


def expand(ins: Instr, ap: APConfig, luts: dict[str, LUT] = LUTS) -> Iterator[UOp]:
    """Micro-operations of one legal instruction, in issue order. Every instruction takes
    at least one cycle: one with nothing to do (MAC by 0) issues a NOP."""
    empty = True
    for u in _expand(ins, ap, luts):
        empty = False
        yield u
    if empty:
        yield UOp(Op.NOP)


_LUT_COSTS: dict[int, tuple[LUT, tuple[int, int, int, int]]] = {}


def _lut_costs(lut: LUT) -> tuple[int, int, int, int]:
    """lut_size + lut_bits, computed once per LUT (the tallies of costs ask millions of
    times; keyed by identity, the entry keeps the LUT alive)."""
    hit = _LUT_COSTS.get(id(lut))
    if hit is None or hit[0] is not lut:
        hit = _LUT_COSTS[id(lut)] = (lut, (
            sum(len(g.compares) for g in lut.groups), len(lut.groups),
            sum(len(cmp) for g in lut.groups for cmp in g.compares),
            sum(len(g.write) for g in lut.groups)))
    return hit[1]


def lut_size(lut: LUT) -> tuple[int, int]:
    """(compares, writes) one application of `lut` issues (what lut_uops yields)."""
    return _lut_costs(lut)[:2]


def lut_bits(lut: LUT) -> tuple[int, int]:
    """(columns compared, columns written) over one application of `lut`: the popcounts of
    the masks lut_uops yields (its roles bind to distinct columns)."""
    return _lut_costs(lut)[2:]


def _expand(ins: Instr, ap: APConfig, luts: dict[str, LUT],
            tally: dict[str, int] | None = None) -> Iterator[UOp]:
    """The micro-ops of `ins`. With `tally` (counting, golden/spec/costs.py), the bit
    loops of arithmetic add their compares and writes to tally instead of yielding them:
    the same stream, counted without being built (and, when tally has the keys
    `cmp_bits` and `wr_bits`, the columns of their masks: golden/spec/costs.py profile)."""
    op, n, m, d, a, b = Opc(ins.op), ins.n, ins.m, ins.d, ins.a, ins.b
    CY = cy_col(ap)
    cy = 1 << CY

    def clear(mask: int) -> Iterator[UOp]:
        yield tag_enabled()
        yield UOp(Op.WR, key=0, mask=mask)

    def passes(lut: LUT, bind: dict[str, int]) -> Iterator[UOp]:
        """lut_uops, or with a tally that counts bits (costs), only its sizes."""
        if tally is None or "cmp_bits" not in tally:
            return lut_uops(lut, bind)
        c, w, cb, wb = _lut_costs(lut)
        tally["compares"] += c
        tally["writes"] += w
        tally["cmp_bits"] += cb
        tally["wr_bits"] += wb
        return iter(())

    def add_loop(lut_add: str, lut_inc: str, dst: int, width: int, x_col, extra=None):
        """dst[width] (+/-)= x, bit by bit; x_col(i) is the operand column or None (0)."""
        if tally is not None:
            bits = "cmp_bits" in tally
            n_inc = sum(1 for i in range(width) if x_col(i) is None)
            for name, k in ((lut_inc, n_inc), (lut_add, width - n_inc)):
                if not k:
                    continue
                c, w, cb, wb = _lut_costs(luts[name])
                tally["compares"] += k * c
                tally["writes"] += k * w
                if bits:
                    tally["cmp_bits"] += k * cb
                    tally["wr_bits"] += k * wb
            return
        for i in range(width):
            xc = x_col(i)
            if xc is None:  # known-zero operand bit: only the carry propagates
                yield from lut_uops(luts[lut_inc], {"c": CY, "y": dst + i})
            else:
                bind = {"c": CY, "x": xc, "y": dst + i}
                if extra:
                    bind.update(extra)
                yield from lut_uops(luts[lut_add], bind)

    if op in (Opc.NOP, Opc.XROWS):   # XROWS only sets the tile's transfer registers
        yield UOp(Op.NOP)
    elif op == Opc.MOVW:
        raise ValueError("MOVW moves words between the APs of a tile: see golden/model/tile.py")
    elif op == Opc.ROWS:
        yield UOp(Op.ROWEN, addr=ins.lo, addr2=ins.hi)
    elif op == Opc.CLEAR:
        yield from clear(field_mask(d, n))
    elif op == Opc.COPY:
        yield from clear(field_mask(d, n))
        for i in range(n):
            yield UOp(Op.CMP, key=1 << (a + i), mask=1 << (a + i))
            yield UOp(Op.WR, key=1 << (d + i), mask=1 << (d + i))
    elif op in (Opc.ADD, Opc.SUB):
        yield from clear(cy)
        name = "add" if op == Opc.ADD else "sub"
        yield from add_loop(name, name, d, n, lambda i: a + i)
    elif op in (Opc.ADDI, Opc.SUBI):
        yield from clear(cy)
        imm = ins.imm & ((1 << n) - 1)
        base = "inc" if op == Opc.ADDI else "dec"
        for i in range(n):
            name = base + ("1" if (imm >> i) & 1 else "")
            yield from passes(luts[name], {"c": CY, "y": d + i})
    elif op == Opc.MUL:
        yield from clear(field_mask(d, n + m) | cy)
        for j in range(m):
            if not ins.s:
                # d[j : j+n+1] += a * b_j; the carry out lands in d[j+n], which is still 0
                yield from add_loop("add_if", "inc", d + j, n + 1,
                                    lambda i: a + i if i < n else None, {"k": b + j})
            else:
                # sign-extended a, added over the whole remaining width; the sign digit of
                # b has weight -2^(m-1), so the last partial product is subtracted
                if j:
                    yield from clear(cy)
                name = "sub_if" if j == m - 1 else "add_if"
                yield from add_loop(name, name, d + j, n + m - j,
                                    lambda i: a + min(i, n - 1), {"k": b + j})
    elif op == Opc.MAC:
        for k, digit in csd_digits(ins.imm):
            if k >= m:
                break  # digits at or above the accumulator width add 0 mod 2^m
            yield from clear(cy)
            name = "add" if digit > 0 else "sub"
            inc = "inc" if digit > 0 else "dec"
            if ins.s:
                def xcol(i):
                    return a + min(i, n - 1)
            else:
                def xcol(i):
                    return a + i if i < n else None
            yield from add_loop(name, inc, d + k, m - k, xcol)
    elif op == Opc.RELU:
        yield UOp(Op.CMP, key=1 << (d + n - 1), mask=1 << (d + n - 1))
        yield UOp(Op.WR, key=0, mask=field_mask(d, n))
    elif op in (Opc.MAX, Opc.MIN):
        # CY = (d < a) for MAX, (a < d) for MIN, by the borrow chain; then d = a where CY
        yield from clear(cy)
        lhs, rhs = (d, a) if op == Opc.MAX else (a, d)
        for i in range(n):
            name = "borrow_top" if ins.s and i == n - 1 else "borrow"
            yield from passes(luts[name], {"c": CY, "x": rhs + i, "y": lhs + i})
        for i in range(n):
            yield from passes(luts["cmov"], {"c": CY, "x": a + i, "y": d + i})
    elif op == Opc.CLAMP:
        k, sign = m, d + n - 1
        if ins.s:
            # too large: sign 0 and a 1 among bits k-1..n-2 -> 2^(k-1) - 1
            for t in range(k - 1, n - 1):
                yield UOp(Op.CMP if t == k - 1 else Op.CMPA,
                          key=1 << (d + t), mask=(1 << sign) | (1 << (d + t)))
            yield UOp(Op.WR, key=field_mask(d, k - 1), mask=field_mask(d, n))
            # too small: sign 1 and a 0 among bits k-1..n-2 -> -2^(k-1)
            for t in range(k - 1, n - 1):
                yield UOp(Op.CMP if t == k - 1 else Op.CMPA,
                          key=1 << sign, mask=(1 << sign) | (1 << (d + t)))
            yield UOp(Op.WR, key=field_mask(d + k - 1, n - k + 1), mask=field_mask(d, n))
        else:
            for t in range(k, n):
                yield UOp(Op.CMP if t == k else Op.CMPA, key=1 << (d + t), mask=1 << (d + t))
            yield UOp(Op.WR, key=field_mask(d, k), mask=field_mask(d, n))
    elif op == Opc.SHR:
        # result: the (n-k)-bit field at d+k, plus the rounding bit d[k-1] as carry-in
        k = m
        yield from clear(cy)
        yield UOp(Op.CMP, key=1 << (d + k - 1), mask=1 << (d + k - 1))
        yield UOp(Op.WR, key=cy, mask=cy)
        for i in range(n - k):
            yield from passes(luts["inc"], {"c": CY, "y": d + k + i})
    elif op == Opc.REDUCE:
        for st in range(m):
            for i in range(n):
                yield UOp(Op.MVCOL, col=a + i, col2=d + i, shift=1 << st)
                yield UOp(Op.NOP)          # MVCOL's second cycle (its write)
            yield from clear(cy)
            yield from add_loop("add", "add", d, n, lambda i: a + i)
    else:  # pragma: no cover - every opcode is handled above
        raise AssertionError(op)


def cycles(ins: Instr, ap: APConfig, luts: dict[str, LUT] = LUTS) -> int:
    """Exact cycle count of one legal instruction (one micro-op per cycle)."""
    return sum(1 for _ in expand(ins, ap, luts))


@dataclass
class Controller:
    """Runs instruction words on a golden AP; one micro-op per cycle, no bubbles.

    An illegal word (validate() says why) costs one cycle (a NOP), raises the sticky
    error flag, counts in `errors`, and is skipped.
    """
    ap_cfg: APConfig
    ap: APModel = field(init=False)
    counters: dict[str, int] = field(init=False)
    error: bool = field(init=False, default=False)
    last_error: str | None = field(init=False, default=None)

    def __post_init__(self):
        self.ap = APModel(self.ap_cfg)
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        # the activity energy depends on (golden/spec/costs.py ACTIVITY_KEYS), counted here
        # from each micro-op as it runs; `wr_tagged` (tagged rows x written columns) is the
        # data-dependent part of the writes, kept to measure the model's wr_cells bound
        self.activity = dict.fromkeys(ACTIVITY_KEYS + ("wr_tagged",), 0)

    def _issue(self, u: UOp) -> None:
        op, act = Op(u.op), self.activity
        if op in (Op.CMP, Op.CMPA, Op.WR, Op.MVCOL):
            rows = int(self.ap.rowen.sum())
            if op == Op.MVCOL:
                act["col_cells"] += rows
            elif op == Op.WR:
                act["wr_ops"] += 1
                act["wr_cells"] += rows * u.mask.bit_count()
                act["wr_tagged"] += int(self.ap.tag.sum()) * u.mask.bit_count()
            else:
                act["cmp_cells"] += rows * u.mask.bit_count()
                act["match_rows"] += rows
        act["cycles"] += 1
        self.ap.step(u)
        self.counters["cycles"] += 1
        self.counters[UOP_COUNTER[op]] += 1

    def execute(self, ins: Instr | int) -> None:
        if isinstance(ins, int):
            ins = decode(ins)
        reason = validate(ins, self.ap_cfg)
        if reason is not None:
            self.error = True
            self.last_error = reason
            self.counters["errors"] += 1
            self._issue(UOp(Op.NOP))
            return
        for u in expand(ins, self.ap_cfg):
            self._issue(u)
        self.counters["instructions"] += 1

    def run(self, program) -> Controller:
        for ins in program:
            self.execute(ins)
        return self
