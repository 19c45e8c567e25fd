"""Networks, precision plans and their integer form: the golden CNN the hardware must
reproduce layer by layer (docs/network.md).

A network is a YAML layer list (conv, maxpool, fc) with an .npz of float weights and
activation calibration; a precision plan gives the bits of every layer's weights (per
layer, or per block of output channels) and output activations. `quantize()` turns the
two into integer layers (weights, int32 biases, dyadic requantisation per output
channel); `reference()` runs them with golden/nn/cnn.py, integer-only. Every file (the
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
    Num,
    OneOf,
    Record,
    SchemaError,
    Tagged,
    Text,
    read_npz,
    read_yaml,
    reporting,
    validate,
)

MAX_ACC_BITS = 32        # a field of the AP: accumulators and products fit 32 bits
MAX_MULT_BITS = 15       # requantisation multiplier b: a positive 16-bit immediate


class NetworkError(SchemaError):
    """A network, weights or plan file is missing or invalid."""


# -- schemas (golden/spec/schema.py; docs/network.md) ----------------------------------------
def _layer(type_: str, fields: dict) -> Record:
    return Record({"name": Text(doc="the layer's name"), "type": OneOf(type_), **fields})


LAYER = Tagged("type", {
    "conv": _layer("conv", {
        "out_channels": Int(1, 4096, doc="output channels"),
        "kernel": Int(1, 15, doc="square kernel size"),
        "stride": Int(1, 8, default=1), "pad": Int(0, 7, default=0),
        "relu": Bool(default=False)}),
    "fc": _layer("fc", {
        "out_features": Int(1, 4096, doc="outputs"), "relu": Bool(default=False)}),
    "maxpool": _layer("maxpool", {
        "kernel": Int(1, 15, doc="square window size"),
        "stride": Int(1, 15, default=OMIT)}),          # default: the kernel
})
LAYER_TYPES = tuple(LAYER.variants)    # ("conv", "fc", "maxpool")

NETWORK = Record({
    "name": Text(doc="the network's name"),
    "input": Record({k: Int(1, 4096, doc=f"input {k}")
                     for k in ("channels", "height", "width")}, doc="input shape"),
    "weights": File(".npz", doc="the .npz of float weights, next to this file"),
    "dataset": File(".npz", default=None, null_ok=True, doc="x (N, C, H, W), y (N,)"),
    "float_accuracy": Num(0, 1, default=None),
    "layers": ListOf(LAYER, min_len=1, doc="conv, maxpool and fc layers"),
})


def weights_schema(layers: list[Layer]) -> Record:
    """The arrays the weights .npz must hold for `layers` (others are ignored)."""
    arrays: dict[str, Array] = {}
    for layer in layers:
        if layer.type == "maxpool":
            continue
        c, h, w = layer.in_shape
        wshape = (layer.out_channels, c, layer.kernel, layer.kernel) if layer.type == "conv" else \
            (layer.out_channels, c * h * w)
        arrays[f"{layer.name}.weight"] = Array(wshape, doc=f"layer {layer.name}")
        arrays[f"{layer.name}.bias"] = Array(wshape[:1], doc=f"layer {layer.name}")
        arrays[f"{layer.name}.act_max"] = Array((), doc=f"largest output of layer {layer.name}")
    arrays["input.act_max"] = Array((), doc="largest input value")
    return Record(arrays, what="array", extra=True)


def dataset_schema(input_shape: tuple) -> Record:
    return Record({"x": Array(("N",) + tuple(input_shape), doc="images (N, C, H, W)"),
                   "y": Array(("N",), kind="int", doc="labels")}, what="array", extra=True)


def plan_schema(net: Network) -> Record:
    """A precision plan for `net`: one entry per conv and fc layer."""
    weighted = [layer for layer in net.layers if layer.type != "maxpool"]

    def bits(channels: int) -> Record:
        def blocks_divide(e: dict) -> None:
            if "blocks" in e and channels % len(e["blocks"]):
                raise Invalid("blocks", f"expected a list of weight bits whose length divides "
                                        f"{channels} (the output channels), got "
                                        f"{len(e['blocks'])} entries")
        return Record({"w_bits": Int(2, 8, doc="weight bits"),
                       "a_bits": Int(2, 16, doc="output activation bits"),
                       "blocks": ListOf(Int(2, 8), min_len=1, default=OMIT)},
                      check=blocks_divide, doc="w_bits and a_bits")

    return Record({
        "name": Text(default=None),
        "input_bits": Int(1, 16, doc="bits of the quantised input"),
        "layers": Record({layer.name: bits(layer.out_channels) for layer in weighted},
                         what="conv or fc layer", doc="layer name -> bits"),
        "dataflow": Record({layer.name: OneOf("pos", "chan", default=OMIT)
                            for layer in weighted},
                           what="conv or fc layer", default={}, null_ok=True),
    })


# -- files ---------------------------------------------------------------------------------
@dataclass
class Layer:
    name: str
    type: str
    out_channels: int = 0     # conv; fc: out_features
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    relu: bool = False
    in_shape: tuple = ()      # (C, H, W) of its input
    out_shape: tuple = ()


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


def load_network(path: str | Path) -> Network:
    path = Path(path)
    d = validate(NETWORK, read_yaml(path, NetworkError, "network"), file=path,
                 error=NetworkError, what="network")
    shape = tuple(d["input"][k] for k in ("channels", "height", "width"))
    layers: list[Layer] = []
    seen: dict[str, int] = {}
    cur = shape
    with reporting(path, NetworkError, "network"):
        for i, ld in enumerate(d["layers"]):
            name, t = ld["name"], ld["type"]
            if name in seen:
                raise Invalid(("layers", i, "name"), f"must be unique, got {name!r} "
                                                      f"(also layers[{seen[name]}].name)")
            seen[name] = i
            last = i == len(d["layers"]) - 1
            if t != "maxpool" and not ld["relu"] and not last:
                raise Invalid(("layers", i, "relu"), "must be true except in the last layer "
                                                      "(activations are unsigned), got false")
            c, h, w = cur
            if t == "fc":
                of = ld["out_features"]
                layer = Layer(name, t, of, 1, 1, 0, ld["relu"], cur, (of, 1, 1))
            else:
                k, p = ld["kernel"], ld.get("pad", 0)
                s = ld.get("stride", k)
                oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
                if oh < 1 or ow < 1:
                    raise Invalid(("layers", i, "kernel"),
                                  f"must fit the {h}x{w} input" + (f" padded by {p}" if p else "")
                                  + f", got {k}")
                if t == "conv":
                    layer = Layer(name, t, ld["out_channels"], k, s, p, ld["relu"], cur,
                                  (ld["out_channels"], oh, ow))
                else:
                    layer = Layer(name, t, c, k, s, 0, False, cur, (c, oh, ow))
            layers.append(layer)
            cur = layer.out_shape
    wfile = d["weights"]
    weights = validate(weights_schema(layers), read_npz(wfile, NetworkError, "weights"),
                       file=wfile, error=NetworkError, what="weights")
    return Network(d["name"], path, shape, layers, weights, d["dataset"], d["float_accuracy"])


@dataclass
class Plan:
    name: str
    input_bits: int
    layers: dict[str, dict]          # name -> {"w_bits", "a_bits", "blocks"?}
    dataflow: dict[str, str] = field(default_factory=dict)


def load_plan(path: str | Path, net: Network) -> Plan:
    path = Path(path)
    d = validate(plan_schema(net), read_yaml(path, NetworkError, "precision plan"), file=path,
                 error=NetworkError, what="precision plan")
    out = {name: {"w_bits": e["w_bits"], "a_bits": e["a_bits"],
                  "blocks": e.get("blocks", [e["w_bits"]])} for name, e in d["layers"].items()}
    return Plan(d["name"] or path.stem, d["input_bits"], out, dict(d["dataflow"]))


# -- integer network -------------------------------------------------------------------------
@dataclass
class QLayer:
    """One layer in integers. conv/fc: y = clamp(round_half_up(acc * b / 2^c), lo, hi)
    per output channel j, acc = sum(x * w) + bias; maxpool: y = max over the window."""
    layer: Layer
    in_bits: int                      # input activations: unsigned, in_bits
    out_bits: int
    out_signed: bool = False
    w: np.ndarray | None = None       # int64, (K, C, k, k) or (K, F)
    w_bits: list[int] = field(default_factory=list)   # per output channel
    bias: np.ndarray | None = None    # int64 (K,)
    b: np.ndarray | None = None       # int64 (K,) requantisation multiplier
    c: np.ndarray | None = None       # int64 (K,) shift
    acc_bits: int = 0                 # signed width that holds every accumulator
    lo: int = 0
    hi: int = 0

    @property
    def name(self) -> str:
        return self.layer.name


@dataclass
class QNet:
    net: Network
    plan: Plan
    input_bits: int
    input_scale: float
    layers: list[QLayer]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float images (N, C, H, W) -> unsigned input_bits integers."""
        q = np.round(np.asarray(x, dtype=np.float64) / self.input_scale)
        return np.clip(q, 0, (1 << self.input_bits) - 1).astype(np.int64)


def quantize(net: Network, plan: Plan) -> QNet:
    """The integer network of `net` under `plan` (docs/network.md, "Quantisation")."""
    W = net.weights
    in_bits = plan.input_bits
    s_in = float(W["input.act_max"]) / ((1 << in_bits) - 1)
    s0 = s_in
    out: list[QLayer] = []
    for lay in net.layers:
        if lay.type == "maxpool":
            out.append(QLayer(lay, in_bits, in_bits, lo=0, hi=(1 << in_bits) - 1))
            continue
        p = plan.layers[lay.name]
        w = W[f"{lay.name}.weight"].astype(np.float64)
        bias = W[f"{lay.name}.bias"].astype(np.float64)
        K = w.shape[0]
        per = K // len(p["blocks"])
        wbits = [p["blocks"][j // per] for j in range(K)]
        wmax = np.abs(w.reshape(K, -1)).max(axis=1)
        qmax = np.array([(1 << (b - 1)) - 1 for b in wbits], dtype=np.float64)
        s_w = np.where(wmax > 0, wmax / qmax, 1.0)
        wq = np.round(w / s_w.reshape((K,) + (1,) * (w.ndim - 1))).astype(np.int64)
        bq = np.round(bias / (s_in * s_w)).astype(np.int64)
        ab = p["a_bits"]
        act_max = max(float(W[f"{lay.name}.act_max"]), 1e-6)
        s_out = act_max / ((1 << ab) - 1 if lay.relu else (1 << (ab - 1)) - 1)
        xmax = (1 << in_bits) - 1
        bound = np.abs(wq.reshape(K, -1)).sum(axis=1) * xmax + np.abs(bq)
        acc_bits = int(max(int(v) for v in bound).bit_length() + 1)
        if acc_bits > MAX_ACC_BITS - 2:
            raise NetworkError(f"{lay.name}: accumulators need {acc_bits} bits; the AP's "
                               f"fields hold {MAX_ACC_BITS}: lower the precision")
        mbits = min(MAX_MULT_BITS, MAX_ACC_BITS - acc_bits - 1)
        bs, cs = [], []
        for j in range(K):
            b_, c_ = cnn.dyadic(s_in * s_w[j] / s_out, mbits)
            while c_ >= acc_bits + mbits:       # SHR needs m < n: keep the shift in range
                b_, c_ = (b_ + 1) >> 1, c_ - 1
            bs.append(b_)
            cs.append(c_)
        lo, hi = (0, (1 << ab) - 1) if lay.relu else (-(1 << (ab - 1)), (1 << (ab - 1)) - 1)
        out.append(QLayer(lay, in_bits, ab, not lay.relu, wq, wbits, bq, np.array(bs),
                          np.array(cs), acc_bits, lo, hi))
        in_bits, s_in = ab, s_out
        if not lay.relu and lay is not net.layers[-1]:
            raise NetworkError(f"{lay.name}: only the last layer may be without ReLU "
                               f"(activations are unsigned)")
    return QNet(net, plan, plan.input_bits, s0, out)


def layer_acc(q: QLayer, x: np.ndarray) -> np.ndarray:
    """int64 accumulators of a conv or fc layer (N, K, H, W) / (N, K)."""
    lay = q.layer
    if lay.type == "conv":
        p = lay.pad
        return cnn.conv2d_acc(x, 0, q.w, 0, q.bias, (lay.stride, lay.stride), (p, p, p, p))
    return cnn.linear_acc(x.reshape(x.shape[0], -1), 0, q.w, 0, q.bias)


def layer_forward(q: QLayer, x: np.ndarray) -> np.ndarray:
    lay = q.layer
    if lay.type == "maxpool":
        return cnn.maxpool2d(x, lay.kernel, lay.stride)
    acc = layer_acc(q, x)
    assert q.b is not None and q.c is not None     # conv and fc layers have them
    shape = (1, -1) + (1,) * (acc.ndim - 2)
    prod = acc * q.b.reshape(shape)
    c = q.c.reshape(shape)
    half = np.where(c > 0, np.left_shift(np.int64(1), np.maximum(c - 1, 0)), 0)
    y = (prod + half) >> c                   # round half up, as the AP's SHR
    return np.clip(y, q.lo, q.hi)


def reference(qnet: QNet, x_int: np.ndarray) -> list[np.ndarray]:
    """Every layer's integer output for input images x_int (N, C, H, W)."""
    outs, h = [], x_int
    for q in qnet.layers:
        h = layer_forward(q, h)
        outs.append(h)
    return outs


def predict(qnet: QNet, x_int: np.ndarray) -> np.ndarray:
    return reference(qnet, x_int)[-1].reshape(len(x_int), -1).argmax(axis=1)


def describe(qnet: QNet) -> list[dict[str, Any]]:
    return [{"layer": q.name, "type": q.layer.type, "in_bits": q.in_bits,
             "out_bits": q.out_bits, "w_bits": sorted(set(q.w_bits)) if q.w_bits else [],
             "acc_bits": q.acc_bits, "out_shape": q.layer.out_shape} for q in qnet.layers]
