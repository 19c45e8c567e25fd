"""The board-level top as the golden model sees it (the serial link of golden/spec/link.py
over the golden system): what the board top must answer, byte for byte apart from the
interleaving of 'K' and 'D' messages."""

from __future__ import annotations

from bfimna.golden.model.system import System
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.link import CMD_READ, CMD_RESET, CMD_WORD, RSP_ACK, RSP_ERR, RSP_REG, data_bytes


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
            cmd = self.buf[0]
            if cmd == CMD_WORD:
                if len(self.buf) < 10:
                    break
                word = int.from_bytes(self.buf[1:9], "little")
                last = bool(self.buf[9] & 1)
                del self.buf[:10]
                beats = self.system.feed([(word, last)])
                out.append(RSP_ACK)
                for w, lst in beats:
                    out += data_bytes(w, lst)
            elif cmd == CMD_READ:
                if len(self.buf) < 3:
                    break
                addr = int.from_bytes(self.buf[1:3], "little")
                del self.buf[:3]
                out.append(RSP_REG)
                out += self.system.register(addr).to_bytes(4, "little")
            elif cmd == CMD_RESET:
                del self.buf[:1]
                self.system.reset()
                out.append(RSP_ACK)
            else:
                del self.buf[:1]
                out.append(RSP_ERR)
        return bytes(out)
