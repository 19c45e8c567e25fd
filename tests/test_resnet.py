"""ResNet18 of the model zoo (synthetic weights) at reduced input sizes: its first stage
executed on the golden system bit-exact under a HAWQ-V3 mixed plan, and the whole
network predicted (cycles, passes, host words) under int8 and a HAWQ plan. (The whole
network executed is a benchmark, scripts/bench_networks.py --execute: its ~12 M
instruction words take the golden system minutes, whatever the input size.)"""

from __future__ import annotations

import importlib.util

import numpy as np

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import load_network, load_plan, quantize, reference
from bfimna.golden.spec.config import load_config
from bfimna.sched.run import predict_network, run_network

from conftest import CONFIG_DIR, ROOT

ZOO = ROOT / "models" / "zoo" / "resnet18"


def _resnet18(tmp_path, size: int):
    """ResNet18 at size x size, calibrated on one seeded synthetic image by the zoo's
    own script (scripts/make_zoo.py)."""
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "scripts" / "make_zoo.py")
    assert spec is not None and spec.loader is not None
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    text, _ = zoo.calibrated("resnet18", zoo.layers("resnet18"), 0, 1, size)
    (tmp_path / "network.yaml").write_text(text)
    return load_network(tmp_path / "network.yaml"), zoo


def test_resnet18_first_stage_bit_exact_on_golden(tmp_path, seed):
    """Stem, max pooling and both residual blocks of stage 1 at 16x16 under HAWQ-V3's
    latency_0.25 plan (s1u2 at 4 bits beside 8-bit s1u1, 16-bit branches into the adds)
    on the default configuration: every layer bit-exact against the golden CNN
    reference, counted = predicted."""
    print("seed", seed)
    net, zoo = _resnet18(tmp_path, 16)
    q = quantize(net, load_plan(ZOO / "latency_0.25.yaml", net))
    q.layers = q.layers[:8]                      # ... s1u2add
    assert [ql.name for ql in q.layers][-1] == "s1u2add"
    assert {ql.out_bits for ql in q.layers if ql.name.startswith("s1u2c1")} == {4}
    cfg = load_config(CONFIG_DIR / "default.yaml")
    x = np.random.default_rng(seed).random((1, 3, 16, 16))
    xi = q.quantize_input(x)
    rep = run_network(q, xi, cfg, backend("golden", cfg, fast=True))
    for layer, got, want in zip(rep.layers, rep.outputs, reference(q, xi), strict=True):
        print(f"{layer.name}: {layer.dataflow} {layer.passes} passes {layer.predicted} cycles")
        assert layer.bit_exact and layer.counted == layer.predicted
        assert np.array_equal(got, want)


def test_resnet18_predicted_at_32_under_hawq_plans(tmp_path):
    """The whole network at 32x32 on the ImageNet-scale configuration, predicted under
    int8 and HAWQ-V3's five plans (each predicted once: this test also checks BF-IMNA's
    claims on them, scripts/paper.py): every conv/fc layer has a positive bound below its
    makespan, every layer some passes; a mixed plan takes less time than int8 where it
    lowers the bits; EDP falls strictly from uniform8 to uniform4 on both technologies
    and the paper's two claims hold, as they do at 224x224 (docs/results.md)."""
    from test_paper import PAPER, TOP1

    from bfimna.golden.spec.tech import default_techs
    from bfimna.sched.evaluate import evaluate

    net, _ = _resnet18(tmp_path, 32)
    cfg = load_config(CONFIG_DIR / "scale" / "imagenet.yaml")
    reps = {plan: predict_network(quantize(net, load_plan(ZOO / f"{plan}.yaml", net)), 1, cfg)
            for plan in ("int8",) + PAPER.HAWQ}
    for plan in ("int8", "latency_0.5"):
        rep = reps[plan]
        assert len(rep.layers) == 31
        for layer in rep.layers:
            assert layer.passes >= 1 and layer.predicted > 0, layer.name
            if layer.type in ("conv", "fc"):
                assert layer.bound is not None and 0 < layer.bound < layer.busiest_tile
        print(plan, f"{sum(layer.predicted for layer in rep.layers):,} cycles")
    # the makespan where the plan has 4 bits
    by8 = {layer.name: layer.busiest_tile for layer in reps["int8"].layers}
    by = {layer.name: layer.busiest_tile for layer in reps["latency_0.5"].layers}
    assert by["s3u2c1"] < by8["s3u2c1"]
    for tech in default_techs():
        point = tech.point()
        edp = {p: evaluate(reps[p], cfg, point, 1).total["edp_js"] for p in PAPER.HAWQ}
        print(tech.name, {p: f"{e:.3g}" for p, e in edp.items()})
        order = list(PAPER.HAWQ)
        assert all(edp[a] > edp[b] for a, b in zip(order, order[1:], strict=False)), edp
        rows = {(p, tech.name): {"edp_js": e} for p, e in edp.items()}
        claims = PAPER.check_claims(rows, [tech.name], TOP1)
        assert all(c["holds"] for c in claims), claims
