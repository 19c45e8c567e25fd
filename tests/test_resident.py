"""On-chip residency (sched/resident.py, docs/scheduler.md): activations kept in the MAPs
between layers, gathered from their lanes, moved there from the CAP by MOVW; checked
bit-exact against the golden CNN reference, counted cycles = predicted per segment, and
prediction = execution layer by layer."""

import numpy as np
import pytest

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import load_network, load_plan, quantize
from bfimna.golden.spec.config import load_config
from bfimna.sched.resident import LaneAllocator, plan_residency
from bfimna.sched.run import predict_network, run_network

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"


def _net(name: str, plan: str):
    net = load_network(ROOT / "models" / name / "network.yaml")
    return net, quantize(net, load_plan(ROOT / "models" / name / f"{plan}.yaml", net))


def _images(net, q, n: int, seed: int) -> np.ndarray:
    x, _ = net.test_set()
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    print(f"seed {seed}: images {idx.tolist()}")
    return q.quantize_input(x[idx])


def _same_as_prediction(q, xi, cfg, rep) -> None:
    pred = predict_network(q, len(xi), cfg, resident=True)
    for a, b in zip(pred.layers, rep.layers, strict=True):
        assert (a.name, a.predicted, a.host_words, a.host_out, a.residency, a.activity,
                a.copy_words, a.copy_cycles) == \
            (b.name, b.predicted, b.host_words, b.host_out, b.residency, b.activity,
             b.copy_words, b.copy_cycles)


def test_activation_blocks_are_read_to_the_host(seed):
    """Under activation blocks a channel's result field can be narrower than the lanes:
    such a layer's output is not kept on chip (the layer is staged); the run is
    bit-exact and prediction = execution."""
    net, q = _net("digits", "act_blocks")
    cfg = load_config(CONFIG_DIR / "default.yaml")
    plan = plan_residency(q, cfg, 2)
    blocked = [ql.name for ql in q.layers if ql.out_ch_bits is not None]
    assert blocked and all(plan[name].out is None for name in blocked)
    xi = _images(net, q, 2, seed)
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True), resident=True)
    assert all(layer.bit_exact for layer in rep.layers)
    _same_as_prediction(q, xi, cfg, rep)


@pytest.mark.parametrize("plan", ["int8", "mixed"])
def test_digits_stays_on_chip(plan, seed):
    """Two images of the digits CNN on the default configuration: every activation fits
    the MAPs, so the whole network is one program; only the input is written and only
    the logits are read; fewer host words than staging every layer, a few more cycles
    (the MOVWs into the lanes)."""
    net, q = _net("digits", plan)
    cfg = load_config(CONFIG_DIR / "default.yaml")
    xi = _images(net, q, 2, seed)
    be = backend("golden", cfg, fast=True)
    staged = run_network(q, xi, cfg, be)
    rep = run_network(q, xi, cfg, be, resident=True)     # raises on any mismatch
    assert all(layer.bit_exact and layer.residency == "chip" for layer in rep.layers)
    assert len(rep.segments) == 1 and rep.segments[0].layers == [lay.name for lay in q.layers]
    seg = rep.segments[0]
    assert seg.counted == [seg.predicted] and seg.predicted == sum(
        layer.predicted for layer in rep.layers)
    assert sum(layer.host_out for layer in rep.layers) == 2 * 10      # the logits only
    sent = sum(layer.host_words for layer in rep.layers)
    before = sum(layer.host_words for layer in staged.layers)
    print(f"{plan}: host words sent {before} staged, {sent} on chip; read back "
          f"{sum(layer.host_out for layer in staged.layers)} -> 20; cycles "
          f"{sum(layer.predicted for layer in staged.layers)} -> {seg.predicted}")
    assert sent < before
    for got, want in zip(rep.outputs, staged.outputs, strict=True):
        assert np.array_equal(got, want)
    _same_as_prediction(q, xi, cfg, rep)


def test_residual_cnn_evicts_and_reloads(seed):
    """The residual digits CNN at 2 images: not every layer's tensors fit, so the plan
    reads some back to the host before a staged layer (evictions) and loads them again
    after; three segments, every layer bit-exact, counted = predicted."""
    net, q = _net("digits_res", "int8")
    cfg = load_config(CONFIG_DIR / "default.yaml")
    plan = plan_residency(q, cfg, 2)
    assert any(r.evict for r in plan.values()) and any(
        any(r.load) for name, r in plan.items() if name != "conv1")
    xi = _images(net, q, 2, seed)
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True), resident=True)
    assert all(layer.bit_exact for layer in rep.layers)
    assert {layer.residency for layer in rep.layers} == {"chip", "host"}
    assert len(rep.segments) >= 2
    _same_as_prediction(q, xi, cfg, rep)


def test_two_tiles_copy_the_lanes(seed):
    """Two tiles: every tile holds a resident tensor in the same lanes; a load writes
    tile 0's and COPYs them to tile 1, a resident output's runs are COPYed from the tile
    that computed them to the other; the system's copy counters equal the schedule's,
    every layer bit-exact, prediction = execution."""
    net, q = _net("digits", "int4")
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    plan = plan_residency(q, cfg, 1)
    assert [name for name, r in plan.items() if r.resident] == ["pool2", "fc"]
    xi = _images(net, q, 1, seed)
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True), resident=True)
    by = {layer.name: layer for layer in rep.layers}
    # pool2's input loaded to tile 0 and copied to tile 1 (256 words); its 64 outputs
    # moved into lanes on the tile that computed them and copied to the other
    assert by["pool2"].copy_words == 256 + 64 and by["fc"].copy_words == 0
    assert all(layer.bit_exact for layer in rep.layers)
    _same_as_prediction(q, xi, cfg, rep)


def test_lane_allocator():
    cfg = load_config(CONFIG_DIR / "default.yaml")   # 2 MAPs of 256 rows x 32 bits
    a = LaneAllocator(cfg)
    x = a.take("x", 3 * 256 + 1, 8)                  # 4 lanes: MAP 1 full
    assert x is not None and x.ap == (1, 1, 1, 1) and x.col == (0, 8, 16, 24)
    assert x.address(np.array([0, 255, 256, 3 * 256]))[2].tolist() == [0, 0, 8, 24]
    y = a.take("y", 256 * 6, 5)                      # MAP 2 holds 6 lanes of 5 bits
    assert y is not None and y.ap == (2,) * 6 and y.col == (0, 5, 10, 15, 20, 25)
    assert a.take("z", 1, 3) is None                 # 2 bits left in MAP 2: nothing taken
    a.give(x)
    z = a.take("z", 2 * 256, 16)
    assert z is not None and z.ap == (1, 1) and z.col == (0, 16)


@pytest.mark.cosim
def test_digits_on_chip_on_verilator(seed):
    """One image of the digits CNN kept on chip on the default configuration under
    Verilator: one simulation runs the whole network; every layer bit-exact (through the
    READs of its lanes) and the segment's counted cycles = predicted."""
    net, q = _net("digits", "int8")
    cfg = load_config(CONFIG_DIR / "default.yaml")
    xi = _images(net, q, 1, seed)
    rep = run_network(q, xi, cfg, backend("verilator", cfg, build_root=BUILD, seed=seed),
                      resident=True)
    assert all(layer.bit_exact and layer.residency == "chip" for layer in rep.layers)
    seg, = rep.segments
    print(f"{seg.predicted} cycles counted = predicted, {seg.host_words} host words")
    assert seg.counted == [seg.predicted]


@pytest.mark.cosim
def test_two_tiles_on_chip_on_verilator(seed):
    """The two-tile configuration under Verilator with resident tensors: COPY packets
    between the tiles' lanes, the system's copy counters = the schedule's, every layer
    bit-exact, each segment's counted cycles = predicted (run_network raises otherwise)."""
    net, q = _net("digits", "int4")
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    xi = _images(net, q, 1, seed)
    rep = run_network(q, xi, cfg, backend("verilator", cfg, build_root=BUILD, seed=seed),
                      resident=True)
    assert all(layer.bit_exact for layer in rep.layers)
    assert sum(layer.copy_words for layer in rep.layers) > 0 and rep.segments
