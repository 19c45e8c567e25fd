"""Summarise a pytest JUnit report (`make test` writes build/test-report.xml).

    python scripts/test_times.py [build/test-report.xml] [--top 15]

Prints the number of tests, the sum of their durations (what the same tests cost run one
after another in one process: a serial run without the xdist workers' overlap, and
without build-lock waits counted twice), and the slowest tests and files. Durations
under `-n 2` include the slowdown of sharing two cores, so the sum overestimates a
serial run on an idle machine somewhat; say so when quoting it.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def _module(classname: str) -> str:
    """The test file of a JUnit classname (tests.test_x or tests.test_x.TestClass)."""
    return next((p for p in classname.split(".") if p.startswith("test_")), classname)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, nargs="?", default=Path("build/test-report.xml"))
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    try:
        root = ET.parse(args.report).getroot()
    except (OSError, ET.ParseError) as exc:
        print(f"test_times: cannot read {args.report}: {exc}", file=sys.stderr)
        return 2
    cases = [(c.get("classname", ""), c.get("name", ""), float(c.get("time", 0) or 0),
              "skipped" if c.find("skipped") is not None else
              "failed" if c.find("failure") is not None or c.find("error") is not None
              else "passed") for c in root.iter("testcase")]
    total = sum(t for _c, _n, t, _s in cases)
    by_state: dict[str, int] = defaultdict(int)
    for *_x, s in cases:
        by_state[s] += 1
    print(f"{len(cases)} tests ({', '.join(f'{v} {k}' for k, v in sorted(by_state.items()))}); "
          f"sum of durations {total:.0f} s ({total / 60:.1f} min)")
    by_file: dict[str, float] = defaultdict(float)
    for cls, _n, t, _s in cases:
        by_file[_module(cls)] += t
    print(f"\n| slowest files (top {args.top}) | s |\n|---|---:|")
    for f, t in sorted(by_file.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"| {f} | {t:.0f} |")
    print(f"\n| slowest tests (top {args.top}) | s |\n|---|---:|")
    for cls, name, t, _s in sorted(cases, key=lambda c: -c[2])[:args.top]:
        print(f"| {_module(cls)}::{name} | {t:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
