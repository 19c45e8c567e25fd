"""Per-layer precision planning under a cost budget: `bfimna plan` (docs/planner.md).

Given a network, a hardware configuration and a technology point, choose the bits of
every *knob* of a precision plan -- the input's `input_bits`, each conv and fc layer's
`w_bits` and `a_bits`, each add layer's `a_bits` -- so that the plan's predicted latency,
energy or EDP is at most a given share of the INT8 plan's, with the least quantisation
loss. The search is greedy: from INT8, repeatedly lower the one knob that saves the most
cost per unit of loss added, until the budget holds; take the plan of least loss among
all the candidates evaluated on the way that meet the budget; then raise back, one step
at a time, the knob that reduces the loss most while the budget still holds.
With `blocks` (R, C) (`bfimna plan --blocks RxC`), a conv or fc layer's weight knob is
replaced by one knob per block of its weight grid (`layer_grid`: output-channel blocks x
reduction blocks, golden/nn/network.py `quantize_blocks`), and the search also moves a
layer's blocks as a whole (`Planner.moved`). With `act_blocks` N (`--act-blocks N`), a
layer's activation knob is one knob per block of its output channels where its readers
allow it (`layer_act_blocks`), moved as a whole too.

Cost: the exact model of `bfimna evaluate` (sched/run.py `predict_network`, then
sched/evaluate.py `evaluate`). Layers run one after another and every term of the model
is a sum over layers (energy by kind, latency cycles), so a plan's cost is the sum of
its layers' costs, each predicted and evaluated on its own and cached by what decides it:
the layer, its plan entry and the (bits, signedness, scale) of each input tensor
(`CostModel`; tests/test_planner.py checks the sum against the whole-network evaluation).

Loss (`Sensitivity`): the relative L2 error of the network's final output, the integer
reference (golden/nn/network.py `layer_forward`) dequantised by its scale, against the
float network (`float_forward`) on calibration images. `network` mode measures it for
every candidate plan (layers whose inputs and entries did not change are reused from the
current plan's forward pass); `isolated` mode adds up, for each knob, the loss added when
only that knob is lowered from INT8 (a number of forward passes linear in the knobs, for
large networks).
"""

from __future__ import annotations

import math
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bfimna.golden.nn.network import (
    WEIGHTED,
    Network,
    NetworkError,
    Plan,
    QLayer,
    QNet,
    act_blocks_refusal,
    float_forward,
    layer_forward,
    predict,
    quantize,
    reduction_len,
)
from bfimna.golden.spec.config import Config
from bfimna.sched.evaluate import KINDS as ENERGY_KINDS
from bfimna.sched.evaluate import evaluate
from bfimna.sched.run import LayerResult, RunReport, host_words, layer_facts, tile_loads
from bfimna.sched.schedule import ScheduleError, Scheduler

BUDGET_KINDS = ("latency", "energy", "edp")
DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)
TOP_BITS = 8                               # the reference plan: INT8 everywhere
INPUT_KNOB = ("input", "input_bits")
SENSITIVITIES = ("network", "isolated")
DEFAULT_CALIB = {"dataset": 64, "synthetic": 2}   # calibration images when not given

Knob = tuple[str, str]                     # (layer, "w_bits" | "a_bits") or INPUT_KNOB;
#                                           block mode: (layer, "w_bits[r,c]") per block;
#                                           activation blocks: (layer, "a_bits[r]")
Bits = dict[Knob, int]
Grid = tuple[int, int]                     # --blocks RxC: the most row x column blocks


class PlannerError(ValueError):
    """Bad input to the planner (a budget, bits, a network it cannot plan)."""


# -- budget ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    kind: str            # latency, energy or edp
    value: float         # the largest allowed cost over the INT8 plan's

    def __str__(self) -> str:
        return f"{self.kind} <= {self.value:g} x INT8"

    @property
    def arg(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_budget(text: str) -> Budget:
    """KIND=VALUE, KIND one of BUDGET_KINDS, VALUE > 0 (relative to INT8)."""
    kind, sep, value = text.partition("=")
    kind = kind.strip().lower()
    if not sep:
        raise PlannerError(f"expected KIND=VALUE (KIND one of {', '.join(BUDGET_KINDS)}, "
                           f"VALUE relative to INT8, e.g. edp=0.5), got {text!r}")
    if kind not in BUDGET_KINDS:
        raise PlannerError(f"unknown budget kind {kind!r} (expected one of "
                           f"{', '.join(BUDGET_KINDS)})")
    try:
        v = float(value)
    except ValueError:
        raise PlannerError(f"budget value {value!r} is not a number") from None
    if not v > 0 or not math.isfinite(v):
        raise PlannerError(f"budget value must be a number > 0 (relative to INT8), got "
                           f"{value.strip()!r}")
    return Budget(kind, v)


# -- plans from knob settings ------------------------------------------------------------------
def parse_blocks(text: str) -> Grid:
    """RxC (R, C >= 1): at most R blocks of output channels x C reduction blocks."""
    r, sep, c = text.lower().partition("x")
    try:
        grid = (int(r), int(c)) if sep else None
    except ValueError:
        grid = None
    if grid is None or min(grid) < 1:
        raise PlannerError(f"expected RxC with R, C >= 1 (output-channel blocks x reduction "
                           f"blocks, e.g. 2x2), got {text!r}")
    return grid


def _largest_divisor(n: int, most: int) -> int:
    return max(d for d in range(1, min(n, most) + 1) if n % d == 0)


def layer_grid(lay, grid: Grid) -> Grid:
    """The blocks of a conv or fc layer under --blocks RxC: the most rows <= R that divide
    its output channels, the most columns <= C that divide its reduction (docs/planner.md)."""
    return (_largest_divisor(lay.out_channels, grid[0]),
            _largest_divisor(reduction_len(lay), grid[1]))


def block_kind(r: int, c: int) -> str:
    return f"w_bits[{r},{c}]"


def _block_rc(kind: str) -> tuple[int, int] | None:
    """(r, c) of a block knob's kind "w_bits[r,c]", None for other kinds."""
    if not kind.startswith("w_bits["):
        return None
    r, c = kind[7:-1].split(",")
    return int(r), int(c)


def act_block_kind(r: int) -> str:
    return f"a_bits[{r}]"


def _ablock_r(kind: str) -> int | None:
    """r of an activation block knob's kind "a_bits[r]", None for other kinds."""
    return int(kind[7:-1]) if kind.startswith("a_bits[") else None


def layer_act_blocks(lay, n: int | None, net: Network) -> int:
    """The activation blocks of a conv or fc layer under --act-blocks N: the most <= N
    that divide its output channels where its output may have blocks (read by conv and fc
    layers only, directly or through maxpool and flatten: golden/nn/network.py
    act_blocks_refusal), else 1 (docs/planner.md)."""
    if n is None or n < 2 or act_blocks_refusal(net, lay) is not None:
        return 1
    return _largest_divisor(lay.out_channels, n)


def knobs(net: Network, grid: Grid | None = None, act: int | None = None) -> list[Knob]:
    """Every knob of a plan for `net`, in layer order (the input first); with `grid`, one
    weight knob per block of each conv and fc layer (layer_grid) instead of one per layer;
    with `act` (N), one activation knob per block of output channels (layer_act_blocks)
    where a layer's output may have activation blocks."""
    out: list[Knob] = [INPUT_KNOB]
    for lay in net.layers:
        if lay.type in WEIGHTED:
            if grid is None:
                out.append((lay.name, "w_bits"))
            else:
                rows, cols = layer_grid(lay, grid)
                out += [(lay.name, block_kind(r, c)) for r in range(rows) for c in range(cols)]
            n_act = layer_act_blocks(lay, act, net)
            out += ([(lay.name, "a_bits")] if n_act == 1 else
                    [(lay.name, act_block_kind(r)) for r in range(n_act)])
        elif lay.type == "add":
            out.append((lay.name, "a_bits"))
    return out


def _w_grid(name: str, bits: Bits) -> list[list[int]] | None:
    """A layer's block grid of weight bits from block knobs (None: a per-layer knob)."""
    cells = {rc: v for (n, k), v in bits.items() if n == name and (rc := _block_rc(k))}
    if not cells:
        return None
    rows, cols = max(r for r, _ in cells) + 1, max(c for _, c in cells) + 1
    return [[cells[(r, c)] for c in range(cols)] for r in range(rows)]


def w_bits_of(name: str, bits: Bits) -> int:
    """A layer's w_bits: its knob, or in block mode the largest of its blocks."""
    grid = _w_grid(name, bits)
    return bits[(name, "w_bits")] if grid is None else max(max(r) for r in grid)


def _a_blocks(name: str, bits: Bits) -> list[int] | None:
    """A layer's activation bits per block from its block knobs (None: a per-layer knob)."""
    cells = {r: v for (n, k), v in bits.items() if n == name and (r := _ablock_r(k)) is not None}
    return [cells[r] for r in range(len(cells))] if cells else None


def a_bits_of(name: str, bits: Bits) -> int:
    """A layer's a_bits: its knob, or with activation blocks the largest of its blocks."""
    blocks = _a_blocks(name, bits)
    return bits[(name, "a_bits")] if blocks is None else max(blocks)


def uniform(net: Network, bits: int, last_a_bits: int | None = None,
            grid: Grid | None = None, act: int | None = None) -> Bits:
    """Every knob at `bits` (the last layer's output at `last_a_bits` if given)."""
    out = dict.fromkeys(knobs(net, grid, act), bits)
    last = (net.layers[-1].name, "a_bits")
    if last_a_bits is not None and last in out:
        out[last] = last_a_bits
    return out


def int4_bits(net: Network, grid: Grid | None = None) -> Bits:
    """INT4 as the digits models' int4.yaml: 4-bit input, weights and activations, the
    last layer's output (the logits) at 8 bits."""
    return uniform(net, 4, last_a_bits=8, grid=grid)


def plan_of(net: Network, bits: Bits, name: str = "plan") -> Plan:
    layers: dict[str, dict] = {}
    for lay in net.layers:
        if lay.type in WEIGHTED:
            w, grid = w_bits_of(lay.name, bits), _w_grid(lay.name, bits)
            ab = _a_blocks(lay.name, bits)
            layers[lay.name] = {"w_bits": w, "a_bits": a_bits_of(lay.name, bits),
                                "blocks": [w] if grid is None else grid,
                                **({} if ab is None else {"a_blocks": ab})}
        elif lay.type == "add":
            layers[lay.name] = {"a_bits": bits[(lay.name, "a_bits")]}
    return Plan(name, bits[INPUT_KNOB], layers, {})


def plan_yaml(net: Network, bits: Bits, name: str, header: Sequence[str] = ()) -> str:
    """The plan as YAML in the format of docs/network.md (one flow mapping per layer),
    `header` lines as comments on top."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines += [f"name: {name}", f"input_bits: {bits[INPUT_KNOB]}", "layers:"]
    for lay in net.layers:
        if lay.type in WEIGHTED:
            grid, ab = _w_grid(lay.name, bits), _a_blocks(lay.name, bits)
            blocks = ("" if grid is None else f", blocks: {grid}") + \
                ("" if ab is None else f", a_blocks: {ab}")
            lines.append(f"  {lay.name}: {{w_bits: {w_bits_of(lay.name, bits)}, "
                         f"a_bits: {a_bits_of(lay.name, bits)}{blocks}}}")
        elif lay.type == "add":
            lines.append(f"  {lay.name}: {{a_bits: {bits[(lay.name, 'a_bits')]}}}")
    return "\n".join(lines) + "\n"


def _entry(plan: Plan, name: str) -> tuple:
    e = plan.layers.get(name)
    if not e:
        return ()
    return tuple(sorted((k, _frozen(v)) for k, v in e.items()))


def _frozen(v):
    """A plan value made hashable (a block grid: tuples of tuples)."""
    return tuple(_frozen(x) for x in v) if isinstance(v, list) else v


# -- cost ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCost:
    name: str
    type: str
    dataflow: str
    latency_cycles: int
    latency_s: float
    energy: dict[str, float]          # J by kind (sched/evaluate.py KINDS)

    @property
    def energy_j(self) -> float:
        return sum(self.energy.values())


@dataclass(frozen=True)
class Cost:
    latency_cycles: int
    latency_s: float
    energy_j: float

    @property
    def edp_js(self) -> float:
        return self.energy_j * self.latency_s

    def of(self, kind: str) -> float:
        return {"latency": self.latency_s, "energy": self.energy_j, "edp": self.edp_js}[kind]


class CostModel:
    """Per-layer costs of integer networks, cached, and their sums (see the module doc)."""

    def __init__(self, net: Network, cfg: Config, point, batch: int = 1):
        self.net, self.cfg, self.point, self.batch = net, cfg, point, batch
        self.sch = Scheduler(cfg, predict=True)
        self.cache: dict[tuple, LayerCost] = {}
        self.predicted = 0                # layer schedules predicted (cache misses)
        self.wall_s = 0.0
        self._layers = {lay.name: lay for lay in net.layers}

    def _shape(self, name: str) -> tuple:
        n = self.batch
        if name == "input":
            return (n,) + tuple(self.net.input_shape)
        lay = self._layers[name]
        return (n, lay.out_channels) if lay.type == "fc" else (n,) + tuple(lay.out_shape)

    def key(self, qnet: QNet, q: QLayer) -> tuple:
        """What decides layer q's integer form, hence its schedule: its plan entry and the
        (bits, signedness, scale) of each input tensor (golden/nn/network.py quantize)."""
        ins = tuple((b, s, qnet.scales[n])
                    for n, b, s in zip(q.inputs, q.in_bits_all, q.in_signed, strict=True))
        chan = None if q.in_ch_bits is None else tuple(q.in_ch_bits.tolist())  # a_blocks
        return (q.name, _entry(qnet.plan, q.name), ins, chan, qnet.plan.dataflow.get(q.name))

    def predict_layer(self, qnet: QNet, q: QLayer) -> LayerResult:
        """predict_network's result for layer q alone (the same steps, sched/run.py)."""
        t0 = time.perf_counter()
        xs = [np.zeros(self._shape(name), dtype=np.int64) for name in q.inputs]
        sched = self.sch.schedule(q, xs, qnet.plan.dataflow.get(q.name))
        busy = tile_loads(sched, self.cfg.system.tiles)[0]
        return LayerResult(q.name, sched.dataflow, len(sched.passes), sched.predicted, None,
                           max(busy), host_words(sched), None, time.perf_counter() - t0,
                           activity=sched.activity,
                           **layer_facts(self.sch, sched, self.batch))

    def layer_cost(self, qnet: QNet, q: QLayer) -> LayerCost:
        k = self.key(qnet, q)
        hit = self.cache.get(k)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        lr = self.predict_layer(qnet, q)
        row = evaluate(RunReport([lr]), self.cfg, self.point, self.batch).layers[0]
        lc = LayerCost(q.name, q.layer.type, row["dataflow"], int(row["latency_cycles"]),
                       row["latency_s"], {kind: row[f"energy_{kind}_j"] for kind in ENERGY_KINDS})
        self.cache[k] = lc
        self.predicted += 1
        self.wall_s += time.perf_counter() - t0
        return lc

    def layer_costs(self, qnet: QNet) -> list[LayerCost]:
        return [self.layer_cost(qnet, q) for q in qnet.layers]

    def total(self, layers: Iterable[LayerCost]) -> Cost:
        """The sums sched/evaluate.py evaluate forms, in its order (so the floats agree)."""
        tot = dict.fromkeys(ENERGY_KINDS, 0.0)
        cycles = 0
        for lc in layers:
            for kind in ENERGY_KINDS:
                tot[kind] += lc.energy[kind]
            cycles += lc.latency_cycles
        return Cost(cycles, cycles / self.point.clock_hz, sum(tot.values()))


# -- loss --------------------------------------------------------------------------------------
class Sensitivity:
    """The relative L2 error of the network's final output, integer reference dequantised
    by the output scale, against the float network, on calibration images `x`:
    ||s y_int - y_float|| / ||y_float|| over all images and outputs."""

    def __init__(self, net: Network, x: np.ndarray):
        self.net, self.x = net, np.asarray(x, dtype=np.float64)
        self.last = net.layers[-1].name
        self.want = float_forward(net, self.x)[self.last].reshape(len(self.x), -1)
        self.norm = float(np.linalg.norm(self.want)) or 1.0
        self._ids: dict[tuple, int] = {}
        self._base: tuple[dict[str, int], dict[str, np.ndarray]] | None = None
        self.forwards = 0             # layer forward passes computed
        self.wall_s = 0.0

    def _intern(self, key: tuple) -> int:
        return self._ids.setdefault(key, len(self._ids))

    def _chain(self, qnet: QNet) -> dict[str, int]:
        """An id per tensor that changes exactly when its value can: the plan entries of
        the layer and of everything upstream (quantize is deterministic in them)."""
        ids = {"input": self._intern(("input", qnet.input_bits))}
        for q in qnet.layers:
            ids[q.name] = self._intern((q.name, _entry(qnet.plan, q.name),
                                        tuple(ids[n] for n in q.inputs)))
        return ids

    def outputs(self, qnet: QNet, keep: bool = False) -> dict[str, np.ndarray]:
        """Every tensor of the integer network on the calibration images, reusing the kept
        plan's tensors where nothing upstream changed; `keep` makes this plan the kept one."""
        t0 = time.perf_counter()
        ids = self._chain(qnet)
        base_ids, base_env = self._base if self._base is not None else ({}, {})
        env: dict[str, np.ndarray] = {}
        env["input"] = (base_env["input"] if base_ids.get("input") == ids["input"]
                        else qnet.quantize_input(self.x))
        for q in qnet.layers:
            if base_ids.get(q.name) == ids[q.name]:
                env[q.name] = base_env[q.name]
            else:
                env[q.name] = layer_forward(q, *(env[n] for n in q.inputs))
                self.forwards += 1
        if keep:
            self._base = (ids, env)
        self.wall_s += time.perf_counter() - t0
        return env

    def loss(self, qnet: QNet, keep: bool = False) -> float:
        y = self.outputs(qnet, keep)[self.last].reshape(len(self.x), -1)
        err = y.astype(np.float64) * qnet.scales[self.last] - self.want
        return float(np.linalg.norm(err)) / self.norm


# -- search ------------------------------------------------------------------------------------
@dataclass
class Candidate:
    bits: Bits
    qnet: QNet | None                 # the integer network: kept only for the plans the
    #                                   search moves to (an ImageNet QNet is ~100 MB)
    layers: list[LayerCost]
    cost: Cost
    loss: float                       # the search's loss (estimated in isolated mode)
    flows: dict[str, str] = field(default_factory=dict)   # dataflows the plan fixes


@dataclass
class Step:
    phase: str                        # "lower", "switch" (to the least-loss plan seen that
    #                                   meets the budget: no knob) or "raise"
    knob: Knob | None
    old: int
    new: int
    cost_rel: float                   # the plan's cost (budget kind) over INT8's after it
    loss: float


@dataclass
class PlanResult:
    net: Network
    budget: Budget
    int8: Candidate
    chosen: Candidate
    qnet: QNet                        # the chosen plan's integer network
    loss: float                       # the chosen plan's measured loss (network measure)
    int8_loss: float
    steps: list[Step] = field(default_factory=list)
    candidates: int = 0               # candidate plans evaluated (distinct)
    invalid: int = 0                  # of which could not be quantised or scheduled
    layer_schedules: int = 0          # layer schedules predicted (cost cache misses)
    layer_forwards: int = 0
    wall_s: float = 0.0

    def rel(self, kind: str) -> float:
        return self.chosen.cost.of(kind) / self.int8.cost.of(kind)


class BudgetNotMet(Exception):
    """The budget cannot be met by lowering bits: `cheapest` is the cheapest plan found."""

    def __init__(self, budget: Budget, cheapest: Candidate, int8: Candidate, candidates: int):
        self.budget, self.cheapest, self.int8, self.candidates = budget, cheapest, int8, candidates
        k = budget.kind
        rel = cheapest.cost.of(k) / int8.cost.of(k)
        super().__init__(
            f"budget {budget.arg} cannot be met: the cheapest plan found ({summary(cheapest.bits)}"
            f") has {k} {_fmt(k, cheapest.cost.of(k))}, {rel:.4g} x INT8 (latency "
            f"{cheapest.cost.latency_s / int8.cost.latency_s:.4g}, energy "
            f"{cheapest.cost.energy_j / int8.cost.energy_j:.4g}, EDP "
            f"{cheapest.cost.edp_js / int8.cost.edp_js:.4g} x INT8; {candidates} plans tried)")


class Planner:
    """The greedy search of the module doc over one network, configuration and point."""

    def __init__(self, net: Network, cfg: Config, point, calib_x: np.ndarray,
                 bits: Iterable[int] = DEFAULT_BITS, batch: int = 1,
                 sensitivity: str = "network", progress: bool = False,
                 blocks: Grid | None = None, client=None, act_blocks: int | None = None,
                 dataflow: str = "auto"):
        levels = sorted(set(bits) | {TOP_BITS})
        if any(not 2 <= b <= TOP_BITS for b in levels):
            raise PlannerError(f"bits must be in 2..{TOP_BITS}, got {sorted(set(bits))}")
        if sensitivity not in SENSITIVITIES:
            raise PlannerError(f"unknown sensitivity {sensitivity!r} (expected one of "
                               f"{', '.join(SENSITIVITIES)})")
        if len(calib_x) == 0:
            raise PlannerError("no calibration images")
        self.net, self.levels, self.mode = net, levels, sensitivity
        self.costs = CostModel(net, cfg, point, batch)
        self.sens = Sensitivity(net, calib_x)
        self.grid = blocks
        self.act = act_blocks
        self.knobs = knobs(net, blocks, act_blocks)
        # the moves of the search: every knob; in block mode also each layer's weights as
        # a whole (all its blocks lowered to at most v, or raised to at least v), which
        # a dataflow costed at the largest block's bits (chan) needs to save anything;
        # with activation blocks likewise each layer's output as a whole
        self.moves: list[Knob] = list(self.knobs)
        if blocks is not None:
            self.moves += [(lay.name, "w_bits") for lay in net.layers
                           if lay.type in WEIGHTED and layer_grid(lay, blocks) != (1, 1)]
        self.moves += [(lay.name, "a_bits") for lay in net.layers
                       if lay.type in WEIGHTED and layer_act_blocks(lay, act_blocks, net) > 1]
        self.progress = progress
        self._seen: dict[tuple, Candidate | None] = {}
        self._isolated: dict[tuple[Knob, int], float] = {}
        self.invalid = 0
        self._why = ""
        self._said = time.perf_counter()
        self._estimating = False          # isolated mode: set once INT8's loss is known
        self._cur: Candidate | None = None
        self.flow_mode, self.flows = dataflow, initial_flows(net, dataflow)
        int8 = self.candidate(uniform(net, TOP_BITS, grid=blocks, act=act_blocks))
        if int8 is None:
            raise PlannerError(f"{net.path}: the INT8 plan cannot be {self._why}")
        self.int8: Candidate = int8
        self.int8_loss = int8.loss
        self._move(int8)
        self._estimating = sensitivity == "isolated"
        # with a Dask client (`bfimna plan --workers N | --scheduler A`), each step's
        # candidates are evaluated on its workers (_prefetch); the search is unchanged
        self.client, self._spec = client, None
        if client is not None:
            import uuid
            [self._spec] = client.scatter([{"token": uuid.uuid4().hex, "net": net, "cfg": cfg,
                                            "point": point, "batch": batch, "x": calib_x}],
                                          broadcast=True, hash=False)

    def _key(self, bits: Bits) -> tuple:
        return tuple(bits[k] for k in self.knobs) + tuple(sorted(self.flows.items()))

    @staticmethod
    def value(bits: Bits, move: Knob) -> int:
        """A move's current bits: its knob's, or a layer's largest block's."""
        if move in bits:
            return bits[move]
        return (w_bits_of if move[1] == "w_bits" else a_bits_of)(move[0], bits)

    def moved(self, bits: Bits, move: Knob, v: int) -> Bits:
        """`bits` with `move` set to v: a knob to v; a layer's blocks (weight or
        activation blocks) each to at most v when lowering, at least v when raising."""
        if move in bits:
            return {**bits, move: v}
        f = min if v < self.value(bits, move) else max
        block = _block_rc if move[1] == "w_bits" else _ablock_r
        return {**bits, **{k: f(b, v) for k, b in bits.items()
                           if k[0] == move[0] and block(k[1]) is not None}}

    def _quantize(self, bits: Bits) -> QNet | None:
        try:
            return quantize(self.net, with_flows(plan_of(self.net, bits), self.flows))
        except (NetworkError, ValueError) as exc:
            self._why = f"quantised: {exc}"
            return None

    def candidate(self, bits: Bits) -> Candidate | None:
        """The plan `bits` quantised, costed and its loss measured (or estimated); None
        if it cannot be quantised or scheduled on the configuration."""
        key = self._key(bits)
        if key in self._seen:
            return self._seen[key]
        qnet = self._quantize(bits)
        cand = None
        if qnet is not None:
            try:
                layers = self.costs.layer_costs(qnet)
            except ScheduleError as exc:
                self._why = f"scheduled: {exc}"
                layers = None
            if layers is not None:
                loss = self._estimate(bits) if self._estimating else self.sens.loss(qnet)
                cand = Candidate(dict(bits), None, layers, self.costs.total(layers), loss,
                                 dict(self.flows))
        if cand is None:
            self.invalid += 1
        self._seen[key] = cand
        return cand

    def _prefetch(self, cur: Candidate, plans: list[Bits]) -> None:
        """Evaluate on the Dask workers, in parallel, the plans of `plans` not evaluated
        yet (the ones the serial search evaluates at this step whatever their results:
        the first lower value of every move, or the next higher one), and enter them as
        candidate() would: the search that follows finds them there and takes the same
        decisions as without workers. Without a client: nothing (candidate() computes)."""
        if self.client is None:
            return
        todo: dict[tuple, Bits] = {}
        for b in plans:
            if self._key(b) not in self._seen:
                todo.setdefault(self._key(b), b)
        futs = [self.client.submit(_remote_candidate, self._spec, cur.bits, b,
                                   not self._estimating, self.flows, pure=False)
                for b in todo.values()]
        for (key, bits), (res, why) in zip(todo.items(), self.client.gather(futs),
                                           strict=True):
            cand = None
            if res is None:
                self._why = why
                self.invalid += 1
            else:
                layers, loss = res
                if self._estimating:
                    loss = self._estimate(bits)
                cand = Candidate(dict(bits), None, layers, self.costs.total(layers), loss,
                                 dict(self.flows))
            self._seen[key] = cand

    def _move(self, c: Candidate) -> Candidate:
        """The search moves to `c`: its integer network (the previous plan's is dropped,
        but INT8's); in network mode its tensors are kept for reuse (in isolated mode,
        INT8's: every knob is measured from there)."""
        old = self._cur
        self.flows = dict(c.flows)
        if old is not None and old is not c and old is not self.int8:
            old.qnet = None
        self._cur = c
        if c.qnet is None:
            c.qnet = self._quantize(c.bits)
            assert c.qnet is not None            # it was quantised once already
        if self.mode == "network" or old is None:
            self.sens.outputs(c.qnet, keep=True)
        return c

    def _best_flip(self, cur: Candidate, kind: str
                   ) -> tuple[str, str, str, Candidate] | None:
        """`--dataflow search`: of the plans `cur` with one conv or fc layer's dataflow
        flipped (pos <-> chan), the one with the lowest cost of `kind` if it is below
        cur's, as (layer, old, new, candidate); else None. A flip changes no value (every
        dataflow computes the same integers), so its loss is cur's: a free move."""
        if self.flow_mode != "search":
            return None
        best = None
        for lc in cur.layers:
            if lc.type not in WEIGHTED:
                continue
            new = "chan" if lc.dataflow == "pos" else "pos"
            saved, self.flows = self.flows, {**cur.flows, lc.name: new}
            try:
                c = self.candidate(cur.bits)
            finally:
                self.flows = saved
            if c is not None and c.cost.of(kind) < (best[3] if best else cur).cost.of(kind):
                best = (lc.name, lc.dataflow, new, c)
        return best

    def _flip_step(self, flip: tuple[str, str, str, Candidate], steps: list[Step], kind: str,
                   base: float) -> Candidate:
        """Move to a flipped plan (_best_flip) and record the step."""
        name, old, new, c = flip
        steps.append(Step("flip", (name, f"dataflow {old}->{new}"), 0, 0,
                          c.cost.of(kind) / base, c.loss))
        return self._move(c)

    def _estimate(self, bits: Bits) -> float:
        """Isolated mode: INT8's loss plus, per lowered knob, what lowering it alone adds."""
        total = self.int8_loss
        for k, v in bits.items():
            if v == TOP_BITS:
                continue
            if (k, v) not in self._isolated:
                q = self._quantize({**self.int8.bits, k: v})
                self._isolated[(k, v)] = (self.sens.loss(q) - self.int8_loss) if q is not None \
                    else math.inf
            total += self._isolated[(k, v)]
        return total

    def _say(self, bar: tqdm, step: int, text: str) -> None:
        """Progress: on a terminal the bar's text; elsewhere (a log) a plain line on stderr
        every 10 s at most, so that a long search shows it is alive."""
        if not bar.disable:
            bar.set_description_str(text)
        elif self.progress and time.perf_counter() - self._said > 10:
            self._said = time.perf_counter()
            print(f"  plan: step {step}: {text} ({len(self._seen)} plans tried)",
                  file=sys.stderr, flush=True)

    def search(self, budget: Budget) -> PlanResult:
        t0 = time.perf_counter()
        kind, ref = budget.kind, self.int8
        base = ref.cost.of(kind)
        limit = budget.value * base
        cur, cheapest = ref, ref
        feasible: Candidate | None = ref if ref.cost.of(kind) <= limit else None
        steps: list[Step] = []
        n_max = sum(self.levels.index(TOP_BITS) for _ in self.knobs)
        bar = tqdm(total=n_max, unit="step", file=sys.stderr, disable=None if self.progress
                   else True, leave=False, dynamic_ncols=True,
                   bar_format="  {desc:<56} {bar:20} {n_fmt} [{elapsed}]")
        try:
            while cur.cost.of(kind) > limit:           # lower: the best saving per loss
                if (flip := self._best_flip(cur, kind)) is not None:   # --dataflow search
                    cur = self._flip_step(flip, steps, kind, base)
                    cheapest = cur if cur.cost.of(kind) < cheapest.cost.of(kind) else cheapest
                    feasible = cur if cur.cost.of(kind) <= limit and (
                        feasible is None or cur.loss < feasible.loss) else feasible
                    bar.update(1)
                    continue
                self._say(bar, len(steps) + 1, f"lowering: {kind} "
                          f"{cur.cost.of(kind) / base:.3f} x INT8, loss {cur.loss:.4f}")
                best, best_score = None, None
                self._prefetch(cur, [self.moved(cur.bits, knob, lo[-1]) for knob in self.moves
                                     if (lo := [b for b in self.levels
                                                if b < self.value(cur.bits, knob)])])
                for knob in self.moves:
                    now = self.value(cur.bits, knob)
                    for v in reversed([b for b in self.levels if b < now]):
                        c = self.candidate(self.moved(cur.bits, knob, v))
                        if c is None:
                            continue
                        if c.cost.of(kind) < cheapest.cost.of(kind):
                            cheapest = c
                        if c.cost.of(kind) <= limit and (feasible is None
                                                         or c.loss < feasible.loss):
                            feasible = c        # the least loss that meets the budget
                        saving = (cur.cost.of(kind) - c.cost.of(kind)) / base
                        if saving <= 0:
                            continue            # no saving: try the next lower value
                        dloss = c.loss - cur.loss
                        score = (1, saving) if dloss <= 0 else (0, saving / dloss)
                        if best_score is None or score > best_score:
                            best, best_score = (knob, v, c), score
                        break
                if best is None:
                    raise BudgetNotMet(budget, cheapest, ref, len(self._seen))
                knob, v, c = best
                steps.append(Step("lower", knob, self.value(cur.bits, knob), v,
                                  c.cost.of(kind) / base, c.loss))
                cur = self._move(c)
                bar.update(1)
            if feasible is not None and feasible is not cur:
                steps.append(Step("switch", None, 0, 0, feasible.cost.of(kind) / base,
                                  feasible.loss))
                cur = self._move(feasible)
            while True:                                  # raise: the best loss reduction
                self._say(bar, len(steps) + 1, f"raising back: {kind} "
                          f"{cur.cost.of(kind) / base:.3f} x INT8, loss {cur.loss:.4f}")
                best, gain = None, 0.0
                self._prefetch(cur, [self.moved(cur.bits, knob, up[0]) for knob in self.moves
                                     if (up := [b for b in self.levels
                                                if b > self.value(cur.bits, knob)])])
                for knob in self.moves:
                    up = [b for b in self.levels if b > self.value(cur.bits, knob)]
                    if not up:
                        continue
                    c = self.candidate(self.moved(cur.bits, knob, up[0]))
                    if c is None or c.cost.of(kind) > limit:
                        continue
                    if cur.loss - c.loss > gain:
                        best, gain = (knob, up[0], c), cur.loss - c.loss
                if best is None:
                    if (flip := self._best_flip(cur, kind)) is None:
                        break
                    cur = self._flip_step(flip, steps, kind, base)   # then raise again
                    bar.update(1)
                    continue
                knob, v, c = best
                steps.append(Step("raise", knob, self.value(cur.bits, knob), v,
                                  c.cost.of(kind) / base, c.loss))
                cur = self._move(c)
                bar.update(1)
        finally:
            bar.close()
        self._move(cur)
        assert cur.qnet is not None
        loss = self.sens.loss(cur.qnet) if self.mode == "isolated" else cur.loss
        return PlanResult(self.net, budget, ref, cur, cur.qnet, loss, self.int8_loss, steps,
                          len(self._seen), self.invalid, self.costs.predicted,
                          self.sens.forwards, time.perf_counter() - t0)


# -- calibration, accuracy, reports --------------------------------------------------------------
@dataclass
class Calibration:
    x: np.ndarray
    what: str                # a sentence for the header and the output
    synthetic: bool
    n_dataset: int = 0       # images of the dataset used (the first n)


def calibration(net: Network, k: int | None, seed: int) -> Calibration:
    """The first k images of the network's dataset, or k seeded synthetic ones."""
    if net.dataset is not None:
        x, _ = net.test_set()
        k = DEFAULT_CALIB["dataset"] if k is None else k
        x = x[:k]
        return Calibration(x, f"the first {len(x)} images of {net.dataset} (the network's "
                              f"dataset, its test split)", False, len(x))
    k = DEFAULT_CALIB["synthetic"] if k is None else k
    x = np.random.default_rng(seed).random((k,) + tuple(net.input_shape)) \
        * float(net.weights["input.act_max"])
    return Calibration(x, f"{k} SYNTHETIC images (the network names no dataset): seeded "
                          f"uniform [0, input.act_max), numpy default_rng({seed})", True)


def accuracy(qnet: QNet, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the integer reference on images x, labels y."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(predict(qnet, qnet.quantize_input(x)) == y))


def summary(bits: Bits) -> str:
    """A short description of a plan: input bits, then w/a per layer (a for adds)."""
    parts = [f"in{bits[INPUT_KNOB]}"]
    seen: dict[str, list[str]] = {}
    for (name, kind), v in bits.items():
        if (name, kind) == INPUT_KNOB:
            continue
        if _block_rc(kind) is not None:
            if _block_rc(kind) == (0, 0):
                seen.setdefault(name, []).append(f"w[{grid_text(_w_grid(name, bits))}]")
            continue
        if _ablock_r(kind) is not None:
            if _ablock_r(kind) == 0:
                seen.setdefault(name, []).append(f"a[{grid_text([_a_blocks(name, bits) or []])}]")
            continue
        seen.setdefault(name, []).append(f"{kind[0]}{v}")
    parts += [f"{name} {'/'.join(v)}" for name, v in seen.items()]
    return ", ".join(parts)


def grid_text(grid: list[list[int]] | None) -> str:
    """A block grid in short: rows separated by '/', columns by ',' (8,6/6,8)."""
    return "/".join(",".join(str(b) for b in row) for row in grid or [])


def _fmt(kind: str, v: float) -> str:
    unit = {"latency": "s", "energy": "J", "edp": "J*s"}[kind]
    return f"{v:.6g} {unit}"


def cost_line(cost: Cost, ref: Cost) -> str:
    """Latency, energy and EDP with their ratio to the reference's, for a terminal."""
    return (f"latency {si(cost.latency_s, 's')} ({cost.latency_s / ref.latency_s:.4f} x INT8), "
            f"energy {si(cost.energy_j, 'J')} ({cost.energy_j / ref.energy_j:.4f} x INT8), "
            f"EDP {cost.edp_js:.4g} J*s ({cost.edp_js / ref.edp_js:.4f} x INT8)")


SENSITIVITY_TEXT = {
    "network": "relative L2 error of the network's final output (integer reference, "
               "dequantised by its scale) against the float network on the calibration "
               "images, measured for every candidate plan",
    "isolated": "relative L2 error of the network's final output (integer reference, "
                "dequantised) against the float network on the calibration images; during "
                "the search estimated as INT8's error plus, per knob, what lowering that "
                "knob alone from INT8 adds",
}


def header(res: PlanResult, *, network: str, where: str, calib: Calibration, seed: int,
           mode: str, command: str) -> list[str]:
    """The plan file's comment lines: what it is, budget, predicted cost, sensitivity,
    calibration data, seed (prose wrapped at 88 columns)."""
    def para(text: str) -> list[str]:
        return textwrap.wrap(text, 86, subsequent_indent="  ", break_on_hyphens=False)

    c, r = res.chosen.cost, res.int8.cost
    blocky = any(_block_rc(k) is not None for _, k in res.chosen.bits)
    act = any(_ablock_r(k) is not None for _, k in res.chosen.bits)
    what = ("weight bits per block (blocks: rows of output channels x columns of the "
            "reduction)" if blocky else "per-layer weight bits") + (
        " and activation bits per block of output channels (a_blocks) where the readers "
        "allow it" if act else " and per-layer activation bits")
    if not blocky and not act:
        what = "per-layer weight and activation bits"
    return [
        *para(f"Precision plan for {network} chosen by `bfimna plan` (docs/planner.md): "
              f"{what}, lowered greedily from INT8, that meet a cost budget with the least "
              f"quantisation loss."),
        *para(f"command: {command}"),
        *para(f"budget: {res.budget} (INT8: input_bits 8, every w_bits and a_bits 8)"),
        *para(f"cost model: predict_network + evaluate on {where}"),
        "predicted cost:",
        f"  latency {c.latency_s:.6g} s ({c.latency_s / r.latency_s:.4f} x INT8)",
        f"  energy {c.energy_j:.6g} J ({c.energy_j / r.energy_j:.4f} x INT8)",
        f"  EDP {c.edp_js:.6g} J*s ({c.edp_js / r.edp_js:.4f} x INT8)",
        f"INT8: latency {r.latency_s:.6g} s, energy {r.energy_j:.6g} J, EDP {r.edp_js:.6g} J*s",
        *para(f"sensitivity ({mode}): {SENSITIVITY_TEXT[mode]}: {res.loss:.4g} (INT8: "
              f"{res.int8_loss:.4g})"),
        *para(f"calibration: {calib.what}"),
        f"seed: {seed}" + (" (of the synthetic calibration images)" if calib.synthetic
                           else " (not used: the calibration images come from the dataset)"),
    ]


def layer_table(res: PlanResult) -> list[str]:
    """Per layer: the bits chosen, dataflow, latency and energy with their share of the
    plan's."""
    bits, c = res.chosen.bits, res.chosen.cost
    nw = max(7, *(len(lay.name) for lay in res.net.layers))
    ws = {lay.name: grid_text(_w_grid(lay.name, bits)) if _w_grid(lay.name, bits) is not None
          else str(bits.get((lay.name, "w_bits"), "-")) for lay in res.net.layers}
    ww = max(6, *(len(v) for v in ws.values()))
    abl = {lay.name: grid_text([ab]) if (ab := _a_blocks(lay.name, bits)) is not None
           else str(bits.get((lay.name, "a_bits"), "-")) for lay in res.net.layers}
    aw = max(6, *(len(v) for v in abl.values()))
    lines = [f"{'layer':<{nw}} {'type':<7} {'w_bits':>{ww}} {'a_bits':>{aw}} {'dataflow':>8} "
             f"{'latency':>11} {'share':>6} {'energy':>11} {'share':>6}",
             f"{'input':<{nw}} {'':<7} {'':>{ww}} {bits[INPUT_KNOB]:>{aw}}"]
    for lc in res.chosen.layers:
        w, a = ws[lc.name], abl[lc.name]
        lines.append(f"{lc.name:<{nw}} {lc.type:<7} {w:>{ww}} {a:>{aw}} {lc.dataflow:>8} "
                     f"{si(lc.latency_s, 's'):>11} {lc.latency_cycles / c.latency_cycles:>6.1%} "
                     f"{si(lc.energy_j, 'J'):>11} {lc.energy_j / c.energy_j:>6.1%}")
    lines.append(f"{'total':<{nw}} {'':<7} {'':>{ww}} {'':>{aw}} {'':>8} "
                 f"{si(c.latency_s, 's'):>11} {'':>6} {si(c.energy_j, 'J'):>11}")
    return lines


def si(v: float, unit: str) -> str:
    """v with an SI prefix, 4 significant digits: 27.52 us, 1.019 uJ."""
    for p, f in (("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if abs(v) >= f:
            return f"{v / f:.4g} {p}{unit}"
    return f"{v / 1e-15:.4g} f{unit}"


# -- a candidate on a Dask worker (Planner._prefetch) ---------------------------------------------
_WORKER_STATE: dict[str, dict] = {}     # the planner a worker serves: its caches


def _remote_candidate(spec: dict, cur: Bits, bits: Bits, want_loss: bool,
                      flows: dict[str, str] | None = None
                      ) -> tuple[tuple[list[LayerCost], float | None] | None, str]:
    """On a worker: ((layer costs, loss or None), '') of plan `bits`, or (None, why) if
    it cannot be quantised or scheduled: what Planner.candidate computes, with the
    worker's own caches (the layer costs; the tensors of the current plan `cur`, which
    the loss reuses as the client's does). Deterministic: the client gets the numbers
    it would have computed itself."""
    st = _WORKER_STATE.get(spec["token"])
    net = spec["net"]
    if st is None:
        _WORKER_STATE.clear()                      # one planner at a time per worker
        st = _WORKER_STATE[spec["token"]] = {
            "costs": CostModel(net, spec["cfg"], spec["point"], spec["batch"]),
            "sens": Sensitivity(net, spec["x"]), "cur": None}
    try:
        qnet = quantize(net, with_flows(plan_of(net, bits), flows or {}))
    except (NetworkError, ValueError) as exc:
        return None, f"quantised: {exc}"
    try:
        layers = st["costs"].layer_costs(qnet)
    except ScheduleError as exc:
        return None, f"scheduled: {exc}"
    loss = None
    if want_loss:
        now = tuple(sorted(cur.items()))
        if st["cur"] != now:
            st["sens"].outputs(quantize(net, plan_of(net, cur)), keep=True)
            st["cur"] = now
        loss = st["sens"].loss(qnet)
    return (layers, loss), ""


def write_plan(path: Path, res: PlanResult, head: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_yaml(res.net, res.chosen.bits, path.stem, head)
                    + dataflow_yaml(res.chosen.flows))


# -- dataflow (`bfimna plan --dataflow`) --------------------------------------------------------
DATAFLOW_MODES = ("auto", "pos", "chan", "search")


def initial_flows(net: Network, mode: str) -> dict[str, str]:
    """The dataflows a search starts from: none fixed (auto: the scheduler's choice; search:
    from there a flip is a move), or `pos` / `chan` on every conv and fc layer."""
    if mode not in DATAFLOW_MODES:
        raise PlannerError(f"unknown dataflow {mode!r} (expected one of "
                           f"{', '.join(DATAFLOW_MODES)})")
    if mode in ("auto", "search"):
        return {}
    return {lay.name: mode for lay in net.layers if lay.type in WEIGHTED}


def with_flows(plan: Plan, flows: dict[str, str]) -> Plan:
    """`plan` with the dataflows `flows` fixed (plan_of's plans fix none)."""
    plan.dataflow.update(flows)
    return plan


def dataflow_yaml(flows: dict[str, str]) -> str:
    """The plan file's `dataflow:` line (docs/network.md), '' when the plan fixes none."""
    if not flows:
        return ""
    return "dataflow: {" + ", ".join(f"{k}: {v}" for k, v in flows.items()) + "}\n"


def plan(net: Network, cfg: Config, point, budget: Budget, calib_x: np.ndarray,
         bits: Iterable[int] = DEFAULT_BITS, sensitivity: str = "network",
         progress: bool = False, batch: int = 1, blocks: Grid | None = None,
         client=None, act_blocks: int | None = None) -> PlanResult:
    """The chosen plan for `budget` (raises BudgetNotMet, PlannerError); `blocks` (R, C):
    weight bits per block (layer_grid) instead of per layer; `client`: a Dask client whose
    workers evaluate each step's candidates (the same plan as without); `act_blocks` N:
    activation bits per block of output channels (layer_act_blocks)."""
    return Planner(net, cfg, point, calib_x, bits, batch, sensitivity, progress,
                   blocks, client, act_blocks).search(budget)


__all__ = ["BUDGET_KINDS", "Budget", "BudgetNotMet", "Calibration", "Candidate", "Cost",
           "CostModel", "LayerCost", "PlanResult", "Planner", "PlannerError", "Sensitivity",
           "a_bits_of", "accuracy", "act_block_kind", "block_kind", "calibration",
           "cost_line", "grid_text", "header", "int4_bits", "knobs", "layer_act_blocks",
           "layer_grid", "layer_table", "parse_blocks", "parse_budget", "plan", "plan_of",
           "plan_yaml", "summary", "uniform", "w_bits_of", "write_plan"]
