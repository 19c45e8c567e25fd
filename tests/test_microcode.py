"""Microcode LUTs (golden/spec/microcode.py): every pass sequence proven exhaustively over all
bit patterns of one bit position, both as a truth table and as micro-ops on a golden AP.
"""

import itertools

import numpy as np
import pytest

from bfimna.golden.model.ap import APModel
from bfimna.golden.model.controller import lut_uops
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.microcode import (
    LUTS,
    SPECS,
    TABLE_FILE,
    TEXTBOOK,
    build_luts,
    luts_to_json,
    search,
)


def _truth(name):
    if name.endswith("_if"):
        roles, _w, table = SPECS[name[:-3]]
        return roles + ("k",), lambda *s: table(*s[:-1]) if s[-1] else {}
    roles, _w, table = SPECS[name]
    return roles, table


@pytest.mark.parametrize("table", ["search", "textbook"])
@pytest.mark.parametrize("name", sorted(LUTS))
def test_lut_exhaustive_truth_table(name, table):
    lut = (LUTS if table == "search" else TEXTBOOK)[name]
    roles, truth = _truth(name)
    assert set(lut.roles) >= set(roles)
    for bits in itertools.product((0, 1), repeat=len(roles)):
        state = dict(zip(roles, bits, strict=True))
        want = {**state, **truth(*bits)}
        assert lut.apply(state) == want, f"{name} {state}"


@pytest.mark.parametrize("name", sorted(LUTS))
def test_lut_exhaustive_on_the_golden_ap(name):
    """One row per input pattern, roles bound to scattered columns, other columns random:
    the micro-ops change exactly what the truth table says and nothing else."""
    roles, truth = _truth(name)
    k = len(roles)
    rng = np.random.default_rng(k)
    ap = APConfig(rows=2 ** k, cols=11, dims=1, counter_bits=16)
    model = APModel(ap)
    cols = [1, 4, 6, 9][:k]
    model.cam[:] = rng.integers(0, 2, size=model.cam.shape).astype(bool)
    for r, bits in enumerate(itertools.product((0, 1), repeat=k)):
        model.cam[r, cols] = bits
    before = model.cam.copy()
    for u in lut_uops(LUTS[name], dict(zip(roles, cols, strict=True))):
        model.step(u)
    for r, bits in enumerate(itertools.product((0, 1), repeat=k)):
        want = {**dict(zip(roles, bits, strict=True)), **truth(*bits)}
        assert [int(model.cam[r, c]) for c in cols] == [want[x] for x in roles], (name, bits)
    others = [c for c in range(ap.cols) if c not in cols]
    assert np.array_equal(model.cam[:, others], before[:, others])
    assert model.counter_dict()["cycles"] == LUTS[name].cycles


def test_addition_beats_the_textbook():
    assert TEXTBOOK["add"].cycles == 8          # 4 passes of compare + write per bit
    assert LUTS["add"].cycles == 7
    assert LUTS["sub"].cycles == 7
    for name, lut in LUTS.items():
        assert lut.cycles <= TEXTBOOK[name].cycles, name


def test_no_six_cycle_in_place_addition_exists():
    """Without the monotone restriction, the search proves 7 is optimal (no spare)."""
    with pytest.raises(ValueError, match="no pass sequence"):
        search("add", *SPECS["add"], max_cycles=6, monotone=False)


def test_stored_table_is_what_the_search_finds():
    assert luts_to_json(build_luts("search")) == TABLE_FILE.read_text(), \
        "golden/spec/luts.json is stale: python -m bfimna.golden.spec.microcode"


def test_cost_counts_equal_the_expanded_stream(seed):
    """golden/spec/costs.py counts the bit loops without building them (a tally in
    controller._expand); every counter equals the micro-op stream expand() issues, on
    random legal instructions of every opcode, widths 1..32, and MACs by every 8-bit
    weight and by 15-bit requantisation multipliers."""
    from bfimna.golden.host.stimulus import random_instruction
    from bfimna.golden.model.controller import expand
    from bfimna.golden.spec import costs
    from bfimna.golden.spec.isa import Instr, Opc, encode
    from bfimna.golden.spec.uops import COUNTER_KEYS, UOP_COUNTER, Op

    print("seed", seed)
    rng = np.random.default_rng(seed)
    ap = APConfig(rows=64, cols=160, dims=2, counter_bits=32)
    cases = [random_instruction(ap, rng, max_width=32) for _ in range(400)]
    cases += [Instr(op=Opc.MAC, s=s, d=0, a=40, imm=v, n=8, m=27)
              for s in (False, True) for v in range(-128, 128)]
    cases += [Instr(op=Opc.MAC, s=True, d=0, a=40, imm=int(v), n=27, m=40)
              for v in rng.integers(1 << 14, 1 << 15, 50)]
    checked = 0
    for ins in cases:
        if Opc(ins.op) in (Opc.MOVW, Opc.XROWS):
            continue
        want = dict.fromkeys(COUNTER_KEYS, 0)
        for u in expand(ins, ap):
            want["cycles"] += 1
            want[UOP_COUNTER[Op(u.op)]] += 1
        got = dict(zip(COUNTER_KEYS, costs.counts(encode(ins), ap), strict=True))
        assert got == want, ins
        checked += 1
    assert checked > 800
