"""Host-side driver: run a HostProgram (golden/host/program.py) on a backend and get back the
responses, the status and every counter, with the same API for every backend:

    from bfimna.cosim.drivers.backends import backend
    prog = HostProgram(cfg); ...                       # build packets
    res = backend("verilator", cfg).run(prog)          # or "golden", "icarus"
    values = res.values(prog, index, signed=True)      # a READ response as numbers

GoldenBackend runs the golden system (golden/model/system.py). RtlBackend generates the system
top (link="uart": the board top behind its UART), builds it (cached per configuration) and
runs it through its replay harness (cosim/replay/system.py, board.py; the default) or,
with path="cocotb", cosim/tb/sys_tb.py under cocotb, which talks to the Verilog through
cocotbext-axi's AXI4-Stream and AXI4-Lite models (board_tb.py over the UART). A run
whose testbench did not finish, or failed any of its own checks (an output frame beyond
the expected responses, a link message out of turn...), raises DriverError with the
first failing assertion and the log: no failure stays in a result nobody reads.
`compare()` lists every difference between two results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.cosim.drivers.runner import (
    DEFAULT_BUILD_ROOT,
    SIMS,
    first_failure,
    run_board_job,
    run_system_job,
)
from bfimna.cosim.replay.build import ReplayRun
from bfimna.golden.host.program import HostProgram, split_responses
from bfimna.golden.model.system import System
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.regs import STATUS_WORD

BACKENDS = ("golden",) + SIMS
PATHS = ("replay", "cocotb")


class DriverError(RuntimeError):
    """The RTL run did not finish or its testbench failed (build failure, timeout, an
    assertion in the testbench such as an output beat beyond the expected responses)."""


@dataclass
class RunResult:
    backend: str
    responses: list[list[int]]
    proto_error: bool
    tile_errors: int                       # bit t: tile t raised its error flag
    global_counters: dict[str, int]
    tile_counters: list[dict[str, int]]
    wall_s: float
    sim_cycles: int | None = None          # RTL: clock cycles from first word to idle
    cycles_per_s: float | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)
    # golden only: each tile's activity (golden/spec/costs.py ACTIVITY_KEYS), what energy
    # depends on; the RTL does not count it (the prediction, checked equal on golden, does)
    tile_activity: list[dict[str, int]] | None = None

    def word_cycle(self, index: int, word: int) -> int | None:
        """The clock cycle at which word `word` of response `index` left the system (replay
        path only: it logs every output beat with its cycle)."""
        beats = self.extra.get("beats")
        if not beats:
            return None
        offset = sum(len(r) for r in self.responses[:index]) + word
        return beats[offset][0] if offset < len(beats) else None

    def values(self, prog: HostProgram, index: int, signed: bool = False) -> np.ndarray:
        """Response `index` (a READ) as int64 values, sign-extended from its width."""
        r = prog.responses[index]
        v = np.array(self.responses[index], dtype=object)
        if signed:
            v = np.where(v >> (r.width - 1) & 1, v - (1 << r.width), v)
        return v.astype(np.int64) if r.width <= 63 or signed else v


class GoldenBackend:
    name = "golden"

    def __init__(self, cfg: Config, fast: bool = False):
        """fast: the macro-level tile model (golden/model/fast.py), for whole networks."""
        self.cfg = cfg
        self.fast = fast
        self.system: System | None = None

    def run(self, prog: HostProgram) -> RunResult:
        from bfimna.golden.model.fast import FastTile
        from bfimna.golden.model.tile import Tile
        t0 = time.perf_counter()
        self.system = s = System(self.cfg, FastTile if self.fast else Tile)
        # fast: whole packets at once (System.feed_frames, checked equal to feed)
        out = s.feed_frames(prog.frames) if self.fast else s.feed(prog.beats())
        mod = 1 << self.cfg.ap.counter_bits   # the hardware's counters wrap
        return RunResult(
            backend="golden", responses=split_responses(out), proto_error=s.proto_error,
            tile_errors=s.tile_errors,
            global_counters={k: v % mod for k, v in s.counters.items()},
            tile_counters=[{k: v % mod for k, v in t.counters.items()} for t in s.tiles],
            wall_s=time.perf_counter() - t0,
            tile_activity=[dict(t.activity) for t in s.tiles])


class RtlBackend:
    def __init__(self, cfg: Config, sim: str, build_root: str | Path = DEFAULT_BUILD_ROOT,
                 seed: int = 1, idle: float = 0.0, backpressure: float = 0.0,
                 waves: bool = False, link: str = "axi", divisor: int = 8,
                 path: str = "replay", waves_window: tuple[int, int] | None = None,
                 host_bit: float | None = None):
        """link: "axi" drives the system top's AXI ports; "uart" talks to the board-level
        top over its serial link (golden/spec/link.py), `divisor` clock cycles per bit.
        path: "replay" (default) runs the HDL replay harness (cosim/replay/system.py,
        over the UART link cosim/replay/board.py: the simulator's own speed); "cocotb"
        drives the ports through cocotbext-axi's bus models (cosim/tb/sys_tb.py; needed
        for a reset in the middle of a program), over the UART link through
        cosim/tb/board_tb.py's simulated UART; waves=True always takes the cocotb path.
        waves_window: (first, last) cycle of an FST recorded by the replay path.
        host_bit (uart link, replay path): the host UART's bit time in clock cycles when it
        is off the board's `divisor` (a real host runs on its own clock)."""
        if sim not in SIMS:
            raise ValueError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMS)}")
        if link not in ("axi", "uart"):
            raise ValueError(f"unknown link {link!r}: axi or uart")
        if path not in PATHS:
            raise ValueError(f"unknown path {path!r}: {' or '.join(PATHS)}")
        if host_bit is not None and (link != "uart" or path != "replay" or waves):
            raise ValueError("host_bit needs link='uart' on the replay path")
        self.path, self.waves_window = path, waves_window
        self.command: str | None = None      # the last replay run's simulator command
        self._last_run: ReplayRun | None = None   # its files stay until the next run
        self.link, self.divisor, self.host_bit = link, divisor, host_bit
        self.cfg, self.name, self.build_root = cfg, sim, Path(build_root)
        self.seed, self.idle, self.backpressure, self.waves = seed, idle, backpressure, waves

    def budget(self, prog: HostProgram) -> int:
        """Watchdog: cycles the golden system's tiles need, words, stalls, margin (the
        macro-level tile model counts the same cycles, fast enough for whole networks)."""
        from bfimna.golden.model.fast import FastTile
        g = System(self.cfg, FastTile)
        g.feed(prog.beats())
        work = sum(t.counters["cycles"] for t in g.tiles) + g.counters["copy_cycles"]
        slow = 1.0 / max(0.05, (1 - self.idle) * (1 - self.backpressure))
        return int(5000 + slow * (20 * prog.n_words + 4 * g.counters["words_out"]) + 2 * work)

    def _run_board_replay(self, prog: HostProgram, reset_prog: HostProgram | None,
                          max_cycles: int) -> tuple[bool, dict, Path]:
        """The board top through its replay harness (cosim/replay/board.py): the summary
        cosim/tb/board_tb.py writes, from the harness's byte log. Every check board_tb
        makes is made here: every beat answered 'K' (and 'Z'), no other link message,
        register reads answered 'R', no output frame beyond the expected, nothing
        half-sent."""
        from bfimna.cosim.replay.board import (
            data_after,
            frames_of,
            problems,
            program_script,
            run_board_replay,
        )
        from bfimna.cosim.replay.system import register_reads, registers_from

        if self._last_run is not None:
            self._last_run.cleanup()
        reads = register_reads(self.cfg)
        script = program_script(prog, reset_prog)
        n_pre = 0 if reset_prog is None else len(reset_prog.beats()) + 1
        want = [("ack",)] * (n_pre + len(prog.beats()))
        ok, s, run = run_board_replay(self.cfg, self.name, script, reads, self.divisor,
                                      max_cycles, self.build_root, self.waves_window,
                                      host_bit=self.host_bit)
        self._last_run, self.command = run, run.command
        wrong = problems(s, want, len(reads))
        summary: dict[str, Any] = {
            "timed_out": s["timed_out"], "sim_cycles": s["sim_cycles"],
            "cycles_per_s": s["cycles_per_s"], "wall_s": s["wall_s"],
            "build_s": s["build_s"], "finished": s["finished"]}
        if s["timed_out"] or not s["finished"] or "bad_read" in s:
            with open(run.log, "a") as fh:
                fh.write("AssertionError: " + "; ".join(wrong or ["the harness did not "
                                                                  "finish"]) + "\n")
            return False, summary, run.log
        beats = data_after(s, n_pre)
        frames, cycles, partial = frames_of(beats)
        n = len(prog.responses)
        extra = len(frames) - n + (1 if partial else 0)
        summary.update(
            registers=registers_from(self.cfg, s["regs_raw"]),
            responses=[[f"{w:x}" for w in f] for f in frames[:n]],
            extra_output_frames=extra, link_events=[list(ev) for _c, ev in s["events"]
                                                    if ev[0] != "data"],
            beats=[[c, int(last), w] for c, w, last in beats], frame_cycles=cycles)
        if extra > 0:
            wrong.append(f"{extra} output frames beyond the {n} expected: the stream has "
                         f"beats nobody asked for")
        if partial:
            wrong.append(f"an output frame without tlast ({partial} words)")
        if wrong:
            with open(run.log, "a") as fh:
                fh.write("AssertionError: " + "; ".join(wrong) + "\n")
        return not wrong, summary, run.log

    def uart_budget(self, prog: HostProgram, reset_prog: HostProgram | None = None) -> int:
        """Watchdog over the UART link: the system's budget, every word and response at
        14 bit times of `divisor` cycles, and ten times the system's budget of margin."""
        cycles = self.budget(prog)
        if reset_prog is not None:
            cycles += self.budget(reset_prog) + 14 * self.divisor * (
                11 * reset_prog.n_words + 10 * len(reset_prog.responses))
        return cycles + 14 * self.divisor * (11 * prog.n_words + 10 * len(
            prog.responses) + 200) + 10 * cycles

    def run(self, prog: HostProgram, reset_prog: HostProgram | None = None,
            reset_after: int = 0) -> RunResult:
        """Run `prog`; with `reset_prog`, first send that one and reset the system
        `reset_after` cycles into it (the result's extra["after_reset"] has what the
        registers said right after the reset). Over the UART link the reset is the
        link's 'Z' command, sent once all of `reset_prog` was taken (reset_after: 0)."""
        job: dict[str, Any] = {"frames": [[f"{w:x}" for w in f] for f in prog.frames],
               "n_responses": len(prog.responses), "seed": self.seed, "idle": self.idle,
               "backpressure": self.backpressure, "max_cycles": self.budget(prog)}
        if reset_prog is not None:
            job["reset"] = {"frames": [[f"{w:x}" for w in f] for f in reset_prog.frames],
                            "after_cycles": reset_after}
        t0 = time.perf_counter()
        if self.link == "uart":
            if reset_prog is not None:
                if reset_after:
                    raise ValueError("over the UART link the reset follows the whole "
                                     "reset_prog: reset_after must be 0")
                job["pre_frames"] = job.pop("reset")["frames"]
            job["divisor"] = self.divisor
            job["max_cycles"] = self.uart_budget(prog, reset_prog)
            used = "replay" if self.path == "replay" and not self.waves else "cocotb"
            if used == "replay":
                passed, summary, log = self._run_board_replay(prog, reset_prog,
                                                              job["max_cycles"])
            else:
                self.command = None          # (no replay command reruns this run)
                passed, summary, log = run_board_job(self.cfg, self.name, job,
                                                     self.build_root, self.waves)
        elif self.path == "replay" and reset_prog is None and not self.waves:
            used = "replay"
            # (a reset in the middle of a program and full-run waves need the cocotb path)
            from bfimna.cosim.replay.system import run_system_replay
            if self._last_run is not None:
                self._last_run.cleanup()
            passed, summary, last = run_system_replay(
                self.cfg, self.name, prog, job["max_cycles"], self.build_root, self.seed,
                self.idle, self.backpressure, self.waves_window)
            self._last_run, log, self.command = last, last.log, last.command
            if passed and summary.get("extra_output_frames"):
                passed = False
                log.write_text(f"AssertionError: {summary['extra_output_frames']} output "
                               f"frames beyond the {len(prog.responses)} expected\n")
        else:
            used = "cocotb"
            passed, summary, log = run_system_job(self.cfg, self.name, job, self.build_root,
                                                  self.waves)
        rerun = f"; rerun the simulation: {self.command}" if self.command else ""
        if not summary or summary.get("timed_out") or "registers" not in summary:
            why = ("timed out" if summary.get("timed_out") else "hung on a register read"
                   if "hung_read" in summary else "did not finish")
            raise DriverError(f"{self.name} run {why} ({first_failure(log)}); log: {log}"
                              f"{rerun}")
        if not passed:          # the testbench finished but one of its checks failed
            raise DriverError(f"{self.name} testbench failed: {first_failure(log)}; "
                              f"log: {log}{rerun}")
        regs = summary["registers"]
        return RunResult(
            backend=self.name,
            responses=[[int(w, 16) for w in r] for r in summary["responses"]],
            proto_error=bool(STATUS_WORD.get(regs["status"], "proto_error")),
            tile_errors=regs["tile_error"],
            global_counters=regs["global"], tile_counters=regs["tiles"],
            wall_s=time.perf_counter() - t0, sim_cycles=summary["sim_cycles"],
            cycles_per_s=summary["cycles_per_s"], log=log,
            extra={"status": regs["status"], "link": self.link,
                   "path": used,
                   "beats": summary.get("beats"), "frame_cycles": summary.get("frame_cycles"),
                   "tile_busy": regs["tile_busy"], "id": regs["id"],
                   "after_reset": summary.get("after_reset"),
                   "extra_output_frames": summary.get("extra_output_frames")})


def backend(name: str, cfg: Config, **kw):
    """The backend called `name` ("golden", "verilator" or "icarus")."""
    if name == "golden":
        return GoldenBackend(cfg, **{k: v for k, v in kw.items() if k == "fast"})
    return RtlBackend(cfg, name, **kw)


def compare(want: RunResult, got: RunResult, prog: HostProgram | None = None) -> list[str]:
    """Every difference between two runs of the same program (empty: they agree)."""
    diffs = []
    if len(want.responses) != len(got.responses):
        diffs.append(f"{len(got.responses)} responses, expected {len(want.responses)}")
    # the common prefix (a count that differs is reported above)
    for i, (w, g) in enumerate(zip(want.responses, got.responses, strict=False)):
        if w != g:
            what = f" ({prog.responses[i]})" if prog else ""
            bad = [j for j in range(min(len(w), len(g))) if w[j] != g[j]]
            j = bad[0] if bad else min(len(w), len(g))
            cyc = got.word_cycle(i, j)
            at = f" (output at cycle {cyc})" if cyc is not None else ""
            val = f": {g[j]:#x}, expected {w[j]:#x}" if bad else ""
            diffs.append(f"response {i}{what}: {len(g)} words (expected {len(w)}), "
                         f"first difference at word {j}{at}{val}")
    for key in want.global_counters:
        if want.global_counters[key] != got.global_counters.get(key):
            diffs.append(f"counter {key}: {got.global_counters.get(key)}, "
                         f"expected {want.global_counters[key]}")
    # the tiles both report: a difference is listed, never raised
    for t, (wt, gt) in enumerate(zip(want.tile_counters, got.tile_counters, strict=False)):
        for key in wt:
            if wt[key] != gt.get(key):
                diffs.append(f"tile {t} counter {key}: {gt.get(key)}, expected {wt[key]}")
    if want.proto_error != got.proto_error:
        diffs.append(f"protocol error {got.proto_error}, expected {want.proto_error}")
    if want.tile_errors != got.tile_errors:
        diffs.append(f"tile errors {got.tile_errors:#x}, expected {want.tile_errors:#x}")
    return diffs
