"""Sweep `bfimna plan` over budgets on a network with a dataset; print the table of
docs/planner.md and plot test accuracy against predicted cost beside the shipped plans.

    python scripts/plan_sweep.py [--network models/digits/network.yaml] [--kind edp]
        [--budgets 0.9 0.8 ...] [--config configs/default.yaml] [--tech sram_cam]
        [--sensitivity network isolated] [--plot docs/planner/digits_edp_accuracy.png]

One planner per sensitivity measure serves every budget (its per-layer cost cache and
candidate plans are shared; each budget's search is the one `bfimna plan` runs). The
shipped plans beside the network file (int8, int4, mixed, when present) are costed with
the same model. Accuracy: the integer reference on the whole test split, and on the part
after the calibration images (which come from that split).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bfimna.golden.nn.network import load_network, load_plan, quantize  # noqa: E402
from bfimna.golden.spec.config import load_config  # noqa: E402
from bfimna.golden.spec.tech import find_tech  # noqa: E402
from bfimna.sched import planner as P  # noqa: E402

BUDGETS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15)


@dataclass
class Row:
    series: str                 # "shipped" or the sensitivity measure
    label: str
    rel: float                  # cost of the budget's kind over INT8's
    cost: P.Cost
    loss: float | None
    acc: float                  # the whole test split
    held: float                 # the test images after the calibration ones
    plan: str
    wall: float | None = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", type=Path, default=ROOT / "models" / "digits" / "network.yaml")
    ap.add_argument("--kind", choices=P.BUDGET_KINDS, default="edp")
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    ap.add_argument("--tech", default=None, help="technology name or table (default: SRAM)")
    ap.add_argument("--vdd", type=float, default=None)
    ap.add_argument("--calib-images", type=int, default=None)
    ap.add_argument("--sensitivity", choices=P.SENSITIVITIES, nargs="+",
                    default=["network", "isolated"])
    ap.add_argument("--plot", type=Path, default=None, help="write the plot (PNG) here")
    args = ap.parse_args()

    net = load_network(args.network)
    cfg = load_config(args.config)
    point = find_tech(args.tech).point(args.vdd)
    calib = P.calibration(net, args.calib_images, 0)
    x, y = net.test_set()
    k = calib.n_dataset
    kind = args.kind
    print(f"{net.name}, {cfg.name}, {point.tech} at {point.vdd:g} V, batch 1; calibration: "
          f"{calib.what}; held out: the {len(x) - k} test images after them")

    rows: list[Row] = []
    costs = P.CostModel(net, cfg, point)
    ref = costs.total(costs.layer_costs(quantize(net, P.plan_of(net, P.uniform(net, 8)))))
    for name in ("int8", "int4", "mixed"):
        path = args.network.parent / f"{name}.yaml"
        if not path.exists():
            continue
        q = quantize(net, load_plan(path, net))
        c = costs.total(costs.layer_costs(q))
        rows.append(Row("shipped", name, c.of(kind) / ref.of(kind), c, None,
                        P.accuracy(q, x, y), P.accuracy(q, x[k:], y[k:]), name))
    for mode in args.sensitivity:
        t0 = time.perf_counter()
        pl = P.Planner(net, cfg, point, calib.x, sensitivity=mode)
        print(f"{mode}: INT8 set up in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for b in sorted(args.budgets, reverse=True):
            t0 = time.perf_counter()
            try:
                res = pl.search(P.Budget(kind, b))
            except P.BudgetNotMet as exc:
                print(f"{mode} {kind}={b:g}: {exc}", file=sys.stderr)
                continue
            rows.append(Row(mode, f"{kind}={b:g}", res.rel(kind), res.chosen.cost, res.loss,
                            P.accuracy(res.qnet, x, y), P.accuracy(res.qnet, x[k:], y[k:]),
                            P.summary(res.chosen.bits), time.perf_counter() - t0))

    print(f"\n| plan | sensitivity | {kind} / INT8 | latency / INT8 | energy / INT8 | "
          f"loss | test acc. ({len(x)}) | held out ({len(x) - k}) | bits |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        c = r.cost
        loss = "" if r.loss is None else f"{r.loss:.3f}"
        print(f"| {r.label} | {r.series} | {r.rel:.3f} | "
              f"{c.latency_s / ref.latency_s:.3f} | {c.energy_j / ref.energy_j:.3f} | {loss} | "
              f"{r.acc:.4f} | {r.held:.4f} | {r.plan} |")
    walls = [r.wall for r in rows if r.wall is not None]
    if walls:
        print(f"\nsearch wall time per budget (shared caches): {min(walls):.1f} to "
              f"{max(walls):.1f} s")
    if args.plot:
        plot(rows, args.plot, kind, f"{net.name} on {cfg.name}, {point.tech} at "
                                    f"{point.vdd:g} V: test accuracy ({len(x)} images) against "
                                    f"predicted {kind}")
        print(f"wrote {args.plot}")
    return 0


def plot(rows: list[Row], path: Path, kind: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    style = {"network": ("o-", "C0"), "isolated": ("s--", "C2")}
    for series, (fmt, color) in style.items():
        pts = sorted((r.rel, r.acc) for r in rows if r.series == series)
        if pts:
            ax.plot(*zip(*pts, strict=True), fmt, color=color, ms=4,
                    label=f"bfimna plan ({series} sensitivity)")
    for r in rows:
        if r.series == "shipped":
            ax.plot(r.rel, r.acc, "*", color="C3", ms=11)
            ax.annotate(r.label, (r.rel, r.acc), textcoords="offset points",
                        xytext=(6, -10), fontsize=8)
    ax.plot([], [], "*", color="C3", ms=11, label="shipped plans")
    ax.set_xlabel(f"predicted {kind} / INT8's")
    ax.set_ylabel("test accuracy (integer reference)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
