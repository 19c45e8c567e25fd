"""Golden CNN reference (golden/nn/cnn.py) against independent references: ONNX's reference
implementation (QLinearConv, ConvInteger, MatMulInteger, MaxPool), the QLinearConv
conformance vectors shipped in the onnx wheel, and plain Python loops."""

from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper  # a dev dependency: the independent reference
from onnx.reference import ReferenceEvaluator

from bfimna.golden.nn import cnn


def run_onnx(op, inputs: dict, attrs: dict | None = None, out_type=TensorProto.INT32):
    names = list(inputs)
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    vinfo = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
                                           np.shape(v)) for k, v in inputs.items()]
    graph = helper.make_graph([node], "g", vinfo,
                              [helper.make_tensor_value_info("y", out_type, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    # not intermediate: the outputs as a list
    return cast("list[Any]", ReferenceEvaluator(model).run(None, inputs))[0]


def qlinearconv_vectors():
    """The conformance cases of onnx/backend/test/case/node/qlinearconv.py, captured by
    running their generator with `expect` intercepted."""
    from onnx.backend.test.case.node import qlinearconv as case

    captured = []
    orig = case.expect
    def capture(node, inputs, outputs, name):
        captured.append((node, inputs, outputs, name))

    case.expect = capture
    try:
        case.QLinearConv.export()
    finally:
        case.expect = orig
    return captured


VECTORS = qlinearconv_vectors()


@pytest.mark.parametrize("case", VECTORS, ids=[c[3] for c in VECTORS])
def test_qlinearconv_conformance_vectors(case):
    node, ins, outs, _name = case
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    bias = ins[8] if len(ins) > 8 else None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
    stride = tuple(attrs.get("strides", (1, 1)))
    acc = cnn.conv2d_acc(x, xz, w, wz, bias, stride=stride, pads=pads)
    scale = xs * ws / ys
    if np.size(scale) > 1:
        scale = np.asarray(scale).reshape(1, -1, 1, 1)
    info = np.iinfo(outs[0].dtype)
    got = cnn.requantize_float(acc, scale, yz, info.min, info.max)
    assert np.array_equal(got, outs[0].astype(np.int64))


def test_conformance_vectors_were_captured():
    """The parametrised test above runs once per captured vector; with none (an onnx
    release that renamed the generator) it would pass by running nothing."""
    assert len(VECTORS) >= 1, "no QLinearConv conformance vector captured from onnx"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_conv_matches_onnx_reference(seed):
    rng = np.random.default_rng(seed)
    n, c, k = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pads = tuple(int(p) for p in rng.integers(0, 2, size=4))
    signed = bool(rng.integers(2))
    dt = np.int8 if signed else np.uint8
    lo, hi = (-128, 128) if signed else (0, 256)
    x = rng.integers(lo, hi, size=(n, c, h, w)).astype(dt)
    wt = rng.integers(lo, hi, size=(k, c, kh, kw)).astype(dt)
    xz = dt(rng.integers(lo, hi))
    wz = rng.integers(lo, hi, size=(k,)).astype(dt)
    bias = rng.integers(-5000, 5000, size=(k,)).astype(np.int32)
    attrs = {"strides": list(stride), "pads": list(pads)}
    acc = cnn.conv2d_acc(x, xz, wt, wz, bias, stride=stride, pads=pads)
    # the integer accumulators: ConvInteger (no bias) + bias
    ref_acc = run_onnx("ConvInteger", {"x": x, "w": wt, "x_zero_point": np.array(xz),
                                       "w_zero_point": wz}, attrs)
    assert np.array_equal(acc, ref_acc.astype(np.int64) + bias.reshape(1, -1, 1, 1)), seed
    # and the whole QLinearConv
    xs, ys = np.float32(0.02), np.float32(0.05)
    ws = rng.uniform(0.001, 0.01, size=k).astype(np.float32)
    yz = dt(rng.integers(lo, hi))
    ref = run_onnx("QLinearConv", {"x": x, "x_scale": xs, "x_zero_point": np.array(xz), "w": wt,
                                   "w_scale": ws, "w_zero_point": wz, "y_scale": ys,
                                   "y_zero_point": np.array(yz), "B": bias}, attrs,
                   out_type=TensorProto.INT8 if signed else TensorProto.UINT8)
    scale = (xs * ws / ys).reshape(1, -1, 1, 1)
    info = np.iinfo(dt)
    assert np.array_equal(cnn.requantize_float(acc, scale, yz, info.min, info.max),
                          ref.astype(np.int64)), seed


def test_conv_matches_plain_loops():
    rng = np.random.default_rng(3)
    x = rng.integers(-8, 8, size=(2, 3, 6, 5))
    w = rng.integers(-8, 8, size=(4, 3, 3, 2))
    acc = cnn.conv2d_acc(x, 1, w, -2, None, stride=(2, 1), pads=(1, 0, 1, 1))
    xp = np.pad(x - 1, ((0, 0), (0, 0), (1, 1), (0, 1)))
    for nn in range(2):
        for f in range(4):
            for i in range(acc.shape[2]):
                for j in range(acc.shape[3]):
                    s = sum(int(xp[nn, ch, 2 * i + a, j + b_]) * int(w[f, ch, a, b_] + 2)
                            for ch in range(3) for a in range(3) for b_ in range(2))
                    assert acc[nn, f, i, j] == s


def test_linear_matches_onnx_matmulinteger():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(3, 17)).astype(np.uint8)
    w = rng.integers(-128, 128, size=(5, 17)).astype(np.int8)
    ref = run_onnx("MatMulInteger", {"a": x, "b": w.T.copy(), "a_zero_point": np.uint8(7),
                                     "b_zero_point": np.int8(-3)})
    assert np.array_equal(cnn.linear_acc(x, 7, w, -3), ref.astype(np.int64))


def test_maxpool_matches_onnx():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(2, 3, 7, 6)).astype(np.int8)
    ref = run_onnx("MaxPool", {"x": x}, {"kernel_shape": [2, 2], "strides": [2, 2]},
                   out_type=TensorProto.INT8)
    assert np.array_equal(cnn.maxpool2d(x, 2), ref.astype(np.int64))


@settings(max_examples=200)
@given(st.floats(1e-6, 4.0), st.integers(-(2**24), 2**24))
def test_dyadic_requant_is_within_one_step_of_float(scale, acc):
    b, c = cnn.dyadic(scale, bits=16)
    assert b < 1 << 16 and abs(b / 2 ** c - scale) <= scale * 2 ** -14
    exact = acc * scale
    got = int(cnn.requantize(np.array([acc]), b, c, 0, -(2**40), 2**40)[0])
    assert abs(got - exact) <= 1 + abs(exact) * 2 ** -14


def test_round_shift_is_half_up_like_the_ap():
    v = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6])
    assert list(cnn.round_shift(v, 2)) == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert list(cnn.round_shift(v, 0)) == list(v)


def test_relu_pool_and_residual_add():
    q = np.array([[[[-3, 4], [10, -20]]]])
    assert cnn.relu(q, -5).tolist() == [[[[-3, 4], [10, -5]]]]
    # 2x2 average of (q - zp) = 0.25 * (-3 + 4 + 10 - 20) = -2.25 -> b/2^c = 1/4 -> -2
    assert cnn.avgpool2d(q, 0, 2, 1, 2, -128, 127).item() == -2
    y = cnn.residual_add(np.array([10]), 2, 3, np.array([-4]), 0, 5, 2, 1, -128, 127)
    assert y.item() == ((8 * 3 - 20 + 2) >> 2) + 1
