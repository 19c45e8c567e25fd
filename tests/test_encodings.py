"""The instruction and packet encodings pinned by literals derived by hand from the field
tables of docs/isa.md ("Binary encoding") and docs/system.md ("Host protocol"), not from
a run of the encoder: each literal's derivation is written next to it, field by field,
so a change of layout in golden/spec/isa.py or golden/spec/regs.py (which the RTL decodes
through) breaks this test even when encoder and decoder change together.

Instruction word (docs/isa.md): op 4:0, s 5, n 11:6, m 17:12, d 26:18, a 35:27, b 44:36,
imm 60:45 (signed 16 bits), 63:61 reserved. ROWS: lo 33:18, hi 49:34. XROWS: srow 33:18,
drow 49:34, stride 57:50. MOVW: generic with sap 14:12, dap 17:15, count 60:45.
Opcodes: NOP 0, ROWS 1, ADD 4, SUB 5, ADDI 6, SUBI 7, MUL 8, MAC 9, XROWS 16, MOVW 17.

Packet header (docs/system.md): type 3:0, tile 11:4, ap 14:12, 15 reserved, row 31:16,
count 47:32, col 56:48, width-1 62:57, 63 reserved. Types: INSTR 1, WRITE 2, READ 3,
COPY 4, COPYCOL 5, SYNC 6. COPY/COPYCOL destination: tile 11:4, ap 14:12, row 31:16,
col 56:48. SYNC answer: tag 15:0, protocol error 16, tile error bits 47:32.
"""

import pytest

from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import Instr, Opc, assemble, decode, encode
from bfimna.golden.spec.regs import (
    PT,
    SYNC_WORD,
    Header,
    dest,
    dest_decode,
    header,
)

from conftest import CONFIG_DIR

CFG = load_config(CONFIG_DIR / "sys_t2k2.yaml")

INSTRUCTIONS = [
    # MAC.s d=8 a=0 imm=-37 n=8 m=20 (the docs' text-form example):
    #   op 9                      0x9
    #   s 1 << 5                  0x20
    #   n 8 << 6                  0x200
    #   m 20 << 12                0x14000
    #   d 8 << 18                 0x200000
    #   imm -37 = 0xFFDB (16-bit two's complement) << 45 = 0x1FFB6 << 44
    #                             0x1FFB600000000000
    (Instr(op=Opc.MAC, s=True, d=8, a=0, imm=-37, n=8, m=20), 0x1FFB600000214229,
     "MAC.s d=8 a=0 imm=-37 n=8 m=20"),
    # MUL.s with every generic field non-zero: n 5, m 3, d 100, a 200, b 300, imm -1
    #   field by field (fields are disjoint, so the word is their OR):
    #   imm -1 = 0xFFFF << 45     0x1FFFE00000000000
    #   b 300 = 0x12C << 36       0x000012C000000000  (bit 44 fills the E to F)
    #   a 200 = 0xC8 << 27        0x0000000640000000
    #   d 100 = 0x64 << 18        0x0000000001900000
    #   m 3 << 12                 0x0000000000003000
    #   n 5 << 6                  0x0000000000000140
    #   s 1 << 5                  0x0000000000000020
    #   op 8                      0x0000000000000008
    (Instr(op=Opc.MUL, s=True, n=5, m=3, d=100, a=200, b=300, imm=-1), 0x1FFFF2C641903168,
     None),
    # ADDI d=0 imm=-32768 n=16 (the most negative immediate):
    #   op 6; n 16 << 6 = 0x400; imm 0x8000 << 45 = 0x1000000000000000
    (Instr(op=Opc.ADDI, d=0, imm=-32768, n=16), 0x1000000000000406, "ADDI d=0 imm=-32768 n=16"),
    # SUBI.s d=1 imm=32767 n=32: op 7, s 0x20, n 32 << 6 = 0x800, d 1 << 18 = 0x40000,
    #   imm 0x7FFF << 45 = 0x0FFFE00000000000
    (Instr(op=Opc.SUBI, s=True, d=1, imm=32767, n=32), 0x0FFFE00000040827, None),
    # ROWS lo=3 hi=200: op 1; lo 3 << 18 = 0xC0000; hi 200 << 34 = 0xC8 << 34 = 0x32000000000
    (Instr(op=Opc.ROWS, lo=3, hi=200), 0x00000320000C0001, None),
    # XROWS srow=5 drow=7 stride=255: op 16 = 0x10; srow 5 << 18 = 0x140000;
    #   drow 7 << 34 = 0x1C00000000; stride 0xFF << 50 = 0x03FC000000000000
    (Instr(op=Opc.XROWS, srow=5, drow=7, stride=255), 0x03FC001C00140010, None),
    # MOVW sap=1 dap=0 a=0 d=8 n=8 count=128 (docs/isa.md's example): op 17 = 0x11;
    #   sap 1 << 12 = 0x1000; n 8 << 6 = 0x200; d 8 << 18 = 0x200000;
    #   count 128 << 45 = 0x0010000000000000
    (Instr(op=Opc.MOVW, sap=1, dap=0, a=0, d=8, n=8, count=128), 0x0010000000201211, None),
    # MOVW sap=5 dap=6 a=1 d=3 n=32 count=65535: op 0x11; sap 5 << 12 = 0x5000;
    #   dap 6 << 15 = 0x30000; n 32 << 6 = 0x800; d 3 << 18 = 0xC0000;
    #   a 1 << 27 = 0x8000000; count 0xFFFF << 45 = 0x1FFFE00000000000
    (Instr(op=Opc.MOVW, sap=5, dap=6, a=1, d=3, n=32, count=65535), 0x1FFFE000080F5811, None),
    # NOP: every bit 0 but the opcode (0)
    (Instr(op=Opc.NOP), 0x0000000000000000, "NOP"),
]


@pytest.mark.parametrize("ins,word,text", INSTRUCTIONS,
                         ids=[f"{i.op.name if hasattr(i.op, 'name') else i.op}-{w:016x}"
                              for i, w, _ in INSTRUCTIONS])
def test_instruction_words(ins, word, text):
    assert encode(ins) == word, f"{encode(ins):#018x} != {word:#018x}"
    back = decode(word)
    assert encode(back) == word
    for name in ("op", "n", "m", "d", "a", "b", "imm", "lo", "hi", "srow", "drow", "stride",
                 "sap", "dap", "count"):
        if getattr(ins, name, 0):
            assert getattr(back, name) == getattr(ins, name), name
    if text is not None:          # the text form assembles to the same word
        assert [encode(i) for i in assemble(text, CFG.ap, CFG)] == [word]


def test_reserved_instruction_bits_are_not_fields():
    """Bits 63:61 are reserved in every format: a word with one of them set decodes to
    something that does not encode back to it (so validate() can reject it)."""
    for bit in (61, 62, 63):
        w = 0x0000000000000204 | 1 << bit          # ADD n=8 plus a reserved bit
        assert encode(decode(w)) == w               # kept, so the validator sees it
        assert decode(w).op == Opc.ADD and decode(w).n == 8


PACKETS = [
    # WRITE tile=3 ap=2 row=0x1234 count=5 col=17 width=64:
    #   type 2; tile 3 << 4 = 0x30; ap 2 << 12 = 0x2000; row 0x1234 << 16 = 0x12340000;
    #   count 5 << 32 = 0x500000000; col 17 << 48 = 0x0011000000000000;
    #   width-1 63 << 57 = 0x7E00000000000000
    (dict(ptype=PT.WRITE, tile=3, ap=2, row=0x1234, count=5, col=17, width=64),
     0x7E11000512342032),
    # READ ap=1 row=0 count=4 col=8 width=8 (docs/system.md's worked example):
    #   type 3; ap 0x1000; count 4 << 32; col 8 << 48 = 0x0008000000000000;
    #   width-1 7 << 57 = 0x0E00000000000000
    (dict(ptype=PT.READ, tile=0, ap=1, row=0, count=4, col=8, width=8), 0x0E08000400001003),
    # SYNC tag 0x2a: type 6, row 0x2a << 16 = 0x2A0000 (the worked example)
    (dict(ptype=PT.SYNC, row=0x2A), 0x00000000002A0006),
    # INSTR to every tile (255), 2 words: type 1, tile 0xFF << 4 = 0xFF0, count 2 << 32
    (dict(ptype=PT.INSTR, tile=255, count=2), 0x0000000200000FF1),
    # COPYCOL tile=1 row(first column)=46 count=3 width=1: type 5; 1 << 4 = 0x10;
    #   46 << 16 = 0x2E0000; 3 << 32
    (dict(ptype=PT.COPYCOL, tile=1, row=46, count=3), 0x00000003002E0015),
    # COPY tile=0 ap=7 row=0xFFFF count=0xFFFF col=511 width=1: type 4; ap 7 << 12 = 0x7000;
    #   row 0xFFFF << 16 = 0xFFFF0000; count 0xFFFF << 32 = 0xFFFF00000000;
    #   col 0x1FF << 48 = 0x01FF000000000000
    (dict(ptype=PT.COPY, tile=0, ap=7, row=0xFFFF, count=0xFFFF, col=511),
     0x01FFFFFFFFFF7004),
]


@pytest.mark.parametrize("fields,word", PACKETS, ids=[f"{w:016x}" for _, w in PACKETS])
def test_packet_headers(fields, word):
    assert header(**fields) == word, f"{header(**fields):#018x} != {word:#018x}"
    h = Header.decode(word)
    assert (h.type, h.tile, h.ap, h.row, h.count, h.col, h.width, h.rsv) == (
        fields["ptype"], fields.get("tile", 0), fields.get("ap", 0), fields.get("row", 0),
        fields.get("count", 0), fields.get("col", 0), fields.get("width", 1), 0)
    assert Header.decode(word | 1 << 15).rsv and Header.decode(word | 1 << 63).rsv


def test_destination_and_sync_words():
    # COPY destination tile=1 ap=3 row=0xBEEF col=300: 1 << 4 = 0x10; 3 << 12 = 0x3000;
    #   0xBEEF << 16 = 0xBEEF0000; 300 = 0x12C << 48 = 0x012C000000000000
    assert dest(1, 3, 0xBEEF, 300) == 0x012C0000BEEF3010
    assert dest_decode(0x012C0000BEEF3010) == (1, 3, 0xBEEF, 300, 0)
    # bit 15 (between ap and row) is reserved in a destination word
    assert dest_decode(0x012C0000BEEF3010 | 1 << 15)[4] == 1
    # SYNC answer: tag 0xBEEF, protocol error (bit 16), tiles 0 and 2 in error (0b101 << 32)
    assert SYNC_WORD.pack(tag=0xBEEF, proto_error=1, tile_errors=0b101) == 0x000000050001BEEF
    # the worked example's answer: tag 0x2a, no error
    assert SYNC_WORD.pack(tag=0x2A, proto_error=0, tile_errors=0) == 0x2A


def test_width_field_limits():
    """width is stored as width - 1 in 6 bits: 1 is 0 and 64 is 63; 0 and 65 do not fit."""
    assert header(PT.READ, width=1) == 0x3
    assert header(PT.READ, width=64) == 0x7E00000000000003
    for bad in (0, 65):
        with pytest.raises(ValueError):
            header(PT.READ, width=bad)
