#!/usr/bin/env python3
"""Fuzz campaign on the board top's UART link: seeded cases for a given wall time.

Each case (cosim/replay/board.py: fuzz_run) sends the board top, through its replay
harness, random pieces of host input: random bytes, bytes with a low stop bit (framing
errors), commands cut short by a framing error, random and well-formed 'W' beats, 'S',
'Z' and register reads; then the link's reset 'Z' and the worked example of
docs/system.md. The host waits for every answer golden's board (golden/model/board.py)
gives, as the link protocol requires. A case passes when the board never hung, sent
exactly golden's replies and output beats (never a byte golden's board does not send),
and every register read at the end equals golden's. tests/test_replay_board.py runs 12
such cases in `make test`; this is the long campaign.

    python scripts/fuzz_board.py --seed 1 --seconds 3600 [--config configs/sys_t2k2.yaml]
        [--sim verilator] [--divisor 8] [--pieces 8] [--json out.json]

Prints the cases run, host bytes sent, link errors and cases per second; every failing
case with its seed and the command that reruns its simulation. Exit status 1 when a case
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
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="campaign seed")
    ap.add_argument("--seconds", type=float, required=True, help="wall time to fuzz for")
    ap.add_argument("--config", default=str(ROOT / "configs" / "sys_t2k2.yaml"))
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    ap.add_argument("--divisor", type=int, default=8,
                    help="UART clock cycles per bit (default 8, as the tests: their build)")
    ap.add_argument("--pieces", type=int, default=8,
                    help="random pieces of host input per case (default 8)")
    ap.add_argument("--build-root", default=str(ROOT / "build" / "test-cosim"),
                    help="build root (default the tests', whose board build it reuses)")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.pieces < 1 or args.divisor < 4:
        ap.error("--seconds must be > 0, --pieces >= 1 and --divisor >= 4")

    from bfimna.cosim.replay.board import fuzz_run
    from bfimna.golden.spec.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError) as e:
        print(f"fuzz_board: {e}", file=sys.stderr)
        return 2
    try:
        after = worked_example(cfg)
    except ValueError as e:
        print(f"fuzz_board: {args.config} cannot run the worked example ({e}); it needs "
              f"a MAP 1 of 16 columns or more", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    cases = 0
    totals = {"bytes": 0, "link_errors": 0, "beats": 0, "cycles": 0}
    failures: list[dict] = []
    total = round(args.seconds)
    with tqdm(total=total, unit="s", desc="fuzz board") as bar:
        while time.monotonic() - t0 < args.seconds:
            s = rng.randrange(2**31)
            wrong, info, run = fuzz_run(cfg, args.sim, s, after, Path(args.build_root),
                                        args.divisor, args.pieces)
            cases += 1
            for k in totals:
                totals[k] += info[k]
            if wrong:
                failures.append({"case_seed": s, "problems": wrong, "rerun": run.command})
                tqdm.write(f"FAIL case seed {s}: {'; '.join(wrong)}; rerun: {run.command}")
            else:
                run.cleanup()
            bar.n = min(round(time.monotonic() - t0), total)
            bar.set_postfix(cases=cases, failures=len(failures))
    wall = time.monotonic() - t0
    summary = {"seed": args.seed, "config": cfg.name, "sim": args.sim,
               "divisor": args.divisor, "pieces": args.pieces, "cases": cases, **totals,
               "wall_s": round(wall, 1), "cases_per_s": round(cases / wall, 3),
               "failures": failures}
    print(f"| seed | config | sim | cases | host bytes | link errors | output beats | "
          f"cycles | wall s | cases/s | failed |\n"
          f"|---|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.seed} | {cfg.name} | {args.sim} | {cases} | {totals['bytes']} | "
          f"{totals['link_errors']} | {totals['beats']} | {totals['cycles']} | {wall:.0f} | "
          f"{cases / wall:.2f} | {len(failures)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
