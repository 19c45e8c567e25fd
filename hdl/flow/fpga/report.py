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


# router2's divergence (docs/fpga.md, "When router2 does not converge"): on this project's
# 41 place-and-route logs of 2026-11-26/27, every run that converged kept its overused-wire
# count below 2x its best so far once that best was 20 or more (the worst: 1.98x, then
# 0), and the 4 that never converged rose to 2.8x-8.3x their best and stayed there.
DIVERGE_RATIO = 2.5        # overused wires this many times the best so far
DIVERGE_MIN_BEST = 20      # ... once the best is at least this (the tails near 0 jitter)
DIVERGE_AFTER_ITERS = 10   # ... and the best is this many iterations old
# router2 stalled from the start (docs/fpga.md, the same section): in the 15 distinct runs
# of 2026-11-27 that converged or diverged late, the overused count at iteration 10 was 7%
# to 44% of its count at iteration 5; the runs that never came near converging stayed
# within about 15% of it (6,400 to 16,200 wires) until they were stopped by hand.
STALL_ITERS = (5, 10)      # compare the overused count at these two iterations
STALL_RATIO = 0.6          # stalled: the later count still this fraction of the earlier
STALL_MIN = 1000           # ... and at least this many wires (heavy congestion only)
_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+) wires=(\d+) overused=(\d+)", re.M)


def router2_divergence(log_text: str) -> str | None:
    """Why router2 (nextpnr's log so far) is not converging, or None: its overused-wire
    count has grown to DIVERGE_RATIO times its best, that best being at least
    DIVERGE_MIN_BEST and DIVERGE_AFTER_ITERS iterations old; or it has stalled: at
    iteration STALL_ITERS[1] the count is still STALL_RATIO or more of its count at
    STALL_ITERS[0], and at least STALL_MIN."""
    best, best_it = -1, 0
    early = None                       # the overused count at STALL_ITERS[0]
    for mt in _ROUTER2_ITER.finditer(log_text):
        it, over = int(mt.group(1)), int(mt.group(3))
        if it == STALL_ITERS[0]:
            early = over
        elif (it == STALL_ITERS[1] and early and over >= STALL_MIN
              and over >= STALL_RATIO * early):
            return (f"router2 is not converging: {over:,} overused wires at iteration {it}, "
                    f"still {over / early:.0%} of its {early:,} at iteration "
                    f"{STALL_ITERS[0]}")
        if best < 0 or over < best:
            best, best_it = over, it
        elif (best >= DIVERGE_MIN_BEST and it - best_it >= DIVERGE_AFTER_ITERS
              and over >= DIVERGE_RATIO * best):
            return (f"router2 is not converging: {over:,} overused wires at iteration {it}, "
                    f"{over / best:.1f}x its best ({best:,}, iteration {best_it})")
    return None


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


# Yosys / nextpnr name a mapped cell or net after a named net it is wired to plus the
# path through the cells ("sys.tile0.phase_end_LUT4_Z_D_LUT4_Z_D[3]"): the named net
# is the part before the first of these suffixes.
_MAPPED = re.compile(r"(_(LUT4|TRELLIS_|CCU2C|PFUMX|L6MUX21|DPR16X4|DP16KD|MULT18X18D|"
                     r"SB_|ICESTORM_)|\$(CCU2|nextpnr|glbnet)|\[)")
_SOURCE = re.compile(r"^(?P<file>[^:]+\.v):(?P<line>\d+)\.(?P<c0>\d+)-(?P<l1>\d+)\.(?P<c1>\d+)$")


def short_net(name: str) -> str:
    """The named net a mapped cell or net name starts from ("sys.tile0.phase_end_LUT4_Z_D
    [3]" -> "sys.tile0.phase_end"); names of the tools' own ("$nextpnr_CCU2C_397") stay."""
    if name.startswith("$"):
        return name
    mt = _MAPPED.search(name)
    return name[:mt.start()] if mt and mt.start() > 0 else name


def cell_signal(cell: str) -> str:
    """The register a flip-flop cell holds a bit of ("sys.tile0.iw_TRELLIS_FF_Q_7" ->
    "sys.tile0.iw": the number counts the register's flip-flops, it need not be the
    bit); other cells: their named net (short_net)."""
    mt = re.fullmatch(r"(.+?)_(?:TRELLIS_FF|SB_DFF\w*)_Q(?:_\d+)?", cell)
    return mt.group(1) if mt else short_net(cell)


def _source_names(sources: Any, verilog: list[str] | None) -> list[str]:
    """The identifiers at a net's source locations ("top.v:5880.14-5880.16") in the
    design's Verilog (`verilog`: its lines); locations in other files are skipped."""
    out: list[str] = []
    if not verilog or not isinstance(sources, list):
        return out
    for src in sources:
        mt = _SOURCE.match(str(src))
        if not mt or mt.group("file").startswith("/"):
            continue
        ln, c0, c1 = int(mt.group("line")), int(mt.group("c0")), int(mt.group("c1"))
        if not 1 <= ln <= len(verilog) or int(mt.group("l1")) != ln:
            continue
        ident = verilog[ln - 1][c0 - 1:c1 - 1].strip().lstrip("\\")
        if ident and re.fullmatch(r"[\w.$\\\[\]:]+", ident):
            out.append(ident)
    return out


def pnr_critical_paths(rep: dict[str, Any], verilog: list[str] | None = None,
                       max_nets: int = 12) -> list[dict[str, Any]]:
    """The critical paths of nextpnr's JSON report (`critical_paths`: one per clock pair,
    each a list of segments {type, from: {cell, port, loc}, to, delay, net, sources}),
    worst first: clock pair, start and end cell, logic levels (cell delays > 0 between
    the launching and the capturing flip-flop), total / logic / routing delay in ns, and
    the nets along it (shortened to the named net they start from, or the Verilog
    identifier of their source location when `verilog`, the design's lines, is given),
    at most `max_nets`. Anything missing or malformed counts as no path: never raises."""
    paths = rep.get("critical_paths") if isinstance(rep, dict) else None
    out: list[dict[str, Any]] = []
    if not isinstance(paths, list):
        return out
    for cp in paths:
        if not isinstance(cp, dict) or not isinstance(cp.get("path"), list):
            continue
        segs = [s for s in cp["path"] if isinstance(s, dict)]
        if not segs:
            continue

        def delay(s: dict[str, Any]) -> float:
            d = s.get("delay", 0)
            return float(d) if isinstance(d, (int, float)) else 0.0

        def cell(end: Any) -> str:
            return str(end.get("cell", "?")) if isinstance(end, dict) else "?"

        routing = sum(delay(s) for s in segs if s.get("type") == "routing")
        cells = sum(delay(s) for s in segs if s.get("type") != "routing")
        nets: list[str] = []
        for s in segs:
            if s.get("type") != "routing" or "net" not in s:
                continue
            if str(s["net"]).startswith("$nextpnr"):
                continue                  # the placer's own (a split carry chain)
            names = [short_net(str(s["net"]))]
            if names[0].startswith("$"):     # a net of the tools: name it by its source
                names = _source_names(s.get("sources"), verilog) or names
            for nm in names:
                if not nets or nets[-1] != nm:
                    nets.append(nm)
        more = max(0, len(nets) - max_nets)
        out.append({
            "from_clock": str(cp.get("from", "?")), "to_clock": str(cp.get("to", "?")),
            "start": cell(segs[0].get("from")), "end": cell(segs[-1].get("to")),
            "start_signal": cell_signal(cell(segs[0].get("from"))),
            "end_signal": cell_signal(cell(segs[-1].get("to"))),
            "logic_levels": sum(1 for s in segs if s.get("type") == "logic" and delay(s) > 0),
            "delay_ns": round(routing + cells, 3), "logic_ns": round(cells, 3),
            "routing_ns": round(routing, 3),
            "nets": nets[:max_nets] + ([f"... {more} more"] if more else [])})
    out.sort(key=lambda p: -p["delay_ns"])
    return out


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


def critical_path_table(paths: list[dict[str, Any]]) -> list[str]:
    """summary.md's table of the critical paths (pnr_critical_paths), worst first."""
    if not paths:
        return []
    lines = ["", "Critical paths (nextpnr: the worst path of each clock pair):", "",
             "| clocks | from | to | logic levels | delay ns | logic ns | routing ns | "
             "nets along it |", "|---|---|---|---|---|---|---|---|"]
    for p in paths:
        clocks = (p["from_clock"] if p["from_clock"] == p["to_clock"]
                  else f"{p['from_clock']} -> {p['to_clock']}")
        nets = " > ".join(f"`{n}`" for n in p["nets"])
        lines.append(f"| {clocks} | `{p['start_signal']}` | `{p['end_signal']}` | "
                     f"{p['logic_levels']} | "
                     f"{p['delay_ns']:.2f} | {p['logic_ns']:.2f} | {p['routing_ns']:.2f} | "
                     f"{nets} |")
    return lines


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
    lines += critical_path_table(report.get("critical_paths", []))
    if "timing_met" in report and not report.get("fmax_mhz"):
        lines.append("\nFmax: none reported (timing NOT met)")
    for p in report.get("problems", []):
        lines.append(f"\nDoes not fit: {p}")
    for d in report.get("seeds_tried", []):
        lines.append(f"\nPlace and route, seed {d['seed']}: {d['stopped']} ({d['log']})")
    if "seed" in report:
        stopped = [str(d["seed"]) for d in report.get("seeds_tried", [])]
        tried = f" (stopped before it: {', '.join(stopped)})" if stopped else ""
        placer = f", nextpnr's {report['placer']} placer (--placer)" if "placer" in report else ""
        lines.append(f"\nPlace and route: routed with seed {report['seed']}{tried}{placer}")
    if report.get("abc9_delay_ns") is not None:
        lines.append(f"\nSynthesis: ABC9's delay target {report['abc9_delay_ns']:g} ns "
                     f"(--abc9-delay-ns)")
    if report["wall_s"]:
        lines.append("\nWall time: " + ", ".join(f"{k.replace('_', ' ')} {v} s"
                                               for k, v in report["wall_s"].items()))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
