"""Build and start a replay simulation: an HDL testbench (the harness) around an emitted top,
compiled once per configuration, top and simulator, then run as a plain process with
plusargs naming its stimulus and response files.

Why not through cocotb here: a replay run needs nothing from Python while the clock runs
(the stimulus is in a file, the checks happen on the response file afterwards), and
cocotb's Verilator build makes every signal public (`--public-flat-rw`, `--vpi`), which
stops Verilator from optimising the design; its main loop also polls the VPI callbacks at
every time step. A standalone `verilator --binary --timing` build (and `iverilog` +
`vvp` for Icarus) from the same two Verilog files runs at the simulator's own speed
(scripts/bench_cosim.py measures all three paths). The cocotb testbenches (cosim/tb/) stay
for the protocol tests; every check a replay run makes is made in Python on its response
file, against the same golden models.

Build directory (shared by every run and every pytest worker, built under the same file
lock as the cocotb builds, cosim/drivers/runner.py):
    <build_root>/<config>-<hash>/<unit>-replay-<sim>[-fst]/
holding harness.v, dut.v and the simulator's output (obj_dir/Vreplay or sim.vvp); a build
is redone only when one of the two sources changed (a stamp holds their digest).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bfimna.cosim.drivers.runner import (
    CosimBuildError,
    _write_if_changed,
    build_dir_for,
    build_lock,
    icarus_text,
    run_tag,
)
from bfimna.golden.spec.config import Config
from bfimna.hdl.flow.tools import require, verilator_build_env

HARNESS_TOP = "replay_tb"


@dataclass
class ReplayBuild:
    sim: str
    bdir: Path
    exe: Path            # Verilator: the binary; Icarus: the .vvp file
    built: bool          # this call compiled it (False: reused)
    build_s: float


def verilator_threads() -> int:
    """Threads of the Verilator model (BFIMNA_VERILATOR_THREADS, default 1). Measured on the
    default system top, a 237k-cycle program, 2 idle cores: 2 threads simulate 1.39x as
    fast (180k vs 129k cycles/s) for about twice the CPU, and need a build of their own
    (minutes). It pays for one long run on an idle machine (a whole-network `bfimna run`),
    not under `pytest -n 2`, where the workers already use both cores (docs/cosim.md)."""
    return max(1, int(os.environ.get("BFIMNA_VERILATOR_THREADS", "1")))


def build_replay(cfg: Config, sim: str, unit: str, dut_text: str, harness_text: str,
                 build_root: Path, waves: bool = False) -> ReplayBuild:
    """Compile harness + DUT for `sim` unless an identical build exists."""
    require(sim)
    threads = verilator_threads() if sim == "verilator" else 1
    name = f"{unit}-replay-{sim}" + (f"-t{threads}" if threads > 1 else "") + (
        "-fst" if waves else "")
    bdir = build_dir_for(cfg, sim, Path(build_root), unit=name).parent / name
    if sim == "icarus":
        dut_text = icarus_text(dut_text)
    digest = hashlib.sha256((harness_text + "\0" + dut_text + f"\0{threads}{waves}")
                            .encode()).hexdigest()
    t0 = time.perf_counter()
    with build_lock(bdir):
        _write_if_changed(bdir / "harness.v", harness_text)
        _write_if_changed(bdir / "dut.v", dut_text)
        stamp = bdir / "build.stamp"
        exe = bdir / ("obj_dir/Vreplay" if sim == "verilator" else "sim.vvp")
        if exe.exists() and stamp.exists() and stamp.read_text() == digest:
            return ReplayBuild(sim, bdir, exe, False, time.perf_counter() - t0)
        stamp.unlink(missing_ok=True)
        log = bdir / "build.log"
        if sim == "verilator":
            shutil.rmtree(bdir / "obj_dir", ignore_errors=True)
            cmd = ["verilator", "--binary", "--timing", "-Wno-fatal", "-Wno-lint",
                   "-Wno-style", "--top-module", HARNESS_TOP, "-o", "Vreplay",
                   "--Mdir", "obj_dir", "-CFLAGS", "-fcoroutines", "-j", "2",
                   "harness.v", "dut.v"]
            if threads > 1:
                cmd[1:1] = ["--threads", str(threads)]
            if waves:
                cmd[1:1] = ["--trace-fst"]
            env = verilator_build_env()
        else:
            cmd = ["iverilog", "-g2005", "-o", "sim.vvp", "-s", HARNESS_TOP,
                   "harness.v", "dut.v"]
            env = dict(os.environ)
        with open(log, "w") as fh:
            proc = subprocess.run(cmd, cwd=bdir, stdout=fh, stderr=subprocess.STDOUT, env=env)
        if proc.returncode != 0 or not exe.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise CosimBuildError(f"{sim} replay build of {unit} failed (exit "
                                  f"{proc.returncode}); log {log}:\n{tail}")
        stamp.write_text(digest)
        return ReplayBuild(sim, bdir, exe, True, time.perf_counter() - t0)


@dataclass
class ReplayRun:
    ok: bool             # the simulator exited normally
    out: Path            # its response file
    log: Path
    wall_s: float        # simulation only (no build)
    command: str         # a shell line that reruns it
    files: tuple[Path, ...] = ()

    def cleanup(self) -> None:
        """Remove the run's files (a failed run keeps them for inspection)."""
        for p in self.files:
            p.unlink(missing_ok=True)


def run_replay(b: ReplayBuild, plusargs: dict[str, str | int], files: dict[str, str],
               timeout_s: float | None = None) -> tuple[ReplayRun, str]:
    """Write `files` (plusarg name -> text) into the build directory under this run's tag,
    start the simulation with those and `plusargs`, return the run and its response text.
    The caller checks the response and calls run.cleanup() when all is well."""
    tag = run_tag()
    paths: dict[str, Path] = {}
    for key, text in files.items():
        p = b.bdir / f"{tag}.{key}.txt"
        p.write_text(text)
        paths[key] = p
    out = b.bdir / f"{tag}.out.txt"
    log = b.bdir / f"{tag}.log"
    args = [f"+{k}={v}" for k, v in plusargs.items()]
    args += [f"+{k}={p}" for k, p in paths.items()] + [f"+out={out}"]
    cmd = [str(b.exe), *args] if b.sim == "verilator" else ["vvp", "-n", str(b.exe), *args]
    if b.sim == "icarus" and plusargs.get("waves_to"):
        cmd.insert(3, "-fst")    # an extended argument of vvp: FST instead of VCD
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=b.bdir, stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout_s)
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
    wall = time.perf_counter() - t0
    text = out.read_text() if out.exists() else ""
    command = " ".join(cmd)
    return ReplayRun(ok, out, log, wall, command, (*paths.values(), out, log)), text


# -- shared Verilog pieces -----------------------------------------------------------------

XORSHIFT = """
  // xorshift32: the seeded idle / back-pressure patterns are made here, in HDL
  function [31:0] xs32;
    input [31:0] x;
    reg [31:0] y;
    begin
      y = x ^ (x << 13); y = y ^ (y >> 17); xs32 = y ^ (y << 5);
    end
  endfunction
"""


def seed_state(seed: int, stream: int) -> int:
    """A non-zero xorshift32 state for stream `stream` of `seed` (the harness gets it as a
    plusarg, so the same seed gives the same pattern under both simulators)."""
    h = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(h[:4], "little") or 1


def threshold(share: float) -> int:
    """A per-cycle probability as the 16-bit threshold the harness compares with."""
    return max(0, min(65536, round(share * 65536)))
