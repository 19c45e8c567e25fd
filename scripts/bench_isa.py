#!/usr/bin/env python3
"""Benchmark: cycles per bit of the arithmetic macro-operations, searched microcode vs
the textbook figures, counted from the micro-op streams the controller issues.

    python scripts/bench_isa.py [--bits 4 8 16]
"""

from __future__ import annotations

import argparse

from bfimna.golden.spec.costs import cost_table
from bfimna.golden.spec.microcode import LUTS, TEXTBOOK

KEY_OPS = ("ADD", "SUB", "MUL.u", "MUL.s", "MAC.u", "MAC.s", "REDUCE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--rows", type=int, default=256, help="rows REDUCE sums over")
    args = ap.parse_args()
    print("per-bit LUTs (cycles for one bit position):")
    for name in ("add", "sub", "inc", "borrow", "cmov"):
        print(f"  {name:<7} searched {LUTS[name].cycles}  textbook {TEXTBOOK[name].cycles}")
    print(f"\n{'op':<8} {'bits':>4} {'cycles':>7} {'textbook':>9} {'cyc/bit':>8} "
          f"{'textbook/bit':>13} {'saved':>6}")
    for r in cost_table(tuple(args.bits), rows=args.rows):
        if r["op"] not in KEY_OPS:
            continue
        n = r["bits"]
        print(f"{r['op']:<8} {n:>4} {r['cycles']:>7} {r['textbook']:>9} "
              f"{r['cycles'] / n:>8.1f} {r['textbook'] / n:>13.1f} "
              f"{100 * (1 - r['cycles'] / r['textbook']):>5.0f}%")
    print("\nMUL: n x n bits; MAC: n-bit x by an n-bit constant with the most CSD digits, "
          "into 2n+4 bits; REDUCE: n-bit sums over 2^8 rows (8 stages). Per bit = / n.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
