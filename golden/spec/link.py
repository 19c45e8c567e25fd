"""The serial host link of the board-level top (hdl/gen/board.py): how the host's AXI traffic
travels over a UART (8N1) as bytes, declared once. docs/fpga.md documents it.

Every message is a frame: one code byte, then a payload of whole bytes, little endian,
cut into fields by a BitLayout (golden/spec/layout.py). FRAMES is the table; the encoders
and LinkParser here, the golden board (golden/model/board.py: BoardModel) and the board
top's generator (hdl/gen/board.py, which sizes its buffers and lays out its bytes from
it) all read it.

Host -> board
    'W' (0x57) word (8 bytes) flags (1 byte, bit 0: tlast)
        one AXI4-Stream beat into the system; the board answers 'K' once the system
        took it (the host sends the next beat only then: no byte is ever dropped)
    'R' (0x52) address (2 bytes)          an AXI4-Lite read; answer 'R' + 4 bytes
    'Z' (0x5A)                            reset the system (tiles, arrays, counters, the
                                          protocol error; not the link); answer 'K'. Output
                                          beats sent before that 'K' came from before it.
    'S' (0x53)                            the link's error count; answer 'R' + 4 bytes
Board -> host
    'K' (0x4B)                            the last 'W' beat was accepted, or 'Z' done
    'R' (0x52) value (4 bytes)            register value
    'D' (0x44) word (8 bytes) flags (1 byte, bit 0: tlast)   an output beat
    'E' (0x45)                            a byte the board did not expect, or a byte
                                          received with a framing error (a low stop bit):
                                          the byte and any partial command before it are
                                          dropped, the next byte is read as a command

Every 'E' counts in the link's error count (32 bits, wraps; cleared only by power-on,
not by 'Z'), which 'S' reads.

    >>> WORD.encode(word=0x1234, tlast=1).hex()
    '57341200000000000001'
    >>> WORD.length, READ.length, RESET.length, STATS.length
    (10, 3, 1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bfimna.golden.spec.layout import BitLayout

# The link's bit rate: what `bfimna fpga` builds the board top's UART for (its divisor is
# the clock over this) and what the serial drivers open the port at, unless told otherwise.
BAUD = 115200
# How far the board's rate (its clock / an integer divisor) may be from the one asked for.
# The board's receiver samples each bit within a cycle of its middle, so the stop bit,
# 9.5 bits after the start edge, is still inside itself while the rates differ by less
# than (1/2 - 1/divisor) / 9.5: 3.9% at 8 cycles a bit, 2.6% at 4. Measured on the board
# top (scripts/uart_margin.py, docs/cosim.md "Board top"): -3.5% to +4.5% at 8, -2% to
# +3% at 4. Half of the bound is allowed; the rest is the host's own error.
MIN_DIVISOR = 4          # the board's UART samples mid-bit: at least 4 cycles a bit


def rate_tolerance(divisor: int) -> float:
    """The relative rate error uart_divisor allows at `divisor` cycles a bit."""
    return (0.5 - 1 / divisor) / 9.5 / 2


def uart_divisor(clock_hz: float, baud: int = BAUD) -> tuple[int, float]:
    """The board UART's divisor for `baud` from a `clock_hz` clock, and the relative
    error of the rate it makes: (divisor, error). ValueError, saying which clocks would
    do, when the divisor is below MIN_DIVISOR or the rate off by more than
    rate_tolerance(divisor)."""
    div = max(1, round(clock_hz / baud))
    err = clock_hz / div / baud - 1
    if div < MIN_DIVISOR or abs(err) > rate_tolerance(div):
        why = (f"{clock_hz / 1e6:g} MHz / {div} = {clock_hz / div:,.0f} baud is "
               f"{100 * err:+.1f}% off {baud:,} (at most {100 * rate_tolerance(div):.1f}% at "
               f"{div} cycles a bit)"
               if div >= MIN_DIVISOR else
               f"{clock_hz / 1e6:g} MHz gives {clock_hz / baud:.2f} cycles a bit, below "
               f"{MIN_DIVISOR}")
        raise ValueError(f"--baud {baud:,}: {why}; a clock of "
                         f"{', '.join(f'{baud * d / 1e6:g}' for d in (4, 8, 16))} MHz "
                         f"makes it exactly")
    return div, err

# the payload of a stream beat, both ways: the word, then a flags byte (bits 7:1 ignored)
BEAT = BitLayout("stream beat", 72, {"word": (0, 64), "tlast": (64, 1)}, gaps="ignored")


@dataclass(frozen=True)
class Frame:
    """One message of the link: `code` (its first byte), who sends it, and its payload
    (None: the code byte alone)."""

    name: str
    code: int
    sender: Literal["host", "board"]
    payload: BitLayout | None
    doc: str

    def __post_init__(self):
        if self.payload is not None and self.payload.size % 8:
            raise ValueError(f"{self.name}: payload of {self.payload.size} bits is not "
                             f"whole bytes")

    @property
    def nbytes(self) -> int:
        """Payload bytes after the code byte."""
        return 0 if self.payload is None else self.payload.size // 8

    @property
    def length(self) -> int:
        """Bytes on the wire, code byte included."""
        return 1 + self.nbytes

    def encode(self, **fields: int) -> bytes:
        """The frame's bytes; fields are range-checked by the payload's layout."""
        if self.payload is None:
            if fields:
                raise ValueError(f"{self.name} frame has no payload")
            return bytes([self.code])
        return bytes([self.code]) + self.payload.pack(**fields).to_bytes(self.nbytes, "little")

    def decode(self, msg: bytes) -> dict[str, int]:
        """The payload fields of a whole frame (`length` bytes, code byte first)."""
        if len(msg) != self.length or msg[0] != self.code:
            raise ValueError(f"not a {self.name} frame: {bytes(msg).hex()}")
        if self.payload is None:
            return {}
        return self.payload.unpack(int.from_bytes(msg[1:], "little"))


WORD = Frame("WORD", 0x57, "host", BEAT, "one AXI4-Stream beat; answered 'K' once taken")
READ = Frame("READ", 0x52, "host", BitLayout("register address", 16, {"addr": (0, 16)}),
             "an AXI4-Lite read; answered 'R' + value")
RESET = Frame("RESET", 0x5A, "host", None, "reset the system, not the link; answered 'K'")
STATS = Frame("STATS", 0x53, "host", None, "read the link's error count; answered 'R' + count")
ACK = Frame("ACK", 0x4B, "board", None, "the last beat was taken, or the reset is done")
REG = Frame("REG", 0x52, "board", BitLayout("register value", 32, {"value": (0, 32)}),
            "the value of a register")
DATA = Frame("DATA", 0x44, "board", BEAT, "one output beat of the system")
ERR = Frame("ERR", 0x45, "board", None, "a command byte the board does not know, or a byte "
            "with a framing error (both counted, read with 'S')")

FRAMES = (WORD, READ, RESET, STATS, ACK, REG, DATA, ERR)
LINK_ERRORS_BITS = 32        # width of the link's error count (wraps)
HOST_FRAMES = {f.code: f for f in FRAMES if f.sender == "host"}     # by code byte
BOARD_FRAMES = {f.code: f for f in FRAMES if f.sender == "board"}
assert len(HOST_FRAMES) + len(BOARD_FRAMES) == len(FRAMES), "a code byte used twice"


def word_bytes(word: int, last: bool) -> bytes:
    return WORD.encode(word=word, tlast=int(last))


def data_bytes(word: int, last: bool) -> bytes:
    return DATA.encode(word=word, tlast=int(last))


def read_bytes(addr: int) -> bytes:
    return READ.encode(addr=addr)


def reset_bytes() -> bytes:
    return RESET.encode()


def stats_bytes() -> bytes:
    return STATS.encode()


class LinkParser:
    """Board -> host byte stream -> events ('ack',), ('reg', value), ('data', word, last),
    ('err',)."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        self.buf += data
        out: list[tuple] = []
        while self.buf:
            frame = BOARD_FRAMES.get(self.buf[0])
            if frame is None:
                raise ValueError(f"unexpected byte {self.buf[0]:#04x} from the board")
            if len(self.buf) < frame.length:
                break
            msg, self.buf = bytes(self.buf[:frame.length]), self.buf[frame.length:]
            f = frame.decode(msg)
            if frame is REG:
                out.append(("reg", f["value"]))
            elif frame is DATA:
                out.append(("data", f["word"], bool(f["tlast"])))
            else:
                out.append((frame.name.lower(),))
        return out
