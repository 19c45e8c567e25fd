"""The `bfimna` command: thin entry points over golden/, hdl/ and cosim/.

    bfimna verilog --config FILE --out DIR [--lint]
    bfimna cosim --sim {verilator,icarus} --config FILE [--seed N] [--ops N]

Every subcommand prints what it did; errors (bad config, missing tool, a failed check)
end with a one-line message and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .golden.config import ConfigError, default_config_path, load_config
from .hdl.ap import FAULTS
from .hdl.tools import ToolError


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=default_config_path(),
                   help="hardware configuration YAML (default: configs/default.yaml)")


def cmd_verilog(args) -> int:
    from .hdl.emit import emit
    from .hdl.lint import lint

    cfg = load_config(args.config)
    t0 = time.perf_counter()
    manifest = emit(cfg, args.out)
    for mod in manifest["modules"]:
        path = Path(args.out) / mod["file"]
        n_lines = len(path.read_text().splitlines())
        print(f"wrote {path} (module {mod['name']}, {n_lines} lines, "
              f"{len(mod['ports'])} ports)")
    print(f"wrote {Path(args.out) / 'manifest.json'} (config {cfg.name}, "
          f"sha256 {cfg.hash[:16]}...) in {time.perf_counter() - t0:.1f} s")
    if args.lint:
        for mod in manifest["modules"]:
            problems = lint([Path(args.out) / mod["file"]], mod["name"])
            if problems:
                print("\n\n".join(problems), file=sys.stderr)
                return 1
            print(f"lint {mod['name']}: verilator --lint-only -Wall (waivers: hdl/lint.py) "
                  f"and iverilog -g2012 clean")
    return 0


def cmd_cosim(args) -> int:
    from .cosim.runner import failure_excerpt, run_ap_cosim

    cfg = load_config(args.config)
    print(f"cosim: AP core of {cfg.name} ({cfg.ap.dims}D, {cfg.ap.rows} rows x "
          f"{cfg.ap.cols} cols) on {args.sim}, seed {args.seed}, {args.ops} random micro-ops",
          flush=True)
    print(f"  building the {args.sim} model (reused when the Verilog is unchanged; log in "
          f"{args.build_dir}/...)", flush=True)
    t0 = time.perf_counter()
    res = run_ap_cosim(cfg, args.sim, seed=args.seed, n_ops=args.ops,
                       build_root=args.build_dir, waves=args.waves, fault=args.inject_fault)
    wall = time.perf_counter() - t0
    if not res.passed:
        print(failure_excerpt(res), file=sys.stderr)
        fault = f" --inject-fault {args.inject_fault}" if args.inject_fault else ""
        print(f"FAILED: RTL differs from the golden model (log: {res.log}); reproduce with "
              f"`bfimna cosim --sim {args.sim} --config {args.config} --seed {args.seed} "
              f"--ops {args.ops}{fault}`", file=sys.stderr)
        return 1
    s = res.summary
    if args.json:
        print(json.dumps(s, indent=2))
    cnt = s["counters"]
    print(f"PASSED: {s['cycles']} cycles simulated, {s['checks']} output checks against the "
          f"golden model, 0 mismatches")
    print("  micro-ops issued: " + ", ".join(f"{k} {v}" for k, v in cnt.items()
                                             if k not in ("cycles",)))
    print(f"  coverage: {s['coverage']['compares_matching']} compares matched rows, "
          f"{s['coverage']['writes_to_rows']} tag writes hit rows, "
          f"{s['coverage']['illegal']} illegal micro-ops flagged")
    print("  whole array read back and compared at the end; hardware counters equal golden")
    print(f"  speed: {s['cycles_per_s']:.0f} simulated cycles/s ({args.sim}, Python driving "
          f"every cycle); wall {wall:.1f} s including build")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bfimna", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("verilog", help="emit the Verilog and a JSON manifest for a config")
    _config_arg(v)
    v.add_argument("--out", type=Path, required=True, help="output directory")
    v.add_argument("--lint", action="store_true",
                   help="also run verilator --lint-only -Wall and iverilog -g2012")
    v.set_defaults(func=cmd_verilog)

    c = sub.add_parser("cosim", help="cocotb cosimulation of the AP core against the golden model")
    c.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    _config_arg(c)
    c.add_argument("--seed", type=int, default=1, help="seed of the random micro-op stream")
    c.add_argument("--ops", type=int, default=20000, help="number of random micro-ops")
    c.add_argument("--build-dir", type=Path, default=Path("build") / "cosim")
    c.add_argument("--waves", action="store_true", help="record a waveform (VCD/FST)")
    c.add_argument("--json", action="store_true", help="also print the JSON summary")
    c.add_argument("--inject-fault", choices=sorted(FAULTS), default=None,
                   help="mutation testing: simulate a deliberately broken generator, which "
                        "the testbench must reject")
    c.set_defaults(func=cmd_cosim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"bfimna: configuration error: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a simulator build that failed, with its log excerpt
        print(f"bfimna: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
