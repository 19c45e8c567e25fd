"""Run a network layer by layer on a backend through the host driver, check every layer
bit-exactly against the golden CNN reference, and count cycles (docs/scheduler.md)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from bfimna.golden.host.program import MAX_COUNT as _MAX_COUNT
from bfimna.golden.host.program import HostProgram
from bfimna.golden.nn.network import QNet, layer_forward
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import copy_cycles
from bfimna.golden.spec.uops import ACTIVITY_KEYS
from bfimna.sched.resident import Lanes, LayerResidency, load_copies, plan_residency
from bfimna.sched.schedule import LayerSchedule, Scheduler, pass_words


@dataclass
class LayerResult:
    name: str
    dataflow: str
    passes: int
    predicted: int               # cycles from the cost model (sum over tiles)
    counted: int | None          # cycles the backend's tile counters report (summed)
    busiest_tile: int            # predicted cycles of the most loaded tile
    host_words: int              # words sent to the system for this layer
    bit_exact: bool | None       # None: predicted only, not executed
    wall_s: float
    sim_cycles: int | None = None
    type: str = ""
    rows_used: float = 0.0       # share of the CAP rows its passes occupy
    bound: float | None = None   # lane-parallel bound (conv, fc), cycles
    macs: int = 0                # multiply-accumulates per run (conv, fc)
    activity: dict = field(default_factory=dict)   # predicted, summed over tiles
    #                              (golden/spec/costs.py ACTIVITY_KEYS; energy depends on it)
    activity_counted: dict | None = None    # what the golden tiles counted (None: not run
    #                                         on golden)
    tile_cycles: list[int] = field(default_factory=list)   # predicted cycles per tile
    tile_wr_ops: list[int] = field(default_factory=list)   # WR micro-ops per tile (a
    #                                         technology with slow writes stalls on them)
    host_out: int = 0            # words the system sends back for this layer (READs)
    residency: str = "host"      # "host": staged from and read to the host; "chip": its
    #                              inputs gathered from lanes (sched/resident.py)
    segment: int | None = None   # resident runs: the program (segment) it ran in
    copy_words: int = 0          # words copied tile to tile over the bus (COPY packets)
    copy_cycles: int = 0         # their bus cycles (golden/spec/isa.py: copy_cycles)
    copy_bits: int = 0           # row bits they read and write (2 x words x width)

    @property
    def vs_bound(self) -> float | None:
        """The makespan (busiest tile) over the lane-parallel bound."""
        return self.busiest_tile / self.bound if self.bound else None


@dataclass
class Segment:
    """Resident runs: consecutive layers run as one host program (the system keeps its
    state between them); its counted cycles are checked against the sum of its layers'
    predictions."""
    layers: list[str]
    predicted: int
    counted: list[int]           # per tile
    host_words: int              # sent, without the check reads
    check_words: int             # READs sent only to check intermediate layers
    wall_s: float


@dataclass
class RunReport:
    layers: list[LayerResult] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)

    @property
    def predictions(self) -> np.ndarray:
        return self.outputs[-1].reshape(len(self.outputs[-1]), -1).argmax(axis=1)


class Mismatch(AssertionError):
    """A layer's output or cycle count differs from the reference."""


def host_words(sched: LayerSchedule) -> int:
    """The words host_program(sched) sends, without building its packets (a COPY is
    two)."""
    return sum(pass_words(p) for p in sched.passes) + 2 * len(sched.copies)


def host_out(sched: LayerSchedule) -> int:
    """The words the system sends back for sched's READs."""
    return sum(op[2] for p in sched.passes for op in p.ops if op[0] == "read")


def residency_copies(r: LayerResidency | None, tiles: int) -> list:
    """The COPY packets of a layer's loads (tile 0's lanes to the other tiles')."""
    if r is None:
        return []
    return [c for lanes, load in zip(r.inputs, r.load, strict=True) if load and lanes
            for c in load_copies(lanes, tiles)]


def residency_words(r: LayerResidency | None, tiles: int = 1) -> tuple[int, int]:
    """(sent, received) host words of a layer's loads (WRITE of a host tensor into tile
    0's lanes, COPY packets to the other tiles) and evictions (READ of a resident tensor
    before a staged layer)."""
    sent = back = 0
    if r is None:
        return 0, 0
    sent += 2 * len(residency_copies(r, tiles))
    for lanes, load in zip(r.inputs, r.load, strict=True):
        if load and lanes is not None:
            for *_, count in lanes.segments():
                sent += count + -(-count // _MAX_COUNT)
    for lanes in r.evict:
        for *_, count in lanes.segments():
            sent += 1
            back += count
    return sent, back


def tile_loads(sched: LayerSchedule, tiles: int) -> tuple[list[int], list[int]]:
    """Per tile: the predicted cycles and WR micro-ops of the layer's passes on it."""
    busy, wr = [0] * tiles, [0] * tiles
    k = ACTIVITY_KEYS.index("wr_ops")
    for p in sched.passes:
        busy[p.tile] += p.predicted
        wr[p.tile] += int(p.activity[k])
    return busy, wr


def copy_facts(sched: LayerSchedule, r: LayerResidency | None, cfg: Config) -> dict:
    """The bus copies of a layer (its resident output's and its loads')."""
    copies = sched.copies + residency_copies(r, cfg.system.tiles)
    return {"copy_words": sum(c[3] for c in copies),
            "copy_cycles": sum(copy_cycles(c[3], cfg.tile.port_register) for c in copies),
            "copy_bits": sum(2 * c[3] * c[5] for c in copies)}


def layer_facts(sch: Scheduler, sched: LayerSchedule, n_images: int) -> dict:
    """Row use, lane-parallel bound, MACs and per-tile writes of a scheduled layer."""
    q, passes = sched.layer, sched.passes
    used = sum(p.rows for p in passes) / (len(passes) * sch.R) if passes else 0.0
    macs = 0
    if q.layer.type in ("conv", "fc") and q.w is not None:
        _, oh, ow = q.layer.out_shape
        macs = int(q.w.size) * oh * ow * n_images
    return {"type": q.layer.type, "rows_used": used, "bound": sch.lane_bound(q, n_images),
            "macs": macs, **dict(zip(("tile_cycles", "tile_wr_ops"),
                                     tile_loads(sched, sch.cfg.system.tiles), strict=True))}


def predict_network(qnet: QNet, n_images: int, cfg: Config, progress: bool = False,
                    dataflow: dict | None = None, resident: bool = False) -> RunReport:
    """Every layer's exact cycles, passes and host words from the schedule alone, for
    n_images images, without running or computing anything: the scheduler is given
    all-zero inputs (the instruction stream does not depend on the activations, only on
    shapes, precisions and weights). Executed runs (run_network) check counted =
    predicted on the same schedules. `resident`: activations stay in the MAPs between
    layers where they fit (sched/resident.py)."""
    sch = Scheduler(cfg, predict=True)
    report = RunReport()
    shapes = {"input": (n_images,) + tuple(qnet.net.input_shape)}
    flows = dict(qnet.plan.dataflow)
    flows.update(dataflow or {})
    plan = plan_residency(qnet, cfg, n_images, flows) if resident else {}
    bar = _progress_bar(len(qnet.layers)) if progress else None
    try:
        for li, q in enumerate(qnet.layers):
            xs = [np.zeros(shapes[name], dtype=np.int64) for name in q.inputs]
            t0 = time.perf_counter()
            if bar is not None:
                _progress(bar, li, f"{q.name}: scheduling")
            r = plan.get(q.name)
            sch.res = r
            sched = sch.schedule(q, xs, flows.get(q.name))
            busy = tile_loads(sched, cfg.system.tiles)[0]
            sent, back = residency_words(r, cfg.system.tiles)
            report.layers.append(LayerResult(q.name, sched.dataflow, len(sched.passes),
                                             sched.predicted, None, max(busy),
                                             host_words(sched) + sent, None,
                                             time.perf_counter() - t0,
                                             activity=sched.activity,
                                             host_out=host_out(sched) + back,
                                             residency="chip" if r and r.resident else "host",
                                             **copy_facts(sched, r, cfg),
                                             **layer_facts(sch, sched, n_images)))
            shapes[q.name] = ((n_images, q.layer.out_channels) if q.layer.type == "fc"
                              else (n_images,) + tuple(q.layer.out_shape))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report


def host_program(sched: LayerSchedule, cfg: Config) -> tuple[HostProgram, list]:
    prog, reads = HostProgram(cfg), []
    for p in sched.passes:
        for op in p.ops:
            if op[0] == "write":
                _, ap, col, width, values = op
                prog.write(p.tile, ap, 0, values, col=col, width=width)
            elif op[0] == "instr":
                prog.instr(p.tile, op[1])
            else:
                _, lo, n, col, width, signed, targets = op
                reads.append((prog.read(p.tile, 0, lo, n, col=col, width=width), width,
                              signed, targets))
    return prog, reads


def run_layer(sched: LayerSchedule, backend, cfg: Config, out_shape: tuple[int, ...]):
    prog, reads = host_program(sched, cfg)
    t0 = time.perf_counter()
    res = backend.run(prog)
    wall = time.perf_counter() - t0
    _check_frames(res, prog)
    res.extra["reads"] = reads            # for a failure: which response carried an output
    y = _decode_reads(res, reads, out_shape)
    counted = [t["cycles"] for t in res.tile_counters]
    busy = tile_loads(sched, cfg.system.tiles)[0]
    return y, counted, busy, prog.n_words, wall, res


def _where(res, at: tuple[int, ...], backend) -> str:
    """Which response word carried output `at`, when it left the system and how to rerun
    the simulation (RTL replay runs), for a person debugging a mismatch."""
    src = None
    for idx, _width, _signed, where in res.extra.get("reads", []):
        hit = np.ones(len(where[0]), dtype=bool)
        for arr, v in zip(where, at if len(at) == 4 else (at[0], at[1], 0, 0), strict=True):
            hit &= arr == v
        if hit.any():
            src = (idx, int(np.flatnonzero(hit)[0]))
            break
    if src is None:
        return ""
    text = f" (word {src[1]} of response {src[0]}"
    cyc = res.word_cycle(*src) if hasattr(res, "word_cycle") else None
    text += f", output at cycle {cyc})" if cyc is not None else ")"
    command = getattr(backend, "command", None)
    return text + (f"; rerun the simulation: {command}" if command else "")


def _out_shape(q, n: int) -> tuple[int, ...]:
    return ((n, q.layer.out_channels) if q.layer.type == "fc"
            else (n,) + tuple(q.layer.out_shape))


class _Resident:
    """The pending program of a resident segment: layers whose inputs are gathered
    from lanes, run together (docs/scheduler.md, "On-chip residency")."""

    def __init__(self, cfg: Config):
        self.prog = HostProgram(cfg)
        self.items: list[dict] = []      # per layer: q, sched, r, reads, check, words
        self.lane_reads: list[tuple[int, Lanes, int, int]] = []   # (response, lanes,
        #                                                             first element, count)

    def read_lanes(self, lanes: Lanes) -> list[tuple[int, Lanes, int, int]]:
        out = []
        for _k, ap, col, lo, count in lanes.segments():
            out.append((self.prog.read(0, ap, 0, count, col=col, width=lanes.width),
                        lanes, lo, count))
        return out

    def load(self, lanes: Lanes, values: np.ndarray, tiles: int) -> None:
        flat = values.reshape(-1)
        for _k, ap, col, lo, count in lanes.segments():
            self.prog.write(0, ap, 0, flat[lo:lo + count].tolist(), col=col,
                            width=lanes.width)
        self.copy(load_copies(lanes, tiles))

    def copy(self, copies) -> None:
        for src, ap, row, count, col, width, dst in copies:
            self.prog.copy(src, ap, row, count, dst, ap, row, col=col, width=width)


def _lane_values(res, reads, signed: bool, size: int) -> np.ndarray:
    """A tensor's flat values from the READs of its lanes."""
    out = np.zeros(size, dtype=np.int64)
    for idx, lanes, lo, count in reads:
        v = np.array(res.responses[idx][:count], dtype=np.int64)
        if len(v) != count:
            raise Mismatch(f"response {idx}: {len(v)} words of {lanes.name}, {count} asked for")
        if signed:
            w = lanes.width
            v = np.where(v >> (w - 1) & 1, v - (1 << w), v)
        out[lo:lo + count] = v
    return out


def run_network(qnet: QNet, x_int: np.ndarray, cfg: Config, backend, check: bool = True,
                dump=None, progress: bool = False, dataflow: dict | None = None,
                resident: bool = False) -> RunReport:
    """Every layer of the graph on `backend` (cosim/drivers/backends.py); each layer's
    inputs are the backend's outputs of the layers it reads. With `check`, a layer that
    differs from the golden reference, or whose counted cycles differ from the
    prediction, raises Mismatch. `resident`: activations stay in the MAPs between layers
    where they fit (sched/resident.py); consecutive resident layers run as one program
    (a Segment), each checked through READs of its output's lanes that are reported as
    check words, not host words."""
    if len(x_int) == 0:
        raise ValueError("no images to run")
    sch = Scheduler(cfg)
    report = RunReport()
    env = {"input": x_int}
    flows = dict(qnet.plan.dataflow)
    flows.update(dataflow or {})
    n = len(x_int)
    plan = plan_residency(qnet, cfg, n, flows) if resident else {}
    signed_of = {"input": False, **{q.name: bool(q.out_signed) for q in qnet.layers}}
    seg: _Resident | None = None
    bar = _progress_bar(len(qnet.layers)) if progress else None

    def flush() -> None:
        nonlocal seg
        if seg is None:
            return
        done, seg = seg, None
        _run_segment(done, backend, sch, report, env, signed_of, check, dump, bar)

    try:
        for li, q in enumerate(qnet.layers):
            layer = q.layer
            shape = _out_shape(q, n)
            r = plan.get(q.name)
            if r is not None and r.resident:
                if seg is None:
                    seg = _Resident(cfg)
                sent = sum(len(f) for f in seg.prog.frames)
                for name, lanes, load in zip(q.inputs, r.inputs, r.load, strict=True):
                    if load:
                        assert lanes is not None
                        seg.load(lanes, env[name], cfg.system.tiles)
                sch.res = r
                xs = [np.zeros(_out_shape_of(qnet, name, n), dtype=np.int64)
                      for name in q.inputs]
                sched = sch.schedule(q, xs, flows.get(q.name))
                if bar is not None:
                    _progress(bar, li, f"{q.name}: {len(sched.passes)} passes, on chip")
                prog_reads = []
                for p in sched.passes:
                    for op in p.ops:
                        if op[0] == "write":
                            _, ap, col, width, values = op
                            seg.prog.write(p.tile, ap, 0, values, col=col, width=width)
                        elif op[0] == "instr":
                            seg.prog.instr(p.tile, op[1])
                        else:
                            _, lo, cnt, col, width, signed, where = op
                            prog_reads.append((seg.prog.read(p.tile, 0, lo, cnt, col=col,
                                                             width=width),
                                               width, signed, where))
                seg.copy(sched.copies)
                words = sum(len(f) for f in seg.prog.frames) - sent
                check_reads = seg.read_lanes(r.out) if (r.out is not None and
                                                         layer.type != "flatten") else []
                seg.items.append({"q": q, "sched": sched, "r": r, "li": li, "shape": shape,
                                  "reads": prog_reads, "check": check_reads,
                                  "words": words,
                                  "check_words": len(check_reads)})
                continue
            if r is not None and r.evict:          # resident tensors the MAPs must give up
                assert seg is not None
                seg.items.append({"evict": [(lanes, seg.read_lanes(lanes))
                                            for lanes in r.evict], "li": li})
            flush()
            sch.res = r                       # (staged: the plan's dataflow, if any)
            xs = [env[name] for name in q.inputs]
            sched = sch.schedule(q, xs, flows.get(q.name))
            if bar is not None:
                _progress(bar, li, f"{q.name}: {len(sched.passes)} passes on "
                          f"{getattr(backend, 'name', 'golden')}")
            counted_act = None
            if sched.host is not None:        # no tile work: the host reshapes or stacks
                y = sched.host(*xs).reshape(shape)
                counted_t = predicted_t = [0] * cfg.system.tiles
                words, wall, res = 0, 0.0, None
            else:
                y, counted_t, predicted_t, words, wall, res = run_layer(sched, backend, cfg,
                                                                        shape)
                if res.tile_activity is not None:
                    counted_act = {k: sum(t[k] for t in res.tile_activity)
                                   for k in sched.activity}
            counted = sum(counted_t)
            mod = 1 << cfg.ap.counter_bits           # each tile's counter wraps
            cycles_agree = all(c == p % mod for c, p in zip(counted_t, predicted_t, strict=True))
            want = layer_forward(q, *xs)
            if layer.type == "fc":
                want = want.reshape(n, -1)
            exact = bool(np.array_equal(y, want))
            sent, back = residency_words(r, cfg.system.tiles)
            report.layers.append(LayerResult(q.name, sched.dataflow, len(sched.passes),
                                             sched.predicted, counted, max(predicted_t),
                                             words + sent, exact, wall,
                                             res.sim_cycles if res is not None else None,
                                             activity=sched.activity,
                                             activity_counted=counted_act,
                                             host_out=host_out(sched) + back,
                                             **layer_facts(sch, sched, n)))
            _keep(report, q, li, y, want, dump, check,
                  lambda bad, res=res: _where(res, bad, backend) if res is not None else "")
            if check and not cycles_agree:
                raise Mismatch(f"{q.name}: the tiles counted {counted_t} cycles, the cost "
                               f"model predicts {predicted_t} (counters wrap at "
                               f"2^{cfg.ap.counter_bits})")
            if check and counted_act is not None and counted_act != sched.activity:
                raise Mismatch(f"{q.name}: the tiles' activity {counted_act} differs from "
                               f"the schedule's {sched.activity}")
            env[q.name] = y
            if bar is not None:
                bar.update(1)
        flush()
        if bar is not None:
            bar.set_description_str("done")
    finally:                     # on a mismatch too: the error goes on a line of its own
        if bar is not None:
            bar.close()
    return report


def _keep(report: RunReport, q, li: int, y: np.ndarray, want: np.ndarray, dump,
          check: bool, where) -> None:
    """A layer's output into the report (and `dump`); with `check`, Mismatch where it
    differs from `want` (`where(index)`: what to add to the message)."""
    report.outputs.append(y)
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        np.save(dump / f"{li:02d}_{q.name}.npy", y)
    if check and not np.array_equal(y, want):
        bad = tuple(int(i) for i in np.argwhere(y != want)[0])
        raise Mismatch(f"{q.name}: output differs from the golden reference at "
                       f"{bad}: {y[bad]} != {want[bad]}" + where(bad))


def _check_frames(res, prog: HostProgram) -> None:
    """Every output beat is accounted for: exactly the frames asked for, each of its
    length."""
    if len(res.responses) != len(prog.responses):
        raise Mismatch(f"{len(res.responses)} response frames, {len(prog.responses)} asked for")
    for i, (got, want) in enumerate(zip(res.responses, prog.responses, strict=True)):
        if len(got) != want.count:
            raise Mismatch(f"response {i} ({want.kind}) has {len(got)} words, "
                           f"{want.count} asked for")


def _decode_reads(res, reads, shape: tuple[int, ...]) -> np.ndarray:
    """A layer's output from the responses of its result READs (sign-extended where
    signed, each word to its (image, channel, y, x) target; fc: (image, channel))."""
    y = np.zeros(shape, dtype=np.int64)
    for idx, width, signed, where in reads:
        vals = np.array(res.responses[idx], dtype=np.int64)
        if signed:
            vals = np.where(vals >> (width - 1) & 1, vals - (1 << width), vals)
        # every word of a read lands in y, and y is then compared in full with the reference
        img, ch, oy, ox = where
        if len(vals) < len(img):
            raise Mismatch(f"read {idx}: {len(vals)} words for {len(img)} outputs")
        if len(shape) == 2:
            y[img, ch] = vals[:len(img)]
        else:
            y[img, ch, oy, ox] = vals[:len(img)]
    return y


def _out_shape_of(qnet: QNet, name: str, n: int) -> tuple[int, ...]:
    if name == "input":
        return (n,) + tuple(qnet.net.input_shape)
    return _out_shape(next(q for q in qnet.layers if q.name == name), n)


def _run_segment(seg: _Resident, backend, sch: Scheduler, report: RunReport, env: dict,
                 signed_of: dict, check: bool, dump, bar) -> None:
    """Run a resident segment's program, then check every layer of it in order: its
    output (from its result READs, or from the READs of its lanes) against the golden
    reference on the outputs before it; the tiles' cycles and activity against the sum
    of the layers' predictions."""
    cfg = sch.cfg
    t0 = time.perf_counter()
    res = backend.run(seg.prog)
    wall = time.perf_counter() - t0
    _check_frames(res, seg.prog)
    tiles = cfg.system.tiles
    predicted_t = [0] * tiles
    activity: dict[str, int] = {}
    names, host, check_words = [], 0, 0
    copy_words = n_copy_cycles = 0
    for item in seg.items:
        if "evict" in item:           # the READs before a staged layer: the same values
            for lanes, reads in item["evict"]:   # the check read of the tensor gave
                n_el = int(np.prod(env[lanes.name].shape))
                got = _lane_values(res, reads, signed_of[lanes.name], n_el)
                if check and not np.array_equal(got, env[lanes.name].reshape(-1)):
                    raise Mismatch(f"{lanes.name}: its lanes changed before they were "
                                   f"read to the host")
            continue
        q, sched, r, li, shape = item["q"], item["sched"], item["r"], item["li"], item["shape"]
        xs = [env[name] for name in q.inputs]
        if q.layer.type == "flatten":
            y = xs[0].reshape(shape)
        elif item["reads"]:
            y = _decode_reads(res, item["reads"], shape)
        else:
            y = _lane_values(res, item["check"], signed_of[q.name],
                             int(np.prod(shape))).reshape(shape)
        want = layer_forward(q, *xs)
        if len(shape) == 2:
            want = want.reshape(shape)
        exact = bool(np.array_equal(y, want))
        busy = tile_loads(sched, tiles)[0]
        for t in range(tiles):
            predicted_t[t] += busy[t]
        for k, v in sched.activity.items():
            activity[k] = activity.get(k, 0) + v
        back = residency_words(r, tiles)[1]
        facts = copy_facts(sched, r, cfg)
        copy_words += facts["copy_words"]
        n_copy_cycles += facts["copy_cycles"]
        report.layers.append(LayerResult(
            q.name, sched.dataflow, len(sched.passes), sched.predicted, None, max(busy),
            item["words"], exact, 0.0, None, activity=sched.activity,
            host_out=host_out(sched) + back, residency="chip",
            segment=len(report.segments), **facts,
            **layer_facts(sch, sched, len(y))))
        names.append(q.name)
        host += item["words"]
        check_words += item["check_words"]
        _keep(report, q, li, y, want, dump, check, lambda bad: " (on chip)")
        env[q.name] = y
        if bar is not None:
            bar.update(1)
    counted_t = [t["cycles"] for t in res.tile_counters]
    mod = 1 << cfg.ap.counter_bits
    report.segments.append(Segment(names, sum(predicted_t), counted_t, host, check_words,
                                   wall))
    if check and not all(c == p % mod for c, p in zip(counted_t, predicted_t, strict=True)):
        raise Mismatch(f"segment {names[0]}..{names[-1]}: the tiles counted {counted_t} "
                       f"cycles, the cost model predicts {predicted_t}")
    copied = (res.global_counters.get("copy_words"), res.global_counters.get("copy_cycles"))
    if check and copied != (copy_words % mod, n_copy_cycles % mod):
        raise Mismatch(f"segment {names[0]}..{names[-1]}: the system counted (copy words, "
                       f"copy cycles) {copied}, the schedule has {(copy_words, n_copy_cycles)}")
    if check and res.tile_activity is not None:
        counted_act = {k: sum(t[k] for t in res.tile_activity) for k in activity}
        if counted_act != activity:
            raise Mismatch(f"segment {names[0]}..{names[-1]}: the tiles' activity "
                           f"{counted_act} differs from the schedule's {activity}")


def _progress_bar(n: int) -> tqdm:
    """A bar over the layers on stderr. On a terminal tqdm redraws it in place; elsewhere
    (a log, a pipe, captured output) it is disabled, and _progress writes one plain line
    per layer instead, so no carriage returns end up in the file."""
    return tqdm(total=n, unit="layer", file=sys.stderr, disable=None, leave=True,
                dynamic_ncols=True, bar_format="  {desc:<50} {bar:24} {n_fmt}/{total_fmt} "
                                               "[{elapsed}<{remaining}]")


def _progress(bar: tqdm, i: int, text: str) -> None:
    """Layer `i` (0-based) starts: `text` says what it runs."""
    if bar.disable:
        print(f"  [{i + 1}/{bar.total}] {text}", file=sys.stderr, flush=True)
    else:
        bar.set_description_str(text)
