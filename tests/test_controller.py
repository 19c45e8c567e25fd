"""Golden controller (golden/model/controller.py): every macro-operation, run as micro-ops on
the bit-level golden AP, equals plain numpy integer arithmetic, for widths 1..16, signed
and unsigned, at random field positions and row ranges. Columns the instruction does not
own and rows outside the range must not change.
"""

from collections.abc import Callable
from typing import cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bfimna.golden.model.controller import Controller, csd_digits, cy_col, cycles, expand
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.isa import (
    MAX_WIDTH,
    OPCODES,
    RESERVED_COLS,
    TRANSFER_OPS,
    Instr,
    Opc,
    encode,
    operand_fields,
    validate,
)
from bfimna.golden.spec.microcode import TEXTBOOK

AP = APConfig(rows=11, cols=72, dims=2, counter_bits=32)
USABLE = AP.cols - RESERVED_COLS


def wrap(v, w, signed=False):
    v = np.asarray(v, dtype=np.int64) & ((1 << w) - 1)
    if signed:
        v = np.where(v >> (w - 1), v - (1 << w), v)
    return v


def reference(ins: Instr, d0, a0, b0, rowen):
    """numpy semantics of each instruction (docs/isa.md); returns the new d field."""
    op, n, m, s, imm = Opc(ins.op), ins.n, ins.m, ins.s, ins.imm
    if op == Opc.CLEAR:
        return np.zeros_like(d0)
    if op == Opc.COPY:
        return a0
    if op == Opc.ADD:
        return wrap(d0 + a0, n)
    if op == Opc.SUB:
        return wrap(d0 - a0, n)
    if op == Opc.ADDI:
        return wrap(d0 + imm, n)
    if op == Opc.SUBI:
        return wrap(d0 - imm, n)
    if op == Opc.MUL:
        return wrap(wrap(a0, n, s) * wrap(b0, m, s), n + m)
    if op == Opc.MAC:
        return wrap(d0 + wrap(a0, n, s) * imm, m)
    if op == Opc.RELU:
        return wrap(np.maximum(wrap(d0, n, True), 0), n)
    if op in (Opc.MAX, Opc.MIN):
        f = np.maximum if op == Opc.MAX else np.minimum
        return wrap(f(wrap(d0, n, s), wrap(a0, n, s)), n)
    if op == Opc.CLAMP:
        lo, hi = (-(1 << (m - 1)), (1 << (m - 1)) - 1) if s else (0, (1 << m) - 1)
        return wrap(np.clip(wrap(d0, n, s), lo, hi), n)
    if op == Opc.SHR:
        k = m
        rounded = wrap((wrap(d0, n, s) + (1 << (k - 1))) >> k, n - k)
        return (d0 & ((1 << k) - 1)) | (rounded << k)  # low k bits keep their value
    if op == Opc.REDUCE:
        vals = np.where(rowen, d0, 0)
        out = d0.copy()
        for r in range(len(d0)):
            if rowen[r]:
                out[r] = wrap(vals[r: r + (1 << m)].sum(), n)
        return out
    # an opcode this test does not spell out itself: its declared effect (golden/spec/isa.py)
    fields = operand_fields(ins)
    values = {k: v for k, v in (("d", d0), ("a", a0), ("b", b0)) if v is not None}
    effect = cast(Callable, OPCODES[op].effect)   # every opcode that gets here has one
    return wrap(effect(ins, values, rowen)["d"], fields["d"][1])


@st.composite
def instructions(draw):
    op = draw(st.sampled_from([o for o in Opc if o not in (Opc.NOP, Opc.ROWS, *TRANSFER_OPS)]))
    n = draw(st.integers(1, 16))
    s = draw(st.booleans())
    m = 0
    role = OPCODES[op].m
    if role == "width":          # MUL
        m = draw(st.integers(1, 16))
    elif role == "acc":          # MAC
        m = draw(st.integers(1, 32))
    elif role == "below":        # CLAMP, SHR
        n = max(n, 2)
        m = draw(st.integers(1, n - 1))
    elif role == "stages":       # REDUCE
        m = draw(st.integers(1, 4))
    imm = draw(st.integers(-(1 << 15), (1 << 15) - 1)) if "imm" in OPCODES[op].operands else 0
    probe = Instr(op=op, n=n, m=m, s=s, imm=imm)
    fields = operand_fields(probe)
    names = list(fields)
    if draw(st.booleans()):  # any order of fields in the row, not only d first
        names = draw(st.permutations(names))
    kw, pos = {}, 0
    gaps = [draw(st.integers(0, 3)) for _ in names]
    if sum(fields[x][1] for x in names) + sum(gaps) > USABLE:
        gaps = [0] * len(names)
    for name, gap in zip(names, gaps, strict=True):
        pos += gap
        kw[name] = pos
        pos += fields[name][1]
    ins = Instr(op=op, n=n, m=m, s=s, imm=imm, **kw)
    assert validate(ins, AP) is None, (validate(ins, AP), ins)
    return ins


def check(ins: Instr, seed: int, lo: int, hi: int) -> None:
    """Run `ins` on random data in rows [lo, hi) and compare with reference()."""
    rng = np.random.default_rng(seed)
    ctl = Controller(AP)
    ap = ctl.ap
    ap.cam[:, :USABLE] = rng.integers(0, 2, size=(AP.rows, USABLE)).astype(bool)
    ctl.execute(Instr(op=Opc.ROWS, lo=lo, hi=hi))
    fields = operand_fields(ins)
    d0 = ap.read_field(*fields["d"])
    a0 = ap.read_field(*fields["a"]) if "a" in fields else None
    b0 = ap.read_field(*fields["b"]) if "b" in fields else None
    before = ap.cam.copy()
    ctl.execute(encode(ins))  # through the binary encoding, as the hardware gets it
    assert not ctl.error, ctl.last_error
    rowen = np.zeros(AP.rows, dtype=bool)
    rowen[lo:hi] = True
    want = np.where(rowen, reference(ins, d0, a0, b0, rowen), d0)  # other rows keep theirs
    got = ap.read_field(*fields["d"])
    assert np.array_equal(got, want), \
        f"{ins} seed {seed} rows {lo}..{hi}\n d0 {d0}\n a0 {a0}\n b0 {b0}\n got {got}\nwant {want}"
    # nothing else changed: other columns (bar the scratch CY and REDUCE's temp field)
    owned = set(range(fields["d"][0], sum(fields["d"]))) | {cy_col(AP)}
    if ins.op == Opc.REDUCE:
        owned |= set(range(fields["a"][0], sum(fields["a"])))
    others = [c for c in range(AP.cols) if c not in owned]
    assert np.array_equal(ap.cam[:, others], before[:, others])
    assert ctl.counters["cycles"] == 1 + cycles(ins, AP)
    assert ctl.counters["instructions"] == 2


@settings(max_examples=400, deadline=None)
@given(instructions(), st.integers(0, 2**32 - 1), st.integers(0, AP.rows), st.integers(0, AP.rows))
def test_macro_op_equals_numpy(ins, seed, lo, hi):
    check(ins, seed, min(lo, hi), max(lo, hi))


SWEEP_OPS = [o for o in Opc if o not in (Opc.NOP, Opc.ROWS, *TRANSFER_OPS)]


COVERAGE: dict[tuple[str, int, bool], int] = {}


def sweep_instr(op, n, signed, rng):
    """The instruction of the width sweep at precision n (None: no legal one, MUL n=32)."""
    role = OPCODES[op].m
    if role == "width" and n >= MAX_WIDTH:
        return None            # d is n+m bits: MUL needs n <= 31
    if role == "below" and n == 1:
        return None            # needs m < n
    pick = {"width": lambda: int(rng.integers(1, MAX_WIDTH - n + 1)),
            "acc": lambda: int(rng.integers(n, MAX_WIDTH + 1)),
            "below": lambda: max(1, n - 3) if op == Opc.CLAMP else max(1, n // 2),
            "stages": lambda: 3}
    m = pick[role]() if role else 0
    imm = int(rng.integers(-(1 << 15), 1 << 15))
    probe = Instr(op=op, n=n, m=m, s=signed, imm=imm)
    kw, pos = {}, 0
    for name, (_s, w) in operand_fields(probe).items():
        kw[name] = pos
        pos += w
    return Instr(op=op, n=n, m=m, s=signed, imm=imm, **kw)


@pytest.mark.parametrize("signed", [False, True], ids=["u", "s"])
@pytest.mark.parametrize("op", SWEEP_OPS, ids=lambda o: o.name)
def test_every_width_1_to_32(op, signed, seed):
    """Each operation at every precision 1..32 (the ISA's limit), signed and unsigned, on
    all rows, against numpy."""
    rng = np.random.default_rng(seed)
    for n in range(1, MAX_WIDTH + 1):
        ins = sweep_instr(op, n, signed, rng)
        if ins is None:
            continue
        check(ins, int(rng.integers(1 << 31)), 0, AP.rows)
        COVERAGE[(op.name, n, signed)] = COVERAGE.get((op.name, n, signed), 0) + 1


def test_width_coverage_is_full():
    """The table of (op, width, sign) the sweep above ran: every legal cell. Runs after
    the sweep (same module, later in the file); alone, it runs the sweep itself."""
    want = {(op.name, n, s) for op in SWEEP_OPS for s in (False, True)
            for n in range(1, MAX_WIDTH + 1)
            if sweep_instr(op, n, s, np.random.default_rng(0)) is not None}
    # sweeps that ran in another pytest-xdist worker (or not at all): run them here
    for op in SWEEP_OPS:
        for signed in (False, True):
            if not any(k[0] == op.name and k[2] == signed for k in COVERAGE):
                test_every_width_1_to_32(op, signed, 1)
    print("\n[coverage] golden op x width x sign (u/s per width 1..32; - : no legal form)")
    for op in SWEEP_OPS:
        line = "".join("".join("x" if (op.name, n, s) in COVERAGE else
                               ("-" if (op.name, n, s) not in want else ".")
                               for s in (False, True)) for n in range(1, MAX_WIDTH + 1))
        print(f"  {op.name:7s} {line}")
    print(f"  {len(set(COVERAGE) & want)}/{len(want)} cells")
    assert want <= set(COVERAGE)


def test_csd_digits():
    for w in range(-300, 301):
        digits = csd_digits(w)
        assert sum(dg << k for k, dg in digits) == w
        ks = [k for k, _ in digits]
        # non-adjacent (pairs of neighbours: the shifted copy is one shorter)
        assert all(b - a >= 2 for a, b in zip(ks, ks[1:], strict=False)), (w, digits)
    assert csd_digits(0b0111_0111) == [(0, -1), (3, -1), (7, 1)]  # 119 = 128 - 8 - 1: 3, not 6


def test_mac_cost_follows_nonzero_digits():
    base = dict(op=Opc.MAC, d=0, a=32, n=8, m=24)
    c = {w: cycles(Instr(imm=w, **base), AP) for w in (0, 1, 2, 3, 64, 255, -1)}
    assert c[0] == 1                    # nothing to add: one NOP
    assert c[1] > c[2] > c[64]          # fewer remaining accumulator bits above the digit
    assert c[255] < 3 * c[1]            # 255 = 256 - 1: two CSD digits, not eight


def test_illegal_instruction_sets_error_and_is_skipped():
    ctl = Controller(AP)
    ctl.execute(Instr(op=Opc.ADD, d=0, a=60, n=16))  # a runs into the reserved column
    assert ctl.error and "reserved" in ctl.last_error
    assert ctl.counters["errors"] == 1 and ctl.counters["cycles"] == 1
    ctl.execute(0x1F)  # unknown opcode 31
    assert ctl.counters["errors"] == 2 and ctl.counters["instructions"] == 0
    ctl.execute(Instr(op=Opc.ADDI, d=0, imm=5, n=8))
    assert ctl.counters["instructions"] == 1 and ctl.ap.read_field(0, 8)[0] == 5


def test_textbook_costs_more():
    ins = Instr(op=Opc.ADD, d=0, a=16, n=8)
    assert cycles(ins, AP) == 2 + 8 * 7
    assert cycles(ins, AP, TEXTBOOK) == 2 + 8 * 8
    assert sum(1 for _ in expand(ins, AP)) == cycles(ins, AP)
