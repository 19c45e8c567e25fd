"""Networks, precision plans and their integer form: the golden CNN the hardware must
reproduce layer by layer (docs/network.md).

A network is a YAML layer graph (conv with groups, fc, max and average pooling, global
average pooling, residual add, concat, flatten; each layer names its inputs, a plain list
chains them) with an .npz of float weights and activation calibration; a precision plan
gives the bits of every layer's weights (per layer, or per block of a grid: output-channel
blocks x reduction blocks) and output activations (per layer, or per block of output
channels where only conv and fc layers read them: `a_blocks`). `quantize()` turns the two into
integer layers (weights, int32 biases, dyadic requantisation per output channel);
`reference()` runs them with golden/nn/cnn.py, integer-only. Every file (the
network, its weights and dataset .npz, a plan) is checked against a schema of
golden/spec/schema.py (NETWORK, weights_schema, dataset_schema, plan_schema), and a bad one
fails with a NetworkError of the common form `FILE: dotted.field: expected..., got ...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.golden.nn import cnn
from bfimna.golden.spec.schema import (
    OMIT,
    Array,
    Bool,
    File,
    Int,
    Invalid,
    ListOf,
    MapOf,
    Node,
    Num,
    OneOf,
    Record,
    SchemaError,
    Tagged,
    Text,
    read_npz,
    read_yaml,
    reporting,
    typed,
    validate,
)

MAX_ACC_BITS = 32        # a field of the AP: accumulators and products fit 32 bits
MAX_MULT_BITS = 15       # requantisation multiplier b: a positive 16-bit immediate


class NetworkError(SchemaError):
    """A network, weights or plan file is missing or invalid."""


# -- schemas (golden/spec/schema.py; docs/network.md) ----------------------------------------
def _layer(type_: str, fields: dict) -> Record:
    return Record({"name": Text(doc="the layer's name"), "type": OneOf(type_), **fields})


_INPUTS = {"inputs": ListOf(Text(), min_len=1, default=OMIT,
                            doc="the layers it reads (default: the previous layer)")}
_WINDOW = {"kernel": Int(1, 15, doc="square window size"),
           "stride": Int(1, 15, default=OMIT),          # default: the kernel
           "pad": Int(0, 7, default=0)}
LAYER = Tagged("type", {
    "conv": _layer("conv", {
        **_INPUTS,
        "out_channels": Int(1, 4096, doc="output channels"),
        "kernel": Int(1, 15, doc="square kernel size"),
        "stride": Int(1, 8, default=1), "pad": Int(0, 7, default=0),
        "groups": Int(1, 4096, default=1), "relu": Bool(default=False)}),
    "fc": _layer("fc", {
        **_INPUTS, "out_features": Int(1, 4096, doc="outputs"), "relu": Bool(default=False)}),
    "maxpool": _layer("maxpool", {**_INPUTS, **_WINDOW}),
    "avgpool": _layer("avgpool", {**_INPUTS, **_WINDOW}),
    "gap": _layer("gap", dict(_INPUTS)),
    "add": _layer("add", {**_INPUTS, "relu": Bool(default=False)}),
    "concat": _layer("concat", dict(_INPUTS)),
    "flatten": _layer("flatten", dict(_INPUTS)),
})
LAYER_TYPES = tuple(LAYER.variants)
WEIGHTED = ("conv", "fc")                 # layers with weights, biases and a plan entry
SIGNED_OK = ("add",)                      # the only layers that take signed inputs

NETWORK = Record({
    "name": Text(doc="the network's name"),
    "input": Record({k: Int(1, 4096, doc=f"input {k}")
                     for k in ("channels", "height", "width")}, doc="input shape"),
    "weights": File(".npz", default=None, null_ok=True,
                    doc="the .npz of float weights, next to this file"),
    "synthetic_weights": Record({
        "seed": Int(0, 2**31 - 1, doc="seed of the weights"),
        "act_max": MapOf(Text(), Num(0),
                         doc="largest output of `input` and of every conv, fc and add layer"),
    }, default=None, null_ok=True, doc="seeded synthetic weights instead of a file"),
    "dataset": File(".npz", default=None, null_ok=True, doc="x (N, C, H, W), y (N,)"),
    "float_accuracy": Num(0, 1, default=None),
    "layers": ListOf(LAYER, min_len=1, doc="the layers in topological order"),
})


def weights_schema(layers: list[Layer]) -> Record:
    """The arrays the weights .npz must hold for `layers` (others are ignored)."""
    arrays: dict[str, Array] = {}
    for layer in layers:
        if layer.type in ("add", *WEIGHTED):
            arrays[f"{layer.name}.act_max"] = Array((), doc=f"largest output of layer "
                                                           f"{layer.name}")
        if layer.type in ("avgpool", "gap"):     # an imported quantised model's own scale
            arrays[f"{layer.name}.act_max"] = Array(
                (), kind="float", default=OMIT,
                doc=f"layer {layer.name}: output scale x (2^bits - 1) (default: the input's "
                    f"scale, no requantisation)")
        if layer.type not in WEIGHTED:
            continue
        c, h, w = layer.in_shape
        wshape = (layer.out_channels, c // layer.groups, layer.kernel, layer.kernel) \
            if layer.type == "conv" else (layer.out_channels, c * h * w)
        arrays[f"{layer.name}.weight"] = Array(wshape, doc=f"layer {layer.name}")
        arrays[f"{layer.name}.bias"] = Array(wshape[:1], doc=f"layer {layer.name}")
        arrays[f"{layer.name}.weight_scale"] = Array(
            wshape[:1], kind="float", default=OMIT,
            doc=f"layer {layer.name}: the weights' scale per output channel (an imported "
                f"quantised model's; default: largest |weight| / (2^(w_bits-1) - 1))")
    arrays["input.act_max"] = Array((), doc="largest input value")
    return Record(arrays, what="array", extra=True)


def dataset_schema(input_shape: tuple) -> Record:
    return Record({"x": Array(("N",) + tuple(input_shape), doc="images (N, C, H, W)"),
                   "y": Array(("N",), kind="int", doc="labels")}, what="array", extra=True)


class BlockGrid(Node):
    """A plan's `blocks`: weight bits per block of output channels (a list of bits), or a
    2-D grid (a list of equal-length rows: rows = output-channel blocks, columns =
    reduction blocks; docs/network.md, "Precision plan")."""
    type_name = "a list of weight bits or a list of equal-length lists of them"

    def check(self, value, path, ctx):
        item = Int(2, 8)
        if not isinstance(value, list) or not value:
            got = f"{len(value)} entries" if isinstance(value, list) else typed(value)
            raise Invalid(path, f"expected a non-empty list, got {got}")
        if not any(isinstance(v, list) for v in value):
            return [item.check(v, path + (i,), ctx) for i, v in enumerate(value)]
        out = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or not row:
                got = "an empty list" if isinstance(row, list) else typed(row)
                raise Invalid(path + (i,), f"expected a non-empty list of weight bits (a row "
                                           f"of the grid), got {got}")
            if len(row) != len(value[0]):
                raise Invalid(path + (i,), f"expected {len(value[0])} entries (as row 0: "
                                           f"every row has one per reduction block), got "
                                           f"{len(row)}")
            out.append([item.check(v, path + (i, j), ctx) for j, v in enumerate(row)])
        return out


def block_grid(blocks: list) -> list[list[int]]:
    """A plan entry's `blocks` as a 2-D grid: a flat list is one column."""
    return [list(r) if isinstance(r, list) else [r] for r in blocks]


def reduction_len(lay: Layer) -> int:
    """The length of one output's reduction: C/groups * k * k for a conv, the inputs for
    an fc (a row of the weight array, flattened in C order)."""
    c, h, w = lay.in_shape
    return c // lay.groups * lay.kernel ** 2 if lay.type == "conv" else c * h * w


def _reduction_text(lay: Layer) -> str:
    c, h, w = lay.in_shape
    if lay.type == "conv":
        return f"{c // lay.groups} input channels x {lay.kernel}x{lay.kernel} taps"
    return f"{c * h * w} inputs"


def act_blocks_refusal(net: Network, lay: Layer) -> str | None:
    """Why layer `lay`'s output cannot have activation blocks (`a_blocks`), or None: its
    readers, followed through maxpool and flatten (which keep each channel's bits), must
    all be conv or fc layers, and it must not be (or reach through those) the network's
    output (docs/network.md, "Block-wise activation precision")."""
    todo = [lay.name]
    while todo:
        name = todo.pop()
        via = "" if name == lay.name else f" (through {name!r})"
        readers = [r for r in net.layers if name in r.inputs]
        if not readers:
            return f"the network's output is this layer's{via}"
        for r in readers:
            if r.type in ("maxpool", "flatten"):
                todo.append(r.name)
            elif r.type not in WEIGHTED:
                return f"{r.name!r} ({r.type}) reads this layer's output{via}"
    return None


def plan_schema(net: Network) -> Record:
    """A precision plan for `net`: one entry per conv and fc layer, optional ones for add
    layers (their output bits)."""
    weighted = [layer for layer in net.layers if layer.type in WEIGHTED]

    def bits(lay: Layer) -> Record:
        rlen = reduction_len(lay)

        def blocks_divide(e: dict) -> None:
            if "blocks" not in e:
                return
            grid = e["blocks"]
            if lay.out_channels % len(grid):
                what = "grid rows" if isinstance(grid[0], list) else "weight bits"
                raise Invalid("blocks", f"expected a list of {what} whose length divides "
                                        f"{lay.out_channels} (the output channels), got "
                                        f"{len(grid)} entries")
            cols = len(grid[0]) if isinstance(grid[0], list) else 1
            if rlen % cols:
                raise Invalid(("blocks", 0), f"expected rows whose length divides {rlen} "
                                             f"(the reduction: {_reduction_text(lay)}), got "
                                             f"{cols} entries")
        def checks(e: dict) -> None:
            blocks_divide(e)
            if "a_blocks" not in e:
                return
            ab = e["a_blocks"]
            if lay.out_channels % len(ab):
                raise Invalid("a_blocks", f"expected a list of activation bits whose length "
                                          f"divides {lay.out_channels} (the output channels), "
                                          f"got {len(ab)} entries")
            why = act_blocks_refusal(net, lay)
            if why is not None:
                raise Invalid("a_blocks", f"expected no a_blocks here: {why}; activation "
                                          f"blocks are read by conv and fc layers only "
                                          f"(directly or through maxpool and flatten; "
                                          f"docs/network.md), got {ab}")
            if e["a_bits"] != max(ab):
                raise Invalid("a_bits", f"expected {max(ab)} (the largest of a_blocks "
                                        f"{ab}), got {e['a_bits']}")
        return Record({"w_bits": Int(2, 8, doc="weight bits"),
                       "a_bits": Int(2, 16, doc="output activation bits"),
                       "blocks": BlockGrid(default=OMIT),
                       "a_blocks": ListOf(Int(2, 16), min_len=1, default=OMIT,
                                          doc="output activation bits per block of output "
                                              "channels")},
                      check=checks, doc="w_bits and a_bits")

    return Record({
        "name": Text(default=None),
        "input_bits": Int(1, 16, doc="bits of the quantised input"),
        "layers": Record({**{layer.name: bits(layer) for layer in weighted},
                          **{layer.name: Record({"a_bits": Int(2, 16, doc="output bits")},
                                                default=OMIT)
                             for layer in net.layers if layer.type == "add"}},
                         what="conv, fc or add layer", doc="layer name -> bits"),
        "dataflow": Record({layer.name: OneOf("pos", "chan", default=OMIT)
                            for layer in weighted},
                           what="conv or fc layer", default={}, null_ok=True),
    })


# -- files ---------------------------------------------------------------------------------
@dataclass
class Layer:
    name: str
    type: str
    out_channels: int = 0     # conv; fc: out_features; others: their output channels
    kernel: int = 1           # pooling: the window (gap: 0, the whole input)
    stride: int = 1
    pad: int = 0
    relu: bool = False
    in_shape: tuple = ()      # (C, H, W) of its (first) input
    out_shape: tuple = ()
    groups: int = 1
    inputs: tuple = ()        # names of the tensors it reads ("input": the network's)
    in_shapes: tuple = ()     # (C, H, W) of each input

    @property
    def signed(self) -> bool:
        """Its output is signed: conv, fc and add without ReLU."""
        return self.type in ("add", *WEIGHTED) and not self.relu


@dataclass
class Network:
    name: str
    path: Path
    input_shape: tuple
    layers: list[Layer]
    weights: dict[str, np.ndarray]
    dataset: Path | None
    float_accuracy: float | None = None

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The dataset's images x (N, C, H, W) and labels y (N,), checked."""
        if self.dataset is None:
            raise NetworkError(f"{self.path}: dataset: missing field (no test set)",
                               file=str(self.path), path="dataset",
                               reason="missing field (no test set)")
        d = validate(dataset_schema(self.input_shape), read_npz(self.dataset, NetworkError,
                                                                "dataset"),
                     file=self.dataset, error=NetworkError, what="dataset")
        return d["x"], d["y"]


def _window(h: int, w: int, k: int, s: int, p: int, i: int) -> tuple[int, int]:
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if oh < 1 or ow < 1:
        raise Invalid(("layers", i, "kernel"), f"must fit the {h}x{w} input"
                      + (f" padded by {p}" if p else "") + f", got {k}")
    if p >= k:
        raise Invalid(("layers", i, "pad"), f"must be below the kernel ({k}), got {p}")
    return oh, ow


def _build_layer(ld: dict, i: int, ins: tuple, shapes: tuple) -> Layer:
    """The Layer of entry `ld` (layers[i]) reading tensors `ins` of `shapes`."""
    name, t = ld["name"], ld["type"]
    c, h, w = shapes[0]
    relu = ld.get("relu", False)
    arity = {"add": (2, 2), "concat": (2, 64)}.get(t, (1, 1))
    if not arity[0] <= len(ins) <= arity[1]:
        want = {"add": "exactly 2 inputs", "concat": "2 to 64 inputs"}.get(t, "one input")
        article = "an" if t[0] in "aeiou" else "a"
        raise Invalid(("layers", i, "inputs"), f"{article} {t} layer reads {want}, "
                                               f"got {len(ins)}")
    base = {"name": name, "type": t, "relu": relu, "in_shape": shapes[0], "inputs": ins,
            "in_shapes": shapes}
    if t == "fc":
        of = ld["out_features"]
        return Layer(out_channels=of, out_shape=(of, 1, 1), **base)
    if t in ("conv", "maxpool", "avgpool"):
        k, p = ld["kernel"], ld.get("pad", 0)
        s = ld.get("stride", 1 if t == "conv" else k)
        oh, ow = _window(h, w, k, s, p, i)
        g = ld.get("groups", 1)
        k_out = ld["out_channels"] if t == "conv" else c
        if t == "conv" and (c % g or k_out % g):
            raise Invalid(("layers", i, "groups"), f"must divide the input ({c}) and output "
                                                   f"({k_out}) channels, got {g}")
        return Layer(out_channels=k_out, kernel=k, stride=s, pad=p, out_shape=(k_out, oh, ow),
                     groups=g, **base)
    if t == "gap":
        return Layer(out_channels=c, kernel=0, out_shape=(c, 1, 1), **base)
    if t == "flatten":
        return Layer(out_channels=c * h * w, out_shape=(c * h * w, 1, 1), **base)
    if t == "add":
        if shapes[0] != shapes[1]:
            raise Invalid(("layers", i, "inputs"), f"an add takes two tensors of one shape, "
                                                   f"got {shapes[0]} and {shapes[1]}")
        return Layer(out_channels=c, out_shape=shapes[0], **base)
    assert t == "concat"
    if any(sh[1:] != (h, w) for sh in shapes):
        raise Invalid(("layers", i, "inputs"), f"a concat takes tensors of one height and "
                                               f"width, got {list(shapes)}")
    k_out = sum(sh[0] for sh in shapes)
    return Layer(out_channels=k_out, out_shape=(k_out, h, w), **base)


def load_network(path: str | Path) -> Network:
    path = Path(path)
    d = validate(NETWORK, read_yaml(path, NetworkError, "network"), file=path,
                 error=NetworkError, what="network")
    shape = tuple(d["input"][k] for k in ("channels", "height", "width"))
    layers: list[Layer] = []
    seen: dict[str, int] = {}
    shapes: dict[str, tuple] = {"input": shape}
    signed: dict[str, bool] = {"input": False}
    with reporting(path, NetworkError, "network"):
        for i, ld in enumerate(d["layers"]):
            name, t = ld["name"], ld["type"]
            if name == "input":
                raise Invalid(("layers", i, "name"), "must not be 'input' (the network's "
                                                      "input), got 'input'")
            if name in seen:
                raise Invalid(("layers", i, "name"), f"must be unique, got {name!r} "
                                                      f"(also layers[{seen[name]}].name)")
            ins = tuple(ld.get("inputs", [layers[-1].name if layers else "input"]))
            for j, src in enumerate(ins):
                if src not in shapes:
                    later = " (a later layer: list layers in topological order)" \
                        if any(e["name"] == src for e in d["layers"]) else ""
                    raise Invalid(("layers", i, "inputs", j),
                                  f"expected 'input' or an earlier layer's name{later}, "
                                  f"got {src!r}")
                if signed[src] and t not in SIGNED_OK:
                    raise Invalid(("layers", seen[src], "relu"),
                                  f"must be true: {name!r} ({t}) reads it and only add layers "
                                  f"read signed activations, got false")
            seen[name] = i
            layer = _build_layer(ld, i, ins, tuple(shapes[s] for s in ins))
            layers.append(layer)
            shapes[name], signed[name] = layer.out_shape, layer.signed
        for i, layer in enumerate(layers[:-1]):
            if not any(layer.name in other.inputs for other in layers):
                raise Invalid(("layers", i, "name"), f"must be read by a later layer (only the "
                                                      f"last layer is the output), got "
                                                      f"{layer.name!r}")
    syn = d["synthetic_weights"]
    with reporting(path, NetworkError, "network"):
        if (d["weights"] is None) == (syn is None):
            raise Invalid("weights", "expected exactly one of weights (a .npz file) and "
                                     "synthetic_weights, got " + ("both" if syn else "neither"))
    if syn is not None:
        raw = synthetic_weights(layers, syn["seed"])
        need = ["input"] + [lay.name for lay in layers if lay.type in ("add", *WEIGHTED)]
        with reporting(path, NetworkError, "network"):
            for name in need:
                if name not in syn["act_max"]:
                    raise Invalid(("synthetic_weights", "act_max", name),
                                  "missing value (the calibrated largest output)")
            for name in syn["act_max"]:
                if name not in need:
                    raise Invalid(("synthetic_weights", "act_max", name),
                                  f"unknown input, conv, fc or add layer (known here: "
                                  f"{', '.join(need[:8])}{', ...' if len(need) > 8 else ''})")
        raw.update({f"{name}.act_max": np.array(syn["act_max"][name], dtype=np.float32)
                    for name in need})
        weights = validate(weights_schema(layers), raw, file=path, error=NetworkError,
                           what="synthetic weights")
    else:
        wfile = d["weights"]
        weights = validate(weights_schema(layers), read_npz(wfile, NetworkError, "weights"),
                           file=wfile, error=NetworkError, what="weights")
    return Network(d["name"], path, shape, layers, weights, d["dataset"], d["float_accuracy"])


@dataclass
class Plan:
    name: str
    input_bits: int
    layers: dict[str, dict]          # name -> {"w_bits", "a_bits", "blocks"?, "a_blocks"?}
    dataflow: dict[str, str] = field(default_factory=dict)


def load_plan(path: str | Path, net: Network) -> Plan:
    path = Path(path)
    d = validate(plan_schema(net), read_yaml(path, NetworkError, "precision plan"), file=path,
                 error=NetworkError, what="precision plan")
    out = {name: {"w_bits": e["w_bits"], "a_bits": e["a_bits"],
                  "blocks": e.get("blocks", [e["w_bits"]]),
                  **({"a_blocks": e["a_blocks"]} if "a_blocks" in e else {})}
           if "w_bits" in e else dict(e) for name, e in d["layers"].items()}
    return Plan(d["name"] or path.stem, d["input_bits"], out, dict(d["dataflow"]))


def synthetic_weights(layers: list[Layer], seed: int) -> dict[str, np.ndarray]:
    """SYNTHETIC weights of every conv and fc layer, the same for a given seed: weight
    ~ N(0, 2 / fan_in) (He), bias ~ N(0, 0.01^2), float32; layer i draws from
    default_rng([seed, i]), so one layer's shape does not change the others' values.
    For models whose trained weights cannot be had here (the zoo); never for accuracy."""
    out: dict[str, np.ndarray] = {}
    for i, lay in enumerate(layers):
        if lay.type not in WEIGHTED:
            continue
        c, h, w = lay.in_shape
        shape = ((lay.out_channels, c // lay.groups, lay.kernel, lay.kernel)
                 if lay.type == "conv" else (lay.out_channels, c * h * w))
        rng = np.random.default_rng([seed, i])
        fan_in = int(np.prod(shape[1:]))
        out[f"{lay.name}.weight"] = (rng.standard_normal(shape, dtype=np.float32)
                                     * np.float32(np.sqrt(2.0 / fan_in)))
        out[f"{lay.name}.bias"] = rng.standard_normal(shape[:1], dtype=np.float32) \
            * np.float32(0.01)
    return out


# -- integer network -------------------------------------------------------------------------
@dataclass
class QLayer:
    """One layer in integers (docs/network.md, "Quantisation").

    conv/fc: y = clamp(round_half_up(acc * b / 2^c), lo, hi) per output channel j,
    acc = sum(x * w) + bias. maxpool: the window's max. avgpool/gap: clamp(round(sum * b /
    2^c)) with b / 2^c ~ 1 / window (`mults` [(b, c)]). add: clamp(round((xa * ba + xb * bb)
    / 2^c)) (`mults` [(ba, c), (bb, c)]). concat: each input i rescaled by its (b_i, c_i)
    (`mults`; (1, 0) where the scales agree), then stacked. flatten: a reshape."""
    layer: Layer
    in_bits: int                      # bits of the (first) input
    out_bits: int
    out_signed: bool = False
    w: np.ndarray | None = None       # int64, (K, C/groups, k, k) or (K, F)
    w_bits: list[int] = field(default_factory=list)   # per output channel
    bias: np.ndarray | None = None    # int64 (K,)
    b: np.ndarray | None = None       # int64 (K,) requantisation multiplier
    c: np.ndarray | None = None       # int64 (K,) shift
    acc_bits: int = 0                 # signed width that holds every accumulator
    lo: int = 0
    hi: int = 0
    in_bits_all: list[int] = field(default_factory=list)    # per input
    in_signed: list[bool] = field(default_factory=list)     # per input
    mults: list[tuple[int, int]] = field(default_factory=list)   # pool, add, concat
    w_grid: list[list[int]] = field(default_factory=list)   # the plan's block grid of bits
    w_shift: np.ndarray | None = None     # int64 (K, grid columns): each block's k (w = q 2^k)
    # activation blocks (docs/network.md, "Block-wise activation precision"): per channel
    # of the output, and of the (first) input, its bits and its k (the value on the
    # tensor's common grid is the integer times 2^k); None: every channel has the
    # tensor's bits and k = 0
    out_ch_bits: np.ndarray | None = None     # int64 (K,)
    out_shift: np.ndarray | None = None       # int64 (K,)
    in_ch_bits: np.ndarray | None = None      # int64 (C,) of its first input
    in_shift: np.ndarray | None = None        # int64 (C,)

    def ch_range(self) -> tuple[np.ndarray, np.ndarray] | tuple[int, int]:
        """The clamp range of the output: (lo, hi), or per output channel arrays."""
        if self.out_ch_bits is None:
            return self.lo, self.hi
        pairs = [_range(int(b), self.out_signed) for b in self.out_ch_bits]
        return (np.array([p[0] for p in pairs], dtype=np.int64),
                np.array([p[1] for p in pairs], dtype=np.int64))

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def inputs(self) -> tuple:
        return self.layer.inputs


@dataclass
class QNet:
    net: Network
    plan: Plan
    input_bits: int
    input_scale: float
    layers: list[QLayer]
    scales: dict[str, float] = field(default_factory=dict)   # tensor -> its float scale

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float images (N, C, H, W) -> unsigned input_bits integers."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.input_scale)
        return np.clip(q, 0, (1 << self.input_bits) - 1).astype(np.int64)


def _range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _shared_shift(ratios: list[float], acc_of) -> tuple[list[int], int]:
    """Multipliers b_i with one shift c, b_i / 2^c ~ ratios[i]: the largest c (the most
    precise) whose multipliers are positive 15-bit immediates, whose sum of products
    acc_of(bs) stays within the 30 bits a field holds beside its sign, and below which
    the shift stays (SHR's m < n)."""
    for c in range(2 * MAX_ACC_BITS, -1, -1):
        bs = [round(r * (1 << c)) for r in ratios]
        if max(bs) < 1 << MAX_MULT_BITS and acc_of(bs) <= MAX_ACC_BITS - 2 and \
                c < acc_of(bs) + 1:
            break
    if min(bs) < 1:
        raise ValueError(f"scale ratios {ratios} need a multiplier below 1")
    return bs, c


def quantize(net: Network, plan: Plan) -> QNet:
    """The integer network of `net` under `plan` (docs/network.md, "Quantisation")."""
    W = net.weights
    s0 = float(W["input.act_max"]) / ((1 << plan.input_bits) - 1)
    # every tensor: (bits, signed, scale)
    tensors: dict[str, tuple[int, bool, float]] = {"input": (plan.input_bits, False, s0)}
    # tensors with activation blocks: (bits, k) per channel
    blocky: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out: list[QLayer] = []
    for lay in net.layers:
        ins = [tensors[n] for n in lay.inputs]
        in_bits, _, s_in = ins[0]
        common: dict[str, Any] = {"in_bits_all": [t[0] for t in ins],
                                  "in_signed": [t[1] for t in ins]}
        t = lay.type
        chan = blocky.get(lay.inputs[0])
        if chan is not None:
            common.update(in_ch_bits=chan[0], in_shift=chan[1])
        if any(n in blocky for n in lay.inputs) and t not in ("maxpool", "flatten",
                                                               *WEIGHTED):
            raise NetworkError(f"{lay.name}: {'an' if t[0] in 'aeiou' else 'a'} {t} layer "
                               f"cannot read activation blocks "
                               f"(a_blocks of {[n for n in lay.inputs if n in blocky]}): only "
                               f"conv, fc, maxpool and flatten layers can")
        if t in ("maxpool", "flatten"):
            q = QLayer(lay, in_bits, in_bits, lo=0, hi=(1 << in_bits) - 1, **common)
            if chan is not None:         # each channel keeps its bits (flatten: per value)
                rep = 1 if t == "maxpool" else lay.in_shape[1] * lay.in_shape[2]
                q.out_ch_bits, q.out_shift = np.repeat(chan[0], rep), np.repeat(chan[1], rep)
            s_out = s_in
        elif t in ("avgpool", "gap"):
            window = lay.kernel ** 2 if t == "avgpool" else lay.in_shape[1] * lay.in_shape[2]
            sum_bits = in_bits + (window - 1).bit_length() + 1
            s_out = s_in
            if f"{lay.name}.act_max" in W:    # its own output scale (an imported model's)
                s_out = float(W[f"{lay.name}.act_max"]) / ((1 << in_bits) - 1)
                if not (s_out > 0 and np.isfinite(s_out)):
                    raise NetworkError(f"{lay.name}.act_max: expected a positive finite "
                                       f"value, got {s_out * ((1 << in_bits) - 1):g}")
            b_, c_ = cnn.dyadic(s_in / s_out / window,
                                min(MAX_MULT_BITS, MAX_ACC_BITS - sum_bits - 1))
            q = QLayer(lay, in_bits, in_bits, lo=0, hi=(1 << in_bits) - 1, acc_bits=sum_bits,
                       mults=[(b_, c_)], **common)
        elif t == "concat":
            bits = max(x[0] for x in ins)
            s_out = max(x[2] * ((1 << x[0]) - 1) for x in ins) / ((1 << bits) - 1)
            mults = []
            for xb, _, xs in ins:
                if xs == s_out:
                    mults.append((1, 0))
                    continue
                mb = min(MAX_MULT_BITS, MAX_ACC_BITS - xb - 2)
                mults.append(cnn.dyadic(xs / s_out, mb))
            q = QLayer(lay, in_bits, bits, lo=0, hi=(1 << bits) - 1, mults=mults,
                       acc_bits=max(xb for xb, _, _ in ins) + MAX_MULT_BITS + 1, **common)
        elif t == "add":
            entry = plan.layers.get(lay.name, {})
            ab = entry.get("a_bits", max(x[0] for x in ins))
            act_max = max(float(W[f"{lay.name}.act_max"]), 1e-6)
            s_out = act_max / ((1 << ab) - 1 if lay.relu else (1 << (ab - 1)) - 1)
            mags = [(1 << x[0]) - 1 if not x[1] else 1 << (x[0] - 1) for x in ins]

            def acc_of(bs, mags=mags):
                return int(sum(m * b for m, b in zip(mags, bs, strict=True))).bit_length() + 1
            try:
                bs, c_ = _shared_shift([x[2] / s_out for x in ins], acc_of)
            except ValueError as exc:
                raise NetworkError(f"{lay.name}: the scales of its inputs are too far apart "
                                   f"for one shift: {exc}") from None
            lo, hi = _range(ab, not lay.relu)
            q = QLayer(lay, in_bits, ab, not lay.relu, acc_bits=acc_of(bs), lo=lo, hi=hi,
                       mults=[(b_, c_) for b_ in bs], **common)
        else:
            q, s_out = _quantize_weighted(lay, W, plan, in_bits, s_in, common)
        if q.acc_bits > MAX_ACC_BITS - 2:
            raise NetworkError(f"{lay.name}: accumulators need {q.acc_bits} bits; the AP's "
                               f"fields hold {MAX_ACC_BITS}: lower the precision")
        out.append(q)
        tensors[lay.name] = (q.out_bits, q.out_signed, s_out)
        if q.out_ch_bits is not None:
            assert q.out_shift is not None
            blocky[lay.name] = (q.out_ch_bits, q.out_shift)
    if out[-1].out_ch_bits is not None:
        raise NetworkError(f"{out[-1].name}: the network's output cannot have activation "
                           f"blocks (a_blocks): its values are compared on one scale")
    return QNet(net, plan, plan.input_bits, s0, out, {n: t[2] for n, t in tensors.items()})


def _quantize_weighted(lay: Layer, W: dict, plan: Plan, in_bits: int, s_in: float,
                       common: dict) -> tuple[QLayer, float]:
    p = plan.layers[lay.name]
    w = W[f"{lay.name}.weight"].astype(np.float64)
    bias = W[f"{lay.name}.bias"].astype(np.float64)
    K = w.shape[0]
    grid = block_grid(p["blocks"])
    per = K // len(grid)
    wbits = [max(grid[j // per]) for j in range(K)]     # a channel's full bits
    wmax = np.abs(w.reshape(K, -1)).max(axis=1)
    qmax = np.array([(1 << (b - 1)) - 1 for b in wbits], dtype=np.float64)
    s_w = np.where(wmax > 0, wmax / qmax, 1.0)
    if f"{lay.name}.weight_scale" in W:      # an imported quantised model's own scales
        s_w = W[f"{lay.name}.weight_scale"].astype(np.float64)
        if not np.all(s_w > 0) or not np.all(np.isfinite(s_w)):
            raise NetworkError(f"{lay.name}.weight_scale: expected positive finite scales, "
                               f"got min {float(s_w.min()):g}")
    wq, shifts = quantize_blocks(w, grid, s_w)
    bq = np.round(bias / (s_in * s_w)).astype(np.int64)
    ab = p["a_bits"]
    act_max = max(float(W[f"{lay.name}.act_max"]), 1e-6)
    s_out = act_max / ((1 << ab) - 1 if lay.relu else (1 << (ab - 1)) - 1)
    out_ch = out_k = None
    if "a_blocks" in p:                     # activation blocks: block r at b_r bits on
        ab = max(p["a_blocks"])             # the scale s_out 2^(B - b_r), B the largest
        s_out = act_max / ((1 << ab) - 1 if lay.relu else (1 << (ab - 1)) - 1)
        per_a = K // len(p["a_blocks"])
        out_ch = np.array([p["a_blocks"][j // per_a] for j in range(K)], dtype=np.int64)
        out_k = ab - out_ch
    xmax = (1 << in_bits) - 1
    bound = np.abs(wq.reshape(K, -1)).sum(axis=1) * xmax + np.abs(bq)
    acc_bits = int(max(int(v) for v in bound).bit_length() + 1)
    mbits = max(1, min(MAX_MULT_BITS, MAX_ACC_BITS - acc_bits - 1))
    bs, cs = [], []
    for j in range(K):
        s_j = s_out if out_k is None else s_out * (1 << int(out_k[j]))
        b_, c_ = cnn.dyadic(s_in * s_w[j] / s_j, mbits)
        while c_ >= acc_bits + mbits:       # SHR needs m < n: keep the shift in range
            b_, c_ = (b_ + 1) >> 1, c_ - 1
        bs.append(b_)
        cs.append(c_)
    lo, hi = _range(ab, not lay.relu)
    return QLayer(lay, in_bits, ab, not lay.relu, wq, wbits, bq, np.array(bs), np.array(cs),
                  acc_bits, lo, hi, w_grid=grid, w_shift=shifts, out_ch_bits=out_ch,
                  out_shift=out_k, **common), s_out


def quantize_blocks(w: np.ndarray, grid: list[list[int]],
                    s_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights of float weights w (K, ...) under a block grid (docs/network.md,
    "Quantisation"): output channel j of row block r = j // (K / rows) has full bits
    B = max(grid[r]) and scale s_w[j]; a row of w, flattened in C order, splits into
    len(grid[r]) equal contiguous reduction blocks. A block at B bits: round(w / s_w[j]).
    A block at b < B bits: m = 2^(b-1) - 1, k >= 0 the least with m 2^k covering its
    largest |w| / s_w[j], but at most the largest with m 2^k <= 2^(B-1) - 1 (so that the
    integers stay B-bit); w_int = clip(round(w / (s_w[j] 2^k)), -m, m) 2^k. Returns the
    int64 weights (w's shape) and the shifts k (K, columns)."""
    K = w.shape[0]
    w2 = w.reshape(K, -1)
    rows, cols = len(grid), len(grid[0])
    per, span = K // rows, w2.shape[1] // cols
    wq = np.zeros(w2.shape, dtype=np.int64)
    shifts = np.zeros((K, cols), dtype=np.int64)
    for j in range(K):
        row = grid[j // per]
        full = max(row)
        for i, b in enumerate(row):
            seg = w2[j, i * span:(i + 1) * span] / s_w[j]
            if b == full:
                wq[j, i * span:(i + 1) * span] = np.round(seg)
                continue
            m, top = (1 << (b - 1)) - 1, float(np.abs(seg).max())
            k = 0
            while m << k < top * (1 - 1e-9) and m << (k + 1) <= (1 << (full - 1)) - 1:
                k += 1
            q = np.clip(np.round(seg / (1 << k)), -m, m).astype(np.int64)
            wq[j, i * span:(i + 1) * span] = q << k
            shifts[j, i] = k
    return wq.reshape(w.shape), shifts


def layer_acc(q: QLayer, x: np.ndarray) -> np.ndarray:
    """int64 accumulators of a conv or fc layer (N, K, H, W) / (N, K); an input with
    activation blocks is first put on its common grid (channel c times 2^in_shift[c])."""
    lay = q.layer
    if q.in_shift is not None:
        x = cnn.shift_channels(x, q.in_shift)
    if lay.type == "conv":
        p = lay.pad
        return cnn.conv2d_acc(x, 0, q.w, 0, q.bias, (lay.stride, lay.stride), (p, p, p, p),
                              groups=lay.groups)
    return cnn.linear_acc(x.reshape(x.shape[0], -1), 0, q.w, 0, q.bias)


def layer_forward(q: QLayer, *xs: np.ndarray) -> np.ndarray:
    """The integer output of layer q for its input tensors xs (in q.inputs' order)."""
    lay, x = q.layer, xs[0]
    t = lay.type
    if t == "maxpool":
        p = lay.pad
        return cnn.maxpool2d(x, lay.kernel, lay.stride, (p, p, p, p))
    if t == "flatten":
        return x.reshape(len(x), -1, 1, 1)
    if t in ("avgpool", "gap"):
        (b_, c_), = q.mults
        k = lay.kernel if t == "avgpool" else tuple(lay.in_shape[1:])
        p = lay.pad
        return cnn.avgpool2d(x, 0, k, b_, c_, q.lo, q.hi, lay.stride if t == "avgpool" else 1,
                             (p, p, p, p))
    if t == "add":
        (ba, c_), (bb, _) = q.mults
        return cnn.residual_add(xs[0], 0, ba, xs[1], 0, bb, c_, 0, q.lo, q.hi)
    if t == "concat":
        parts = [x_i if (b_, c_) == (1, 0) else cnn.requantize(x_i, b_, c_, 0, q.lo, q.hi)
                 for x_i, (b_, c_) in zip(xs, q.mults, strict=True)]
        return np.concatenate([cnn._i64(x_i) for x_i in parts], axis=1)
    acc = layer_acc(q, x)
    assert q.b is not None and q.c is not None     # conv and fc layers have them
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    prod = acc * q.b.reshape(shape)
    c = q.c.reshape(shape)
    half = np.where(c > 0, np.left_shift(np.int64(1), np.maximum(c - 1, 0)), 0)
    y = (prod + half) >> c                   # round half up, as the AP's SHR
    if q.out_ch_bits is not None:            # activation blocks: each channel's range
        lo, hi = q.ch_range()
        return np.clip(y, cnn._per_channel(lo, y.ndim), cnn._per_channel(hi, y.ndim))
    return np.clip(y, q.lo, q.hi)


def forward(qnet: QNet, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the graph by name ("input" and each layer's output)."""
    env = {"input": np.asarray(x_int, dtype=np.int64)}
    for q in qnet.layers:
        env[q.name] = layer_forward(q, *(env[n] for n in q.inputs))
    return env


def reference(qnet: QNet, x_int: np.ndarray) -> list[np.ndarray]:
    """Every layer's integer output for input images x_int (N, C, H, W), in layer order."""
    env = forward(qnet, x_int)
    return [env[q.name] for q in qnet.layers]


def predict(qnet: QNet, x_int: np.ndarray) -> np.ndarray:
    return reference(qnet, x_int)[-1].reshape(len(x_int), -1).argmax(axis=1)


def float_forward(net: Network, x: np.ndarray, clamp: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of the graph in float64 (the float network the integer one
    approximates): for calibration (`act_max`), for checking the quantisation and an ONNX
    import (golden/nn/onnx_import.py). fc outputs are (N, K), the others (N, C, H, W).
    clamp: also clamp relu layers at their act_max (what quantisation does; it reproduces
    an imported Clip's max on calibration data)."""
    env = {"input": np.asarray(x, dtype=np.float64)}
    W = net.weights
    for lay in net.layers:
        xs = [env[n] for n in lay.inputs]
        x0, t, p = xs[0], lay.type, lay.pad
        if t == "conv":
            y = _float_conv(x0, W[f"{lay.name}.weight"].astype(np.float64), lay.stride, p,
                            lay.groups)
            y = y + W[f"{lay.name}.bias"].astype(np.float64).reshape(1, -1, 1, 1)
        elif t == "fc":
            y = x0.reshape(len(x0), -1) @ W[f"{lay.name}.weight"].astype(np.float64).T \
                + W[f"{lay.name}.bias"].astype(np.float64)
        elif t == "maxpool":
            y = _float_window(x0, lay.kernel, lay.stride, p, -np.inf).max(axis=(4, 5))
        elif t == "avgpool":
            y = _float_window(x0, lay.kernel, lay.stride, p, 0.0).sum(axis=(4, 5)) \
                / (lay.kernel * lay.kernel)
        elif t == "gap":
            y = x0.mean(axis=(2, 3), keepdims=True)
        elif t == "add":
            y = xs[0] + xs[1]
        elif t == "concat":
            y = np.concatenate(xs, axis=1)
        else:
            y = x0.reshape(len(x0), -1, 1, 1)
        if lay.relu:
            y = np.maximum(y, 0.0)
            if clamp:
                y = np.minimum(y, float(W[f"{lay.name}.act_max"]))
        env[lay.name] = y
    return env


def _float_window(x: np.ndarray, k: int, s: int, p: int, fill: float) -> np.ndarray:
    """(N, C, OH, OW, k, k) windows (a strided view) of x padded by p with `fill`."""
    from numpy.lib.stride_tricks import sliding_window_view
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def _float_conv(x: np.ndarray, w: np.ndarray, s: int, p: int, g: int) -> np.ndarray:
    """The convolution of x (N, C, H, W) with w (K, C/g, k, k) in g groups, no bias."""
    win = _float_window(x, w.shape[2], s, p, 0.0)                   # N C OH OW k k
    k, cg = w.shape[:2]
    if g == 1:
        return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    if cg == 1 and k == g:         # depthwise
        return np.einsum("nchwij,cij->nchw", win, w[:, 0])
    kg = k // g
    return np.concatenate([np.tensordot(win[:, j * cg:(j + 1) * cg], w[j * kg:(j + 1) * kg],
                                        axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
                           for j in range(g)], axis=1)


def calibrate(net: Network, x: np.ndarray) -> dict[str, float]:
    """act_max of the input and of every conv, fc and add layer over images x: the largest
    output (after ReLU; the largest magnitude without), as the weights file holds them."""
    env = float_forward(net, x)
    out = {"input.act_max": float(np.abs(x).max())}
    for lay in net.layers:
        if lay.type in ("add", *WEIGHTED):
            out[f"{lay.name}.act_max"] = float(np.abs(env[lay.name]).max())
    return out


def describe(qnet: QNet) -> list[dict[str, Any]]:
    return [{"layer": q.name, "type": q.layer.type, "in_bits": q.in_bits,
             "out_bits": q.out_bits,
             "w_bits": sorted(set(q.w_bits) | {b for r in q.w_grid for b in r}),
             "acc_bits": q.acc_bits, "out_shape": q.layer.out_shape} for q in qnet.layers]
