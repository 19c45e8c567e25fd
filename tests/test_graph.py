"""The layer graph (golden/nn/network.py): every layer kind against plain-loop integer
references, the quantised graph against its float network, and the file errors."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import yaml

from bfimna.golden.nn import cnn
from bfimna.golden.nn.network import (
    NetworkError,
    calibrate,
    float_forward,
    forward,
    load_network,
    load_plan,
    quantize,
)

# every layer kind: a stem, a depthwise conv, a residual block with a strided 1x1
# projection, a concat of two branches, average pooling with padding, gap, flatten, fc
GRAPH: dict[str, Any] = {
    "name": "graph_test",
    "input": {"channels": 3, "height": 8, "width": 8},
    "weights": "weights.npz",
    "layers": [
        {"name": "stem", "type": "conv", "out_channels": 8, "kernel": 3, "pad": 1, "relu": True},
        {"name": "dw", "type": "conv", "out_channels": 8, "kernel": 3, "pad": 1, "groups": 8,
         "relu": True},
        {"name": "c2", "type": "conv", "out_channels": 8, "kernel": 3, "pad": 1},
        {"name": "add1", "type": "add", "inputs": ["c2", "stem"], "relu": True},
        {"name": "pool", "type": "maxpool", "kernel": 3, "stride": 2, "pad": 1},
        {"name": "b1", "type": "conv", "out_channels": 6, "kernel": 1, "relu": True},
        {"name": "b2", "type": "conv", "inputs": ["pool"], "out_channels": 4, "kernel": 3,
         "pad": 1, "groups": 2, "relu": True},
        {"name": "cat", "type": "concat", "inputs": ["b1", "b2"]},
        {"name": "proj", "type": "conv", "inputs": ["add1"], "out_channels": 10, "kernel": 1,
         "stride": 2},
        {"name": "c3", "type": "conv", "inputs": ["cat"], "out_channels": 10, "kernel": 3,
         "pad": 1},
        {"name": "add2", "type": "add", "inputs": ["c3", "proj"], "relu": True},
        {"name": "avg", "type": "avgpool", "kernel": 3, "stride": 1, "pad": 1},
        {"name": "gap", "type": "gap"},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "fc", "out_features": 5},
    ],
}


def _weights(net_dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = {"input": (3, 8, 8)}
    w, prev = {}, "input"
    for ld in net_dict["layers"]:
        src = shapes[ld.get("inputs", [prev])[0]]
        c, h, wd = src
        t = ld["type"]
        if t == "conv":
            k, g, s, p = ld["kernel"], ld.get("groups", 1), ld.get("stride", 1), ld.get("pad", 0)
            w[f"{ld['name']}.weight"] = rng.standard_normal(
                (ld["out_channels"], c // g, k, k)) * np.sqrt(2 / (c // g * k * k))
            w[f"{ld['name']}.bias"] = rng.standard_normal(ld["out_channels"]) * 0.1
            shape = (ld["out_channels"], (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1)
        elif t == "fc":
            w[f"{ld['name']}.weight"] = rng.standard_normal((ld["out_features"], c * h * wd)) * 0.3
            w[f"{ld['name']}.bias"] = rng.standard_normal(ld["out_features"]) * 0.1
            shape = (ld["out_features"], 1, 1)
        elif t in ("maxpool", "avgpool"):
            k, s, p = ld["kernel"], ld.get("stride", ld["kernel"]), ld.get("pad", 0)
            shape = (c, (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1)
        elif t == "gap":
            shape = (c, 1, 1)
        elif t == "flatten":
            shape = (c * h * wd, 1, 1)
        elif t == "concat":
            shape = (sum(shapes[n][0] for n in ld["inputs"]), h, wd)
        else:
            shape = src
        shapes[ld["name"]], prev = shape, ld["name"]
    return w


def make_graph(tmp_path, seed: int, net_dict=None, n_calib: int = 32):
    """The network of `net_dict` (default GRAPH) with seeded synthetic weights, calibrated
    on seeded synthetic uniform [0, 1) images, written to tmp_path."""
    net_dict = net_dict or GRAPH
    w = _weights(net_dict, seed)
    w.update({k: np.float32(1.0) for k in ["input.act_max"]
              + [f"{ld['name']}.act_max" for ld in net_dict["layers"]
                 if ld["type"] in ("conv", "fc", "add")]})
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(net_dict, sort_keys=False))
    np.savez(tmp_path / "weights.npz", **w)
    net = load_network(tmp_path / "network.yaml")
    x = np.random.default_rng(seed + 1).random((n_calib, 3, 8, 8))
    w.update({k: np.float32(v) for k, v in calibrate(net, x).items()})
    np.savez(tmp_path / "weights.npz", **w)
    return load_network(tmp_path / "network.yaml"), x


def _plan(tmp_path, bits: int, extra=None):
    layers = {ld["name"]: {"w_bits": bits, "a_bits": bits} for ld in GRAPH["layers"]
              if ld["type"] in ("conv", "fc")}
    layers.update(extra or {})
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"input_bits": bits, "layers": layers}))
    return tmp_path / "plan.yaml"


def test_graph_shapes_and_inputs(tmp_path):
    net, _ = make_graph(tmp_path, 1)
    by = {lay.name: lay for lay in net.layers}
    assert by["stem"].inputs == ("input",) and by["dw"].inputs == ("stem",)
    assert by["add1"].inputs == ("c2", "stem") and by["pool"].out_shape == (8, 4, 4)
    assert by["cat"].out_shape == (10, 4, 4) and by["proj"].out_shape == (10, 4, 4)
    assert by["gap"].out_shape == (10, 1, 1) and by["flat"].out_shape == (10, 1, 1)
    assert [lay.signed for lay in net.layers if lay.signed] == [True] * 4   # c2, proj, c3, fc
    assert {lay.name for lay in net.layers if lay.signed} == {"c2", "proj", "c3", "fc"}


@pytest.mark.parametrize("bits, tol", [(8, 0.05), (6, 0.2)])
def test_quantised_graph_follows_its_float_network(tmp_path, bits, tol, seed):
    """Each tensor, dequantised with its scale, stays near the float network's: the
    bookkeeping of scales through add, concat and the poolings is right. Tolerances are
    relative to the tensor's range (errors grow with depth and fall with bits)."""
    net, x = make_graph(tmp_path, seed)     # the calibration images: no clipping
    q = quantize(net, load_plan(_plan(tmp_path, bits), net))
    ints = forward(q, q.quantize_input(x))
    floats = float_forward(net, q.quantize_input(x) * q.input_scale)
    print("seed", seed, "bits", bits)
    for lay in net.layers:
        got = ints[lay.name].reshape(floats[lay.name].shape) * q.scales[lay.name]
        span = np.abs(floats[lay.name]).max()
        err = np.abs(got - floats[lay.name]).max() / span
        print(f"  {lay.name:5s} max error {err:.3f} of the range")
        assert err < tol, lay.name


def test_layer_kinds_match_plain_loops(tmp_path, seed):
    """Grouped conv, padded average pooling, add and concat of the integer reference
    against loops over Python ints (no numpy arithmetic)."""
    net, _ = make_graph(tmp_path, seed)
    q = quantize(net, load_plan(_plan(tmp_path, 8), net))
    x = np.random.default_rng(seed).integers(0, 256, (2, 3, 8, 8))
    env = forward(q, x)
    ql = {layer.name: layer for layer in q.layers}
    print("seed", seed)

    # depthwise conv: output channel j reads input channel j only
    dw, xin = ql["dw"], env["stem"]
    for n in range(2):
        for j in range(8):
            for oy in range(8):
                for ox in range(8):
                    acc = int(dw.bias[j])
                    for ky in range(3):
                        for kx in range(3):
                            iy, ix = oy + ky - 1, ox + kx - 1
                            if 0 <= iy < 8 and 0 <= ix < 8:
                                acc += int(xin[n, j, iy, ix]) * int(dw.w[j, 0, ky, kx])
                    b, c = int(dw.b[j]), int(dw.c[j])
                    y = (acc * b + (1 << c >> 1)) >> c
                    assert env["dw"][n, j, oy, ox] == min(max(y, dw.lo), dw.hi)

    # average pooling 3x3, stride 1, zero padding 1, divisor 9
    avg, xin = ql["avg"], env["add2"]
    (b, c), = avg.mults
    assert abs(b / (1 << c) - 1 / 9) < 1 / 9 * 2 ** -10
    for n in range(2):
        for ch in range(10):
            for oy in range(4):
                for ox in range(4):
                    s = sum(int(xin[n, ch, oy + dy - 1, ox + dx - 1]) for dy in range(3)
                            for dx in range(3) if 0 <= oy + dy - 1 < 4 and 0 <= ox + dx - 1 < 4)
                    y = (s * b + (1 << (c - 1))) >> c
                    assert env["avg"][n, ch, oy, ox] == min(max(y, avg.lo), avg.hi)

    # residual add: both branches to one shift
    add = ql["add2"]
    (ba, c), (bb, c2) = add.mults
    assert c == c2
    for v, (a, bv) in enumerate(zip(env["c3"].ravel().tolist(), env["proj"].ravel().tolist(),
                                    strict=True)):
        y = (a * ba + bv * bb + (1 << c >> 1)) >> c
        assert env["add2"].ravel()[v] == min(max(y, 0), add.hi)

    # concat: each branch rescaled to the coarser scale, then stacked along channels
    cat = ql["cat"]
    parts = []
    for name, (b, c) in zip(("b1", "b2"), cat.mults, strict=True):
        t = env[name]
        parts.append(t if (b, c) == (1, 0) else np.vectorize(
            lambda v, b=b, c=c: min(max((int(v) * b + (1 << c >> 1)) >> c, 0), cat.hi))(t))
    assert np.array_equal(env["cat"], np.concatenate(parts, axis=1))
    assert any(m != (1, 0) for m in cat.mults) or q.scales["b1"] == q.scales["b2"]


def test_grouped_conv_equals_per_group_convs(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 16, (2, 6, 5, 5))
    w = rng.integers(-8, 8, (4, 3, 3, 3))
    got = cnn.conv2d_acc(x, 0, w, 0, None, (1, 1), (1, 1, 1, 1), groups=2)
    want = np.concatenate([cnn.conv2d_acc(x[:, :3], 0, w[:2], 0, None, (1, 1), (1, 1, 1, 1)),
                           cnn.conv2d_acc(x[:, 3:], 0, w[2:], 0, None, (1, 1), (1, 1, 1, 1))],
                          axis=1)
    assert np.array_equal(got, want)


def test_add_bits_from_the_plan(tmp_path):
    net, _ = make_graph(tmp_path, 3)
    q = quantize(net, load_plan(_plan(tmp_path, 8, {"add1": {"a_bits": 6}}), net))
    ql = {layer.name: layer for layer in q.layers}
    assert (ql["add1"].out_bits, ql["add1"].hi) == (6, 63)
    assert ql["add2"].out_bits == 8        # default: the larger of its inputs' bits
    assert ql["pool"].in_bits == 6 and ql["cat"].out_bits == 8


def _edit(i, **kw):
    def change(d):
        d["layers"][i].update(kw)
    return change


@pytest.mark.parametrize("change, path, reason", [
    (_edit(3, inputs=["c2", "c9"]), "layers[3].inputs[1]",
     "expected 'input' or an earlier layer's name, got 'c9'"),
    (_edit(3, inputs=["c2", "proj"]), "layers[3].inputs[1]",
     "expected 'input' or an earlier layer's name (a later layer: list layers in topological "
     "order), got 'proj'"),
    (_edit(3, inputs=["c2"]), "layers[3].inputs", "an add layer reads exactly 2 inputs, got 1"),
    (_edit(3, inputs=["c2", "input"]), "layers[3].inputs",
     "an add takes two tensors of one shape, got (8, 8, 8) and (3, 8, 8)"),
    (_edit(7, inputs=["b1", "add1"]), "layers[7].inputs",
     "a concat takes tensors of one height and width, got [(6, 4, 4), (8, 8, 8)]"),
    (_edit(1, groups=3), "layers[1].groups",
     "must divide the input (8) and output (8) channels, got 3"),
    (_edit(4, inputs=["c2"]), "layers[2].relu",
     "must be true: 'pool' (maxpool) reads it and only add layers read signed activations, "
     "got false"),
    (_edit(0, name="input"), "layers[0].name",
     "must not be 'input' (the network's input), got 'input'"),
    (_edit(13, inputs=["avg"]), "layers[12].name",
     "must be read by a later layer (only the last layer is the output), got 'gap'"),
    (_edit(4, pad=3), "layers[4].pad", "must be below the kernel (3), got 3"),
])
def test_graph_errors_name_the_field(tmp_path, change, path, reason):
    d = yaml.safe_load(yaml.safe_dump(GRAPH))
    change(d)
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    np.savez(tmp_path / "weights.npz", x=np.zeros(1))
    with pytest.raises(NetworkError) as exc:
        load_network(tmp_path / "network.yaml")
    assert (exc.value.path, exc.value.reason) == (path, reason), str(exc.value)


def test_weights_of_a_grouped_conv_are_checked(tmp_path):
    net, _ = make_graph(tmp_path, 4)
    w = dict(np.load(tmp_path / "weights.npz"))
    w["dw.weight"] = np.zeros((8, 8, 3, 3))
    np.savez(tmp_path / "weights.npz", **w)
    with pytest.raises(NetworkError, match=re.escape(
            "dw.weight: expected shape (8, 1, 3, 3) (layer dw), got (8, 8, 3, 3)")):
        load_network(tmp_path / "network.yaml")


def _synthetic(tmp_path, act_max: dict, **extra):
    d = yaml.safe_load(yaml.safe_dump(GRAPH))
    d.pop("weights")
    d.update(extra)
    d["synthetic_weights"] = {"seed": 5, "act_max": act_max}
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return tmp_path / "network.yaml"


def test_synthetic_weights_are_seeded_and_checked(tmp_path):
    names = ["input"] + [ld["name"] for ld in GRAPH["layers"]
                         if ld["type"] in ("conv", "fc", "add")]
    path = _synthetic(tmp_path, {n: 2.0 for n in names})
    a, b = load_network(path), load_network(path)
    assert sorted(a.weights) == sorted(b.weights)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    w = a.weights["c3.weight"]                       # He: std sqrt(2 / fan_in)
    assert w.shape == (10, 10, 3, 3) and abs(w.std() / np.sqrt(2 / 90) - 1) < 0.15
    assert float(a.weights["add2.act_max"]) == 2.0
    quantize(a, load_plan(_plan(tmp_path, 8), a))

    with pytest.raises(NetworkError) as exc:
        load_network(_synthetic(tmp_path, {n: 2.0 for n in names[:-1]}))
    assert (exc.value.path, exc.value.reason) == (
        "synthetic_weights.act_max.fc", "missing value (the calibrated largest output)")
    np.savez(tmp_path / "w.npz", x=np.zeros(1))
    with pytest.raises(NetworkError) as exc:
        load_network(_synthetic(tmp_path, {n: 2.0 for n in names}, weights="w.npz"))
    assert (exc.value.path, exc.value.reason) == (
        "weights", "expected exactly one of weights (a .npz file) and synthetic_weights, "
                   "got both")
