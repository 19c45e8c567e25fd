"""The tiled scheduler on layer graphs (sched/schedule.py): every layer kind of
tests/test_graph.py's network on the golden system, bit-exact against the golden CNN
reference with counted = predicted cycles, on configurations whose MAPs hold a whole
image and on ones that hold a fraction of a pass's receptive field (taps in groups);
and the CIFAR-size network of the real-networks issue on the default configuration."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from test_graph import GRAPH, _plan, make_graph

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import calibrate, load_network, load_plan, quantize, reference
from bfimna.golden.spec.config import config_from_dict, load_config
from bfimna.sched.run import predict_network, run_network
from bfimna.sched.schedule import Scheduler

from conftest import CONFIG_DIR, ROOT

# MAPs of 16 rows x 16 bits: a pass of the graph network stages its field in several groups
SMALL_MAPS = {"name": "small_maps", "ap": {"rows": 32, "cols": 64, "dims": 2},
              "tile": {"maps": 2, "map_rows": 16, "map_cols": 16}, "system": {"tiles": 2}}


def _check(rep, q, xi):
    for layer in rep.layers:
        assert layer.bit_exact, layer.name
    for got, want in zip(rep.outputs, reference(q, xi), strict=True):
        assert np.array_equal(got, want.reshape(got.shape))


@pytest.mark.parametrize("cfg_name, fast, bits", [("default", True, 8),
                                                   ("small_maps", True, 8),
                                                   ("small_maps", True, 4),
                                                   ("sys_t2k2", False, 4)])
def test_graph_network_bit_exact(tmp_path, seed, cfg_name, fast, bits):
    """Every kind (grouped and depthwise conv, padded max and average pooling, residual
    add with a signed branch, concat with a rescaled input, gap, flatten, fc) on the
    golden system, fast and bit-level tile models; run_network raises on any output or
    cycle count that differs."""
    print("seed", seed)
    cfg = config_from_dict(SMALL_MAPS) if cfg_name == "small_maps" else \
        load_config(CONFIG_DIR / f"{cfg_name}.yaml")
    net, x = make_graph(tmp_path, seed)
    q = quantize(net, load_plan(_plan(tmp_path, bits), net))
    xi = q.quantize_input(x[:2 if fast else 1])      # the bit-level tile model is slow
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=fast))
    _check(rep, q, xi)
    by = {layer.name: layer for layer in rep.layers}
    assert by["flat"].passes == 0 and by["flat"].host_words == 0    # a reshape on the host
    assert by["add2"].passes >= 1 and by["gap"].passes >= 1
    if cfg_name == "small_maps":     # the stem's field (27 taps x 32 rows) needs groups
        sched = Scheduler(cfg).schedule(q.layers[0], xi, "pos")
        writes = [op for p in sched.passes for op in p.ops if op[0] == "write"]
        assert len(writes) > len(sched.passes) * 2
        assert all(len(op[4]) <= cfg.map_ap.rows for op in writes)


def test_staging_writes_only_the_receptive_field(tmp_path, seed):
    """A pass of 32 rows (four output rows of an 8x8 map) stages its rows' 3x3 windows:
    five input rows per channel (one halo row; the other is padding), not the image."""
    cfg = config_from_dict({**SMALL_MAPS, "tile": {"maps": 2, "map_rows": 256,
                                                   "map_cols": 32}})
    net, x = make_graph(tmp_path, seed)
    q = quantize(net, load_plan(_plan(tmp_path, 8), net))
    sched = Scheduler(cfg).schedule(q.layers[0], q.quantize_input(x[:1]), "pos")
    assert len(sched.passes) == 2
    for p, rows in zip(sched.passes, ((0, 5), (3, 8)), strict=True):
        first: list = []             # the first run of writes: one staging
        for op in p.ops:
            if op[0] == "write":
                first.append(op)
            elif first:
                break
        staged = sum(len(op[4]) for op in first)
        assert staged == 3 * (rows[1] - rows[0]) * 8
        values = sorted(v for op in first for v in op[4])
        xi = q.quantize_input(x[:1])[0, :, rows[0]:rows[1], :]
        assert values == sorted(xi.ravel().tolist())


CIFAR = {"name": "cifar_like", "input": {"channels": 3, "height": 32, "width": 32},
         "weights": "weights.npz",
         "layers": [{"name": "conv1", "type": "conv", "out_channels": 16, "kernel": 3,
                     "pad": 1, "relu": True},
                    {"name": "pool1", "type": "maxpool", "kernel": 2},
                    {"name": "conv2", "type": "conv", "out_channels": 32, "kernel": 3,
                     "pad": 1, "relu": True},
                    {"name": "pool2", "type": "maxpool", "kernel": 2},
                    {"name": "fc", "type": "fc", "out_features": 10}]}


def test_cifar_size_network_on_the_default_config(tmp_path, seed):
    """3x32x32 inputs (3,072 values per image, more than the default tile's two MAPs of
    256 rows hold at 8 bits per slot... once, that is) run on the default configuration:
    the scheduler stages each pass's field instead of the image. Synthetic weights."""
    print("seed", seed)
    rng = np.random.default_rng(seed)
    shapes = {"conv1": (16, 3, 3, 3), "conv2": (32, 16, 3, 3), "fc": (10, 32 * 8 * 8)}
    w = {}
    for name, shape in shapes.items():
        fan = int(np.prod(shape[1:]))
        w[f"{name}.weight"] = rng.standard_normal(shape) * np.sqrt(2 / fan)
        w[f"{name}.bias"] = rng.standard_normal(shape[0]) * 0.05
        w[f"{name}.act_max"] = np.float32(1.0)
    w["input.act_max"] = np.float32(1.0)
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(CIFAR, sort_keys=False))
    np.savez(tmp_path / "weights.npz", **w)
    net = load_network(tmp_path / "network.yaml")
    x = rng.random((2, 3, 32, 32))
    w.update(calibrate(net, x))
    np.savez(tmp_path / "weights.npz", **w)
    net = load_network(tmp_path / "network.yaml")
    plan = {"input_bits": 8, "layers": {n: {"w_bits": 8, "a_bits": 8} for n in shapes}}
    (tmp_path / "int8.yaml").write_text(yaml.safe_dump(plan))
    q = quantize(net, load_plan(tmp_path / "int8.yaml", net))
    cfg = load_config(CONFIG_DIR / "default.yaml")
    xi = q.quantize_input(x[:1])
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True))
    _check(rep, q, xi)
    print([(layer.name, layer.dataflow, layer.passes, layer.predicted, layer.host_words)
           for layer in rep.layers])
    assert rep.layers[0].passes == 4          # 1,024 positions in passes of 256 rows


def test_graph_yaml_is_what_the_tests_build():
    """GRAPH is valid YAML both ways (the format the importer writes)."""
    assert yaml.safe_load(yaml.safe_dump(GRAPH)) == GRAPH


def test_prediction_equals_execution(tmp_path, seed):
    """predict_network (schedule only, all-zero inputs, nothing executed) gives every
    layer's passes, cycles, busiest tile, host words and activity (energy) exactly as the
    executed run counts them; the lane-parallel bound is below every conv/fc layer's makespan."""
    print("seed", seed)
    cfg = config_from_dict(SMALL_MAPS)
    net, x = make_graph(tmp_path, seed)
    q = quantize(net, load_plan(_plan(tmp_path, 8), net))
    ran = run_network(q, q.quantize_input(x[:2]), cfg, backend("golden", cfg, fast=True))
    pred = predict_network(q, 2, cfg)
    for a, b in zip(pred.layers, ran.layers, strict=True):
        assert (a.passes, a.predicted, a.busiest_tile, a.host_words, a.dataflow) == \
            (b.passes, b.predicted, b.busiest_tile, b.host_words, b.dataflow), a.name
        assert a.counted is None and a.bit_exact is None and b.counted == b.predicted
        # the activity energy depends on: predicted = what the golden tiles counted
        assert a.activity_counted is None
        if a.passes:
            assert a.activity == b.activity_counted == b.activity, a.name
            assert a.activity["cycles"] == a.predicted and a.activity["cmp_cells"] > 0
        else:                        # a host layer: nothing runs on the tiles
            assert not any(a.activity.values()) and b.activity_counted is None
        if a.type in ("conv", "fc"):
            assert a.bound is not None and 0 < a.bound < a.busiest_tile
            assert 0 < a.rows_used <= 1 and a.macs > 0


def test_run_predict_cli(capsys):
    from bfimna.cli import main
    assert main(["run", "--network", str(ROOT / "models" / "digits_res" / "network.yaml"),
                 "--plan", str(ROOT / "models" / "digits_res" / "mixed.yaml"), "--predict",
                 "--images", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nothing is executed" in out and "lane-parallel bound" in out
    kinds = [line.split()[1] for line in out.splitlines()[2:12]]
    assert kinds == ["conv", "conv", "conv", "add", "conv", "conv", "conv", "add", "gap", "fc"]


def test_a_channel_field_larger_than_the_maps_is_refused_saying_what_is_short():
    """One input channel's taps over a pass read its receptive field with the halo; the
    scheduler stages a channel's field whole, so a MAP too small for it is refused, on
    execution and on prediction alike, with the sizes (not an illegal MOVW later)."""
    from bfimna.sched.schedule import ScheduleError
    cfg = config_from_dict({"name": "tiny_map", "ap": {"rows": 32, "cols": 54, "dims": 2},
                            "tile": {"maps": 1, "map_rows": 32, "map_cols": 8}})
    net = load_network(ROOT / "models" / "digits_res" / "network.yaml")
    qnet = quantize(net, load_plan(ROOT / "models" / "digits_res" / "int8.yaml", net))
    with pytest.raises(ScheduleError, match=r"b2c1: one input channel's 9 tap\(s\) over a "
                       r"pass of \d+ rows read \d+ input values .* the MAPs hold 32 8-bit"):
        predict_network(qnet, 1, cfg)
