"""On-chip residency: activations that stay in the tiles' MAPs between layers
(docs/scheduler.md, "On-chip residency").

A *resident* tensor lies in *lanes*: a lane is one MAP column field of `width` bits over
all `map_rows` rows; element i of the tensor (flat index image * C*H*W + (c*H + y)*W + x,
or image * F + f after a flatten or for an fc output) sits in lane i // map_rows, row
i % map_rows. Every tile holds the whole tensor in the same lanes. A layer whose inputs
are resident gathers its operands straight from its tile's lanes (no WRITE); a layer
whose output is resident moves each result field from the CAP into its lanes (XROWS +
MOVW CAP -> MAP, on the tile's clock) instead of a host READ, and with several tiles
each tile's results are then copied into the same lanes of the others (COPY packets over
the bus: two host words each, count + 1 bus cycles).

The plan (`plan_residency`) is made from shapes, widths and the graph alone, so
prediction and execution agree: walking the layers in order, a layer runs *resident*
when its inputs (loaded from the host if they are not resident yet: a WRITE per lane
into tile 0, copied to the others) and its output fit the lanes left free by the tensors
still live (first fit over the MAPs' columns), it is element-wise or a conv/fc layer,
and, under the `chan` dataflow, no live lane overlaps the weight columns of the last
MAP. Any other layer is *staged* as before: it needs the MAPs whole, so every live
resident tensor is read to the host before it (an eviction READ, from tile 0) and
loaded again if a later resident layer reads it. The network's last output is read to
the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bfimna.golden.nn.network import QNet
from bfimna.golden.spec.config import Config


@dataclass(frozen=True)
class Lanes:
    """Where a resident tensor of `size` elements lies: lane k = MAP `ap[k]`, bits
    [col[k], col[k] + width), rows 0..map_rows-1."""
    name: str
    size: int
    width: int
    rows: int
    ap: tuple[int, ...]
    col: tuple[int, ...]

    def address(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ap, row, col) of the elements `idx` (flat indices)."""
        lane, row = np.divmod(np.asarray(idx, dtype=np.int64), self.rows)
        return (np.asarray(self.ap, dtype=np.int64)[lane], row,
                np.asarray(self.col, dtype=np.int64)[lane])

    def segments(self):
        """(lane, ap, col, first element, count) of each lane in use."""
        for k, (ap, col) in enumerate(zip(self.ap, self.col, strict=True)):
            lo = k * self.rows
            yield k, ap, col, lo, min(self.rows, self.size - lo)


class LaneAllocator:
    """The MAPs' bit columns (of one tile), taken and given back a lane at a time."""

    def __init__(self, cfg: Config):
        self.maps, self.cols, self.rows = cfg.tile.maps, cfg.tile.map_cols, cfg.tile.map_rows
        self.used = np.zeros((self.maps, self.cols), dtype=bool)

    def copy(self) -> LaneAllocator:
        other = LaneAllocator.__new__(LaneAllocator)
        other.maps, other.cols, other.rows = self.maps, self.cols, self.rows
        other.used = self.used.copy()
        return other

    def take(self, name: str, size: int, width: int) -> Lanes | None:
        """Lanes for `size` elements of `width` bits, first fit over the MAPs and their
        columns; None (and nothing taken) when they do not fit."""
        need = -(-size // self.rows)
        got: list[tuple[int, int]] = []
        trial = self.used.copy()
        for m in range(self.maps):
            c = 0
            while c + width <= self.cols and len(got) < need:
                if not trial[m, c:c + width].any():
                    trial[m, c:c + width] = True
                    got.append((m, c))
                    c += width
                else:
                    c += 1
        if len(got) < need:
            return None
        self.used = trial
        return Lanes(name, size, width, self.rows, tuple(1 + m for m, _ in got),
                     tuple(c for _, c in got))

    def give(self, lanes: Lanes) -> None:
        for ap, col in zip(lanes.ap, lanes.col, strict=True):
            self.used[ap - 1, col:col + lanes.width] = False


@dataclass
class LayerResidency:
    """What the plan decides for one layer."""
    resident: bool                                     # gathers from lanes (else staged)
    inputs: list[Lanes | None] = field(default_factory=list)   # per input, when resident
    load: list[bool] = field(default_factory=list)     # per input: WRITE it from the host
    #                                                    into its lanes first
    out: Lanes | None = None                           # the output's lanes (else a READ)
    evict: list[Lanes] = field(default_factory=list)   # resident tensors read to the host
    #                                                    before this layer
    dataflow: str | None = None                        # conv, fc: the one it runs
    #                                                    (resident or staged)
    spill: list[tuple[int, int]] = field(default_factory=list)   # pos: (MAP, column) of
    #                                       each accumulator field that waits in a MAP at
    #                                       requantisation (Scheduler.spill_layout)


RESIDENT_TYPES = ("conv", "fc", "maxpool", "avgpool", "gap", "add", "concat", "flatten")


def _elements(shape: tuple) -> int:
    return int(np.prod(shape))


def plan_residency(qnet: QNet, cfg: Config, n_images: int,
                   dataflow: dict | None = None) -> dict[str, LayerResidency]:
    """The residency of every layer (module docstring), from shapes and widths only."""
    from bfimna.sched.schedule import Scheduler
    layers = qnet.layers
    plan = {q.name: LayerResidency(False) for q in layers}
    if cfg.tile.maps < 1:
        return plan
    flows = dict(qnet.plan.dataflow)
    flows.update(dataflow or {})
    last_use: dict[str, int] = {}
    for i, q in enumerate(layers):
        for name in q.inputs:
            last_use[name] = i
    size = {"input": n_images * _elements(qnet.net.input_shape)}
    width: dict[str, int] = {}
    for q in layers:
        size[q.name] = n_images * (q.layer.out_channels if q.layer.type == "fc"
                                   else _elements(q.layer.out_shape))
    for q in layers:          # a tensor's lanes are as wide as every reader reads it
        for k, name in enumerate(q.inputs):
            bits = q.in_bits_all[k] if q.in_bits_all else q.in_bits
            width[name] = bits if width.get(name, bits) == bits else -1
    producer = {q.name: q for q in layers}
    alloc = LaneAllocator(cfg)
    live: dict[str, Lanes] = {}          # resident tensors now in the MAPs
    sch = Scheduler(cfg, predict=True)
    final = layers[-1].name
    for i, q in enumerate(layers):
        t = q.layer.type
        flow = None
        wmap = None            # chan: MAP K's columns [0, weight bits) take the weights
        if t in ("conv", "fc"):   # the dataflow it runs, staged or resident (the plan
            flow = flows.get(q.name) or sch.choose_dataflow(   # keeps it: no second trial)
                q, np.zeros((n_images,) + tuple(q.layer.in_shape), dtype=np.int64))
            plan[q.name].dataflow = flow
            if flow == "chan":
                wmap = (cfg.tile.maps - 1, max(q.w_bits))
        ok = (t in RESIDENT_TYPES
              and not (t == "concat" and all(m == (1, 0) for m in q.mults))
              and all(width.get(n, -1) > 0 for n in q.inputs)
              and (flow != "pos" or sch.pos_fits(q))
              and (wmap is None or not any(
                  ap - 1 == wmap[0] and col < wmap[1] for lanes in live.values()
                  for ap, col in zip(lanes.ap, lanes.col, strict=True))))
        if ok and q.name != final:       # the output's width: what its readers read,
            w_out = width.get(q.name, -1)   # held by the layer's result field
            p = producer[q.name]      # (under activation blocks a channel's result
            ok = (w_out > 0 and (t == "flatten" or w_out <= p.out_bits)   # field can be
                  and p.out_ch_bits is None)                 # narrower than the lanes)
        entry = plan[q.name]
        if ok:
            trial_alloc = alloc.copy()
            if wmap is not None:
                trial_alloc.used[wmap[0], :wmap[1]] = True
            ins: list[Lanes] = []
            load: list[bool] = []
            for name in q.inputs:
                if name in live:
                    ins.append(live[name])
                    load.append(False)
                    continue
                got = trial_alloc.take(name, size[name], width[name])
                if got is None:
                    ok = False
                    break
                ins.append(got)
                load.append(True)
            out = None
            if ok and q.name != final:
                if t == "flatten":     # a view: the same elements in the same order
                    out = Lanes(q.name, size[q.name], ins[0].width, ins[0].rows, ins[0].ap,
                                ins[0].col)
                    ok = width.get(q.name, -1) == ins[0].width
                else:
                    out = trial_alloc.take(q.name, size[q.name], width[q.name])
                    ok = out is not None
            spill: list[tuple[int, int]] = []
            need = sch.spill_need(q) if ok and flow == "pos" else None
            if need is not None:      # lanes for the layer only, given back after it
                got = trial_alloc.take(f"{q.name}.spill", need[0] * trial_alloc.rows, need[1])
                if got is not None:
                    spill = list(zip(got.ap, got.col, strict=True))
                    trial_alloc.give(got)
            if ok:
                if wmap is not None:
                    trial_alloc.used[wmap[0], :wmap[1]] = False
                    for lanes in ins + [out]:   # (the new lanes keep clear of it)
                        if lanes is not None:
                            for ap, col in zip(lanes.ap, lanes.col, strict=True):
                                if ap - 1 == wmap[0]:
                                    trial_alloc.used[wmap[0], col:col + lanes.width] = True
                alloc = trial_alloc
                entry.resident, entry.inputs, entry.load, entry.out = True, list(ins), load, out
                entry.spill = spill
                for name, lanes in zip(q.inputs, ins, strict=True):
                    live[name] = lanes
                if out is not None:
                    live[q.name] = out
        if not entry.resident:          # staged: the MAPs whole, every live tensor out
            entry.evict = list(live.values())
            live.clear()
            alloc = LaneAllocator(cfg)
        for name in set(q.inputs):      # tensors read for the last time give their lanes
            if last_use.get(name) == i and name in live:
                lanes = live.pop(name)
                if not any(v.ap == lanes.ap and v.col == lanes.col for v in live.values()):
                    alloc.give(lanes)
    return plan


def load_copies(lanes: Lanes, tiles: int) -> list[tuple[int, int, int, int, int, int, int]]:
    """A tensor loaded into tile 0's lanes, copied to the same lanes of every other tile:
    COPY packets (src tile, ap, row, count, col, width, dst tile)."""
    return [(0, ap, 0, count, col, lanes.width, t) for _k, ap, col, _lo, count in
            lanes.segments() for t in range(1, tiles)]
