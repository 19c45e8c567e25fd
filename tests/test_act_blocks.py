"""Activation bits per block of output channels (`a_blocks`; docs/network.md,
"Block-wise activation precision"): the plan schema refuses what cannot be read; the
quantiser and the integer reference against plain numpy; the scheduler's one instruction
stream mixing input widths, bit-exact with counted = predicted cycles on the golden
system in both dataflows (a grouped conv, a flatten and taps staged in groups too), and
cheaper than the same plan without blocks; the planner's activation-block knobs
(`bfimna plan --act-blocks N`)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from numpy.lib.stride_tricks import sliding_window_view
from test_graph import make_graph
from test_planner import _whole, cli
from test_sched_graph import SMALL_MAPS

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import NetworkError, Plan, forward, load_network, load_plan, quantize
from bfimna.golden.spec.config import config_from_dict, load_config
from bfimna.golden.spec.tech import find_tech
from bfimna.sched import planner as P
from bfimna.sched.run import predict_network, run_network

from conftest import CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"
DIGITS_RES = ROOT / "models" / "digits_res"


@pytest.fixture(scope="module")
def net():
    return load_network(DIGITS / "network.yaml")


def _np_conv(x, w, bias, pad):
    """Plain numpy: int64 accumulators of a stride-1 conv of x (N, C, H, W) with w (K, C,
    k, k) padded by `pad`."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))         # N C OH OW k k
    return np.einsum("nchwij,kcij->nkhw", win, w) + bias.reshape(1, -1, 1, 1)


def _np_requant(acc, b, c, bits):
    """Plain numpy: clamp(floor((acc * b + 2^(c-1)) / 2^c), 0, 2^bits - 1) per channel."""
    sh = (1, -1, 1, 1)
    b, c, hi = b.reshape(sh), c.reshape(sh), ((1 << bits) - 1).reshape(sh)
    y = (acc * b + np.where(c > 0, 1 << np.maximum(c - 1, 0), 0)) >> c
    return np.clip(y, 0, hi)


def test_quantisation_against_numpy(net, seed):
    """Random activation blocks on conv1 and conv2 of the digits CNN, quantised by hand:
    each output block's multiplier is its own scale (the layer's at its largest bits B,
    times 2^(B - b)); each block's integers are the rounded real accumulator on that grid
    within its b bits; the reader (conv2 through pool1, fc through pool2) multiplies each
    input channel shifted left by its k."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    W = net.weights
    entries, blocks = {}, {}
    for name, k in (("conv1", 8), ("conv2", 16)):
        n = int(rng.choice([d for d in (2, 4, 8) if k % d == 0]))
        blocks[name] = rng.integers(2, 9, n).tolist()
        wb = int(rng.integers(4, 9))
        entries[name] = {"w_bits": wb, "a_bits": max(blocks[name]), "blocks": [wb],
                         "a_blocks": blocks[name]}
    entries["fc"] = {"w_bits": 8, "a_bits": 8, "blocks": [8]}
    q = quantize(net, Plan("ab", 8, entries))
    ql = {x.name: x for x in q.layers}
    x, _ = net.test_set()
    xi = q.quantize_input(x[:8])
    env = forward(q, xi)
    s_in = float(W["input.act_max"]) / 255
    x_in = xi
    for name, pad_from in (("conv1", None), ("conv2", "pool1")):
        lay = ql[name]
        if pad_from is not None:      # the reader: each input channel on the common grid
            prev = ql[pad_from]
            x_in = env[pad_from] << prev.out_shift.reshape(1, -1, 1, 1)
            assert np.array_equal(lay.in_shift, prev.out_shift)
        K, B = lay.layer.out_channels, max(blocks[name])
        bits = np.repeat(blocks[name], K // len(blocks[name]))
        k = B - bits
        w = W[f"{name}.weight"].astype(np.float64)
        s_w = np.abs(w.reshape(K, -1)).max(axis=1) / (2 ** (entries[name]["w_bits"] - 1) - 1)
        s_b = float(W[f"{name}.act_max"]) / (2 ** B - 1)
        ratio = s_in * s_w / (s_b * 2.0 ** k)            # acc -> the block's integers
        assert np.all(np.abs(lay.b - ratio * 2.0 ** lay.c) <= 1), name
        acc = _np_conv(x_in, lay.w, lay.bias, 1)
        want = _np_requant(acc, lay.b, lay.c, bits)
        assert np.array_equal(env[name], want), name
        assert np.all(env[name] <= ((1 << bits) - 1).reshape(1, -1, 1, 1))
        real = acc * (s_in * s_w).reshape(1, -1, 1, 1)    # the accumulator's real value
        grid = (s_b * 2.0 ** k).reshape(1, -1, 1, 1)
        ideal = np.clip(np.round(real / grid), 0, ((1 << bits) - 1).reshape(1, -1, 1, 1))
        assert np.abs(env[name] - ideal).max() <= 1
        assert np.mean(env[name] == ideal) > 0.99, name
        assert np.array_equal(lay.out_ch_bits, bits) and np.array_equal(lay.out_shift, k)
        s_in = s_b                    # the next layer reads this grid (through max pooling)
    assert np.array_equal(ql["fc"].in_shift, ql["pool2"].out_shift)
    assert len(ql["fc"].in_shift) == 16 and ql["fc"].out_ch_bits is None


@pytest.mark.parametrize("model, entry, field, message", [
    ("digits", {"conv1": {"w_bits": 8, "a_bits": 8, "a_blocks": [8, 4, 4]}},
     "layers.conv1.a_blocks", "expected a list of activation bits whose length divides 8 "
                              "(the output channels), got 3 entries"),
    ("digits", {"conv1": {"w_bits": 8, "a_bits": 8, "a_blocks": [6, 4]}},
     "layers.conv1.a_bits", "expected 6 (the largest of a_blocks [6, 4]), got 8"),
    ("digits", {"conv1": {"w_bits": 8, "a_bits": 8, "a_blocks": [8, 1]}},
     "layers.conv1.a_blocks[1]", "must be in [2, 16], got 1"),
    ("digits", {"fc": {"w_bits": 8, "a_bits": 8, "a_blocks": [8, 4]}},
     "layers.fc.a_blocks", "expected no a_blocks here: the network's output is this "
                           "layer's"),
    ("digits_res", {"conv1": {"w_bits": 8, "a_bits": 8, "a_blocks": [8, 4]}},
     "layers.conv1.a_blocks", "expected no a_blocks here: 'b1add' (add) reads this layer's "
                              "output"),
])
def test_plan_refuses_what_cannot_be_read(tmp_path, model, entry, field, message):
    net = load_network(ROOT / "models" / model / "network.yaml")
    base = yaml.safe_load((ROOT / "models" / model / "int8.yaml").read_text())
    base["layers"].update(entry)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(NetworkError) as exc:
        load_plan(path, net)
    assert str(exc.value).startswith(f"{path}: {field}: {message}"), str(exc.value)


def test_quantize_refuses_blocks_an_add_reads():
    """quantize() itself (a Plan built in code skips the schema) names the reader, and
    refuses blocks on the network's output."""
    net = load_network(DIGITS_RES / "network.yaml")
    plan = load_plan(DIGITS_RES / "int8.yaml", net)
    plan.layers["conv1"] = {**plan.layers["conv1"], "a_blocks": [8, 4]}
    with pytest.raises(NetworkError, match="b1add: an add layer cannot read activation blocks"):
        quantize(net, plan)
    digits = load_network(DIGITS / "network.yaml")
    plan = load_plan(DIGITS / "int8.yaml", digits)
    plan.layers["fc"] = {**plan.layers["fc"], "a_blocks": [8, 4]}
    with pytest.raises(NetworkError, match="fc: the network's output cannot have activation"):
        quantize(digits, plan)


def test_digits_plan_runs_bit_exact_and_is_cheaper(net):
    """models/digits/act_blocks.yaml, one image, on the golden system with every weighted
    layer forced to pos and to chan: bit-exact, counted
    = predicted cycles and activity (run_network's checks); the readers of blocks (conv2,
    fc) cost fewer cycles than under the same plan without a_blocks."""
    cfg = load_config(CONFIG_DIR / "default.yaml")
    plan = load_plan(DIGITS / "act_blocks.yaml", net)
    flat = Plan("flat", plan.input_bits, {n: {k: v for k, v in e.items() if k != "a_blocks"}
                                          for n, e in plan.layers.items()})
    q, qf = quantize(net, plan), quantize(net, flat)
    x, _ = net.test_set()
    xi = q.quantize_input(x[:1])
    for flow in ("pos", "chan"):       # (the scheduler's own choice: conv1 pos, the rest chan)
        flows = dict.fromkeys(("conv1", "conv2", "fc"), flow)
        rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True), dataflow=flows)
        for lay in rep.layers:
            assert lay.bit_exact and lay.counted == lay.predicted, (flow, lay.name)
            assert lay.activity_counted in (None, lay.activity), (flow, lay.name)
        base = {lay.name: lay.predicted for lay in predict_network(qf, 1, cfg,
                                                                   dataflow=flows).layers}
        got = {lay.name: lay.predicted for lay in rep.layers}
        print(flow, got, base)
        assert got["conv2"] < base["conv2"] and got["fc"] < base["fc"]


# a grouped conv reading activation blocks, then max pooling, a flatten and an fc
GROUPED = {
    "name": "act_blocks_graph",
    "input": {"channels": 3, "height": 8, "width": 8},
    "weights": "weights.npz",
    "layers": [
        {"name": "stem", "type": "conv", "out_channels": 8, "kernel": 3, "pad": 1, "relu": True},
        {"name": "g", "type": "conv", "out_channels": 8, "kernel": 3, "pad": 1, "groups": 2,
         "relu": True},
        {"name": "pool", "type": "maxpool", "kernel": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "fc", "out_features": 5},
    ],
}


def test_grouped_conv_flatten_and_staged_groups(tmp_path, seed):
    """Blocks read by a grouped conv (chan), and through max pooling and a flatten by an fc
    (pos), on MAPs that hold a fraction of a pass's field (taps staged in groups): bit-exact
    and counted = predicted; the fc sees each flattened input at its channel's width."""
    print(f"seed {seed}")
    net, x = make_graph(tmp_path, seed, GROUPED)
    plan = Plan("g", 8, {"stem": {"w_bits": 6, "a_bits": 6, "blocks": [6],
                                  "a_blocks": [3, 6, 5, 6]},
                         "g": {"w_bits": 8, "a_bits": 8, "blocks": [8], "a_blocks": [8, 4]},
                         "fc": {"w_bits": 8, "a_bits": 8, "blocks": [8]}})
    q = quantize(net, plan)
    fc = q.layers[-1]
    assert fc.in_shift is not None and len(fc.in_shift) == 8 * 4 * 4
    assert sorted(set(fc.in_ch_bits.tolist())) == [4, 8]
    cfg = config_from_dict(SMALL_MAPS)
    xi = q.quantize_input(x[:1])
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True),
                      dataflow={"stem": "pos", "g": "chan", "fc": "pos"})
    for lay in rep.layers:
        assert lay.bit_exact and lay.counted == lay.predicted, lay.name


def test_planner_act_block_knobs(tmp_path):
    """--act-blocks 2: one activation knob per output-channel block where the readers
    allow it (digits: conv1, conv2; not fc, the output; the residual net: not the layers
    an add reads); a setting round-trips through the plan file; the all-8 setting is
    INT8's integer network; lowering a layer's output as a whole caps every block."""
    net = load_network(DIGITS / "network.yaml")
    ks = P.knobs(net, None, 2)
    assert [k for k in ks if k[1].startswith("a_bits")] == [
        ("conv1", "a_bits[0]"), ("conv1", "a_bits[1]"), ("conv2", "a_bits[0]"),
        ("conv2", "a_bits[1]"), ("fc", "a_bits")]
    res = load_network(DIGITS_RES / "network.yaml")
    assert {lay.name: P.layer_act_blocks(lay, 4, res) for lay in res.layers
            if lay.type in ("conv", "fc")} == {"conv1": 1, "b1c1": 4, "b1c2": 1, "b2c1": 4,
                                               "b2c2": 1, "b2proj": 1, "fc": 1}
    bits = P.uniform(net, 8, act=2)
    bits.update({("conv1", "a_bits[1]"): 4, ("conv2", "a_bits[0]"): 6})
    plan = P.plan_of(net, bits)
    assert plan.layers["conv1"] == {"w_bits": 8, "a_bits": 8, "blocks": [8],
                                    "a_blocks": [8, 4]}
    path = tmp_path / "a.yaml"
    path.write_text(P.plan_yaml(net, bits, "a", ["a header"]))
    assert load_plan(path, net).layers == plan.layers
    assert "conv1 w8/a[8,4]" in P.summary(bits)
    q8 = quantize(net, P.plan_of(net, P.uniform(net, 8)))
    qa = quantize(net, P.plan_of(net, P.uniform(net, 8, act=2)))
    for a, b in zip(q8.layers, qa.layers, strict=True):
        assert (a.b is None and b.b is None) or (np.array_equal(a.b, b.b)
                                                 and np.array_equal(a.c, b.c))
    cfg = load_config(CONFIG_DIR / "default.yaml")
    planner = P.Planner.__new__(P.Planner)          # moved() and value() need no state
    low = planner.moved(bits, ("conv1", "a_bits"), 6)
    assert (low[("conv1", "a_bits[0]")], low[("conv1", "a_bits[1]")]) == (6, 4)
    assert planner.value(bits, ("conv2", "a_bits")) == 8
    # the planner's per-layer costs (cached by the input's channel widths) add up to the
    # whole network's evaluation
    point = find_tech().point()
    costs = P.CostModel(net, cfg, point)
    qn = quantize(net, plan)
    tot = costs.total(costs.layer_costs(qn))
    whole = _whole(qn, cfg, point)
    assert tot.latency_cycles == whole.total["latency_cycles"]
    assert tot.energy_j == pytest.approx(whole.total["energy_j"], rel=1e-12)


def test_cli_plan_act_blocks(tmp_path, capsys):
    """`bfimna plan --act-blocks 2` (widths 4 and 8, 16 calibration images) writes a plan
    whose independently evaluated EDP meets the budget; a bad N exits 2."""
    out = tmp_path / "ab.yaml"
    code, stdout, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                            "edp=0.4", "--act-blocks", 2, "--bits", 4, "--calib-images", 16,
                            "--out", out, "--no-progress")
    assert code == 0, err
    text = out.read_text()
    assert "--act-blocks 2" in text and "activation bits per block" in text
    net = load_network(DIGITS / "network.yaml")
    plan = load_plan(out, net)
    assert "a_blocks" in plan.layers["conv1"] and "a_blocks" not in plan.layers["fc"]
    cfg, point = load_config(CONFIG_DIR / "default.yaml"), find_tech().point()
    ev = _whole(quantize(net, plan), cfg, point)
    ev8 = _whole(quantize(net, load_plan(DIGITS / "int8.yaml", net)), cfg, point)
    assert ev.total["edp_js"] <= 0.4 * ev8.total["edp_js"]
    code, _, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                       "edp=0.5", "--act-blocks", 1, "--out", tmp_path / "p.yaml")
    assert code == 2 and "--act-blocks" in err and not (tmp_path / "p.yaml").exists()
