"""The system top's host interface, declared once: packet types, the packet header and
the COPY destination word, SYNC's answer, the AXI4-Lite register map and the bit layout of
every register word. docs/system.md is the prose version.

golden/model/system.py builds and checks packets and answers reads with these;
hdl/gen/system.py decodes the same fields through `data` views of the same layouts
(hdl/gen/layouts.py); golden/host/program.py encodes packets and cosim/drivers decode
register words through them.
"""

from __future__ import annotations

import enum

from bfimna.golden.spec.layout import BitLayout, Register

BROADCAST = 255   # INSTR to every tile


class PT(enum.IntEnum):
    """Packet types (the header's `type` field)."""

    INSTR = 1
    WRITE = 2
    READ = 3
    COPY = 4
    COPYCOL = 5
    SYNC = 6


# -- packets -------------------------------------------------------------------------------

# `wm1` holds the field width minus one (widths 1..64)
HEADER = BitLayout("packet header", 64, {
    "type": (0, 4), "tile": (4, 8), "ap": (12, 3), "rsv0": (15, 1), "row": (16, 16),
    "count": (32, 16), "col": (48, 9), "wm1": (57, 6), "rsv1": (63, 1)})
HEADER_RESERVED = ("rsv0", "rsv1")   # header fields a legal header has zero

# the second word of COPY / COPYCOL: the destination; every other bit must be 0
DEST = BitLayout("COPY destination word", 64, {
    "tile": (4, 8), "ap": (12, 3), "row": (16, 16), "col": (48, 9)}, gaps="reserved")

# SYNC's answer: the header's row field (a tag), the protocol error, one bit per tile
SYNC_WORD = BitLayout("SYNC answer", 64, {
    "tag": (0, 16), "proto_error": (16, 1), "tile_errors": (32, 16)}, gaps="ignored")


# -- AXI4-Lite registers --------------------------------------------------------------------

ID_MAGIC = 0xBF1A0001          # "BF1A", register map version 1

CONFIG_WORD = BitLayout("CONFIG register", 32, {
    "tiles": (0, 8), "maps": (8, 4), "dims": (12, 4), "counter_bits": (16, 8)},
    gaps="ignored")
GEOM_WORD = BitLayout("geometry register", 32, {"rows": (0, 16), "cols": (16, 16)})
STATUS_WORD = BitLayout("STATUS register", 32, {
    "busy": (0, 1), "proto_error": (1, 1), "tile_error": (2, 1)}, gaps="ignored")
CONTROL_WORD = BitLayout("CONTROL register", 32, {"clear_error": (0, 1)}, gaps="ignored")

REGISTERS = (
    Register("ID", 0x000, f"{ID_MAGIC:#010x}: 'BF1A', register map version 1"),
    Register("CONFIG", 0x004, "tiles, MAPs per tile, CAP dimensions, counter bits",
             CONFIG_WORD),
    Register("CAP_GEOM", 0x008, "CAP rows and columns", GEOM_WORD),
    Register("MAP_GEOM", 0x00C, "MAP rows and columns (0 without MAPs)", GEOM_WORD),
    Register("STATUS", 0x010, "busy, sticky protocol error, any tile error", STATUS_WORD),
    Register("TILE_BUSY", 0x014, "one busy bit per tile"),
    Register("TILE_ERROR", 0x018, "one sticky error bit per tile"),
    Register("CONTROL", 0x01C, "write 1 to bit 0: clear the protocol error", CONTROL_WORD,
             writable=True),
)
REG = {r.name: r for r in REGISTERS}
REG_ID, REG_CONFIG = REG["ID"].addr, REG["CONFIG"].addr
REG_CAP_GEOM, REG_MAP_GEOM = REG["CAP_GEOM"].addr, REG["MAP_GEOM"].addr
REG_STATUS, REG_TILE_BUSY = REG["STATUS"].addr, REG["TILE_BUSY"].addr
REG_TILE_ERROR, REG_CONTROL = REG["TILE_ERROR"].addr, REG["CONTROL"].addr

# 64-bit counters as two 32-bit registers: low word at +0, high word at +4
COUNTER_STRIDE = 8
GLOBAL_COUNTER_BASE = 0x100     # + 8*i
TILE_COUNTER_BASE = 0x1000      # + 0x100*tile + 8*i
TILE_COUNTER_STRIDE = 0x100

GLOBAL_COUNTERS = ("words_in", "words_out", "packets", "bad_packets", "dropped_words",
                   "instr_words", "host_writes", "host_reads", "copy_words", "copy_cols",
                   "copy_cycles", "syncs")


def describe_config(config: int, cap: int, map_: int) -> str:
    """A person's description of the CONFIG, CAP_GEOM and MAP_GEOM register values."""
    c, g, mg = CONFIG_WORD.unpack(config), GEOM_WORD.unpack(cap), GEOM_WORD.unpack(map_)
    s = (f"{c['tiles']} tile(s), CAP {g['rows']}x{g['cols']} ({c['dims']}D), "
         f"{c['maps']} MAP(s)")
    if c["maps"]:
        s += f" {mg['rows']}x{mg['cols']}"
    return s + f", {c['counter_bits']}-bit counters"
