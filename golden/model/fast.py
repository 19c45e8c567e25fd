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

Representation (for speed: a field is a shift and a mask, not a pack of bit columns): each
AP is a (rows, ceil(cols / 64)) uint64 array, bit c of row r being bit c % 64 of word
c // 64; `FastAP.cam` unpacks it to the bit matrix of the bit-level model. ROWS always
enables one row range [lo, hi), so an instruction touches the slice lo:hi only (rows
outside it keep their fields; REDUCE reads 0 from them, which the slice gives too).
Counters and activity are tallied per distinct cached word (executions and the enabled
rows summed) and multiplied out when read: the same sums, without a dict update per
instruction.

Two more shortcuts, both exact (tests/test_fast.py compares them with the bit-level Tile):
- MAC stretches: a MAC's effect is d + x * imm (mod 2^m), x its operand's value (OPCODES
  `effect` at imm = 1, d = 0), so a run of MACs over the same enabled rows is deferred:
  each distinct operand value is kept once (a column of X), each MAC adds its imm to a
  coefficient matrix W (operand, destination), and the destinations get X @ W in one
  product when anything reads or writes their columns, the rows change, the host looks
  at the tile (every host_* method, `ap`, `cap_ap`) or MAC_BATCH operands are held.
  Sums wrap mod 2^64, the fields mod 2^m (m <= 32): the same bits as one MAC after the
  other.
- gather stretches (_gather): the XROWS + MOVW words of a stretch are the key of its
  cached plan (index arrays and counter tallies), as the scheduler repeats the gather of
  a tap for every group of accumulators.
- tap loops (run -> _bulk_run -> _taps): a packet is a uint64 array; in its runs of MAC,
  XROWS, MOVW and CLEAR words, the stretches of words that conform (_bulk_run: legal, one
  operand field F that gathers from the MAPs and CLEARs write and MACs read, into
  destinations apart from F and from each other) are applied at once: F's contents over
  the enabled rows as indices of the writes (the last write of each row before each MAC,
  forward filled), every MAC's product summed into its destination by one matrix
  product (float64 when every partial sum is an exact integer, else int64), F's final
  content, the transfer rows, counters per distinct word. Everything else, and
  stretches that gather more rows per word than BULK_RATIO (the cached plans are faster
  there), runs word by word.
"""

from __future__ import annotations

import numpy as np

from bfimna.golden.spec.config import APConfig, Config
from bfimna.golden.spec.costs import counts, profile
from bfimna.golden.spec.isa import (
    OP_FIELD,
    OPCODES,
    XROWS_FORMAT,
    Instr,
    Opc,
    Target,
    decode,
    encode,
    movw_dst_rows_ok,
    movw_src_rows_ok,
    validate,
)
from bfimna.golden.spec.uops import ACTIVITY_KEYS, COUNTER_KEYS

_M64 = (1 << 64) - 1
_OP_MASK = OP_FIELD.mask
_XROWS_OP, _MOVW_OP, _MAC_OP = (int(op) << OP_FIELD.lsb
                                for op in (Opc.XROWS, Opc.MOVW, Opc.MAC))
_XROWS_GAPS = XROWS_FORMAT.gap_mask
_SROW, _DROW, _STRIDE = ((XROWS_FORMAT[f].lsb, (1 << XROWS_FORMAT[f].width) - 1)
                         for f in ("srow", "drow", "stride"))
_BULK_OPS = np.array([int(op) << OP_FIELD.lsb for op in (Opc.MAC, Opc.CLEAR, Opc.XROWS,
                                                       Opc.MOVW)], dtype=np.uint64)
_ONES = np.ones(1 << 16, dtype=bool)       # the enabled rows of a slice (read only)
_ONES.flags.writeable = False
_U = np.uint64
BULK_MIN = 48              # MAC / XROWS / MOVW / CLEAR words taken together (_bulk_run)
BULK_RATIO = 24            # at most this many rows gathered per word taken together
BULK_CELLS = 1 << 21       # operand contents x enabled rows held at once by _taps
_K_MOVW, _K_CLEAR, _K_MAC, _K_XROWS = 1, 2, 3, 4      # conforming words' kinds (_bulk_info)
F64_BITS = 53              # integers below 2^this are exact in float64 (_taps' product)
MAC_BATCH = 256            # deferred MAC operands held at most (rows x this int64 values)
_PLANS_MAX = 1 << 14       # cached gather plans (cleared when more)
# MOVW's rules that read the transfer row registers (the rest depend on the word only)
_XROW_RULES = tuple(r for r in OPCODES[Opc.MOVW].rules if r.name in ("src_rows", "dst_rows"))
assert OPCODES[Opc.MOVW].rules[-2:] == _XROW_RULES, "MOVW's row rules moved: see fast.py"


def _bits(value: int, n: int) -> np.ndarray:
    """Bits 0..n-1 of a non-negative int as a bool vector (higher bits ignored)."""
    raw = (value & ((1 << n) - 1)).to_bytes((n + 7) // 8, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n,
                         bitorder="little").view(bool)


def _xrows_fields(words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """srow, drow, stride of XROWS words (a uint64 array) as int64 arrays."""
    return tuple((words >> _U(lsb)).astype(np.int64) & mask      # type: ignore[return-value]
                 for lsb, mask in (_SROW, _DROW, _STRIDE))


def _as_u64(values) -> np.ndarray:
    """Values (an int, or an int64 or uint64 array) as uint64, two's complement wrapped."""
    v = np.asarray(values)
    return v if v.dtype == np.uint64 else v.astype(np.int64).astype(np.uint64)


class FastAP:
    """Bits of one AP, packed 64 columns to a uint64 word, with field access."""

    def __init__(self, ap: APConfig):
        self.cfg = ap
        self.nw = (ap.cols + 63) // 64
        self.words = np.zeros((ap.rows, self.nw), dtype=np.uint64)
        self.lo, self.hi = 0, ap.rows            # the enabled row range (its last ROWS)

    @property
    def rowen(self) -> np.ndarray:
        r = np.arange(self.cfg.rows)
        return (r >= self.lo) & (r < self.hi)

    @property
    def cam(self) -> np.ndarray:
        """The bit matrix (rows x cols, bool), as the bit-level AP holds it: a read-only
        copy (writing into it raises instead of silently changing nothing)."""
        raw = np.ascontiguousarray(self.words.astype("<u8")).view(np.uint8)
        out = np.unpackbits(raw, axis=1, count=self.cfg.cols, bitorder="little").view(bool)
        out.flags.writeable = False
        return out

    def get(self, start: int, n: int, rows=slice(None)) -> np.ndarray:
        """Field [start, start+n) (n <= 64) of `rows` (a slice or an index array) as
        uint64."""
        w, b = start >> 6, start & 63
        v = self.words[rows, w] >> _U(b)
        if b + n > 64:
            v |= self.words[rows, w + 1] << _U(64 - b)
        if n < 64:
            v &= _U((1 << n) - 1)
        return v

    def put(self, start: int, n: int, values, rows=slice(None)) -> None:
        """Field [start, start+n) of `rows` = values (wrapped to n bits; one value or one
        per row)."""
        mask = (1 << n) - 1
        v = _as_u64(values) & _U(mask)
        w, b = start >> 6, start & 63
        col = self.words[rows, w]
        self.words[rows, w] = (col & _U(~(mask << b) & _M64)) | (v << _U(b))
        if b + n > 64:
            sh = 64 - b
            col = self.words[rows, w + 1]
            self.words[rows, w + 1] = (col & _U(~(mask >> sh) & _M64)) | (v >> _U(sh))

    def row_read(self, row: int) -> int:
        return sum(int(x) << (64 * i) for i, x in enumerate(self.words[row]))

    def row_write(self, row: int, data: int, mask: int) -> None:
        mask &= (1 << self.cfg.cols) - 1
        for i in range(self.nw):
            m = (mask >> (64 * i)) & _M64
            if m:
                d = (data >> (64 * i)) & m
                self.words[row, i] = _U((int(self.words[row, i]) & ~m & _M64) | d)

    def col_read(self, col: int) -> int:
        bits = ((self.words[:, col >> 6] >> _U(col & 63)) & _U(1)).astype(np.uint8)
        return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")

    def col_write(self, col: int, vec: int) -> None:
        """Bit `col` of the enabled rows = bits of vec (row r: bit r)."""
        if self.hi <= self.lo:
            return
        v = _bits(vec, self.cfg.rows)[self.lo:self.hi].astype(np.uint64)
        self.put(col, 1, v, slice(self.lo, self.hi))


class FastTile:
    """Drop-in for golden.tile.Tile (execute, host_* methods, counters, error)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._cap = FastAP(cfg.ap)
        self.maps = [FastAP(cfg.map_ap) for _ in range(cfg.tile.maps)]
        self.xrows = (0, 0, 0)
        self._counters = dict.fromkeys(COUNTER_KEYS, 0)
        self._activity = dict.fromkeys(ACTIVITY_KEYS, 0)  # from costs.profile, per word
        self.enabled = cfg.ap.rows                       # CAP rows the last ROWS enabled
        # word -> its facts (_entry): the checks of a word depend only on it, the
        # configuration and (MOVW's row rules) the transfer rows
        self._seen: dict = {}
        self._dirty: list[list] = []                     # entries with untallied runs
        self._xrows_entry: list | None = None            # the one entry of every XROWS
        self._errors = 0                                 # illegal words not yet tallied
        self.error = False
        self.last_error: str | None = None
        # deferred MACs (_mac): their rows, operand values (X's columns), terms (operand,
        # destination, imm), destination fields -> W's column, the columns they write
        self._pend_rows: tuple[int, int] | None = None
        self._pend_x: list[np.ndarray] = []
        self._pend_xkey: list[tuple] = []      # (a, n, s) of each of X's columns
        self._pend_terms: list[tuple[int, int, int]] = []
        self._pend_dst: dict[tuple[int, int], int] = {}
        self._pend_cols = 0
        self._x_key: tuple | None = None       # (a, n, s) of X's last column, if current
        self._unit: dict[tuple, tuple] = {}   # (a, n, s) -> (a MAC at imm=1, its spec)
        self._plans: dict[tuple, tuple] = {}  # gather stretch words -> its plan
        self.bulk_words = 0                   # words run by _taps (tests look)

    @property
    def cap_ap(self) -> FastAP:
        """The CAP, deferred MACs applied."""
        self._settle()
        return self._cap

    def ap(self, index: int) -> FastAP:
        self._settle()
        return self._cap if index == 0 else self.maps[index - 1]

    # -- counters (tallied per cached word, multiplied out when read) ------------------------
    def _flush(self) -> None:
        c, act = self._counters, self._activity
        for e in self._dirty:
            k, n_rows = e[4], e[5]
            for key, v in zip(COUNTER_KEYS, e[2], strict=True):
                c[key] += v * k
            c["instructions"] += k
            for key, f, r in zip(ACTIVITY_KEYS, e[3][0], e[3][1], strict=True):
                act[key] += f * k + r * n_rows
            e[4] = e[5] = 0
        self._dirty.clear()
        if self._errors:
            for key in ("errors", "cycles", "nops"):
                c[key] += self._errors
            act["cycles"] += self._errors
            self._errors = 0

    @property
    def counters(self) -> dict[str, int]:
        self._flush()
        return self._counters

    @property
    def activity(self) -> dict[str, int]:
        self._flush()
        return self._activity

    # -- host port -------------------------------------------------------------------------
    def host_read(self, ap: int, row: int) -> int:
        return self.ap(ap).row_read(row)         # (ap(): deferred MACs applied first)

    def host_write(self, ap: int, row: int, data: int, mask: int) -> None:
        self.ap(ap).row_write(row, data, mask)

    def host_read_field(self, ap: int, row: int, count: int, col: int,
                        width: int) -> np.ndarray:
        """Bits [col, col+width) of rows row..row+count-1 as uint64 (one host READ)."""
        return self.ap(ap).get(col, width, slice(row, row + count))

    def host_write_field(self, ap: int, row: int, col: int, width: int, values) -> None:
        """Bits [col, col+width) of rows row.. = values (one host WRITE's payload)."""
        self.ap(ap).put(col, width, values, slice(row, row + len(values)))

    def host_read_col(self, col: int) -> int:
        return self.cap_ap.col_read(col)

    def host_write_col(self, col: int, vec: int) -> None:
        self.cap_ap.col_write(col, vec)

    # -- instructions ------------------------------------------------------------------------
    def run(self, program) -> FastTile:
        """Execute the words in order. Runs of MAC, XROWS, MOVW and CLEAR words that form
        tap loops (_bulk) go through a few array operations per run; a stretch of XROWS +
        MOVW pairs that gathers MAP fields into CAP rows (_gather) moves all its words
        in a few array operations; the rest runs word by word."""
        arr = None
        if isinstance(program, np.ndarray):
            arr = program.astype(np.uint64, copy=False)
            words = arr if arr.ndim == 1 else arr.tolist()   # (_run_words: to ints)
        else:
            words = program if isinstance(program, list) else list(program)
            if len(words) >= BULK_MIN:
                try:
                    arr = np.array(words, dtype=np.uint64)
                except (TypeError, ValueError, OverflowError):
                    arr = None                 # Instr objects, words outside 64 bits
        n = len(words)
        if arr is None or n < BULK_MIN or arr.ndim != 1:
            self._run_words(words, 0, n)
            return self
        ops = arr & _U(_OP_MASK)
        cand = np.isin(ops, _BULK_OPS)
        edges = np.diff(cand.view(np.int8), prepend=np.int8(0), append=np.int8(0))
        pos = 0
        for s, e in zip(np.flatnonzero(edges == 1).tolist(),
                        np.flatnonzero(edges == -1).tolist(), strict=True):
            if e - s >= BULK_MIN:
                self._run_words(words, pos, s)
                self._bulk_run(words, arr, ops, s, e)
                pos = e
        self._run_words(words, pos, n)
        return self

    def _run_words(self, words, i: int, n: int) -> None:
        """words[i:n] (a list, or a uint64 array) one by one (gather stretches
        together)."""
        if isinstance(words, np.ndarray):
            words, i, n = words[i:n].tolist(), 0, n - i
        while i < n:
            w = words[i]
            if (type(w) is int and w & _OP_MASK == _XROWS_OP and i + 3 < n
                    and (j := self._gather(words, i, n)) > i):
                i = j
                continue
            self.execute(w)
            i += 1

    def _bulk_run(self, words, arr: np.ndarray, ops: np.ndarray, s: int,
                  e: int) -> None:
        """Run words[s:e], MAC, XROWS, MOVW and CLEAR words only: its tap loops (each
        stretch of at least BULK_MIN words that conform, below) by _taps, the rest word
        by word. The operand field F = (start, width) is the destination of the run's
        first legal MOVW from a MAP into the CAP (else the operand of its first legal
        MAC). A word conforms when it is legal and: an XROWS (reserved bits zero) with
        a conforming MOVW after it; a MOVW from a MAP into F of the CAP, right after an
        XROWS, its row rules met with that XROWS's rows; a CLEAR of F; a MAC reading F
        (its width, either signedness) into a destination apart from F."""
        sub, o = arr[s:e], ops[s:e]
        L = e - s
        is_x, is_m = o == _U(_XROWS_OP), o == _U(_MOVW_OP)
        nx = ~is_x
        uw, inv = np.unique(sub[nx], return_inverse=True)
        seen, ents = self._seen, []
        for w in uw.tolist():
            hit = seen.get(w)
            ents.append(hit if hit is not None else self._entry(w))
        uidx = np.full(L, len(ents), dtype=np.int64)      # XROWS: past the entries
        uidx[nx] = inv
        F = None
        for op, pick in ((_MOVW_OP, lambda i: i.dap == 0 and i.sap), (_MAC_OP, None)):
            tried = set()
            for j in uidx[o == _U(op)].tolist():          # the first that fits, in order
                if j in tried:
                    continue
                tried.add(j)
                ins = ents[j][0]
                if ents[j][1] is None and (pick is None or pick(ins)):
                    F = (ins.d, ins.n) if pick else (ins.a, ins.n)
                    break
            if F is not None:
                break
        if F is None:
            self._run_words(words, s, e)
            return
        info = self._bulk_info(ents, F)
        ok = info[0][uidx] > 0
        # MOVW: after an XROWS with zero reserved bits, its row rules met
        xg = is_x & ((sub & _U(_XROWS_GAPS)) == 0)
        mp = np.flatnonzero(ok & is_m)
        mp = mp[(mp > 0) & xg[mp - 1]] if len(mp) else mp
        good_m = np.zeros(L, dtype=bool)
        if len(mp):
            srow, drow, stride = _xrows_fields(sub[mp - 1])
            um = uidx[mp]
            rows_ok = (movw_src_rows_ok(srow, stride, info[1][um], info[5][um])
                       & movw_dst_rows_ok(drow, info[1][um], self.cfg.ap.rows))
            good_m[mp[rows_ok]] = True
        ok &= ~is_m | good_m
        ok &= nx
        ok[:-1] |= is_x[:-1] & good_m[1:]
        edges = np.diff(ok.view(np.int8), prepend=np.int8(0), append=np.int8(0))
        pos = 0
        for a, b in zip(np.flatnonzero(edges == 1).tolist(),
                        np.flatnonzero(edges == -1).tolist(), strict=True):
            if b - a < BULK_MIN:
                continue
            u = uidx[a:b]
            dk = np.unique(info[6][u[info[0][u] == _K_MAC]])
            spans = [(int(k) >> 8, int(k) & 255) for k in dk.tolist()]
            if any(d0 < d1 + m1 and d1 < d0 + m0
                   for i, (d0, m0) in enumerate(spans) for d1, m1 in spans[i + 1:]):
                continue            # destinations overlapping other ones: word by word
            if int(info[1][u].sum()) > BULK_RATIO * (b - a):
                continue            # long gathers: their cached plans (_gather) are faster
            self._run_words(words, s + pos, s + a)
            self._taps(sub[a:b], u, info, ents, F)
            self.bulk_words += b - a
            pos = b
        self._run_words(words, s + pos, e)

    def _bulk_info(self, ents: list, F: tuple[int, int]) -> tuple:
        """Per distinct word (and a last entry for XROWS), as arrays: its kind (0: does
        not conform, _K_*), MOVW's count, source AP and column, MAC's signedness and
        imm, MOVW's source AP rows, MAC's destination (d << 8 | m)."""
        Fd, Fn = F
        fcols = ((1 << Fn) - 1) << Fd
        n = len(ents) + 1
        kind, cnt, sap, col, sg, imm, srows, dst = (np.zeros(n, dtype=np.int64)
                                                    for _ in range(8))
        kind[-1] = _K_XROWS
        for j, e in enumerate(ents):
            ins = e[0]
            if e[1] is not None:
                continue
            op = ins.op
            if op == Opc.MOVW:
                if ins.dap == 0 and ins.sap and ins.d == Fd and ins.n == Fn:
                    kind[j], cnt[j], sap[j], col[j], srows[j] = (
                        _K_MOVW, ins.count, ins.sap, ins.a, e[8][0])
            elif op == Opc.CLEAR:
                if ins.d == Fd and ins.n == Fn:
                    kind[j] = _K_CLEAR
            elif op == Opc.MAC:
                if ins.a == Fd and ins.n == Fn and not ((1 << ins.m) - 1) << ins.d & fcols:
                    kind[j], sg[j], imm[j], dst[j] = _K_MAC, ins.s, ins.imm, ins.d << 8 | ins.m
        return kind, cnt, sap, col, sg, srows, dst, imm

    def _map_fields(self, sap: np.ndarray, col: np.ndarray, n: int,
                    rows: np.ndarray) -> np.ndarray:
        """Field [col[i], col[i] + n) of row rows[i] of MAP sap[i], for every i, as
        uint64."""
        out = np.empty(len(rows), dtype=np.uint64)
        kinds = np.unique(sap).tolist()
        for k in kinds:
            sel = np.flatnonzero(sap == k) if len(kinds) > 1 else slice(None)
            words = self.maps[k - 1].words
            flat = words.reshape(-1)
            c = col[sel]
            lin = rows[sel] * words.shape[1] + (c >> 6)
            b = (c & 63).astype(np.uint64)
            v = flat[lin] >> b
            over = np.flatnonzero((c & 63) + n > 64)      # fields across two words
            if len(over):
                v[over] |= flat[lin[over] + 1] << (_U(64) - b[over])
            if n < 64:
                v &= _U((1 << n) - 1)
            out[sel] = v
        return out

    def _taps(self, seg: np.ndarray, u: np.ndarray, info: tuple, ents: list,
              F: tuple[int, int]) -> None:
        """Apply the conforming words `seg` (their distinct words' indices `u`) at once:
        the operand field F's successive contents over the enabled rows (each MAC reads
        the content after the writes before it: the last write of each row, forward
        filled), every MAC's product summed into its destination by one matrix
        product, F's final content, the transfer rows and the counters. Splits the words
        (before a MAC) when the contents would exceed BULK_CELLS values."""
        kind = info[0][u]
        is_w = (kind == _K_MOVW) | (kind == _K_CLEAR)
        mpos = np.flatnonzero(kind == _K_MAC)
        cw = np.cumsum(is_w)
        U, ucol = np.unique(cw[mpos], return_inverse=True)   # F's contents the MACs read
        A = self._cap
        lo, hi = A.lo, A.hi
        nR = max(0, hi - lo)
        if len(U) > 1 and (len(U) + 2) * nR > BULK_CELLS:
            cut = int(mpos[np.searchsorted(ucol, len(U) // 2)])
            self._taps(seg[:cut], u[:cut], info, ents, F)
            self._taps(seg[cut:], u[cut:], info, ents, F)
            return
        self._settle()
        self._x_key = None
        Fd, Fn = F
        nU = len(U)
        # F's writes in order, each given slots (a MOVW one per word, a CLEAR one 0);
        # the MOVWs' elements (word k: slot, CAP row, value) from their XROWS before
        wpos = np.flatnonzero(is_w)
        wm = kind[wpos] == _K_MOVW
        mw = wpos[wm]
        mu = u[mw]
        srow, drow, stride = _xrows_fields(seg[mw - 1])
        cnt = info[1][mu]
        size = np.ones(len(wpos), dtype=np.int64)
        size[wm] = cnt
        base = np.cumsum(size) - size
        E = int(cnt.sum())
        offs = np.arange(E) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        slot = np.repeat(base[wm], cnt) + offs
        rows = np.repeat(drow, cnt) + offs
        vals = np.zeros(int(size.sum()), dtype=np.uint64)
        if E:
            vals[slot] = self._map_fields(np.repeat(info[2][mu], cnt),
                                          np.repeat(info[3][mu], cnt), Fn,
                                          np.repeat(srow, cnt) + offs * np.repeat(stride, cnt))
            self.xrows = (int(srow[-1]), int(drow[-1]), int(stride[-1]))
        # F's contents over the enabled rows as indices into `content` (0..nR-1: before
        # the words, nR + slot: a write's): row 0 before the words, 1..nU what the MACs
        # read, nU + 1 after the words; each the last write of each row, forward filled
        # (slots rise with time, so the last is the largest)
        jw = np.searchsorted(U, np.arange(len(wpos)), side="right") + 1  # first row showing
        last = np.full((nU + 2, nR), -1, dtype=np.int64)                # each write
        last[0] = np.arange(nR)
        inside = (rows >= lo) & (rows < hi)
        ei = np.flatnonzero(inside)
        key = np.repeat(jw[wm], cnt)[ei] * nR + (rows[ei] - lo)
        idx = slot[ei] + nR
        flat = last.reshape(-1)
        flat[key] = idx
        if not (flat[key] >= idx).all():     # a row written twice for the same content:
            np.maximum.at(flat, key, idx)    # the later write
        if not wm.all():                     # CLEARs: every enabled row
            cl = np.full(nU + 2, -1, dtype=np.int64)
            np.maximum.at(cl, jw[~wm], base[~wm] + nR)
            np.maximum(last, cl[:, None], out=last)
        np.maximum.accumulate(last, axis=0, out=last)
        content = np.concatenate([A.get(Fd, Fn, slice(lo, hi)), vals])
        rs = slice(lo, hi)
        if len(mpos) and nR:
            X = content[last[1:nU + 1]].astype(np.int64)     # (contents, rows)
            mu = u[mpos]
            dk, dcol = np.unique(info[6][mu], return_inverse=True)
            sg, imm = info[4][mu], info[7][mu]
            Y = np.zeros((nR, len(dk)), dtype=np.int64)
            for sflag in (0, 1):
                sel = np.flatnonzero(sg == sflag)
                if not len(sel):
                    continue
                xkey = (Fd, Fn, bool(sflag))
                if xkey not in self._unit:
                    self._unit[xkey] = (Instr(op=Opc.MAC, s=bool(sflag), d=0, a=Fd, n=Fn,
                                              m=1, imm=1), OPCODES[Opc.MAC])
                unit, spec = self._unit[xkey]
                Xv = spec.effect(unit, {"d": np.zeros_like(X), "a": X}, _ONES[:nR])["d"]
                W = np.zeros((nU, len(dk)), dtype=np.int64)
                np.add.at(W, (ucol[sel], dcol[sel]), imm[sel])
                if Fn < F64_BITS and int(np.abs(W).sum(axis=0).max()) < 1 << (F64_BITS - Fn):
                    # |Xv| < 2^Fn: every partial sum is an integer below 2^53, exact
                    # in float64 (a BLAS product)
                    Y += (Xv.T.astype(np.float64) @ W.astype(np.float64)).astype(np.int64)
                else:
                    Y += Xv.T @ W        # int64: wraps mod 2^64, a multiple of every 2^m
            for j, k in enumerate(dk.tolist()):
                d, m = k >> 8, k & 255
                A.put(d, m, A.get(d, m, rs).astype(np.int64) + Y[:, j], rs)
        if nR:                                          # F's final content
            A.put(Fd, Fn, content[last[-1]], rs)
        out = np.flatnonzero(~inside)
        if len(out):                         # rows a MOVW writes outside the enabled ones
            lw = np.full(self.cfg.ap.rows, -1, dtype=np.int64)
            np.maximum.at(lw, rows[out], slot[out])
            r = np.flatnonzero(lw >= 0)
            A.put(Fd, Fn, vals[lw[r]], r)
        en = self.enabled                               # the counters
        per = np.bincount(u, minlength=len(ents) + 1)
        if per[-1]:
            xe = self._xrows_entry
            if xe is None:
                xe = self._xrows_entry = self._entry(int(seg[mw[0] - 1]), cache=False)
            ents_x = [(xe, int(per[-1]))]
        else:
            ents_x = []
        for e, c in ents_x + [(ents[j], int(per[j])) for j in np.flatnonzero(per[:-1])]:
            if not e[4]:
                self._dirty.append(e)
            e[4] += c
            e[5] += en * c

    def _xrows(self, word: int) -> bool:
        """An XROWS word: set the transfer rows and tally it (True), or False if its
        reserved bits are set (execute's general path then says so). Every legal XROWS
        costs the same (checked in tests/test_fast.py), so one entry tallies them all."""
        if word & _XROWS_GAPS:
            return False
        self.xrows = ((word >> _SROW[0]) & _SROW[1], (word >> _DROW[0]) & _DROW[1],
                      (word >> _STRIDE[0]) & _STRIDE[1])
        e = self._xrows_entry
        if e is None:
            e = self._xrows_entry = self._entry(word, cache=False)
        if not e[4]:
            self._dirty.append(e)
        e[4] += 1
        e[5] += self.enabled
        return True

    def _gather(self, words: list, i: int, n: int) -> int:
        """Run the XROWS + MOVW pairs from words[i] on that move MAP fields into the CAP,
        every one legal, no two of them writing the same cell (the stretch ends before
        a pair that would), as a few fancy-index copies per field: the same result as
        one pair after the other, as no pair reads what another writes. Returns the
        index after them (i: none run), words[n:] not looked at. The plan of a stretch
        depends on its words only (and the configuration): it is cached under them."""
        k = i
        while (k + 1 < n and type(words[k]) is int and words[k] & _OP_MASK == _XROWS_OP
               and type(words[k + 1]) is int and words[k + 1] & _OP_MASK == _MOVW_OP):
            k += 2
        if k - i < 4:
            return i
        key = tuple(words[i:k])
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            plan = self._plans[key] = self._gather_plan(key)
        used, moves, tallies, xrows, cols = plan
        if not used:
            return i
        if cols & self._pend_cols:
            self._settle()
        self._x_key = None
        for d, nbits, src, dst, origins, which in moves:
            if which is None:
                sap, col = origins[0]
                vals = self.maps[sap - 1].get(col, nbits, src)
            else:
                vals = np.zeros(len(dst), dtype=np.uint64)
                for j, (sap, col) in enumerate(origins):
                    sel = which == j
                    vals[sel] = self.maps[sap - 1].get(col, nbits, src[sel])
            self._cap.put(d, nbits, vals, dst)
        self.xrows = xrows
        en = self.enabled
        for e, cnt in tallies:                  # the counters: XROWS, then each MOVW
            if not e[4]:
                self._dirty.append(e)
            e[4] += cnt
            e[5] += en * cnt
        return i + used

    def _gather_plan(self, words: tuple) -> tuple:
        """(words used, moves, (entry, executions) tallies, the last transfer rows, the
        CAP columns written) of the longest gather stretch at the start of `words`
        (XROWS, MOVW alternating); 0 words used if it has fewer than 2 pairs."""
        pairs = []
        # destination field -> [end of the rows written so far if they rise, else None;
        # the (drow, count) written; their rows as a bool array once they do not rise]
        occ: dict[tuple[int, int], list] = {}
        seen, rows_cap = self._seen, self.cfg.ap.rows
        k, n = 0, len(words)
        while k + 1 < n:
            x, m = words[k], words[k + 1]
            if x & _XROWS_GAPS:
                break
            hit = seen.get(m)
            if hit is None:
                hit = self._entry(m)
            ins = hit[0]
            if hit[1] is not None or ins.op != Opc.MOVW or ins.dap != 0 or ins.sap == 0:
                break
            srow, drow, stride = ((x >> _SROW[0]) & _SROW[1], (x >> _DROW[0]) & _DROW[1],
                                  (x >> _STRIDE[0]) & _STRIDE[1])
            if not (movw_src_rows_ok(srow, stride, ins.count, hit[8][0])
                    and movw_dst_rows_ok(drow, ins.count, rows_cap)):
                break                            # an illegal MOVW: execute says why
            field = (ins.d, ins.n)
            st = occ.get(field)
            if st is None:
                if any(d0 < ins.d + ins.n and ins.d < d0 + n0 for d0, n0 in occ):
                    break                        # a field overlapping another one
                st = occ[field] = [0, [], None]
            if st[0] is not None and drow >= st[0]:     # rows rising: none written yet
                st[0] = drow + ins.count
                st[1].append((drow, ins.count))
            else:
                written: np.ndarray | None = st[2]
                if written is None:
                    written = np.zeros(rows_cap, dtype=bool)
                    for r0, c0 in st[1]:
                        written[r0:r0 + c0] = True
                    st[0], st[2] = None, written
                if written[drow:drow + ins.count].any():
                    break                        # cells an earlier pair wrote
                written[drow:drow + ins.count] = True
            pairs.append((hit, srow, drow, stride))
            k += 2
        if len(pairs) < 2:
            return 0, (), (), (0, 0, 0), 0
        by_dst: dict[tuple[int, int], list] = {}   # destination field -> its pairs
        for p in pairs:
            by_dst.setdefault((p[0][0].d, p[0][0].n), []).append(p)
        moves = []
        for group in by_dst.values():
            cnt = np.array([p[0][0].count for p in group])
            total = int(cnt.sum())
            offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            dst = np.repeat([p[2] for p in group], cnt) + offs
            src = np.repeat([p[1] for p in group], cnt) + offs * np.repeat(
                [p[3] for p in group], cnt)
            index: dict[tuple[int, int], int] = {}       # (MAP, source column) -> index
            pick = [index.setdefault((p[0][0].sap, p[0][0].a), len(index)) for p in group]
            moves.append((group[0][0][0].d, group[0][0][0].n, src, dst, list(index),
                          np.repeat(pick, cnt) if len(index) > 1 else None))
        xe = self._xrows_entry
        if xe is None:
            xe = self._xrows_entry = self._entry(words[0], cache=False)
        tallies: dict[int, list] = {id(xe): [xe, len(pairs)]}
        for p in pairs:
            tallies.setdefault(id(p[0]), [p[0], 0])[1] += 1
        cols = 0
        for d, nbits in by_dst:
            cols |= ((1 << nbits) - 1) << d
        return (2 * len(pairs), tuple(moves), tuple((e, c) for e, c in tallies.values()),
                pairs[-1][1:], cols)

    def _entry(self, word: int | Instr, cache: bool = True) -> list:
        """The cached facts of a word: [Instr, why it is illegal (MOVW: by the rules
        that do not read the transfer rows), counts, activity profile, legal executions
        not yet tallied, enabled rows summed over them, its opcode table entry, its
        operand columns, (MOVW) the rows of its source and destination APs, the CAP
        columns it reads or writes (a bit mask)]."""
        ins = decode(word) if isinstance(word, int) else word
        if ins.op == Opc.MOVW:
            reason = validate(ins, self.cfg.ap, self.cfg, (0, 0, 0))
            if reason is not None and reason == self._xrows_reason(ins, (0, 0, 0)):
                reason = None         # a row rule: decided with the rows at execution
        else:
            reason = validate(ins, self.cfg.ap, self.cfg, self.xrows)
        spec = OPCODES.get(ins.op)         # type: ignore[call-overload]
        cols = spec.columns(ins) if spec is not None else {}
        aps = ((self._ap(ins.sap).cfg.rows, self._ap(ins.dap).cfg.rows)
               if ins.op == Opc.MOVW and reason is None else None)
        cap_cols = 0                # the CAP columns it reads or writes
        if ins.op == Opc.MOVW:
            for ap, (start, width) in ((ins.sap, (ins.a, ins.n)), (ins.dap, (ins.d, ins.n))):
                if ap == 0:
                    cap_cols |= ((1 << width) - 1) << start
        else:
            for start, width in cols.values():
                cap_cols |= ((1 << width) - 1) << start
        if reason is None:
            w = word if isinstance(word, int) else encode(ins)
            entry = [ins, None, counts(w, self.cfg.ap), profile(w, self.cfg.ap), 0, 0,
                     spec, cols, aps, cap_cols]
        else:
            entry = [ins, reason, None, None, 0, 0, spec, cols, aps, cap_cols]
        if cache:
            if len(self._seen) > 1 << 16:
                self._flush()
                self._seen.clear()
            self._seen[word] = entry
        return entry

    def _xrows_reason(self, ins: Instr, xrows) -> str | None:
        """The first of MOVW's row rules `ins` breaks with these transfer rows (its other
        rules read the word only, and come first)."""
        t = Target(self.cfg.ap, self.cfg, tuple(xrows))
        cols = OPCODES[Opc.MOVW].columns(ins)
        for r in _XROW_RULES:
            if not r.ok(ins, t, cols):
                return r.why(ins, t, cols)
        return None

    def execute(self, word: int | Instr) -> None:
        if type(word) is int and word & _OP_MASK == _XROWS_OP and self._xrows(word):
            return                 # (XROWS words are all different: none is cached)
        hit = self._seen.get(word)
        if hit is None:   # decode + validate + counts: ~50 us, and programs repeat words
            hit = self._entry(word)
        ins, reason = hit[0], hit[1]
        op = ins.op
        if reason is None and op == Opc.MOVW:
            srow, drow, stride = self.xrows      # MOVW's row rules (src_rows, dst_rows)
            src_rows, dst_rows = hit[8]          # hold: skip them; else the rules say why
            if not (srow + (ins.count - 1) * stride < src_rows
                    and drow + ins.count <= dst_rows):
                reason = self._xrows_reason(ins, self.xrows)
        if reason is not None:
            self.error, self.last_error = True, reason
            self._errors += 1
            return
        if op == Opc.MAC:
            self._mac(ins, hit)
        elif op == Opc.XROWS:
            self.xrows = (ins.srow, ins.drow, ins.stride)
        elif op == Opc.ROWS:
            self._cap.lo, self._cap.hi = ins.lo, ins.hi
        else:
            if hit[9]:                  # it reads or writes CAP columns: deferred MACs
                if hit[9] & self._pend_cols:    # into them are applied first, and X's
                    self._settle()              # last operand is no longer current
                self._x_key = None
            if op == Opc.MOVW:
                self._movw(ins)
            elif hit[6].effect is not None:          # (NOP: no effect)
                self._compute(ins, hit[6], hit[7])
        if not hit[4]:
            self._dirty.append(hit)
        hit[4] += 1
        hit[5] += self.enabled
        if op == Opc.ROWS:      # rows enabled from the next instruction on
            self.enabled = ins.hi - ins.lo

    def _ap(self, index: int) -> FastAP:
        return self._cap if index == 0 else self.maps[index - 1]

    def _movw(self, ins: Instr) -> None:
        src, dst = self._ap(ins.sap), self._ap(ins.dap)
        srow, drow, stride = self.xrows
        rows = (slice(srow, srow + stride * ins.count, stride) if stride
                else np.full(ins.count, srow))
        dst.put(ins.d, ins.n, src.get(ins.a, ins.n, rows), slice(drow, drow + ins.count))

    def _mac(self, ins: Instr, hit: list) -> None:
        """Defer a legal MAC (module docstring): X gets its operand's value unless the
        last column is that (nothing wrote the CAP since), W its imm."""
        A = self._cap
        if A.hi <= A.lo:       # no row enabled
            return
        rows = (A.lo, A.hi)
        dkey = (ins.d, ins.m)
        if self._pend_rows is not None:
            dcols = hit[9] & ~(((1 << ins.n) - 1) << ins.a)
            if (self._pend_rows != rows or hit[9] & self._pend_cols & ~dcols
                    or (dcols & self._pend_cols and dkey not in self._pend_dst)
                    or len(self._pend_x) >= MAC_BATCH):
                self._settle()     # other rows, an operand or destination overlapping
        self._pend_rows = rows     # a deferred destination, or X full
        xkey = (ins.a, ins.n, ins.s)
        if self._x_key != xkey:         # the operand's field as it is now (its value:
            if xkey not in self._unit:  # the effect at imm=1, taken in _settle)
                self._unit[xkey] = (Instr(op=Opc.MAC, s=ins.s, d=ins.d, a=ins.a, n=ins.n,
                                          m=ins.m, imm=1), hit[6])
            self._pend_x.append(A.get(ins.a, ins.n, slice(*rows)))
            self._pend_xkey.append(xkey)
            self._x_key = xkey
        di = self._pend_dst.setdefault(dkey, len(self._pend_dst))
        self._pend_cols |= ((1 << ins.m) - 1) << ins.d
        self._pend_terms.append((len(self._pend_x) - 1, di, ins.imm))

    def _settle(self) -> None:
        """Apply the deferred MACs: every destination += X @ W (mod its 2^m)."""
        if self._pend_rows is None:
            return
        rows = slice(*self._pend_rows)
        X = np.stack(self._pend_x, axis=1).astype(np.int64)
        keys = self._pend_xkey
        for xkey in set(keys):             # fields -> values, per kind of operand
            u, spec = self._unit[xkey]
            sel = [i for i, k in enumerate(keys) if k == xkey]
            part = X[:, sel]
            X[:, sel] = spec.effect(u, {"d": np.zeros_like(part), "a": part},
                                    _ONES[:len(part)])["d"]
        t = np.array(self._pend_terms, dtype=np.int64)
        W = np.zeros((X.shape[1], len(self._pend_dst)), dtype=np.int64)
        np.add.at(W, (t[:, 0], t[:, 1]), t[:, 2])
        Y = X @ W                 # int64: wraps mod 2^64, a multiple of every 2^m
        A = self._cap
        for (d, m), j in self._pend_dst.items():
            A.put(d, m, A.get(d, m, rows).astype(np.int64) + Y[:, j], rows)
        self._pend_rows, self._x_key, self._pend_cols = None, None, 0
        self._pend_x, self._pend_terms, self._pend_dst = [], [], {}
        self._pend_xkey = []

    def _compute(self, ins: Instr, spec, cols: dict) -> None:
        A = self._cap
        if A.hi <= A.lo:       # no row enabled
            return
        if ins.op == Opc.CLEAR:     # its effect is a constant: no field to read
            (start, width), = cols.values()
            A.put(start, width, spec.effect(ins, {}, None)["d"], slice(A.lo, A.hi))
            return
        if ins.op == Opc.REDUCE:    # its steps reach 2^(m-1) rows on: take all rows
            rows, en = slice(None), A.rowen
        else:
            rows, en = slice(A.lo, A.hi), _ONES[:A.hi - A.lo]
        values = {k: A.get(start, width, rows).astype(np.int64)
                  for k, (start, width) in cols.items()}
        for k, v in spec.effect(ins, values, en).items():
            start, width = cols[k]
            A.put(start, width, v, rows)
