"""End to end on the emitted Verilog: a small CNN (a strided, padded conv with ReLU and
requantisation, max pooling, a fully connected layer) scheduled onto the two-tile
configuration and run through the AXI host interface under Verilator and Icarus; every
layer bit-exact against the golden CNN reference, the cycles the hardware counts equal
to the cost model's prediction, both dataflows."""

import numpy as np
import pytest

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.host.stimulus import random_network
from bfimna.golden.nn.network import load_network, load_plan, quantize, reference
from bfimna.golden.spec.config import load_config
from bfimna.sched.run import run_network

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_small_cnn_end_to_end(sim, tmp_path, seed):
    print(f"seed {seed}")
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    net = load_network(random_network(tmp_path, seed))
    q = quantize(net, load_plan(tmp_path / "plan.yaml", net))
    x, _ = net.test_set()
    xi = q.quantize_input(x[:4])
    rtl = backend(sim, cfg, build_root=BUILD, seed=seed)
    flows = {"conv1": "pos", "fc": "chan"} if sim == "verilator" else \
        {"conv1": "chan", "fc": "pos"}
    rep = run_network(q, xi, cfg, rtl, dataflow=flows)     # raises on any mismatch
    for layer in rep.layers:
        print(f"{layer.name}: {layer.dataflow}, {layer.passes} passes, "
              f"{layer.counted} cycles counted "
              f"= predicted, {layer.sim_cycles} clock cycles simulated")
        assert layer.bit_exact and layer.counted == layer.predicted and layer.counted > 0
    for got, want in zip(rep.outputs, reference(q, xi), strict=True):
        assert np.array_equal(got, want.reshape(got.shape))
    assert [layer.dataflow for layer in rep.layers] == [flows["conv1"], "pos", flows["fc"]]


def test_residual_digits_cnn_on_verilator(seed):
    """The residual digits CNN (two residual blocks, a strided 1x1 projection, gap) on the
    two-tile configuration under Verilator, int4 plan, one test image: every layer
    bit-exact and counted = predicted (run_network raises otherwise)."""
    print(f"seed {seed}")
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    net = load_network(ROOT / "models" / "digits_res" / "network.yaml")
    q = quantize(net, load_plan(ROOT / "models" / "digits_res" / "int4.yaml", net))
    x, _ = net.test_set()
    i = int(np.random.default_rng(seed).integers(len(x)))
    xi = q.quantize_input(x[i:i + 1])
    rep = run_network(q, xi, cfg, backend("verilator", cfg, build_root=BUILD, seed=seed))
    assert [layer.type for layer in rep.layers].count("add") == 2
    for layer in rep.layers:
        print(f"{layer.name}: {layer.passes} passes, {layer.counted} cycles counted "
              f"= predicted, {layer.sim_cycles} clock cycles simulated")
        assert layer.bit_exact and layer.counted == layer.predicted and layer.counted > 0
