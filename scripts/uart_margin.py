#!/usr/bin/env python3
"""How far off the board's baud rate a host's UART may run: the worked example of
docs/system.md over the board top's link (cosim/replay/board.py), with the host's bit time
swept around the board's divisor, on the same build.

A real link has two clocks: the board divides its own clock by an integer (the UART
divisor), the host's USB-serial chip makes its rate from another. With divisor D the
board samples each bit to within one clock cycle of its middle, so the rates may differ
by about (1/2 - 1/D) / 9.5 (the stop bit, 9.5 bits after the start edge, must still be
sampled inside itself): 3.9% for D = 8. This measures it: a point passes when the run's
responses, status and counters equal the golden system's.

    python scripts/uart_margin.py [--config configs/sys_t2k2.yaml] [--sim verilator]
        [--divisor 8] [--percent -6 -4 -3 0 3 4 6] [--csv out.csv]

Prints one row per host rate (pass, or the first problem) and the passing range.
Exit status 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "examples"))

from host_example import build as worked_example  # noqa: E402

from bfimna.cosim.drivers.backends import DriverError, backend, compare  # noqa: E402
from bfimna.golden.spec.config import ConfigError, load_config  # noqa: E402

DEFAULT_PERCENT = [-8, -6, -5, -4, -3.5, -3, -2, 0, 2, 3, 3.5, 4, 4.5, 5, 6, 8]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "sys_t2k2.yaml"))
    ap.add_argument("--sim", choices=["verilator", "icarus"], default="verilator")
    ap.add_argument("--divisor", type=int, default=8, help="the board's cycles per bit (>= 4)")
    ap.add_argument("--percent", type=float, nargs="+", default=DEFAULT_PERCENT,
                    help="host bit time off the board's, in percent (+: a slower host)")
    ap.add_argument("--build-root", default=str(ROOT / "build" / "test-cosim"))
    ap.add_argument("--csv", help="write the table here too")
    args = ap.parse_args(argv)
    if args.divisor < 4:
        ap.error(f"--divisor {args.divisor}: the UART needs at least 4 cycles per bit")
    if any(not -50 < p < 100 for p in args.percent):
        ap.error("--percent: each value must be above -50 and below 100")
    if args.divisor * (1 + min(args.percent) / 100) < 2:
        ap.error(f"--percent {min(args.percent):g} at divisor {args.divisor}: the host's bit "
                 f"time must be at least 2 cycles")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        ap.error(str(exc))
    prog = worked_example(cfg)
    gold = backend("golden", cfg).run(prog)
    rows = []
    for pct in sorted(args.percent):
        host_bit = args.divisor * (1 + pct / 100)
        rtl = backend(args.sim, cfg, build_root=args.build_root, link="uart",
                      divisor=args.divisor, host_bit=host_bit)
        t0 = time.perf_counter()
        try:
            diffs = compare(gold, rtl.run(prog), prog)
            result = "pass" if not diffs else "differs: " + diffs[0]
        except DriverError as exc:
            result = "fails: " + str(exc).split("\n")[0][:160]
        rows.append({"percent": pct, "host_cycles_per_bit": round(host_bit, 4),
                     "board_divisor": args.divisor, "result": result,
                     "wall_s": round(time.perf_counter() - t0, 2)})
        print(f"host {pct:+5.1f}% ({host_bit:7.3f} cycles/bit): {result}", flush=True)
    ok = [r["percent"] for r in rows if r["result"] == "pass"]
    print(f"{cfg.name}, divisor {args.divisor}, {args.sim}: passes from {min(ok):+g}% to "
          f"{max(ok):+g}%" if ok else "no host rate passed")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
