"""FPGA benchmark: how the board top's resources grow with the arrays, how good the
resource estimate of hdl/flow/fpga/estimate.py is, and Fmax after place and route.

    python scripts/bench_fpga.py --out build/fpga/bench            # about an hour
    python scripts/bench_fpga.py --out build/fpga/bench --quick    # ~5 min
    python scripts/bench_fpga.py --out build/fpga/core --core      # the AP core alone
    python scripts/bench_fpga.py --fit                             # the fits, no synthesis

1. Synthesis sweep for ECP5-85k over CAP rows x columns (one MAP sized like the CAP,
   as in configs/ap2d_37x16.yaml) with one tile, and a smaller grid with two tiles:
   LUTs and FFs, the estimate next to each (fitted to hdl/flow/fpga/calibration.csv) and
   the leave-one-out error (the model refitted without the point predicts it). The
   sweep's CSVs (sweep-t1/sweep.csv, sweep-t2/sweep.csv) are in the format of
   hdl/flow/fpga/calibration.csv: concatenate them there to recalibrate (the
   `port_register` column keeps designs with and without the tile's port register
   apart: each is fitted to its own points).
2. Place and route on ECP5-25k over a small grid: utilisation and Fmax against the
   ULX3S's 25 MHz.

With --fit, nothing is synthesised: the fit of calibration.csv (with and without the
port register) is printed per term, with the largest CAP (one MAP shaped like it, one
tile) whose estimate fits each ECP5 part.

With --core, only the AP core (hdl/gen/ap.py) is synthesised for ECP5, alone, for a few
shapes (CORE_SHAPES): its LUTs, FFs and LUTs per CAM bit, without the controller and the
board top around it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import verilog

from bfimna.golden.spec.config import APConfig, load_config
from bfimna.hdl.flow.fpga.estimate import (
    CALIBRATION_FILE,
    calibration_points,
    estimate,
    features,
    fit_model,
    model_value,
)
from bfimna.hdl.flow.fpga.flow import tool
from bfimna.hdl.flow.fpga.report import resources_from_cells
from bfimna.hdl.flow.fpga.sweep import sweep
from bfimna.hdl.gen.ap import APCore, ap_module_name

ROOT = Path(__file__).resolve().parents[1]


def leave_one_out(points: list[dict]) -> list[float]:
    """Relative LUT error (%) of each point predicted by a model fitted to the others."""
    out = []
    for i, p in enumerate(points):
        m = fit_model(points[:i] + points[i + 1:])
        f = features(int(p["rows"]), int(p["cols"]), int(p["maps"]), int(p["rows"]),
                     int(p["cols"]), int(p["tiles"]))
        pred = model_value(m, "luts", f)
        out.append(100 * (pred - float(p["luts"])) / float(p["luts"]))
    return out


# (dims, rows, cols) of the --core benchmark
CORE_SHAPES = [(2, 16, 16), (2, 32, 16), (2, 16, 32), (2, 32, 32), (2, 64, 16), (1, 16, 16),
               (1, 64, 16)]


def core_bench(out: Path) -> None:
    """Synthesise the AP core alone for ECP5 for each of CORE_SHAPES; print a table."""
    out.mkdir(parents=True, exist_ok=True)
    print("| AP core | CAM bits | LUTs | LUT4 | CCU2C | FFs | LUTs per bit | synthesis s |")
    print("|---|---|---|---|---|---|---|---|")
    for dims, r, c in CORE_SHAPES:
        ap = APConfig(rows=r, cols=c, dims=dims, counter_bits=24)
        name = ap_module_name(ap)
        (out / f"{name}.v").write_text(verilog.convert(APCore(ap), name=name, emit_src=False))
        t0 = time.perf_counter()
        subprocess.run([tool("yosys"), "-q", "-p", f"read_verilog {name}.v; synth_ecp5 -top "
                        f"{name}; tee -q -o {name}.stat.json stat -json"], cwd=out, check=True,
                       stdout=subprocess.DEVNULL)
        cells = json.loads((out / f"{name}.stat.json").read_text())["design"][
            "num_cells_by_type"]
        used = resources_from_cells("ecp5", cells)
        print(f"| {dims}D {r}x{c} | {r * c:,} | {used['luts']:,} | {cells.get('LUT4', 0):,} | "
              f"{cells.get('CCU2C', 0)} | {used['ffs']:,} | {used['luts'] / (r * c):.2f} | "
              f"{time.perf_counter() - t0:.0f} |", flush=True)


def largest(model: dict, luts: int, rows=None, cols=None) -> tuple[int, int, float]:
    """The largest CAP (rows x cols, one MAP shaped like it, one tile) the fitted model
    puts within `luts`: square unless rows or cols is fixed. (rows, cols, its LUTs)."""
    best = (0, 0, 0.0)
    for n in range(1, 2049):
        r, c = rows or n, cols or n
        need = model_value(model, "luts", features(r, c, 1, r, c, 1))
        if need > luts:
            break
        best = (r, c, need)
    return best


def fit_report() -> None:
    """calibration.csv's fits, per term, and the largest CAPs they put in each part."""
    from bfimna.hdl.flow.fpga.targets import TARGETS
    terms = ("constant", "per tile", "per CAM bit", "per AP column", "per AP row")
    for preg in (False, True):
        pts = calibration_points(preg)
        m = fit_model(pts)
        print(f"\nport_register {preg}: {len(pts)} points, max error "
              f"{m['max_error_pct']:.1f}%")
        for k in ("luts", "ffs"):
            print(f"  {k}: " + ", ".join(f"{v:,.1f} {t}" for v, t in
                                         zip(m[k], terms, strict=True)))
        loo = leave_one_out(pts)
        print(f"  leave-one-out LUT error: {min(loo):+.1f}% to {max(loo):+.1f}%")
        for name in ("ecp5-25k", "ecp5-85k"):
            cap = TARGETS[name].capacity["luts"]
            sq = largest(m, cap)
            c16, c32 = largest(m, cap, cols=16), largest(m, cap, cols=32)
            print(f"  {name} ({cap:,} LUTs): square {sq[0]} x {sq[1]} ({sq[2]:,.0f}); "
                  f"16 columns: {c16[0]} rows; 32 columns: {c32[0]} rows")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "fpga" / "bench")
    ap.add_argument("--quick", action="store_true", help="a 2 x 1 grid of each kind")
    ap.add_argument("--core", action="store_true", help="only the AP core alone, a few shapes")
    ap.add_argument("--fit", action="store_true",
                    help="only calibration.csv's fits and the largest CAPs (no synthesis)")
    args = ap.parse_args()
    if args.fit:
        fit_report()
        return 0
    if args.core:
        core_bench(args.out)
        return 0
    base = load_config(ROOT / "configs" / "ap2d_37x16.yaml")
    say = lambda s: print("  " + s, flush=True)   # noqa: E731
    t0 = time.perf_counter()

    grids = ([([8, 16], [16], [1])] if args.quick else
             [([8, 16, 32, 64], [16, 32, 64], [1]), ([8, 32], [16, 32], [2])])
    points = []
    for rows, cols, tiles in grids:
        print(f"synthesis, ecp5-85k: rows {rows} x cols {cols} x tiles {tiles}", flush=True)
        points += sweep(base, "ecp5-85k", rows, cols, tiles, args.out / f"sweep-t{tiles[0]}",
                        progress=say)
    loo = leave_one_out(points) if len(points) > 6 else [float("nan")] * len(points)
    print("\n| rows x cols | tiles | CAM bits | LUTs | FFs | estimate | error | leave-one-out |")
    print("|---|---|---|---|---|---|---|---|")
    for p, e in zip(points, loo, strict=True):
        err = 100 * (p["est_luts"] - p["luts"]) / p["luts"]
        loo_s = f"{e:+.1f}%" if e == e else "-"          # nan: too few points to refit
        print(f"| {p['rows']}x{p['cols']} | {p['tiles']} | {p['cam_bits']:,} | {p['luts']:,} | "
              f"{p['ffs']:,} | {p['est_luts']:,} | {err:+.1f}% | {loo_s} |")
    ncal = len(calibration_points(base.tile.port_register))
    print(f"(estimate fitted to the {ncal} points of {CALIBRATION_FILE.name} with "
          f"port_register {base.tile.port_register})")

    rows, cols = ([8, 16], [16]) if args.quick else ([8, 16, 32], [16, 32])
    print(f"\nplace and route, ecp5-25k: rows {rows} x cols {cols} x tiles [1]", flush=True)
    pnr = sweep(base, "ecp5-25k", rows, cols, [1], args.out / "pnr-ecp5-25k", pnr=True,
                progress=say)
    print("\n| rows x cols | CAM bits | LUTs (nextpnr) | Fmax MHz | place and route s |")
    print("|---|---|---|---|---|")
    for p in pnr:
        luts = f"{p['pnr_luts']:,}" if p["pnr_luts"] != "" else "-"
        print(f"| {p['rows']}x{p['cols']} | {p['cam_bits']:,} | {luts} | "
              f"{p['fmax_mhz'] or 'does not fit'} | {p['pnr_s'] or '-'} |")
    default = load_config(ROOT / "configs" / "default.yaml")
    est = estimate(default)
    print(f"\ndefault config by the estimate: {est['luts']:,} LUTs, {est['ffs']:,} FFs "
          f"({est['cam_bits']:,} CAM bits)")
    print(f"wall {time.perf_counter() - t0:.0f} s; tables and plots in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
