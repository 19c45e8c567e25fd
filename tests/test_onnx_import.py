"""ONNX import (golden/nn/onnx_import.py, `bfimna import`, docs/import.md): small float
models built with onnx.helper (seeded weights) are imported; the written network loads,
its float forward (numpy) equals onnxruntime's output, and its 8-bit integer reference
agrees with the float model; unsupported nodes fail with exit 2 naming the node and
nothing is written. Quantised models (onnxruntime's quantize_static, QDQ and QOperator,
per tensor and per channel, and a hand-built QLinear model with exact multipliers) keep
their integers, and every imported layer is compared with onnxruntime's (and onnx's
reference implementation's) integer outputs."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from bfimna.cli import main
from bfimna.golden.nn.network import float_forward as network_float_forward
from bfimna.golden.nn.network import (
    layer_acc,
    layer_forward,
    load_network,
    load_plan,
    quantize,
    reference,
)
from bfimna.golden.nn.onnx_import import (
    OnnxImportError,
    OnnxRunner,
    float_forward,
    import_onnx,
    load_model,
    run_onnx,
    synthetic_inputs,
    translate,
)

# Share of synthetic images on which the 8-bit reference's argmax equals the float model's
# (a sanity threshold: random weights and random images give close logits; 8-bit weights
# and activations flip few of them).
ARGMAX_AGREEMENT = 0.75
RTOL = 1e-4                # float forward (float64) against onnxruntime (float32)


class G:
    """A graph under construction: nodes, seeded initializers."""

    def __init__(self, shape=(1, 3, 8, 8), seed=0, opset=13):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.opset = [], [], opset
        self.shape = shape
        self.n = 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def node(self, op, inputs, name=None, n_out=1, **attrs):
        self.n += 1
        name = name or f"{op.lower()}{self.n}"
        outs = [f"{name}_out"] + [f"{name}_out{i}" for i in range(1, n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0]

    def conv(self, x, cin, cout, k, stride=1, pad=0, group=1, bias=True, name=None, **attrs):
        w = self.const(f"w{self.n}", self.rng.normal(0, (2 / (cin * k * k / group)) ** 0.5,
                                                     (cout, cin // group, k, k)))
        ins = [x, w] + ([self.const(f"b{self.n}", self.rng.normal(0, 0.1, cout))] if bias else [])
        return self.node("Conv", ins, name, kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, group=group, **attrs)

    def bn(self, x, c, name=None):
        r = self.rng
        ins = [x] + [self.const(f"bn{self.n}_{i}", v) for i, v in enumerate(
            (r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c),
             r.uniform(0.5, 1.5, c)))]
        return self.node("BatchNormalization", ins, name, epsilon=1e-5)

    def gemm(self, x, fin, fout, name=None, trans_b=1):
        w = self.rng.normal(0, (1 / fin) ** 0.5, (fout, fin))
        return self.node("Gemm", [x, self.const(f"fw{self.n}", w if trans_b else w.T),
                                  self.const(f"fb{self.n}", self.rng.normal(0, 0.1, fout))],
                         name, transB=trans_b)

    def save(self, path, out, out_shape=("N", 10)):
        g = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                            ["N", *self.shape[1:]])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, list(out_shape))],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        onnx.save(m, str(path))
        return path


def cnn(g):
    """conv+BN+relu, maxpool, relu, conv+relu, flatten, gemm (transB 0)+relu, gemm."""
    h = g.node("Relu", [g.bn(g.conv("x", 3, 8, 3, pad=1, bias=False), 8)])
    h = g.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Relu", [h])                                 # already unsigned: dropped
    h = g.node("Relu", [g.conv(h, 8, 16, 3, pad=1)])
    h = g.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Flatten", [h], axis=1)
    h = g.node("Relu", [g.gemm(h, 16 * 2 * 2, 32, trans_b=0)])
    return g.gemm(h, 32, 10, name="logits")


def residual(g):
    """stem conv; block: conv, conv, add, relu; strided block with a 1x1 projection; GAP,
    Flatten, Gemm."""
    stem = g.node("Relu", [g.bn(g.conv("x", 3, 8, 3, pad=1), 8)], name="stem_relu")
    h = g.node("Relu", [g.bn(g.conv(stem, 8, 8, 3, pad=1), 8)])
    h = g.bn(g.conv(h, 8, 8, 3, pad=1), 8)
    b1 = g.node("Relu", [g.node("Add", [h, stem])])
    h = g.node("Relu", [g.bn(g.conv(b1, 8, 16, 3, stride=2, pad=1), 16)])
    h = g.bn(g.conv(h, 16, 16, 3, pad=1), 16)
    proj = g.bn(g.conv(b1, 8, 16, 1, stride=2, name="proj"), 16)
    h = g.node("Relu", [g.node("Add", [h, proj], name="add2")])
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h])], axis=1)
    return g.gemm(h, 16, 10, name="fc")


def inception(g):
    """concat of a 1x1, a 3x3 and a pooled branch, then a depthwise conv, average pooling
    with pads, gap."""
    a = g.node("Relu", [g.conv("x", 3, 4, 1)])
    b = g.node("Relu", [g.conv("x", 3, 6, 3, pad=1)])
    c = g.node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    c = g.node("Relu", [g.conv(c, 3, 2, 1)])
    h = g.node("Concat", [a, b, c], name="cat", axis=1)
    h = g.node("Relu", [g.bn(g.conv(h, 12, 12, 3, pad=1, group=12, name="dw"), 12)])
    h = g.node("AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               count_include_pad=1)
    h = g.node("Clip", [g.conv(h, 12, 10, 1), g.const("lo", 0.0), g.const("hi", 6.0)])
    h = g.node("GlobalAveragePool", [h])
    return g.node("Flatten", [h], axis=1)


def matmul_net(g):
    """grouped conv (2 groups), relu, reshape to (N, -1), MatMul + Add bias, Softmax."""
    h = g.node("Relu", [g.conv("x", 4, 8, 3, pad=1, group=2)])
    h = g.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Reshape", [h, g.inits.append(numpy_helper.from_array(
        np.array([-1, 8 * 4 * 4], np.int64), "shape")) or "shape"])
    h = g.node("Dropout", [h])
    h = g.node("MatMul", [h, g.const("mw", g.rng.normal(0, 0.1, (128, 10)))])
    h = g.node("Add", [h, g.const("mb", g.rng.normal(0, 0.1, 10))])
    return g.node("Softmax", [h], axis=1)


MODELS = {"cnn": (cnn, (1, 3, 8, 8)), "residual": (residual, (1, 3, 8, 8)),
          "inception": (inception, (1, 3, 8, 8)), "matmul": (matmul_net, (1, 4, 8, 8))}


def build(tmp_path, kind, seed=0):
    fn, shape = MODELS[kind]
    g = G(shape, seed)
    return g.save(tmp_path / f"{kind}.onnx", fn(g))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_import_float_and_int8(tmp_path, kind, capsys):
    path = build(tmp_path, kind)
    out = tmp_path / "out"
    assert main(["import", str(path), "--out", str(out), "--synthetic", "32", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "float check" in text and f"wrote {out / 'network.yaml'}" in text
    assert sorted(p.name for p in out.iterdir()) == ["int8.yaml", "network.yaml", "weights.npz"]
    head = (out / "network.yaml").read_text().splitlines()
    assert head[0].startswith(f"# Imported from {kind}.onnx")
    assert any("act_max calibrated on 32 synthetic uniform[0,1) images (no dataset given)" in
               ln for ln in head)
    doc = yaml.safe_load((out / "network.yaml").read_text())
    assert "dataset" not in doc and doc["weights"] == "weights.npz"
    net = load_network(out / "network.yaml")
    plan = load_plan(out / "int8.yaml", net)
    weighted = [lay.name for lay in net.layers if lay.type in ("conv", "fc")]
    assert sorted(plan.layers) == sorted(weighted) and plan.input_bits == 8
    assert all(e["w_bits"] == 8 and e["a_bits"] == 8 for e in plan.layers.values())
    with np.load(out / "weights.npz") as f:
        assert all(f[k].dtype == np.float32 for k in f.files)

    # the float meaning of the written files equals onnxruntime's output
    x = synthetic_inputs(net.input_shape, 32, 3)          # the calibration images
    imp = translate(load_model(path), path)
    ref = run_onnx(imp, x, [imp.output_tensor])[imp.output_tensor].reshape(len(x), -1)
    got = float_forward(net, x, clamp=True)[net.layers[-1].name].reshape(len(x), -1)
    assert np.abs(got - ref).max() <= RTOL * np.abs(ref).max()
    if not imp.clip_max:     # network.py's own float forward (no Clip bound) agrees too
        own = network_float_forward(net, x)[net.layers[-1].name].reshape(len(x), -1)
        assert np.abs(own - ref).max() <= RTOL * np.abs(ref).max()
    # act_max: the largest output over the calibration images (a Clip's max: at most that)
    vals = float_forward(net, x)
    for lay in net.layers:
        if lay.type in ("conv", "fc", "add"):
            want = min(np.abs(vals[lay.name]).max(), imp.clip_max.get(lay.name, np.inf))
            assert np.isclose(net.weights[f"{lay.name}.act_max"], want, rtol=1e-5)
    assert np.isclose(net.weights["input.act_max"], x.max())

    # the 8-bit integer reference agrees with the float model on most images
    q = quantize(net, plan)
    outs = reference(q, q.quantize_input(x))
    qlog = outs[-1].reshape(len(x), -1)
    agree = float(np.mean(qlog.argmax(axis=1) == ref.argmax(axis=1)))
    assert agree >= ARGMAX_AGREEMENT, agree
    corr = np.corrcoef(qlog.ravel().astype(float), got.ravel())[0, 1]
    assert corr > 0.95, corr


def test_translation_details(tmp_path):
    imp = translate(load_model(build(tmp_path, "residual")), "residual.onnx")
    types = [(e["name"], e["type"], e.get("relu"), e.get("inputs")) for e in imp.layers]
    assert types == [
        ("conv1", "conv", True, None), ("conv4", "conv", True, None),
        ("conv7", "conv", False, None), ("add9", "add", True, ["conv7", "conv1"]),
        ("conv11", "conv", True, None), ("conv14", "conv", False, None),
        ("proj", "conv", False, ["add9"]), ("add2", "add", True, ["conv14", "proj"]),
        ("globalaveragepool20", "gap", None, None), ("fc", "fc", False, None)]
    assert imp.notes["BatchNormalization folded"] == 6 and imp.notes["Flatten dropped"] == 1
    assert imp.layers[4]["stride"] == 2 and imp.layers[6]["kernel"] == 1
    imp = translate(load_model(build(tmp_path, "cnn")), "cnn.onnx")
    assert [e["type"] for e in imp.layers] == ["conv", "maxpool", "conv", "maxpool", "fc", "fc"]
    assert imp.notes["Relu on an unsigned tensor dropped"] == 1 and imp.notes["Relu fused"] == 3
    imp = translate(load_model(build(tmp_path, "inception")), "inception.onnx")
    by = {e["name"]: e for e in imp.layers}
    assert by["dw"]["groups"] == 12 and by["cat"]["inputs"] == ["conv1", "conv3", "conv6"]
    assert by["maxpool5"] == {"name": "maxpool5", "type": "maxpool", "kernel": 3, "stride": 1,
                              "pad": 1, "inputs": ["input"]}
    assert imp.clip_max == {"conv13": 6.0} and imp.layers[-1]["type"] == "gap"
    assert imp.notes["Clip fused"] == 1 and imp.notes["Flatten dropped"] == 1
    imp = translate(load_model(build(tmp_path, "matmul")), "matmul.onnx")
    assert [e["type"] for e in imp.layers] == ["conv", "avgpool", "fc"]   # Reshape: dropped
    assert imp.layers[0]["groups"] == 2 and imp.notes["Add of a constant folded"] == 1
    assert "final Softmax dropped (the network outputs the logits)" in imp.notes


def test_calibration_data_with_labels(tmp_path, capsys):
    path = build(tmp_path, "cnn")
    rng = np.random.default_rng(5)
    x = rng.random((20, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=rng.integers(0, 10, 20))
    out = tmp_path / "o"
    assert main(["import", str(path), "--out", str(out), "--calib",
                 str(tmp_path / "data.npz")]) == 0
    assert "next: bfimna run" in capsys.readouterr().out
    net = load_network(out / "network.yaml")
    tx, ty = net.test_set()
    assert np.array_equal(tx, x) and len(ty) == 20
    assert np.isclose(net.weights["input.act_max"], x.max())
    assert 0 <= net.float_accuracy <= 1           # the float model's, by onnxruntime
    # an existing output directory is kept unless --force
    assert main(["import", str(path), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and (out / "test.npz").exists()
    assert main(["import", str(path), "--out", str(out), "--force"]) == 0
    assert not (out / "test.npz").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a calibration set of the wrong shape
    np.savez(tmp_path / "bad.npz", x=x[:, :2])
    assert main(["import", str(path), "--out", str(tmp_path / "b"), "--calib",
                 str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert "bad.npz: x: expected shape (N, 3, 8, 8)" in err and not (tmp_path / "b").exists()


def _bad(g):
    h = g.node("Relu", [g.conv("x", 3, 4, 3, pad=1)])
    return h


def _lrn(g):
    return g.node("LRN", [_bad(g)], name="norm1", size=3)


def _dilated(g):
    return g.conv("x", 3, 4, 3, pad=2, name="Conv_3", dilations=[2, 2])


def _asym(g):
    h = g.conv("x", 3, 4, 3, name="c1")
    next(a for a in g.nodes[-1].attribute if a.name == "pads").ints[:] = [0, 0, 1, 1]
    return h


def _qlinear(g):
    xs, xz = g.const("xs", 0.02), "xz"
    g.inits.append(numpy_helper.from_array(np.array(0, np.uint8), "xz"))
    q = g.node("QuantizeLinear", ["x", xs, xz], name="quant")
    return g.node("DequantizeLinear", [q, xs, xz], name="dequant")


def _signed_pool(g):
    return g.node("MaxPool", [g.conv("x", 3, 4, 3)], name="pool", kernel_shape=[2, 2])


def _avg_exclude(g):
    h = _bad(g)
    return g.node("AveragePool", [h], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def _clip_no_min(g):
    return g.node("Clip", [g.conv("x", 3, 4, 3), "", g.const("hi", 6.0)], name="clip")


def _two_relu_readers(g):
    c = g.conv("x", 3, 4, 3, pad=1, name="c")
    return g.node("Add", [g.node("Relu", [c], name="r"), c], name="a")


@pytest.mark.parametrize("build_fn, message", [
    (_lrn, "node 'norm1' (LRN): op type LRN unsupported"),
    (_dilated, "node 'Conv_3' (Conv): dilations [2, 2] unsupported (only 1)"),
    (_asym, "node 'c1' (Conv): pads [0, 0, 1, 1] unsupported (only symmetric"),
    (_qlinear, "output 'dequant_out' is the input: no layers"),
    (_signed_pool, "node 'pool' (MaxPool): input 'c_out' is signed"),
    (_avg_exclude, "node 'avg' (AveragePool): count_include_pad 0 with pads 1 unsupported"),
    (_clip_no_min, "node 'clip' (Clip): min -inf unsupported (only 0: a ReLU with an optional "
                   "max)"),
    (_two_relu_readers, "node 'r' (Relu): Relu on 'c_out' unsupported: the output of layer "
                        "'c' is read elsewhere"),
])
def test_unsupported_exit_2(tmp_path, capsys, build_fn, message):
    g = G((1, 3, 8, 8), 1)
    if build_fn is _signed_pool:
        out = g.node("MaxPool", [g.conv("x", 3, 4, 3, name="c")], name="pool",
                     kernel_shape=[2, 2])
    else:
        out = build_fn(g)
    path = g.save(tmp_path / "model.onnx", out)
    dest = tmp_path / "out"
    assert main(["import", str(path), "--out", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bfimna: {path}: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_bad_inputs(tmp_path, capsys):
    g = G((1, 3, 8, 8))
    out = g.node("Relu", [g.conv("x", 3, 4, 3)])
    m = helper.make_model(helper.make_graph(
        g.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
                       helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4, 6, 6])], g.inits),
        opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "two.onnx"))
    with pytest.raises(OnnxImportError, match=r"2 graph inputs \('x', 'z'\) unsupported"):
        translate(load_model(tmp_path / "two.onnx"), "two.onnx")
    g = G((1, 3, 8, 8))
    g.shape = (1, 24, 8)       # a 3-D input
    out = g.node("Relu", ["x"], name="r")
    g.save(tmp_path / "flat.onnx", out, (1, 24, 8))
    assert main(["import", str(tmp_path / "flat.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path / 'flat.onnx'}: input 'x': shape ['N', 24, 8] unsupported (only (N, C, " \
        f"H, W)" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["import", str(tmp_path / "junk.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "two.onnx"), "--out", str(tmp_path / "o"),
                 "--calib", "a.npz", "--synthetic", "3"]) == 2
    assert "exclude each other" in capsys.readouterr().err


LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


@pytest.mark.skipif(not os.path.isdir(LIGHT), reason="the onnx wheel ships no light models")
def test_light_models_from_the_onnx_wheel(tmp_path, capsys):
    """Real topologies at 224x224 (their weights are constants made by ConstantOfShape):
    SqueezeNet imports (Fire modules: concat; a final Softmax dropped; about 4 s); AlexNet
    fails cleanly at its LRN. (ResNet-50 and VGG-19 import too, in 20-60 s: docs/import.md.)"""
    out = tmp_path / "sq"
    assert main(["import", os.path.join(LIGHT, "light_squeezenet.onnx"), "--out", str(out),
                 "--synthetic", "4"]) == 0
    text = capsys.readouterr().out
    assert "-> 38 layers (conv 26, maxpool 3, concat 8, gap 1)" in text
    net = load_network(out / "network.yaml")
    assert net.input_shape == (3, 224, 224) and net.layers[-1].out_shape == (1000, 1, 1)
    assert main(["import", os.path.join(LIGHT, "light_bvlc_alexnet.onnx"), "--out",
                 str(tmp_path / "alex")]) == 2
    assert "light_bvlc_alexnet.onnx: node 'n2' (LRN): op type LRN unsupported" in \
        capsys.readouterr().err
    assert not (tmp_path / "alex").exists()


# -- quantised models (docs/import.md, "Quantised models") -------------------------------
# Float models quantised here by onnxruntime's quantize_static (QDQ and QOperator formats,
# per tensor and per channel) with a calibration reader on seeded synthetic images.
OFF_BY_1_SHARE = 0.03      # the share of outputs (all requantising layers together) that
#                            the multipliers of 9 to 12 bits here may move by one step


def qcnn(g):
    """conv+relu, conv+relu, residual add, maxpool, flatten, gemm (a small quantised CNN)."""
    a = g.node("Relu", [g.conv("x", 3, 8, 3, pad=1)], name="r1")
    b = g.node("Relu", [g.conv(a, 8, 8, 3, pad=1)], name="r2")
    h = g.node("Add", [a, b], name="add")
    h = g.node("MaxPool", [h], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Flatten", [h], name="flat", axis=1)
    return g.gemm(h, 8 * 4 * 4, 10, name="fc")


def qgap(g):
    """conv+relu, global average pooling (its own output scale), flatten, gemm."""
    h = g.node("Relu", [g.conv("x", 3, 8, 3, pad=1)], name="r1")
    h = g.node("GlobalAveragePool", [h], name="gap")
    return g.gemm(g.node("Flatten", [h], name="flat"), 8, 10, name="fc")


def qgroup(g):
    """conv+relu, grouped conv (4 groups)+relu, depthwise conv+relu, maxpool, gemm."""
    h = g.node("Relu", [g.conv("x", 3, 8, 3, pad=1)], name="r1")
    h = g.node("Relu", [g.conv(h, 8, 8, 3, pad=1, group=4)], name="r2")
    h = g.node("Relu", [g.conv(h, 8, 8, 3, pad=1, group=8)], name="r3")
    h = g.node("MaxPool", [h], name="pool", kernel_shape=[2, 2], strides=[2, 2])
    return g.gemm(g.node("Flatten", [h], name="flat"), 8 * 4 * 4, 10, name="fc")


QMODELS = {"qcnn": (qcnn, ["conv", "conv", "add", "maxpool", "flatten", "fc"]),
           "qgap": (qgap, ["conv", "gap", "fc"]),
           "qgroup": (qgroup, ["conv", "conv", "conv", "maxpool", "flatten", "fc"])}


def quantised(tmp_path, seed, fmt="QDQ", per_channel=False, reduce_range=True, build=qcnn,
              calib_low=0.0, **kw):
    """A float model quantised by onnxruntime on 16 seeded synthetic images in
    [calib_low, 1)."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    g = G((1, 3, 8, 8), seed, opset=21)
    fpath = g.save(tmp_path / "float.onnx", build(g))
    rng = np.random.default_rng(seed)
    batches = [{"x": rng.uniform(calib_low, 1, (1, 3, 8, 8)).astype(np.float32)}
               for _ in range(16)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    qpath = tmp_path / f"{fmt}_{int(per_channel)}.onnx"
    opts = {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, **kw}
    quantize_static(str(fpath), str(qpath), Reader(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel, reduce_range=reduce_range, **opts)
    return qpath


def _layerwise(qnet, imp, x):
    """Per layer: (its inputs, its output, onnxruntime's output), each as q - zero point,
    the inputs onnxruntime's own."""
    names = {n: t for n, t in imp.qtensor.items() if n in imp.qp}
    types = {t: helper.np_dtype_to_tensor_dtype(np.dtype(imp.qp[n].dtype))
             for n, t in names.items()}
    ort = OnnxRunner(imp, sorted(set(names.values())), types,
                     optimise="QDQ" not in imp.qformat).run(x)
    v = {n: ort[t].astype(np.int64) - imp.qp[n].zp for n, t in names.items()}
    out = {}
    for q in qnet.layers:
        ins = [v[n] for n in q.inputs]
        out[q.name] = (ins, layer_forward(q, *ins), v[q.name])
    return out


def _layerwise_input(imp, x):
    """onnxruntime's quantised input, as q - zero point."""
    t = imp.qtensor["input"]
    dt = helper.np_dtype_to_tensor_dtype(np.dtype(imp.qp["input"].dtype))
    q = OnnxRunner(imp, [t], {t: dt}, optimise="QDQ" not in imp.qformat).run(x)[t]
    return q.astype(np.int64) - imp.qp["input"].zp


@pytest.mark.parametrize("model, fmt, per_channel, act", [
    ("qcnn", "QDQ", False, "u8"), ("qcnn", "QDQ", True, "u8"), ("qcnn", "QOperator", False, "u8"),
    ("qcnn", "QOperator", True, "u8"), ("qgap", "QDQ", True, "u8"),
    ("qgap", "QOperator", False, "u8"), ("qgroup", "QDQ", False, "u8"),
    ("qgroup", "QOperator", True, "u8"), ("qcnn", "QDQ", True, "s8"),
    ("qcnn", "QOperator", False, "s8"), ("qcnn", "QDQ", True, "s8sym")])
def test_quantised_import_matches_onnxruntime(tmp_path, seed, model, fmt, per_channel, act):
    """u8: uint8 activations; s8: int8 (zero point -128 after a ReLU); s8sym: int8
    symmetric (zero point 0, a 7-bit unsigned input; quantize_static keeps the Relu between
    two QuantizeLinear: fused, so the model rounds twice and the project once)."""
    from onnxruntime.quantization import QuantType
    build, types = QMODELS[model]
    kw = {} if act == "u8" else {"activation_type": QuantType.QInt8,
                                 "extra_options": {"ActivationSymmetric": act == "s8sym"}}
    path = quantised(tmp_path, seed, fmt, per_channel, build=build, **kw)
    rep = import_onnx(path, tmp_path / "out", synthetic=8, seed=seed)
    imp, net = rep.imported, rep.net
    assert imp.qformat == fmt and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "int8.yaml", "network.yaml", "quant_check.csv", "weights.npz"]
    qnet = quantize(net, load_plan(tmp_path / "out" / "int8.yaml", net))
    assert [q.layer.type for q in qnet.layers] == types
    plan = yaml.safe_load((tmp_path / "out" / "int8.yaml").read_text())
    assert plan["input_bits"] == (7 if act == "s8sym" else 8)
    assert sorted(imp.twice) == (["conv1", "conv3"] if act == "s8sym" else [])
    # global average pooling requantises to the model's own output scale
    assert [imp.qp[n].scale != imp.qp[net.layers[0].name].scale for n in imp.rescaled] == \
        [True] * (model == "qgap")
    # the model's integers, read back from the written files: weights - zero point, bias
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    wq = sorted((v for k, v in inits.items() if v.dtype == np.int8 and v.ndim >= 2),
                key=lambda a: -a.ndim)
    bq = [v for k, v in inits.items() if v.dtype == np.int32 and v.ndim == 1 and
          "zero_point" not in k]
    weighted = [q for q in qnet.layers if q.layer.type in ("conv", "fc")]
    assert [sorted(map(tuple, q.w.reshape(len(q.w), -1).tolist())) for q in weighted] == \
        [sorted(map(tuple, w.reshape(len(w), -1).astype(np.int64).tolist())) for w in wq]
    assert sorted(int(v) for q in weighted for v in q.bias) == \
        sorted(int(v) for b in bq for v in b)
    # layer by layer on onnxruntime's integers: max pooling and flatten are exact; conv,
    # fc and add differ by one step at most, only where the exact value acc * M lies within
    # the multiplier's error of a rounding boundary; the clamp of a signed output with a
    # zero point off 0/128 is the only other difference (docs/import.md)
    x = synthetic_inputs(net.input_shape, 8, seed)
    off, total = 0, 0
    for name, (ins, got, ref) in _layerwise(qnet, imp, x).items():
        q = next(q for q in qnet.layers if q.name == name)
        qp = imp.qp[name]
        ref = ref.reshape(got.shape)
        clamped = (np.clip(got, qp.qmin - qp.zp, qp.qmax - qp.zp) == ref) & (got != ref)
        diff = np.where(clamped, 0, np.abs(got - ref))
        if q.layer.type in ("maxpool", "flatten"):
            assert np.array_equal(got, ref), name
            continue
        assert diff.max() <= 1, (name, seed)
        off, total = off + int(diff.sum()), total + diff.size
        if q.layer.type not in ("conv", "fc") or name in imp.twice:
            continue
        acc = layer_acc(q, ins[0])
        k = (1, -1) + (1,) * (acc.ndim - 2)
        s_w = net.weights[f"{name}.weight_scale"].astype(np.float64)
        s_x = imp.qp[q.inputs[0]].scale
        m_exact = (s_x * s_w / qp.scale).reshape(k)
        m_mine = (q.b / np.exp2(q.c)).reshape(k)
        val = acc * m_exact
        slack = np.abs(acc) * np.abs(m_exact - m_mine) + 1e-6 * np.abs(val) + 1e-9
        near = np.abs(val - np.floor(val) - 0.5) <= slack
        assert not np.any((diff > 0) & ~near), (name, seed)
    assert off <= OFF_BY_1_SHARE * total, (off, total, seed)
    # the input quantisation: equal, except where x / s rounded to float32 (onnxruntime)
    # lands on a tie that the exact quotient (the project, float64) is not
    ort_in = _layerwise_input(imp, x)
    mine = qnet.quantize_input(x)
    qin = imp.qp["input"]
    f32 = np.round(x.astype(np.float32) / np.float32(qin.scale)).clip(qin.qmin - qin.zp,
                                                                        qin.qmax - qin.zp)
    f64 = np.round(x.astype(np.float64) / qnet.input_scale).clip(0, (1 << qnet.input_bits) - 1)
    assert np.array_equal(f32, ort_in) and np.array_equal(f64, mine)
    assert np.mean(mine != ort_in) <= 0.002
    e = rep.quant["end_to_end"]
    assert e["input_values"] - e["input_equal"] == int((mine != ort_in).sum())
    assert e["argmax_agree"] >= e["images"] - 1


def _pow2_model(path, seed):
    """QuantizeLinear, QLinearConv (+ReLU by zero point 0), Flatten, QLinearMatMul: scales
    powers of two, so every multiplier s_x * s_w / s_y is exactly b / 2^c; weights in
    [-63, 63] (onnxruntime's u8s8 kernels are exact there); the output uint8 with zero
    point 128, a signed 8-bit integer exactly."""
    rng = np.random.default_rng(seed)
    c = [numpy_helper.from_array(np.asarray(v, dt), n) for n, v, dt in [
        ("xs", 2.0 ** -8, np.float32), ("xz", 0, np.uint8),
        ("w", rng.integers(-63, 64, (4, 3, 3, 3)), np.int8), ("ws", 2.0 ** -7, np.float32),
        ("wz", 0, np.int8), ("ys", 2.0 ** -4, np.float32), ("yz", 0, np.uint8),
        ("b", rng.integers(-3000, 3000, 4), np.int32),
        ("m", rng.integers(-63, 64, (4 * 8 * 8, 10)), np.int8), ("ms", 2.0 ** -6, np.float32),
        ("mz", 0, np.int8), ("zs", 2.0 ** -2, np.float32), ("zz", 128, np.uint8)]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz",
                                              "b"], ["yq"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["yq"], ["fq"], name="flat"),
             helper.make_node("QLinearMatMul", ["fq", "ys", "yz", "m", "ms", "mz", "zs", "zz"],
                              ["zq"], name="mm"),
             helper.make_node("DequantizeLinear", ["zq", "zs", "zz"], ["z"], name="dq")]
    g = helper.make_graph(nodes, "pow2", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 3, 8, 8])], [helper.make_tensor_value_info(
            "z", TensorProto.FLOAT, ["N", 10])], c)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])   # onnxruntime
    m.ir_version = 9                            # 1.23 has no QLinearMatMul-21 kernel
    onnx.save(m, str(path))
    return path


def test_exact_multipliers_are_bit_exact(tmp_path, seed):
    """Where the model's multipliers are exactly b / 2^c, the imported layers equal
    onnxruntime's and the onnx reference implementation's outputs bit for bit, except at
    exact ties (acc * M = n + 1/2): the project rounds half up, ONNX half to even."""
    from onnx.reference import ReferenceEvaluator
    path = _pow2_model(tmp_path / "pow2.onnx", seed)
    rep = import_onnx(path, tmp_path / "out", synthetic=8, seed=seed)
    imp, net = rep.imported, rep.net
    qnet = quantize(net, load_plan(tmp_path / "out" / "int8.yaml", net))
    for q in qnet.layers:
        if q.b is not None:        # the exact multipliers were found
            s_x = imp.qp[q.inputs[0]].scale
            m = s_x * net.weights[f"{q.name}.weight_scale"] / imp.qp[q.name].scale
            assert np.array_equal(q.b / np.exp2(q.c), m), q.name
    x = synthetic_inputs(net.input_shape, 8, seed)
    layers = _layerwise(qnet, imp, x)
    ref_eval = ReferenceEvaluator(str(path)).run(["yq", "zq"], {"x": x})
    ties = 0
    for q, onnx_ref in zip([q for q in qnet.layers if q.b is not None], ref_eval, strict=True):
        ins, got, ref = layers[q.name]
        onnx_v = onnx_ref.astype(np.int64) - imp.qp[q.name].zp
        assert np.array_equal(onnx_v.reshape(ref.shape), ref)    # onnxruntime = onnx reference
        acc = layer_acc(q, ins[0])
        k = (1, -1) + (1,) * (acc.ndim - 2)
        b, c = q.b.reshape(k), q.c.reshape(k)
        tie = (acc * b) % np.left_shift(1, c) == np.left_shift(1, c - 1)
        floor_even = ((acc * b) >> c) % 2 == 0
        ref = ref.reshape(got.shape)
        expect = np.where(tie & floor_even & (got > q.lo) & (got <= q.hi), ref + 1, ref)
        assert np.array_equal(got, np.clip(expect, q.lo, q.hi)), (q.name, seed)
        ties += int((tie & floor_even).sum())
    print(f"[pow2] outputs at an exact tie with an even floor (half up != half even): {ties}")


def test_quantised_end_to_end_cli(tmp_path, seed, capsys):
    """bfimna import of a quantised CNN, then bfimna run on the golden backend at once."""
    path = quantised(tmp_path, seed, "QDQ", True)
    rng = np.random.default_rng(seed)
    np.savez(tmp_path / "data.npz", x=rng.random((6, 3, 8, 8)).astype(np.float32),
             y=rng.integers(0, 10, 6))
    out = tmp_path / "imp"
    assert main(["import", str(path), "--out", str(out), "--calib",
                 str(tmp_path / "data.npz")]) == 0
    text = capsys.readouterr().out
    assert "integer check against onnxruntime" in text and "| pool | maxpool |" in text
    assert f"next: bfimna run --network {out / 'network.yaml'}" in text
    plan = yaml.safe_load((out / "int8.yaml").read_text())
    assert plan["input_bits"] == 8 and plan["layers"]["add"] == {"a_bits": 8}
    assert all(e["w_bits"] == 8 for n, e in plan["layers"].items() if n != "add")
    assert main(["run", "--network", str(out / "network.yaml"), "--plan",
                 str(out / "int8.yaml"), "--backend", "golden", "--images", "1",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "every layer bit-exact against the golden CNN reference" in text


@pytest.mark.parametrize("case, message", [
    ("uint8_weights", "node 'conv1' (Conv): uint8 weights with zero point"),
    ("negative_input", "(QuantizeLinear): input zero point"),
    ("float_gemm", "node 'fc' (Gemm): weight 'fw"),
    ("per_axis_activation", "(QuantizeLinear): output: a scale or zero point per axis"),
])
def test_quantised_unsupported_exit_2(tmp_path, seed, capsys, case, message):
    if case == "uint8_weights":
        path = quantised(tmp_path, seed, "QDQ", False, False, build=lambda g: g.gemm(
            g.node("Flatten", [g.node("Relu", [g.conv("x", 3, 4, 3, name="conv1")])]),
            4 * 6 * 6, 10), weight_type=onnx_quant_type("QUInt8"))
    elif case == "negative_input":
        path = quantised(tmp_path, seed, calib_low=-1.0)
    elif case == "float_gemm":
        path = quantised(tmp_path, seed, op_types_to_quantize=["Conv", "Relu", "Add",
                                                               "MaxPool"])
    else:
        path = quantised(tmp_path, seed)
        m = onnx.load(str(path))
        q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear")
        init = next(i for i in m.graph.initializer if i.name == q.input[1])
        init.CopyFrom(numpy_helper.from_array(np.full(3, numpy_helper.to_array(init),
                                                      np.float32), init.name))
        zp = next(i for i in m.graph.initializer if i.name == q.input[2])
        zp.CopyFrom(numpy_helper.from_array(np.zeros(3, np.uint8), zp.name))
        onnx.save(m, str(path))
    before = sorted(os.listdir(tmp_path))
    assert main(["import", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bfimna: {path}: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before


def onnx_quant_type(name):
    from onnxruntime.quantization import QuantType
    return getattr(QuantType, name)
