"""The system top's host interface, declared once: packet types, the packet header and
the COPY destination word, SYNC's answer, the AXI4-Lite register map and the bit layout of
every register word. docs/system.md is the prose version.

golden/model/system.py builds and checks packets and answers reads with these;
hdl/gen/system.py decodes the same fields through `data` views of the same layouts
(hdl/gen/layouts.py) and builds its register read multiplexer from REGISTERS;
golden/host/program.py encodes packets and cosim/drivers decode register words through
them.

Where the word helpers live: `header()` / `Header.decode` and `dest()` / `dest_decode`
translate between a packet's fields and its words (the width held as width - 1, the
reserved bits folded into one flag). That is the format, not a rule of a configuration,
and both sides need it: the golden system decodes headers, the host program and the
random stimulus encode them. They belong here, next to the layouts they wrap, so that
the model never imports the host side (golden/host depends on golden/model, not the
reverse). What depends on a configuration (a tile or row that does not exist) is
behaviour and stays with the golden system: golden/model/system.py: check_header,
check_dest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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

# payload words after the header, per packet type: "count" = the header's count field
# (keyed by int: it is looked up with a header's raw type field, PT members are ints)
PAYLOAD: dict[int, int | str] = {PT.INSTR: "count", PT.WRITE: "count", PT.READ: 0,
                                 PT.COPY: 1, PT.COPYCOL: 1, PT.SYNC: 0}
HAS_PAYLOAD = tuple(PT(t) for t, n in PAYLOAD.items() if n)

# SYNC's answer: the header's row field (a tag), the protocol error, one bit per tile
SYNC_WORD = BitLayout("SYNC answer", 64, {
    "tag": (0, 16), "proto_error": (16, 1), "tile_errors": (32, 16)}, gaps="ignored")




def header(ptype: int, tile: int = 0, ap: int = 0, row: int = 0, count: int = 0,
           col: int = 0, width: int = 1) -> int:
    """A header word; `width` 1..64 (stored as width - 1). Raises ValueError when a field
    does not fit (any value that fits is encoded, legal for a configuration or not)."""
    if not 1 <= width <= 64:
        raise ValueError(f"width={width} outside 1..64")
    return HEADER.pack(type=int(ptype), tile=tile, ap=ap, row=row, count=count, col=col,
                       wm1=width - 1)


def dest(tile: int, ap: int = 0, row: int = 0, col: int = 0) -> int:
    """The destination word of COPY (tile, ap, row, col) and COPYCOL (tile, first column
    in `row`)."""
    return DEST.pack(tile=tile, ap=ap, row=row, col=col)


@dataclass(frozen=True)
class Header:
    """A header word's fields: `width` is the field width (not width - 1), `rsv` is 1 when
    a reserved bit is set."""

    type: int
    tile: int
    ap: int
    row: int
    count: int
    col: int
    width: int
    rsv: int

    @classmethod
    def decode(cls, w: int) -> Header:
        f = HEADER.unpack(w)
        return cls(f["type"], f["tile"], f["ap"], f["row"], f["count"], f["col"],
                   f["wm1"] + 1, int(any(f[k] for k in HEADER_RESERVED)))


def dest_decode(w: int) -> tuple[int, int, int, int, int]:
    """(tile, ap, row, col, 1 if a reserved bit is set) of a destination word."""
    f = DEST.unpack(w)
    return f["tile"], f["ap"], f["row"], f["col"], int(DEST.reserved_bits(w) != 0)


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
    Register("CONTROL", 0x01C, "write 1 to bit 0: clear the protocol error (reads 0)",
             CONTROL_WORD,
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

# a counter's address: which half (low/high 32 bits), which counter, which tile
COUNTER_ADDR = BitLayout("counter address", 16, {
    "half": (2, 1), "index": (3, 5), "tile": (8, 4)}, gaps="ignored")
assert 1 << COUNTER_ADDR["index"].lsb == COUNTER_STRIDE
assert 1 << COUNTER_ADDR["tile"].lsb == TILE_COUNTER_STRIDE

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
