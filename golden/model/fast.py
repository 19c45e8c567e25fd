"""Fast golden tile: the ISA's macro-level semantics in numpy, for whole networks.

`FastTile` has the interface and the counters of golden/model/tile.py's `Tile`, but executes
each instruction as integer arithmetic on the fields of all enabled rows at once (the
`effect` of its opcode table entry, golden/spec/isa.py: OPCODES) instead of micro-op by
micro-op. Counters come from the exact micro-op stream of each distinct instruction word
(golden/spec/costs.py `counts`, cached), so cycles are the same numbers.
The one difference is the reserved carry column C-1, whose leftover value after an
instruction this model does not reproduce (no instruction reads it before clearing it).
tests/test_fast.py checks FastTile against Tile on random tile programs: every other
column, every counter and the error flag agree.
"""

from __future__ import annotations

import numpy as np

from bfimna.golden.spec.config import APConfig, Config
from bfimna.golden.spec.costs import counts, profile
from bfimna.golden.spec.isa import OPCODES, Instr, Opc, decode, encode, validate
from bfimna.golden.spec.uops import ACTIVITY_KEYS, COUNTER_KEYS


def _bits(value: int, n: int) -> np.ndarray:
    """Bits 0..n-1 of a non-negative int as a bool vector (higher bits ignored)."""
    raw = (value & ((1 << n) - 1)).to_bytes((n + 7) // 8, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n,
                         bitorder="little").view(bool)


class FastAP:
    """Bit array of one AP with field access (rows x cols, bool)."""

    def __init__(self, ap: APConfig):
        self.cfg = ap
        self.cam = np.zeros((ap.rows, ap.cols), dtype=bool)
        self.rowen = np.ones(ap.rows, dtype=bool)

    def get(self, start: int, n: int) -> np.ndarray:
        """Field [start, start+n) of every row as uint64 (n <= 63)."""
        packed = np.packbits(self.cam[:, start:start + n], axis=1, bitorder="little")
        buf = np.zeros((self.cfg.rows, 8), dtype=np.uint8)
        buf[:, :packed.shape[1]] = packed
        return buf.view("<u8").ravel()

    def put(self, start: int, n: int, values, rows: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.int64) & ((1 << n) - 1)
        raw = np.ascontiguousarray(v.astype("<u8")).view(np.uint8).reshape(-1, 8)
        bits = np.unpackbits(raw, axis=1, count=n, bitorder="little").view(bool)
        self.cam[rows, start:start + n] = bits[rows] if v.ndim else bits[0]

    def row_read(self, row: int) -> int:
        return int.from_bytes(np.packbits(self.cam[row].astype(np.uint8),
                                          bitorder="little").tobytes(), "little")

    def row_write(self, row: int, data: int, mask: int) -> None:
        c = self.cfg.cols
        sel, d = _bits(mask, c), _bits(data, c)
        self.cam[row, sel] = d[sel]

    def col_read(self, col: int) -> int:
        return int.from_bytes(np.packbits(self.cam[:, col].astype(np.uint8),
                                          bitorder="little").tobytes(), "little")

    def col_write(self, col: int, vec: int) -> None:
        v = _bits(vec, self.cfg.rows)
        self.cam[self.rowen, col] = v[self.rowen]


class FastTile:
    """Drop-in for golden.tile.Tile (execute, host_* methods, counters, error)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.cap_ap = FastAP(cfg.ap)
        self.maps = [FastAP(cfg.map_ap) for _ in range(cfg.tile.maps)]
        self.xrows = (0, 0, 0)
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
        self.activity = dict.fromkeys(ACTIVITY_KEYS, 0)  # from costs.profile, per word
        self.enabled = cfg.ap.rows                       # CAP rows the last ROWS enabled
        # (word or Instr, xrows) -> (Instr, illegal reason, counts, activity profile): the
        # checks of a word depend only on it, the configuration and the transfer rows
        self._seen: dict[tuple[int | Instr, tuple[int, int, int]], tuple] = {}
        self.error = False
        self.last_error: str | None = None

    def ap(self, index: int) -> FastAP:
        return self.cap_ap if index == 0 else self.maps[index - 1]

    # -- host port -------------------------------------------------------------------------
    def host_read(self, ap: int, row: int) -> int:
        return self.ap(ap).row_read(row)

    def host_write(self, ap: int, row: int, data: int, mask: int) -> None:
        self.ap(ap).row_write(row, data, mask)

    def host_read_col(self, col: int) -> int:
        return self.cap_ap.col_read(col)

    def host_write_col(self, col: int, vec: int) -> None:
        self.cap_ap.col_write(col, vec)

    # -- instructions ------------------------------------------------------------------------
    def run(self, program) -> FastTile:
        for w in program:
            self.execute(w)
        return self

    def execute(self, word: int | Instr) -> None:
        cfg, c = self.cfg, self.counters
        key = (word, self.xrows)
        hit = self._seen.get(key)
        if hit is None:   # decode + validate + counts: ~50 us, and programs repeat words
            ins = decode(word) if isinstance(word, int) else word
            reason = validate(ins, cfg.ap, cfg, self.xrows)
            word = encode(ins) if reason is None else 0
            cnt = None if reason is not None else counts(word, cfg.ap)
            prof = None if reason is not None else profile(word, cfg.ap)
            if len(self._seen) > 1 << 16:
                self._seen.clear()
            hit = self._seen[key] = (ins, reason, cnt, prof)
        ins, reason, cnt, prof = hit
        if reason is not None:
            self.error, self.last_error = True, reason
            c["errors"] += 1
            c["cycles"] += 1
            c["nops"] += 1
            self.activity["cycles"] += 1
            return
        op = Opc(ins.op)
        if op == Opc.MOVW:
            self._movw(ins)
        elif op == Opc.XROWS:
            self.xrows = (ins.srow, ins.drow, ins.stride)
        else:
            self._compute(ins)
        assert cnt is not None and prof is not None
        for k, v in zip(COUNTER_KEYS, cnt, strict=True):
            c[k] += v
        act, rows = self.activity, self.enabled
        for k, f, r in zip(ACTIVITY_KEYS, prof[0], prof[1], strict=True):
            act[k] += f + rows * r
        if op == Opc.ROWS:      # rows enabled from the next instruction on
            self.enabled = ins.hi - ins.lo
        c["instructions"] += 1

    def _movw(self, ins: Instr) -> None:
        src, dst = self.ap(ins.sap), self.ap(ins.dap)
        srow, drow, stride = self.xrows
        rows = srow + stride * np.arange(ins.count)
        vals = src.cam[rows, ins.a:ins.a + ins.n]
        dst.cam[drow:drow + ins.count, ins.d:ins.d + ins.n] = vals

    def _compute(self, ins: Instr) -> None:
        A = self.cap_ap
        if ins.op == Opc.ROWS:
            r = np.arange(A.cfg.rows)
            A.rowen = (r >= ins.lo) & (r < ins.hi)
            return
        spec = OPCODES[Opc(ins.op)]
        if spec.effect is None:       # NOP
            return
        cols = spec.columns(ins)
        values = {k: A.get(start, width).astype(np.int64) for k, (start, width) in cols.items()}
        for k, v in spec.effect(ins, values, A.rowen).items():
            start, width = cols[k]
            A.put(start, width, v, A.rowen)
