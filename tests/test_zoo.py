"""The model zoo (models/zoo/, scripts/make_zoo.py): every network and plan loads and
quantizes, the synthetic weights are deterministic, the calibration is what calibrate()
gives (checked on ResNet18 at 64x64: at 224 the float forward is too slow for a fast test),
the HAWQ-V3 ResNet18 plans hold the bits of HAWQ's bit_config.py, and the README's MAC and
parameter counts are the builder's and match the published figures."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import yaml

from bfimna.golden.nn.network import (
    WEIGHTED,
    calibrate,
    load_network,
    load_plan,
    quantize,
    reference,
    synthetic_weights,
)

from conftest import ROOT

ZOO = ROOT / "models" / "zoo"


def _make_zoo():
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "scripts" / "make_zoo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mz = _make_zoo()
PLANS = {"resnet18": ["int8", "int4", *mz.HAWQ_PLANS], "resnet50": ["int8", "int4"],
         "alexnet": ["int8", "int4"], "vgg16": ["int8", "int4"]}


@pytest.fixture(scope="module")
def nets():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_network(ZOO / name / "network.yaml")
        return cache[name]
    yield get
    cache.clear()


def test_zoo_folders_hold_the_models_and_plans():
    assert sorted(p.name for p in ZOO.iterdir() if p.is_dir()) == sorted(mz.MODELS)
    for name in mz.MODELS:
        assert sorted(p.stem for p in (ZOO / name).glob("*.yaml")) == \
            sorted(["network", *PLANS[name]])
        assert not list((ZOO / name).glob("*.npz"))          # only YAML in git
        text = (ZOO / name / "network.yaml").read_text()
        assert "SYNTHETIC weights" in text and f"python scripts/make_zoo.py --only {name}" in text
        d = yaml.safe_load(text)
        assert "weights" not in d and "dataset" not in d
        assert d["layers"] == mz.layers(name)                # the builder's topology


@pytest.mark.parametrize("name", mz.MODELS)
def test_every_network_and_plan_loads_and_quantizes(nets, name):
    net = nets(name)
    assert net.input_shape == (3, 224, 224) and net.layers[-1].out_shape == (1000, 1, 1)
    weighted = {lay.name for lay in net.layers if lay.type in WEIGHTED}
    for pname in PLANS[name]:
        plan = load_plan(ZOO / name / f"{pname}.yaml", net)
        assert {k for k, e in plan.layers.items() if "w_bits" in e} == weighted
        q = quantize(net, plan)
        assert max(ql.acc_bits for ql in q.layers) <= 30, pname
        first, last = q.layers[0], q.layers[-1]
        assert set(first.w_bits) == {8} and set(last.w_bits) == {8} and last.out_bits == 8
        if pname in ("int8", "int4"):
            bits = int(pname[3:])
            mid = [ql for ql in q.layers[1:-1] if ql.layer.type in WEIGHTED]
            assert all(set(ql.w_bits) == {bits} and ql.out_bits == bits for ql in mid)


def test_synthetic_weights_are_deterministic(nets):
    a = nets("resnet18")
    b = load_network(ZOO / "resnet18" / "network.yaml")
    assert a.weights.keys() == b.weights.keys()
    for k in a.weights:
        assert a.weights[k].dtype == np.float32 and np.array_equal(a.weights[k], b.weights[k]), k
    again = synthetic_weights(a.layers, 0)
    assert all(np.array_equal(again[k], a.weights[k]) for k in again)
    other = synthetic_weights(a.layers, 1)
    assert not np.array_equal(other["stem.weight"], a.weights["stem.weight"])
    w = a.weights["s4u2c1.weight"]                             # He: std sqrt(2 / fan_in)
    assert abs(w.std() / np.sqrt(2 / (512 * 9)) - 1) < 0.01


def test_shipped_act_max_is_a_calibration(nets):
    """The YAML's act_max covers the input and every conv, fc and add layer, and is the
    loaded network's (rounded to 6 digits); the input's is that of uniform [0, 1) images."""
    for name in mz.MODELS:
        d = yaml.safe_load((ZOO / name / "network.yaml").read_text())
        am = d["synthetic_weights"]["act_max"]
        want = ["input"] + [e["name"] for e in d["layers"] if e["type"] in ("add", *WEIGHTED)]
        assert list(am) == want
        assert 0.99 < am["input"] < 1 and all(v > 0 for v in am.values())
        assert float(f"{am['input']:.6g}") == am["input"]
    net = nets("resnet18")
    assert float(net.weights["s4u2add.act_max"]) == pytest.approx(
        yaml.safe_load((ZOO / "resnet18" / "network.yaml").read_text())
        ["synthetic_weights"]["act_max"]["s4u2add"], rel=1e-6)


def test_calibration_at_reduced_input(tmp_path):
    """ResNet18 built at 64x64 by the script: its act_max are calibrate()'s on the same
    seeded synthetic images, and it quantizes (int8, int4, a HAWQ plan) and runs."""
    lays = mz.layers("resnet18")
    text, am = mz.calibrated("resnet18", lays, 0, 2, size=64)
    p = tmp_path / "network.yaml"
    p.write_text(text)
    net = load_network(p)
    assert net.input_shape == (3, 64, 64) and net.layers[-3].out_shape == (512, 2, 2)
    x = mz.calib_images(2, 0, 64)
    direct = calibrate(net, x)                        # both images at once
    assert set(direct) == {f"{k}.act_max" for k in am}
    for k, v in am.items():
        assert v == pytest.approx(direct[f"{k}.act_max"], rel=1e-5), k
    for pname, ptext in mz.plans("resnet18", lays).items():
        if pname not in ("int8", "int4", "latency_0.5"):
            continue
        (tmp_path / f"{pname}.yaml").write_text(ptext)
        q = quantize(net, load_plan(tmp_path / f"{pname}.yaml", net))
        outs = reference(q, q.quantize_input(x[:1]))
        assert outs[-1].reshape(-1).shape == (1000,)
        for ql, y in zip(q.layers, outs, strict=True):
            assert ql.lo <= y.min() and y.max() <= ql.hi, (pname, ql.name)
        assert outs[-1].std() > 0                     # the logits are not all one value


# /tmp/spec/zoo.md (HAWQ bit_config.py): per unit act, c1, act1, c2 [id]
HAWQ_SPEC = {
    "latency_0.75": "s1u1 8,8,8,8 | s1u2 8,8,8,8 | s2u1 8,8,8,8 id8 | s2u2 8,8,4,4 | "
                    "s3u1 8,8,8,8 id8 | s3u2 8,8,4,4 | s4u1 8,8,4,4 id8 | s4u2 8,8,4,4",
    "latency_0.5": "s1u1 8,8,8,8 | s1u2 8,8,8,8 | s2u1 8,8,4,4 id8 | s2u2 8,8,4,4 | "
                   "s3u1 8,8,8,8 id8 | s3u2 4,4,4,4 | s4u1 8,8,4,4 id8 | s4u2 4,4,4,4",
    "latency_0.25": "s1u1 8,8,8,8 | s1u2 8,8,4,4 | s2u1 8,8,4,4 id8 | s2u2 4,4,4,4 | "
                    "s3u1 4,4,4,4 id4 | s3u2 4,4,4,4 | s4u1 4,4,4,4 id4 | s4u2 4,4,4,4",
    "uniform8": "s1u1 8,8,8,8 | s1u2 8,8,8,8 | s2u1 8,8,8,8 id8 | s2u2 8,8,8,8 | "
                "s3u1 8,8,8,8 id8 | s3u2 8,8,8,8 | s4u1 8,8,8,8 id8 | s4u2 8,8,8,8",
    "uniform4": "s1u1 4,4,4,4 | s1u2 4,4,4,4 | s2u1 4,4,4,4 id4 | s2u2 4,4,4,4 | "
                "s3u1 4,4,4,4 id4 | s3u2 4,4,4,4 | s4u1 4,4,4,4 id4 | s4u2 4,4,4,4",
}
TOP1 = {"uniform8": "71.56", "latency_0.75": "70.40", "latency_0.5": "70.34",
        "latency_0.25": "68.56", "uniform4": "68.45"}


def _expected_hawq(spec: str) -> dict:
    units = []
    for part in spec.split("|"):
        m = re.fullmatch(r"\s*(s\du\d) (\d),(\d),(\d),(\d)(?: id(\d))?\s*", part)
        assert m is not None, part
        units.append((m[1], *(int(v) if v else None for v in m.groups()[1:])))
    out = {"stem": {"w_bits": 8, "a_bits": units[0][1]}}
    for i, (u, _act, c1, act1, c2, ident) in enumerate(units):
        out[f"{u}c1"] = {"w_bits": c1, "a_bits": act1}
        out[f"{u}c2"] = {"w_bits": c2, "a_bits": 16}
        if ident:
            out[f"{u}ds"] = {"w_bits": ident, "a_bits": 16}
        out[f"{u}add"] = {"a_bits": units[i + 1][1] if i + 1 < len(units) else 8}
    out["fc"] = {"w_bits": 8, "a_bits": 8}
    return out


@pytest.mark.parametrize("key", mz.HAWQ_PLANS)
def test_hawq_plans_follow_bit_config(key):
    text = (ZOO / "resnet18" / f"{key}.yaml").read_text()
    d = yaml.safe_load(text)
    assert d["name"] == key and d["input_bits"] == 8
    assert d["layers"] == _expected_hawq(HAWQ_SPEC[key])
    convs = {e["name"] for e in mz.layers("resnet18") if e["type"] in WEIGHTED}
    assert {k for k, e in d["layers"].items() if "w_bits" in e} == convs
    assert f"bit_config_resnet18_{key}" in text and f"{TOP1[key]}%" in text
    assert "model_zoo.md" in text and "github.com/Zhen-Dong/HAWQ" in text


def test_hawq_plans_differ_where_the_spec_says():
    p = {k: yaml.safe_load((ZOO / "resnet18" / f"{k}.yaml").read_text())["layers"]
         for k in mz.HAWQ_PLANS}
    assert p["latency_0.25"]["s3u1c1"]["w_bits"] == 4 and p["uniform8"]["s3u1c1"]["w_bits"] == 8
    assert p["latency_0.25"]["s3u1ds"]["w_bits"] == 4 and p["latency_0.5"]["s3u1ds"]["w_bits"] == 8
    assert p["latency_0.75"]["s2u2c1"] == {"w_bits": 8, "a_bits": 4}
    assert p["latency_0.5"]["s3u1add"] == {"a_bits": 4}                # s3u2's input: 4 bits
    assert p["uniform4"]["stem"] == {"w_bits": 8, "a_bits": 4}         # s1u1's input: 4 bits
    assert p["uniform4"]["s4u2add"] == {"a_bits": 8}                   # quant_act_output
    keys = list(p)
    assert all(p[a] != p[b] for i, a in enumerate(keys) for b in keys[i + 1:])


PUBLISHED_GMACS = {"resnet18": 1.81, "resnet50": 4.09, "alexnet": 0.71, "vgg16": 15.5}
PUBLISHED_MPARAMS = {"resnet18": 11.69, "resnet50": 25.56, "alexnet": 61.10, "vgg16": 138.36}


def test_readme_counts_are_the_builders(nets):
    readme = (ZOO / "README.md").read_text()
    assert "SYNTHETIC" in readme and "python scripts/make_zoo.py" in readme
    for name in mz.MODELS:
        s = mz.stats(nets(name))
        assert s["macs"] / 1e9 == pytest.approx(PUBLISHED_GMACS[name], rel=0.02), name
        assert s["params"] / 1e6 == pytest.approx(PUBLISHED_MPARAMS[name], rel=0.01), name
        row = next(line for line in readme.splitlines() if f"(`{name}/`)" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:4] == [str(s["layers"]), str(s["conv"]), str(s["fc"])], name
        assert f"({s['macs']:,})" in cells[4] and f"({s['params']:,})" in cells[5], name
        assert all(f"`{p}`" in cells[6] for p in PLANS[name]), name
    for key, top1 in TOP1.items():
        assert f"| `{key}.yaml` | `bit_config_resnet18_{key}` | {top1} |" in readme
