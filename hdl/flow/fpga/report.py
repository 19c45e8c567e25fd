"""Reading the tools' reports and logs (Yosys's `stat -json`, nextpnr's JSON report and its
log) into resource counts, and writing the flow's own report (report.json, summary.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bfimna.hdl.flow.fpga.estimate import REFUSE_FACTOR
from bfimna.hdl.flow.fpga.targets import Target


def yosys_cells(stat: dict[str, Any]) -> dict[str, int]:
    """Cell counts of the (flattened) top from Yosys's `stat -json`."""
    design = stat.get("design") or next(iter(stat["modules"].values()))
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()
            if not k.startswith("$scopeinfo")}


def resources_from_cells(family: str, cells: dict[str, int]) -> dict[str, int]:
    """LUTs, FFs, block RAMs and DSPs of a synthesised design from its cell counts (ECP5:
    a carry cell counts as 2 LUTs, a 16x4 LUT RAM as 4)."""
    if family == "ecp5":
        return {"luts": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                + 4 * cells.get("TRELLIS_DPR16X4", 0),
                "ffs": cells.get("TRELLIS_FF", 0), "bram": cells.get("DP16KD", 0),
                "dsp": cells.get("MULT18X18D", 0)}
    return {"luts": cells.get("SB_LUT4", 0),
            "ffs": sum(v for k, v in cells.items() if k.startswith("SB_DFF")),
            "bram": cells.get("SB_RAM40_4K", 0), "dsp": cells.get("SB_MAC16", 0)}


def pnr_overuse(log_text: str) -> list[str]:
    """Resources nextpnr reports above 100% ("Info:  ICESTORM_LC: 7334/ 5280 138%")."""
    out = []
    for mt in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", log_text, re.M):
        name, used, avail = mt.group(1), int(mt.group(2)), int(mt.group(3))
        if used > avail:
            out.append(f"{name}: needs {used:,}, the part has {avail:,} ({used - avail:,} too "
                       f"many, {100 * (used - avail) / avail:.0f}% over)")
    return out


def pnr_utilisation(t: Target, rep: dict[str, Any],
                    synth_used: dict[str, int]) -> dict[str, dict[str, int]]:
    """{luts, ffs, bram, dsp, io: {used, available}} from nextpnr's JSON report `rep` (on
    iCE40 the FFs are synthesis's count: nextpnr counts them inside its logic cells)."""
    util = rep.get("utilization", {})

    def u(*names: str) -> dict[str, int]:
        used_ = sum(util.get(n, {}).get("used", 0) for n in names)
        avail = sum(util.get(n, {}).get("available", 0) for n in names)
        return {"used": used_, "available": avail}

    if t.family == "ecp5":
        return {"luts": u("TRELLIS_COMB"), "ffs": u("TRELLIS_FF"), "bram": u("DP16KD"),
                "dsp": u("MULT18X18D"), "io": u("TRELLIS_IO")}
    return {"luts": u("ICESTORM_LC"), "ffs": {"used": synth_used["ffs"],
                                              "available": t.capacity["ffs"]},
            "bram": u("ICESTORM_RAM"), "dsp": u("ICESTORM_DSP"), "io": u("SB_IO")}


def pnr_fmax(rep: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{clock: {achieved, constraint}} in MHz from nextpnr's JSON report."""
    return {clk: {"achieved": round(v.get("achieved", 0), 2),
                  "constraint": round(v.get("constraint", 0), 2)}
            for clk, v in rep.get("fmax", {}).items()}


def read_pnr_report(path: Path) -> dict[str, Any]:
    """nextpnr's JSON report; a missing, empty or truncated one (a tool that stopped
    half-way) is an error, not an empty report."""
    from bfimna.hdl.flow.fpga.targets import FpgaError
    if not path.exists():
        raise FpgaError(f"place and route finished without writing {path.name}; see "
                        f"{path.parent / 'nextpnr.log'}")
    try:
        rep = json.loads(path.read_text())
    except ValueError as exc:
        raise FpgaError(f"{path} is not a complete JSON report ({exc})") from None
    if not isinstance(rep, dict):
        raise FpgaError(f"{path} is not a nextpnr report (a JSON {type(rep).__name__})")
    return rep


def timing_verdict(fmax: dict[str, dict[str, float]]) -> tuple[bool, list[str]]:
    """(timing met, why not): met only when the report names at least one clock and every
    clock has a positive achieved frequency at or above a positive constraint. An empty
    Fmax section (a failed or cut-short place and route) is not timing met."""
    if not fmax:
        return False, ["the place-and-route report has no Fmax for any clock"]
    why = []
    for clk, f in fmax.items():
        if not f.get("achieved", 0) > 0 or not f.get("constraint", 0) > 0:
            why.append(f"{clk}: no achieved frequency or constraint in the report ({f})")
        elif f["achieved"] < f["constraint"]:
            why.append(f"{clk}: {f['achieved']} MHz, constraint {f['constraint']} MHz")
    return not why, why


def write_report(out: Path, report: dict[str, Any]) -> None:
    """report.json and summary.md (the same as a table) into `out`."""
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# {report['config']} on {report['part']} ({report['board']})", ""]
    if report.get("estimated_only"):
        est = report["estimate"]
        lines += [f"Not synthesised: the resource estimate (hdl/flow/fpga/estimate.py, fitted "
                  f"to {est['calibration_points']} synthesised designs, each within "
                  f"{est['max_error_pct']}%) puts it beyond {REFUSE_FACTOR}x the part "
                  f"(`bfimna fpga --force` synthesises anyway).", ""]
    if "utilisation" in report:
        used = "estimated" if report.get("estimated_only") else "used"
        lines += [f"| resource | {used} | available | % |", "|---|---|---|---|"]
        for k, v in report["utilisation"].items():
            pct = 100 * v["used"] / v["available"] if v["available"] else 0
            lines.append(f"| {k} | {v['used']:,} | {v['available']:,} | {pct:.1f} |")
    for clk, f in report.get("fmax_mhz", {}).items():
        verdict = "meets" if f["achieved"] >= f["constraint"] > 0 else "MISSES"
        lines.append(f"\nFmax {clk}: {f['achieved']} MHz ({verdict} the constraint, "
                     f"{f['constraint']} MHz)")
    if "timing_met" in report and not report.get("fmax_mhz"):
        lines.append("\nFmax: none reported (timing NOT met)")
    for p in report.get("problems", []):
        lines.append(f"\nDoes not fit: {p}")
    if report["wall_s"]:
        lines.append("\nWall time: " + ", ".join(f"{k.replace('_', ' ')} {v} s"
                                               for k, v in report["wall_s"].items()))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
