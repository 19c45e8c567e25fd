"""ONNX import: a float ONNX CNN -> a network of the graph format (docs/network.md,
docs/import.md), with act_max calibrated by running the model with onnxruntime.

    net = translate(load_model("model.onnx"))        # layers + float weights, or OnnxImportError
    act = calibrate(net, x)                          # act_max of every conv, fc and add layer
    import_onnx("model.onnx", "out/", x=None, ...)   # the whole command: bfimna import

The translation folds BatchNormalization (and Mul/Add/Sub/Div by per-channel constants)
into the conv or fc before it, fuses a Relu (or a Clip with min 0) into the conv, fc or add
before it, drops Relu on tensors that are already unsigned, Dropout, Identity, a Flatten
or Reshape-to-(N, -1) that only feeds fully connected layers, and a final Softmax. Every
other op, attribute or shape it cannot express fails with an OnnxImportError naming the
node: `model.onnx: node 'Conv_3' (Conv): dilations [2, 2] unsupported (only 1)`.

A quantised model (QuantizeLinear/DequantizeLinear around Conv, Gemm, MatMul, Add and
pools: QDQ; QLinearConv, QLinearMatMul, QGemm, QLinearAdd, QLinear(Global)AveragePool:
QOperator) keeps its own scales, zero points, integer weights and int32 biases
(Imported.qp, .qint): weights.npz gets `NAME.weight_scale` and act_max from its output
scales, the plan its bits, and the written network is compared with onnxruntime's
integers layer by layer (quant_check; docs/import.md, "Quantised models").

`float_forward(net, x)` (golden/nn/network.py's, re-exported) is the float meaning of a
loaded network (numpy, float64): the importer checks it against onnxruntime before it
writes anything final.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bfimna.golden.nn.network import (
    Network,
    NetworkError,
    QNet,
    float_forward,
    forward,
    layer_forward,
    load_network,
    load_plan,
    quantize,
)
from bfimna.golden.spec.schema import OMIT, Array, Record, read_npz, validate

CHECK_RTOL = 1e-4          # float check: max |numpy - onnxruntime| / max |onnxruntime|
CHECK_IMAGES = 4           # images of the calibration set the float check runs
CALIB_CHUNK = 8            # images per onnxruntime call (a model with a fixed batch: that)
DEFAULT_SYNTHETIC = 16

# ranges of the graph format (golden/nn/network.py LAYER)
MAX_KERNEL, MAX_CONV_STRIDE, MAX_POOL_STRIDE, MAX_PAD, MAX_SIZE, MAX_CONCAT = 15, 8, 15, 7, \
    4096, 64
DROPPED = ("Dropout", "Identity")
QUANTISED = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
             "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd",
             "QLinearGlobalAveragePool", "QLinearAveragePool")
MS_OPS = ("QGemm", "QLinearAdd", "QLinearGlobalAveragePool",   # onnxruntime's com.microsoft
          "QLinearAveragePool")                                # ops the import reads
Q_TYPES = ("uint8", "int8")               # quantised element types (activations, weights)
MAX_W_BITS = 8                            # the plan's widest weights (network.py plan_schema)
BIAS_RTOL = 1e-5      # a quantised bias's scale against input scale x weight scale
RANDOM_OPS = ("RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
              "Multinomial", "Bernoulli")


class OnnxImportError(NetworkError):
    """The ONNX model (or the calibration data) cannot be imported:
    `FILE: node 'NAME' (OP): what is unsupported`."""


class FloatCheckError(RuntimeError):
    """The written network's float forward differs from onnxruntime's: an importer bug."""


# -- the translated network --------------------------------------------------------------
@dataclass
class _T:
    """A tensor of the ONNX graph as the translated network sees it."""
    layer: str                 # the layer that computes it ("input": the network's input)
    shape: tuple               # (C, H, W); a 2-D ONNX tensor (N, F) is (F, 1, 1) ...
    signed: bool
    flat: bool = False         # ... flat: 2-D in ONNX (possibly a flatten left out)


@dataclass
class Imported:
    """A translated model: graph-format layer entries, float64 weights, and how to
    calibrate them."""
    source: Path
    name: str
    input_name: str            # the ONNX graph input
    input_shape: tuple         # (C, H, W)
    batch: int | None          # the input's fixed batch size, or None (symbolic)
    layers: list[dict]         # network.yaml `layers:` entries
    weights: dict[str, np.ndarray]
    act_tensor: dict[str, str]          # conv/fc/add layer -> the ONNX tensor of its output
    output_tensor: str                  # the ONNX tensor the last layer equals (the logits)
    clip_max: dict[str, float] = field(default_factory=dict)   # Clip upper bounds
    notes: Counter = field(default_factory=Counter)            # what was folded or dropped
    model: Any = None                   # the onnx ModelProto (shapes inferred), for onnxruntime
    opset: int = 0
    # a quantised model (QDQ or QOperator): its own quantisation, else empty
    qp: dict[str, QP] = field(default_factory=dict)       # "input", layer -> output's
    qint: dict[str, dict] = field(default_factory=dict)   # conv/fc -> w, s_w, bias (integers)
    qtensor: dict[str, str] = field(default_factory=dict)  # layer -> ONNX quantised tensor
    qformat: str = ""                   # "QDQ", "QOperator" or "QDQ+QOperator"
    rescaled: list[str] = field(default_factory=list)    # avgpool/gap with their own scale
    twice: list[str] = field(default_factory=list)       # layers the model rounds twice


@dataclass(frozen=True)
class QP:
    """The quantisation of a tensor in the model: real = scale * (q - zp), q of `dtype`.
    The project's integer is v = q - zp (docs/import.md)."""
    scale: float
    zp: int
    dtype: str

    @property
    def qmin(self) -> int:
        return int(np.iinfo(self.dtype).min)

    @property
    def qmax(self) -> int:
        return int(np.iinfo(self.dtype).max)

    def __str__(self) -> str:
        return f"scale {self.scale:.9g}, zero point {self.zp} ({self.dtype})"


def _sanitize(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    return re.sub(r"_+", "_", s)


def _attrs(node) -> dict[str, Any]:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v) if not isinstance(v, str) else repr(v)


class _Translator:
    def __init__(self, model, source: Path):
        from onnx import numpy_helper
        self.model, self.src = model, source
        g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.consts: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in g.initializer}
        self.nodes = list(g.node)
        self.node_names = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(self.nodes)]
        self.uses: Counter = Counter(i for n in self.nodes for i in n.input if i)
        for o in g.output:
            self.uses[o.name] += 1
        self.graph_outputs = [o.name for o in g.output]
        self.tensors: dict[str, _T] = {}
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.act_tensor: dict[str, str] = {}
        self.clip_max: dict[str, float] = {}
        self.notes: Counter = Counter()
        self.names: set[str] = {"input"}
        self.node: Any = None         # the node being translated (None: the graph)
        self.idx = -1
        self.batch: int | None = None
        self.output_name = self.graph_outputs[0] if self.graph_outputs else ""
        # a quantised model: QuantizeLinear, DequantizeLinear or QLinear* nodes anywhere
        self.quantised = any(n.op_type in QUANTISED for n in self.nodes)
        self.qconst: dict[str, tuple] = {}   # DequantizeLinear of a constant: (q, scale, zp, axis)
        self.qp: dict[str, QP] = {}          # "input" / layer -> its output's quantisation
        self.qint: dict[str, dict] = {}
        self.qtensor: dict[str, str] = {}
        self.raw: set[str] = set()           # unquantised outputs of conv/fc/add layers
        self.ints: set[str] = set()          # tensors that hold the quantised integers
        self.formats: set[str] = set()
        self.rescaled: list[str] = []        # average pools with their own output scale
        self.twice: list[str] = []           # a Relu between two QuantizeLinear fused

    # -- errors ------------------------------------------------------------------------------
    def fail(self, what: str) -> OnnxImportError:
        if self.node is None:
            msg = f"{self.src}: {what}"
        else:
            msg = f"{self.src}: node {self.node_names[self.idx]!r} ({self.node.op_type}): {what}"
        return OnnxImportError(msg, file=str(self.src), path=None, reason=what)

    # -- input -------------------------------------------------------------------------------
    def graph_input(self) -> tuple[str, tuple, int | None]:
        from onnx import TensorProto
        inputs = [i for i in self.model.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise self.fail(f"{len(inputs)} graph inputs "
                            f"({', '.join(repr(i.name) for i in inputs)}) unsupported "
                            f"(only one: the image batch)")
        inp = inputs[0]
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim]
        if tt.elem_type != TensorProto.FLOAT:
            raise self.fail(f"input {inp.name!r}: element type "
                            f"{TensorProto.DataType.Name(tt.elem_type)} unsupported "
                            f"(only FLOAT)")
        if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
            raise self.fail(f"input {inp.name!r}: shape {dims} unsupported (only (N, C, H, W) "
                            f"with fixed C, H, W)")
        c, h, w = (int(d) for d in dims[1:])
        if max(c, h, w) > MAX_SIZE:
            raise self.fail(f"input {inp.name!r}: shape {dims} unsupported (C, H, W at most "
                            f"{MAX_SIZE})")
        batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        return inp.name, (c, h, w), batch

    # -- constants ---------------------------------------------------------------------------
    def fold_constant(self, node) -> bool:
        """Evaluate a node whose inputs are all constants (weights computed by
        ConstantOfShape, Unsqueeze, ...) with onnx's reference evaluator; True if it was."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator
        ins = [i for i in dict.fromkeys(node.input) if i]
        if node.op_type in RANDOM_OPS or not all(i in self.consts for i in ins) or \
                (not ins and node.op_type != "Constant"):
            return False
        vi = [helper.make_tensor_value_info(
            i, helper.np_dtype_to_tensor_dtype(self.consts[i].dtype), self.consts[i].shape)
            for i in ins]
        outs = [o for o in node.output if o]
        g = helper.make_graph([node], "fold", vi, [helper.make_value_info(o, helper.TypeProto())
                                                  for o in outs])
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        m.ir_version = self.model.ir_version
        try:
            res = ReferenceEvaluator(m).run(None, {i: self.consts[i] for i in ins})
        except Exception as exc:  # noqa: BLE001 - any evaluation failure
            raise self.fail(f"constant folding failed ({type(exc).__name__}: {exc})") from None
        for o, v in zip(outs, res, strict=True):
            self.consts[o] = np.asarray(v)
        return True

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(f"{what} {name!r} is computed from the input (only constants "
                            f"supported)")
        return self.consts[name]

    # -- layers ------------------------------------------------------------------------------
    def new_name(self) -> str:
        base = _sanitize(self.node_names[self.idx]) or f"{self.node.op_type}_{self.idx}"
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def add_layer(self, entry: dict, ins: list[_T], out_shape: tuple, signed: bool,
                  flat: bool = False) -> _T:
        entry = {"name": self.new_name(), **entry}
        entry["inputs"] = [t.layer for t in ins]
        self.layers.append(entry)
        t = _T(entry["name"], out_shape, signed, flat)
        self.tensors[self.node.output[0]] = t
        if entry["type"] in ("conv", "fc", "add"):
            self.act_tensor[entry["name"]] = self.node.output[0]
            if self.quantised:
                self.raw.add(self.node.output[0])
        elif self.quantised and self.node.input[0] in self.ints:   # pooling integers
            self.ints.add(self.node.output[0])
            self.qtensor.setdefault(entry["name"], self.node.output[0])
        return t

    def tensor(self, name: str) -> _T:
        if name in self.raw and self.node.op_type not in ("QuantizeLinear", "Relu", "Clip"):
            lay = self.tensors[name].layer
            raise self.fail(f"input {name!r} is the unquantised output of layer {lay!r} (no "
                            f"QuantizeLinear after it): float layers in a quantised model "
                            f"unsupported")
        if name in self.consts:
            raise self.fail(f"constant input {name!r} unsupported here")
        if name not in self.tensors:
            raise self.fail(f"input {name!r} unknown (computed by an unsupported node?)")
        return self.tensors[name]

    def unsigned(self, t: _T, name: str) -> _T:
        if t.signed:
            raise self.fail(f"input {name!r} is signed (the output of layer {t.layer!r} without "
                            f"a Relu): only Add reads signed tensors")
        return t

    def image(self, name: str) -> _T:
        t = self.unsigned(self.tensor(name), name)
        if t.flat and t.shape[1:] != (1, 1):
            raise self.fail(f"input {name!r} is flattened (2-D) unsupported (only (N, C, H, W))")
        return t

    def fusable(self, name: str, types=("conv", "fc", "add"), relu_ok: bool = False
                ) -> dict | None:
        """The layer entry whose output tensor `name` is, if a following op may change it
        (only that op reads it; it has no relu yet unless relu_ok), else None."""
        t = self.tensors.get(name)
        if t is None or t.layer == "input" or self.act_tensor.get(t.layer) != name:
            return None
        entry = next(e for e in reversed(self.layers) if e["name"] == t.layer)
        if entry["type"] not in types or (entry.get("relu") and not relu_ok) or \
                self.uses[name] != 1:
            return None
        return entry

    def alias(self, src: str, t: _T | None = None) -> None:
        """The node's output is its input `src` (or that seen as `t`): no layer."""
        out = self.node.output[0]
        self.tensors[out] = t if t is not None else self.tensors[src]
        layer = self.tensors[src].layer
        if self.act_tensor.get(layer) == src and self.uses[src] == 1:
            self.act_tensor[layer] = out      # the same values: the layer's output still

    # -- attribute checks --------------------------------------------------------------------
    def window(self, a: dict, kshape: tuple | None) -> tuple[int, int, int]:
        """(kernel, stride, pad) of a conv or pooling node, or fail."""
        auto = a.get("auto_pad", "NOTSET")
        if auto not in ("NOTSET", "VALID"):
            raise self.fail(f"auto_pad {auto!r} unsupported (only NOTSET or VALID; give pads)")
        ks = list(kshape) if kshape is not None else list(a.get("kernel_shape", []))
        if "kernel_shape" in a and kshape is not None and list(a["kernel_shape"]) != ks:
            raise self.fail(f"kernel_shape {a['kernel_shape']} differs from the weights' {ks}")
        if len(ks) != 2 or ks[0] != ks[1]:
            raise self.fail(f"kernel_shape {ks} unsupported (only square 2-D kernels)")
        dil = list(a.get("dilations", [1, 1]))
        if any(d != 1 for d in dil):
            raise self.fail(f"dilations {dil} unsupported (only 1)")
        st = list(a.get("strides", [1, 1]))
        if len(st) != 2 or st[0] != st[1]:
            raise self.fail(f"strides {st} unsupported (only equal strides)")
        pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
        if len(pads) != 4 or len(set(pads)) != 1:
            raise self.fail(f"pads {pads} unsupported (only symmetric: all four equal)")
        return ks[0], st[0], pads[0]

    def ranges(self, k: int, s: int, p: int, max_stride: int, h: int, w: int) -> tuple:
        if not 1 <= k <= MAX_KERNEL:
            raise self.fail(f"kernel {k} unsupported (1..{MAX_KERNEL})")
        if not 1 <= s <= max_stride:
            raise self.fail(f"stride {s} unsupported (1..{max_stride})")
        if not 0 <= p <= MAX_PAD or (p and p >= k):
            raise self.fail(f"pad {p} unsupported (0..{MAX_PAD}, below the kernel {k})")
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if oh < 1 or ow < 1:
            raise self.fail(f"kernel {k} larger than its {h}x{w} input (padded by {p})")
        return oh, ow

    def ceil_mode(self, a: dict, k: int, s: int, p: int, h: int, w: int) -> None:
        if a.get("ceil_mode", 0) and ((h + 2 * p - k) % s or (w + 2 * p - k) % s):
            raise self.fail("ceil_mode 1 unsupported (only 0, or windows that tile the input)")

    # -- ops ---------------------------------------------------------------------------------
    def run(self) -> Imported:
        self.node = None
        in_name, shape, batch = self.graph_input()
        self.batch = batch
        self.tensors[in_name] = _T("input", shape, False)
        for idx, node in enumerate(self.nodes):
            self.idx, self.node = idx, node
            if node.domain not in ("", "ai.onnx") and not (
                    node.domain == "com.microsoft" and node.op_type in MS_OPS):
                raise self.fail(f"op domain {node.domain!r} unsupported (only the default "
                                f"ONNX domain, and com.microsoft's {', '.join(MS_OPS)})")
            if node.op_type == "DequantizeLinear" and node.input[0] in self.consts:
                self.dq_const(node)          # quantised weights or bias: keep the integers
                continue
            if self.fold_constant(node):
                continue
            op = node.op_type
            fn = getattr(self, f"op_{op}", None)
            if fn is None:
                extra = " (quantised ops the import reads: QuantizeLinear, DequantizeLinear, " \
                    "QLinearConv, QLinearMatMul, QGemm, QLinearAdd, QLinearAveragePool, " \
                    "QLinearGlobalAveragePool; docs/import.md)" if op in QUANTISED else ""
                raise self.fail(f"op type {op} unsupported{extra}")
            if op not in ("Dropout", "MaxPool", "BatchNormalization"):
                used = [o for o in node.output[1:] if o and self.uses[o]]
                if used:
                    raise self.fail(f"extra outputs {used} unsupported")
            fn(node, _attrs(node))
        self.node = None
        return self.finish(in_name, shape, batch)

    def op_Conv(self, node, a):
        self._conv(node.input[0], node.input[1],
                   node.input[2] if len(node.input) > 2 else "", a)

    def _conv(self, xname: str, wname: str, bname: str, a: dict) -> str:
        x = self.image(xname)
        w = self.const(wname, "weight").astype(np.float64)
        if w.ndim != 4:
            raise self.fail(f"weight shape {list(w.shape)} unsupported (only 2-D convolution)")
        k, s, p = self.window(a, w.shape[2:])
        g = int(a.get("group", 1))
        c, h, wd = x.shape
        kout = w.shape[0]
        if w.shape[1] * g != c or kout % g:
            raise self.fail(f"group {g} with weight {list(w.shape)} does not fit {c} input "
                            f"channels")
        if kout > MAX_SIZE:
            raise self.fail(f"{kout} output channels unsupported (at most {MAX_SIZE})")
        oh, ow = self.ranges(k, s, p, MAX_CONV_STRIDE, h, wd)
        b = self.const(bname, "bias").astype(np.float64).reshape(-1) \
            if bname else np.zeros(kout)
        entry = {"type": "conv", "out_channels": kout, "kernel": k, "stride": s, "pad": p}
        if g > 1:
            entry["groups"] = g
        entry["relu"] = False
        t = self.add_layer(entry, [x], (kout, oh, ow), True)
        self.weights[f"{t.layer}.weight"], self.weights[f"{t.layer}.bias"] = w, b
        if self.quantised:
            self.int_params(t.layer, x, wname, 0, False, bname)
        return t.layer

    def _fc(self, x: _T, wt: np.ndarray, b: np.ndarray) -> str:
        f = int(np.prod(x.shape))
        if wt.shape[1] != f:
            raise self.fail(f"weight {list(wt.shape)} does not fit {f} input features")
        if wt.shape[0] > MAX_SIZE:
            raise self.fail(f"{wt.shape[0]} outputs unsupported (at most {MAX_SIZE})")
        t = self.add_layer({"type": "fc", "out_features": int(wt.shape[0]), "relu": False},
                           [x], (int(wt.shape[0]), 1, 1), True, flat=True)
        self.weights[f"{t.layer}.weight"], self.weights[f"{t.layer}.bias"] = wt, b
        return t.layer

    def flat_input(self, name: str) -> _T:
        t = self.unsigned(self.tensor(name), name)
        if not t.flat:
            raise self.fail(f"input {name!r} of shape (N, {', '.join(map(str, t.shape))}) "
                            f"unsupported (only 2-D (N, F))")
        return t

    def op_Gemm(self, node, a):
        self._gemm(node.input[0], node.input[1], node.input[2] if len(node.input) > 2 else "",
                   a)

    def _gemm(self, xname: str, wname: str, bname: str, a: dict) -> str:
        for key, want in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
            if a.get(key, want) != want:
                raise self.fail(f"{key} {_fmt(a[key])} unsupported (only {_fmt(want)})")
        x = self.flat_input(xname)
        bm = self.const(wname, "weight").astype(np.float64)
        wt = bm if a.get("transB", 0) else bm.T
        k = wt.shape[0]
        b = np.zeros(k)
        if bname:
            c = self.const(bname, "bias").astype(np.float64)
            try:
                b = np.broadcast_to(c, (1, k)).reshape(k).copy()
            except ValueError:
                raise self.fail(f"bias shape {list(c.shape)} unsupported (only (K,) or "
                                f"(1, K))") from None
        name = self._fc(x, wt, b)
        if self.quantised:
            trans = bool(a.get("transB", 0))
            self.int_params(name, x, wname, 0 if trans else 1, not trans, bname)
        return name

    def op_MatMul(self, node, a):
        self._matmul(node.input[0], node.input[1])

    def _matmul(self, xname: str, wname: str) -> str:
        x = self.flat_input(xname)
        bm = self.const(wname, "weight").astype(np.float64)
        if bm.ndim != 2:
            raise self.fail(f"weight shape {list(bm.shape)} unsupported (only 2-D)")
        name = self._fc(x, bm.T.copy(), np.zeros(bm.shape[1]))
        if self.quantised:
            self.int_params(name, x, wname, 1, True, "")
        return name

    def per_channel(self, c: np.ndarray, entry: dict, what: str) -> np.ndarray:
        k = int(entry.get("out_channels", entry.get("out_features", 0)))
        shape: tuple[int, ...] = (1, k, 1, 1) if entry["type"] == "conv" else (1, k)
        c = np.asarray(c, dtype=np.float64)
        try:
            if c.ndim > len(shape) or np.broadcast_shapes(c.shape, shape) != shape:
                raise ValueError
            full = np.broadcast_to(c.reshape((1,) * (len(shape) - c.ndim) + c.shape), shape)
        except ValueError:
            raise self.fail(f"{what} of shape {list(c.shape)} unsupported (only one value per "
                            f"channel)") from None
        return full.reshape(k).copy()

    def fold_target(self, name: str, what: str) -> dict:
        entry = self.fusable(name, ("conv", "fc"))
        if entry is None:
            raise self.fail(f"{what} not directly after a Conv, Gemm or MatMul (whose output "
                            f"it alone reads) unsupported")
        return entry

    def scale_shift(self, entry: dict, src: str, scale: np.ndarray | None,
                    shift: np.ndarray | None, note: str) -> None:
        """Fold y = x * scale + shift (per output channel) into the conv or fc `entry`."""
        n = entry["name"]
        w, b = self.weights[f"{n}.weight"], self.weights[f"{n}.bias"]
        if scale is not None:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
            b = b * scale
        if shift is not None:
            b = b + shift
        self.weights[f"{n}.weight"], self.weights[f"{n}.bias"] = w, b
        self.act_tensor[n] = self.node.output[0]
        self.tensors[self.node.output[0]] = self.tensors[src]
        self.notes[note] += 1

    def op_BatchNormalization(self, node, a):
        if a.get("training_mode", 0):
            raise self.fail("training_mode 1 unsupported")
        if any(o and self.uses[o] for o in node.output[1:]):
            raise self.fail("running mean/variance outputs unsupported (inference only)")
        entry = self.fold_target(node.input[0], "BatchNormalization")
        k = entry.get("out_channels", entry.get("out_features"))
        params = [self.const(i, "parameter").astype(np.float64) for i in node.input[1:5]]
        if any(v.shape != (k,) for v in params):
            raise self.fail(f"parameter shapes {[list(v.shape) for v in params]} unsupported "
                            f"(only ({k},))")
        sc, bb, mean, var = params
        s = sc / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        self.scale_shift(entry, node.input[0], s, bb - mean * s, "BatchNormalization folded")

    def _const_operand(self, node) -> tuple[str, np.ndarray] | None:
        x, y = node.input[0], node.input[1]
        if y in self.consts and x not in self.consts:
            return x, self.consts[y]
        if x in self.consts and y not in self.consts and node.op_type in ("Add", "Mul"):
            return y, self.consts[x]
        return None

    def _fold_op(self, node, what: str) -> None:
        xc = self._const_operand(node)
        if xc is None:
            raise self.fail(f"{node.op_type} of two tensors unsupported (only {what} a "
                            f"per-channel constant after a Conv or Gemm)")
        src, c = xc
        entry = self.fold_target(src, f"{node.op_type} {what} a constant")
        v = self.per_channel(c, entry, "constant")
        scale, shift = {"Mul": (v, None), "Div": (1.0 / v, None), "Add": (None, v),
                        "Sub": (None, -v)}[node.op_type]
        self.scale_shift(entry, src, scale, shift, f"{node.op_type} {what} a constant folded")

    def op_Mul(self, node, a):
        self._fold_op(node, "by")

    def op_Div(self, node, a):
        self._fold_op(node, "by")

    def op_Sub(self, node, a):
        self._fold_op(node, "of")

    def _add(self, names: list[str]) -> None:
        ts = [self.tensor(n) for n in names]
        if ts[0].shape != ts[1].shape or ts[0].flat != ts[1].flat:
            raise self.fail(f"inputs of shapes {ts[0].shape} and {ts[1].shape} unsupported "
                            f"(only two tensors of one shape, no broadcasting)")
        self.add_layer({"type": "add", "relu": False}, ts, ts[0].shape, True, ts[0].flat)

    def op_Add(self, node, a):
        if self._const_operand(node) is not None:
            self._fold_op(node, "of")
            return
        self._add(list(node.input[:2]))

    def op_Sum(self, node, a):
        if len(node.input) == 1:
            self.alias(node.input[0])
            self.notes["Sum of one tensor dropped"] += 1
            return
        if len(node.input) != 2 or any(i in self.consts for i in node.input):
            raise self.fail(f"Sum of {len(node.input)} inputs unsupported (only of two tensors)")
        self._add(list(node.input))

    def op_Relu(self, node, a):
        self._rectify(node.input[0], math.inf, "Relu")

    def op_Clip(self, node, a):
        if self.opset < 11:
            lo, hi = float(a.get("min", -math.inf)), float(a.get("max", math.inf))
        else:
            lo = float(self.const(node.input[1], "min")) if len(node.input) > 1 and \
                node.input[1] else -math.inf
            hi = float(self.const(node.input[2], "max")) if len(node.input) > 2 and \
                node.input[2] else math.inf
        if lo != 0 and not (lo == -math.inf and hi == math.inf):
            raise self.fail(f"min {_fmt(lo)} unsupported (only 0: a ReLU with an optional max)")
        if lo == -math.inf:       # no bounds at all: identity
            self.alias(node.input[0])
            self.notes["Clip without bounds dropped"] += 1
            return
        if hi <= 0:
            raise self.fail(f"max {_fmt(hi)} unsupported (only above 0)")
        self._rectify(node.input[0], hi, "Clip")

    def _rectify(self, src: str, hi: float, op: str) -> None:
        t = self.tensor(src)
        if self.quantised and src not in self.raw and t.signed:
            self.requantised_relu(src, t, hi, op)
            return
        entry = self.fusable(src, relu_ok=True)
        if entry is not None:            # a conv, fc or add output only this node reads
            entry["relu"] = True
            self.act_tensor[entry["name"]] = self.node.output[0]
            if hi < math.inf:
                self.clip_max[entry["name"]] = min(hi, self.clip_max.get(entry["name"], hi))
            self.tensors[self.node.output[0]] = _T(t.layer, t.shape, False, t.flat)
            if src in self.raw:
                self.raw.add(self.node.output[0])
            self.notes[f"{op} fused"] += 1
        elif not t.signed and hi == math.inf:
            self.alias(src)
            self.notes[f"{op} on an unsigned tensor dropped"] += 1
        elif not t.signed:
            raise self.fail(f"max {_fmt(hi)} on {src!r} unsupported (only directly after a "
                            f"Conv, Gemm or Add whose output it alone reads)")
        else:
            raise self.fail(f"{op} on {src!r} unsupported: the output of layer {t.layer!r} is "
                            f"read elsewhere without it (only a {op} that alone reads a Conv, "
                            f"Gemm or Add output is fused)")

    def _pool(self, node, a, t: str) -> None:
        x = self.image(node.input[0])
        k, s, p = self.window(a, None)
        c, h, w = x.shape
        oh, ow = self.ranges(k, s, p, MAX_POOL_STRIDE, h, w)
        self.ceil_mode(a, k, s, p, h, w)
        if t == "avgpool" and p and not a.get("count_include_pad", 0):
            raise self.fail(f"count_include_pad 0 with pads {p} unsupported (only 1: the "
                            f"window sum divided by kernel*kernel)")
        self.add_layer({"type": t, "kernel": k, "stride": s, "pad": p}, [x], (c, oh, ow), False)

    def op_MaxPool(self, node, a):
        if len(node.output) > 1 and node.output[1] and self.uses[node.output[1]]:
            raise self.fail("the Indices output unsupported")
        self._pool(node, a, "maxpool")

    def op_AveragePool(self, node, a):
        x = self.image(node.input[0])
        if list(a.get("kernel_shape", [])) == list(x.shape[1:]) and not any(
                a.get("pads", [0])) and a.get("auto_pad", "NOTSET") in ("NOTSET", "VALID") \
                and all(d == 1 for d in a.get("dilations", [1])):
            self.gap(x)     # one window over the whole input: global average pooling
            self.notes["AveragePool over the whole input as gap"] += 1
            return
        self._pool(node, a, "avgpool")

    def gap(self, x: _T) -> None:
        self.add_layer({"type": "gap"}, [x], (x.shape[0], 1, 1), False)

    def op_GlobalAveragePool(self, node, a):
        self.gap(self.image(node.input[0]))

    def op_GlobalMaxPool(self, node, a):
        x = self.image(node.input[0])
        c, h, w = x.shape
        if h != w or h > MAX_KERNEL:
            raise self.fail(f"over a {h}x{w} input unsupported (only square, at most "
                            f"{MAX_KERNEL}: a maxpool)")
        self.add_layer({"type": "maxpool", "kernel": h, "stride": h, "pad": 0}, [x],
                       (c, 1, 1), False)

    def op_Concat(self, node, a):
        ts = [self.tensor(i) for i in node.input]
        for i, t in zip(node.input, ts, strict=True):
            self.unsigned(t, i)
        flat = ts[0].flat
        rank = 2 if flat else 4
        axis = int(a.get("axis", 1))
        if axis not in (1, 1 - rank):
            raise self.fail(f"axis {axis} unsupported (only 1: channels)")
        if any(t.flat != flat or (t.flat and t.shape[1:] != (1, 1)) for t in ts):
            raise self.fail("inputs of mixed rank or flattened images unsupported")
        if any(t.shape[1:] != ts[0].shape[1:] for t in ts):
            raise self.fail(f"inputs of shapes {[t.shape for t in ts]} unsupported (only one "
                            f"height and width)")
        if not 2 <= len(ts) <= MAX_CONCAT:
            if len(ts) == 1:
                self.alias(node.input[0])
                return
            raise self.fail(f"{len(ts)} inputs unsupported (2..{MAX_CONCAT})")
        c = sum(t.shape[0] for t in ts)
        self.add_layer({"type": "concat"}, ts, (c,) + ts[0].shape[1:], False, flat)

    def _flatten(self, node) -> None:
        x = self.unsigned(self.tensor(node.input[0]), node.input[0])
        c, h, w = x.shape
        out = node.output[0]
        only_fc = self._only_fc(out)
        if x.flat or (h, w) == (1, 1) or only_fc:
            self.alias(node.input[0], _T(x.layer, x.shape, x.signed, True))
            self.notes[f"{node.op_type} dropped"] += 1
            return
        self.add_layer({"type": "flatten"}, [x], (c * h * w, 1, 1), False, True)

    def _only_fc(self, name: str) -> bool:
        """Only Gemm or MatMul nodes read `name` (through Dropout and Identity)."""
        if name in self.graph_outputs:
            return False
        for n in self.nodes:
            if name in n.input and not (n.op_type in ("Gemm", "MatMul") and n.input[0] == name
                                        or n.op_type in DROPPED and self._only_fc(n.output[0])):
                return False
        return True

    def op_Flatten(self, node, a):
        if int(a.get("axis", 1)) != 1:
            raise self.fail(f"axis {a['axis']} unsupported (only 1)")
        self._flatten(node)

    def op_Reshape(self, node, a):
        x = self.tensor(node.input[0])
        s = [int(v) for v in self.const(node.input[1], "shape").reshape(-1)]
        f = int(np.prod(x.shape))
        batch_ok = {0, -1} | ({1} if self.batch == 1 else set()) | \
            ({self.batch} if self.batch else set())
        ok = len(s) == 2 and s[0] in batch_ok and s[1] in (-1, f) and -1 in (s[0], s[1]) \
            or len(s) == 2 and s[0] in batch_ok - {-1} and s[1] == f
        if not ok or (a.get("allowzero", 0) and 0 in s):
            raise self.fail(f"shape {s} unsupported (only (N, -1) or (N, {f}): a flatten)")
        self._flatten(node)

    def op_Dropout(self, node, a):
        if len(node.output) > 1 and node.output[1] and self.uses[node.output[1]]:
            raise self.fail("the mask output unsupported")
        self.alias(node.input[0])
        self.notes["Dropout dropped"] += 1

    def op_Identity(self, node, a):
        self.alias(node.input[0])
        self.notes["Identity dropped"] += 1

    def _softmax(self, node, a):
        if node.output[0] not in self.graph_outputs or self.uses[node.output[0]] != 1:
            raise self.fail(f"{node.op_type} other than on the network's output unsupported")
        self.tensors[node.output[0]] = self.tensor(node.input[0])   # not the same values
        self.output_name = node.input[0]
        self.notes[f"final {node.op_type} dropped (the network outputs the logits)"] += 1

    op_Softmax = op_LogSoftmax = _softmax

    # -- quantised models (docs/import.md, "Quantised models") ------------------------------
    def entry(self, layer: str) -> dict:
        return next(e for e in reversed(self.layers) if e["name"] == layer)

    def dq_const(self, node) -> None:
        """Record the integers, scale, zero point and axis of a DequantizeLinear of a
        constant (the folded float values stay in self.consts)."""
        a = _attrs(node)
        if a.get("block_size", 0):
            raise self.fail(f"block_size {a['block_size']} unsupported (blocked quantisation)")
        q = self.consts[node.input[0]]
        s = self.const(node.input[1], "scale")
        z = self.const(node.input[2], "zero point") if len(node.input) > 2 and \
            node.input[2] else np.zeros((), q.dtype)
        axis = int(a.get("axis", 1))
        self.qconst[node.output[0]] = (q, s, z, axis)
        self.consts[node.output[0]] = (q.astype(np.float64) - self._along(z, q, axis, "zero point")
                                       ) * self._along(s, q, axis, "scale")

    def _along(self, v: np.ndarray, q: np.ndarray, axis: int, what: str) -> np.ndarray:
        """A per-tensor or per-axis parameter broadcast to the shape of q."""
        v = np.asarray(v)
        if v.size == 1:
            return np.full(q.shape, v.reshape(-1)[0])
        ax = axis % q.ndim
        if v.ndim != 1 or v.size != q.shape[ax]:
            raise self.fail(f"{what} of shape {list(v.shape)} unsupported (one value, or one "
                            f"per index of axis {axis} of {list(q.shape)})")
        return np.broadcast_to(v.reshape([-1 if i == ax else 1 for i in range(q.ndim)]),
                               q.shape)

    def qparams(self, sname: str, zname: str, what: str, out_type: int | None = None) -> QP:
        """The per-tensor quantisation given by scale and zero point constants."""
        from onnx import helper
        s = np.asarray(self.const(sname, f"{what} scale"), dtype=np.float64)
        if zname:
            z = np.asarray(self.const(zname, f"{what} zero point"))
        else:
            dt = np.dtype(helper.tensor_dtype_to_np_dtype(out_type)) if out_type else \
                np.dtype(np.uint8)
            z = np.zeros((), dt)
        if s.size != 1 or z.size != 1:
            raise self.fail(f"{what}: a scale or zero point per axis (shape "
                            f"{list(s.shape if s.size != 1 else z.shape)}) unsupported (only "
                            f"one per tensor for activations)")
        if z.dtype.name not in Q_TYPES:
            raise self.fail(f"{what}: element type {z.dtype.name} unsupported (only "
                            f"{' and '.join(Q_TYPES)})")
        sc = float(s.reshape(-1)[0])
        if not (sc > 0 and math.isfinite(sc)):
            raise self.fail(f"{what}: scale {sc!r} unsupported (only positive)")
        return QP(sc, int(z.reshape(-1)[0]), z.dtype.name)

    def qp_of(self, layer: str) -> QP | None:
        """The quantisation of a layer's output: its own, or that of its input for layers
        that keep the scale (max and average pooling, flatten) and concat of equal ones."""
        if layer in self.qp or layer == "input":
            return self.qp.get(layer)
        e = self.entry(layer)
        if e["type"] in ("maxpool", "avgpool", "gap", "flatten"):
            return self.qp_of(e["inputs"][0])
        if e["type"] == "concat":
            qs = [self.qp_of(i) for i in e["inputs"]]
            if any(q is None for q in qs):
                return None
            if len(set(qs)) > 1:
                raise self.fail(f"concat {layer!r} of inputs quantised differently "
                                f"({'; '.join(map(str, qs))}) unsupported")
            return qs[0]
        return None

    def check_in(self, xname: str, sname: str, zname: str) -> QP:
        """A QLinear op's input: quantised as the op says."""
        t = self.tensor(xname)
        qp, known = self.qparams(sname, zname, "input"), self.qp_of(t.layer)
        if known is None:
            raise self.fail(f"input {xname!r} is not quantised (no QuantizeLinear before it)")
        if known != qp:
            raise self.fail(f"input {xname!r} read with {qp} but quantised with {known} "
                            f"unsupported")
        return qp

    def set_output_qp(self, layer: str, qp: QP, tensor: str, src: _T) -> None:
        """A conv, fc or add layer's output is quantised as qp: its integer is q - zp; a
        zero point at the type's minimum clamps at 0, a ReLU."""
        e = self.entry(layer)
        if qp.zp == qp.qmin and not e["relu"]:
            e["relu"] = True
            self.notes["quantised output at zero point = type minimum: ReLU"] += 1
        elif e["type"] == "add" and not e["relu"] and all(
                i == "input" or self.entry(i)["type"] not in ("conv", "fc", "add") or
                self.entry(i).get("relu") for i in e["inputs"]):
            e["relu"] = True     # a sum of two unsigned tensors: a ReLU changes nothing
            self.notes["add of two unsigned tensors: unsigned (relu)"] += 1
        self.qp[layer], self.qtensor[layer] = qp, tensor
        self.ints.add(tensor)
        self.tensors[tensor] = _T(layer, src.shape, not e["relu"], src.flat)
        self.raw.discard(tensor)

    def int_params(self, layer: str, x: _T, wname: str, out_axis: int, transpose: bool,
                   bname: str) -> None:
        """The integer weights (q - zp), per-channel weight scales and int32 bias of a
        quantised conv or fc layer; its float weights become their exact real values."""
        self.formats.add("QOperator" if self.node.op_type.startswith("Q") else "QDQ")
        xq = self.qp_of(x.layer)
        if xq is None:
            raise self.fail("its input is not quantised (no QuantizeLinear before it): float "
                            "layers in a quantised model unsupported")
        if wname not in self.qconst:
            raise self.fail(f"weight {wname!r} is not a DequantizeLinear of integers: float "
                            f"weights in a quantised model unsupported")
        q, sc, zp, axis = self.qconst[wname]
        if q.dtype.name not in Q_TYPES:
            raise self.fail(f"weight element type {q.dtype.name} unsupported (only "
                            f"{' and '.join(Q_TYPES)})")
        sf = self._along(sc, q, axis, "weight scale").astype(np.float64)
        zf = self._along(zp, q, axis, "weight zero point").astype(np.int64)
        k = q.shape[out_axis]
        sk = np.moveaxis(sf, out_axis, 0).reshape(k, -1)
        if not (sk == sk[:, :1]).all():
            raise self.fail("weight scales that vary within an output channel unsupported "
                            "(only per tensor or per output channel)")
        s_w = sk[:, 0].copy()
        w = q.astype(np.int64) - zf
        if transpose:
            w = w.T.copy()
        lo, hi = int(w.min()), int(w.max())
        if lo < -(1 << (MAX_W_BITS - 1)) or hi > (1 << (MAX_W_BITS - 1)) - 1:
            zs = sorted({int(v) for v in np.asarray(zp).reshape(-1)})
            zps = zs[0] if len(zs) == 1 else zs
            raise self.fail(f"{q.dtype.name} weights with zero point {zps}: weight - zero "
                            f"point spans [{lo}, {hi}], beyond {MAX_W_BITS}-bit signed integers "
                            f"(the project's widest weights) unsupported")
        bias = np.zeros(k, dtype=np.int64)
        if bname:
            if bname not in self.qconst:
                raise self.fail(f"bias {bname!r} is not a DequantizeLinear of int32: a float "
                                f"bias in a quantised model unsupported")
            bq, bs, bz, _ = self.qconst[bname]
            bs = np.broadcast_to(np.asarray(bs, dtype=np.float64).reshape(-1), (k,))
            if bq.dtype.name != "int32" or bq.size != k:
                raise self.fail(f"bias of type {bq.dtype.name}, shape {list(bq.shape)} "
                                f"unsupported (only int32, one per output channel)")
            if np.any(np.asarray(bz) != 0):
                raise self.fail("bias zero point other than 0 unsupported")
            if not np.allclose(bs, xq.scale * s_w, rtol=BIAS_RTOL, atol=0):
                raise self.fail(f"bias scale {bs.tolist()} is not input scale x weight scale "
                                f"({(xq.scale * s_w).tolist()}) unsupported")
            bias = bq.reshape(-1).astype(np.int64)
        self.qint[layer] = {"w": w, "s_w": s_w, "bias": bias}
        self.weights[f"{layer}.weight"] = w * s_w.reshape((-1,) + (1,) * (w.ndim - 1))
        self.weights[f"{layer}.bias"] = bias * (xq.scale * s_w)

    def _qweight(self, node, qname: str, sname: str, zname: str, axis: int, what: str) -> str:
        """Register a QLinear op's integer weights as a DequantizeLinear of a constant."""
        q = self.const(qname, what)
        s = self.const(sname, f"{what} scale")
        z = self.const(zname, f"{what} zero point") if zname else np.zeros((), q.dtype)
        name = f"{node.output[0]}::{what}"
        self.qconst[name] = (q, s, z, axis)
        self.consts[name] = (q.astype(np.float64) - self._along(z, q, axis, f"{what} zero point")
                             ) * self._along(s, q, axis, f"{what} scale")
        return name

    def _qbias(self, node, bname: str, xq: QP, wname: str, out_axis: int) -> str:
        if not bname:
            return ""
        q, s, _, axis = self.qconst[wname]
        k = q.shape[out_axis]
        s_w = np.moveaxis(self._along(s, q, axis, "weight scale"), out_axis, 0).reshape(k, -1)[:, 0]
        bq = self.const(bname, "bias")
        name = f"{node.output[0]}::bias"
        self.qconst[name] = (bq, xq.scale * s_w.astype(np.float64), np.zeros((), np.int32), 0)
        self.consts[name] = bq.astype(np.float64)
        return name

    def op_QuantizeLinear(self, node, a):
        if a.get("block_size", 0):
            raise self.fail(f"block_size {a['block_size']} unsupported (blocked quantisation)")
        src, out = node.input[0], node.output[0]
        t = self.tensor(src)
        qp = self.qparams(node.input[1], node.input[2] if len(node.input) > 2 else "",
                          "output", a.get("output_dtype"))
        if t.layer == "input" and "input" not in self.qp:
            if qp.zp != qp.qmin and not (qp.zp == 0 and qp.qmin < 0):
                also = ", or 0" if qp.qmin < 0 else ""
                raise self.fail(f"input zero point {qp.zp} unsupported (only {qp.qmin}, the "
                                f"{qp.dtype} minimum{also}: the project's input is unsigned; "
                                f"quantise the model on non-negative inputs)")
            if qp.zp != qp.qmin:
                self.notes["int8 input with zero point 0: 7-bit unsigned (negative inputs "
                           "clip to 0)"] += 1
            self.qp["input"], self.qtensor["input"] = qp, out
            self.tensors[out] = t
            self.ints.add(out)
            return
        if src in self.raw:
            if t.layer in self.qp:
                if self.qp[t.layer] != qp:
                    raise self.fail(f"a second QuantizeLinear of {src!r} with {qp} (the first: "
                                    f"{self.qp[t.layer]}) unsupported")
                self.tensors[out] = self.tensors[self.qtensor[t.layer]]
                return
            self.set_output_qp(t.layer, qp, out, t)
            return
        known = self.qp_of(t.layer)
        if known is None:
            raise self.fail(f"QuantizeLinear of {src!r}, computed by layer {t.layer!r} from "
                            f"unquantised values, unsupported")
        if known != qp and t.layer not in self.qp and \
                self.entry(t.layer)["type"] in ("avgpool", "gap"):
            self.rescale_pool(t.layer, known, qp, out)     # its own output scale
            return
        if known != qp:
            raise self.fail(f"requantisation of {src!r} from {known} to {qp} unsupported (a "
                            f"QuantizeLinear only right after a Conv, Gemm, MatMul or Add, or "
                            f"with the scale and zero point its input already has)")
        self.tensors[out] = t
        self.qtensor.setdefault(t.layer, out)
        self.ints.add(out)

    def requantised_relu(self, src: str, t: _T, hi: float, op: str) -> None:
        """conv/fc/add -> QuantizeLinear -> DequantizeLinear -> Relu -> QuantizeLinear (what
        quantize_static writes with symmetric activations): the Relu and the second
        scale are fused into the layer; the model rounds twice, the project once."""
        e = self.entry(t.layer) if t.layer != "input" else None
        qt = self.qtensor.get(t.layer)
        if e is None or e["type"] not in ("conv", "fc", "add") or qt is None or \
                self.uses[qt] != 1 or self.uses[src] != 1 or hi < math.inf or \
                self.tensors[qt].layer != t.layer:
            raise self.fail(f"{op} on the quantised signed tensor {src!r} unsupported (only "
                            f"on a Conv, Gemm or Add output before its QuantizeLinear, or "
                            f"after its only QuantizeLinear and DequantizeLinear)")
        del self.qp[t.layer], self.qtensor[t.layer]
        e["relu"] = True
        out = self.node.output[0]
        self.tensors[out] = _T(t.layer, t.shape, False, t.flat)
        self.raw.add(out)
        self.notes[f"{op} between two QuantizeLinear fused (the model rounds twice)"] += 1
        self.twice.append(t.layer)

    def rescale_pool(self, layer: str, known: QP, qp: QP, tensor: str) -> None:
        """An average pool whose output has its own scale (requantised)."""
        if qp.dtype != known.dtype or qp.zp != qp.qmin:
            raise self.fail(f"average pooling output quantised with {qp} (input: {known}) "
                            f"unsupported (only the input's type, zero point its minimum)")
        self.qp[layer], self.qtensor[layer] = qp, tensor
        self.rescaled.append(layer)
        self.ints.add(tensor)
        self.tensors[tensor] = self.tensors.get(tensor) or _T(
            layer, self.entry_shape(layer), False)

    def entry_shape(self, layer: str) -> tuple:
        return next(t.shape for t in self.tensors.values() if t.layer == layer)

    def op_QLinearGlobalAveragePool(self, node, a):
        if a.get("channels_last", 0):
            raise self.fail("channels_last 1 unsupported")
        xq = self.check_in(node.input[0], node.input[1], node.input[2])
        self.gap(self.image(node.input[0]))
        self._qpool(node, xq)

    def op_QLinearAveragePool(self, node, a):
        if a.get("channels_last", 0):
            raise self.fail("channels_last 1 unsupported")
        xq = self.check_in(node.input[0], node.input[1], node.input[2])
        self._pool(node, a, "avgpool")
        self._qpool(node, xq)

    def _qpool(self, node, xq: QP) -> None:
        self.formats.add("QOperator")
        out = node.output[0]
        qp = self.qparams(node.input[3], node.input[4] if len(node.input) > 4 else "",
                          "output")
        layer = self.tensors[out].layer
        self.qtensor[layer] = out
        self.ints.add(out)
        if qp != xq:
            self.rescale_pool(layer, xq, qp, out)

    def op_DequantizeLinear(self, node, a):
        src = node.input[0]
        t = self.tensor(src)
        qp = self.qparams(node.input[1], node.input[2] if len(node.input) > 2 else "", "input")
        known = self.qp_of(t.layer)
        if known is None:
            raise self.fail(f"DequantizeLinear of {src!r}, which no QuantizeLinear or QLinear "
                            f"op produced, unsupported")
        if known != qp:
            raise self.fail(f"DequantizeLinear with {qp} of {src!r}, quantised with {known}, "
                            f"unsupported")
        self.tensors[node.output[0]] = t

    def op_QLinearConv(self, node, a):
        i = list(node.input) + [""] * (9 - len(node.input))
        xq = self.check_in(i[0], i[1], i[2])
        wname = self._qweight(node, i[3], i[4], i[5], 0, "weight")
        layer = self._conv(i[0], wname, self._qbias(node, i[8], xq, wname, 0), a)
        out = node.output[0]
        self.set_output_qp(layer, self.qparams(i[6], i[7], "output"), out, self.tensors[out])

    def op_QLinearMatMul(self, node, a):
        i = list(node.input)
        self.check_in(i[0], i[1], i[2])
        wname = self._qweight(node, i[3], i[4], i[5], 1, "weight")
        layer = self._matmul(i[0], wname)
        out = node.output[0]
        self.set_output_qp(layer, self.qparams(i[6], i[7], "output"), out, self.tensors[out])

    def op_QGemm(self, node, a):
        i = list(node.input) + [""] * (9 - len(node.input))
        if not i[7]:
            raise self.fail("a float output (no y_scale) unsupported")
        xq = self.check_in(i[0], i[1], i[2])
        axis = 0 if a.get("transB", 0) else 1
        wname = self._qweight(node, i[3], i[4], i[5], axis, "weight")
        layer = self._gemm(i[0], wname, self._qbias(node, i[6], xq, wname, axis), a)
        out = node.output[0]
        self.set_output_qp(layer, self.qparams(i[7], i[8], "output"), out, self.tensors[out])

    def op_QLinearAdd(self, node, a):
        i = list(node.input) + [""] * (8 - len(node.input))
        self.check_in(i[0], i[1], i[2])
        self.check_in(i[3], i[4], i[5])
        self._add([i[0], i[3]])
        out = node.output[0]
        self.formats.add("QOperator")
        self.set_output_qp(self.tensors[out].layer, self.qparams(i[6], i[7], "output"), out,
                           self.tensors[out])

    # -- the end -----------------------------------------------------------------------------
    def finish(self, in_name: str, shape: tuple, batch: int | None) -> Imported:
        if len(self.graph_outputs) != 1:
            raise self.fail(f"{len(self.graph_outputs)} graph outputs unsupported (only one)")
        out = self.graph_outputs[0]
        if out not in self.tensors:
            raise self.fail(f"output {out!r} is a constant unsupported")
        last = self.tensors[out].layer
        if last == "input":
            raise self.fail(f"output {out!r} is the input: no layers")
        by_name = {e["name"]: e for e in self.layers}
        keep, todo = set(), [last]
        while todo:          # the layers the output depends on; others are dropped
            n = todo.pop()
            if n in keep or n == "input":
                continue
            keep.add(n)
            todo.extend(by_name[n]["inputs"])
        dropped = [e["name"] for e in self.layers if e["name"] not in keep]
        if dropped:
            self.notes["layers the output does not read dropped"] += len(dropped)
        layers = [e for e in self.layers if e["name"] in keep]
        assert layers[-1]["name"] == last
        qp_all = {k: q for k in ["input"] + [e["name"] for e in layers]
                  if (q := self.qp_of(k)) is not None} if self.quantised else {}
        prev = "input"
        for e in layers:                     # `inputs` only where not the previous layer
            if e["inputs"] == [prev]:
                del e["inputs"]
            prev = e["name"]
        act = {n: t for n, t in self.act_tensor.items() if n in keep}
        weights = {k: v for k, v in self.weights.items() if k.split(".")[0] in keep}
        name = _sanitize(self.src.stem) or "imported"
        if self.quantised:
            for e in layers:
                if e["type"] in ("conv", "fc", "add") and e["name"] not in self.qp:
                    raise self.fail(f"layer {e['name']!r} ({e['type']}) has no QuantizeLinear "
                                    f"on its output: float layers in a quantised model "
                                    f"unsupported")
            if "input" not in self.qp:
                raise self.fail("the input is not quantised (no QuantizeLinear on it)")
        return Imported(self.src, name, in_name, shape, batch, layers, weights, act,
                        self.output_name, {k: v for k, v in self.clip_max.items() if k in keep},
                        self.notes, self.model, self.opset,
                        qp=qp_all,
                        qint={k: v for k, v in self.qint.items() if k in keep},
                        qtensor={k: v for k, v in self.qtensor.items()
                                 if k in keep or k == "input"},
                        qformat="+".join(sorted(self.formats)),
                        rescaled=[n for n in self.rescaled if n in keep],
                        twice=[n for n in self.twice if n in keep])


def load_model(path: str | Path):
    """The ONNX model at `path`, checked and with inferred shapes; OnnxImportError if not."""
    import onnx
    path = Path(path)
    if not path.is_file():
        raise OnnxImportError(f"{path}: ONNX model not found", file=str(path),
                              reason="not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxImportError(f"{path}: not a valid ONNX model ({first})", file=str(path),
                              reason="not a valid ONNX model") from None
    return model


def translate(model, source: str | Path = "model.onnx") -> Imported:
    """The graph-format layers and float64 weights of a float ONNX model."""
    return _Translator(model, Path(source)).run()


# -- calibration -------------------------------------------------------------------------
def synthetic_inputs(shape: tuple, n: int = DEFAULT_SYNTHETIC, seed: int = 0) -> np.ndarray:
    """n images uniform in [0, 1), float32, seeded: the calibration without a dataset."""
    return np.random.default_rng(seed).random((n,) + tuple(shape), dtype=np.float32)


class OnnxRunner:
    """onnxruntime on a copy of the model that also outputs `tensors` (ONNX names)."""

    def __init__(self, imp: Imported, tensors: list[str], types: dict[str, int] | None = None,
                 optimise: bool = True):
        import onnxruntime as ort  # type: ignore[import-untyped]
        from onnx import TensorProto, helper
        m = type(imp.model)()
        m.CopyFrom(imp.model)
        have = {o.name for o in m.graph.output}
        for t in tensors:
            if t not in have:
                m.graph.output.append(helper.make_tensor_value_info(
                    t, (types or {}).get(t, TensorProto.FLOAT), None))
                have.add(t)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if not optimise:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self.sess = ort.InferenceSession(m.SerializeToString(), so,
                                             providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OnnxImportError(f"{imp.source}: onnxruntime cannot run the model ({first})",
                                  file=str(imp.source), reason="onnxruntime cannot run it"
                                  ) from None
        self.imp, self.tensors = imp, list(tensors)

    def chunks(self, x: np.ndarray):
        """Per chunk of images: {tensor: float64 values} (a fixed batch: padded)."""
        batch = self.imp.batch
        chunk = batch or CALIB_CHUNK
        x = np.asarray(x, dtype=np.float32)
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk]
            n = len(xb)
            if batch and n < batch:
                xb = np.concatenate([xb, np.zeros((batch - n,) + xb.shape[1:], xb.dtype)])
            res = self.sess.run(self.tensors, {self.imp.input_name: xb})
            yield {t: np.asarray(v, dtype=np.float64)[:n]
                   for t, v in zip(self.tensors, res, strict=True)}

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        parts = list(self.chunks(x))
        return {t: np.concatenate([p[t] for p in parts]) for t in self.tensors}


def run_onnx(imp: Imported, x: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
    """The values of `tensors` (ONNX names) for images x, by onnxruntime (float64)."""
    return OnnxRunner(imp, tensors).run(x)


def calibrate(imp: Imported, x: np.ndarray) -> dict[str, float]:
    """act_max of every conv, fc and add layer (the largest output after its relu; the
    largest magnitude without), lowered to a fused Clip's max; and of the input."""
    tensors = sorted(set(imp.act_tensor.values()))
    best = dict.fromkeys(tensors, 0.0)
    for vals in OnnxRunner(imp, tensors).chunks(x):     # running maxima: bounded memory
        for t in tensors:
            best[t] = max(best[t], float(np.abs(vals[t]).max()))
    out = {"input": float(np.max(x))}
    for n, t in imp.act_tensor.items():
        out[n] = min(best[t], imp.clip_max.get(n, math.inf))
    return out


# -- the float meaning of a network ------------------------------------------------------
# float_forward(net, x, clamp=False) is golden/nn/network.py's (imported above): one float
# forward for calibration, the planner and the import's check against onnxruntime.


def float_check(net: Network, imp: Imported, x: np.ndarray) -> float:
    """max |float_forward - onnxruntime| / max |onnxruntime| over the output for x."""
    ref = run_onnx(imp, x, [imp.output_tensor])[imp.output_tensor].reshape(len(x), -1)
    got = np.concatenate([float_forward(net, x[i:i + 2], clamp=True)
                          [net.layers[-1].name].reshape(len(x[i:i + 2]), -1)
                          for i in range(0, len(x), 2)])
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12))


# -- the command -------------------------------------------------------------------------
def read_calibration(path: str | Path, shape: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """x (N, C, H, W) and, if there, integer labels y (N,) of a calibration .npz."""
    schema = Record({"x": Array(("N",) + tuple(shape), doc="images (N, C, H, W)"),
                     "y": Array(("N",), kind="int", default=OMIT, doc="labels")},
                    what="array", extra=True)
    d = validate(schema, read_npz(path, OnnxImportError, "calibration data"), file=path,
                 error=OnnxImportError, what="calibration data")
    if len(d["x"]) == 0:
        raise OnnxImportError(f"{path}: x: expected at least one image, got 0", file=str(path),
                              path="x", reason="expected at least one image")
    return d["x"].astype(np.float32), d.get("y")


def network_yaml(imp: Imported, how: str, dataset: bool, accuracy: float | None = None,
                 clamp_notes: list[str] | None = None) -> str:
    folded = ", ".join(f"{k} {v}" for k, v in sorted(imp.notes.items())) or "nothing"
    head = [f"# Imported from {imp.source.name} by `bfimna import` (docs/import.md): "
            f"{len(imp.model.graph.node)} ONNX nodes (opset {imp.opset}) -> "
            f"{len(imp.layers)} layers.",
            f"# Folded or dropped: {folded}.",
            f"# {how}"]
    if imp.qp:
        head.append("# A quantised model: weights.npz holds its exact real weights, its weight "
                    "scales (weight_scale) and act_max = output scale x (2^bits - 1) (ReLU) or "
                    "(2^(bits-1) - 1); int8.yaml its bits; requantisation is the project's "
                    "integer multiplier and shift (docs/import.md).")
    for note in clamp_notes or []:
        head.append(f"# Clamp differs: {note}.")
    if imp.clip_max:
        head.append("# Clip upper bounds are honoured through act_max only (act_max = "
                    "min(calibrated, max)): " + ", ".join(f"{k} (max {v:g})" for k, v in
                                                          imp.clip_max.items()) + ".")
    c, h, w = imp.input_shape
    doc: dict[str, Any] = {"name": imp.name, "input": {"channels": c, "height": h, "width": w},
           "weights": "weights.npz"}
    if dataset:
        doc["dataset"] = "test.npz"
    if accuracy is not None:
        doc["float_accuracy"] = round(accuracy, 4)
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    lines = ["layers:"] + ["  - " + yaml.safe_dump(e, sort_keys=False, default_flow_style=True,
                                                   width=10**6).strip() for e in imp.layers]
    return "\n".join(head) + "\n" + body + "\n".join(lines) + "\n"


def plan_yaml(imp: Imported) -> str:
    entries = "\n".join(f"  {e['name']}: {{w_bits: 8, a_bits: 8}}" for e in imp.layers
                        if e["type"] in ("conv", "fc"))
    return ("# 8-bit weights and activations for every conv and fc layer (add layers: the\n"
            "# larger of their inputs' bits), written by `bfimna import`.\n"
            f"name: int8\ninput_bits: 8\nlayers:\n{entries}\n")


# -- quantised models --------------------------------------------------------------------
def out_bits(qp: QP, relu: bool) -> tuple[int, bool]:
    """(bits, exact) of a quantised tensor in the project: v = q - zp held as relu ?
    unsigned : signed bits; exact when the project's clamp range is the model's."""
    lo, hi = qp.qmin - qp.zp, qp.qmax - qp.zp
    if relu:
        bits = max(2, hi.bit_length())
        return bits, hi == (1 << bits) - 1
    bits = max(2, max((-lo - 1).bit_length(), hi.bit_length()) + 1)
    return bits, lo == -(1 << (bits - 1)) and hi == (1 << (bits - 1)) - 1


def quantised_files(imp: Imported) -> tuple[dict[str, np.ndarray], str, list[str]]:
    """weights.npz arrays (float64: the model's exact real weights, its weight scales and
    act_max giving its output scales) and the plan of a quantised model; notes on where
    the project's clamp is not the model's."""
    relu = {e["name"]: bool(e.get("relu")) for e in imp.layers}
    qin = imp.qp["input"]
    in_bits = (qin.qmax - qin.zp).bit_length()       # v = q - zp in [0, 2^in_bits - 1]
    weights: dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64)
                                      for k, v in imp.weights.items()}
    weights["input.act_max"] = np.array(qin.scale * ((1 << in_bits) - 1))
    entries, notes = [], []
    for n in imp.rescaled:           # average pools with their own output scale
        weights[f"{n}.act_max"] = np.array(imp.qp[n].scale * (imp.qp[n].qmax - imp.qp[n].qmin))
    for e in imp.layers:
        n = e["name"]
        if e["type"] not in ("conv", "fc", "add"):
            continue
        qp = imp.qp[n]
        bits, exact = out_bits(qp, relu[n])
        top = (1 << bits) - 1 if relu[n] else (1 << (bits - 1)) - 1
        weights[f"{n}.act_max"] = np.array(qp.scale * top)
        if not exact:
            lo = max(0, qp.qmin - qp.zp) if relu[n] else qp.qmin - qp.zp
            kind = "unsigned" if relu[n] else "signed"
            notes.append(f"{n}: the model clamps q - zp to [{lo}, {qp.qmax - qp.zp}], the "
                         f"project to {kind} {bits} bits")
        if e["type"] == "add":
            entries.append(f"  {n}: {{a_bits: {bits}}}")
            continue
        weights[f"{n}.weight_scale"] = np.asarray(imp.qint[n]["s_w"], dtype=np.float64)
        entries.append(f"  {n}: {{w_bits: {MAX_W_BITS}, a_bits: {bits}}}")
    plan = (f"# The quantised model's own precision ({imp.qformat}, {qin.dtype} input), written "
            f"by `bfimna import`:\n# {MAX_W_BITS}-bit weights (weight - zero point), every "
            f"output's bits those of its q - zero point\n# (docs/import.md, \"Quantised "
            f"models\").\nname: int8\ninput_bits: {in_bits}\nlayers:\n"
            + "\n".join(entries) + "\n")
    return weights, plan, notes


def check_integers(qnet: QNet, imp: Imported) -> None:
    """The quantised network's integer weights and biases are the model's, exactly."""
    for q in qnet.layers:
        if q.name not in imp.qint:
            continue
        want = imp.qint[q.name]
        assert q.w is not None and q.bias is not None
        if not (np.array_equal(q.w, want["w"]) and np.array_equal(q.bias, want["bias"])):
            raise FloatCheckError(f"{imp.source}: layer {q.name}: the quantised weights or "
                                  f"biases differ from the model's integers: an importer bug")


def quant_check(qnet: QNet, imp: Imported, x: np.ndarray) -> dict[str, Any]:
    """The integer network against onnxruntime on images x, layer by layer: each layer
    reads onnxruntime's integers (q - zp) for its inputs; its outputs are compared with
    onnxruntime's. Also end to end from the float images (the project's input
    quantisation, every layer chained)."""
    from onnx import helper
    names = {layer: t for layer, t in imp.qtensor.items() if layer in imp.qp}
    types = {t: int(helper.np_dtype_to_tensor_dtype(np.dtype(imp.qp[layer].dtype)))
             for layer, t in names.items()}
    # QDQ: no graph optimisation, so onnxruntime runs each QuantizeLinear, DequantizeLinear
    # and float op as the ONNX spec defines them (its fused u8s8 kernels saturate pairs of
    # products on x86 without VNNI: docs/import.md)
    ort = OnnxRunner(imp, sorted(set(names.values())), types,
                     optimise="QDQ" not in imp.qformat.split("+")).run(x)
    v = {layer: ort[t].astype(np.int64) - imp.qp[layer].zp for layer, t in names.items()}
    env: dict[str, np.ndarray] = {}
    rows = []
    for q in qnet.layers:
        ins = [v[n] if n in v else env[n] for n in q.inputs]
        got = layer_forward(q, *ins)
        env[q.name] = got
        if q.name not in v:
            continue
        ref = v[q.name].reshape(got.shape)
        qp = imp.qp[q.name]
        clamped = (got != ref) & (np.clip(got, qp.qmin - qp.zp, qp.qmax - qp.zp) == ref)
        d = np.where(clamped, 0, np.abs(got - ref))
        rows.append({"layer": q.name, "type": q.layer.type, "outputs": int(d.size),
                     "equal": int((got == ref).sum()), "off_by_1": int((d == 1).sum()),
                     "off_more": int((d > 1).sum()), "clamp": int(clamped.sum()),
                     "max_diff": int(d.max())})
    xin = qnet.quantize_input(x)
    chained = forward(qnet, xin)
    last = qnet.layers[-1].name
    mine = chained[last].reshape(len(x), -1)
    theirs = v[last].reshape(len(x), -1) if last in v else None
    end = {"images": len(x),
           "input_equal": int((xin == v["input"].reshape(xin.shape)).sum()),
           "input_values": int(xin.size)}
    if theirs is not None:
        end.update(output_equal=int((mine == theirs).sum()), outputs=int(mine.size),
                   argmax_agree=int((mine.argmax(axis=1) == theirs.argmax(axis=1)).sum()),
                   max_diff=int(np.abs(mine - theirs).max()))
    return {"layers": rows, "end_to_end": end}


def check_table(check: dict[str, Any]) -> str:
    """The layer-by-layer comparison as CSV."""
    keys = ("layer", "type", "outputs", "equal", "off_by_1", "off_more", "clamp", "max_diff")
    lines = [",".join(keys)] + [",".join(str(r[k]) for k in keys) for r in check["layers"]]
    return "\n".join(lines) + "\n"


def check_summary(check: dict[str, Any]) -> list[str]:
    """Lines for the terminal: the layer table (Markdown) and the end-to-end counts."""
    keys = ("layer", "type", "outputs", "equal", "off_by_1", "off_more", "clamp", "max_diff")
    out = ["integer check against onnxruntime, each layer on onnxruntime's inputs "
           "(quant_check.csv):", "| " + " | ".join(keys) + " |",
           "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in check["layers"]]
    e = check["end_to_end"]
    line = (f"end to end on {e['images']} image(s): input quantisation equal for "
            f"{e['input_equal']}/{e['input_values']} values")
    if "outputs" in e:
        line += (f", outputs equal {e['output_equal']}/{e['outputs']} (max difference "
                 f"{e['max_diff']}), argmax equal {e['argmax_agree']}/{e['images']}")
    return out + [line]


@dataclass
class ImportReport:
    out: Path
    imported: Imported
    net: Network
    how: str
    n_calib: int
    check_rel: float
    check_images: int
    files: list[Path]
    warnings: list[str]
    quant: dict[str, Any] | None = None     # a quantised model: quant_check()'s comparison


def import_onnx(model_path: str | Path, out: str | Path, *, calib: str | Path | None = None,
                synthetic: int = DEFAULT_SYNTHETIC, seed: int = 0, force: bool = False
                ) -> ImportReport:
    """Translate, calibrate, write into a temporary directory next to `out`, load it back
    (load_network, load_plan), check its float forward against onnxruntime, then rename it
    to `out`. Nothing is left behind on failure."""
    model_path, out = Path(model_path), Path(out)
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(17, "output exists and is not an empty directory (--force "
                                  "replaces it)", str(out))
    imp = translate(load_model(model_path), model_path)
    warnings: list[str] = []
    y = None
    quantised = bool(imp.qp)
    if quantised and calib is not None:
        x, y = read_calibration(calib, imp.input_shape)
        how = (f"scales and zero points are the model's ({imp.qformat}); checked against "
               f"onnxruntime on the {len(x)} images of {Path(calib).name}"
               + (", labels y copied to test.npz" if y is not None else ""))
    elif quantised:
        x = synthetic_inputs(imp.input_shape, synthetic, seed)
        how = (f"scales and zero points are the model's ({imp.qformat}); checked against "
               f"onnxruntime on {synthetic} synthetic uniform[0,1) images, seed {seed}")
    elif calib is not None:
        x, y = read_calibration(calib, imp.input_shape)
        how = (f"act_max calibrated on the {len(x)} images of {Path(calib).name} (x)"
               + (", labels y copied to test.npz" if y is not None else ", no labels y: "
                  "no dataset"))
        if float(x.min()) < 0:
            warnings.append(f"{calib}: x has negative values (min {float(x.min()):.3g}); the "
                            f"quantised input is unsigned: they clip to 0")
    else:
        x = synthetic_inputs(imp.input_shape, synthetic, seed)
        how = (f"act_max calibrated on {synthetic} synthetic uniform[0,1) images (no dataset "
               f"given), seed {seed}")
    accuracy = None
    clamp_notes: list[str] = []
    if quantised:
        weights, plan_text, clamp_notes = quantised_files(imp)
    else:
        act = calibrate(imp, x)
        if y is not None:         # the float model's accuracy on the data, by onnxruntime
            logits = run_onnx(imp, x, [imp.output_tensor])[imp.output_tensor]
            accuracy = float(np.mean(logits.reshape(len(x), -1).argmax(axis=1) == y))
        weights = {k: v.astype(np.float32) for k, v in imp.weights.items()}
        for n, v in act.items():
            weights[f"{n}.act_max"] = np.array(v, dtype=np.float32)
        plan_text = plan_yaml(imp)
    check = None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)             # mkdtemp's 0700: an ordinary directory instead
    try:
        (tmp / "network.yaml").write_text(network_yaml(imp, how, y is not None, accuracy,
                                                       clamp_notes))
        savez: Any = np.savez          # (numpy's stub takes **arrays for its flags)
        savez(tmp / "weights.npz", **weights)
        (tmp / "int8.yaml").write_text(plan_text)
        if y is not None:
            np.savez(tmp / "test.npz", x=x, y=y)
        net = load_network(tmp / "network.yaml")
        plan = load_plan(tmp / "int8.yaml", net)
        if quantised:
            try:
                qnet = quantize(net, plan)
            except NetworkError as exc:
                raise OnnxImportError(f"{model_path}: the model's quantisation does not fit "
                                      f"the project's integer layers: {exc}",
                                      file=str(model_path), reason=str(exc)) from None
            check_integers(qnet, imp)
            check = quant_check(qnet, imp, x)
            more = sum(r["off_more"] for r in check["layers"])
            if more:
                warnings.append(f"{more} output(s) differ from onnxruntime's by more than one "
                                f"step (quant_check.csv): beyond the multiplier's rounding; "
                                f"onnxruntime's u8s8 kernels saturate on x86 without VNNI "
                                f"(quantise with reduce_range=True; docs/import.md)")
            (tmp / "quant_check.csv").write_text(check_table(check))
        else:
            try:
                quantize(net, plan)
            except NetworkError as exc:
                warnings.append(f"int8.yaml does not quantise ({exc}): write a plan with fewer "
                                f"bits for that layer")
        xc = x[:CHECK_IMAGES]
        rel = 0.0 if quantised else float_check(net, imp, xc)
        if not rel <= CHECK_RTOL * 10:
            raise FloatCheckError(f"{model_path}: the imported network's float output differs "
                                  f"from onnxruntime's by {rel:.3g} (relative; at most "
                                  f"{CHECK_RTOL * 10:g} expected): an importer bug")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / out.name) if out.is_dir() else out.replace(old / out.name)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = [out / "network.yaml", out / "weights.npz", out / "int8.yaml"] + \
        ([out / "test.npz"] if y is not None else []) + \
        ([out / "quant_check.csv"] if quantised else [])
    net.path = out / "network.yaml"
    return ImportReport(out, imp, net, how, len(x), rel, len(xc), files, warnings, check)
