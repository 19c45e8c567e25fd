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
unless the precision plan names one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bfimna.golden.nn.network import QLayer
from bfimna.golden.spec import costs
from bfimna.golden.spec.config import APConfig, Config
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
    images: list[int]
    rows: int = 0                             # CAP rows its outputs occupy
    ops: list = field(default_factory=list)   # ("write", ap, col, width, values)
    #                                            | ("instr", words)
    #                                            | ("read", lo, n, col, width, signed, targets)
    predicted: int = 0


@dataclass
class LayerSchedule:
    layer: QLayer
    dataflow: str
    passes: list[Pass]
    host: Callable[..., np.ndarray] | None = None   # a layer with no work on the tiles
    #                                                  (flatten, a concat of equal scales)

    @property
    def predicted(self) -> int:
        return sum(p.predicted for p in self.passes)


Key = tuple[int, int, int]          # (which input of the layer, image, flat index)


class Scheduler:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.R = cfg.ap.rows
        self.usable = cfg.ap.cols - RESERVED_COLS
        self.mp = cfg.map_ap
        self.K = cfg.tile.maps

    # -- staging: a pass's receptive field into the MAPs -----------------------------------------
    def _capacity(self, width: int, n_maps: int) -> int:
        if n_maps < 1:
            raise ScheduleError("needs at least one MAP for its inputs")
        slots = self.mp.cols // width
        if slots < 1:
            raise ScheduleError(f"{width}-bit inputs do not fit a MAP word of "
                                f"{self.mp.cols} bits")
        return n_maps * self.mp.rows * slots

    def _stage(self, xs: list[np.ndarray], keys: set[Key], width: int,
               n_maps: int) -> tuple[list, dict[Key, tuple[int, int, int]]]:
        """WRITE ops that put the values of `keys` into MAPs 1..n_maps (sorted, so that
        neighbouring inputs land in neighbouring rows of one column slot), and where
        each went: key -> (ap, row, col)."""
        rows, slots = self.mp.rows, self.mp.cols // width
        order = sorted(keys)
        addr: dict[Key, tuple[int, int, int]] = {}
        ops = []
        flat = [x.reshape(len(x), -1) for x in xs]
        for i0 in range(0, len(order), rows):
            seg = order[i0:i0 + rows]
            m, slot = divmod(i0 // rows, slots)
            ap, col = 1 + m, slot * width
            for r, key in enumerate(seg):
                addr[key] = (ap, r, col)
            ops.append(("write", ap, col, width, [int(flat[k][img, v]) for k, img, v in seg]))
        return ops, addr

    def _tap_groups(self, taps: list, keys_of, capacity: int, what: str) -> list[list]:
        """`taps` in groups whose receptive fields (union of keys_of(tap)) fit `capacity`
        MAP slots, in order."""
        groups: list[list] = []
        cur: list = []
        seen: set[Key] = set()
        for t in taps:
            ks = keys_of(t)
            if len(ks) > capacity:
                raise ScheduleError(f"{what}: one tap of a pass reads {len(ks)} input values, "
                                    f"the MAPs hold {capacity}")
            new = ks - seen
            if cur and len(seen) + len(new) > capacity:
                groups.append(cur)
                cur, seen, new = [], set(), ks
            cur.append(t)
            seen |= new
        if cur:
            groups.append(cur)
        return groups

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
        cg, kg = C // layer.groups, layer.out_channels // layer.groups

        def src(pos, t):
            (oy, ox), (ci, ky, kx) = pos, t
            iy, ix = oy * st + ky - pad, ox * st + kx - pad
            return ci * H * W + iy * W + ix if 0 <= iy < H and 0 <= ix < W else None

        def weight(j, t):          # a tap outside output channel j's group weighs 0
            ci, ky, kx = t
            g = j // kg
            return int(w[j, ci - g * cg, ky, kx]) if g * cg <= ci < (g + 1) * cg else 0

        return taps, positions, src, weight

    # -- layers ----------------------------------------------------------------------------------
    def schedule(self, q: QLayer, xs, dataflow: str | None = None) -> LayerSchedule:
        """The passes that compute layer q on its input tensors xs (a list in q.inputs'
        order, or the one array) for all N images."""
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
        if dataflow is None:   # predicted cycles of a few images under each dataflow
            trial = {}
            group = x[:max(1, min(len(x), self.R // max(1, len(self._conv_src(q)[1]))))]
            for f in DATAFLOWS:
                try:
                    trial[f] = sum(p.predicted for p in self._weighted(q, group, f))
                except ScheduleError:
                    continue
            if not trial:
                self._weighted(q, x[:1], "pos")    # raises the reason
            dataflow = min(trial, key=trial.__getitem__)
        return LayerSchedule(q, dataflow, self._weighted(q, x, dataflow))

    def _new_pass(self, passes: list[Pass], images, rows: int) -> Pass:
        p = Pass(tile=len(passes) % self.cfg.system.tiles, images=sorted(set(images)),
                 rows=rows)
        passes.append(p)
        return p

    def lane_bound(self, q: QLayer, n_images: int) -> float | None:
        """The lane-parallel bound of a conv or fc layer: its MACs with a nonzero weight,
        each at the cycles of one MAC by that weight at the layer's precision (`MAC`
        d += x * w: in_bits x, acc_bits accumulator; the pos dataflow's inner step), over
        every output position and image, spread over all rows of all tiles. Zero weights
        cost nothing (the scheduler skips them). None for other layers."""
        if q.layer.type not in ("conv", "fc") or q.w is None:
            return None
        values, counts = np.unique(q.w[q.w != 0], return_counts=True)
        wide = APConfig(rows=self.cfg.ap.rows, cols=256, dims=self.cfg.ap.dims,
                        counter_bits=self.cfg.ap.counter_bits)
        per = sum(int(c) * costs.instr_cycles(
            encode(Instr(op=Opc.MAC, d=0, a=q.acc_bits, imm=int(v), n=q.in_bits,
                         m=q.acc_bits)), wide) for v, c in zip(values, counts, strict=True))
        _, oh, ow = q.layer.out_shape
        return per * oh * ow * n_images / (self.R * self.cfg.system.tiles)

    def _finish(self, p: Pass, em: Emitter) -> None:
        words = em.take()
        if words:
            p.ops.append(("instr", words))
            p.predicted += sum(instr_cycles(w, self.cfg) for w in words)

    def _weighted(self, q: QLayer, x: np.ndarray, flow: str) -> list[Pass]:
        in_maps = self.K if flow == "pos" else self.K - 1
        if flow == "chan" and self.K < 2:
            raise ScheduleError(f"{q.name}: the chan dataflow needs 2 MAPs (inputs, weights)")
        try:
            capacity = self._capacity(q.in_bits, in_maps)
        except ScheduleError as exc:
            raise ScheduleError(f"{q.name}: {exc}") from None
        taps, positions, src, weight = self._conv_src(q)
        Kout = q.layer.out_channels
        assert q.b is not None   # conv and fc layers have requantisation multipliers
        mb = max(int(b).bit_length() for b in q.b)
        pb = q.acc_bits + mb + 1
        passes: list[Pass] = []
        n_img = len(x)
        rows: list[tuple]
        if flow == "pos":
            rows = [(img, pos) for img in range(n_img) for pos in positions]
        else:
            rows = [(j, img, pos) for j in range(Kout) for img in range(n_img)
                    for pos in positions]
        for r0 in range(0, len(rows), self.R):
            chunk = rows[r0:r0 + self.R]
            p = self._new_pass(passes, [r[-2] for r in chunk], len(chunk))
            if flow == "pos":
                self._pos_pass(q, p, x, chunk, taps, src, weight, pb, capacity)
            else:
                self._chan_pass(q, p, x, chunk, taps, src, weight, pb, capacity)
        return passes

    def _pos_pass(self, q, p, x, chunk, taps, src, weight, pb, capacity):
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

        def keys_of(t):
            return {(0, img, v) for img, pos in chunk if (v := src(pos, t)) is not None}

        # the whole pass's field staged once when it fits the MAPs (the usual case);
        # otherwise each group of accumulators stages its taps in groups that fit
        everything = self._tap_groups([t for t in taps if any(weight(j, t)
                                                               for j in range(Kout))],
                                      keys_of, capacity, q.name)
        shared = None
        if len(everything) <= 1:
            ops, shared = self._stage([x], set().union(set(), *map(keys_of, *everything)),
                                      ib, self.K)
            p.ops += ops
        for j0 in range(0, Kout, G):
            js = list(range(j0, min(Kout, j0 + G)))
            for g, j in enumerate(js):
                em(Opc.CLEAR, d=g * ab, n=ab)
                em.add_const(g * ab, ab, int(q.bias[j]))
            live = [t for t in taps if any(weight(j, t) for j in js)]
            for group in ([live] if shared is not None
                          else self._tap_groups(live, keys_of, capacity, q.name)):
                if shared is None:
                    self._finish(p, em)
                    ops, addr = self._stage([x], set().union(*map(keys_of, group)), ib,
                                            self.K)
                    p.ops += ops
                else:
                    addr = shared
                for t in group:
                    sources = [addr.get((0, img, v)) if (v := src(pos, t)) is not None
                               else None for img, pos in chunk]
                    if any(sv is None for sv in sources):
                        em(Opc.CLEAR, d=xc, n=ib)
                    em.gather(xc, ib, sources)
                    for g, j in enumerate(js):
                        wv = weight(j, t)
                        if wv:
                            em(Opc.MAC, d=g * ab, a=xc, imm=wv, n=ib, m=ab)
            for g, j in enumerate(js):
                col, width = em.requant(g * ab, ab, pc, pb, q.b[j], q.c[j], q.layer.relu,
                                        q.out_bits)
                self._finish(p, em)
                targets = [(img, j, pos) for img, pos in chunk]
                p.ops.append(("read", 0, n, col, width, q.out_signed, targets))

    def _chan_pass(self, q, p, x, chunk, taps, src, weight, pb, capacity):
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
        for r, (j, _img, _pos) in enumerate(chunk):
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
        live_j = [j for j, _lo, _hi in ranges]
        live = [t for t in taps if any(weight(j, t) for j in live_j)]
        positions = {(img, pos) for _j, img, pos in chunk}

        def keys_of(t):
            return {(0, img, v) for img, pos in positions if (v := src(pos, t)) is not None}

        for group in self._tap_groups(live, keys_of, capacity, q.name):
            self._finish(p, em)
            ops, addr = self._stage([x], set().union(*map(keys_of, group)), ib, self.K - 1)
            p.ops += ops
            for t0 in range(0, len(group), per_stage):
                stage = group[t0:t0 + per_stage]
                vals = [weight(j, t) & ((1 << wb) - 1) for t in stage for j in range(Kout)]
                self._finish(p, em)
                p.ops.append(("write", wmap, 0, wb, vals))
                for ti, t in enumerate(stage):
                    sources = [addr.get((0, img, v)) if (v := src(pos, t)) is not None
                               else None for _j, img, pos in chunk]
                    if any(sv is None for sv in sources):
                        em(Opc.CLEAR, d=xc, n=ib)
                    em.gather(xc, ib, sources)
                    em.gather(wc, wb, [(wmap, ti * Kout + j, 0) for j, _img, _pos in chunk])
                    em(Opc.MUL, s=True, d=prod, a=xc, b=wc, n=xw, m=wb)
                    em(Opc.ADD, d=acc, a=prod, n=ab)
        for j, lo, hi in ranges:
            em(Opc.ROWS, lo=lo, hi=hi)
            col, width = em.requant(acc, ab, pc, pb, q.b[j], q.c[j], q.layer.relu, q.out_bits)
            self._finish(p, em)
            targets = [(img, j, pos) for _j, img, pos in chunk[lo:hi]]
            p.ops.append(("read", lo, hi - lo, col, width, q.out_signed, targets))

    # -- element-wise layers: rows = (image, channel, output position) ----------------------------
    def _elements(self, shape: tuple, n_img: int) -> list[tuple]:
        C, OH, OW = shape
        return [(img, c, (oy, ox)) for img in range(n_img) for c in range(C)
                for oy in range(OH) for ox in range(OW)]

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
        rows = self._elements(layer.out_shape, len(x))

        def src(c, pos, tap):
            iy, ix = pos[0] * st + tap[0] - pad, pos[1] * st + tap[1] - pad
            return c * H * W + iy * W + ix if 0 <= iy < H and 0 <= ix < W else None

        for r0 in range(0, len(rows), self.R):
            chunk = rows[r0:r0 + self.R]
            p = self._new_pass(passes, [r[0] for r in chunk], len(chunk))
            em = Emitter(self.cfg)
            n = len(chunk)
            em(Opc.ROWS, lo=0, hi=n)
            first = t == "maxpool"     # the first element goes straight into the max field
            if t != "maxpool":
                em(Opc.CLEAR, d=fa, n=2 * sb)

            def keys_of(tap, chunk=chunk):
                return {(0, img, v) for img, c, pos in chunk
                        if (v := src(c, pos, tap)) is not None}

            for group in self._tap_groups(window, keys_of, capacity, q.name):
                self._finish(p, em)
                ops, addr = self._stage([x], set().union(*map(keys_of, group)), bits, self.K)
                p.ops += ops
                for tap in group:
                    sources = [addr.get((0, img, v)) if (v := src(c, pos, tap)) is not None
                               else None for img, c, pos in chunk]
                    into = fa if first else fw
                    if any(sv is None for sv in sources):
                        em(Opc.CLEAR, d=into, n=bits)
                    em.gather(into, bits, sources)
                    if first:
                        first = False
                    elif t == "maxpool":
                        em(Opc.MAX, d=fa, a=fw, n=bits)
                    else:
                        em(Opc.ADD, d=fa, a=fw, n=sb)
            if t == "maxpool":
                col, width = fa, bits
            else:
                col, width = em.requant(fa, sb, fp, pb, b_, c_, False, q.out_bits,
                                        signed=False)
            self._finish(p, em)
            targets = [(img, c, pos) for img, c, pos in chunk]
            p.ops.append(("read", 0, n, col, width, False, targets))
        return passes

    def _scaled_sum(self, q: QLayer, xs: list[np.ndarray], operands: list[int],
                    mults: list[tuple[int, int]], rows: list[tuple], index,
                    relu: bool, ch_offset: int = 0, passes: list[Pass] | None = None
                    ) -> list[Pass]:
        """clamp(round(sum_k x_k * b_k / 2^c)) per element: each operand k (an input of
        the layer) gathered in turn and MAC'ed by its multiplier into one product field
        (the residual add: two operands, one shift; a concat part: one)."""
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
        for r0 in range(0, len(rows), self.R):
            chunk = rows[r0:r0 + self.R]
            p = self._new_pass(passes, [r[0] for r in chunk], len(chunk))
            em = Emitter(self.cfg)
            n = len(chunk)
            em(Opc.ROWS, lo=0, hi=n)
            em(Opc.CLEAR, d=fp, n=pb)

            def keys_of(k, chunk=chunk):
                return {(k, img, index(cc, pos)) for img, cc, pos in chunk}

            for group in self._tap_groups(operands, keys_of, capacity, q.name):
                self._finish(p, em)
                ops, addr = self._stage(xs, set().union(*map(keys_of, group)), xw, self.K)
                p.ops += ops
                for k in group:
                    i = operands.index(k)
                    em.gather(fx, bits[i], [addr[(k, img, index(cc, pos))]
                                            for img, cc, pos in chunk])
                    em(Opc.MAC, s=signed[i], d=fp, a=fx, imm=int(mults[i][0]), n=bits[i],
                       m=pb)
            col, width = em.shift_clamp(fp, pb, c, relu, q.out_bits,
                                        signed=None if relu else q.out_signed)
            self._finish(p, em)
            targets = [(img, cc + ch_offset, pos) for img, cc, pos in chunk]
            p.ops.append(("read", 0, n, col, width, q.out_signed, targets))
        return passes

    def _add(self, q: QLayer, xs: list[np.ndarray]) -> list[Pass]:
        C, H, W = q.layer.out_shape
        return self._scaled_sum(q, xs, [0, 1], q.mults, self._elements((C, H, W), len(xs[0])),
                                lambda c, pos: c * H * W + pos[0] * W + pos[1], q.layer.relu)

    def _concat(self, q: QLayer, xs: list[np.ndarray]) -> list[Pass]:
        """Each input rescaled to the concat's scale (b, c = 1, 0 where they agree),
        placed at its channel offset. (A concat whose inputs all share its scale is done
        by the host alone: `schedule` gives it no passes.)"""
        passes: list[Pass] = []
        off = 0
        for k, (x, m) in enumerate(zip(xs, q.mults, strict=True)):
            C, H, W = x.shape[1:]
            self._scaled_sum(q, xs, [k], [m], self._elements((C, H, W), len(x)),
                             lambda c, pos, H=H, W=W: c * H * W + pos[0] * W + pos[1],
                             False, off, passes)
            off += C
        return passes
