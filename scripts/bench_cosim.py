#!/usr/bin/env python3
"""Benchmark: cosimulation speed of the AP core, in simulated cycles per second.

Runs the same seeded random stream on each simulator, one after the other in one run
(so the ratio between them is meaningful on a noisy machine), and prints a table.
Python drives every cycle here; the speed is dominated by the cocotb <-> simulator
round trip and the golden model, not by the simulator alone.

    python scripts/bench_cosim.py [--config configs/default.yaml] [--ops 20000 3000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bfimna.cosim.runner import run_ap_cosim
from bfimna.golden.config import default_config_path, load_config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=default_config_path())
    ap.add_argument("--ops", type=int, nargs=2, default=(20000, 3000),
                    metavar=("VERILATOR", "ICARUS"), help="random micro-ops per simulator")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-dir", type=Path, default=Path("build") / "bench")
    args = ap.parse_args()
    cfg = load_config(args.config)

    rows = []
    for sim, n in zip(("verilator", "icarus"), args.ops):
        print(f"[bench] {sim}: building and running {n} micro-ops ...", flush=True)
        t0 = time.perf_counter()
        res = run_ap_cosim(cfg, sim, seed=args.seed, n_ops=n, build_root=args.build_dir)
        if not res.passed:
            raise SystemExit(f"{sim}: cosim failed, see {res.log}")
        s = res.summary
        rows.append((sim, s["cycles"], s["wall_s"], s["cycles_per_s"], time.perf_counter() - t0))

    print(f"\nAP core {cfg.name}: {cfg.ap.dims}D, {cfg.ap.rows} rows x {cfg.ap.cols} cols")
    print(f"{'simulator':<10} {'cycles':>8} {'sim s':>7} {'cycles/s':>9} {'total s':>8}")
    for sim, cyc, wall, cps, total in rows:
        print(f"{sim:<10} {cyc:>8} {wall:>7.2f} {cps:>9.0f} {total:>8.1f}")
    if len(rows) == 2:
        print(f"verilator / icarus speed ratio: {rows[0][3] / rows[1][3]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
