"""The serial host link of the board-level top (hdl/gen/board.py): how the host's AXI traffic
travels over a UART (8N1) as bytes. docs/fpga.md documents it.

Host -> board
    'W' (0x57), 8 bytes word (little endian), 1 byte flags (bit 0: tlast)
        one AXI4-Stream beat into the system; the board answers 'K' once the system
        took it (the host sends the next beat only then: no byte is ever dropped)
    'R' (0x52), 2 bytes address (LE)      an AXI4-Lite read; answer 'R' + 4 bytes (LE)
    'Z' (0x5A)                            reset the system (tiles, arrays, counters, the
                                          protocol error; not the link); answer 'K'. Output
                                          beats sent before that 'K' came from before it.
Board -> host
    'K'                                   the last 'W' beat was accepted
    'R' + 4 bytes                         register value
    'D' (0x44), 8 bytes word (LE), 1 byte flags (bit 0: tlast)   an output beat
    'E' (0x45)                            a byte the board did not expect (resync)

golden/model/board.py: BoardModel is the board's side of this protocol.
"""

from __future__ import annotations

CMD_WORD, CMD_READ, CMD_RESET = 0x57, 0x52, 0x5A
RSP_ACK, RSP_REG, RSP_DATA, RSP_ERR = 0x4B, 0x52, 0x44, 0x45


def word_bytes(word: int, last: bool) -> bytes:
    return bytes([CMD_WORD]) + int(word).to_bytes(8, "little") + bytes([int(last)])


def data_bytes(word: int, last: bool) -> bytes:
    return bytes([RSP_DATA]) + int(word).to_bytes(8, "little") + bytes([int(last)])


def read_bytes(addr: int) -> bytes:
    return bytes([CMD_READ]) + int(addr).to_bytes(2, "little")


def reset_bytes() -> bytes:
    return bytes([CMD_RESET])


class LinkParser:
    """Board -> host byte stream -> events ('ack',), ('reg', value), ('data', word, last),
    ('err',)."""

    LEN = {RSP_ACK: 1, RSP_REG: 5, RSP_DATA: 10, RSP_ERR: 1}

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        self.buf += data
        out = []
        while self.buf:
            kind = self.buf[0]
            need = self.LEN.get(kind)
            if need is None:
                raise ValueError(f"unexpected byte {kind:#04x} from the board")
            if len(self.buf) < need:
                break
            msg, self.buf = bytes(self.buf[:need]), self.buf[need:]
            if kind == RSP_ACK:
                out.append(("ack",))
            elif kind == RSP_ERR:
                out.append(("err",))
            elif kind == RSP_REG:
                out.append(("reg", int.from_bytes(msg[1:5], "little")))
            else:
                out.append(("data", int.from_bytes(msg[1:9], "little"), bool(msg[9] & 1)))
        return out
