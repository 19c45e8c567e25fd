"""Lint of emitted Verilog: `verilator --lint-only -Wall` and `iverilog -g2012`.

The Verilog comes from Amaranth through Yosys' write_verilog, whose idioms trip a few
Verilator style warnings that say nothing about the design. These, and only these, are
waived, each for a stated reason; every other -Wall warning fails the lint.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bfimna.hdl.flow.tools import require, tool_env

WAIVERS = {
    "WIDTHEXPAND": "Yosys compares and assigns constants narrower than the other operand "
                   "(e.g. `op == 1'h1` against a 4-bit op); zero extension is intended",
    "WIDTHTRUNC": "Yosys applies `!` to multi-bit reductions and keeps wide temporaries "
                  "whose upper bits are dropped on assignment",
    "PROCASSINIT": "registers carry their reset value as a declaration initialiser and "
                   "are also assigned in an always block (Amaranth's `init=`)",
    "CASEINCOMPLETE": "Yosys emits `case` without `default` where the previous value "
                      "holds, which is the intended latch-free behaviour in always @*",
    "UNUSEDSIGNAL": "Yosys keeps named wires and wide temporaries whose upper bits, or "
                    "whole value, were folded into other expressions",
    "DECLFILENAME": "Amaranth writes a design's submodules into the top module's file, "
                    "named `top.sub` (e.g. the controller's AP core and queue)",
}

WAIVER_FILE = "waivers.vlt"


def waiver_text() -> str:
    lines = ["`verilator_config",
             "// Waivers for Amaranth/Yosys-generated Verilog (see hdl/flow/lint.py)."]
    for rule, why in WAIVERS.items():
        lines.append(f"// {rule}: {why}")
        lines.append(f'lint_off -rule {rule} -file "*"')
    return "\n".join(lines) + "\n"


def write_waivers(out_dir: Path) -> Path:
    path = Path(out_dir) / WAIVER_FILE
    path.write_text(waiver_text())
    return path


def lint(verilog_files: list[Path], top: str) -> list[str]:
    """Run both linters; return a list of problems (empty when clean)."""
    problems = []
    require("verilator")
    with tempfile.TemporaryDirectory() as tmp:
        vlt = write_waivers(Path(tmp))
        res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top,
                              str(vlt), *map(str, verilog_files)],
                             capture_output=True, text=True, env=tool_env())
        if res.returncode != 0:
            problems.append("verilator --lint-only -Wall:\n" + res.stderr.strip())
        require("icarus")
        out = Path(tmp) / "a.vvp"
        res = subprocess.run(["iverilog", "-g2012", "-s", top, "-o", str(out),
                              *map(str, verilog_files)], capture_output=True, text=True)
        if res.returncode != 0:
            problems.append("iverilog -g2012:\n" + (res.stderr or res.stdout).strip())
    return problems
