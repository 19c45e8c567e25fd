"""ISA (golden/spec/isa.py): encoding round trips, the assembler's error reporting."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bfimna.golden.spec.config import APConfig, Config, TileConfig
from bfimna.golden.spec.isa import (
    FORMATS,
    GENERIC,
    OPCODES,
    AsmError,
    Instr,
    Opc,
    assemble,
    decode,
    disassemble,
    encode,
    validate,
)

AP = APConfig(rows=100, cols=64, dims=2, counter_bits=32)
AP1 = APConfig(rows=100, cols=64, dims=1, counter_bits=32)
TILE = Config(name="t", ap=AP, tile=TileConfig(maps=3, map_rows=80, map_cols=40))


@st.composite
def legal_instr(draw):
    """A legal instruction of any opcode (MOVW included) on TILE: random fields drawn per
    opcode from its table entry until validate() passes (tests/rules_table.py)."""
    import numpy as np
    from rules_table import _draw_legal

    op = draw(st.sampled_from(list(Opc)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ins, xrows = _draw_legal(OPCODES[op], op, TILE, rng)
    if op == Opc.MOVW:   # the assembler checks MOVW against the XROWS before it
        ins = dataclasses.replace(ins, count=min(ins.count, 1))
    assert validate(ins, AP, TILE) is None, ins
    return ins


@settings(max_examples=500)
@given(legal_instr())
def test_text_binary_text_round_trip(ins):
    text = disassemble(ins)
    [back] = assemble(text, AP, TILE)
    assert back == ins
    word = encode(ins)
    assert 0 <= word < 1 << 64
    assert decode(word) == ins
    assert disassemble(decode(word)) == text


@given(st.integers(0, (1 << 64) - 1))
def test_any_word_decodes_and_legal_ones_reencode(word):
    ins = decode(word)
    if validate(ins, AP) is None:
        assert decode(encode(ins)) == ins
    assert encode(ins) == word   # every bit is a field of its format or reserved


def test_formats_cover_every_bit_and_share_the_opcode():
    for fmt in FORMATS:
        assert fmt.used_mask | fmt.gap_mask == (1 << 64) - 1
        assert fmt["op"] == GENERIC["op"]
    for op, spec in OPCODES.items():
        assert set(spec.operands) <= set(spec.fmt.fields) - {"op"}, op


def test_example_program_assembles():
    prog = assemble("""
        ; y = relu(x * 3 + 5), rows 0..99
        .field x 0 8 s
        .field y 8 16 s
        ROWS lo=0 hi=100
        CLEAR d=y n=16
        MAC.s d=y a=x imm=3 n=8 m=16     # y += 3 x
        ADDI d=y imm=5 n=16
        RELU d=y n=16
    """, AP)
    assert [Opc(i.op).name for i in prog] == ["ROWS", "CLEAR", "MAC", "ADDI", "RELU"]
    assert prog[2] == Instr(op=Opc.MAC, s=True, d=8, a=0, imm=3, n=8, m=16)
    assert prog[2].line == 7


@pytest.mark.parametrize("line,reason", [
    ("FOO d=0 n=4", "unknown opcode 'FOO'"),
    ("ADD d=0 a=8", "ADD is missing operand(s) n"),
    ("ADD d=0 a=8 n=0", "width n=0 outside 1..32"),
    ("ADD d=0 a=8 n=33", "width n=33 outside 1..32"),
    ("ADD d=0 a=4 n=8", "operands d and a overlap"),
    ("MUL d=0 a=8 b=16 n=8 m=8", "operands d and a overlap"),
    ("ADD d=60 a=0 n=8", "operand d [60, 68) outside the usable columns [0, 63)"),
    ("COPY d=58 a=0 n=6", "operand d [58, 64) outside"),
    ("ADD.s d=0 a=8 n=4", "ADD takes no .s/.u suffix"),
    ("ADD d=0 a=8 n=4 x=1", "ADD has no operand 'x'"),
    ("ADD d=0 a=8 n=4 n=5", "operand 'n' given twice"),
    ("ADD d=0 a=q n=4", "operand a='q' is not an integer or a .field name"),
    ("ADDI d=0 imm=40000 n=16", "imm 40000 outside signed 16 bits"),
    ("ROWS lo=5 hi=101", "row range [5, 101) is not within [0, 100]"),
    ("ROWS lo=6 hi=5", "row range [6, 5)"),
    ("CLAMP.s d=0 n=8 m=8", "m=8 must be below n=8"),
    ("REDUCE d=0 a=16 n=16 m=8", "m=8 stages span 2^7 >= 100 rows"),
    ("MUL.u d=0 a=24 b=40 n=20 m=16", "product width n+m=36 above 32"),
    ("ADD d=0 a=8 n", "operand 'n' is not key=value"),
])
def test_bad_lines_are_rejected_with_line_and_reason(line, reason):
    with pytest.raises(AsmError) as exc:
        assemble(f"NOP\n{line}\n", AP)
    msg = str(exc.value)
    assert msg.startswith("line 2: ") and reason in msg and line in msg


def test_every_bad_line_is_reported():
    with pytest.raises(AsmError) as exc:
        assemble("FOO\nADD d=0 a=8 n=4\nBAR\nADD d=0 a=0 n=4\n", AP)
    lines = str(exc.value).splitlines()
    assert [x.split(":")[0] for x in lines] == ["line 1", "line 3", "line 4"]


def test_reduce_needs_2d():
    with pytest.raises(AsmError, match="REDUCE needs a 2D AP"):
        assemble("REDUCE d=0 a=16 n=16 m=2", AP1)


def test_illegal_words():
    assert validate(decode(31), AP) == "unknown opcode 31"
    assert validate(decode(encode(Instr(op=Opc.NOP)) | (1 << 62)), AP) == \
        "reserved bits are not zero"
    with pytest.raises(ValueError, match="does not fit"):
        encode(Instr(op=Opc.ADD, d=600, a=0, n=4))
