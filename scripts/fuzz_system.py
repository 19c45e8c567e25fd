#!/usr/bin/env python3
"""Fuzz campaign on the system top's AXI4-Stream: seeded cases for a given wall time.

Each case (cosim/replay/system.py: run_fuzz_case) sends random bytes and random malformed
packets under random idle and back-pressure to the emitted system top, drains it, resets
it and sends the worked example of docs/system.md. A case passes when the system never
hung, emitted before the reset exactly the golden system's output beats, was busy at the
reset exactly when golden was inside a packet, and answered the worked example (responses
and every register word) exactly as golden. tests/test_fuzz_system.py runs 8 such cases
in `make test`; this is the long campaign.

    python scripts/fuzz_system.py --seed 1 --seconds 3600 [--config configs/sys_t2k2.yaml]
        [--sim verilator] [--words 150 400] [--json out.json]

Prints the cases run, words sent, bad packets and cases per second; every failing case
with its seed and the command that reruns its simulation. Exit status 1 when a case
failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "examples"))
from host_example import build as worked_example  # noqa: E402  (docs/system.md's)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="campaign seed")
    ap.add_argument("--seconds", type=float, required=True, help="wall time to fuzz for")
    ap.add_argument("--config", default=str(ROOT / "configs" / "sys_t2k2.yaml"))
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--words", type=int, nargs=2, default=(150, 400), metavar=("MIN", "MAX"),
                    help="fuzz words per case (default 150 400)")
    ap.add_argument("--build-root", default=str(ROOT / "build" / "test-cosim"),
                    help="build directory (default: the tests', whose build it reuses)")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or not 1 <= args.words[0] <= args.words[1]:
        ap.error("--seconds must be > 0 and --words MIN MAX with 1 <= MIN <= MAX")

    from bfimna.cosim.replay.system import run_fuzz_case
    from bfimna.golden.spec.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as e:
        print(f"fuzz_system: {e}", file=sys.stderr)
        return 2
    try:
        after = worked_example(cfg)
    except ValueError as e:
        print(f"fuzz_system: {args.config} cannot run the worked example ({e}); it needs "
              f"a MAP 1 of 16 columns or more", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    cases = words = bad = inside = 0
    failures: list[dict] = []
    total = round(args.seconds)
    with tqdm(total=total, unit="s", desc="fuzz") as bar:
        while time.monotonic() - t0 < args.seconds:
            s = rng.randrange(2**31)
            idle, bp = rng.choice([0.0, 0.3, 0.7]), rng.choice([0.0, 0.3, 0.7])
            n = rng.randint(*args.words)
            res = run_fuzz_case(cfg, args.sim, s, n, after, Path(args.build_root),
                                idle=idle, backpressure=bp, inside=cases % 2 == 0)
            cases += 1
            words += res["words"]
            bad += res["bad_packets"]
            inside += res["inside_packet"]
            if res["problems"]:
                failures.append({"case_seed": s, "idle": idle, "backpressure": bp,
                                 "words": n, "problems": res["problems"],
                                 "rerun": res["run"].command})
                tqdm.write(f"FAIL case seed {s}: {res['problems']}; rerun: "
                           f"{res['run'].command}")
            else:
                res["run"].cleanup()
            bar.n = min(round(time.monotonic() - t0), total)
            bar.set_postfix(cases=cases, failures=len(failures))
    wall = time.monotonic() - t0
    summary = {"seed": args.seed, "config": cfg.name, "sim": args.sim, "cases": cases,
               "words": words, "bad_packets": bad, "ended_inside_packet": inside,
               "wall_s": round(wall, 1), "cases_per_s": round(cases / wall, 3),
               "failures": failures}
    print(f"| seed | config | sim | cases | words | bad packets | wall s | cases/s | failed |\n"
          f"|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.seed} | {cfg.name} | {args.sim} | {cases} | {words} | {bad} | "
          f"{wall:.0f} | {cases / wall:.2f} | {len(failures)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
