"""Network and plan files (golden/nn/network.py): validation messages, the shipped digits
model and its plans, and the integer network against the float model."""

import re

import numpy as np
import pytest
import yaml

from bfimna.golden.nn.network import NetworkError, load_network, load_plan, predict, quantize

from conftest import ROOT

DIGITS = ROOT / "models" / "digits"


@pytest.fixture(scope="module")
def net():
    return load_network(DIGITS / "network.yaml")


def test_shipped_model_and_plans(net):
    x, y = net.test_set()
    assert [lay.name for lay in net.layers] == ["conv1", "pool1", "conv2", "pool2", "fc"]
    assert net.layers[-1].out_shape == (10, 1, 1) and len(x) == len(y) == 360
    acc = {}
    for name in ("int8", "int4", "mixed"):
        q = quantize(net, load_plan(DIGITS / f"{name}.yaml", net))
        acc[name] = float(np.mean(predict(q, q.quantize_input(x)) == y))
        for ql in q.layers:
            if ql.w is not None:
                lim = [(1 << (b - 1)) - 1 for b in ql.w_bits]
                assert all(np.abs(ql.w[j]).max() <= lim[j] for j in range(len(lim)))
                assert ql.acc_bits <= 30 and (ql.b > 0).all() and (ql.b < 1 << 15).all()
    print(acc, "float", net.float_accuracy)
    assert acc["int8"] >= net.float_accuracy - 0.02
    assert acc["mixed"] >= net.float_accuracy - 0.03
    assert acc["int4"] >= 0.9
    mixed = quantize(net, load_plan(DIGITS / "mixed.yaml", net))
    assert sorted(set(mixed.layers[2].w_bits)) == [4, 8]      # per-block weight bits


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("change, message", [
    (lambda d: d["layers"][0].update(type="deconv"),
     "network.yaml: layers[0].type: must be one of 'conv', 'fc', 'maxpool', 'avgpool', 'gap', "
     "'add', 'concat', 'flatten', got 'deconv'"),
    (lambda d: d["layers"][0].update(kernel=0),
     "network.yaml: layers[0].kernel: must be in [1, 15], got 0"),
    (lambda d: d["layers"][2].update(out_channels=17),
     "weights.npz: conv2.weight: expected shape (17, 8, 3, 3) (layer conv2), got (16, 8, 3, 3)"),
    (lambda d: d["layers"][1].update(name="conv1"),
     "network.yaml: layers[1].name: must be unique, got 'conv1' (also layers[0].name)"),
    (lambda d: d.update(weights="nope.npz"),
     "network.yaml: weights: expected an existing .npz file, got 'nope.npz' ("),
    (lambda d: d["layers"][4].update(colour=1),
     "network.yaml: layers[4].colour: unknown field (known here: name, type, inputs, "
     "out_features, relu)"),
])
def test_bad_network_files_name_the_field(tmp_path, change, message):
    d = yaml.safe_load((DIGITS / "network.yaml").read_text())
    change(d)
    for f in ("weights.npz", "test.npz"):
        (tmp_path / f).write_bytes((DIGITS / f).read_bytes())
    with pytest.raises(NetworkError, match=re.escape(message)):
        load_network(_write(tmp_path, "network.yaml", d))


@pytest.mark.parametrize("plan, message", [
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 8}}}, "layers.conv2: missing"),
    ({"input_bits": 0, "layers": {}}, "input_bits: must be in [1, 16], got 0"),
    ({"input_bits": 8, "layers": {"conv9": {}}},
     "layers.conv9: unknown conv, fc or add layer (known here: conv1, conv2, fc)"),
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 9, "a_bits": 8}}}, "conv1.w_bits"),
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 8, "blocks": [8, 4, 4]}}},
     "blocks: expected a list"),
])
def test_bad_plans_name_the_field(net, tmp_path, plan, message):
    with pytest.raises(NetworkError, match=re.escape(message)):
        load_plan(_write(tmp_path, "plan.yaml", plan), net)


# -- one error form for every file kind: FILE: dotted.field: what was expected, got what ----
def _copy_digits(tmp_path, change=None, weights=None, dataset=None):
    """The digits model in tmp_path, its network.yaml changed by `change(d)`, its weights
    or dataset arrays replaced by `weights(w)` / `dataset(ds)`."""
    d = yaml.safe_load((DIGITS / "network.yaml").read_text())
    if change:
        change(d)
    w = dict(np.load(DIGITS / "weights.npz"))
    if weights:
        weights(w)
    np.savez(tmp_path / "weights.npz", **w)
    ds = dict(np.load(DIGITS / "test.npz"))
    if dataset:
        dataset(ds)
    np.savez(tmp_path / "test.npz", **ds)
    return _write(tmp_path, "network.yaml", d)


def _full_plan(**layers):
    bits = {"w_bits": 8, "a_bits": 8}
    return {"input_bits": 8, "layers": {n: dict(bits, **layers.get(n, {}))
                                        for n in ("conv1", "conv2", "fc")}}


def _fails(call, file, path, reason):
    """call() raises a NetworkError whose message is exactly `file: path: reason`."""
    with pytest.raises(NetworkError) as exc:
        call()
    assert str(exc.value) == f"{file}: {path}: {reason}"
    assert (exc.value.file, exc.value.path, exc.value.reason) == (str(file), path, reason)


@pytest.mark.parametrize("change, path, reason", [
    (lambda d: d["layers"][2].update(kernel="x"), "layers[2].kernel",
     "expected an integer in [1, 15], got str 'x'"),
    (lambda d: d["layers"][0].update(relu=1), "layers[0].relu",
     "expected true or false, got int 1"),
    (lambda d: d["layers"][3].update(kernel=5), "layers[3].kernel",
     "must fit the 4x4 input, got 5"),
    (lambda d: d["layers"][0].update(kernel=11, pad=1), "layers[0].kernel",
     "must fit the 8x8 input padded by 1, got 11"),
    (lambda d: d["layers"][2].pop("relu"), "layers[2].relu",
     "must be true: 'pool2' (maxpool) reads it and only add layers read signed activations, "
     "got false"),
    (lambda d: d["layers"][0].pop("name"), "layers[0].name", "missing field (the layer's name)"),
    (lambda d: d["layers"][1].pop("type"), "layers[1].type",
     "missing field (one of 'conv', 'fc', 'maxpool', 'avgpool', 'gap', 'add', 'concat', "
     "'flatten')"),
    (lambda d: d["layers"][1].update(groups=2), "layers[1].groups",
     "unknown field (known here: name, type, inputs, kernel, stride, pad)"),
    (lambda d: d["input"].update(depth=3), "input.depth",
     "unknown field (known here: channels, height, width)"),
    (lambda d: d["input"].update(height=0), "input.height", "must be in [1, 4096], got 0"),
    (lambda d: d.update(colour=1), "colour",
     "unknown field (known here: name, input, weights, synthetic_weights, dataset, "
     "float_accuracy, layers)"),
    (lambda d: d.pop("name"), "name", "missing field (the network's name)"),
    (lambda d: d.update(name=7), "name", "expected a non-empty string, got int 7"),
    (lambda d: d.update(float_accuracy="high"), "float_accuracy",
     "expected a number in [0, 1], got str 'high'"),
    (lambda d: d.update(layers=[]), "layers", "expected a non-empty list, got 0 entries"),
    (lambda d: d.update(layers={"conv1": 1}), "layers", "expected a non-empty list, got dict"),
    (lambda d: d["layers"].append(3), "layers[5]", "expected a mapping, got int 3"),
    (lambda d: d.update(weights=3), "weights", "expected a file name, got int 3"),
])
def test_network_errors_have_the_common_form(tmp_path, change, path, reason):
    p = _copy_digits(tmp_path, change)
    _fails(lambda: load_network(p), p, path, reason)


def test_missing_dataset_and_weights_files_are_named(tmp_path):
    p = _copy_digits(tmp_path, lambda d: d.update(dataset="gone.npz"))
    _fails(lambda: load_network(p), p, "dataset",
           f"expected an existing .npz file, got 'gone.npz' ({tmp_path / 'gone.npz'} not found)")
    p = _copy_digits(tmp_path, lambda d: d.update(dataset=None))   # `dataset:` = none
    net = load_network(p)
    assert net.dataset is None
    _fails(net.test_set, p, "dataset", "missing field (no test set)")
    with pytest.raises(NetworkError, match=r"nope\.yaml: network file not found"):
        load_network(tmp_path / "nope.yaml")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NetworkError, match=r"junk\.npz: not a readable \.npz"):
        load_network(_copy_digits(tmp_path, lambda d: d.update(weights="junk.npz")))


@pytest.mark.parametrize("weights, path, reason", [
    (lambda w: w.pop("conv2.bias"), "conv2.bias", "missing array (layer conv2)"),
    (lambda w: w.pop("input.act_max"), "input.act_max", "missing array (largest input value)"),
    (lambda w: w.update({"fc.weight": w["fc.weight"].reshape(10, 8, 8)}), "fc.weight",
     "expected shape (10, 64) (layer fc), got (10, 8, 8)"),
    (lambda w: w.update({"conv1.act_max": np.ones(8, np.float32)}), "conv1.act_max",
     "expected shape () (largest output of layer conv1), got (8,)"),
    (lambda w: w.update({"fc.bias": np.array(["a"] * 10)}), "fc.bias",
     "expected an array of numbers, got an array of dtype <U1"),
])
def test_weight_file_errors_have_the_common_form(tmp_path, weights, path, reason):
    p = _copy_digits(tmp_path, weights=weights)
    _fails(lambda: load_network(p), tmp_path / "weights.npz", path, reason)


@pytest.mark.parametrize("dataset, path, reason", [
    (lambda ds: ds.update(y=ds["y"][:-1]), "y",
     "expected shape (N,) with N = 360 (labels), got (359,)"),
    (lambda ds: ds.update(x=ds["x"][:, :, :7]), "x",
     "expected shape (N, 1, 8, 8) with N = 360 (images (N, C, H, W)), got (360, 1, 7, 8)"),
    (lambda ds: ds.update(y=ds["y"].astype(np.float32)), "y",
     "expected an array of ints, got an array of dtype float32"),
    (lambda ds: ds.pop("x"), "x", "missing array (images (N, C, H, W))"),
])
def test_dataset_file_errors_have_the_common_form(tmp_path, dataset, path, reason):
    net = load_network(_copy_digits(tmp_path, dataset=dataset))
    _fails(net.test_set, tmp_path / "test.npz", path, reason)


@pytest.mark.parametrize("plan, path, reason", [
    (_full_plan(conv1={"w_bits": 1}), "layers.conv1.w_bits", "must be in [2, 8], got 1"),
    (_full_plan(fc={"a_bits": "8"}), "layers.fc.a_bits",
     "expected an integer in [2, 16], got str '8'"),
    (_full_plan(conv2={"blocks": [8, 4, 4]}), "layers.conv2.blocks",
     "expected a list of weight bits whose length divides 16 (the output channels), "
     "got 3 entries"),
    (_full_plan(conv2={"blocks": []}), "layers.conv2.blocks",
     "expected a non-empty list, got 0 entries"),
    (_full_plan(conv2={"blocks": [8, 1]}), "layers.conv2.blocks[1]", "must be in [2, 8], got 1"),
    (_full_plan(conv2={"bits": 8}), "layers.conv2.bits",
     "unknown field (known here: w_bits, a_bits, blocks, a_blocks)"),
    ({**_full_plan(), "layers": {"conv1": {"w_bits": 8, "a_bits": 8}}}, "layers.conv2",
     "missing conv, fc or add layer (w_bits and a_bits)"),
    ({**_full_plan(), "layers": {**_full_plan()["layers"], "pool1": {}}}, "layers.pool1",
     "unknown conv, fc or add layer (known here: conv1, conv2, fc)"),
    ({**_full_plan(), "dataflow": {"fc": "rows"}}, "dataflow.fc",
     "must be one of 'pos', 'chan', got 'rows'"),
    ({**_full_plan(), "dataflow": {"pool2": "pos"}}, "dataflow.pool2",
     "unknown conv or fc layer (known here: conv1, conv2, fc)"),
    ({**_full_plan(), "input_bits": True}, "input_bits",
     "expected an integer in [1, 16], got bool True"),
    ({**_full_plan(), "precision": 8}, "precision",
     "unknown field (known here: name, input_bits, layers, dataflow)"),
    ({"layers": {}}, "input_bits", "missing field (bits of the quantised input)"),
    ([1, 2], "precision plan", "expected a mapping, got list"),
])
def test_plan_errors_have_the_common_form(net, tmp_path, plan, path, reason):
    p = _write(tmp_path, "plan.yaml", plan)
    _fails(lambda: load_plan(p, net), p, path, reason)


def test_plan_defaults_and_missing_file(net, tmp_path):
    p = _write(tmp_path, "p8.yaml", {**_full_plan(), "dataflow": None})
    plan = load_plan(p, net)
    assert plan.name == "p8" and plan.dataflow == {}
    assert plan.layers["conv2"] == {"w_bits": 8, "a_bits": 8, "blocks": [8]}
    with pytest.raises(NetworkError, match=r"nope\.yaml: precision plan file not found"):
        load_plan(tmp_path / "nope.yaml", net)
    with pytest.raises(NetworkError, match=r"bad\.yaml: not valid YAML"):
        load_plan(_write_text(tmp_path, "bad.yaml", "layers: [a"), net)


def _write_text(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# -- block grids: output-channel x reduction blocks (docs/network.md, "Precision plan") -----
@pytest.mark.parametrize("plan, path, reason", [
    (_full_plan(conv2={"blocks": [[8, 4], [4]]}), "layers.conv2.blocks[1]",
     "expected 2 entries (as row 0: every row has one per reduction block), got 1"),
    (_full_plan(conv2={"blocks": [[8, 4], 4]}), "layers.conv2.blocks[1]",
     "expected a non-empty list of weight bits (a row of the grid), got int 4"),
    (_full_plan(conv2={"blocks": [[8, 4], []]}), "layers.conv2.blocks[1]",
     "expected a non-empty list of weight bits (a row of the grid), got an empty list"),
    (_full_plan(conv2={"blocks": [[8, 9]]}), "layers.conv2.blocks[0][1]",
     "must be in [2, 8], got 9"),
    (_full_plan(conv2={"blocks": [[8], [4], [4]]}), "layers.conv2.blocks",
     "expected a list of grid rows whose length divides 16 (the output channels), "
     "got 3 entries"),
    (_full_plan(conv2={"blocks": [[8, 4, 4, 4, 4]]}), "layers.conv2.blocks[0]",
     "expected rows whose length divides 72 (the reduction: 8 input channels x 3x3 taps), "
     "got 5 entries"),
    (_full_plan(fc={"blocks": [[8, 4, 4]]}), "layers.fc.blocks[0]",
     "expected rows whose length divides 64 (the reduction: 64 inputs), got 3 entries"),
    (_full_plan(fc={"blocks": "8"}), "layers.fc.blocks",
     "expected a non-empty list, got str '8'"),
])
def test_block_grid_errors_have_the_common_form(net, tmp_path, plan, path, reason):
    p = _write(tmp_path, "plan.yaml", plan)
    _fails(lambda: load_plan(p, net), p, path, reason)


def _numpy_blocks(w, grid, s_w):
    """The block-grid rule of docs/network.md written out independently: per block, the
    shift k = clamp(ceil(log2(top / m)), 0, floor(log2(qmax / m))) with top its largest
    |w| / s_w, m = 2^(b-1) - 1; blocks at the row's full bits are plain round(w / s_w)."""
    K = w.shape[0]
    rows, cols = len(grid), len(grid[0])
    out = np.empty(w.shape, dtype=np.int64).reshape(K, -1)
    flat = w.reshape(K, -1)
    n = flat.shape[1] // cols
    for j in range(K):
        bits = grid[j * rows // K]
        full = max(bits)
        for i in range(cols):
            v = flat[j, i * n:(i + 1) * n] / s_w[j]
            m, qmax = 2 ** (bits[i] - 1) - 1, 2 ** (full - 1) - 1
            if bits[i] == full:
                out[j, i * n:(i + 1) * n] = np.round(v)
                continue
            top = np.abs(v).max()
            k = 0 if top <= m else int(np.ceil(np.log2(top / m) - 1e-12))
            k = min(k, int(np.floor(np.log2(qmax / m))))
            out[j, i * n:(i + 1) * n] = np.clip(np.round(v / 2.0 ** k), -m, m) * 2 ** k
    return out.reshape(w.shape)


def test_block_grid_quantisation_against_numpy(net, seed):
    """Random grids on every weighted layer of the digits CNN: integer weights equal the
    plain re-implementation; each block is a multiple of its 2^k with at most its bits;
    all stay in the channel's full-bit range; a one-column grid equals the flat list."""
    from bfimna.golden.nn.network import Plan, reduction_len
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layers, grids = {}, {}
    for lay in net.layers:
        if lay.type not in ("conv", "fc"):
            continue
        rows = int(rng.choice([r for r in (1, 2, 4) if lay.out_channels % r == 0]))
        cols = int(rng.choice([c for c in (1, 2, 3, 4) if reduction_len(lay) % c == 0]))
        grids[lay.name] = rng.integers(2, 9, (rows, cols)).tolist()
        layers[lay.name] = {"w_bits": 8, "a_bits": 8, "blocks": grids[lay.name]}
    q = quantize(net, Plan("grid", 8, layers))
    for ql in q.layers:
        if ql.name not in grids:
            continue
        grid, w = grids[ql.name], net.weights[f"{ql.name}.weight"].astype(np.float64)
        K = w.shape[0]
        full = np.array([max(grid[j * len(grid) // K]) for j in range(K)])
        s_w = np.abs(w.reshape(K, -1)).max(axis=1) / (2.0 ** (full - 1) - 1)
        want = _numpy_blocks(w, grid, s_w)
        assert np.array_equal(ql.w, want), (ql.name, grid)
        assert ql.w_grid == grid and list(ql.w_bits) == full.tolist()
        flat = ql.w.reshape(K, -1)
        n = flat.shape[1] // len(grid[0])
        for j in range(K):
            assert np.abs(flat[j]).max() <= 2 ** (full[j] - 1) - 1
            for i, b in enumerate(grid[j * len(grid) // K]):
                blk, k = flat[j, i * n:(i + 1) * n], int(ql.w_shift[j, i])
                assert np.all(blk % (1 << k) == 0) and np.abs(blk >> k).max() <= 2 ** (b - 1) - 1
        assert acc_fits(ql)
    one = {n: {**e, "blocks": [r[0] for r in e["blocks"]]} for n, e in layers.items()}
    col = {n: {**e, "blocks": [[r[0]] for r in e["blocks"]]} for n, e in layers.items()}
    a, b = quantize(net, Plan("a", 8, one)), quantize(net, Plan("b", 8, col))
    for qa, qb in zip(a.layers, b.layers, strict=True):
        assert (qa.w is None and qb.w is None) or np.array_equal(qa.w, qb.w)


def acc_fits(ql):
    """The accumulator bound holds for the block weights (worst-case input)."""
    x_max = (1 << ql.in_bits) - 1
    bound = np.abs(ql.w.reshape(len(ql.w), -1)).sum(axis=1) * x_max + np.abs(ql.bias)
    return int(bound.max()).bit_length() + 1 <= ql.acc_bits


def test_block_grid_plan_runs_bit_exact_and_is_cheaper(net):
    """models/digits/blocks.yaml on the golden backend: bit-exact, counted = predicted
    cycles (run_network's checks), and cheaper than INT8 in predicted cycles; with every
    weighted layer forced to `pos` (MAC immediates: cost per CSD digit), every one is."""
    from bfimna.cosim.drivers.backends import backend
    from bfimna.golden.spec.config import load_config
    from bfimna.sched.run import predict_network, run_network
    cfg = load_config(ROOT / "configs" / "default.yaml")
    grid = load_plan(DIGITS / "blocks.yaml", net)
    int8 = load_plan(DIGITS / "int8.yaml", net)
    qg = quantize(net, grid)
    x, y = net.test_set()
    xi = qg.quantize_input(x[:2])
    rep = run_network(qg, xi, cfg, backend("golden", cfg, fast=True))
    assert all(lay.bit_exact for lay in rep.layers)
    assert all(lay.counted == lay.predicted for lay in rep.layers)
    cost = {}
    for flows in (None, {"conv1": "pos", "conv2": "pos", "fc": "pos"}):
        for name, plan in (("grid", grid), ("int8", int8)):
            pred = predict_network(quantize(net, plan), 1, cfg, dataflow=flows)
            cost[name] = {lay.name: lay.predicted for lay in pred.layers}
        print(flows, cost)
        assert sum(cost["grid"].values()) < sum(cost["int8"].values())
        if flows:
            assert all(cost["grid"][n] < cost["int8"][n] for n in flows)
