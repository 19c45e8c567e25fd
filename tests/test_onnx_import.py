"""ONNX import (golden/nn/onnx_import.py, `bfimna import`, docs/import.md): small float
models built with onnx.helper (seeded weights) are imported; the written network loads,
its float forward (numpy) equals onnxruntime's output, and its 8-bit integer reference
agrees with the float model; unsupported nodes fail with exit 2 naming the node and
nothing is written."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from bfimna.cli import main
from bfimna.golden.nn.network import float_forward as network_float_forward
from bfimna.golden.nn.network import load_network, load_plan, quantize, reference
from bfimna.golden.nn.onnx_import import (
    OnnxImportError,
    float_forward,
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
    (_qlinear, "node 'quant' (QuantizeLinear): op type QuantizeLinear unsupported (quantised "
               "models are not imported yet"),
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
