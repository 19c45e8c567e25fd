"""Host programs: what the host sends to the system, packet by packet, and what it
expects back. A HostProgram is backend-neutral: the golden system (golden/model/system.py)
and the RTL through cocotb (cosim/drivers/backends.py) run the same one.

    prog = HostProgram(cfg)
    prog.write(tile=0, ap=1, row=0, values=[1, 2, 3], width=8)   # data into MAP 1
    prog.instr(tile=0, words=[...])                              # instruction words
    r = prog.read(tile=0, ap=0, row=0, count=3, col=8, width=16) # response index
    prog.sync()
Every method checks its packet with the same rules as the hardware and raises
ValueError naming the problem; `raw()` sends words unchecked (for negative tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bfimna.golden.model.system import check_dest, check_header
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import WORD_BITS
from bfimna.golden.spec.regs import BROADCAST, PT, Header, dest, header

MAX_COUNT = (1 << 16) - 1


@dataclass
class Response:
    """One expected response frame: a READ (count words) or a SYNC (one word)."""
    kind: str            # "read" or "sync"
    count: int
    tile: int = 0
    ap: int = 0
    row: int = 0
    col: int = 0
    width: int = 64
    tag: int = 0


@dataclass
class HostProgram:
    cfg: Config
    frames: list[list[int]] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    # -- packets ------------------------------------------------------------------------
    def _checked(self, words: list[int]) -> None:
        h = Header.decode(words[0])
        why = check_header(self.cfg, h)
        if why is None and h.type in (PT.COPY, PT.COPYCOL):
            why = check_dest(self.cfg, h, words[1])
        if why is not None:
            raise ValueError(f"{PT(h.type).name if h.type in PT.__members__.values() else h.type}"
                             f" packet: {why}")
        self.frames.append(words)

    def instr(self, tile: int, words) -> None:
        """Instruction words for `tile` (BROADCAST: every tile); split into packets."""
        words = [int(w) for w in words]
        for i in range(0, len(words), MAX_COUNT):
            chunk = words[i:i + MAX_COUNT]
            for w in chunk:
                if not 0 <= w < 1 << WORD_BITS:
                    raise ValueError(f"instruction word {w:#x} is not 64 bits")
            self._checked([header(PT.INSTR, tile=tile, count=len(chunk))] + chunk)

    def write(self, tile: int, ap: int, row: int, values, col: int = 0,
              width: int | None = None) -> None:
        """values[i] (two's complement, truncated to `width`) into bits [col, col+width)
        of row row+i of AP `ap`; other bits of those rows keep their value."""
        width = width or self._width(ap, col)
        vals = [int(v) & ((1 << width) - 1) for v in values]
        for i in range(0, len(vals), MAX_COUNT):
            chunk = vals[i:i + MAX_COUNT]
            self._checked([header(PT.WRITE, tile=tile, ap=ap, row=row + i, count=len(chunk),
                                  col=col, width=width)] + chunk)

    def read(self, tile: int, ap: int, row: int, count: int, col: int = 0,
             width: int | None = None) -> int:
        """Ask for bits [col, col+width) of `count` rows; returns the response index."""
        width = width or self._width(ap, col)
        self._checked([header(PT.READ, tile=tile, ap=ap, row=row, count=count, col=col,
                              width=width)])
        self.responses.append(Response("read", count, tile, ap, row, col, width))
        return len(self.responses) - 1

    def copy(self, src_tile: int, src_ap: int, src_row: int, count: int, dst_tile: int,
             dst_ap: int, dst_row: int, col: int = 0, width: int | None = None,
             dst_col: int | None = None) -> None:
        """Words from one tile to another over the shared bus (count + 1 cycles)."""
        width = width or self._width(src_ap, col)
        self._checked([header(PT.COPY, tile=src_tile, ap=src_ap, row=src_row, count=count,
                              col=col, width=width),
                       dest(dst_tile, dst_ap, dst_row, col if dst_col is None else dst_col)])

    def copy_cols(self, src_tile: int, first_col: int, count: int, dst_tile: int,
                  dst_first_col: int) -> None:
        """CAP bit columns from one tile to another (count + 1 cycles); they land in the
        destination's enabled rows."""
        self._checked([header(PT.COPYCOL, tile=src_tile, row=first_col, count=count),
                       dest(dst_tile, row=dst_first_col)])

    def sync(self, tag: int = 0) -> int:
        """Wait for every tile to be idle; the response is one status word."""
        self._checked([header(PT.SYNC, row=tag)])
        self.responses.append(Response("sync", 1, tag=tag))
        return len(self.responses) - 1

    def raw(self, words, responses: Sequence[Response] = ()) -> None:
        """Words sent as one frame without any check (tlast on the last word)."""
        self.frames.append([int(w) for w in words])
        self.responses.extend(responses)

    # -- views ---------------------------------------------------------------------------
    def _width(self, ap: int, col: int) -> int:
        return max(1, min(64, self.cfg.ap_of(ap).cols - col))

    def beats(self) -> list[tuple[int, bool]]:
        return [(w, i == len(f) - 1) for f in self.frames for i, w in enumerate(f)]

    @property
    def n_words(self) -> int:
        return sum(len(f) for f in self.frames)


def split_responses(beats) -> list[list[int]]:
    """Output beats (word, tlast) -> frames."""
    frames, cur = [], []
    for word, last in beats:
        cur.append(int(word))
        if last:
            frames.append(cur)
            cur = []
    if cur:
        frames.append(cur)     # an unterminated frame (a testbench reports it)
    return frames


__all__ = ["BROADCAST", "HostProgram", "Response", "split_responses"]
