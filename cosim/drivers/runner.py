"""Build and run the cocotb testbenches on the emitted Verilog (Verilator or Icarus).

One build directory per configuration, unit (ap core, controller), simulator and (for
mutation tests) injected fault:
    <build_root>/<config name>-<config hash[:10]>[-<fault>]/<unit>-<sim>/
The Verilog is regenerated on every run but rewritten only when its text changes, so the
simulator build is reused when nothing changed.

Parallel safety (pytest -n 2, two shells): runs of the same build directory share the
build, which happens under an exclusive file lock (`<build dir>/.build.lock`, fcntl), and
each run gets its own job, result, results.xml and log files (`run-<pid>-<n>.*`), so two
runs never read each other's files. A failed run keeps its files for inspection; a
successful run's log becomes `sim.log` and its other files are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bfimna.golden.spec.config import Config, load_config
from bfimna.hdl.flow.lint import WAIVER_FILE, waiver_text
from bfimna.hdl.flow.tools import OPT_FAST_COCOTB, require, verilator_build_env
from bfimna.hdl.gen.ap import ap_module_name
from bfimna.hdl.gen.controller import controller_module_name

SIMS = ("verilator", "icarus")
DEFAULT_BUILD_ROOT = Path("build") / "cosim"


class CosimBuildError(RuntimeError):
    """The simulator could not build the emitted Verilog."""


@dataclass
class CosimResult:
    sim: str
    config: str
    seed: int
    passed: bool
    summary: dict          # written by the testbench (empty when it did not finish)
    log: Path
    build_dir: Path


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)          # atomic: a reader never sees half a file


@contextlib.contextmanager
def build_lock(bdir: Path) -> Iterator[None]:
    """Exclusive lock on a build directory, held while its sources are written and the
    simulator builds, so concurrent runs (other processes) build it once, in turn."""
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_RUN_COUNTER = itertools.count()


def run_tag() -> str:
    """A name unique to this run among every process sharing a build directory."""
    return f"run-{os.getpid()}-{next(_RUN_COUNTER)}"


_FAILURE = re.compile(r"\b(\w*(?:Error|Exception)|AssertionError)\b: (.+)")


def first_failure(log: Path) -> str:
    """The first failing assertion (or exception) the simulation log reports, one line."""
    if not log.exists():
        return f"no log at {log}"
    for line in log.read_text(errors="replace").splitlines():
        m = _FAILURE.search(line)
        if m:
            return f"{m.group(1)}: {m.group(2).strip()}"
    for line in log.read_text(errors="replace").splitlines():
        if "FAIL" in line:
            return line.strip()
    return "the testbench failed without an assertion message (see the log)"


_AUTO_TRIGGER = re.compile(r"reg (\\\$auto\$verilog_backend\S+) += 0;")


def icarus_text(verilog_text: str) -> str:
    """The emitted Verilog as Icarus must see it. Yosys writes combinational processes as
    `always @*` that also read a per-module register `$auto...` initialised to 0, meant
    to run each process once at time 0; Icarus 11 applies declaration initialisers
    without an event, so a process whose real inputs all keep their initial value after
    reset (a mux reading all-zero rows, say) is never run and its output stays X.
    Toggling that register once, after every process waits on it, runs them all."""
    return _AUTO_TRIGGER.sub(lambda mt: f"{mt.group(0)}\n  initial #0 {mt.group(1)} = 1'h1;",
                             verilog_text)


def build_dir_for(cfg: Config, sim: str, build_root: Path, fault: str | None = None,
                  unit: str = "ap") -> Path:
    tag = f"{cfg.name}-{cfg.hash[:10]}" + (f"-{fault}" if fault else "")
    return Path(build_root).resolve() / tag / f"{unit}-{sim}"


def _build_and_test(cfg: Config, sim: str, bdir: Path, top: str, verilog_text: str,
                    test_module: str, env: dict[str, str], waves: bool = False,
                    tag: str | None = None):
    """Write the Verilog (if changed), build it for `sim` (if outdated), run one cocotb
    test module. Returns (passed, summary written by the test, log path): the run's own
    log when it failed, else `sim.log` (a copy of the latest successful run's)."""
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMS)}")
    require(sim)

    rtl = bdir / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    with build_lock(bdir):
        runner, cfg_file = _build(cfg, sim, bdir, top, verilog_text)
    return _run_test(runner, bdir, top, test_module, env, cfg_file, waves, tag)


def _build(cfg: Config, sim: str, bdir: Path, top: str, verilog_text: str):
    """Sources and simulator build (the caller holds the build lock). Returns the cocotb
    runner (it keeps what the build set up) and the config file."""
    from cocotb_tools.runner import get_runner

    rtl = bdir / "rtl"
    vfile = rtl / f"{top}.v"
    if sim == "icarus":
        verilog_text = icarus_text(verilog_text)
    _write_if_changed(vfile, verilog_text)
    cfg_file = bdir / "config.json"  # the exact validated config the testbench loads
    _write_if_changed(cfg_file, json.dumps(cfg.as_dict(), indent=2) + "\n")

    runner = get_runner(sim)
    build_kw: dict = {}
    if sim == "icarus":
        build_kw["timescale"] = ("1ns", "1ps")
    else:
        vlt = rtl / WAIVER_FILE
        _write_if_changed(vlt, waiver_text())
        build_kw["build_args"] = [str(vlt)]
    saved = dict(os.environ)
    if sim == "verilator":
        os.environ.update(verilator_build_env(OPT_FAST_COCOTB))
    build_log = bdir / "build.log"
    try:
        runner.build(sources=[vfile], hdl_toplevel=top, build_dir=bdir, always=False,
                     log_file=build_log, **build_kw)
    except RuntimeError as exc:
        tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-30:])
        raise CosimBuildError(f"{sim} build of {top} failed ({exc}); log {build_log}:\n"
                              f"{tail}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return runner, cfg_file


def _run_test(runner, bdir: Path, top: str, test_module: str, env: dict[str, str],
              cfg_file: Path, waves: bool, tag: str | None = None):
    from cocotb_tools.check_results import get_results

    tag = tag or run_tag()
    result_json = bdir / f"{tag}.result.json"
    result_json.unlink(missing_ok=True)
    log = bdir / f"{tag}.log"
    xml = bdir / f"{tag}.results.xml"
    try:  # under pytest cocotb's runner raises SystemExit on a failed test: we report it
        runner.test(test_module=test_module, hdl_toplevel=top, build_dir=bdir, test_dir=bdir,
                    results_xml=str(xml), waves=waves, log_file=log,
                    extra_env={"BFIMNA_CONFIG": str(cfg_file),
                               "BFIMNA_RESULT": str(result_json), **env})
    except SystemExit:
        pass
    try:
        n_tests, n_failed = get_results(xml)
        passed = n_tests > 0 and n_failed == 0
    except RuntimeError:  # the simulator died before writing results
        passed = False
    summary = json.loads(result_json.read_text()) if result_json.exists() else {}
    ok = passed and bool(summary)
    if ok:                      # a failed run keeps its files for inspection
        for f in (result_json, xml):
            f.unlink(missing_ok=True)
        if log.exists():
            os.replace(log, bdir / "sim.log")
            log = bdir / "sim.log"
    return ok, summary, log


AP_PATHS = ("replay", "cocotb")


def ap_cosim_path(path: str = "replay", waves: bool = False) -> str:
    """The path run_ap_cosim takes: `path`, except that waves need cocotb."""
    if path not in AP_PATHS:
        raise ValueError(f"unknown path {path!r}: {' or '.join(AP_PATHS)}")
    return "cocotb" if waves else path


def run_ap_cosim(config: str | Path | Config, sim: str, seed: int = 1, n_ops: int = 2000,
                 build_root: str | Path = DEFAULT_BUILD_ROOT, fault: str | None = None,
                 waves: bool = False, path: str = "replay") -> CosimResult:
    """Generate the AP core of `config`, simulate it under `sim` against the golden model.

    path "replay" (default): the HDL replay harness (cosim/replay/ap.py) applies the
    stream from a file at the simulator's own speed; Python checks every cycle of its
    response file afterwards. path "cocotb": cosim/tb/ap_tb.py drives and checks every
    cycle from Python. Both run the same stream and write the same summary keys (the
    replay adds its timings); `waves=True` always takes the cocotb path."""
    cfg = config if isinstance(config, Config) else load_config(config)
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMS)}")
    from bfimna.cosim.replay.ap import run_ap_replay
    from bfimna.hdl.flow.emit import ap_verilog

    if ap_cosim_path(path, waves) == "replay":
        passed, summary, log, bdir = run_ap_replay(cfg, sim, seed, n_ops, Path(build_root),
                                                   fault)
        return CosimResult(sim=sim, config=cfg.name, seed=seed, passed=passed,
                           summary=summary, log=log, build_dir=bdir)
    bdir = build_dir_for(cfg, sim, Path(build_root), fault, unit="ap")
    passed, summary, log = _build_and_test(
        cfg, sim, bdir, ap_module_name(cfg.ap), ap_verilog(cfg, fault=fault),
        "bfimna.cosim.tb.ap_tb", {"BFIMNA_SEED": str(seed), "BFIMNA_OPS": str(n_ops)}, waves)
    if summary:
        summary["path"] = "cocotb"
    return CosimResult(sim=sim, config=cfg.name, seed=seed, passed=passed,
                       summary=summary, log=log, build_dir=bdir)


@dataclass
class ProgramRun:
    """What the RTL controller did with a program: final array, counters, status."""
    passed: bool           # the driver finished (not: agreed with golden)
    timed_out: bool        # still busy after the watchdog's cycle budget
    rows: list[int]
    counters: dict[str, int]
    error: bool
    summary: dict
    log: Path
    command: str | None = None   # replay path: the shell line that reruns the simulation


PROGRAM_PATHS = ("replay", "cocotb")


def run_program_rtl(config: str | Path | Config, sim: str, words: list[int], cam,
                    build_root: str | Path = DEFAULT_BUILD_ROOT, waves: bool = False,
                    fault: str | None = None, path: str = "replay", seed: int = 1,
                    idle: float = 0.0) -> ProgramRun:
    """Run a program (64-bit words) on the emitted AP controller from the initial array
    `cam` (R x C bits; the reserved column is ignored) and read back what it left.
    A watchdog allows twice the cycles the golden tile needs, plus 1000
    (cosim/replay/tile.py: cycle_budget).

    path: "replay" (default) runs the HDL replay harness (cosim/replay/tile.py: the
    simulator's own speed, no Python in the cycle loop); "cocotb" the cocotb driver
    cosim/tb/ctl_tb.py. `waves=True` always takes the cocotb path. `seed` and `idle`
    (replay only): the seeded share of idle cycles on the instruction stream."""
    if path not in PROGRAM_PATHS:
        raise ValueError(f"unknown path {path!r}: {' or '.join(PROGRAM_PATHS)}")
    cfg = config if isinstance(config, Config) else load_config(config)
    if path == "cocotb" or waves:
        return _run_program_cocotb(cfg, sim, words, cam, Path(build_root), waves, fault)
    return run_programs_rtl(cfg, sim, [(words, cam)], build_root, fault, seed, idle)[0]


def run_programs_rtl(config: str | Path | Config, sim: str, jobs,
                     build_root: str | Path = DEFAULT_BUILD_ROOT, fault: str | None = None,
                     seed: int = 1, idle: float = 0.0) -> list[ProgramRun]:
    """Run every job, (words, cam) or (words, cam, [MAP arrays]), in one simulation of
    the replay harness (cosim/replay/tile.py), each from a reset; one ProgramRun per job
    (its summary also holds the MAPs' rows, `maps`)."""
    from bfimna.cosim.replay.tile import last_run_info, run_tile_replay

    cfg = config if isinstance(config, Config) else load_config(config)
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMS)}")
    res = run_tile_replay(cfg, sim, jobs, Path(build_root), seed=seed, idle=idle, fault=fault)
    info = last_run_info()
    wall = info.get("sim_wall_s") or 0.0
    total = sum(r.sim_cycles for r in res)
    out = []
    for job, r in zip(jobs, res, strict=True):
        summary = r.summary
        summary.update(path="replay", words=len(job[0]), wall_s=round(wall, 4),
                       command=r.command,
                       cycles_per_s=round(total / wall, 1) if wall > 0 else None)
        out.append(ProgramRun(passed=r.passed, timed_out=r.timed_out, rows=r.rows,
                              counters=r.counters, error=r.error, summary=summary,
                              log=r.log, command=r.command))
    return out


def _run_program_cocotb(cfg: Config, sim: str, words: list[int], cam, build_root: Path,
                        waves: bool, fault: str | None) -> ProgramRun:
    import numpy as np

    from bfimna.cosim.replay.tile import cycle_budget
    from bfimna.hdl.flow.emit import controller_verilog

    budget = cycle_budget(cfg, words)
    bdir = build_dir_for(cfg, sim, build_root, fault, unit="ctl")
    bdir.mkdir(parents=True, exist_ok=True)
    tag = run_tag()
    prog_file = bdir / f"{tag}.program.npz"
    np.savez(prog_file, words=np.array(words, dtype=np.uint64),
             cam=np.asarray(cam, dtype=np.uint8))
    try:
        passed, summary, log = _build_and_test(
            cfg, sim, bdir, controller_module_name(cfg), controller_verilog(cfg, fault),
            "bfimna.cosim.tb.ctl_tb", {"BFIMNA_PROGRAM": str(prog_file),
                                    "BFIMNA_MAX_CYCLES": str(budget)}, waves, tag)
    finally:
        prog_file.unlink(missing_ok=True)
    rows = [int(x, 16) for x in summary.get("rows", [])]
    if summary:
        summary["path"] = "cocotb"
    return ProgramRun(passed=passed, timed_out=bool(summary.get("timed_out")), rows=rows,
                      counters=summary.get("counters", {}),
                      error=bool(summary.get("error")), summary=summary, log=log)


def failure_excerpt(res: CosimResult, lines: int = 40) -> str:
    """The part of the simulation log that says what went wrong."""
    if not res.log.exists():
        return f"(no log at {res.log})"
    text = res.log.read_text(errors="replace").splitlines()
    for i, line in enumerate(text):
        if "Mismatch" in line or "Error" in line or "FAIL" in line:
            return "\n".join(text[i: i + lines])
    return "\n".join(text[-lines:])



def run_system_job(cfg: Config, sim: str, job: dict, build_root: str | Path = DEFAULT_BUILD_ROOT,
                   waves: bool = False) -> tuple[bool, dict, Path]:
    """Run one host job (see cosim/tb/sys_tb.py) on the emitted system top of `cfg`.
    Returns (the testbench finished, its result JSON, the log)."""
    from bfimna.hdl.flow.emit import system_verilog
    from bfimna.hdl.gen.system import system_module_name

    bdir = build_dir_for(cfg, sim, Path(build_root), unit="sys")
    bdir.mkdir(parents=True, exist_ok=True)
    tag = run_tag()
    job_file = bdir / f"{tag}.job.json"
    job_file.write_text(json.dumps(job))
    try:
        return _build_and_test(cfg, sim, bdir, system_module_name(cfg), system_verilog(cfg),
                               "bfimna.cosim.tb.sys_tb", {"BFIMNA_JOB": str(job_file)}, waves,
                               tag)
    finally:
        job_file.unlink(missing_ok=True)


def run_board_job(cfg: Config, sim: str, job: dict, build_root: str | Path = DEFAULT_BUILD_ROOT,
                  waves: bool = False) -> tuple[bool, dict, Path]:
    """Run one host job over the UART link of the board-level top (cosim/tb/board_tb.py)."""
    from bfimna.hdl.flow.emit import board_verilog
    from bfimna.hdl.gen.board import board_module_name

    bdir = build_dir_for(cfg, sim, Path(build_root), unit=f"board{job['divisor']}")
    bdir.mkdir(parents=True, exist_ok=True)
    tag = run_tag()
    job_file = bdir / f"{tag}.job.json"
    job_file.write_text(json.dumps(job))
    try:
        return _build_and_test(cfg, sim, bdir, board_module_name(cfg),
                               board_verilog(cfg, job["divisor"]), "bfimna.cosim.tb.board_tb",
                               {"BFIMNA_JOB": str(job_file)}, waves, tag)
    finally:
        job_file.unlink(missing_ok=True)
