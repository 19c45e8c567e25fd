"""The scheduler (sched/): every layer of a network on the golden system, bit-exact
against the golden CNN reference, with counted cycles equal to the predicted ones; both
dataflows; the bit-level and the fast golden tiles agree; layers that do not fit say why.
"""

import numpy as np
import pytest

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.host.stimulus import random_network
from bfimna.golden.nn.network import load_network, load_plan, quantize, reference
from bfimna.golden.spec.config import config_from_dict, load_config
from bfimna.sched.run import run_network
from bfimna.sched.schedule import ScheduleError, Scheduler

from conftest import CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"


def tiny(tmp_path, seed):
    p = random_network(tmp_path, seed)
    net = load_network(p)
    return net, quantize(net, load_plan(tmp_path / "plan.yaml", net))


@pytest.mark.parametrize("flows", [None, {"conv1": "pos", "fc": "chan"},
                                   {"conv1": "chan", "fc": "pos"}])
def test_tiny_network_both_tiles_and_dataflows(tmp_path, seed, flows):
    print(f"seed {seed}")
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    net, q = tiny(tmp_path, seed)
    x, _ = net.test_set()
    xi = q.quantize_input(x)
    reps = [run_network(q, xi, cfg, backend("golden", cfg, fast=fast), dataflow=flows)
            for fast in (False, True)]
    for rep in reps:
        assert all(layer.bit_exact and layer.counted == layer.predicted for layer in rep.layers)
    assert ([layer.predicted for layer in reps[0].layers]
            == [layer.predicted for layer in reps[1].layers])
    for got, want in zip(reps[0].outputs, reference(q, xi), strict=True):
        assert np.array_equal(got, want.reshape(got.shape))
    if flows:
        assert ([layer.dataflow for layer in reps[0].layers if layer.name in flows]
                == list(flows.values()))
    assert max(layer.passes for layer in reps[0].layers) >= 2        # both tiles got work


@pytest.mark.parametrize("plan", ["int8", "mixed"])
def test_digits_on_default_config(plan):
    cfg = load_config(CONFIG_DIR / "default.yaml")
    net = load_network(DIGITS / "network.yaml")
    q = quantize(net, load_plan(DIGITS / f"{plan}.yaml", net))
    x, y = net.test_set()
    rep = run_network(q, q.quantize_input(x[:8]), cfg, backend("golden", cfg, fast=True))
    assert all(layer.bit_exact and layer.counted == layer.predicted for layer in rep.layers)
    assert np.mean(rep.predictions == y[:8]) >= 0.75
    print(plan, [(layer.name, layer.dataflow, layer.predicted) for layer in rep.layers])


def test_cycles_follow_precision():
    """Bit fluidity in the cost model: the same layers cost less at 4 bits than at 8."""
    cfg = load_config(CONFIG_DIR / "default.yaml")
    net = load_network(DIGITS / "network.yaml")
    x, _ = net.test_set()
    cyc = {}
    for plan in ("int8", "int4"):
        q = quantize(net, load_plan(DIGITS / f"{plan}.yaml", net))
        h, sch, cyc[plan] = q.quantize_input(x[:4]), Scheduler(cfg), []
        for ql, out in zip(q.layers, reference(q, q.quantize_input(x[:4])), strict=True):
            cyc[plan].append(sch.schedule(ql, h, "pos").predicted)
            h = out
    assert all(a < b for a, b in zip(cyc["int4"], cyc["int8"], strict=True)), cyc


def test_layers_that_do_not_fit_say_why(tmp_path, seed):
    _, q = tiny(tmp_path, seed)
    small = config_from_dict({"name": "s", "ap": {"rows": 8, "cols": 20, "dims": 2},
                              "tile": {"maps": 1, "map_rows": 8, "map_cols": 8}})
    with pytest.raises(ScheduleError, match="do not fit 1 MAP"):
        Scheduler(small).schedule(q.layers[0], np.zeros((1, 1, 4, 4), dtype=np.int64))
    narrow = config_from_dict({"name": "n", "ap": {"rows": 8, "cols": 20, "dims": 2},
                               "tile": {"maps": 1, "map_rows": 16, "map_cols": 8}})
    with pytest.raises(ScheduleError, match="columns"):
        Scheduler(narrow).schedule(q.layers[0], np.zeros((1, 1, 4, 4), dtype=np.int64), "pos")
    with pytest.raises(ScheduleError, match="needs 2 MAPs"):
        Scheduler(narrow).schedule(q.layers[0], np.zeros((1, 1, 4, 4), dtype=np.int64), "chan")
