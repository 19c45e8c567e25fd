"""Networks, precision plans and their integer form: the golden CNN the hardware must
reproduce layer by layer (docs/network.md).

A network is a YAML layer list (conv, maxpool, fc) with an .npz of float weights and
activation calibration; a precision plan gives the bits of every layer's weights (per
layer, or per block of output channels) and output activations. `quantize()` turns the
two into integer layers (weights, int32 biases, dyadic requantisation per output
channel); `reference()` runs them with golden/nn/cnn.py, integer-only. Every file is
checked, and a bad one fails with a NetworkError naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bfimna.golden.nn import cnn

LAYER_TYPES = ("conv", "fc", "maxpool")
MAX_ACC_BITS = 32        # a field of the AP: accumulators and products fit 32 bits
MAX_MULT_BITS = 15       # requantisation multiplier b: a positive 16-bit immediate


class NetworkError(ValueError):
    """A network, weights or plan file is missing or invalid."""


# -- files ---------------------------------------------------------------------------------
def _load_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise NetworkError(f"{path}: {what} file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NetworkError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise NetworkError(f"{path}: expected a mapping at the top level")
    return data


def _int(path, where, value, lo, hi) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise NetworkError(f"{path}: {where}: expected an integer in [{lo}, {hi}], got {value!r}")
    return value


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
        if self.dataset is None:
            raise NetworkError(f"{self.path}: no dataset")
        d = np.load(self.dataset)
        return d["x"], d["y"]


def load_network(path: str | Path) -> Network:
    path = Path(path)
    d = _load_yaml(path, "network")
    for key in d:
        if key not in ("name", "input", "weights", "dataset", "layers", "float_accuracy"):
            raise NetworkError(f"{path}: {key}: unknown field")
    for key in ("name", "input", "weights", "layers"):
        if key not in d:
            raise NetworkError(f"{path}: {key}: missing field")
    inp = d["input"]
    if not isinstance(inp, dict):
        raise NetworkError(f"{path}: input: expected a mapping")
    shape = tuple(_int(path, f"input.{k}", inp.get(k), 1, 4096)
                  for k in ("channels", "height", "width"))
    wfile = path.parent / str(d["weights"])
    if not wfile.is_file():
        raise NetworkError(f"{path}: weights: {wfile} not found")
    try:
        weights = dict(np.load(wfile))
    except Exception as exc:  # noqa: BLE001 - any unreadable .npz
        raise NetworkError(f"{wfile}: not a readable .npz ({exc})") from None
    if not isinstance(d["layers"], list) or not d["layers"]:
        raise NetworkError(f"{path}: layers: expected a non-empty list")
    layers, cur, names = [], shape, set()
    for i, ld in enumerate(d["layers"]):
        where = f"layers[{i}]"
        if not isinstance(ld, dict):
            raise NetworkError(f"{path}: {where}: expected a mapping")
        name = ld.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise NetworkError(f"{path}: {where}.name: missing or repeated ({name!r})")
        names.add(name)
        where = f"layers[{i}] ({name})"
        t = ld.get("type")
        if t not in LAYER_TYPES:
            raise NetworkError(f"{path}: {where}.type: must be one of {', '.join(LAYER_TYPES)}, "
                               f"got {t!r}")
        allowed = {"conv": {"out_channels", "kernel", "stride", "pad", "relu"},
                   "fc": {"out_features", "relu"}, "maxpool": {"kernel", "stride"}}[t]
        for k in ld:
            if k not in allowed | {"name", "type"}:
                raise NetworkError(f"{path}: {where}.{k}: unknown field for a {t} layer")
        relu = ld.get("relu", False)
        if not isinstance(relu, bool):
            raise NetworkError(f"{path}: {where}.relu: expected true or false")
        c, h, w = cur
        if t == "conv":
            k = _int(path, f"{where}.kernel", ld.get("kernel"), 1, 15)
            s = _int(path, f"{where}.stride", ld.get("stride", 1), 1, 8)
            p = _int(path, f"{where}.pad", ld.get("pad", 0), 0, 7)
            oc = _int(path, f"{where}.out_channels", ld.get("out_channels"), 1, 4096)
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            if oh < 1 or ow < 1:
                raise NetworkError(f"{path}: {where}: kernel {k} does not fit input {h}x{w}")
            layer = Layer(name, t, oc, k, s, p, relu, cur, (oc, oh, ow))
            _check_weights(path, weights, name, (oc, c, k, k))
        elif t == "fc":
            of = _int(path, f"{where}.out_features", ld.get("out_features"), 1, 4096)
            layer = Layer(name, t, of, 1, 1, 0, relu, cur, (of, 1, 1))
            _check_weights(path, weights, name, (of, c * h * w))
        else:
            k = _int(path, f"{where}.kernel", ld.get("kernel"), 1, 15)
            s = _int(path, f"{where}.stride", ld.get("stride", k), 1, 15)
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            if oh < 1 or ow < 1:
                raise NetworkError(f"{path}: {where}: kernel {k} does not fit input {h}x{w}")
            layer = Layer(name, t, c, k, s, 0, False, cur, (c, oh, ow))
        layers.append(layer)
        cur = layer.out_shape
    if "input.act_max" not in weights:
        raise NetworkError(f"{wfile}: input.act_max: missing (largest input value)")
    dataset = path.parent / str(d["dataset"]) if d.get("dataset") else None
    if dataset is not None and not dataset.is_file():
        raise NetworkError(f"{path}: dataset: {dataset} not found")
    return Network(str(d["name"]), path, shape, layers, weights, dataset,
                   d.get("float_accuracy"))


def _check_weights(path, weights, name, wshape):
    for key, shape in ((f"{name}.weight", wshape), (f"{name}.bias", wshape[:1]),
                       (f"{name}.act_max", ())):
        if key not in weights:
            raise NetworkError(f"{path}: weights: {key} missing")
        if tuple(weights[key].shape) != shape:
            raise NetworkError(f"{path}: weights: {key} has shape {tuple(weights[key].shape)}, "
                               f"the layer needs {shape}")


@dataclass
class Plan:
    name: str
    input_bits: int
    layers: dict[str, dict]          # name -> {"w_bits", "a_bits", "blocks"?}
    dataflow: dict[str, str] = field(default_factory=dict)


def load_plan(path: str | Path, net: Network) -> Plan:
    path = Path(path)
    d = _load_yaml(path, "precision plan")
    for key in d:
        if key not in ("name", "input_bits", "layers", "dataflow"):
            raise NetworkError(f"{path}: {key}: unknown field")
    ib = _int(path, "input_bits", d.get("input_bits"), 1, 16)
    lp = d.get("layers")
    if not isinstance(lp, dict):
        raise NetworkError(f"{path}: layers: expected a mapping of layer name -> bits")
    weighted = [l for l in net.layers if l.type != "maxpool"]
    known = {l.name for l in weighted}
    for name in lp:
        if name not in known:
            raise NetworkError(f"{path}: layers.{name}: no conv or fc layer of that name "
                               f"(known: {', '.join(sorted(known))})")
    out = {}
    for l in weighted:
        if l.name not in lp:
            raise NetworkError(f"{path}: layers.{l.name}: missing")
        e = lp[l.name]
        if not isinstance(e, dict):
            raise NetworkError(f"{path}: layers.{l.name}: expected a mapping")
        for k in e:
            if k not in ("w_bits", "a_bits", "blocks"):
                raise NetworkError(f"{path}: layers.{l.name}.{k}: unknown field")
        wb = _int(path, f"layers.{l.name}.w_bits", e.get("w_bits"), 2, 8)
        ab = _int(path, f"layers.{l.name}.a_bits", e.get("a_bits"), 2, 16)
        blocks = e.get("blocks", [wb])
        if not isinstance(blocks, list) or not blocks or \
                l.out_channels % len(blocks) != 0:
            raise NetworkError(f"{path}: layers.{l.name}.blocks: expected a list of weight "
                               f"bits whose length divides {l.out_channels} output channels")
        blocks = [_int(path, f"layers.{l.name}.blocks[{i}]", b, 2, 8)
                  for i, b in enumerate(blocks)]
        out[l.name] = {"w_bits": wb, "a_bits": ab, "blocks": blocks}
    flows = d.get("dataflow", {}) or {}
    if not isinstance(flows, dict):
        raise NetworkError(f"{path}: dataflow: expected a mapping of layer name -> dataflow")
    for name, f in flows.items():
        if name not in known:
            raise NetworkError(f"{path}: dataflow.{name}: no conv or fc layer of that name")
        if f not in ("pos", "chan"):
            raise NetworkError(f"{path}: dataflow.{name}: must be pos or chan, got {f!r}")
    return Plan(str(d.get("name", path.stem)), ib, out, dict(flows))


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
    for l in net.layers:
        if l.type == "maxpool":
            out.append(QLayer(l, in_bits, in_bits, lo=0, hi=(1 << in_bits) - 1))
            continue
        p = plan.layers[l.name]
        w = W[f"{l.name}.weight"].astype(np.float64)
        bias = W[f"{l.name}.bias"].astype(np.float64)
        K = w.shape[0]
        per = K // len(p["blocks"])
        wbits = [p["blocks"][j // per] for j in range(K)]
        wmax = np.abs(w.reshape(K, -1)).max(axis=1)
        qmax = np.array([(1 << (b - 1)) - 1 for b in wbits], dtype=np.float64)
        s_w = np.where(wmax > 0, wmax / qmax, 1.0)
        wq = np.round(w / s_w.reshape((K,) + (1,) * (w.ndim - 1))).astype(np.int64)
        bq = np.round(bias / (s_in * s_w)).astype(np.int64)
        ab = p["a_bits"]
        act_max = max(float(W[f"{l.name}.act_max"]), 1e-6)
        s_out = act_max / ((1 << ab) - 1 if l.relu else (1 << (ab - 1)) - 1)
        xmax = (1 << in_bits) - 1
        bound = np.abs(wq.reshape(K, -1)).sum(axis=1) * xmax + np.abs(bq)
        acc_bits = int(max(int(v) for v in bound).bit_length() + 1)
        if acc_bits > MAX_ACC_BITS - 2:
            raise NetworkError(f"{l.name}: accumulators need {acc_bits} bits; the AP's "
                               f"fields hold {MAX_ACC_BITS}: lower the precision")
        mbits = min(MAX_MULT_BITS, MAX_ACC_BITS - acc_bits - 1)
        bs, cs = [], []
        for j in range(K):
            b_, c_ = cnn.dyadic(s_in * s_w[j] / s_out, mbits)
            while c_ >= acc_bits + mbits:       # SHR needs m < n: keep the shift in range
                b_, c_ = (b_ + 1) >> 1, c_ - 1
            bs.append(b_)
            cs.append(c_)
        lo, hi = (0, (1 << ab) - 1) if l.relu else (-(1 << (ab - 1)), (1 << (ab - 1)) - 1)
        out.append(QLayer(l, in_bits, ab, not l.relu, wq, wbits, bq, np.array(bs),
                          np.array(cs), acc_bits, lo, hi))
        in_bits, s_in = ab, s_out
        if not l.relu and l is not net.layers[-1]:
            raise NetworkError(f"{l.name}: only the last layer may be without ReLU "
                               f"(activations are unsigned)")
    return QNet(net, plan, plan.input_bits, s0, out)


def layer_acc(q: QLayer, x: np.ndarray) -> np.ndarray:
    """int64 accumulators of a conv or fc layer (N, K, H, W) / (N, K)."""
    l = q.layer
    if l.type == "conv":
        p = l.pad
        return cnn.conv2d_acc(x, 0, q.w, 0, q.bias, (l.stride, l.stride), (p, p, p, p))
    return cnn.linear_acc(x.reshape(x.shape[0], -1), 0, q.w, 0, q.bias)


def layer_forward(q: QLayer, x: np.ndarray) -> np.ndarray:
    l = q.layer
    if l.type == "maxpool":
        return cnn.maxpool2d(x, l.kernel, l.stride)
    acc = layer_acc(q, x)
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
