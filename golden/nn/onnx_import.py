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

`float_forward(net, x)` is the float meaning of a loaded network (numpy, float64): the
importer checks it against onnxruntime before it writes anything final.
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

from bfimna.golden.nn.network import Network, NetworkError, load_network, load_plan, quantize
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
             "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear")
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
        return t

    def tensor(self, name: str) -> _T:
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
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(f"op domain {node.domain!r} unsupported (only the default "
                                f"ONNX domain)")
            if self.fold_constant(node):
                continue
            op = node.op_type
            fn = getattr(self, f"op_{op}", None)
            if fn is None:
                extra = " (quantised models are not imported yet: docs/import.md)" \
                    if op in QUANTISED else ""
                raise self.fail(f"op type {op} unsupported{extra}")
            if op not in ("Dropout", "MaxPool", "BatchNormalization"):
                used = [o for o in node.output[1:] if o and self.uses[o]]
                if used:
                    raise self.fail(f"extra outputs {used} unsupported")
            fn(node, _attrs(node))
        self.node = None
        return self.finish(in_name, shape, batch)

    def op_Conv(self, node, a):
        x = self.image(node.input[0])
        w = self.const(node.input[1], "weight").astype(np.float64)
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
        b = self.const(node.input[2], "bias").astype(np.float64).reshape(-1) \
            if len(node.input) > 2 and node.input[2] else np.zeros(kout)
        entry = {"type": "conv", "out_channels": kout, "kernel": k, "stride": s, "pad": p}
        if g > 1:
            entry["groups"] = g
        entry["relu"] = False
        t = self.add_layer(entry, [x], (kout, oh, ow), True)
        self.weights[f"{t.layer}.weight"], self.weights[f"{t.layer}.bias"] = w, b

    def _fc(self, x: _T, wt: np.ndarray, b: np.ndarray) -> None:
        f = int(np.prod(x.shape))
        if wt.shape[1] != f:
            raise self.fail(f"weight {list(wt.shape)} does not fit {f} input features")
        if wt.shape[0] > MAX_SIZE:
            raise self.fail(f"{wt.shape[0]} outputs unsupported (at most {MAX_SIZE})")
        t = self.add_layer({"type": "fc", "out_features": int(wt.shape[0]), "relu": False},
                           [x], (int(wt.shape[0]), 1, 1), True, flat=True)
        self.weights[f"{t.layer}.weight"], self.weights[f"{t.layer}.bias"] = wt, b

    def flat_input(self, name: str) -> _T:
        t = self.unsigned(self.tensor(name), name)
        if not t.flat:
            raise self.fail(f"input {name!r} of shape (N, {', '.join(map(str, t.shape))}) "
                            f"unsupported (only 2-D (N, F))")
        return t

    def op_Gemm(self, node, a):
        for key, want in (("alpha", 1.0), ("beta", 1.0), ("transA", 0)):
            if a.get(key, want) != want:
                raise self.fail(f"{key} {_fmt(a[key])} unsupported (only {_fmt(want)})")
        x = self.flat_input(node.input[0])
        bm = self.const(node.input[1], "weight").astype(np.float64)
        wt = bm if a.get("transB", 0) else bm.T
        k = wt.shape[0]
        b = np.zeros(k)
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node.input[2], "bias").astype(np.float64)
            try:
                b = np.broadcast_to(c, (1, k)).reshape(k).copy()
            except ValueError:
                raise self.fail(f"bias shape {list(c.shape)} unsupported (only (K,) or "
                                f"(1, K))") from None
        self._fc(x, wt, b)

    def op_MatMul(self, node, a):
        x = self.flat_input(node.input[0])
        bm = self.const(node.input[1], "weight").astype(np.float64)
        if bm.ndim != 2:
            raise self.fail(f"weight shape {list(bm.shape)} unsupported (only 2-D)")
        self._fc(x, bm.T.copy(), np.zeros(bm.shape[1]))

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
        entry = self.fusable(src, relu_ok=True)
        if entry is not None:            # a conv, fc or add output only this node reads
            entry["relu"] = True
            self.act_tensor[entry["name"]] = self.node.output[0]
            if hi < math.inf:
                self.clip_max[entry["name"]] = min(hi, self.clip_max.get(entry["name"], hi))
            self.tensors[self.node.output[0]] = _T(t.layer, t.shape, False, t.flat)
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
        prev = "input"
        for e in layers:                     # `inputs` only where not the previous layer
            if e["inputs"] == [prev]:
                del e["inputs"]
            prev = e["name"]
        act = {n: t for n, t in self.act_tensor.items() if n in keep}
        weights = {k: v for k, v in self.weights.items() if k.split(".")[0] in keep}
        name = _sanitize(self.src.stem) or "imported"
        return Imported(self.src, name, in_name, shape, batch, layers, weights, act,
                        self.output_name, {k: v for k, v in self.clip_max.items() if k in keep},
                        self.notes, self.model, self.opset)


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

    def __init__(self, imp: Imported, tensors: list[str]):
        import onnxruntime as ort  # type: ignore[import-untyped]
        from onnx import TensorProto, helper
        m = type(imp.model)()
        m.CopyFrom(imp.model)
        have = {o.name for o in m.graph.output}
        for t in tensors:
            if t not in have:
                m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
                have.add(t)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(m.SerializeToString(), so,
                                         providers=["CPUExecutionProvider"])
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
def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, s: int, p: int, g: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view
    n, c, _, _ = x.shape
    k, cg, kh, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = sliding_window_view(xp, (kh, kh), axis=(2, 3))[:, :, ::s, ::s]   # N C OH OW k k
    oh, ow = win.shape[2:4]
    if g == 1:
        y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    elif cg == 1 and k == g:         # depthwise
        y = np.einsum("nchwij,cij->nchw", win, w[:, 0])
    else:
        kg = k // g
        y = np.concatenate([np.tensordot(win[:, j * cg:(j + 1) * cg], w[j * kg:(j + 1) * kg],
                                         axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
                            for j in range(g)], axis=1)
    return y + b.reshape(1, -1, 1, 1)


def _pool(x: np.ndarray, k: int, s: int, p: int, kind: str) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view
    fill = -np.inf if kind == "maxpool" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5)) if kind == "maxpool" else win.sum(axis=(4, 5)) / (k * k)


def float_forward(net: Network, x: np.ndarray, clamp: bool = False) -> dict[str, np.ndarray]:
    """Every layer's float64 output (N, C, H, W) for float images x, as the network's
    weights define it (no quantisation). clamp: also clamp relu layers at their act_max
    (what quantisation does; it reproduces an imported Clip's max on calibration data)."""
    W = net.weights
    vals: dict[str, np.ndarray] = {"input": np.asarray(x, dtype=np.float64)}
    for lay in net.layers:
        ins = [vals[i] for i in lay.inputs]
        h = ins[0]
        t = lay.type
        if t == "conv":
            y = _conv(h, W[f"{lay.name}.weight"].astype(np.float64),
                      W[f"{lay.name}.bias"].astype(np.float64), lay.stride, lay.pad, lay.groups)
        elif t == "fc":
            y = h.reshape(len(h), -1) @ W[f"{lay.name}.weight"].astype(np.float64).T + \
                W[f"{lay.name}.bias"].astype(np.float64)
            y = y.reshape(y.shape + (1, 1))
        elif t in ("maxpool", "avgpool"):
            y = _pool(h, lay.kernel, lay.stride, lay.pad, t)
        elif t == "gap":
            y = h.mean(axis=(2, 3), keepdims=True)
        elif t == "add":
            y = ins[0] + ins[1]
        elif t == "concat":
            y = np.concatenate(ins, axis=1)
        elif t == "flatten":
            y = h.reshape(len(h), -1, 1, 1)
        else:
            raise ValueError(f"layer {lay.name}: unknown type {t}")
        if lay.relu:
            y = np.maximum(y, 0.0)
            if clamp:
                y = np.minimum(y, float(W[f"{lay.name}.act_max"]))
        vals[lay.name] = y
    return vals


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


def network_yaml(imp: Imported, how: str, dataset: bool, accuracy: float | None = None) -> str:
    folded = ", ".join(f"{k} {v}" for k, v in sorted(imp.notes.items())) or "nothing"
    head = [f"# Imported from {imp.source.name} by `bfimna import` (docs/import.md): "
            f"{len(imp.model.graph.node)} ONNX nodes (opset {imp.opset}) -> "
            f"{len(imp.layers)} layers.",
            f"# Folded or dropped: {folded}.",
            f"# {how}"]
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
    if calib is not None:
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
    act = calibrate(imp, x)
    accuracy = None
    if y is not None:         # the float model's accuracy on the data, by onnxruntime
        logits = run_onnx(imp, x, [imp.output_tensor])[imp.output_tensor]
        accuracy = float(np.mean(logits.reshape(len(x), -1).argmax(axis=1) == y))
    weights = {k: v.astype(np.float32) for k, v in imp.weights.items()}
    for n, v in act.items():
        weights[f"{n}.act_max"] = np.array(v, dtype=np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)             # mkdtemp's 0700: an ordinary directory instead
    try:
        (tmp / "network.yaml").write_text(network_yaml(imp, how, y is not None, accuracy))
        savez: Any = np.savez          # (numpy's stub takes **arrays for its flags)
        savez(tmp / "weights.npz", **weights)
        (tmp / "int8.yaml").write_text(plan_yaml(imp))
        if y is not None:
            np.savez(tmp / "test.npz", x=x, y=y)
        net = load_network(tmp / "network.yaml")
        plan = load_plan(tmp / "int8.yaml", net)
        try:
            quantize(net, plan)
        except NetworkError as exc:
            warnings.append(f"int8.yaml does not quantise ({exc}): write a plan with fewer "
                            f"bits for that layer")
        xc = x[:CHECK_IMAGES]
        rel = float_check(net, imp, xc)
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
        ([out / "test.npz"] if y is not None else [])
    net.path = out / "network.yaml"
    return ImportReport(out, imp, net, how, len(x), rel, len(xc), files, warnings)
