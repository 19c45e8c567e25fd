"""The scheduler: maps the layers of an integer network graph (golden/nn/network.py) onto
the configured tiles and emits, per layer, the host program that runs it
(docs/scheduler.md).

A layer is cut into *passes*: at most R output rows of the CAP each (rows are (image,
output position) pairs over all images, or (image, channel, position) elements). A pass
stages only its receptive field into the MAPs (WRITE packets: the input values its rows
read, halo included, packed in sorted order into column slots of the MAPs), gathers
operands from the MAPs into CAP fields (XROWS + MOVW, runs of rows with a constant
source stride), computes, requantises, and the host READs the result field. When a
pass's receptive field exceeds the MAPs, its taps are split into groups (for a conv:
ranges of input channels) staged one after another while the accumulators stay in the
CAP. So the size of a layer never decides whether it runs; only one output row's fields
must fit the CAP's columns. Passes go to the tiles round-robin.

Dataflows (conv and fc layers; max pooling has one):
- `pos`: rows = (image, output position); the weights are MAC immediates broadcast to
  all rows, one MAC per nonzero weight (CSD digits set its cost), accumulators for as
  many output channels as the columns hold.
- `chan`: rows = (output channel, image, position); the input of each row is gathered,
  its weight too (from a MAP the host fills with the weights), MUL per tap and ADD into
  the accumulator: one MUL serves every channel at once. Needs a MAP for the weights.
The scheduler predicts the cycles of both from the cost model and takes the cheaper,
unless the precision plan names one. An input with activation blocks (docs/network.md)
is staged at its tensor's bits; each tap is gathered and multiplied at its channel's
width and added at bit k of the accumulator (`Scheduler.tap_widths`): one instruction
stream mixing widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bfimna.golden.host.program import MAX_COUNT
from bfimna.golden.nn.network import QLayer
from bfimna.golden.spec import costs
from bfimna.golden.spec.config import APConfig, Config
from bfimna.golden.spec.isa import (
    OPCODES,
    RESERVED_COLS,
    XROWS_FORMAT,
    Instr,
    Opc,
    encode,
    movw_cycles,
    movw_dst_rows_ok,
    movw_src_rows_ok,
    validate,
)
from bfimna.golden.spec.uops import ACTIVITY_KEYS
from bfimna.sched.resident import Lanes, LayerResidency

DATAFLOWS = ("pos", "chan")
TRIAL_TAPS = 32        # a dataflow trial costs this many taps and extrapolates


class ScheduleError(ValueError):
    """A layer does not fit the configured hardware (the message says what is short)."""


def instr_cycles(word: int, cfg: Config) -> int:
    """Exact cycles of one legal instruction word on a tile (the cost model)."""
    return costs.instr_cycles(word, cfg.ap)


# validated, encoded words and their costs per configuration: (op, operands, xrows) ->
# (word, cycles, activity per enabled row, fixed activity but cycles). The entry keeps
# the Config alive, so its id() is not reused while cached; each table is bounded.
_WORD_CACHE: dict[int, tuple[Config, dict[tuple, tuple]]] = {}
_WORD_CACHE_MAX = 1 << 18


def _checked_words(cfg: Config) -> dict[tuple, tuple]:
    entry = _WORD_CACHE.get(id(cfg))
    if entry is None or entry[0] is not cfg:
        entry = _WORD_CACHE[id(cfg)] = (cfg, {})
    if len(entry[1]) > _WORD_CACHE_MAX:
        entry[1].clear()
    return entry[1]


def _linked(ap, row, col, valid) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The gather rule's linked pairs: ranges [a, b) of pairs (r, r + 1) that belong to
    one run (rows a..b), and the row steps d. A pair links iff both rows have a source
    in one AP and column, the step is in 0..255, and it starts a run or repeats the
    run's step: in segments of equal (ok, step), every pair of an ok segment links but
    maybe its first (which breaks a run of another step)."""
    n = len(valid)
    d = row[1:] - row[:-1]
    ok = valid[:-1] & valid[1:] & (ap[1:] == ap[:-1]) & (col[1:] == col[:-1]) & \
        (d >= 0) & (d <= 255)
    change = np.flatnonzero((ok[1:] != ok[:-1]) | (d[1:] != d[:-1])) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n - 1]))
    seg_ok = ok[starts]
    linked: list[tuple[int, int]] = []
    prev = False
    for a, b, good in zip(starts.tolist(), ends.tolist(), seg_ok.tolist(), strict=True):
        if not good:
            prev = False
            continue
        start = a if not prev else a + 1        # a new step after a linked pair breaks
        if start < b:
            if linked and linked[-1][1] == start:
                linked[-1] = (linked[-1][0], b)
            else:
                linked.append((start, b))
            prev = True
        else:
            prev = False
    return linked, d


def runs(ap: np.ndarray, row: np.ndarray, col: np.ndarray, valid: np.ndarray) -> list:
    """Rows [0, n) as gather runs: (start, length, stride) for consecutive rows with a
    source (valid) in one AP and column whose source rows step by one constant stride in
    0..255 (the first pair of a run sets it). Rows without a source are left out."""
    n = len(valid)
    if n <= 1:
        return [(0, 1, 0)] if n and valid[0] else []
    linked, d = _linked(ap, row, col, valid)
    out: list[tuple[int, int, int]] = []
    r = 0
    for a, b in linked:                          # pairs a..b-1 link rows a..b
        out.extend((int(i), 1, 0) for i in np.flatnonzero(valid[r:a]) + r)
        out.append((a, b - a + 1, int(d[a])))
        r = b + 1
    out.extend((int(i), 1, 0) for i in np.flatnonzero(valid[r:]) + r)
    return out


def run_count(ap: np.ndarray, row: np.ndarray, col: np.ndarray,
              valid: np.ndarray) -> tuple[int, int]:
    """(runs, rows with a source) of `runs` without listing them: all a gather's words
    and cycles depend on (prediction)."""
    n_valid = int(np.count_nonzero(valid))
    if len(valid) <= 1:
        return n_valid, n_valid
    linked, _ = _linked(ap, row, col, valid)
    return n_valid - sum(b - a for a, b in linked), n_valid


def run_counts(ap: np.ndarray, row: np.ndarray, col: np.ndarray,
               valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """run_count of every line of (T, n) arrays at once (prediction of many gathers):
    (runs, rows with a source), each of length T. The rule of _linked in arrays: an ok
    segment (equal ok and step) of L pairs links L - prev of them, prev = 1 iff the
    segment before it is ok and linked a pair; so within a chain of ok segments prev is 0
    at the chain's start, 1 after a segment of 2 or more pairs, and flips after a
    segment of one pair."""
    T, n = valid.shape
    n_valid = np.count_nonzero(valid, axis=1)
    if n <= 1 or T == 0:
        return n_valid, n_valid
    d = row[:, 1:] - row[:, :-1]
    ok = valid[:, :-1] & valid[:, 1:] & (ap[:, 1:] == ap[:, :-1]) & \
        (col[:, 1:] == col[:, :-1]) & (d >= 0) & (d <= 255)
    start = np.ones(ok.shape, dtype=bool)
    start[:, 1:] = (ok[:, 1:] != ok[:, :-1]) | (d[:, 1:] != d[:, :-1])
    first = np.flatnonzero(start.ravel())                 # segments, in line order
    length = np.diff(np.append(first, ok.size))
    good = ok.ravel()[first]
    line = first // (n - 1)
    idx = np.arange(len(first))
    # a chain starts at a good segment after a bad one or at a line's start
    prev_good = np.zeros(len(first), dtype=bool)
    prev_good[1:] = good[:-1] & (line[1:] == line[:-1])
    chain_start = good & ~prev_good
    # anchors: chain starts (prev 0) and segments after one of >= 2 pairs (prev 1)
    after_long = np.zeros(len(first), dtype=bool)
    after_long[1:] = prev_good[1:] & (length[:-1] >= 2)
    anchor = chain_start | after_long
    last = np.maximum.accumulate(np.where(anchor, idx, 0))
    prev = np.where(chain_start[last], 0, 1) ^ ((idx - last) & 1)
    linked = np.where(good, length - prev, 0)
    return n_valid - np.bincount(line, weights=linked, minlength=T).astype(np.int64), n_valid


_TRANSFERS = (Opc.XROWS, Opc.MOVW)
N_ACT = len(ACTIVITY_KEYS)
_CYC, _ROW_BITS = ACTIVITY_KEYS.index("cycles"), ACTIVITY_KEYS.index("row_bits")


def _transfer_cycles(op: Opc, kw: dict) -> int:
    """Cycles of an XROWS (a register write: one cycle whatever its operands, from the
    cost model) or a MOVW (count + 1, from its opcode table entry, golden/spec/isa.py)."""
    spec = OPCODES[op]
    if spec.counts is not None:
        return int(spec.counts(Instr(op=op, **kw))["cycles"])
    return _XROWS_CYCLES


_XROWS_WORD = encode(Instr(op=Opc.XROWS))       # the XROWS fields, for Emitter._gather_pair
_XROWS_SH = tuple(XROWS_FORMAT[f].lsb for f in ("srow", "drow", "stride"))
_XROWS_LIM = tuple(1 << XROWS_FORMAT[f].width for f in ("srow", "drow", "stride"))
_XROWS_CYCLES = costs.counts(encode(Instr(op=Opc.XROWS, srow=0, drow=0, stride=0)),
                             APConfig(rows=1, cols=2, dims=2, counter_bits=8))[0]


def _coalesced(runs: list) -> list:
    """(ap, row, count, col) runs with adjacent rows of one lane merged."""
    out: list = []
    for ap, row, count, col in sorted(runs, key=lambda r: (r[0], r[3], r[1])):
        if out and out[-1][0] == ap and out[-1][3] == col and out[-1][1] + out[-1][2] == row:
            out[-1] = (ap, out[-1][1], out[-1][2] + count, col)
        else:
            out.append((ap, row, count, col))
    return out


class Emitter:
    """Instruction words of one pass, each checked as the hardware will check it, with
    their exact cycles and activity (golden/spec/costs.py profile: what energy depends
    on). `count_only`: keep the number of words and their costs, not the words
    (prediction).

    The activity of a word is a fixed part plus a part per enabled CAP row; the rows are
    those of the pass's last ROWS (every pass sets them before any other word, as the
    tile keeps them from the pass before). Per-row parts accumulate in `_per` and are
    multiplied out when the rows change or the costs are taken."""

    def __init__(self, cfg: Config, count_only: bool = False):
        self.cfg = cfg
        self.words: list[int] = []
        self.n_words = 0
        self.cycles = 0
        self.act = np.zeros(N_ACT, dtype=np.int64)   # fixed parts and flushed row parts
        self._per = np.zeros(N_ACT, dtype=np.int64)  # per-row parts at self.rows
        self.rows: int | None = None                 # enabled CAP rows (None: not set yet)
        self.count_only = count_only
        self.xrows = (0, 0, 0)
        self.cache = _checked_words(cfg)
        self.blocks: dict = {}

    def _flush(self) -> None:
        if self._per.any():
            if self.rows is None:
                raise ScheduleError("scheduler emitted a row operation before ROWS")
            self.act += self.rows * self._per
            self._per[:] = 0

    def __call__(self, op: Opc, **kw) -> None:
        if self.count_only and op in _TRANSFERS:     # prediction: row addressing and
            if op == Opc.XROWS:                      # transfers cost what their opcode
                self.xrows = (kw["srow"], kw["drow"], kw["stride"])   # table says; their
            else:                                    # legality is checked where the words
                self.act[_ROW_BITS] += 2 * kw["n"] * kw["count"]      # are built
            self.n_words += 1                                         # (execution)
            self.cycles += _transfer_cycles(op, kw)
            return
        hit = self._checked(op, kw)
        if op == Opc.XROWS:
            self.xrows = (kw["srow"], kw["drow"], kw["stride"])
        elif op == Opc.ROWS:
            self._flush()
            self.rows = kw["hi"] - kw["lo"]
        if not self.count_only:
            self.words.append(hit[0])
        self.n_words += 1
        self.cycles += hit[1]
        if hit[2] is not None:
            self._per += hit[2]
        if hit[3] is not None:
            self.act += hit[3]

    def _checked(self, op: Opc, kw: dict) -> tuple:
        """(word, cycles, activity per enabled row or None, fixed activity but cycles or
        None) of a legal instruction; ScheduleError if it is illegal."""
        key = (op, tuple(kw.items()), self.xrows if op == Opc.MOVW else None)
        hit = self.cache.get(key)
        if hit is None:   # validate + encode cost ~40 us; passes repeat instructions a lot
            ins = Instr(op=op, **kw)
            why = validate(ins, self.cfg.ap, self.cfg, self.xrows)
            if why is not None:
                raise ScheduleError(f"scheduler emitted an illegal {op.name} ({why}): {kw}")
            word = encode(ins)
            fixed, per = costs.profile(word, self.cfg.ap)
            rest = np.array(fixed, dtype=np.int64)
            rest[_CYC] = 0                             # cycles are counted as an int
            hit = self.cache[key] = (word, fixed[_CYC],
                                     np.array(per, dtype=np.int64) if any(per) else None,
                                     rest if rest.any() else None)
        return hit

    def tap_loop(self, key, taps: list, block_of: Callable, W: np.ndarray,
                 nbits: np.ndarray, kbits: np.ndarray, a: int, ab: int) -> None:
        """For each tap i of `taps`: the block `block_of(taps[i])` names ((key, make), as
        `block` takes them), then `MAC d=g*ab+kbits[i], a, imm=W[g, i], n=nbits[i],
        m=ab-kbits[i]` for every g with W[g, i] != 0, g rising. The same words, cycles
        and activity as that loop through `block` and __call__ (tests/test_fast.py),
        built as arrays: each distinct MAC checked once (its cached word and costs), the
        blocks' words laid out once per key, taps and rows (in self.blocks)."""
        T = len(taps)
        if not T:
            return
        W = np.asarray(W, dtype=np.int64).reshape(-1, T)
        nbits, kbits = np.asarray(nbits, dtype=np.int64), np.asarray(kbits, dtype=np.int64)
        lay = None
        if not self.count_only and int(np.abs(W).max(initial=0)) < 1 << 31:
            lkey = ("tap-loop", key, np.asarray(taps, dtype=np.int64).tobytes(), self.rows)
            lay = self.blocks.get(lkey)
            if lay is None:
                parts = [self.block_cost(*block_of(t)) for t in taps]
                if all(p[4] == self.rows and not isinstance(p[0], int) for p in parts):
                    lens = np.array([len(p[0]) for p in parts], dtype=np.int64)
                    lay = self.blocks[lkey] = (
                        lens, np.array([w for p in parts for w in p[0]], dtype=np.uint64),
                        sum(p[1] for p in parts), np.sum([p[2] for p in parts], axis=0),
                        parts[-1][3])
        if lay is not None:
            tt, gg = np.nonzero(W.T != 0)                 # tap-major, g rising
            kk, nn, ww = kbits[tt], nbits[tt], W[gg, tt]
            code, inv = np.unique((((gg << 6 | kk) << 6 | nn) << 32) + ww + (1 << 31),
                                  return_inverse=True)
            try:
                hits = []
                for c in code.tolist():
                    w, c = (c & 0xFFFFFFFF) - (1 << 31), c >> 32
                    k, n, g = (c >> 6) & 63, c & 63, c >> 12
                    hits.append(self._checked(Opc.MAC, dict(d=g * ab + k, a=a, imm=w, n=n,
                                                            m=ab - k)))
            except ScheduleError:
                lay = None                  # the loop below says which MAC, in order
        if lay is None:
            for i, t in enumerate(taps):
                self.block(*block_of(t))
                k, n = int(kbits[i]), int(nbits[i])
                for g in range(W.shape[0]):
                    wv = int(W[g, i])
                    if wv:
                        self(Opc.MAC, d=g * ab + k, a=a, imm=wv, n=n, m=ab - k)
            return
        lens, gw, cycles, act, xrows = lay
        per_tap = np.bincount(tt, minlength=T)
        tot = lens + per_tap
        start = np.cumsum(tot) - tot
        out = np.empty(int(tot.sum()), dtype=np.uint64)
        out[np.repeat(start, lens) + np.arange(len(gw))
            - np.repeat(np.cumsum(lens) - lens, lens)] = gw
        out[(start + lens)[tt] + np.arange(len(tt))
            - np.repeat(np.cumsum(per_tap) - per_tap, per_tap)] = np.array(
            [h[0] for h in hits], dtype=np.uint64)[inv]
        cnt = np.bincount(inv, minlength=len(hits))
        zero = np.zeros(N_ACT, dtype=np.int64)
        self.words.extend(out.tolist())
        self.n_words += len(out)
        self.cycles += cycles + int(cnt @ np.array([h[1] for h in hits], dtype=np.int64))
        self.act += act + cnt @ np.array([zero if h[3] is None else h[3] for h in hits])
        self._per += cnt @ np.array([zero if h[2] is None else h[2] for h in hits])
        self.xrows = xrows

    def block_cost(self, key, make) -> tuple:
        """(words or their number, cycles, activity, xrows after, rows after, what make
        returned) of the block `make(emitter)` emits from this emitter's state, computed
        once per key and rows (in self.blocks)."""
        bkey = (key, self.rows)
        hit = self.blocks.get(bkey)
        if hit is None:
            sub = Emitter(self.cfg, count_only=self.count_only)
            sub.xrows, sub.rows = self.xrows, self.rows
            ret = make(sub)
            words, cycles, act = sub.take()
            hit = self.blocks[bkey] = (words, cycles, act, sub.xrows, sub.rows, ret)
        return hit

    def block(self, key, make):
        """Append a block of words that `make(emitter)` emits, computing it once per
        `key` (in self.blocks): the gathers every group of accumulators of a pass repeats,
        the requantisations of channels with the same multiplier. Returns what make
        returned."""
        words, cycles, act, xrows, rows, ret = self.block_cost(key, make)
        if isinstance(words, int):
            self.n_words += words
        else:
            self.words.extend(words)
            self.n_words += len(words)
        self.cycles += cycles
        self.act += act
        self.xrows = xrows
        if rows != self.rows:
            self._flush()
            self.rows = rows
        return ret

    def add(self, n_words: int, cycles: int, act: np.ndarray, per_row: np.ndarray) -> None:
        """Words counted elsewhere (prediction of a block of MACs): their number, cycles,
        fixed activity and activity per enabled row."""
        assert self.count_only
        self.n_words += n_words
        self.cycles += cycles
        self.act += act
        self._per += per_row

    def take(self) -> tuple[list[int] | int, int, np.ndarray]:
        """(the words, or their number when count_only; their cycles; their activity,
        ACTIVITY_KEYS order) since the last take."""
        self._flush()
        act = self.act.copy()
        act[_CYC] = self.cycles
        out = (self.n_words if self.count_only else self.words, self.cycles, act)
        self.words, self.n_words, self.cycles = [], 0, 0
        self.act[:] = 0
        return out

    def gather_runs(self, dst_col: int, width: int, ap, row, col, run_list) -> None:
        """XROWS + MOVW per run of `runs`: CAP rows [start, start + k) get bits
        [col, col + width) of their source rows."""
        if self.count_only:           # prediction: (runs, rows) from run_count
            n_runs, n_rows = run_list
            self.n_words += 2 * n_runs
            self.cycles += n_runs * (_XROWS_CYCLES + movw_cycles(0)) + n_rows
            self.act[_ROW_BITS] += 2 * width * n_rows
            return
        for start, k, stride in run_list:
            srow, sap, a = int(row[start]), int(ap[start]), int(col[start])
            if not self._gather_pair(srow, start, stride, sap, a, dst_col, width, k):
                self(Opc.XROWS, srow=srow, drow=start, stride=stride)   # (says why not)
                self(Opc.MOVW, sap=sap, dap=0, a=a, d=dst_col, n=width, count=k)

    def _gather_pair(self, srow: int, drow: int, stride: int, sap: int, a: int, d: int,
                     n: int, count: int) -> bool:
        """XROWS + MOVW (MAP sap -> CAP) as __call__ emits them, without its per-word
        cache miss (the transfer rows make every pair's words differ): the XROWS word is
        packed directly (every XROWS costs one cycle and no activity, checked once per
        configuration), the MOVW is checked and costed once per operands and its row
        rules (the only ones that read the transfer rows) checked here. False: nothing
        emitted, as a field is out of range or a rule fails (__call__ then says why)."""
        xr = self.cache.get(("xrows",))
        if xr is None:
            fixed, per = costs.profile(encode(Instr(op=Opc.XROWS)), self.cfg.ap)
            ok = not any(per) and not any(v for i, v in enumerate(fixed) if i != _CYC)
            xr = self.cache[("xrows",)] = (ok, fixed[_CYC])
        key = ("gather-movw", sap, a, d, n, count)
        hit = self.cache.get(key)
        if hit is None:
            ins = Instr(op=Opc.MOVW, sap=sap, dap=0, a=a, d=d, n=n, count=count)
            if validate(ins, self.cfg.ap, self.cfg, (0, 0, 0)) is not None:
                return False      # a rule on the word alone (xrows 0 meets the row rules
            word = encode(ins)    # of any count that fits the CAP) fails
            fixed, per = costs.profile(word, self.cfg.ap)
            rest = np.array(fixed, dtype=np.int64)
            rest[_CYC] = 0
            hit = self.cache[key] = (word, fixed[_CYC],
                                     np.array(per, dtype=np.int64) if any(per) else None,
                                     rest if rest.any() else None, self.cfg.ap_of(sap).rows)
        if not (xr[0] and srow < _XROWS_LIM[0] and drow < _XROWS_LIM[1]
                and 0 <= stride < _XROWS_LIM[2] and min(srow, drow) >= 0
                and movw_src_rows_ok(srow, stride, count, hit[4])
                and movw_dst_rows_ok(drow, count, self.cfg.ap.rows)):
            return False
        if not self.count_only:
            self.words.append(_XROWS_WORD | (srow << _XROWS_SH[0]) | (drow << _XROWS_SH[1])
                              | (stride << _XROWS_SH[2]))
            self.words.append(hit[0])
        self.xrows = (srow, drow, stride)
        self.n_words += 2
        self.cycles += xr[1] + hit[1]
        if hit[2] is not None:
            self._per += hit[2]
        if hit[3] is not None:
            self.act += hit[3]
        return True

    def requant(self, acc: int, acc_bits: int, p: int, pb: int, b: int, c: int,
                relu: bool, out_bits: int, signed: bool | None = None) -> tuple[int, int]:
        """acc -> clamp(round(acc * b / 2^c)) at the returned (column, width); the clamp
        is signed unless `relu` (or `signed` says otherwise: a result known to be >= 0)."""
        self(Opc.CLEAR, d=p, n=pb)
        self(Opc.MAC, s=True, d=p, a=acc, imm=int(b), n=acc_bits, m=pb)
        return self.shift_clamp(p, pb, c, relu, out_bits, signed)

    def shift_clamp(self, p: int, pb: int, c: int, relu: bool, out_bits: int,
                    signed: bool | None = None) -> tuple[int, int]:
        """The pb-bit field at p -> clamp(round(field / 2^c)) (SHR, RELU, CLAMP)."""
        if c:
            self(Opc.SHR, s=True, d=p, n=pb, m=int(c))
        r, rw = p + int(c), pb - int(c)
        if relu:
            self(Opc.RELU, d=r, n=rw)
        if out_bits < rw:
            self(Opc.CLAMP, s=(not relu) if signed is None else signed, d=r, n=rw,
                 m=out_bits)
        return r, min(out_bits, rw)

    def add_const(self, d: int, n: int, value: int) -> None:
        """d += value (mod 2^n): one ADDI per nonzero 15-bit chunk, each at its offset
        (adding c to the field at d+k is adding c * 2^k to the field at d)."""
        v = int(value) % (1 << n)
        for k in range(0, n, 15):
            chunk = (v >> k) & 0x7FFF
            if chunk:
                self(Opc.ADDI, d=d + k, imm=chunk, n=n - k)


@dataclass
class Pass:
    tile: int
    rows: int = 0                             # CAP rows its outputs occupy
    ops: list = field(default_factory=list)   # ("write", ap, col, width, values)
    #                                            | ("instr", words)
    #                                            | ("read", lo, n, col, width, signed, where)
    # values: a list (an int in prediction); words: a list (an int in prediction);
    # where: targets() index arrays of the read words (None in prediction)
    predicted: int = 0
    activity: np.ndarray = field(default_factory=lambda: np.zeros(N_ACT, dtype=np.int64))


@dataclass
class LayerSchedule:
    layer: QLayer
    dataflow: str
    passes: list[Pass]
    host: Callable[..., np.ndarray] | None = None   # a layer with no work on the tiles
    #                                                  (flatten, a concat of equal scales)
    copies: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    # resident output on several tiles: COPY packets (src tile, ap, row, count, col,
    # width, dst tile) that put every tile's results into the same lanes of the others

    @property
    def predicted(self) -> int:
        return sum(p.predicted for p in self.passes)

    @property
    def activity(self) -> dict[str, int]:
        """The tiles' activity (golden/spec/costs.py ACTIVITY_KEYS), summed over passes."""
        total = sum((p.activity for p in self.passes), np.zeros(N_ACT, dtype=np.int64))
        return dict(zip(ACTIVITY_KEYS, (int(v) for v in total), strict=True))


def out_bits(q: QLayer, j: int) -> int:
    """The bits of output channel j: its block's under activation blocks, else the
    layer's."""
    return q.out_bits if q.out_ch_bits is None else int(q.out_ch_bits[j])


def pass_words(p: Pass) -> int:
    """The words the host sends for pass p (WRITE and INSTR packets carry at most
    MAX_COUNT payload words after their header; a READ is one word)."""
    n = 0
    for op in p.ops:
        if op[0] in ("write", "instr"):
            k = op[4] if op[0] == "write" else op[1]
            k = k if isinstance(k, int) else len(k)
            n += k + -(-k // MAX_COUNT)
        else:
            n += 1
    return n


def targets(img, ch, pos) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where a read's words go: index arrays (image, channel, y, x), one per word
    (fc outputs: y = x = 0). `pos` is a list of (y, x) or an (n, 2) array."""
    pos = np.asarray(pos, dtype=np.int64).reshape(-1, 2)
    n = len(pos)
    return (np.broadcast_to(np.asarray(img, dtype=np.int64), (n,)),
            np.broadcast_to(np.asarray(ch, dtype=np.int64), (n,)), pos[:, 0], pos[:, 1])


class Scheduler:
    """`predict`: schedules for cycle and word counts only (prediction): instruction and
    staged words are counted, not kept, and reads carry no targets."""

    def __init__(self, cfg: Config, predict: bool = False):
        self.cfg = cfg
        self.predict = predict
        self._tap_limit: int | None = None     # dataflow trials: the first taps only
        self._per_layer: dict = {}             # (what, id(layer)) -> (layer, value)
        self.R = cfg.ap.rows
        self.usable = cfg.ap.cols - RESERVED_COLS
        self.mp = cfg.map_ap
        self.K = cfg.tile.maps
        self.res: LayerResidency | None = None   # the layer's residency (sched/resident.py),
        #                                          set by the caller before schedule()

    @property
    def _no_where(self) -> bool:
        """Reads carry no targets (prediction, unless they become moves into lanes)."""
        return self.predict and (self.res is None or self.res.out is None)

    @property
    def _resident(self) -> bool:
        return self.res is not None and self.res.resident

    @staticmethod
    def product_bits(q: QLayer) -> int:
        """Bits of a conv or fc layer's requantisation product field (acc x b)."""
        assert q.b is not None   # conv and fc layers have requantisation multipliers
        return q.acc_bits + max(int(b).bit_length() for b in q.b) + 1

    def pos_fits(self, q: QLayer) -> bool:
        """Whether the pos dataflow's fields fit the CAP's columns (an accumulator and
        the work field), whatever the MAPs hold."""
        return (self.usable - max(q.in_bits, self.product_bits(q))) // q.acc_bits >= 1

    def _src(self, field, index: np.ndarray, ok: np.ndarray, width: int, operand: int = 0):
        """(ap, row, col) of the inputs `index` (flat; rows where not ok read nothing):
        in the staged `field` (sorted indices), or in the lanes of resident input
        `operand`."""
        if self.res is not None and self.res.resident:
            lanes = self.res.inputs[operand]
            assert lanes is not None
            return lanes.address(np.where(ok, index, 0))
        return self._address(np.where(ok, np.searchsorted(field, index), 0), width)

    # -- staging: a pass's receptive field into the MAPs -----------------------------------------
    def _capacity(self, width: int, n_maps: int) -> int:
        if n_maps < 1:
            raise ScheduleError("needs at least one MAP for its inputs")
        slots = self.mp.cols // width
        if slots < 1:
            raise ScheduleError(f"{width}-bit inputs do not fit a MAP word of "
                                f"{self.mp.cols} bits")
        return n_maps * self.mp.rows * slots

    # -- layers ----------------------------------------------------------------------------------
    def schedule(self, q: QLayer, xs, dataflow: str | None = None) -> LayerSchedule:
        """The layer's passes (`_schedule`); with a resident output (self.res), each
        result READ becomes moves of the result field into the output's lanes."""
        sched = self._schedule(q, xs, dataflow)
        if self.res is not None and self.res.out is not None and sched.host is None:
            tiles = self.cfg.system.tiles
            for p in sched.passes:
                for ap, row, count, col in _coalesced(self._reads_to_lanes(q, p, self.res.out)):
                    sched.copies.extend((p.tile, ap, row, count, col, self.res.out.width, t)
                                        for t in range(tiles) if t != p.tile)
        return sched

    def _reads_to_lanes(self, q: QLayer, p: Pass, lanes: Lanes) -> list:
        """Pass p's READs as XROWS + MOVW (CAP -> MAP) runs into `lanes`: runs of
        consecutive destination rows of one lane whose CAP rows step by one stride.
        Returns the (ap, first row, rows, column) of each run."""
        moved = []
        shape = ((q.layer.out_channels, 1, 1) if q.layer.type == "fc"
                 else tuple(q.layer.out_shape))
        C, H, W = shape
        ops = []
        for op in p.ops:
            if op[0] != "read":
                ops.append(op)
                continue
            _, lo, n, col, width, _signed, where = op
            w = lanes.width
            if w > width:
                raise ScheduleError(f"{q.name}: a {width}-bit result field cannot fill "
                                    f"{w}-bit lanes")
            img, ch, oy, ox = where
            dest = ((img * C + ch) * H + oy) * W + ox
            order = np.argsort(dest, kind="stable")
            d, s = dest[order], lo + order
            ap, row, lcol = lanes.address(d)
            em = Emitter(self.cfg, count_only=self.predict)
            i = 0
            while i < len(d):
                j = i + 1
                step = int(s[j] - s[i]) if j < len(d) else 0
                while (j < len(d) and d[j] == d[j - 1] + 1 and ap[j] == ap[i]
                       and lcol[j] == lcol[i] and row[j] == row[j - 1] + 1
                       and s[j] - s[j - 1] == step and 0 <= step <= 255):
                    j += 1
                if j == i + 1:
                    step = 0
                em(Opc.XROWS, srow=int(s[i]), drow=int(row[i]), stride=step)
                em(Opc.MOVW, sap=0, dap=int(ap[i]), a=int(col), d=int(lcol[i]), n=w,
                   count=j - i)
                moved.append((int(ap[i]), int(row[i]), j - i, int(lcol[i])))
                i = j
            words, cycles, act = em.take()
            ops.append(("instr", words))
            p.predicted += cycles
            p.activity += act
        p.ops = ops
        return moved

    def _schedule(self, q: QLayer, xs, dataflow: str | None = None) -> LayerSchedule:
        """The passes that compute layer q on its input tensors xs (a list in q.inputs'
        order, or the one array) for all N images. A conv or fc layer takes the dataflow
        the plan names, else the one with the shorter latency (makespan over the tiles
        plus host words; then fewer cycles in all), estimated from each dataflow's first
        row chunk."""
        self._per_layer.clear()          # a layer's weight tables, for its trials
        xs = [xs] if isinstance(xs, np.ndarray) else list(xs)
        t = q.layer.type
        if t == "flatten":
            return LayerSchedule(q, "host", [], host=lambda x: x.reshape(len(x), -1, 1, 1))
        if t == "maxpool":
            return LayerSchedule(q, "pos", self._pool(q, xs[0]))
        if t in ("avgpool", "gap"):
            return LayerSchedule(q, "pos", self._pool(q, xs[0]))
        if t == "add":
            return LayerSchedule(q, "pos", self._add(q, xs))
        if t == "concat":
            if all(m == (1, 0) for m in q.mults):
                return LayerSchedule(q, "host", [],
                                     host=lambda *x: np.concatenate(x, axis=1))
            return LayerSchedule(q, "pos", self._concat(q, xs))
        x = xs[0]
        if self.res is not None and self.res.dataflow is not None:
            dataflow = self.res.dataflow      # the plan's (sched/resident.py)
        whole: dict = {}
        if dataflow is None:
            dataflow = self.choose_dataflow(q, x, whole)
            if dataflow in whole:
                return LayerSchedule(q, dataflow, whole[dataflow])
        return LayerSchedule(q, dataflow, self._weighted(q, x, dataflow)[0])

    def choose_dataflow(self, q: QLayer, x: np.ndarray, whole: dict | None = None) -> str:
        """The dataflow of a conv or fc layer with the shorter estimated latency (module
        docstring), from trials of each dataflow's first row chunk. `whole` receives a
        dataflow's passes where its trial was the whole layer."""
        whole = {} if whole is None else whole
        # the latency each dataflow's first row chunk suggests: its passes' mean
        # cycles x rounds of passes over the tiles, plus their host words (one port,
        # one word per cycle)
        trial: dict[str, tuple[float, float]] = {}
        tiles = self.cfg.system.tiles
        live = int(np.count_nonzero(np.any(self._weight_matrix(q) != 0, axis=0)))
        for f in DATAFLOWS:
            try:
                if live > 2 * TRIAL_TAPS:     # cost of 0 and of TRIAL_TAPS taps,
                    cyc, wds = [], []         # extrapolated to all live taps
                    for limit in (0, TRIAL_TAPS):
                        self._tap_limit = limit
                        first, n_chunks = self._weighted(q, x, f, sample=True)
                        cyc.append(sum(p.predicted for p in first))
                        wds.append(sum(pass_words(p) for p in first))
                    total = cyc[0] + (cyc[1] - cyc[0]) * live / TRIAL_TAPS
                    words = wds[0] + (wds[1] - wds[0]) * live / TRIAL_TAPS
                else:
                    first, n_chunks = self._weighted(q, x, f, sample=True)
                    total = sum(p.predicted for p in first)
                    words = sum(pass_words(p) for p in first)
                    if n_chunks == 1:          # the sample is the whole layer
                        whole[f] = first
            except ScheduleError:
                continue
            finally:
                self._tap_limit = None
            mean = total / max(1, len(first))
            rounds = -(-len(first) * n_chunks // tiles)
            trial[f] = (mean * rounds + words * n_chunks, mean * len(first) * n_chunks)
        if not trial:
            self._weighted(q, x[:1], "pos")    # raises the reason
        return min(trial, key=trial.__getitem__)

    def _runs(self, ap, row, col, valid):
        """A gather's runs (execution), or only (runs, rows) (prediction: run_count)."""
        return run_count(ap, row, col, valid) if self.predict else runs(ap, row, col, valid)

    def _new_pass(self, passes: list[Pass], rows: int) -> Pass:
        p = Pass(tile=len(passes) % self.cfg.system.tiles, rows=rows)
        passes.append(p)
        return p

    def _repeat(self, passes: list[Pass], memo: dict, key) -> bool:
        """Prediction of element-wise layers: a pass whose rows have the same layout
        relative to its receptive field as an earlier pass's (`key`: its row count and
        where its first row sits in the input's period) costs what that pass cost, as
        every word of it depends only on that layout; append the copy and say so."""
        if (not self.predict or key not in memo or self.res is not None
                and (self.res.resident or self.res.out is not None)):
            return False          # (resident tensors: every pass has its own addresses)
        src = memo[key]
        p = self._new_pass(passes, src.rows)
        p.ops, p.predicted, p.activity = list(src.ops), src.predicted, src.activity.copy()
        return True

    def lane_bound(self, q: QLayer, n_images: int) -> float | None:
        """The lane-parallel bound of a conv or fc layer: its MACs with a nonzero weight,
        each at the cycles of one MAC by that weight at the layer's precision (`MAC`
        d += x * w: in_bits x, acc_bits accumulator; the pos dataflow's inner step), over
        every output position and image, spread over all rows of all tiles. Zero weights
        cost nothing (the scheduler skips them). None for other layers."""
        if q.layer.type not in ("conv", "fc") or q.w is None:
            return None
        wide = APConfig(rows=self.cfg.ap.rows, cols=256, dims=self.cfg.ap.dims,
                        counter_bits=self.cfg.ap.counter_bits)
        Wm = self._weights_of(q)
        nb, ks = self.tap_widths(q, Wm.shape[1])
        per = 0
        for nv, kv in sorted(set(zip(nb.tolist(), ks.tolist(), strict=True))):   # taps of one input
            sel = Wm[:, (nb == nv) & (ks == kv)]                     # width and k
            values, counts = np.unique(sel[sel != 0], return_counts=True)
            per += sum(int(c) * costs.instr_cycles(
                encode(Instr(op=Opc.MAC, d=kv, a=q.acc_bits, imm=int(v), n=nv,
                             m=q.acc_bits - kv)), wide)
                for v, c in zip(values, counts, strict=True))
        _, oh, ow = q.layer.out_shape
        return per * oh * ow * n_images / (self.R * self.cfg.system.tiles)

    @staticmethod
    def tap_widths(q: QLayer, taps: int) -> tuple[np.ndarray, np.ndarray]:
        """Per tap of the weight matrix (input channel c's taps, or fc input f of channel
        f // (H*W)): the bits its input is gathered and multiplied at and its k (the
        input's value on the common grid is the integer times 2^k): the channel's under
        activation blocks (docs/network.md), else the tensor's bits and 0."""
        if q.in_ch_bits is None or q.in_shift is None:
            return np.full(taps, q.in_bits, dtype=np.int64), np.zeros(taps, dtype=np.int64)
        ch = np.arange(taps) // (taps // len(q.in_ch_bits))
        return q.in_ch_bits[ch], q.in_shift[ch]

    def _finish(self, p: Pass, em: Emitter) -> None:
        words, cycles, act = em.take()
        if words:
            p.ops.append(("instr", words))
            p.predicted += cycles
            p.activity += act

    def _weighted(self, q: QLayer, x: np.ndarray, flow: str,
                  sample: bool = False) -> tuple[list[Pass], int]:
        """The passes of a conv or fc layer under `flow`, and its number of row chunks;
        `sample`: the first row chunk's passes only (to compare dataflows quickly)."""
        in_maps = self.K if flow == "pos" else self.K - 1
        if flow == "chan" and self.K < 2:
            raise ScheduleError(f"{q.name}: the chan dataflow needs 2 MAPs (inputs, weights)")
        try:
            capacity = self._capacity(q.in_bits, in_maps)
        except ScheduleError as exc:
            raise ScheduleError(f"{q.name}: {exc}") from None
        if self._resident:            # the whole input is in its lanes: nothing is staged
            capacity = 1 << 62
        Kout = q.layer.out_channels
        pb = self.product_bits(q)
        passes: list[Pass] = []
        n_img = len(x)
        if flow == "pos":
            return self._pos_passes(q, x, pb, capacity, sample)
        T, P, index, valid_of = self._geometry(q)
        total = Kout * n_img * P
        n_chunks = -(-total // self.R)
        Wm = self._weight_matrix(q)
        flat = x.reshape(n_img, -1)
        for c in range(1 if sample else n_chunks):
            r = np.arange(c * self.R, min(total, (c + 1) * self.R))
            j, rest = np.divmod(r, n_img * P)
            img, pos = np.divmod(rest, P)
            p = self._new_pass(passes, len(r))
            self._chan_pass(q, p, flat, j, img, pos, Wm, index, valid_of, pb, capacity)
        return passes, n_chunks

    # -- the pos dataflow, in arrays ---------------------------------------------------------
    def _weight_matrix(self, q: QLayer) -> np.ndarray:
        """(K, taps) weights over all input taps (c, ky, kx) or fc inputs; a tap outside
        output channel j's group weighs 0. Computed once per layer (the dataflow trials
        ask again)."""
        hit = self._per_layer.get(("wm", id(q)))
        if hit is None or hit[0] is not q:
            hit = self._per_layer[("wm", id(q))] = (q, self._weights_of(q))
        return hit[1]

    @staticmethod
    def _weights_of(q: QLayer) -> np.ndarray:
        lay, w = q.layer, q.w
        assert w is not None
        K = lay.out_channels
        if lay.type == "fc":
            return w.reshape(K, -1)
        C, k, g = lay.in_shape[0], lay.kernel, lay.groups
        if g == 1:
            return w.reshape(K, -1)
        cg, kg = C // g, K // g
        full = np.zeros((K, C, k, k), dtype=np.int64)
        for gi in range(g):
            full[gi * kg:(gi + 1) * kg, gi * cg:(gi + 1) * cg] = w[gi * kg:(gi + 1) * kg]
        return full.reshape(K, -1)

    def _geometry(self, q: QLayer):
        """Per tap (c, ky, kx) or fc input: (channel, dy, dx); and a function from row
        arrays (image, output position) to each tap's input index (-1: padding)."""
        lay = q.layer
        C, H, W = lay.in_shape
        if lay.type == "fc":
            F = C * H * W
            return F, 1, (lambda img, pos, t: img * F + t), (lambda img, pos, t:
                                                              np.ones(len(img), bool))
        _, OH, OW = lay.out_shape
        k, st, pad = lay.kernel, lay.stride, lay.pad
        P = OH * OW

        def index(img, pos, t):
            ci, r = divmod(t, k * k)
            ky, kx = divmod(r, k)
            iy, ix = pos // OW * st + ky - pad, pos % OW * st + kx - pad
            return img * (C * H * W) + ci * H * W + iy * W + ix

        def valid(img, pos, t):
            r = t % (k * k)
            ky, kx = divmod(r, k)
            iy, ix = pos // OW * st + ky - pad, pos % OW * st + kx - pad
            return (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)

        return C * k * k, P, index, valid

    def _units(self, q: QLayer, live: np.ndarray) -> list[np.ndarray]:
        """The live taps in staging units: one input channel's taps (conv), one input
        (fc)."""
        if q.layer.type == "fc":
            return [live[i:i + 1] for i in range(len(live))]
        kk = q.layer.kernel ** 2
        ch = live // kk
        cut = np.flatnonzero(np.diff(ch)) + 1
        return np.split(live, cut)

    def _pos_passes(self, q: QLayer, x: np.ndarray, pb: int, capacity: int,
                    sample: bool = False) -> tuple[list[Pass], int]:
        """rows = (image, output position); the weights are MAC immediates broadcast to
        every row; G accumulators at a time. Passes are row chunks x bundles of output
        channels (bundles so that a layer of few chunks still spreads over the tiles);
        each pass stages its receptive field, in groups of input channels when it
        exceeds the MAPs (then once per group of accumulators)."""
        ab, ib = q.acc_bits, q.in_bits
        work = max(ib, pb)
        G = (self.usable - work) // ab
        if G < 1:
            raise ScheduleError(f"{q.name} (pos): an accumulator ({ab} bits) and the work "
                                f"field ({work} bits) need {ab + work} columns, the CAP has "
                                f"{self.usable}")
        xc = pc = G * ab
        K = q.layer.out_channels
        T, P, index, valid_of = self._geometry(q)
        Wm = self._weight_matrix(q)
        N = len(x)
        total = N * P

        def rows_for(cap: int) -> int:
            r = self.R
            while r > 1 and self._field(q, np.arange(min(r, total)), P, index, valid_of,
                                        np.arange(min(T, q.layer.kernel ** 2))).size > cap:
                r //= 2               # one input channel's field must fit the MAPs
            return r

        R = rows_for(capacity)
        spill = self.spill_layout(q, pb, min(R, total))
        if spill is not None and not self._resident:   # its MAP columns are not staging
            less = self._capacity_without(q.in_bits, spill[2])   # space: only when
            if less > 0 and rows_for(less) == R:            # passes keep their rows
                capacity = less
            else:
                spill = None
        if spill is not None:        # more accumulators; some wait in a MAP at requant
            G = spill[0]
            xc, pc = G * ab, ab
        chunks = [(r0, min(total, r0 + R)) for r0 in range(0, total, R)]
        groups = [list(range(j0, min(K, j0 + G))) for j0 in range(0, K, G)]
        parts = max(1, min(self.cfg.system.tiles // len(chunks), len(groups)))
        bundles = [groups[i * len(groups) // parts:(i + 1) * len(groups) // parts]
                   for i in range(parts)]
        mac_cyc = None
        if self.predict:                  # once per layer, whatever the trials
            hit = self._per_layer.get(("mac", id(q)))
            if hit is None or hit[0] is not q:
                nb, ks = self.tap_widths(q, Wm.shape[1])
                hit = self._per_layer[("mac", id(q))] = (q, {
                    (nv, kv): self._mac_table(q, Wm, nv, kv)
                    for nv, kv in set(zip(nb.tolist(), ks.tolist(), strict=True))})
            mac_cyc = hit[1]
        passes: list[Pass] = []
        flat = x.reshape(N, -1)
        for r0, r1 in chunks[:1] if sample else chunks:
            rows = np.arange(r0, r1)
            img, pos = rows // P, rows % P
            shared: dict = {"fields": {}, "blocks": {}}     # the chunk's bundles share these
            for bundle in bundles:
                p = self._new_pass(passes, r1 - r0)
                self._pos_pass(q, p, flat, img, pos, bundle, Wm, index, valid_of, capacity,
                               G, xc, pc, pb, mac_cyc, shared,
                               None if spill is None else spill[1:])
        return passes, len(chunks)

    def _field(self, q, rows, P, index, valid_of, taps) -> np.ndarray:
        """Sorted input indices that rows read over `taps`."""
        img, pos = rows // P, rows % P
        parts = [index(img, pos, int(t))[valid_of(img, pos, int(t))] for t in taps]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def _mac_table(self, q: QLayer, Wm: np.ndarray, n: int, k: int) -> tuple:
        """Costs of `MAC d += x * w` per weight value w - lo (0 where w = 0) for n-bit
        inputs x added at bit k of the accumulator (activation blocks; else n = in_bits,
        k = 0): (lo, cycles, fixed activity, activity per enabled row), each distinct
        weight costed once by the cost model (the Emitter's word cache keeps them across
        layers of the same widths)."""
        em = Emitter(self.cfg, count_only=True)
        lo = int(Wm.min())
        cyc = np.zeros(int(Wm.max()) - lo + 1, dtype=np.int64)
        fixed = np.zeros((len(cyc), N_ACT), dtype=np.int64)
        per = np.zeros((len(cyc), N_ACT), dtype=np.int64)
        for v in np.unique(Wm[Wm != 0]).tolist():
            for rows, table in ((0, fixed), (1, per)):
                em.rows = rows                       # the activity at 0 rows and at 1 row
                em(Opc.MAC, d=k, a=q.acc_bits, imm=v, n=n, m=q.acc_bits - k)
                _, cyc[v - lo], table[v - lo] = em.take()
        per -= fixed
        fixed[:, _CYC] = per[:, _CYC] = 0            # cycles are counted by `cyc`
        return lo, cyc, fixed, per

    def _stage_field(self, flat: np.ndarray, field: np.ndarray, width: int) -> list:
        """WRITE ops putting the input values `field` (sorted flat indices img * CHW + v)
        into MAPs 1.., `map_rows` per column slot (the address of the i-th value follows
        from i: see _address)."""
        rows, ops = self.mp.rows, []
        slots = self.mp.cols // width
        per = flat.shape[1]
        for i0 in range(0, len(field), rows):
            seg = field[i0:i0 + rows]
            m, slot = divmod(i0 // rows, slots)
            vals = len(seg) if self.predict else flat[seg // per, seg % per].tolist()
            ops.append(("write", 1 + m, slot * width, width, vals))
        return ops

    def _address(self, idx: np.ndarray, width: int):
        rows, slots = self.mp.rows, self.mp.cols // width
        m, r = np.divmod(idx, rows * slots)
        return 1 + m, r % rows, (r // rows) * width

    def _pos_pass(self, q, p, flat, img, pos, bundle, Wm, index, valid_of, capacity, G, xc,
                  pc, pb, mac_cyc, shared_cache, spill=None):
        ab, ib = q.acc_bits, q.in_bits
        nb, ks = self.tap_widths(q, Wm.shape[1])     # each tap's input bits and k
        em = Emitter(self.cfg, count_only=self.predict)
        em.blocks = shared_cache["blocks"]
        n = len(img)
        em(Opc.ROWS, lo=0, hi=n)
        js_all = [j for js in bundle for j in js]
        live_all = np.flatnonzero(np.any(Wm[js_all] != 0, axis=0))[:self._tap_limit]
        fields = shared_cache["fields"]               # first tap of a unit -> its field

        # a unit is one input channel's taps (conv) or one input (fc): its field is that
        # of the same taps of channel / input 0, shifted by the channel's offset
        kk, plane = ((1, 1) if q.layer.type == "fc" else
                     (q.layer.kernel ** 2, q.layer.in_shape[1] * q.layer.in_shape[2]))

        def unit_field(u):
            ci = int(units[u][0]) // kk
            rel = tuple((units[u] - ci * kk).tolist())
            if rel not in fields:
                fields[rel] = np.unique(np.concatenate(
                    [index(img, pos, t)[valid_of(img, pos, t)] for t in rel]))
            return fields[rel] + ci * plane

        def groups_of(live):
            """Units of `live` taps in groups whose fields fit the MAPs (once per chunk,
            units and live taps: bundles of channels with the same live taps repeat it)."""
            gk = ("groups", live_all.tobytes(), live.tobytes())
            if gk not in fields:
                fields[gk] = _groups(live)
            return fields[gk]

        def _groups(live):
            out, cur, size = [], [], 0
            live_set = set(live.tolist())
            for u, taps in enumerate(units):
                if not any(t in live_set for t in taps.tolist()):
                    continue
                f = unit_field(u).size
                if f > capacity:     # a unit is never split: its field must fit alone
                    raise ScheduleError(
                        f"{q.name}: one input {'channel' if kk > 1 else 'value'}'s "
                        f"{len(taps)} tap(s) over a pass of {n} rows read {f} input values "
                        f"(the receptive field with its halo), the MAPs hold {capacity} "
                        f"{ib}-bit values ({self.K} MAP(s) of {self.mp.rows} rows x "
                        f"{self.mp.cols // ib} per word): more MAP rows or columns, or "
                        f"fewer CAP rows, would fit it")
                if cur and size + f > capacity:
                    out.append(cur)
                    cur, size = [], 0
                cur.append(u)
                size += f
            if cur:
                out.append(cur)
            return out

        ukey = ("units", live_all.tobytes())      # bundles of a chunk share live taps
        if ukey not in fields:
            fields[ukey] = self._units(q, live_all)
        units = fields[ukey]
        everything = groups_of(live_all)
        shared = len(everything) <= 1

        def stage(group_units):
            gkey = ("group",) + tuple(tuple(units[u].tolist()) for u in group_units)
            if gkey not in fields:
                fields[gkey] = np.sort(np.concatenate(
                    [unit_field(u) for u in group_units])) if group_units else \
                    np.zeros(0, np.int64)      # units' fields are disjoint: no duplicates
            field = fields[gkey]
            self._finish(p, em)
            if self._resident:        # gathered from the input's lanes
                return None, ("lanes",)
            p.ops.extend(self._stage_field(flat, field, ib))
            return field, (len(field), hash(field.tobytes()))

        if shared:
            staged = stage(everything[0] if everything else [])
        for js in bundle:
            for g, j in enumerate(js):
                em(Opc.CLEAR, d=g * ab, n=ab)
                em.add_const(g * ab, ab, int(q.bias[j]))
            live = np.flatnonzero(np.any(Wm[js] != 0, axis=0))[:self._tap_limit]
            for group in ([everything[0]] if shared and everything else
                          [] if shared else groups_of(live)):
                if not shared:
                    staged = stage(group)
                field, fkey = staged
                in_group = np.concatenate([units[u] for u in group])
                taps = in_group[np.any(Wm[np.ix_(js, in_group)] != 0, axis=0)].tolist()

                def gather(sub, t, field=field):
                    ok = valid_of(img, pos, t)
                    ap, row, col = self._src(field, index(img, pos, t), ok, ib)
                    n_t = int(nb[t])          # the input's bits (of its staged ib-bit slot)
                    if not ok.all():
                        sub(Opc.CLEAR, d=xc, n=n_t)
                    sub.gather_runs(xc, n_t, ap, row, col, self._runs(ap, row, col, ok))

                if mac_cyc is not None:
                    # prediction: each tap's gather costed once per chunk (the blocks
                    # cache), the MACs from the per-weight tables
                    tkey = ("taps", xc, fkey, em.rows,
                            np.asarray(taps, dtype=np.int64).tobytes())
                    total = em.blocks.get(tkey)      # groups of a pass repeat tap lists
                    if total is None:
                        total = em.blocks[tkey] = self._gather_costs(
                            em, taps, field, fkey, img, pos, index, valid_of, xc, ib, nb)
                    words, cycles, act = total
                    if taps:
                        ta = np.asarray(taps, dtype=np.int64)
                        per_row = np.zeros(N_ACT, dtype=np.int64)
                        for (nv, kv), (lo, cyc_of, fixed_of, per_of) in mac_cyc.items():
                            sel = Wm[np.ix_(js, ta[(nb[ta] == nv) & (ks[ta] == kv)])]
                            if not sel.size:
                                continue
                            hist = np.bincount((sel - lo).ravel(), minlength=len(cyc_of))
                            words += int(np.count_nonzero(sel))
                            cycles += int(hist @ cyc_of)
                            act = act + hist @ fixed_of
                            per_row += hist @ per_of
                        em.add(words, cycles, act, per_row)
                    continue
                # per tap: its gather, then a MAC per nonzero weight (at bit k of the
                # accumulator)
                em.tap_loop(("gathers", xc, fkey), taps,
                            lambda t, fkey=fkey, gather=gather: (
                                ("gather", t, xc, fkey), lambda sub: gather(sub, t)),
                            Wm[np.ix_(js, taps)], nb[taps], ks[taps], xc, ab)
            order = [(g, g) for g in range(len(js))]      # (accumulator, where it is)
            if spill is not None:    # accumulators in the product field's way wait in a
                spilled, at = spill  # MAP; each comes back to accumulator 0's columns
                out = [g for g in spilled if g < len(js)]
                for g, (ap, col) in zip(out, at, strict=False):
                    em(Opc.XROWS, srow=0, drow=0, stride=1)
                    em(Opc.MOVW, sap=0, dap=ap, a=g * ab, d=col, n=ab, count=n)
                order = [(g, g) for g in range(len(js)) if g not in out] + \
                    [(g, 0) for g in out]
            for g, at_g in order:
                j = js[g]
                if at_g != g:           # back from the MAP
                    ap, col = spill[1][spill[0].index(g)]
                    em(Opc.XROWS, srow=0, drow=0, stride=1)
                    em(Opc.MOVW, sap=ap, dap=0, a=col, d=0, n=ab, count=n)
                bj, cj, ob = int(q.b[j]), int(q.c[j]), out_bits(q, j)
                col_, width = em.block(
                    ("requant", at_g * ab, ab, pc, pb, bj, cj, q.layer.relu, ob),
                    lambda sub, g=at_g, bj=bj, cj=cj, ob=ob: sub.requant(
                        g * ab, ab, pc, pb, bj, cj, q.layer.relu, ob))
                self._finish(p, em)
                where = None if self._no_where else targets(
                    img, j, np.stack(divmod(pos, max(1, q.layer.out_shape[2])), axis=1))
                p.ops.append(("read", 0, n, col_, width, q.out_signed, where))

    def spill_layout(self, q: QLayer, pb: int, rows: int):
        """The pos dataflow with more accumulators than the product field leaves room
        for: G = (usable - input bits) // acc bits accumulators while the taps are
        accumulated; at requantisation those in the product field's way (it lies at
        [ab, ab + pb), beside accumulator 0) wait in a MAP (XROWS + MOVW out and back,
        count + 1 cycles each) while accumulator 0 and those above the field are
        requantised, then each comes back to accumulator 0's columns. None when it gives
        no more accumulators or does not fit: (G, spilled accumulators, their (MAP,
        column)) otherwise. The MAP columns are the top of the last MAP (staged layers)
        or the residency plan's (resident ones)."""
        ab = q.acc_bits
        g_old, G = self._accumulators(q, pb)
        mc = self.mp.cols
        if (G <= g_old or self.K < 1 or ab > 32 or ab > mc or ab + pb > self.usable
                or rows > self.mp.rows):
            return None
        while G > g_old:
            spilled = self._in_the_way(G, ab, pb)
            if self._resident:
                at = list(self.res.spill) if self.res is not None else []
            else:
                at = [(self.K, mc - (k + 1) * ab) for k in range(len(spilled))]
                if len(spilled) * ab > mc:
                    at = []
            if len(at) >= len(spilled):
                return G, spilled, at[:len(spilled)]
            G -= 1
        return None

    def _accumulators(self, q: QLayer, pb: int) -> tuple[int, int]:
        """Accumulators of the pos dataflow beside the product field, and beside the
        input field alone."""
        ab = q.acc_bits
        return (self.usable - max(q.in_bits, pb)) // ab, (self.usable - q.in_bits) // ab

    @staticmethod
    def _in_the_way(G: int, ab: int, pb: int) -> list[int]:
        """The accumulators (of G) where the product field goes, [ab, ab + pb)."""
        return [g for g in range(1, G) if g * ab < ab + pb]

    def spill_need(self, q: QLayer) -> tuple[int, int] | None:
        """(lanes, bits) the spill layout of a pos layer needs in the MAPs (the residency
        plan reserves them), or None."""
        pb = self.product_bits(q)
        g_old, G = self._accumulators(q, pb)
        if G <= g_old:
            return None
        return len(self._in_the_way(G, q.acc_bits, pb)), q.acc_bits

    def _capacity_without(self, width: int, at: list) -> int:
        """Staging capacity (values of `width` bits) with the columns of `at` (MAP,
        column) of the last MAP taken: its slots below the lowest of them."""
        lo = min(col for _, col in at)
        return (self.K - 1) * self.mp.rows * (self.mp.cols // width) + \
            self.mp.rows * (lo // width)

    def _gather_costs(self, em: Emitter, taps: list, field: np.ndarray, fkey, img, pos,
                      index, valid_of, xc: int, ib: int,
                      nb: np.ndarray) -> tuple[int, int, np.ndarray]:
        """Prediction: (words, cycles, activity) of the pos pass's gathers of `taps` from
        the staged `field` (ib-bit slots) into the work field at xc, nb[t] bits each (a
        CLEAR first where a row reads padding, then XROWS + MOVW per run), all taps' runs
        counted at once (run_counts) and each tap's cost kept in em.blocks for the other
        groups and bundles."""
        blocks, rows = em.blocks, em.rows
        todo = [t for t in taps if ("gcount", t, xc, fkey, rows) not in blocks]
        per_run = _XROWS_CYCLES + movw_cycles(0)
        step = max(1, (1 << 20) // max(1, len(img)))     # taps per batch: bounded memory
        for b0 in range(0, len(todo), step):
            batch = todo[b0:b0 + step]
            t = np.asarray(batch, dtype=np.int64)[:, None]
            ok = np.broadcast_to(valid_of(img, pos, t), (len(batch), len(img)))
            ap, row, col = self._src(field, index(img, pos, t), ok, ib)
            n_runs, n_rows = run_counts(ap, row, col, ok)
            pad = np.logical_not(np.all(ok, axis=1))
            for k, tap in enumerate(batch):
                r, v, n_t = int(n_runs[k]), int(n_rows[k]), int(nb[tap])
                clear = em.block_cost(("clear", xc, n_t),
                                      lambda sub, n_t=n_t: sub(Opc.CLEAR, d=xc, n=n_t))
                act = np.zeros(N_ACT, dtype=np.int64)
                act[_ROW_BITS] = 2 * n_t * v
                words, cycles = 2 * r, r * per_run + v
                if pad[k]:
                    words, cycles, act = words + clear[0], cycles + clear[1], act + clear[2]
                act[_CYC] = cycles
                blocks[("gcount", tap, xc, fkey, rows)] = (words, cycles, act)
        words = cycles = 0
        act = np.zeros(N_ACT, dtype=np.int64)
        for tap in taps:
            w, c, a = blocks[("gcount", tap, xc, fkey, rows)]
            words, cycles = words + w, cycles + c
            act += a
        return words, cycles, act

    def _chan_pass(self, q, p, flat, j, img, pos, Wm, index, valid_of, pb, capacity):
        """rows = (output channel, image, position); per tap the input is gathered and so
        is the weight (from the weight MAP, stride 0 within a channel's rows), one MUL and
        one ADD serve every channel."""
        ab, ib = q.acc_bits, q.in_bits
        wb = max(q.w_bits)
        xw = ab - wb
        if xw < ib + 1 or ab > 32:
            raise ScheduleError(f"{q.name} (chan): accumulators of {ab} bits leave "
                                f"{xw} bits for {ib}-bit inputs")
        need = ab + max(xw + wb + ab, pb)
        if need > self.usable:
            raise ScheduleError(f"{q.name} (chan): needs {need} columns, the CAP has "
                                f"{self.usable}")
        acc, xc, wc, prod, pc = 0, ab, ab + xw, ab + xw + wb, ab
        wmap = self.K
        Kout = q.layer.out_channels
        n = len(j)
        cut = (np.flatnonzero(np.diff(j)) + 1).tolist()
        ranges = [(int(j[lo]), lo, hi) for lo, hi in zip([0] + cut, cut + [n], strict=True)]
        em = Emitter(self.cfg, count_only=self.predict)
        em(Opc.ROWS, lo=0, hi=n)
        em(Opc.CLEAR, d=acc, n=ab)
        em(Opc.CLEAR, d=xc, n=xw)
        for jj, lo, hi in ranges:
            em(Opc.ROWS, lo=lo, hi=hi)
            em.add_const(acc, ab, int(q.bias[jj]))
        em(Opc.ROWS, lo=0, hi=n)
        per_stage = max(1, self.mp.rows // Kout)
        live = np.flatnonzero(np.any(Wm[[r[0] for r in ranges]] != 0, axis=0))
        live = live[:self._tap_limit].tolist()
        mask = (1 << wb) - 1
        # activation blocks: a tap whose input has k > 0 multiplies xw - k bits (the
        # gathered ib bits and zeros above) into an ab - k bit product added at bit k
        _, ks = self.tap_widths(q, Wm.shape[1])

        def index_t(t):
            return index(img, pos, t)

        def valid_t(t):
            return valid_of(img, pos, t)

        # the (image, position) pairs of the pass, once each: for one tap they read
        # distinct inputs (a tap's input index is one-to-one in the output position)
        span = int(pos.max()) + 1
        img_u, pos_u = np.divmod(np.unique(img * span + pos), span)

        stage_taps: list[int] = []

        def flush_weights():
            self._finish(p, em)
            vals = (Wm[:, stage_taps].T & mask).ravel()
            p.ops.append(("write", wmap, 0, wb, len(vals) if self.predict else vals.tolist()))

        zeros, ones = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        wruns = None
        # taps in order: input fields staged in groups that fit MAPs 1..K-1 (the
        # generator writes a group before its first tap), weights in stages of per_stage
        # taps into MAP K
        for i, (tap, pad, ap, row, col, run_list) in enumerate(self._staged_taps(
                em, p, flat, ib, live, index_t, valid_t, capacity, q.name,
                (lambda t: index(img_u, pos_u, t), lambda t: valid_of(img_u, pos_u, t)))):
            ti = i % per_stage
            if ti == 0:
                stage_taps[:] = live[i:i + per_stage]
                flush_weights()
            if pad:
                em(Opc.CLEAR, d=xc, n=ib)
            em.gather_runs(xc, ib, ap, row, col, run_list)
            wrow = ti * Kout + j      # the same runs for every ti (rows shift by ti * Kout)
            if wruns is None or not self.predict:
                wruns = self._runs(zeros + wmap, wrow, zeros, ones)
            em.gather_runs(wc, wb, zeros + wmap, wrow, zeros, wruns)
            k_t = int(ks[tap])
            em(Opc.MUL, s=True, d=prod, a=xc, b=wc, n=xw - k_t, m=wb)
            em(Opc.ADD, d=acc + k_t, a=prod, n=ab - k_t)
        OW = max(1, q.layer.out_shape[2])
        for jj, lo, hi in ranges:
            em(Opc.ROWS, lo=lo, hi=hi)
            col_, width = em.requant(acc, ab, pc, pb, q.b[jj], q.c[jj], q.layer.relu,
                                     out_bits(q, jj))
            self._finish(p, em)
            where = None if self._no_where else targets(
                img[lo:hi], jj, np.stack(np.divmod(pos[lo:hi], OW), axis=1))
            p.ops.append(("read", lo, hi - lo, col_, width, q.out_signed, where))

    # -- element-wise layers: rows = (image, channel, output position) ----------------------------
    def _staged_taps(self, em: Emitter, p: Pass, flat: np.ndarray, width: int, taps: list,
                     index, valid, capacity: int, what: str, distinct=None, operand=None):
        """Stage the fields of `taps` (index(t): each row's input index, valid(t): which
        rows read one) in groups that fit the MAPs, yielding per tap the gather's source
        arrays and runs: (t, pad, ap, row, col, runs). `distinct`: (index, valid) over
        rows that read distinct inputs for any one tap, whose inputs are all the rows'
        (the chan dataflow's rows repeat positions per channel). Resident inputs (self.res)
        are not staged: `index(t)` is then an index into input `operand(t)`'s lanes."""
        if self._resident:            # every input is in its lanes: nothing to stage
            for t in taps:
                ok = valid(t)
                ap, row, col = self._src(None, index(t), ok, width, operand(t) if operand
                                         else 0)
                yield t, not ok.all(), ap, row, col, self._runs(ap, row, col, ok)
            return
        f_index, f_valid = distinct or (index, valid)
        fields = {t: np.sort(f_index(t)[f_valid(t)]) if distinct else
                  np.unique(index(t)[valid(t)]) for t in taps}
        groups: list[list] = []
        cur: list = []
        seen = np.zeros(flat.size, dtype=bool)      # the current group's field, as a mask
        size = 0
        for t in taps:
            f = fields[t]
            if f.size > capacity:
                raise ScheduleError(f"{what}: one tap of a pass reads {f.size} input values, "
                                    f"the MAPs hold {capacity}")
            new = f[~seen[f]]
            if cur and size + new.size > capacity:
                groups.append(cur)
                for u in cur:
                    seen[fields[u]] = False
                cur, size, new = [], 0, f
            cur.append(t)
            seen[new] = True
            size += new.size
        if cur:
            groups.append(cur)
        for group in groups:
            field = np.unique(np.concatenate([fields[t] for t in group]))
            self._finish(p, em)
            p.ops.extend(self._stage_field(flat, field, width))
            for t in group:
                ok = valid(t)
                idx = np.searchsorted(field, index(t))
                ap, row, col = self._address(np.where(ok, idx, 0), width)
                yield t, not ok.all(), ap, row, col, self._runs(ap, row, col, ok)

    def _element_rows(self, shape: tuple, n_img: int, r0: int, r1: int):
        """(image, channel, y, x) arrays of element rows r0..r1 of an (N, C, OH, OW) output."""
        C, OH, OW = shape
        r = np.arange(r0, r1)
        img, rest = np.divmod(r, C * OH * OW)
        c, pos = np.divmod(rest, OH * OW)
        oy, ox = np.divmod(pos, OW)
        return img, c, oy, ox

    def _pool(self, q: QLayer, x: np.ndarray) -> list[Pass]:
        """Max pooling (MAX of the window's elements in turn) and average pooling and gap
        (ADD them into a sum field, then the dyadic 1/window): the window's taps are
        gathered one by one; padding taps are cleared (0 never wins a max of unsigned
        values and adds nothing to a sum)."""
        layer, bits = q.layer, q.in_bits
        C, H, W = layer.in_shape
        t = layer.type
        if t == "gap":
            kh, kw, st, pad = H, W, 1, 0
        else:
            kh = kw = layer.kernel
            st, pad = layer.stride, layer.pad
        window = [(dy, dx) for dy in range(kh) for dx in range(kw)]
        if t == "maxpool":
            fa, fw = 0, bits                       # the max, then the incoming element
            if 2 * bits > self.usable:
                raise ScheduleError(f"{q.name}: two {bits}-bit fields do not fit the CAP")
        else:
            (b_, c_), = q.mults
            sb = q.acc_bits                        # sum field (signed width)
            pb = sb + int(b_).bit_length() + 1
            fa, fw, fp = 0, sb, sb                 # the product reuses the element's columns
            if sb + max(sb, pb) > self.usable:
                raise ScheduleError(f"{q.name}: the sum and the element or product fields "
                                    f"need {sb + max(sb, pb)} columns, the CAP has "
                                    f"{self.usable}")
        try:
            capacity = self._capacity(bits, self.K)
        except ScheduleError as exc:
            raise ScheduleError(f"{q.name}: {exc}") from None
        passes: list[Pass] = []
        N = len(x)
        total = N * int(np.prod(layer.out_shape))
        flat = x.reshape(N, -1)
        plane = int(np.prod(layer.out_shape[1:]))
        memo: dict = {}
        for r0 in range(0, total, self.R):
            # rows (image, channel) planes in turn: a pass's gathers depend on where in
            # an output plane it starts (the input planes are contiguous likewise)
            key = (min(total, r0 + self.R) - r0, r0 % plane)
            if self._repeat(passes, memo, key):
                continue
            img, c, oy, ox = self._element_rows(layer.out_shape, N, r0, min(total, r0 + self.R))
            p = memo[key] = self._new_pass(passes, len(img))
            em = Emitter(self.cfg, count_only=self.predict)
            n = len(img)
            em(Opc.ROWS, lo=0, hi=n)
            first = t == "maxpool"     # the first element goes straight into the max field
            if t != "maxpool":
                em(Opc.CLEAR, d=fa, n=2 * sb)

            def iyx(tap, oy=oy, ox=ox):
                return oy * st + tap[0] - pad, ox * st + tap[1] - pad

            def index(tap, img=img, c=c):
                iy, ix = iyx(tap)
                return img * (C * H * W) + c * H * W + iy * W + ix

            def valid(tap):
                iy, ix = iyx(tap)
                return (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)

            for _tap, pad_rows, ap, row, col, run_list in self._staged_taps(
                    em, p, flat, bits, window, index, valid, capacity, q.name):
                into = fa if first else fw
                if pad_rows:
                    em(Opc.CLEAR, d=into, n=bits)
                em.gather_runs(into, bits, ap, row, col, run_list)
                if first:
                    first = False
                elif t == "maxpool":
                    em(Opc.MAX, d=fa, a=fw, n=bits)
                else:
                    em(Opc.ADD, d=fa, a=fw, n=sb)
            if t == "maxpool":
                col_, width = fa, bits
            else:
                col_, width = em.requant(fa, sb, fp, pb, b_, c_, False, q.out_bits,
                                         signed=False)
            self._finish(p, em)
            where = None if self._no_where else targets(img, c, np.stack([oy, ox], axis=1))
            p.ops.append(("read", 0, n, col_, width, False, where))
        return passes

    def _scaled_sum(self, q: QLayer, xs: list[np.ndarray], operands: list[int],
                    mults: list[tuple[int, int]], shape: tuple, relu: bool,
                    ch_offset: int = 0, passes: list[Pass] | None = None) -> list[Pass]:
        """clamp(round(sum_k x_k * b_k / 2^c)) per element of `shape` (C, H, W): each
        operand k (an input of the layer, of that shape) gathered in turn and MAC'ed by its
        multiplier into one product field (the residual add: two operands, one shift; a
        concat part: one)."""
        bits = [q.in_bits_all[k] for k in operands]
        signed = [q.in_signed[k] for k in operands]
        c = mults[0][1]
        pb = q.acc_bits + 1
        xw = max(bits)
        if xw + pb > self.usable:
            raise ScheduleError(f"{q.name}: the operand and product fields need {xw + pb} "
                                f"columns, the CAP has {self.usable}")
        try:
            capacity = self._capacity(xw, self.K)
        except ScheduleError as exc:
            raise ScheduleError(f"{q.name}: {exc}") from None
        passes = [] if passes is None else passes
        fx, fp = 0, xw
        N = len(xs[operands[0]])
        per = int(np.prod(shape))
        flat = np.concatenate([xs[k].reshape(N, -1) for k in operands], axis=1)
        total = N * per
        memo: dict = {}
        for r0 in range(0, total, self.R):
            # operand k of element e of image i is input index i * K * per + k * per + e:
            # a pass within one image reads the same layout wherever it starts; one that
            # crosses images, a layout set by where it starts in its image
            n_rows = min(total, r0 + self.R) - r0
            key = (n_rows, r0 % per if r0 % per + n_rows > per else -1)
            if self._repeat(passes, memo, key):
                continue
            img, ch, oy, ox = self._element_rows(shape, N, r0, min(total, r0 + self.R))
            p = memo[key] = self._new_pass(passes, len(img))
            em = Emitter(self.cfg, count_only=self.predict)
            n = len(img)
            em(Opc.ROWS, lo=0, hi=n)
            em(Opc.CLEAR, d=fp, n=pb)
            elem = (ch * shape[1] + oy) * shape[2] + ox
            if self._resident:         # operand i's own tensor, in its lanes
                base, step = img * per + elem, 0
            else:
                base, step = img * (len(operands) * per) + elem, per

            def index(i, base=base, step=step):
                return base + i * step

            def valid(i, n=n):
                return np.ones(n, dtype=bool)

            for i, _pad, ap, row, col, run_list in self._staged_taps(
                    em, p, flat, xw, list(range(len(operands))), index, valid, capacity,
                    q.name, operand=lambda i: operands[i]):
                em.gather_runs(fx, bits[i], ap, row, col, run_list)
                em(Opc.MAC, s=signed[i], d=fp, a=fx, imm=int(mults[i][0]), n=bits[i], m=pb)
            col_, width = em.shift_clamp(fp, pb, c, relu, q.out_bits,
                                         signed=None if relu else q.out_signed)
            self._finish(p, em)
            where = None if self._no_where else targets(img, ch + ch_offset,
                                                      np.stack([oy, ox], axis=1))
            p.ops.append(("read", 0, n, col_, width, q.out_signed, where))
        return passes

    def _add(self, q: QLayer, xs: list[np.ndarray]) -> list[Pass]:
        return self._scaled_sum(q, xs, [0, 1], q.mults, tuple(q.layer.out_shape), q.layer.relu)

    def _concat(self, q: QLayer, xs: list[np.ndarray]) -> list[Pass]:
        """Each input rescaled to the concat's scale (b, c = 1, 0 where they agree),
        placed at its channel offset. (A concat whose inputs all share its scale is done
        by the host alone: `schedule` gives it no passes.)"""
        passes: list[Pass] = []
        off = 0
        for k, (x, m) in enumerate(zip(xs, q.mults, strict=True)):
            self._scaled_sum(q, xs, [k], [m], tuple(x.shape[1:]), False, off, passes)
            off += x.shape[1]
        return passes
