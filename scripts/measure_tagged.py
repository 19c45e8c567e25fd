"""Measure how many of the enabled rows a WR micro-op actually programs (the tagged share).

    python scripts/measure_tagged.py [--plan int8] [--images 1] [--config configs/default.yaml]

Runs the digits CNN layer by layer on the bit-level golden tile (golden/model/tile.py, which
counts `wr_tagged`, tagged rows x masked columns, beside the model's `wr_cells`, enabled
rows x masked columns) and prints both per layer and their ratio: the `--tagged-share` of
`bfimna evaluate` (docs/energy.md). Slow: every micro-op is simulated (about a minute per
image at int8).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bfimna.cosim.drivers.backends import backend  # noqa: E402
from bfimna.golden.nn.network import layer_forward, load_network, load_plan, quantize  # noqa: E402
from bfimna.golden.spec.config import load_config  # noqa: E402
from bfimna.sched.run import run_layer  # noqa: E402
from bfimna.sched.schedule import Scheduler  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", type=Path, default=ROOT / "models" / "digits" / "network.yaml")
    ap.add_argument("--plan", default="int8", help="plan name beside the network file")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    args = ap.parse_args()
    cfg = load_config(args.config)
    net = load_network(args.network)
    q = quantize(net, load_plan(args.network.parent / f"{args.plan}.yaml", net))
    x, _ = net.test_set()
    env = {"input": q.quantize_input(x[:args.images])}
    sch, be = Scheduler(cfg), backend("golden", cfg, fast=False)
    tagged = cells = 0
    print(f"{'layer':8s} {'wr_tagged':>12s} {'wr_cells':>12s} {'share':>6s}")
    for ql in q.layers:
        xs = [env[n] for n in ql.inputs]
        sched = sch.schedule(ql, xs, None)
        n = len(xs[0])
        shape = ((n, ql.layer.out_channels) if ql.layer.type == "fc"
                 else (n,) + tuple(ql.layer.out_shape))
        env[ql.name] = layer_forward(ql, *xs).reshape(shape)
        if sched.host is not None:
            continue
        res = run_layer(sched, be, cfg, shape)[-1]
        t = sum(a["wr_tagged"] for a in res.tile_activity)
        c = sum(a["wr_cells"] for a in res.tile_activity)
        tagged, cells = tagged + t, cells + c
        print(f"{ql.name:8s} {t:12,} {c:12,} {t / c:6.3f}", flush=True)
    print(f"{'total':8s} {tagged:12,} {cells:12,} {tagged / cells:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
