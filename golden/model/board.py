"""The board-level top as the golden model sees it (the serial link of golden/spec/link.py
over the golden system): what the board top must answer, byte for byte apart from the
interleaving of 'K' and 'D' messages."""

from __future__ import annotations

from bfimna.golden.model.system import System
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.link import ACK, DATA, ERR, HOST_FRAMES, READ, REG, RESET, WORD


class BoardModel:
    """The board top as the golden model sees it: host bytes in, board bytes out. A
    partial command waits for its remaining bytes; an unknown command byte answers 'E'
    and is dropped (the next byte is read as a command)."""

    def __init__(self, cfg, tile_cls=None):
        self.system = System(cfg, tile_cls or Tile)
        self.buf = bytearray()

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while self.buf:
            frame = HOST_FRAMES.get(self.buf[0])
            if frame is None:
                del self.buf[:1]
                out += ERR.encode()
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
            else:
                raise AssertionError(f"no behaviour for the {frame.name} frame")
        return bytes(out)
