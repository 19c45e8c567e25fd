"""Golden system: T tiles behind a global controller that takes packets from the host.

This is the behaviour (and the counters) the system top (hdl/gen/system.py) must reproduce;
docs/system.md is its prose version with a worked example.

The host sends 64-bit words on an AXI4-Stream; a packet is a header word, its payload,
and `tlast` on its final word. Packet types (`PT`):

    INSTR    count instruction words for tile `tile` (255: every tile)
    WRITE    count data words: bits [col, col+width) of rows row.. of AP `ap` of `tile`
    READ     header only; the response is count words (the same field, zero-extended),
             tlast on the last
    COPY     header = source (tile, ap, row, count, col, width), one more word = destination
             (tile, ap, row, col): count words over the shared bus, tile to another tile
    COPYCOL  header = source tile, row = first CAP column, count = columns; one more word =
             destination tile and first column (row field): CAP bit columns, tile to tile
    SYNC     header only; waits for every tile to be idle and answers one status word

Packets run in order. INSTR words enter the tile's instruction queue (tiles run
concurrently); WRITE, READ and COPY wait until the tiles they touch are idle, so a
packet sees the effect of every instruction sent to that tile before it.

A bad packet (unknown type, a field out of range, reserved bits set, tlast early or
missing) is counted in `bad_packets`, sets the sticky protocol error, and is dropped up
to its tlast; words after a tlast start a new packet. A bad header or destination word
applies nothing; payload words that arrived before an early tlast, or all of them when
the tlast comes late, were valid and have been applied.
"""

from __future__ import annotations

import numpy as np

from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import copy_cycles
from bfimna.golden.spec.regs import (
    BROADCAST,
    CONFIG_WORD,
    COUNTER_ADDR,
    COUNTER_STRIDE,
    GEOM_WORD,
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    ID_MAGIC,
    PAYLOAD,
    PT,
    REGISTERS,
    STATUS_WORD,
    SYNC_WORD,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
    Header,
    dest_decode,
)


def check_header(cfg: Config, h: Header) -> str | None:
    """None if the header (without the COPY destination) is good, else why not."""
    T = cfg.system.tiles
    if h.rsv:
        return "reserved header bits are not zero"
    if h.type not in PT.__members__.values():
        return f"unknown packet type {h.type}"
    t = PT(h.type)
    if t == PT.SYNC:
        return None
    if t == PT.INSTR:
        if h.tile >= T and h.tile != BROADCAST:
            return f"tile {h.tile} does not exist ({T} tiles, {BROADCAST} = all)"
        return None if h.count >= 1 else "count=0"
    if h.tile >= T:
        return f"tile {h.tile} does not exist ({T} tiles)"
    if h.count < 1:
        return "count=0"
    if t == PT.COPYCOL:
        if not cfg.ap.two_d:
            return "COPYCOL needs a 2D CAP"
        if h.row + h.count > cfg.ap.cols:
            return f"columns [{h.row}, {h.row + h.count}) outside the CAP's {cfg.ap.cols}"
        return None
    return _check_field(cfg, h.ap, h.row, h.count, h.col, h.width)


def _check_field(cfg: Config, ap: int, row: int, count: int, col: int, width: int):
    if ap > cfg.tile.maps:
        return f"AP {ap} does not exist (0 = CAP, 1..{cfg.tile.maps} = MAPs)"
    a = cfg.ap_of(ap)
    if row + count > a.rows:
        return f"rows [{row}, {row + count}) outside AP {ap}'s {a.rows}"
    if col + width > a.cols:
        return f"columns [{col}, {col + width}) outside AP {ap}'s {a.cols}"
    return None


def check_dest(cfg: Config, h: Header, w: int) -> str | None:
    tile, ap, row, col, rest = dest_decode(w)
    if rest:
        return "destination word has bits outside its fields"
    if tile >= cfg.system.tiles:
        return f"destination tile {tile} does not exist"
    if tile == h.tile:
        return "source and destination tile are the same (use MOVW inside a tile)"
    if h.type == PT.COPYCOL:
        if row + h.count > cfg.ap.cols:
            return f"destination columns [{row}, {row + h.count}) outside the CAP"
        return None
    return _check_field(cfg, ap, row, h.count, col, h.width)


def payload_words(h: Header) -> int:
    """Words after the header (golden/spec/regs.py: PAYLOAD; 0 for READ and SYNC)."""
    n = PAYLOAD.get(h.type, 0)
    return h.count if n == "count" else int(n)


def sync_word(tag: int, proto_error: bool, tile_errors: int) -> int:
    """SYNC's answer: [15:0] the header's row field (a tag), [16] protocol error,
    [47:32] one error bit per tile."""
    return SYNC_WORD.pack(tag=tag, proto_error=int(proto_error), tile_errors=tile_errors)


class System:
    """Golden system: feed it the host's beats (word, tlast), get the response beats."""

    def __init__(self, cfg: Config, tile_cls=Tile):
        """`tile_cls`: Tile (bit level) or golden.fast.FastTile (whole networks)."""
        self.cfg = cfg
        self.tile_cls = tile_cls
        self.reset()

    def reset(self) -> None:
        old = getattr(self, "tiles", None)
        self.tiles = [self.tile_cls(self.cfg) for _ in range(self.cfg.system.tiles)]
        if old is not None and self.cfg.tile.map_memory == "bram":
            # a MAP in block RAM (hdl/gen/mapmem.py) keeps its rows over a reset; the
            # flip-flop rows of the CAP and of `cam` MAPs clear
            for new_tile, old_tile in zip(self.tiles, old, strict=True):
                new_tile.maps = old_tile.maps
        self.counters = dict.fromkeys(GLOBAL_COUNTERS, 0)
        self.proto_error = False
        self.last_error: str | None = None
        self._state = "hdr"
        self._h: Header | None = None
        self._k = 0
        self.out: list[tuple[int, bool]] = []

    def clear_proto_error(self) -> None:
        """What writing 1 to bit 0 of the CONTROL register does."""
        self.proto_error = False

    def register_values(self) -> dict[str, int]:
        """The value of every named register (golden/spec/regs.py: REGISTERS), by name; the
        model is always idle between beats, so STATUS and TILE_BUSY show no busy bit."""
        cfg, K = self.cfg, self.cfg.tile.maps
        return {
            "ID": ID_MAGIC,
            "CONFIG": CONFIG_WORD.pack(tiles=cfg.system.tiles, maps=K, dims=cfg.ap.dims,
                                       counter_bits=cfg.ap.counter_bits),
            "CAP_GEOM": GEOM_WORD.pack(rows=cfg.ap.rows, cols=cfg.ap.cols),
            "MAP_GEOM": GEOM_WORD.pack(rows=cfg.tile.map_rows, cols=cfg.tile.map_cols)
            if K else 0,
            "STATUS": STATUS_WORD.pack(proto_error=int(self.proto_error),
                                       tile_error=int(self.tile_errors != 0)),
            "TILE_BUSY": 0,
            "TILE_ERROR": self.tile_errors,
            "CONTROL": 0,                       # write-only
        }

    def register(self, addr: int) -> int:
        """The 32-bit value an AXI4-Lite read of byte address `addr` returns. Unknown
        addresses read 0; bits 1:0 of the address are ignored only by the counters."""
        cb, T = self.cfg.ap.counter_bits, self.cfg.system.tiles
        named = [r.name for r in REGISTERS if r.addr == addr]
        if named:
            return self.register_values()[named[0]]
        a = COUNTER_ADDR.unpack(addr)

        def half(v: int) -> int:
            return (v % (1 << cb)) >> (32 * a["half"]) & 0xFFFFFFFF

        n_glob = COUNTER_STRIDE * len(GLOBAL_COUNTERS)
        if GLOBAL_COUNTER_BASE <= addr < GLOBAL_COUNTER_BASE + n_glob:
            return half(self.counters[GLOBAL_COUNTERS[a["index"]]])
        if (TILE_COUNTER_BASE <= addr < TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * T
                and addr & 0xFF < COUNTER_STRIDE * len(COUNTER_KEYS)):
            return half(self.tiles[a["tile"]].counters[COUNTER_KEYS[a["index"]]])
        return 0

    @property
    def tile_errors(self) -> int:
        return sum(int(t.error) << i for i, t in enumerate(self.tiles))

    def _bad(self, why: str, last: bool) -> None:
        self.counters["bad_packets"] += 1
        self.proto_error = True
        self.last_error = why
        self._state = "hdr" if last else "drop"

    def _emit(self, word: int, last: bool) -> None:
        self.out.append((word, last))
        self.counters["words_out"] += 1

    def feed(self, beats) -> list[tuple[int, bool]]:
        """Process input beats in order; returns (and keeps in .out) the response beats."""
        start = len(self.out)
        for word, last in beats:
            self.beat(int(word), bool(last))
        return self.out[start:]

    def feed_frames(self, frames) -> list[tuple[int, bool]]:
        """What feed() of the frames' beats (tlast on the last word of each frame) does,
        with the same responses, counters and errors, faster: a well-formed WRITE or
        READ moves its whole field in one array operation (on tiles that have
        host_write_field / host_read_field, golden/model/fast.py), a well-formed INSTR
        packet's words go straight to its tile(s) (to FastTile as one uint64 array).
        Every other frame (a bad header, a length that is not the header's, COPY,
        COPYCOL, SYNC, a frame that does not start a packet) goes beat by beat through
        beat(), the reference."""
        start = len(self.out)
        for f in frames:
            if self._state != "hdr" or not f or not self._whole_packet(f):
                for i, w in enumerate(f):
                    self.beat(int(w), i == len(f) - 1)
        return self.out[start:]

    def _whole_packet(self, f) -> bool:
        """Run frame f as one packet if it is a well-formed INSTR, WRITE or READ (True),
        else leave everything as it was (False)."""
        h = Header.decode(int(f[0]))
        if check_header(self.cfg, h) is not None or len(f) != 1 + payload_words(h):
            return False
        c = self.counters
        if h.type == PT.INSTR:
            words: np.ndarray | list[int] | None = None
            if hasattr(self.tiles[0], "bulk_words"):    # FastTile: the words as an array
                try:
                    words = np.array(f[1:], dtype=np.uint64)
                except (TypeError, ValueError, OverflowError):
                    words = None                 # a word outside 64 bits: word by word
            if words is None:
                words = [int(w) for w in f[1:]]
            for tile in self.tiles if h.tile == BROADCAST else [self.tiles[h.tile]]:
                tile.run(words)          # tiles share nothing: tile after tile is the same
            c["instr_words"] += h.count
        elif h.type == PT.WRITE:
            tile = self.tiles[h.tile]
            if not hasattr(tile, "host_write_field"):
                return False
            try:
                vals = np.array(f[1:], dtype=np.uint64)
            except OverflowError:        # a word outside 64 bits: the reference decides
                return False
            tile.host_write_field(h.ap, h.row, h.col, h.width, vals)
            c["host_writes"] += h.count
        elif h.type == PT.READ:
            tile = self.tiles[h.tile]
            if not hasattr(tile, "host_read_field"):
                return False
            vals = tile.host_read_field(h.ap, h.row, h.count, h.col, h.width).tolist()
            self.out.extend(zip(vals, [False] * (h.count - 1) + [True], strict=True))
            c["words_out"] += h.count
            c["host_reads"] += h.count
        else:
            return False
        c["words_in"] += len(f)
        c["packets"] += 1
        return True

    def beat(self, w: int, last: bool) -> None:
        c = self.counters
        c["words_in"] += 1
        st = self._state
        if st == "drop":
            c["dropped_words"] += 1
            if last:
                self._state = "hdr"
            return
        if st == "hdr":
            h = Header.decode(w)
            why = check_header(self.cfg, h)
            if why is not None:
                return self._bad(why, last)
            n = payload_words(h)
            if n and last:
                return self._bad("tlast on the header of a packet with a payload", True)
            if not n and not last:
                return self._bad("no tlast on a header-only packet", False)
            self._h, self._k = h, 0
            if n == 0:
                self._run_header_only(h)
                c["packets"] += 1
            else:
                self._state = "payload"
            return
        # payload word k of packet h
        assert self._h is not None   # set with the header, before any payload word
        h, k = self._h, self._k
        t = PT(h.type)
        if t in (PT.COPY, PT.COPYCOL):
            if not last:
                return self._bad("no tlast after the destination word", False)
            why = check_dest(self.cfg, h, w)
            if why is not None:
                return self._bad(why, True)
            self._copy(h, w)
        elif t == PT.INSTR:
            tiles = self.tiles if h.tile == BROADCAST else [self.tiles[h.tile]]
            for tile in tiles:
                tile.execute(w)
            c["instr_words"] += 1
        else:  # WRITE
            fmask = (1 << h.width) - 1
            self.tiles[h.tile].host_write(h.ap, h.row + k, (w & fmask) << h.col, fmask << h.col)
            c["host_writes"] += 1
        self._k = k = k + 1
        n = payload_words(h)
        if k == n and last:
            c["packets"] += 1
            self._state = "hdr"
        elif last:
            self._bad(f"tlast after {k} of {n} payload words", True)
        elif k == n:
            self._bad(f"no tlast after {n} payload words", False)

    def _run_header_only(self, h: Header) -> None:
        if h.type == PT.SYNC:
            self.counters["syncs"] += 1
            self._emit(sync_word(h.row, self.proto_error, self.tile_errors), True)
            return
        tile, fmask = self.tiles[h.tile], (1 << h.width) - 1
        for k in range(h.count):    # READ
            self._emit((tile.host_read(h.ap, h.row + k) >> h.col) & fmask, k == h.count - 1)
        self.counters["host_reads"] += h.count

    def _copy(self, h: Header, w: int) -> None:
        dtile, dap, drow, dcol, _ = dest_decode(w)
        src, dst = self.tiles[h.tile], self.tiles[dtile]
        c = self.counters
        if h.type == PT.COPY and hasattr(src, "host_read_field") and \
                hasattr(dst, "host_write_field"):    # the fast tiles: one array move
            dst.host_write_field(dap, drow, dcol, h.width,
                                 src.host_read_field(h.ap, h.row, h.count, h.col, h.width))
            c["copy_words"] += h.count
        elif h.type == PT.COPY:
            fmask = (1 << h.width) - 1
            for k in range(h.count):
                v = (src.host_read(h.ap, h.row + k) >> h.col) & fmask
                dst.host_write(dap, drow + k, v << dcol, fmask << dcol)
            c["copy_words"] += h.count
        else:
            for k in range(h.count):
                dst.host_write_col(drow + k, src.host_read_col(h.row + k))
            c["copy_cols"] += h.count
        c["copy_cycles"] += copy_cycles(h.count, self.cfg.tile.port_register)
