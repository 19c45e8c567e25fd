"""`bfimna plan` (sched/planner.py, docs/planner.md): per-layer costs add up to the
whole-network evaluation; the written plan loads, quantises and meets its budget under an
independent predict_network + evaluate, with the cost its header states; tighter budgets
give cheaper plans; on digits, edp=0.5 keeps the accuracy near INT8's and at least INT4's;
an impossible budget exits 1 and bad input exits 2 with one line."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from bfimna.cli import main
from bfimna.golden.nn.network import load_network, load_plan, quantize
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.tech import find_tech
from bfimna.sched import planner as P
from bfimna.sched.evaluate import evaluate
from bfimna.sched.run import predict_network

from conftest import BFIMNA, CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"
DIGITS_RES = ROOT / "models" / "digits_res"
ACC_TOLERANCE = 0.02          # edp=0.5 on digits: test accuracy within 2 points of INT8's


def run(*args):
    return subprocess.run([*BFIMNA, *map(str, args)], capture_output=True, text=True)


def cli(capsys, *args) -> tuple[int, str, str]:
    """bfimna in this process (no interpreter start-up): exit status, stdout, stderr."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:            # argparse's errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def digits_planner():
    net = load_network(DIGITS / "network.yaml")
    cfg = load_config(CONFIG_DIR / "default.yaml")
    return P.Planner(net, cfg, find_tech().point(), P.calibration(net, None, 0).x)


def _whole(qnet, cfg, point, batch=1):
    return evaluate(predict_network(qnet, batch, cfg), cfg, point, batch)


@pytest.mark.parametrize("model,plans,tech,batch", [
    (DIGITS, ("int8", "int4", "mixed"), "sram_cam", 1),
    (DIGITS_RES, ("int8", "mixed"), "reram_2t2r_cam", 2),     # writes stall on ReRAM
])
def test_cost_is_additive_over_layers(model, plans, tech, batch):
    """The planner costs each layer on its own (cached); their sum is the evaluation of
    the whole network's prediction: latency cycles exactly, energy to the last bits."""
    net = load_network(model / "network.yaml")
    cfg = load_config(CONFIG_DIR / "default.yaml")
    point = find_tech(tech).point()
    costs = P.CostModel(net, cfg, point, batch)
    for name in plans:
        q = quantize(net, load_plan(model / f"{name}.yaml", net))
        ev = _whole(q, cfg, point, batch)
        layers = costs.layer_costs(q)
        assert [lc.latency_cycles for lc in layers] == \
            [row["latency_cycles"] for row in ev.layers]
        for lc, row in zip(layers, ev.layers, strict=True):
            assert lc.energy_j == pytest.approx(row["energy_j"], rel=1e-12)
        c = costs.total(layers)
        assert c.latency_cycles == ev.total["latency_cycles"]
        assert c.latency_s == pytest.approx(ev.total["latency_s"], rel=1e-12)
        assert c.energy_j == pytest.approx(ev.total["energy_j"], rel=1e-12)
        assert c.edp_js == pytest.approx(ev.total["edp_js"], rel=1e-12)
    # a second pass is served from the cache
    n = costs.predicted
    costs.layer_costs(quantize(net, load_plan(model / "int8.yaml", net)))
    assert costs.predicted == n


def _header_cost(text: str) -> dict[str, tuple[float, float]]:
    out = {}
    for kind, unit in (("latency", "s"), ("energy", "J"), ("EDP", r"J\*s")):
        m = re.search(rf"^#   {kind} (\S+) {unit} \((\S+) x INT8\)$", text, re.M)
        assert m, f"no {kind} line in the header"
        out[kind] = (float(m[1]), float(m[2]))
    return out


def test_cli_plan_digits_edp_half(tmp_path, capsys):
    """The written plan loads and quantises; re-evaluated independently it meets the
    budget and costs what its header says; its test accuracy is within ACC_TOLERANCE of
    INT8's and at least INT4's."""
    out = tmp_path / "edp_0.5.yaml"
    code, stdout, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                            "edp=0.5", "--out", out, "--seed", 3, "--no-progress")
    assert code == 0, err
    assert "seed 3" in stdout and "budget edp <= 0.5 x INT8 met" in stdout
    assert re.search(r"^conv2 +conv +\d +\d +(pos|chan) ", stdout, re.M)   # the table
    text = out.read_text()
    for what in ("budget: edp <= 0.5 x INT8", "sensitivity (network): relative L2 error",
                 "calibration: the first 64 images of", "seed: 3", "sram_cam at 1.1 V"):
        assert what in text
    net = load_network(DIGITS / "network.yaml")
    plan = load_plan(out, net)
    q = quantize(net, plan)
    cfg = load_config(CONFIG_DIR / "default.yaml")
    point = find_tech().point()
    ev = _whole(q, cfg, point)
    ev8 = _whole(quantize(net, load_plan(DIGITS / "int8.yaml", net)), cfg, point)
    assert ev.total["edp_js"] <= 0.5 * ev8.total["edp_js"]
    head = _header_cost(text)
    for kind, key in (("latency", "latency_s"), ("energy", "energy_j"), ("EDP", "edp_js")):
        assert head[kind][0] == pytest.approx(ev.total[key], rel=1e-5)
        assert head[kind][1] == pytest.approx(ev.total[key] / ev8.total[key], abs=1e-4)
    x, y = net.test_set()
    acc = P.accuracy(q, x, y)
    acc8 = P.accuracy(quantize(net, load_plan(DIGITS / "int8.yaml", net)), x, y)
    acc4 = P.accuracy(quantize(net, load_plan(DIGITS / "int4.yaml", net)), x, y)
    assert acc >= acc8 - ACC_TOLERANCE and acc >= acc4, (acc, acc8, acc4)
    assert f"plan {acc:.4f}, INT8 {acc8:.4f}, INT4 {acc4:.4f}" in stdout


def test_int_references_are_the_shipped_plans():
    """The planner's INT8 and INT4 are models/digits/int8.yaml and int4.yaml."""
    net = load_network(DIGITS / "network.yaml")
    for bits, name in ((P.uniform(net, 8), "int8"), (P.int4_bits(net), "int4")):
        got, want = P.plan_of(net, bits), load_plan(DIGITS / f"{name}.yaml", net)
        assert (got.input_bits, got.layers) == (want.input_bits, want.layers)


def test_tighter_budget_cheaper(digits_planner):
    """Each plan meets its budget, and a tighter budget gives a cheaper (or equal) plan,
    for every kind of budget."""
    pl = digits_planner
    for kind, values in (("edp", (1.0, 0.7, 0.45)), ("latency", (0.9, 0.75)),
                         ("energy", (0.9, 0.7))):
        ref = pl.int8.cost.of(kind)
        prev = None
        for value in values:
            res = pl.search(P.Budget(kind, value))
            c = res.chosen.cost.of(kind)
            assert c <= value * ref
            if prev is not None:
                assert c <= prev, (kind, value)
            prev = c
    assert pl.search(P.Budget("edp", 1.0)).chosen is pl.int8       # INT8 meets it already


def test_search_is_deterministic(digits_planner):
    """Two planners (fresh caches) choose the same plan."""
    pl = digits_planner
    b = P.Budget("edp", 0.5)
    plans = [P.Planner(pl.net, pl.costs.cfg, pl.costs.point, pl.sens.x[:16], bits=(4, 6))
             .search(b) for _ in range(2)]
    assert plans[0].chosen.bits == plans[1].chosen.bits
    assert plans[0].rel("edp") <= 0.5


def test_isolated_sensitivity_meets_budget(digits_planner):
    """The isolated measure (per knob, added up) needs fewer forward passes; its plan
    meets the budget and its loss is measured on the network at the end."""
    pl = digits_planner
    iso = P.Planner(pl.net, pl.costs.cfg, pl.costs.point, pl.sens.x, sensitivity="isolated")
    res = iso.search(P.Budget("edp", 0.5))
    assert res.rel("edp") <= 0.5
    assert res.loss == pytest.approx(pl.sens.loss(res.qnet))
    assert res.layer_forwards < pl.search(P.Budget("edp", 0.5)).layer_forwards


def test_impossible_budget_exits_1(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    code, _, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                       "edp=0.001", "--bits", 4, "--out", out, "--no-progress")
    assert code == 1, err
    assert err.startswith("bfimna: budget edp=0.001 cannot be met: the cheapest plan found")
    assert re.search(r"has edp \S+ J\*s, \S+ x INT8", err)
    assert len(err.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--budget", "speed=0.5"], "unknown budget kind 'speed'"),
    (["--budget", "edp=0"], "budget value must be a number > 0"),
    (["--budget", "edp=-1"], "budget value must be a number > 0"),
    (["--budget", "edp=nan"], "budget value must be a number > 0"),
    (["--budget", "edp=half"], "is not a number"),
    (["--budget", "edp"], "expected KIND=VALUE"),
    (["--budget", "edp=0.5", "--tech", "nosuch_cam"], "unknown technology 'nosuch_cam'"),
    (["--budget", "edp=0.5", "--vdd", "0.42"], "no voltage point at 0.42 V"),
    (["--budget", "edp=0.5", "--bits", "9"], "is not a width 2..8"),
    (["--budget", "edp=0.5", "--network", "nosuch.yaml"], "nosuch.yaml"),
])
def test_bad_input_exits_2(tmp_path, capsys, args, message):
    if "--network" not in args:
        args = ["--network", DIGITS / "network.yaml", *args]
    code, _, err = cli(capsys, "plan", *args, "--out", tmp_path / "p.yaml", "--no-progress")
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "p.yaml").exists()


def test_bad_network_file_exits_2(tmp_path):
    """In a process of its own: the whole path from the shell, no traceback."""
    bad = tmp_path / "net.yaml"
    bad.write_text("name: x\ninput: {channels: 1, height: 8, width: 8}\nlayers: []\n")
    r = run("plan", "--network", bad, "--budget", "edp=0.5", "--out", tmp_path / "p.yaml")
    assert r.returncode == 2 and "layers" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


TINY = """\
name: tiny_synthetic
input: {channels: 1, height: 8, width: 8}
synthetic_weights:
  seed: 5
  act_max: {input: 1.0, c1: 3.0, c2: 3.0, add: 4.0, fc: 6.0}
layers:
  - {name: c1, type: conv, out_channels: 4, kernel: 3, pad: 1, relu: true}
  - {name: c2, type: conv, out_channels: 4, kernel: 3, pad: 1, relu: false}
  - {name: add, type: add, inputs: [c2, c1], relu: true}
  - {name: pool, type: maxpool, kernel: 2}
  - {name: fc, type: fc, out_features: 5}
"""


def test_synthetic_calibration_network_without_dataset(tmp_path, capsys):
    """No dataset: seeded synthetic calibration images, said so in the header; add layers
    get an a_bits entry; no accuracy; the same seed gives the same plan."""
    (tmp_path / "net.yaml").write_text(TINY)
    outs = []
    for i in range(2):
        out = tmp_path / f"p{i}.yaml"
        code, stdout, err = cli(capsys, "plan", "--network", tmp_path / "net.yaml", "--budget",
                                "latency=0.7", "--out", out, "--seed", 11, "--calib-images", 3,
                                "--bits", 3, 5, "--no-progress")
        assert code == 0, err
        outs.append(out.read_text())
    assert "accuracy: not measured" in stdout and "seed 11" in stdout
    body = [t[t.index("\nname:"):] for t in outs]      # the plan itself, after the header
    assert body[0].replace("p0", "p1") == body[1]
    text = outs[0]
    assert "3 SYNTHETIC images" in text and "default_rng(11)" in text
    assert "seed: 11 (of the synthetic calibration images)" in text
    net = load_network(tmp_path / "net.yaml")
    plan = load_plan(tmp_path / "p0.yaml", net)
    assert set(plan.layers) == {"c1", "c2", "add", "fc"}
    q = quantize(net, plan)
    cfg = load_config(CONFIG_DIR / "default.yaml")
    point = find_tech().point()
    lat = _whole(q, cfg, point).total["latency_s"]
    lat8 = _whole(quantize(net, P.plan_of(net, P.uniform(net, 8))), cfg, point).total["latency_s"]
    assert lat <= 0.7 * lat8
    assert _header_cost(text)["latency"][0] == pytest.approx(lat, rel=1e-5)


def test_sensitivity_measure():
    """The loss is the relative L2 error of the dequantised output: 0 against itself, and
    INT8's is below INT4's on digits; the incremental forward pass equals a full one."""
    net = load_network(DIGITS / "network.yaml")
    x = P.calibration(net, 16, 0).x
    s = P.Sensitivity(net, x)
    q8 = quantize(net, P.plan_of(net, P.uniform(net, 8)))
    q4 = quantize(net, P.plan_of(net, P.int4_bits(net)))
    l8 = s.loss(q8, keep=True)
    l4 = s.loss(q4)
    assert 0 < l8 < l4
    fresh = P.Sensitivity(net, x)
    assert fresh.loss(q4) == l4
    bits = {**P.uniform(net, 8), ("fc", "w_bits"): 5}       # only fc changes: 1 layer run
    n = s.forwards
    s.loss(quantize(net, P.plan_of(net, bits)))
    assert s.forwards == n + 1
    y = s.want
    assert np.allclose(np.linalg.norm(y), s.norm)


# -- per-block knobs: `bfimna plan --blocks RxC` --------------------------------------------
def test_block_knobs_and_plan_file_round_trip(tmp_path):
    """--blocks 2x2 on digits: the grid per layer is the largest divisors (conv1's 9-tap
    reduction takes 1 column); a block setting written as YAML loads back to the same
    integer network as plan_of gives; the all-8 grid is INT8."""
    net = load_network(DIGITS / "network.yaml")
    lays = {lay.name: lay for lay in net.layers}
    assert [P.layer_grid(lays[n], (2, 2)) for n in ("conv1", "conv2", "fc")] == \
        [(2, 1), (2, 2), (2, 2)]
    assert P.layer_grid(lays["conv1"], (4, 3)) == (4, 3)     # 8 channels, 9 taps
    ks = P.knobs(net, (2, 2))
    assert len(ks) == 1 + (2 + 1) + (4 + 1) + (4 + 1)
    bits = P.uniform(net, 8, grid=(2, 2))
    bits.update({("conv2", P.block_kind(0, 1)): 3, ("conv2", P.block_kind(1, 0)): 5,
                 ("fc", P.block_kind(1, 1)): 2, ("conv1", P.block_kind(1, 0)): 6})
    plan = P.plan_of(net, bits)
    assert plan.layers["conv2"]["blocks"] == [[8, 3], [5, 8]]
    assert plan.layers["conv1"] == {"w_bits": 8, "a_bits": 8, "blocks": [[8], [6]]}
    path = tmp_path / "b.yaml"
    path.write_text(P.plan_yaml(net, bits, "b", ["a header"]))
    loaded = load_plan(path, net)
    assert loaded.layers == plan.layers
    qa, qb = quantize(net, plan), quantize(net, loaded)
    for a, b in zip(qa.layers, qb.layers, strict=True):
        assert (a.w is None and b.w is None) or np.array_equal(a.w, b.w)
    q8 = quantize(net, P.plan_of(net, P.uniform(net, 8)))
    qg = quantize(net, P.plan_of(net, P.uniform(net, 8, grid=(2, 2))))
    for a, b in zip(q8.layers, qg.layers, strict=True):
        assert (a.w is None and b.w is None) or np.array_equal(a.w, b.w)
    assert "conv2 w[8,3/5,8]/a8" in P.summary(bits)


def test_block_search_meets_budget(tmp_path, capsys):
    """A block search (--blocks 2x2, two widths, 16 calibration images) writes a plan
    with block grids whose independently evaluated EDP meets the budget; its INT8 costs
    what the per-layer planner's INT8 costs."""
    out = tmp_path / "blk.yaml"
    code, stdout, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                            "edp=0.4", "--blocks", "2x2", "--bits", 4, 6, "--calib-images", 16,
                            "--out", out, "--no-progress")
    assert code == 0, err
    text = out.read_text()
    assert "--blocks 2x2" in text and "weight bits per block" in text
    net = load_network(DIGITS / "network.yaml")
    plan = load_plan(out, net)
    assert all(isinstance(plan.layers[n]["blocks"][0], list) for n in ("conv1", "conv2", "fc"))
    assert len(plan.layers["conv2"]["blocks"]) == 2 and len(plan.layers["conv2"]["blocks"][0]) == 2
    cfg = load_config(CONFIG_DIR / "default.yaml")
    point = find_tech().point()
    ev = _whole(quantize(net, plan), cfg, point)
    ev8 = _whole(quantize(net, load_plan(DIGITS / "int8.yaml", net)), cfg, point)
    assert ev.total["edp_js"] <= 0.4 * ev8.total["edp_js"]
    assert _header_cost(text)["EDP"][0] == pytest.approx(ev.total["edp_js"], rel=1e-5)
    assert f"EDP {ev8.total['edp_js']:.4g} J*s" in stdout          # INT8 as per layer


@pytest.mark.parametrize("value", ["2", "0x2", "2xb", "2x-1"])
def test_bad_blocks_exit_2(tmp_path, capsys, value):
    code, _, err = cli(capsys, "plan", "--network", DIGITS / "network.yaml", "--budget",
                       "edp=0.5", "--blocks", value, "--out", tmp_path / "p.yaml")
    assert code == 2 and "--blocks" in err and "expected RxC" in err
    assert not (tmp_path / "p.yaml").exists()


def test_candidates_on_dask_choose_the_serial_plan(tmp_path, capsys):
    """`bfimna plan --workers 2` evaluates each step's candidates on a LocalCluster of two
    worker processes (sched/sweep.py connect) and writes the very plan file the serial
    search writes (same bits, same predicted cost, same loss in its header)."""
    args = ["plan", "--network", DIGITS / "network.yaml", "--budget", "edp=0.5",
            "--bits", 4, 6, "--calib-images", 8, "--no-progress"]
    code, serial, err = cli(capsys, *args, "--out", tmp_path / "serial.yaml")
    assert code == 0, err
    code, dask, err = cli(capsys, *args, "--out", tmp_path / "dask.yaml", "--workers", 2)
    assert code == 0, err
    assert "candidates of each step evaluated on a local Dask cluster of 2 worker " \
           "process(es)" in dask and "Dask" not in serial
    assert (tmp_path / "dask.yaml").read_text() == (tmp_path / "serial.yaml").read_text() \
        .replace("serial", "dask")                      # the plan's name and --out differ
    counts = [re.search(r"(\d+) candidate plans \((\d+) not", t).groups()
              for t in (serial, dask)]
    assert counts[0] == counts[1]


def test_plan_cluster_options_exit_2(tmp_path, capsys):
    base = ["plan", "--network", DIGITS / "network.yaml", "--budget", "edp=0.5",
            "--out", tmp_path / "p.yaml"]
    code, _, err = cli(capsys, *base, "--workers", 2, "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2 and "--workers sizes the embedded local cluster" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p.yaml").exists()
