"""Fast golden tile: the ISA's macro-level semantics in numpy, for whole networks.

`FastTile` has the interface and the counters of golden/model/tile.py's `Tile`, but executes
each instruction as integer arithmetic on the fields of all enabled rows at once instead
of micro-op by micro-op. Counters come from the exact micro-op stream of each distinct
instruction word (golden/model/controller.py `expand`, cached), so cycles are the same numbers.
The one difference is the reserved carry column C-1, whose leftover value after an
instruction this model does not reproduce (no instruction reads it before clearing it).
tests/test_fast.py checks FastTile against Tile on random tile programs: every other
column, every counter and the error flag agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bfimna.golden.spec.config import APConfig, Config
from bfimna.golden.model.controller import COUNTER_KEYS, UOP_COUNTER, expand
from bfimna.golden.spec.isa import Instr, Opc, decode, encode, validate
from bfimna.golden.model.tile import movw_cycles
from bfimna.golden.spec.uops import Op


@lru_cache(maxsize=65536)
def _costs(word: int, ap: APConfig) -> tuple[int, ...]:
    """Counter increments of one legal non-transfer instruction (COUNTER_KEYS order,
    without instructions/errors)."""
    c = dict.fromkeys(COUNTER_KEYS, 0)
    for u in expand(decode(word), ap):
        c["cycles"] += 1
        c[UOP_COUNTER[Op(u.op)]] += 1
    return tuple(c[k] for k in COUNTER_KEYS)


def _signed(v: np.ndarray, n: int) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >> (n - 1) & 1, v - (1 << n), v)


class FastAP:
    """Bit array of one AP with field access (rows x cols, bool)."""

    def __init__(self, ap: APConfig):
        self.cfg = ap
        self.cam = np.zeros((ap.rows, ap.cols), dtype=bool)
        self.rowen = np.ones(ap.rows, dtype=bool)

    def get(self, start: int, n: int) -> np.ndarray:
        """Field [start, start+n) of every row as uint64 (n <= 63)."""
        w = np.left_shift(np.uint64(1), np.arange(n, dtype=np.uint64))
        return self.cam[:, start:start + n].astype(np.uint64) @ w

    def put(self, start: int, n: int, values, rows: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.int64) & ((1 << n) - 1)
        bits = (v[:, None] >> np.arange(n)) & 1 if v.ndim else \
            np.broadcast_to((v >> np.arange(n)) & 1, (self.cfg.rows, n))
        self.cam[rows, start:start + n] = bits[rows].astype(bool)

    def row_read(self, row: int) -> int:
        return int.from_bytes(np.packbits(self.cam[row].astype(np.uint8),
                                          bitorder="little").tobytes(), "little")

    def row_write(self, row: int, data: int, mask: int) -> None:
        c = self.cfg.cols
        sel = np.array([(mask >> i) & 1 for i in range(c)], dtype=bool)
        d = np.array([(data >> i) & 1 for i in range(c)], dtype=bool)
        self.cam[row, sel] = d[sel]

    def col_read(self, col: int) -> int:
        return int.from_bytes(np.packbits(self.cam[:, col].astype(np.uint8),
                                          bitorder="little").tobytes(), "little")

    def col_write(self, col: int, vec: int) -> None:
        v = np.array([(vec >> r) & 1 for r in range(self.cfg.rows)], dtype=bool)
        self.cam[self.rowen, col] = v[self.rowen]


class FastTile:
    """Drop-in for golden.tile.Tile (execute, host_* methods, counters, error)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.cap_ap = FastAP(cfg.ap)
        self.maps = [FastAP(cfg.map_ap) for _ in range(cfg.tile.maps)]
        self.xrows = (0, 0, 0)
        self.counters = dict.fromkeys(COUNTER_KEYS, 0)
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
    def run(self, program) -> "FastTile":
        for w in program:
            self.execute(w)
        return self

    def execute(self, word: int | Instr) -> None:
        ins = decode(word) if isinstance(word, int) else word
        cfg, c = self.cfg, self.counters
        reason = validate(ins, cfg.ap, cfg, self.xrows)
        if reason is not None:
            self.error, self.last_error = True, reason
            c["errors"] += 1
            c["cycles"] += 1
            c["nops"] += 1
            return
        op = Opc(ins.op)
        if op == Opc.MOVW:
            self._movw(ins)
            c["cycles"] += movw_cycles(ins.count)
            c["row_transfers"] += 2 * ins.count
        else:
            if op == Opc.XROWS:
                self.xrows = (ins.srow, ins.drow, ins.stride)
            else:
                self._compute(ins)
            for k, v in zip(COUNTER_KEYS, _costs(encode(ins), cfg.ap)):
                c[k] += v
        c["instructions"] += 1

    def _movw(self, ins: Instr) -> None:
        src, dst = self.ap(ins.sap), self.ap(ins.dap)
        srow, drow, stride = self.xrows
        rows = srow + stride * np.arange(ins.count)
        vals = src.cam[rows, ins.a:ins.a + ins.n]
        dst.cam[drow:drow + ins.count, ins.d:ins.d + ins.n] = vals

    def _compute(self, ins: Instr) -> None:
        A = self.cap_ap
        op, n, m, d, a, b = Opc(ins.op), ins.n, ins.m, ins.d, ins.a, ins.b
        en = A.rowen
        imm = ins.imm
        if op == Opc.NOP:
            return
        if op == Opc.ROWS:
            r = np.arange(A.cfg.rows)
            A.rowen = (r >= ins.lo) & (r < ins.hi)
            return
        if op == Opc.CLEAR:
            A.put(d, n, 0, en)
        elif op == Opc.COPY:
            A.put(d, n, A.get(a, n), en)
        elif op in (Opc.ADD, Opc.SUB):
            x, y = A.get(d, n).astype(np.int64), A.get(a, n).astype(np.int64)
            A.put(d, n, x + y if op == Opc.ADD else x - y, en)
        elif op in (Opc.ADDI, Opc.SUBI):
            x = A.get(d, n).astype(np.int64)
            A.put(d, n, x + imm if op == Opc.ADDI else x - imm, en)
        elif op == Opc.MUL:
            x, y = A.get(a, n), A.get(b, m)
            if ins.s:
                x, y = _signed(x, n), _signed(y, m)
            A.put(d, n + m, x.astype(np.int64) * y.astype(np.int64), en)
        elif op == Opc.MAC:
            x = A.get(a, n)
            x = _signed(x, n) if ins.s else x.astype(np.int64)
            A.put(d, m, A.get(d, m).astype(np.int64) + x * imm, en)
        elif op == Opc.RELU:
            x = _signed(A.get(d, n), n)
            A.put(d, n, np.maximum(x, 0), en)
        elif op in (Opc.MAX, Opc.MIN):
            x, y = A.get(d, n), A.get(a, n)
            if ins.s:
                x, y = _signed(x, n), _signed(y, n)
            else:
                x, y = x.astype(np.int64), y.astype(np.int64)
            A.put(d, n, np.maximum(x, y) if op == Opc.MAX else np.minimum(x, y), en)
        elif op == Opc.CLAMP:
            x = A.get(d, n)
            if ins.s:
                v = np.clip(_signed(x, n), -(1 << (m - 1)), (1 << (m - 1)) - 1)
            else:
                v = np.minimum(x.astype(np.int64), (1 << m) - 1)
            A.put(d, n, v, en)
        elif op == Opc.SHR:
            x = A.get(d, n).astype(np.int64)
            A.put(d + m, n - m, (x + (1 << (m - 1))) >> m, en)
        elif op == Opc.REDUCE:
            R = A.cfg.rows
            for st in range(m):
                sh = 1 << st
                src = np.where(en[:, None], A.cam[:, d:d + n], False)
                moved = np.zeros_like(src)
                moved[:R - sh] = src[sh:]
                A.cam[en, a:a + n] = moved[en]
                A.put(d, n, A.get(d, n).astype(np.int64) + A.get(a, n).astype(np.int64), en)
        else:  # pragma: no cover - validate() rejects everything else
            raise AssertionError(op)

