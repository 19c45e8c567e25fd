"""The board-level top as the golden model sees it (the serial link of golden/spec/link.py
over the golden system): what the board top must answer, byte for byte apart from the
interleaving of 'K' and 'D' messages."""

from __future__ import annotations

from bfimna.golden.model.system import System
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.link import (
    ACK,
    DATA,
    ERR,
    HOST_FRAMES,
    LINK_ERRORS_BITS,
    READ,
    REG,
    RESET,
    STATS,
    WORD,
)


class BoardModel:
    """The board top as the golden model sees it: host bytes in, board bytes out. A
    partial command waits for its remaining bytes; an unknown command byte answers 'E'
    and is dropped (the next byte is read as a command); a byte received with a framing
    error (`framing_error()`) answers 'E' and drops any partial command with it. Every
    'E' counts in `link_errors` (read with 'S'; 'Z' keeps it)."""

    def __init__(self, cfg, tile_cls=None):
        self.system = System(cfg, tile_cls or Tile)
        self.buf = bytearray()
        self.link_errors = 0

    def _error(self) -> bytes:
        self.link_errors = (self.link_errors + 1) % (1 << LINK_ERRORS_BITS)
        return ERR.encode()

    def framing_error(self) -> bytes:
        """A byte arrived with a low stop bit: it and the partial command are dropped."""
        self.buf.clear()
        return self._error()

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while self.buf:
            frame = HOST_FRAMES.get(self.buf[0])
            if frame is None:
                del self.buf[:1]
                out += self._error()
                continue
            if len(self.buf) < frame.length:
                break
            f = frame.decode(bytes(self.buf[:frame.length]))
            del self.buf[:frame.length]
            if frame is WORD:
                beats = self.system.feed([(f["word"], bool(f["tlast"]))])
                out += ACK.encode()
                for w, last in beats:
                    out += DATA.encode(word=w, tlast=int(last))
            elif frame is READ:
                out += REG.encode(value=self.system.register(f["addr"]))
            elif frame is RESET:
                self.system.reset()
                out += ACK.encode()
            elif frame is STATS:
                out += REG.encode(value=self.link_errors)
            else:
                raise AssertionError(f"no behaviour for the {frame.name} frame")
        return bytes(out)
