"""The scheduler: maps the layers of an integer network (golden/nn/network.py) onto the
configured tiles and emits, per layer, the host program that runs it (docs/scheduler.md).

A layer is cut into *passes*: at most R output rows of the CAP each, over a group of
images whose inputs sit side by side in the MAPs (one `in_bits`-wide column slot per
image; value v = c*H*W + y*W + x of an image's input in MAP 1 + v // map_rows, row
v % map_rows). A pass stages its inputs into the MAPs (WRITE packets), gathers operands
from the MAPs into CAP fields (XROWS + MOVW, runs of rows with a constant source
stride), computes, requantises, and the host READs the result field. Passes go to the
tiles round-robin.

Dataflows (conv and fc layers; max pooling has one):
- `pos`: rows = (image, output position); the weights are MAC immediates broadcast to
  all rows, one MAC per nonzero weight (CSD digits set its cost), accumulators for as
  many output channels as the columns hold.
- `chan`: rows = (output channel, image, position); the input of each row is gathered,
  its weight too (from a MAP the host fills with the weights), MUL per tap and ADD into
  the accumulator: one MUL serves every channel at once. Needs a MAP for the weights.
The scheduler predicts the cycles of both from the cost model and takes the cheaper,
unless the precision plan names one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bfimna.golden.nn.network import QLayer
from bfimna.golden.spec import costs
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, encode, validate

DATAFLOWS = ("pos", "chan")


class ScheduleError(ValueError):
    """A layer does not fit the configured hardware (the message says what is short)."""


def instr_cycles(word: int, cfg: Config) -> int:
    """Exact cycles of one legal instruction word on a tile (the cost model)."""
    return costs.instr_cycles(word, cfg.ap)


# validated, encoded words per configuration: (Instr, xrows) -> word. The entry keeps the
# Config alive, so its id() is not reused while cached; each table is bounded.
_WORD_CACHE: dict[int, tuple[Config, dict[tuple[Instr, tuple[int, int, int]], int]]] = {}
_WORD_CACHE_MAX = 1 << 18


def _checked_words(cfg: Config) -> dict[tuple[Instr, tuple[int, int, int]], int]:
    entry = _WORD_CACHE.get(id(cfg))
    if entry is None or entry[0] is not cfg:
        entry = _WORD_CACHE[id(cfg)] = (cfg, {})
    if len(entry[1]) > _WORD_CACHE_MAX:
        entry[1].clear()
    return entry[1]


class Emitter:
    """Instruction words of one pass, each checked as the hardware will check it."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.words: list[int] = []
        self.xrows = (0, 0, 0)

    def __call__(self, op: Opc, **kw) -> None:
        ins = Instr(op=op, **kw)
        cache = _checked_words(self.cfg)
        key = (ins, self.xrows)
        word = cache.get(key)
        if word is None:   # validate + encode cost ~40 us; passes repeat instructions a lot
            why = validate(ins, self.cfg.ap, self.cfg, self.xrows)
            if why is not None:
                raise ScheduleError(f"scheduler emitted an illegal {op.name} ({why}): {kw}")
            word = cache[key] = encode(ins)
        if op == Opc.XROWS:
            self.xrows = (ins.srow, ins.drow, ins.stride)
        self.words.append(word)

    def take(self) -> list[int]:
        w, self.words = self.words, []
        return w

    def gather(self, dst_col: int, width: int, sources: list) -> None:
        """CAP rows r get bits [col, col+width) of (ap, row) = sources[r] (None: skip),
        in runs of consecutive rows with one source AP and column and a constant row
        stride: XROWS + MOVW per run."""
        n, r = len(sources), 0
        while r < n:
            if sources[r] is None:
                r += 1
                continue
            ap, row, col = sources[r]
            k, stride = 1, None
            while r + k < n and sources[r + k] is not None:
                a2, row2, c2 = sources[r + k]
                st = row2 - sources[r + k - 1][1]
                if a2 != ap or c2 != col or not 0 <= st <= 255 or \
                        (stride is not None and st != stride):
                    break
                stride = st
                k += 1
            self(Opc.XROWS, srow=row, drow=r, stride=stride or 0)
            self(Opc.MOVW, sap=ap, dap=0, a=col, d=dst_col, n=width, count=k)
            r += k

    def requant(self, acc: int, acc_bits: int, p: int, pb: int, b: int, c: int,
                relu: bool, out_bits: int) -> tuple[int, int]:
        """acc -> clamp(round(acc * b / 2^c)) at the returned (column, width)."""
        self(Opc.CLEAR, d=p, n=pb)
        self(Opc.MAC, s=True, d=p, a=acc, imm=int(b), n=acc_bits, m=pb)
        if c:
            self(Opc.SHR, s=True, d=p, n=pb, m=int(c))
        r, rw = p + int(c), pb - int(c)
        if relu:
            self(Opc.RELU, d=r, n=rw)
        if out_bits < rw:
            self(Opc.CLAMP, s=not relu, d=r, n=rw, m=out_bits)
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
    images: list[int]
    ops: list = field(default_factory=list)   # ("write", ap, col, width, values)
    #                                            | ("instr", words)
    #                                            | ("read", lo, n, col, width, signed, targets)
    predicted: int = 0


@dataclass
class LayerSchedule:
    layer: QLayer
    dataflow: str
    passes: list[Pass]

    @property
    def predicted(self) -> int:
        return sum(p.predicted for p in self.passes)


class Scheduler:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.R = cfg.ap.rows
        self.usable = cfg.ap.cols - RESERVED_COLS
        self.mp = cfg.map_ap
        self.K = cfg.tile.maps

    # -- placement of inputs in the MAPs ------------------------------------------------------
    def _slots(self, q: QLayer, n_maps: int) -> int:
        C, H, W = q.layer.in_shape
        if n_maps < 1:
            raise ScheduleError(f"{q.name}: needs at least one MAP for its inputs")
        if C * H * W > n_maps * self.mp.rows:
            raise ScheduleError(f"{q.name}: {C * H * W} input values per image do not fit "
                                f"{n_maps} MAP(s) of {self.mp.rows} rows")
        slots = self.mp.cols // q.in_bits
        if slots < 1:
            raise ScheduleError(f"{q.name}: {q.in_bits}-bit inputs do not fit a MAP word "
                                f"of {self.mp.cols} bits")
        return slots

    def _source(self, q: QLayer, slot: int, v: int | None):
        if v is None:
            return None
        return (1 + v // self.mp.rows, v % self.mp.rows, slot * q.in_bits)

    def _stage(self, q: QLayer, x: np.ndarray, images: list[int], n_maps: int) -> list:
        flat = x.reshape(len(x), -1)
        ops = []
        total = flat.shape[1]
        for m in range(n_maps):
            lo, hi = m * self.mp.rows, min(total, (m + 1) * self.mp.rows)
            if lo >= hi:
                break
            for s, img in enumerate(images):
                ops.append(("write", 1 + m, s * q.in_bits, q.in_bits,
                            [int(v) for v in flat[img, lo:hi]]))
        return ops

    # -- taps ------------------------------------------------------------------------------------
    @staticmethod
    def _conv_src(q: QLayer):
        """(taps, positions, src(pos, tap) -> input index or None, weight(j, tap))."""
        layer, w = q.layer, q.w
        assert w is not None   # conv and fc layers have weights
        C, H, W = layer.in_shape
        if layer.type == "fc":
            F = C * H * W
            return list(range(F)), [(0, 0)], (lambda pos, t: t), (lambda j, t: int(w[j, t]))
        _, OH, OW = layer.out_shape
        k, st, pad = layer.kernel, layer.stride, layer.pad
        taps = [(ci, ky, kx) for ci in range(C) for ky in range(k) for kx in range(k)]
        positions = [(oy, ox) for oy in range(OH) for ox in range(OW)]

        def src(pos, t):
            (oy, ox), (ci, ky, kx) = pos, t
            iy, ix = oy * st + ky - pad, ox * st + kx - pad
            return ci * H * W + iy * W + ix if 0 <= iy < H and 0 <= ix < W else None

        return taps, positions, src, (lambda j, t: int(w[j, t[0], t[1], t[2]]))

    # -- dataflows ---------------------------------------------------------------------------------
    def schedule(self, q: QLayer, x: np.ndarray, dataflow: str | None = None) -> LayerSchedule:
        """The passes that compute layer q on inputs x (N, C, H, W) (all N images)."""
        if q.layer.type == "maxpool":
            return LayerSchedule(q, "pos", self._maxpool(q, x))
        if dataflow is None:   # predicted cycles of one image group under each dataflow
            costs = {}
            group = x[:max(1, self.mp.cols // q.in_bits)]
            for f in DATAFLOWS:
                try:
                    costs[f] = sum(p.predicted for p in self._weighted(q, group, f))
                except ScheduleError:
                    continue
            if not costs:
                self._weighted(q, x[:1], "pos")    # raises the reason
            dataflow = min(costs, key=costs.__getitem__)
        return LayerSchedule(q, dataflow, self._weighted(q, x, dataflow))

    def _weighted(self, q: QLayer, x: np.ndarray, flow: str) -> list[Pass]:
        in_maps = self.K if flow == "pos" else self.K - 1
        if flow == "chan" and self.K < 2:
            raise ScheduleError(f"{q.name}: the chan dataflow needs 2 MAPs (inputs, weights)")
        slots = self._slots(q, in_maps)
        taps, positions, src, weight = self._conv_src(q)
        Kout = q.layer.out_channels
        assert q.b is not None   # conv and fc layers have requantisation multipliers
        mb = max(int(b).bit_length() for b in q.b)
        pb = q.acc_bits + mb + 1
        passes: list[Pass] = []
        n_img = len(x)
        for g0 in range(0, n_img, slots):
            images = list(range(g0, min(n_img, g0 + slots)))
            rows: list[tuple]
            if flow == "pos":
                rows = [(s, pos) for s in range(len(images)) for pos in positions]
            else:
                rows = [(j, s, pos) for j in range(Kout) for s in range(len(images))
                        for pos in positions]
            for r0 in range(0, len(rows), self.R):
                chunk = rows[r0:r0 + self.R]
                p = Pass(tile=len(passes) % self.cfg.system.tiles, images=images)
                p.ops += self._stage(q, x, images, in_maps)
                if flow == "pos":
                    self._pos_pass(q, p, chunk, images, taps, src, weight, pb)
                else:
                    self._chan_pass(q, p, chunk, images, taps, src, weight, pb)
                passes.append(p)
        return passes

    def _finish(self, p: Pass, em: Emitter) -> None:
        words = em.take()
        if words:
            p.ops.append(("instr", words))
            p.predicted += sum(instr_cycles(w, self.cfg) for w in words)

    def _pos_pass(self, q, p, chunk, images, taps, src, weight, pb):
        ab, ib = q.acc_bits, q.in_bits
        work = max(ib, pb)
        G = (self.usable - work) // ab
        if G < 1:
            raise ScheduleError(f"{q.name} (pos): an accumulator ({ab} bits) and the work "
                                f"field ({work} bits) need {ab + work} columns, the CAP has "
                                f"{self.usable}")
        xc = pc = G * ab
        em = Emitter(self.cfg)
        n = len(chunk)
        em(Opc.ROWS, lo=0, hi=n)
        Kout = q.layer.out_channels
        for j0 in range(0, Kout, G):
            js = list(range(j0, min(Kout, j0 + G)))
            for g, j in enumerate(js):
                em(Opc.CLEAR, d=g * ab, n=ab)
                em.add_const(g * ab, ab, int(q.bias[j]))
            for t in taps:
                sources = [self._source(q, s, src(pos, t)) for s, pos in chunk]
                ws = [weight(j, t) for j in js]
                if not any(ws):
                    continue
                if any(sv is None for sv in sources):
                    em(Opc.CLEAR, d=xc, n=ib)
                em.gather(xc, ib, sources)
                for g, wv in enumerate(ws):
                    if wv:
                        em(Opc.MAC, d=g * ab, a=xc, imm=wv, n=ib, m=ab)
            for g, j in enumerate(js):
                col, width = em.requant(g * ab, ab, pc, pb, q.b[j], q.c[j], q.layer.relu,
                                        q.out_bits)
                self._finish(p, em)
                targets = [(images[s], j, pos) for s, pos in chunk]
                p.ops.append(("read", 0, n, col, width, q.out_signed, targets))

    def _chan_pass(self, q, p, chunk, images, taps, src, weight, pb):
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
        n = len(chunk)
        ranges = []            # (j, lo, hi) rows of each channel in this pass
        for r, (j, _s, _pos) in enumerate(chunk):
            if ranges and ranges[-1][0] == j:
                ranges[-1][2] = r + 1
            else:
                ranges.append([j, r, r + 1])
        em = Emitter(self.cfg)
        em(Opc.ROWS, lo=0, hi=n)
        em(Opc.CLEAR, d=acc, n=ab)
        em(Opc.CLEAR, d=xc, n=xw)
        for j, lo, hi in ranges:
            em(Opc.ROWS, lo=lo, hi=hi)
            em.add_const(acc, ab, int(q.bias[j]))
        em(Opc.ROWS, lo=0, hi=n)
        per_stage = max(1, self.mp.rows // Kout)
        live = [j for j, _lo, _hi in ranges]
        for t0 in range(0, len(taps), per_stage):
            stage = taps[t0:t0 + per_stage]
            vals = [weight(j, t) & ((1 << wb) - 1) for t in stage for j in range(Kout)]
            self._finish(p, em)
            p.ops.append(("write", wmap, 0, wb, vals))
            for ti, t in enumerate(stage):
                if not any(weight(j, t) for j in live):
                    continue
                sources = [self._source(q, s, src(pos, t)) for _j, s, pos in chunk]
                if any(sv is None for sv in sources):
                    em(Opc.CLEAR, d=xc, n=ib)
                em.gather(xc, ib, sources)
                em.gather(wc, wb, [(wmap, ti * Kout + j, 0) for j, _s, _pos in chunk])
                em(Opc.MUL, s=True, d=prod, a=xc, b=wc, n=xw, m=wb)
                em(Opc.ADD, d=acc, a=prod, n=ab)
        for j, lo, hi in ranges:
            em(Opc.ROWS, lo=lo, hi=hi)
            col, width = em.requant(acc, ab, pc, pb, q.b[j], q.c[j], q.layer.relu, q.out_bits)
            self._finish(p, em)
            targets = [(images[s], j, pos) for _j, s, pos in chunk[lo:hi]]
            p.ops.append(("read", lo, hi - lo, col, width, q.out_signed, targets))

    def _maxpool(self, q: QLayer, x: np.ndarray) -> list[Pass]:
        layer = q.layer
        C, H, W = layer.in_shape
        _, OH, OW = layer.out_shape
        k, st, bits = layer.kernel, layer.stride, q.in_bits
        if 2 * bits > self.usable:
            raise ScheduleError(f"{q.name}: two {bits}-bit fields do not fit the CAP")
        slots = self._slots(q, self.K)
        passes: list[Pass] = []
        for g0 in range(0, len(x), slots):
            images = list(range(g0, min(len(x), g0 + slots)))
            rows = [(s, (c, py, px)) for s in range(len(images)) for c in range(C)
                    for py in range(OH) for px in range(OW)]
            for r0 in range(0, len(rows), self.R):
                chunk = rows[r0:r0 + self.R]
                p = Pass(tile=len(passes) % self.cfg.system.tiles, images=images)
                p.ops += self._stage(q, x, images, self.K)
                em = Emitter(self.cfg)
                em(Opc.ROWS, lo=0, hi=len(chunk))
                for e, (dy, dx) in enumerate((dy, dx) for dy in range(k) for dx in range(k)):
                    sources = [self._source(q, s, c * H * W + (py * st + dy) * W + px * st + dx)
                               for s, (c, py, px) in chunk]
                    em.gather(0 if e == 0 else bits, bits, sources)
                    if e:
                        em(Opc.MAX, d=0, a=bits, n=bits)
                self._finish(p, em)
                targets = [(images[s], c, (py, px)) for s, (c, py, px) in chunk]
                p.ops.append(("read", 0, len(chunk), 0, bits, False, targets))
                passes.append(p)
        return passes
