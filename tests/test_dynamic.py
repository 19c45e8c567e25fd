"""Dynamic mixed precision (sched/dynamic.py, `bfimna dynamic`): a plan chosen per image
by a cycle budget or a list, every image bit-exact against the golden CNN reference of
its plan and its counted cycles equal to the prediction, on the golden backend and on
Verilator (one simulator build for every plan); bad input exits 2."""

import csv

import numpy as np
import pytest
import yaml

from bfimna.cli import main
from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import load_network, load_plan, predict, quantize
from bfimna.golden.spec.config import load_config
from bfimna.sched import dynamic as dy
from bfimna.sched.run import predict_network

from conftest import CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"
NET = DIGITS / "network.yaml"
PLANS = [DIGITS / f"{p}.yaml" for p in ("int8", "mixed", "int4")]
BUILD = ROOT / "build" / "test-cosim"


@pytest.fixture(scope="module")
def digits():
    net = load_network(NET)
    x, y = net.test_set()
    return net, x, y


def cycles_of(qnet, n, cfg) -> int:
    return sum(layer.predicted for layer in predict_network(qnet, n, cfg).layers)


def test_budget_picks_most_precise_fitting_plan_golden(digits, seed):
    """Budgets at the edges of the plans' predicted cycles: one below int8's (mixed),
    one below int4's (none fits: the cheapest, int4, marked over budget), exactly int8's
    (fits: int8). Every image runs on one golden backend, equals its plan's integer
    reference and counts the cycles predict_network gives."""
    net, x, y = digits
    cfg = load_config(CONFIG_DIR / "default.yaml")
    entries = dy.load_plans(PLANS, net)
    c8, cm, c4 = (cycles_of(quantize(net, load_plan(p, net)), 1, cfg) for p in PLANS)
    assert c8 > cm > c4 > 0
    idx = np.random.default_rng(seed).choice(len(x), 3, replace=False)
    print(f"seed {seed}: images {idx.tolist()}")
    policy = dy.BudgetPolicy.parse(f"{c8 - 1},{c4 - 1},{c8}")
    choices = dy.decide(entries, policy, 3, 1, cfg)
    assert [(ch.plan, ch.over_budget) for _, ch in choices] == [
        ("mixed", False), ("int4", True), ("int8", False)]
    assert dy.BudgetPolicy.parse(str(cm - 1)).choose(0, {e.name: e.cycles(1)
                                                         for e in entries}).plan == "int4"
    rep = dy.run_dynamic(entries, choices, x[idx], y[idx], cfg, backend("golden", cfg, fast=True),
                         network=net.name, policy=policy)
    assert [s.plan for s in rep.steps] == ["mixed", "int4", "int8"]
    assert [s.predicted for s in rep.steps] == [cm, c4, c8]
    assert [s.counted for s in rep.steps] == [cm, c4, c8]    # the golden tiles' counters
    by_name = {e.name: e.qnet for e in entries}
    for s, i in zip(rep.steps, idx, strict=True):
        q = by_name[s.plan]
        assert s.bit_exact and s.labels == [int(y[i])]
        assert s.predictions == predict(q, q.quantize_input(x[i:i + 1])).tolist()
    t = rep.totals()
    assert t["over_budget"] == 1 and t["plan_switches"] == 2
    assert t["images_per_plan"] == {"mixed": 1, "int4": 1, "int8": 1}
    assert t["predicted"] == t["counted"] == c8 + cm + c4
    static = {s.plan: s for s in rep.static}
    assert static["int8"].predicted == 3 * c8 and static["int8"].over_budget == 2
    assert static["int4"].over_budget == 1
    assert rep.hardware["simulations"] == 3 * sum(
        1 for q in entries[0].qnet.layers if q.layer.type != "flatten")


def test_plan_list_in_batches_decides_from_predictions(digits):
    """An explicit list repeated over batches of 2 (5 images: steps of 2, 2, 1); each
    step's cycles are the plan's prediction for its batch size. Nothing runs."""
    net, _, _ = digits
    cfg = load_config(CONFIG_DIR / "default.yaml")
    entries = dy.load_plans(PLANS[::2], net)              # int8, int4
    choices = dy.decide(entries, dy.ListPolicy.parse("int4,int8"), 5, 2, cfg)
    assert [(list(r), ch.plan, ch.budget) for r, ch in choices] == [
        ([0, 1], "int4", None), ([2, 3], "int8", None), ([4], "int4", None)]
    q4 = entries[1].qnet
    assert entries[1].cycles(2) == cycles_of(q4, 2, cfg) != 2 * entries[1].cycles(1)


def test_per_step_files(tmp_path, digits):
    """Files: one entry per line, comments and blank lines skipped; a bad line or too few
    entries fail naming the file and the line."""
    net, _, _ = digits
    cfg = load_config(CONFIG_DIR / "default.yaml")
    entries = dy.load_plans(PLANS, net)
    f = tmp_path / "budgets.txt"
    f.write_text("# budget per image\n300000\n\n140000  # tight\n")
    choices = dy.decide(entries, dy.BudgetPolicy.parse(str(f)), 2, 1, cfg)
    assert [ch.plan for _, ch in choices] == ["int8", "int4"]
    with pytest.raises(dy.DynamicError, match=r"budgets.txt: budget-cycles: expected one "
                                              r"budget per step \(3\), got 2"):
        dy.decide(entries, dy.BudgetPolicy.parse(str(f)), 3, 1, cfg)
    f.write_text("300000\n-4\n")
    with pytest.raises(dy.DynamicError, match=r"budgets.txt: line 2: expected a positive "
                                              r"integer \(tile cycles\), got '-4'"):
        dy.BudgetPolicy.parse(str(f))
    g = tmp_path / "plans.txt"
    g.write_text("int8\nint4\nint2\n")
    with pytest.raises(dy.DynamicError, match=r"plans.txt: line 3: expected the name of one "
                                              r"of the run's plans \(int8, mixed, int4\), "
                                              r"got 'int2'"):
        dy.decide(entries, dy.ListPolicy.parse(str(g)), 3, 1, cfg)


def test_cli_writes_tables(tmp_path, capsys):
    """`bfimna dynamic` on one image with an explicit list: the printed table and the CSV
    give the image's plan, counted = predicted and the check."""
    out = tmp_path / "out"
    code = main(["dynamic", "--network", str(NET), "--plans", ",".join(map(str, PLANS)),
                 "--plan-per-image", "int4,mixed", "--images", "1", "--out", str(out),
                 "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    with (out / "dynamic.csv").open() as fh:
        got = list(csv.DictReader(fh))
    assert [r["plan"] for r in got] == ["int4"]
    assert all(r["predicted"] == r["counted"] and int(r["counted"]) > 0 and
               r["bit_exact"] == "yes" for r in got)
    assert "0 plan switch(es)" in text and "every step bit-exact" in text
    for name in ("dynamic.md", "dynamic.json", "dynamic.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--plans", f"{PLANS[0]},{ROOT / 'models' / 'digits_res' / 'int8.yaml'}",
      "--budget-cycles", "1000"], "must be one for digits_cnn"),
    (["--plans", f"{PLANS[0]},{DIGITS / 'int3.yaml'}", "--budget-cycles", "1000"],
     "int3.yaml: precision plan file not found"),
    (["--plans", f"{PLANS[0]}", "--budget-cycles", "0"],
     "budget-cycles[0]: expected a positive integer (tile cycles), got '0'"),
    (["--plans", f"{PLANS[0]}", "--budget-cycles", "5000,-1"],
     "budget-cycles[1]: expected a positive integer (tile cycles), got '-1'"),
    (["--plans", f"{PLANS[0]}", "--budget-cycles", "budgets.txt"],
     "got 'budgets.txt' (and no file of that name)"),
    (["--plans", f"{PLANS[0]},{PLANS[0]}", "--budget-cycles", "1000"],
     "a plan name not used by another plan"),
    (["--plans", f"{PLANS[0]}", "--plan-per-image", "int8,int4"],
     "plan-per-image[1]: expected the name of one of the run's plans (int8), got 'int4'"),
])
def test_cli_bad_input_exits_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["dynamic", "--network", str(NET), *args, "--images", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_cli_budget_must_be_given():
    with pytest.raises(SystemExit) as exc:
        main(["dynamic", "--network", str(NET), "--plans", str(PLANS[0])])
    assert exc.value.code == 2


def _plan(tmp_path, name, in_bits, bits):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"name": name, "input_bits": in_bits, "layers": {
        "conv1": {"w_bits": bits, "a_bits": bits}, "conv2": {"w_bits": bits, "a_bits": bits},
        "fc": {"w_bits": bits, "a_bits": 8}}}))
    return p


@pytest.mark.cosim
def test_verilator_one_build_serves_every_plan(tmp_path, digits, seed):
    """The digits CNN on the two-tile configuration under Verilator, three images under
    three plans (4, 3 and 2 bits; the 8-bit plans need more CAP columns than it has), in
    one run on one backend: every image bit-exact against its plan's reference, counted =
    predicted, and every simulation ran the same simulator binary, not rebuilt."""
    net, x, y = digits
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    paths = [_plan(tmp_path, f"w{b}", b, b) for b in (4, 3, 2)]
    entries = dy.load_plans(paths, net)
    idx = np.random.default_rng(seed).choice(len(x), 3, replace=False)
    print(f"seed {seed}: images {idx.tolist()}")
    policy = dy.ListPolicy.parse("w3,w2,w4")
    choices = dy.decide(entries, policy, 3, 1, cfg)
    rep = dy.run_dynamic(entries, choices, x[idx], y[idx], cfg,
                         backend("verilator", cfg, build_root=BUILD, seed=seed),
                         network=net.name, policy=policy)
    by_name = {e.name: e for e in entries}
    for s, i in zip(rep.steps, idx, strict=True):
        q = by_name[s.plan].qnet
        print(f"image {i}: {s.plan}, {s.counted} cycles counted = predicted")
        assert s.bit_exact and s.counted == s.predicted == cycles_of(q, 1, cfg)
        assert s.predictions == predict(q, q.quantize_input(x[i:i + 1])).tolist()
    assert [s.plan for s in rep.steps] == ["w3", "w2", "w4"]
    hw = rep.hardware
    assert hw["simulations"] == 3 * len(net.layers)
    assert len(hw["binaries"]) == 1 and not hw["binaries"][0]["rebuilt_during_run"]
    assert hw["binaries"][0]["path"].endswith("obj_dir/Vreplay")
    assert len(hw["id_registers"]) == 1
