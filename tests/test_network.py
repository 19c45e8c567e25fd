"""Network and plan files (golden/nn/network.py): validation messages, the shipped digits
model and its plans, and the integer network against the float model."""

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
    assert [l.name for l in net.layers] == ["conv1", "pool1", "conv2", "pool2", "fc"]
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
    (lambda d: d["layers"][0].update(type="deconv"), "layers[0] (conv1).type: must be one of"),
    (lambda d: d["layers"][0].update(kernel=0), "layers[0] (conv1).kernel: expected an integer"),
    (lambda d: d["layers"][2].update(out_channels=17), "conv2.weight has shape"),
    (lambda d: d["layers"][1].update(name="conv1"), "layers[1].name: missing or repeated"),
    (lambda d: d.update(weights="nope.npz"), "weights:"),
    (lambda d: d["layers"][4].update(colour=1), "colour: unknown field"),
])
def test_bad_network_files_name_the_field(tmp_path, change, message):
    d = yaml.safe_load((DIGITS / "network.yaml").read_text())
    change(d)
    for f in ("weights.npz", "test.npz"):
        (tmp_path / f).write_bytes((DIGITS / f).read_bytes())
    with pytest.raises(NetworkError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_network(_write(tmp_path, "network.yaml", d))


@pytest.mark.parametrize("plan, message", [
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 8}}}, "layers.conv2: missing"),
    ({"input_bits": 0, "layers": {}}, "input_bits: expected an integer in"),
    ({"input_bits": 8, "layers": {"conv9": {}}}, "layers.conv9: no conv or fc layer"),
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 9, "a_bits": 8}}}, "conv1.w_bits"),
    ({"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 8, "blocks": [8, 4, 4]}}},
     "blocks: expected a list"),
])
def test_bad_plans_name_the_field(net, tmp_path, plan, message):
    with pytest.raises(NetworkError, match=message):
        load_plan(_write(tmp_path, "plan.yaml", plan), net)
