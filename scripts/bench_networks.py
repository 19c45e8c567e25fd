"""Benchmark: real networks through the scheduler (issue "real networks at real sizes").

    python scripts/bench_networks.py [--models resnet18 resnet50 alexnet vgg16]
        [--config configs/scale/imagenet.yaml] [--hawq] [--execute SIZE [--layers N]]
        [--json FILE]

Prints, for every zoo model (SYNTHETIC weights, models/zoo/README.md) under its int8 plan
on the ImageNet-scale configuration: the predicted tile cycles per image, the makespan
over the tiles (layers one after another), host words, MACs, the conv/fc makespan over
the lane-parallel bound, and the wall time of the prediction (`bfimna run --predict`'s
code path). `--hawq` adds ResNet18 under the five HAWQ-V3 plans. `--execute SIZE` runs
ResNet18 at SIZE x SIZE (calibrated on one synthetic image by scripts/make_zoo.py) for
one image on the golden system, every layer checked bit-exact and counted = predicted,
and prints its wall time (`--layers N`: the first N layers only). Numbers are of this
machine; quote ratios from one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bfimna.cosim.drivers.backends import backend  # noqa: E402
from bfimna.golden.nn.network import load_network, load_plan, quantize  # noqa: E402
from bfimna.golden.spec.config import load_config  # noqa: E402
from bfimna.sched.run import predict_network, run_network  # noqa: E402

HAWQ = ("uniform8", "latency_0.75", "latency_0.5", "latency_0.25", "uniform4")


def summary(rep, wall: float) -> dict:
    weighted = [layer for layer in rep.layers if layer.bound]
    return {"layers": len(rep.layers),
            "cycles": sum(layer.predicted for layer in rep.layers),
            "makespan": sum(layer.busiest_tile for layer in rep.layers),
            "host_words": sum(layer.host_words for layer in rep.layers),
            "macs": sum(layer.macs for layer in rep.layers),
            "vs_bound": (sum(layer.busiest_tile for layer in weighted)
                         / sum(layer.bound for layer in weighted)) if weighted else None,
            "wall_s": round(wall, 1)}


def predict(model: str, plan: str, cfg) -> dict:
    net = load_network(ROOT / "models" / "zoo" / model / "network.yaml")
    q = quantize(net, load_plan(ROOT / "models" / "zoo" / model / f"{plan}.yaml", net))
    t0 = time.perf_counter()
    rep = predict_network(q, 1, cfg)
    return {"model": model, "plan": plan, **summary(rep, time.perf_counter() - t0)}


def execute_resnet18(size: int, cfg, n_layers: int | None = None) -> dict:
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "scripts" / "make_zoo.py")
    assert spec is not None and spec.loader is not None
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    text, _ = zoo.calibrated("resnet18", zoo.layers("resnet18"), 0, 1, size)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "network.yaml").write_text(text)
        net = load_network(Path(tmp) / "network.yaml")
    q = quantize(net, load_plan(ROOT / "models" / "zoo" / "resnet18" / "int8.yaml", net))
    if n_layers is not None:               # the first layers only (a shorter measurement)
        q = dataclasses.replace(q, layers=q.layers[:n_layers])
    x = np.random.default_rng(1).random((1, 3, size, size))
    t0 = time.perf_counter()
    rep = run_network(q, q.quantize_input(x), cfg, backend("golden", cfg, fast=True),
                      progress=True)        # raises on any output or cycle mismatch
    part = "" if n_layers is None else f", first {len(q.layers)} layers"
    return {"model": f"resnet18@{size}", "plan": f"int8 (executed, bit-exact{part})",
            **summary(rep, time.perf_counter() - t0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "alexnet", "vgg16"])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "scale" / "imagenet.yaml")
    ap.add_argument("--hawq", action="store_true", help="ResNet18 under HAWQ-V3's five plans")
    ap.add_argument("--execute", type=int, metavar="SIZE",
                    help="also execute ResNet18 at SIZE x SIZE on the golden system")
    ap.add_argument("--layers", type=int, metavar="N",
                    help="with --execute: only the first N layers (a shorter measurement)")
    ap.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    if args.layers is not None and (args.layers < 1 or not args.execute):
        ap.error("--layers needs --execute and N >= 1")
    cfg = load_config(args.config)
    rows = []
    jobs = [(m, "int8") for m in args.models]
    if args.hawq:
        jobs += [("resnet18", p) for p in HAWQ]
    print(f"configuration {cfg.name}: {cfg.system.tiles} tiles, CAP {cfg.ap.rows}x{cfg.ap.cols},"
          f" {cfg.tile.maps} MAPs {cfg.tile.map_rows}x{cfg.tile.map_cols}; SYNTHETIC weights")
    print(f"{'model':<12} {'plan':<14} {'layers':>6} {'cycles/image':>16} {'makespan':>14} "
          f"{'host words':>12} {'GMACs':>6} {'/bound':>7} {'wall s':>7}")
    for model, plan in jobs:
        r = predict(model, plan, cfg)
        rows.append(r)
        print(f"{r['model']:<12} {r['plan']:<14} {r['layers']:>6} {r['cycles']:>16,} "
              f"{r['makespan']:>14,} {r['host_words']:>12,} {r['macs'] / 1e9:>6.2f} "
              f"{r['vs_bound']:>7.1f} {r['wall_s']:>7.1f}", flush=True)
    if args.execute:
        r = execute_resnet18(args.execute, cfg, args.layers)
        rows.append(r)
        print(f"{r['model']:<12} executed on golden ({r['layers']} layers), every layer "
              f"bit-exact, counted = predicted: {r['cycles']:,} cycles, {r['wall_s']} s wall")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
