#!/usr/bin/env python3
"""Benchmark: cosimulation speed in simulated cycles per second, on each simulator, for
  (1) the AP-core testbench, where Python drives and checks every cycle, and
  (2) the AP controller running a long program on its own (the program streamed in
      bulk, Python asleep until the end),
all in one run, so the ratios are meaningful on a noisy machine. Prints a table.

    python scripts/bench_cosim.py [--config configs/default.yaml] [--instructions 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bfimna.cosim.drivers.runner import run_ap_cosim, run_program_rtl
from bfimna.golden.host.stimulus import random_program
from bfimna.golden.model.controller import Controller
from bfimna.golden.spec.config import default_config_path, load_config
from bfimna.golden.spec.isa import RESERVED_COLS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=default_config_path())
    ap.add_argument("--ops", type=int, nargs=2, default=(20000, 3000),
                    metavar=("VERILATOR", "ICARUS"), help="AP-core micro-ops per simulator")
    ap.add_argument("--instructions", type=int, nargs=2, default=(400, 100),
                    metavar=("VERILATOR", "ICARUS"), help="controller program length")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--build-dir", type=Path, default=Path("build") / "bench")
    args = ap.parse_args()
    cfg = load_config(args.config)
    rng = np.random.default_rng(args.seed)

    rows = []
    for k, sim in enumerate(("verilator", "icarus")):
        print(f"[bench] {sim}: AP core, {args.ops[k]} micro-ops driven per cycle ...", flush=True)
        res = run_ap_cosim(cfg, sim, seed=args.seed, n_ops=args.ops[k],
                           build_root=args.build_dir)
        if not res.passed:
            raise SystemExit(f"{sim}: AP-core cosim failed, see {res.log}")
        s = res.summary
        rows.append((sim, "AP core, Python per cycle", s["cycles"], s["wall_s"], s["cycles_per_s"]))

        words = random_program(cfg.ap, args.seed, args.instructions[k])
        cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
        cam[:, -RESERVED_COLS:] = 0
        print(f"[bench] {sim}: controller, {len(words)}-instruction program ...", flush=True)
        run = run_program_rtl(cfg, sim, words, cam, build_root=args.build_dir)
        gold = Controller(cfg.ap)
        gold.ap.cam[:] = cam.astype(bool)
        gold.run(words)
        if not run.passed or run.rows != gold.ap.rows_as_ints():
            raise SystemExit(f"{sim}: controller run failed or differs from golden ({run.log})")
        s = run.summary
        rows.append((sim, "controller, program in bulk", s["sim_cycles"], s["wall_s"],
                     s["cycles_per_s"]))

    print(f"\n{cfg.name}: {cfg.ap.dims}D AP, {cfg.ap.rows} rows x {cfg.ap.cols} cols")
    print(f"{'simulator':<10} {'testbench':<28} {'cycles':>8} {'wall s':>7} {'cycles/s':>9}")
    for sim, what, cyc, wall, cps in rows:
        print(f"{sim:<10} {what:<28} {cyc:>8} {wall:>7.2f} {cps:>9.0f}")
    for sim in ("verilator", "icarus"):
        core, ctl = [r for r in rows if r[0] == sim]
        print(f"{sim}: controller on its own runs {ctl[4] / core[4]:.1f}x the cycles/s of "
              f"the per-cycle AP-core testbench")
    v = [r for r in rows if r[0] == "verilator"][1][4]
    i = [r for r in rows if r[0] == "icarus"][1][4]
    print(f"controller: verilator / icarus = {v / i:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
