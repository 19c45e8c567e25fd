"""Golden AP model (golden/model/ap.py) against a plain Python reading of ARCHITECTURE.md s.1.

The reference below keeps each row as a Python int and loops over rows: no numpy, no
shared helpers with the model, so a bug in the vectorised model cannot hide in both.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bfimna.golden.host.stimulus import random_uops
from bfimna.golden.model.ap import APModel, bits_to_int, int_to_bits
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.uops import (
    CNT_CYCLES,
    CNT_ILLEGAL,
    N_COUNTERS,
    Op,
    UOp,
    fits_ports,
    is_legal,
    port_widths,
)


class RefAP:
    """Plain-Python AP: the definitions of ARCHITECTURE.md section 1, row by row."""

    def __init__(self, ap: APConfig):
        self.ap = ap
        self.R, self.C = ap.rows, ap.cols
        self.cam = [0] * self.R
        self.tag = [False] * self.R
        self.rowen = [True] * self.R
        self.rdata = 0
        self.rcol = 0
        self.err = False
        self.cnt = [0] * N_COUNTERS
        self.after_mv = False        # the last micro-op was a legal MVCOL

    def legal(self, u: UOp) -> bool:
        R, C = self.R, self.C
        if self.after_mv:            # MVCOL's second cycle: only a NOP
            return u.op == 0
        if u.op in (0, 1, 2, 3):
            return True
        if u.op in (4, 5):
            return u.addr < R
        if u.op == 6:
            return u.addr <= u.addr2 <= R
        if u.op in (7, 8, 9) and self.ap.dims == 2:
            ok = u.col < C
            if u.op in (8, 9):
                ok = ok and u.shift < R
            if u.op == 9:
                ok = ok and u.col2 < C
            return ok
        return False

    def bit(self, r, c):
        return (self.cam[r] >> c) & 1

    def set_bit(self, r, c, v):
        self.cam[r] = (self.cam[r] & ~(1 << c)) | (v << c)

    def step(self, u: UOp) -> None:
        mod = 1 << self.ap.counter_bits
        self.cnt[CNT_CYCLES] = (self.cnt[CNT_CYCLES] + 1) % mod
        legal = self.legal(u)
        self.after_mv = legal and u.op == 9
        if not legal:
            self.err = True
            self.cnt[CNT_ILLEGAL] = (self.cnt[CNT_ILLEGAL] + 1) % mod
            return
        self.cnt[u.op] = (self.cnt[u.op] + 1) % mod
        R, C = self.R, self.C
        if u.op in (1, 2):
            for r in range(R):
                match = self.rowen[r] and all(
                    self.bit(r, c) == (u.key >> c) & 1 for c in range(C) if (u.mask >> c) & 1)
                self.tag[r] = (self.tag[r] or match) if u.op == 2 else match
        elif u.op == 3:
            for r in range(R):
                if self.tag[r]:
                    for c in range(C):
                        if (u.mask >> c) & 1:
                            self.set_bit(r, c, (u.key >> c) & 1)
        elif u.op == 4:
            self.rdata = self.cam[u.addr]
        elif u.op == 5:
            for c in range(C):
                if (u.mask >> c) & 1:
                    self.set_bit(u.addr, c, (u.data >> c) & 1)
        elif u.op == 6:
            self.rowen = [u.addr <= r < u.addr2 for r in range(R)]
        elif u.op == 7:
            self.rcol = sum(self.bit(r, u.col) << r for r in range(R))
        elif u.op in (8, 9):
            if u.op == 8:
                src = [(u.vec >> r) & 1 for r in range(R)]
            else:
                src = [self.bit(r, u.col2) if self.rowen[r] else 0 for r in range(R)]
            new = [src[r + u.shift] if r + u.shift < R else 0 for r in range(R)]
            for r in range(R):
                if self.rowen[r]:
                    self.set_bit(r, u.col, new[r])


def assert_same(model: APModel, ref: RefAP, where: str) -> None:
    assert model.rows_as_ints() == ref.cam, f"{where}: array"
    assert list(model.tag) == ref.tag, f"{where}: tag"
    assert list(model.rowen) == ref.rowen, f"{where}: rowen"
    assert model.rdata == ref.rdata, f"{where}: rdata"
    assert model.rcol == ref.rcol, f"{where}: rcol"
    assert model.err == ref.err, f"{where}: err"
    assert model.counters == ref.cnt, f"{where}: counters"


@st.composite
def ap_configs(draw):
    return APConfig(rows=draw(st.integers(1, 12)), cols=draw(st.integers(2, 10)),
                    dims=draw(st.sampled_from([1, 2])), counter_bits=draw(st.sampled_from([8, 16])))


@st.composite
def uop_for(draw, ap: APConfig):
    """Any micro-op whose fields fit the ports: legal and illegal ones alike."""
    w = port_widths(ap)
    fields = {name: draw(st.integers(0, (1 << width) - 1)) for name, width in w.items()}
    if draw(st.booleans()):  # bias towards defined opcodes
        fields["op"] = draw(st.sampled_from(list(Op)))
    return UOp(**fields)


@st.composite
def programs(draw):
    ap = draw(ap_configs())
    return ap, draw(st.lists(uop_for(ap), min_size=1, max_size=40))


@settings(max_examples=300, deadline=None)
@given(programs())
def test_model_matches_plain_reference(prog):
    ap, uops = prog
    model, ref = APModel(ap), RefAP(ap)
    for i, u in enumerate(uops):
        assert fits_ports(ap, u)
        assert is_legal(ap, u, model.mv_pending) == ref.legal(u), f"legality of {u}"
        model.step(u)
        ref.step(u)
        assert_same(model, ref, f"after uop {i} {u}")


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_model_matches_reference_on_biased_streams(data):
    """The testbench stream (keys that match, sparse masks, shifts) through both models."""
    ap = data.draw(ap_configs())
    seed = data.draw(st.integers(0, 2**31 - 1))
    model, ref = APModel(ap), RefAP(ap)
    for i, u in enumerate(random_uops(model, seed, 60)):
        assert fits_ports(ap, u), u
        model.step(u)
        ref.step(u)
        assert_same(model, ref, f"seed {seed}, uop {i} {u}")


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, 2**n - 1))))
def test_bit_conversion_round_trip(nx):
    n, x = nx
    bits = int_to_bits(x, n)
    assert bits.shape == (n,) and bits.dtype == bool
    assert bits_to_int(bits) == x
    assert all(bits[i] == ((x >> i) & 1) for i in range(n))


AP2 = APConfig(rows=8, cols=8, dims=2, counter_bits=8)


def test_compare_write_example():
    """A worked example: find rows whose low nibble is 0b0101, set their bit 7."""
    m = APModel(AP2)
    for r, v in enumerate([0x05, 0x15, 0x04, 0x85, 0x0F, 0x25, 0x00, 0x05]):
        m.step(UOp(Op.WRROW, addr=r, data=v, mask=0xFF))
    m.step(UOp(Op.ROWEN, addr=0, addr2=7))       # row 7 disabled: never matches
    m.step(UOp(Op.CMP, key=0x05, mask=0x0F))
    assert m.tag_int() == 0b0010_1011
    m.step(UOp(Op.CMPA, key=0x0F, mask=0xFF))     # accumulate row 4
    assert m.tag_int() == 0b0011_1011
    m.step(UOp(Op.WR, key=0x80, mask=0x80))
    assert m.rows_as_ints() == [0x85, 0x95, 0x04, 0x85, 0x8F, 0xA5, 0x00, 0x05]
    assert m.tag_first() == 0
    counts = m.counter_dict()
    assert (counts["wrrow"], counts["cmp"], counts["cmpa"], counts["wr"], counts["cycles"]) == \
        (8, 1, 1, 1, 12)


def test_column_move_with_shift_is_a_reduction_step():
    """MVCOL by 1, 2, 4 rows walks bit 0 of lower rows into the row-0 column: OR-reduce."""
    m = APModel(AP2)
    m.step(UOp(Op.WRROW, addr=6, data=1, mask=1))
    m.step(UOp(Op.RDCOL, col=0))
    assert m.rcol == 1 << 6 and m.rcol_valid
    m.step(UOp(Op.MVCOL, col=1, col2=0, shift=2))
    m.step(UOp(Op.NOP))      # MVCOL's second cycle
    m.step(UOp(Op.RDCOL, col=1))
    assert m.rcol == 1 << 4  # row 4 received row 6's bit; rows 6, 7 received zeros
    m.step(UOp(Op.WRCOL, col=2, vec=0b1000_0001, shift=7))
    m.step(UOp(Op.RDCOL, col=2))
    assert m.rcol == 0b1  # only row 0 gets a bit (row 7 of vec); the rest shift in zeros


@pytest.mark.parametrize("u,legal", [
    (UOp(Op.RDROW, addr=7), True), (UOp(Op.RDROW, addr=8), False),
    (UOp(Op.ROWEN, addr=3, addr2=8), True), (UOp(Op.ROWEN, addr=4, addr2=3), False),
    (UOp(Op.ROWEN, addr=0, addr2=9), False), (UOp(Op.MVCOL, shift=8), False),
    (UOp(Op.RDCOL, col=7, shift=15), True), (UOp(12), False),
])
def test_legality_examples(u, legal):
    assert is_legal(AP2, u) == legal


def test_only_a_nop_may_follow_an_mvcol():
    """MVCOL takes two cycles (golden/spec/uops.py): the micro-op after a legal one must
    be a NOP; another is illegal (a NOP that sets err), and the move still happens.
    After an illegal MVCOL, or after the NOP, anything legal is."""
    m = APModel(AP2)
    m.step(UOp(Op.WRROW, addr=3, data=1, mask=1))
    m.step(UOp(Op.MVCOL, col=1, col2=0, shift=1))
    m.step(UOp(Op.RDCOL, col=1))                       # too early: illegal
    assert m.err and not m.rcol_valid and m.counter_dict()["illegal"] == 1
    assert m.row(2) == 0b10                            # the move happened
    m.step(UOp(Op.RDCOL, col=1))                       # the cycle after: legal
    assert m.rcol_valid and m.rcol == 1 << 2
    m.step(UOp(Op.MVCOL, col=1, col2=0, shift=8))     # illegal (shift 8 of 8 rows) ...
    m.step(UOp(Op.RDCOL, col=1))                       # ... so nothing to wait for
    assert m.rcol_valid and m.counter_dict()["illegal"] == 2
    for nxt in (UOp(Op.NOP), UOp(Op.CMP), UOp(Op.MVCOL, col=1, col2=0)):
        assert is_legal(AP2, nxt, after_mvcol=False)
        assert is_legal(AP2, nxt, after_mvcol=True) == (nxt.op == Op.NOP)


def test_illegal_uop_is_a_nop_that_sets_err():
    m = APModel(AP2)
    m.step(UOp(Op.WRROW, addr=1, data=0xAA, mask=0xFF))
    before = m.cam.copy()
    m.step(UOp(Op.WRROW, addr=9, data=0x55, mask=0xFF))  # row 9 of 8
    assert m.err and np.array_equal(m.cam, before)
    assert m.counter_dict()["illegal"] == 1 and m.counter_dict()["wrrow"] == 1


def test_column_ops_are_illegal_on_1d():
    ap1 = APConfig(rows=8, cols=8, dims=1, counter_bits=8)
    assert not is_legal(ap1, UOp(Op.RDCOL))
    assert "vec" not in port_widths(ap1)


def test_counters_wrap_at_counter_bits():
    m = APModel(AP2)
    for _ in range(260):
        m.step(UOp(Op.NOP))
    assert m.counter_dict()["cycles"] == 260 % 256
