"""Replay harness of the system top: the host program's beats come from a file, the
AXI4-Stream source and sink and an AXI4-Lite reader run in HDL, every output beat is
written with its cycle to a response file, which Python then turns into the same
RunResult the cocotb path gives (cosim/drivers/backends.py) and checks against golden.

What the harness (Verilog-2005, the same text under Verilator and Icarus) does:
  1. reset for 4 cycles, then 2 idle cycles (as the cocotb testbench);
  2. sends every beat of +stim (lines `LAST DATA`, hex) on s_axis; before each cycle
     with a free slot it draws from a seeded xorshift32 and stays idle with probability
     +idle/65536; TVALID, once raised, stays up until the beat is taken (AXI4-Stream);
  3. raises m_axis TREADY each cycle with probability 1 - +bp/65536 and logs every
     taken output beat as `O CYCLE LAST DATA`;
  4. once every beat was taken and +frames output frames have ended, polls STATUS over
     AXI4-Lite every 8 cycles until its busy bit is 0 (`I CYCLE`), reads every address
     of +reads (`R ADDR DATA`), keeps TREADY up for 50 more cycles (any beat there is an
     output beyond the expected responses) and ends with `D CYCLE`;
  5. a watchdog: not idle after +max_cycles writes `T CYCLE FRAMES`, still reads the
     registers and ends; a register read not answered in 1000 cycles writes `A ADDR`
     and ends (the hardware must never hang the harness).
With +waves_from/+waves_to (a build with waves=True) it records an FST of that window.

The verification build (`verify=True`: hdl/gen/system.py's System(cfg, VERIFY), tests only)
has three more inputs, which the harness drives from +fault (the mutant's number, 0 none)
and +preset (hex): every counter is loaded with the preset in the first cycle after the
reset, so that a short program makes them wrap (tests/test_counters.py) and one build
serves every mutant (tests/test_mutation.py).

A stimulus line `2 0` is a reset (the fuzz campaign, tests/test_fuzz_system.py): the
harness raises TREADY, waits until the beat before it was taken and `busy` falls (at most
+drain cycles), writes `X CYCLE BUSY PENDING` (PENDING: that beat was never taken), holds
`rst` for 4 cycles and goes on with the next beat; output frames are counted again from
there. A program's own beats never set that bit, so one build serves both (until
2026-11-27 the resets were a harness variant of their own: one more model to build).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bfimna.cosim.replay.build import (
    XORSHIFT,
    ReplayRun,
    build_replay,
    run_replay,
    seed_state,
    threshold,
)
from bfimna.golden.host.program import HostProgram
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.regs import (
    COUNTER_STRIDE,
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    PT,
    REG_CONFIG,
    REG_ID,
    REG_STATUS,
    REG_TILE_BUSY,
    REG_TILE_ERROR,
    STATUS_WORD,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
    header,
)
from bfimna.golden.spec.uops import COUNTER_KEYS

RESET_CYCLES, SETTLE_CYCLES, POLL_GAP, TAIL_CYCLES, READ_LIMIT = 4, 2, 8, 50, 1000


def _width(ports: list[dict], name: str) -> int:
    return next(p["width"] for p in ports if p["name"] == name)


def harness_text(cfg: Config, waves: bool = False, verify: bool = False) -> str:
    """The Verilog harness around the system top of `cfg` (`verify`: its VERIFY build);
    `2 0` stimulus lines reset the system."""
    from bfimna.hdl.flow.emit import _ports
    from bfimna.hdl.gen.system import system_module_name, system_signature

    ports = _ports(system_signature(cfg, verify))
    cb = cfg.ap.counter_bits
    v_regs = v_ports = v_args = v_load = ""
    if verify:
        v_regs = f"""
  reg [7:0] tb_fault = 0;
  reg tb_load = 0;
  reg [{cb - 1}:0] tb_preset = 0;"""
        v_ports = """
    .tb_fault(tb_fault), .tb_load(tb_load), .tb_preset(tb_preset),"""
        v_args = """
    if (!$value$plusargs("fault=%d", tb_fault)) tb_fault = 0;
    if (!$value$plusargs("preset=%h", tb_preset)) tb_preset = 0;"""
        v_load = f"""
    if (cyc == {RESET_CYCLES}) tb_load <= 1;          // the first cycle out of reset
    if (cyc == {RESET_CYCLES + 1}) tb_load <= 0;"""
    # reset lines (`2 0`): drain, reset, go on
    r_send = """ && !nxt_rst"""
    r_reg = " nxt_rst,"
    r_args = """
    if (!$value$plusargs("drain=%d", drain)) drain = 100000;"""
    r_decl = """
  integer drain;"""
    r_take = """
      nxt_rst = tmp_last[1];"""
    r_first = """if (have_next && nxt_rst && !s_valid) begin   // a reset line: drain, reset
           phase = 5; wait_n = drain;
         end else """
    r_phases = f"""
      5: if ((!s_valid && !busy) || wait_n == 0) begin   // the last beat taken, idle
           $fwrite(fout, "X %0d %0d %0d\\n", cyc, busy, s_valid);
           rst <= 1; s_valid <= 0; wait_n = {RESET_CYCLES}; phase = 6;
         end else wait_n = wait_n - 1;
      6: begin
           wait_n = wait_n - 1;
           if (wait_n == 0) begin rst <= 0; frames_seen = 0; phase = 1; next_beat; end
         end"""
    dw, aw = _width(ports, "s_axis_tdata"), _width(ports, "s_axil_araddr")
    rw = _width(ports, "s_axil_rdata")
    busy_bit = STATUS_WORD["busy"].lsb
    dump = """
    if (waves_to != 0 && cyc == waves_from) begin
      $dumpfile(wave_name); $dumpvars(0, replay_tb);
    end
    if (waves_to != 0 && cyc == waves_to) $dumpoff;""" if waves else ""
    return f"""// Replay harness of {system_module_name(cfg)} (generated by cosim/replay/system.py)
`timescale 1ns/1ps
module replay_tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg s_valid = 0, s_last = 0;
  reg [{dw - 1}:0] s_data = 0;
  wire s_ready, m_valid, m_last, busy, error;
  wire [{dw - 1}:0] m_data;
  reg m_ready = 0;
  reg [{aw - 1}:0] araddr = 0;
  reg arvalid = 0, rready = 0;{v_regs}
  wire arready, rvalid, awready, wready, bvalid;
  wire [{rw - 1}:0] rdata;
  wire [1:0] rresp, bresp;
  {system_module_name(cfg)} dut (
    .clk(clk), .rst(rst),{v_ports}
    .s_axis_tvalid(s_valid), .s_axis_tdata(s_data), .s_axis_tlast(s_last),
    .s_axis_tready(s_ready),
    .m_axis_tvalid(m_valid), .m_axis_tdata(m_data), .m_axis_tlast(m_last),
    .m_axis_tready(m_ready),
    .s_axil_awaddr({aw}'d0), .s_axil_awprot(3'd0), .s_axil_awvalid(1'b0),
    .s_axil_awready(awready), .s_axil_wdata({rw}'d0), .s_axil_wstrb({rw // 8}'d0),
    .s_axil_wvalid(1'b0), .s_axil_wready(wready), .s_axil_bresp(bresp),
    .s_axil_bvalid(bvalid), .s_axil_bready(1'b1),
    .s_axil_araddr(araddr), .s_axil_arprot(3'd0), .s_axil_arvalid(arvalid),
    .s_axil_arready(arready), .s_axil_rdata(rdata), .s_axil_rresp(rresp),
    .s_axil_rvalid(rvalid), .s_axil_rready(rready),
    .busy(busy), .error(error));
{XORSHIFT}
  reg [8*1024-1:0] stim_name, reads_name, out_name, wave_name;
  integer fin, freads, fout, code, frames, frames_seen, idle_thr, bp_thr, phase;
  integer wait_n, read_n;
  reg [63:0] cyc, max_cycles, waves_from, waves_to;
  reg [31:0] ra, rb;
  reg have_next, nxt_last,{r_reg} rd_pending, timed_out;{r_decl}
  reg [{dw - 1}:0] nxt_data;
  reg [3:0] tmp_last;
  reg [{aw - 1}:0] tmp_addr;

  task next_beat;
    begin
      code = $fscanf(fin, "%h %h\\n", tmp_last, nxt_data);
      have_next = (code == 2);
      nxt_last = tmp_last[0];{r_take}
    end
  endtask

  task start_read;
    input [{aw - 1}:0] a;
    begin
      araddr <= a; arvalid <= 1; rready <= 1; rd_pending = 1; read_n = 0;
    end
  endtask

  task next_reg;   // the next address of +reads, or the tail when none is left
    begin
      code = $fscanf(freads, "%h\\n", tmp_addr);
      if (code == 1) start_read(tmp_addr);
      else begin phase = 4; wait_n = {TAIL_CYCLES}; end
    end
  endtask

  initial begin
    if (!$value$plusargs("stim=%s", stim_name) || !$value$plusargs("reads=%s", reads_name)
        || !$value$plusargs("out=%s", out_name)) begin
      $display("replay: +stim, +reads and +out are required"); $finish;
    end
    if (!$value$plusargs("frames=%d", frames)) frames = 0;
    if (!$value$plusargs("idle=%d", idle_thr)) idle_thr = 0;
    if (!$value$plusargs("bp=%d", bp_thr)) bp_thr = 0;
    if (!$value$plusargs("seed_a=%d", ra)) ra = 1;
    if (!$value$plusargs("seed_b=%d", rb)) rb = 2;
    if (!$value$plusargs("max_cycles=%d", max_cycles)) max_cycles = 64'd1000000000;
    if (!$value$plusargs("waves_from=%d", waves_from)) waves_from = 0;
    if (!$value$plusargs("waves_to=%d", waves_to)) waves_to = 0;
    if (!$value$plusargs("wave=%s", wave_name)) wave_name = "replay.fst";{v_args}{r_args}
    fin = $fopen(stim_name, "r"); freads = $fopen(reads_name, "r");
    fout = $fopen(out_name, "w");
    if (fin == 0 || freads == 0 || fout == 0) begin
      $display("replay: cannot open the stimulus, reads or output file"); $finish;
    end
    cyc = 0; phase = 0; frames_seen = 0; timed_out = 0; rd_pending = 0; wait_n = 0;
    next_beat;
  end

  always @(posedge clk) begin
    cyc = cyc + 1;{dump}{v_load}
    // input stream: a beat taken at this edge frees the slot
    if (s_valid && s_ready) s_valid <= 0;
    ra = xs32(ra);
    if (phase == 1 && (!s_valid || s_ready) && have_next{r_send} && ra[31:16] >= idle_thr) begin
      s_data <= nxt_data; s_last <= nxt_last; s_valid <= 1;
      next_beat;
    end
    // output stream: log every beat taken
    if (m_valid && m_ready) begin
      $fwrite(fout, "O %0d %0d %h\\n", cyc, m_last, m_data);
      if (m_last) frames_seen = frames_seen + 1;
    end
    rb = xs32(rb);
    m_ready <= (phase >= 2) ? 1'b1 : (rb[31:16] >= bp_thr);
    // AXI4-Lite reads
    if (arvalid && arready) arvalid <= 0;
    read_n = read_n + 1;
    if (rd_pending && rvalid && rready) begin
      rready <= 0; rd_pending = 0;
      if (phase == 2) begin
        if (rdata[{busy_bit}]) wait_n = {POLL_GAP};
        else begin $fwrite(fout, "I %0d\\n", cyc); phase = 3; next_reg; end
      end else if (phase == 3) begin
        $fwrite(fout, "R %h %h\\n", araddr, rdata);
        next_reg;
      end
    end else if (rd_pending && read_n > {READ_LIMIT}) begin
      $fwrite(fout, "A %h\\n", araddr); $fclose(fout); $finish;
    end
    case (phase)
      0: if (cyc == {RESET_CYCLES}) rst <= 0;
         else if (cyc == {RESET_CYCLES + SETTLE_CYCLES}) begin
           phase = 1; $fwrite(fout, "S %0d\\n", cyc);
         end
      1: {r_first}if (!have_next && !s_valid && frames_seen >= frames) begin
           phase = 2; start_read({REG_STATUS});
         end{r_phases}
      2: if (!rd_pending) begin
           if (wait_n > 0) wait_n = wait_n - 1;
           else start_read({REG_STATUS});
         end
      4: if (wait_n > 0) wait_n = wait_n - 1;
         else begin
           $fwrite(fout, "D %0d\\n", cyc); $fclose(fout); $finish;
         end
      default: ;
    endcase
    if (!timed_out && phase <= 2 && cyc >= max_cycles) begin
      timed_out = 1;
      $fwrite(fout, "T %0d %0d\\n", cyc, frames_seen);
      if (!rd_pending) begin phase = 3; next_reg; end
      else phase = 3;
    end
  end
endmodule
"""


def register_reads(cfg: Config) -> list[int]:
    """Every register the result holds: ID, CONFIG, STATUS, TILE_BUSY, TILE_ERROR and the
    low and high words of every global and tile counter."""
    addrs = [REG_ID, REG_CONFIG, REG_STATUS, REG_TILE_BUSY, REG_TILE_ERROR]
    for i in range(len(GLOBAL_COUNTERS)):
        addrs += [GLOBAL_COUNTER_BASE + COUNTER_STRIDE * i,
                  GLOBAL_COUNTER_BASE + COUNTER_STRIDE * i + 4]
    for t in range(cfg.system.tiles):
        base = TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t
        for i in range(len(COUNTER_KEYS)):
            addrs += [base + COUNTER_STRIDE * i, base + COUNTER_STRIDE * i + 4]
    return addrs


def registers_from(cfg: Config, raw: dict[int, int]) -> dict[str, Any]:
    """The registers as a result holds them (id, config, status, tile_busy, tile_error,
    64-bit global and per-tile counters) from the 32-bit words read at register_reads()."""
    def r64(a: int) -> int:
        return raw[a] | raw[a + 4] << 32

    return {
        "id": raw[REG_ID], "config": raw[REG_CONFIG], "status": raw[REG_STATUS],
        "tile_busy": raw[REG_TILE_BUSY], "tile_error": raw[REG_TILE_ERROR],
        "global": {k: r64(GLOBAL_COUNTER_BASE + COUNTER_STRIDE * i)
                   for i, k in enumerate(GLOBAL_COUNTERS)},
        "tiles": [{k: r64(TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t + COUNTER_STRIDE * i)
                   for i, k in enumerate(COUNTER_KEYS)} for t in range(cfg.system.tiles)]}


def parse_output(cfg: Config, text: str, n_frames: int) -> dict[str, Any]:
    """The response file as the cocotb testbench's summary (sys_tb.py) plus the cycle of
    every output beat (`beats`: [cycle, last, data])."""
    beats: list[list[int]] = []
    regs_raw: dict[int, int] = {}
    start = idle = done = None
    timeout = hung = None
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        kind = f[0]
        if kind == "O":
            beats.append([int(f[1]), int(f[2]), int(f[3], 16)])
        elif kind == "R":
            regs_raw[int(f[1], 16)] = int(f[2], 16)
        elif kind == "S":
            start = int(f[1])
        elif kind == "I":
            idle = int(f[1])
        elif kind == "D":
            done = int(f[1])
        elif kind == "T":
            timeout = (int(f[1]), int(f[2]))
        elif kind == "A":
            hung = int(f[1], 16)
    frames: list[list[int]] = []
    cur: list[int] = []
    frame_cycles: list[int] = []
    for cyc, last, data in beats:
        cur.append(data)
        if last:
            frames.append(cur)
            frame_cycles.append(cyc)
            cur = []
    summary: dict[str, Any] = {"timed_out": timeout is not None, "beats": beats,
                               "frame_cycles": frame_cycles, "finished": done is not None}
    if hung is not None:
        summary["hung_read"] = hung
    if timeout is not None:
        summary.update(max_cycles=timeout[0], responses_so_far=timeout[1])
    if done is None or timeout is not None or hung is not None:
        return summary

    summary["registers"] = registers_from(cfg, regs_raw)
    summary["raw_registers"] = regs_raw
    summary["responses"] = [[f"{w:x}" for w in fr] for fr in frames[:n_frames]]
    summary["extra_output_frames"] = len(frames) - n_frames + (1 if cur else 0)
    summary["sim_cycles"] = (idle or 0) - (start or 0)
    return summary


def stimulus_text(prog: HostProgram) -> str:
    return "".join(f"{int(last)} {w:x}\n" for w, last in prog.beats())


def verify_system_verilog(cfg: Config) -> str:
    """Verilog of the system top's VERIFY build (tests only; cached as emitted Verilog is)."""
    from bfimna.hdl.flow.emit import _cached

    @_cached("system-verify")
    def gen(cfg: Config) -> str:
        from amaranth.back import verilog

        from bfimna.hdl.gen.system import VERIFY, System, system_module_name
        return verilog.convert(System(cfg, fault=VERIFY), name=system_module_name(cfg),
                               emit_src=False)
    return gen(cfg)


def run_system_replay(cfg: Config, sim: str, prog: HostProgram, max_cycles: int,
                      build_root: Path, seed: int = 1, idle: float = 0.0,
                      backpressure: float = 0.0, waves: tuple[int, int] | None = None,
                      fault: int | None = None, preset: int | None = None,
                      stim: str | None = None, drain: int = 100_000,
                      frames: int | None = None) -> tuple[bool, dict, ReplayRun]:
    """Run `prog` on the system top through the replay harness. Returns (the harness
    finished normally, the summary as sys_tb.py writes it, the run: its log, the command
    that reruns the simulation and its files, which the caller removes with
    run.cleanup() once it no longer needs to point a person at them).
    `fault` (a mutant's number, hdl/gen/system.py: system_mutant_numbers; 0 none) or
    `preset` (every counter's value after the reset) run the VERIFY build (tests only).
    `stim`: the stimulus text instead of `prog`'s beats, with reset lines (`2 0`, a
    harness with resets: fuzz_stimulus); `prog` is then what follows the last reset and
    `drain` bounds the wait for idle before each reset. `frames`: the output frames to
    wait for (default: prog's responses)."""
    from bfimna.hdl.flow.emit import system_verilog

    verify = fault is not None or preset is not None
    resets = stim is not None
    dut = verify_system_verilog(cfg) if verify else system_verilog(cfg)
    unit = "sys" + ("-verify" if verify else "")
    b = build_replay(cfg, sim, unit, dut, harness_text(cfg, bool(waves), verify),
                     build_root, waves=bool(waves))
    n_frames = len(prog.responses) if frames is None else frames
    plus: dict[str, str | int] = {
        "frames": n_frames, "idle": threshold(idle), "bp": threshold(backpressure),
        "seed_a": seed_state(seed, 0), "seed_b": seed_state(seed, 1),
        "max_cycles": max_cycles}
    if verify:
        plus.update(fault=fault or 0, preset=f"{preset or 0:x}")
    plus.update(drain=drain)
    if waves:
        plus.update(waves_from=waves[0], waves_to=waves[1],
                    wave=str(b.bdir / f"waves-{waves[0]}-{waves[1]}.fst"))
    t0 = time.perf_counter()
    run, text = run_replay(b, plus, {"stim": stim if stim is not None else stimulus_text(prog),
                                     "reads": "".join(f"{a:x}\n" for a in register_reads(cfg))})
    pre: list[list[int]] = []         # output beats before the last reset
    resets_seen: list[tuple[int, int, int]] = []
    if resets:
        lines = text.splitlines(keepends=True)
        cut = max((i for i, ln in enumerate(lines) if ln.startswith("X ")), default=-1)
        for ln in lines[:cut + 1]:
            f = ln.split()
            if f and f[0] == "O":
                pre.append([int(f[1]), int(f[2]), int(f[3], 16)])
            elif f and f[0] == "X":
                resets_seen.append((int(f[1]), int(f[2]), int(f[3])))
        start = [ln for ln in lines[:cut + 1] if ln.startswith("S ")]
        text = "".join(start + lines[cut + 1:])
    summary = parse_output(cfg, text, n_frames)
    if resets:
        summary.update(before_reset=pre, resets=resets_seen)
    wall = time.perf_counter() - t0
    summary.update(wall_s=round(run.wall_s, 4), build_s=round(b.build_s, 2),
                   cycles_per_s=round(summary.get("sim_cycles", 0) / run.wall_s, 1)
                   if run.wall_s > 0 else None, replay_wall_s=round(wall, 4))
    ok = run.ok and summary["finished"] and not summary["timed_out"]
    return ok, summary, run


# -- checks against the golden system (tests and scripts: mutation, counters, fuzz) ---------

def golden_registers(cfg: Config, prog: HostProgram | None = None, preset: int = 0,
                     beats=None):
    """The golden system after `prog` (or raw `beats`, (word, last)) from a reset, every
    counter starting at `preset` (the VERIFY build's tb_preset): its output beats, every
    register word at register_reads() (golden's own counter semantics: modulo 2^bits,
    32-bit halves) and the golden System itself."""
    from bfimna.golden.model.system import System

    g = System(cfg)
    if preset:
        g.counters = dict.fromkeys(g.counters, preset)
        for t in g.tiles:
            for k in t.counters:
                t.counters[k] = preset
    out = g.feed(prog.beats() if prog is not None else beats)
    return out, {a: g.register(a) for a in register_reads(cfg)}, g


def frames_of(beats) -> list[list[int]]:
    """Output beats (word, last) as frames (the words up to each tlast)."""
    frames, cur = [], []
    for w, last in beats:
        cur.append(w)
        if last:
            frames.append(cur)
            cur = []
    return frames + ([cur] if cur else [])


def expected_run(cfg: Config, prog: HostProgram, preset: int = 0, idle: float = 0.0,
                 backpressure: float = 0.0) -> tuple[list, dict[int, int], int]:
    """What verify_differences compares with: golden's output beats and register words
    (counters from `preset`), and a watchdog budget in cycles for the RTL run."""
    out, regs, g = golden_registers(cfg, prog, preset)
    work = sum(t.counters["cycles"] - preset for t in g.tiles) \
        + g.counters["copy_cycles"] - preset
    slow = 1.0 / max(0.05, (1 - idle) * (1 - backpressure))
    return out, regs, int(5000 + slow * (20 * prog.n_words + 4 * len(out)) + 2 * work)


def verify_differences(cfg: Config, sim: str, prog: HostProgram, build_root: Path,
                       fault: int = 0, preset: int = 0, seed: int = 1, idle: float = 0.0,
                       backpressure: float = 0.0, expected: tuple | None = None
                       ) -> tuple[list[str], ReplayRun]:
    """Run `prog` on the VERIFY build (mutant `fault`, counters from `preset`) and list
    every way it differs from the golden system: a timeout or hang, a response word, a
    frame too many, any register word read over AXI4-Lite (counters in 32-bit halves).
    `expected`: expected_run(...) of the same program and preset, when already known
    (a mutation matrix runs one program many times)."""
    out, want_regs, max_cycles = expected or expected_run(cfg, prog, preset, idle,
                                                          backpressure)
    want = frames_of(out)
    ok, summary, run = run_system_replay(cfg, sim, prog, max_cycles, build_root, seed, idle,
                                         backpressure, fault=fault, preset=preset,
                                         frames=len(want))
    if summary.get("timed_out"):
        return [f"timed out after {max_cycles} cycles"], run
    if "hung_read" in summary:
        return [f"register read at {summary['hung_read']:#x} never answered"], run
    if not ok or "registers" not in summary:
        return ["the harness did not finish"], run
    diffs = []
    got = [[int(w, 16) for w in fr] for fr in summary["responses"]]
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        if w != g:
            diffs.append(f"response {i}: {[hex(x) for x in g[:4]]}..., expected "
                         f"{[hex(x) for x in w[:4]]}...")
    if len(got) != len(want) or summary["extra_output_frames"]:
        diffs.append(f"{len(got) + summary['extra_output_frames']} output frames, "
                     f"expected {len(want)}")
    raw = summary["raw_registers"]
    for a, v in want_regs.items():
        if raw.get(a) != v:
            diffs.append(f"register {a:#x}: {raw.get(a, 0):#x}, expected {v:#x}")
    return diffs, run


# -- fuzzing the AXI4-Stream (tests/test_fuzz_system.py, scripts/fuzz_system.py) -------------

def fuzz_beats(cfg: Config, seed: int, n_words: int,
               inside: bool | None = None) -> list[tuple[int, bool]]:
    """About `n_words` seeded random input beats (word, tlast): runs of random 64-bit words
    with random tlast, well-formed packets of a random host program, and those packets
    malformed (a bit flipped in any word, a word dropped or added, tlast moved early or
    left off so that the next packet joins it). `inside` True / False: end inside a
    packet (a random word with tlast, which ends whatever packet was open, then a WRITE
    header waiting for its payload) or between packets (that word alone)."""
    import numpy as np

    from bfimna.golden.host.stimulus import random_host_program

    rng = np.random.default_rng(seed)
    pool = random_host_program(cfg, seed, n_packets=20, bad_share=0.1).frames

    def word() -> int:
        return int(rng.integers(0, 1 << 63, dtype=np.int64)) << 1 | int(rng.integers(2))

    out: list[tuple[int, bool]] = []
    while len(out) < n_words:
        kind = int(rng.integers(4))
        if kind == 0:                              # random bytes, random tlast
            out += [(word(), bool(rng.random() < 0.3)) for _ in range(int(rng.integers(1, 7)))]
            continue
        frame = list(pool[int(rng.integers(len(pool)))])
        last_at = len(frame) - 1
        if kind == 2:                              # one word changed
            i = int(rng.integers(len(frame)))
            how = int(rng.integers(3))
            if how == 0:
                frame[i] ^= 1 << int(rng.integers(64))
            elif how == 1 and len(frame) > 1:
                del frame[i]
            else:
                frame.insert(i, word())
            last_at = len(frame) - 1
        elif kind == 3:                            # tlast early, or missing
            last_at = int(rng.integers(len(frame))) if rng.random() < 0.5 else -1
        out += [(w, i == last_at) for i, w in enumerate(frame)]
    if inside is not None:
        out.append((word(), True))
        if inside:
            out.append((header(PT.WRITE, count=2, width=4), False))
    return out


def fuzz_stimulus(fuzz: list[tuple[int, bool]], after: HostProgram) -> str:
    """The harness stimulus: the fuzz beats, a reset line, then `after`'s beats."""
    lines = [f"{int(last)} {w:x}\n" for w, last in fuzz] + ["2 0\n"]
    return "".join(lines) + stimulus_text(after)


def run_fuzz_case(cfg: Config, sim: str, seed: int, n_words: int, after: HostProgram,
                  build_root: Path, idle: float = 0.0, backpressure: float = 0.0,
                  drain: int = 20_000, inside: bool | None = None,
                  fault: int | None = None) -> dict[str, Any]:
    """One fuzz case on the real system top: `n_words` fuzz beats (fuzz_beats) under
    random idle and back-pressure, a drain (TREADY up until `busy` falls), a reset, then
    the known-good program `after`. Returns {"problems": [...], ...}; no problem means
    the system took every beat (never hung), emitted before the reset exactly golden's
    output beats (no word golden does not), was busy at the reset exactly when golden
    was inside a packet, and answered `after` exactly as golden, with every register
    word (counters cleared by the reset) equal golden's. `fault`: run the VERIFY build
    with that mutant instead (tests of these checks only)."""
    from bfimna.golden.model.fast import FastTile
    from bfimna.golden.model.system import System

    fuzz = fuzz_beats(cfg, seed, n_words, inside)
    g = System(cfg)
    fuzz_out = g.feed(fuzz)
    inside = g._state != "hdr"
    after_out, want_regs, _ = golden_registers(cfg, after)
    f = System(cfg, FastTile)
    f.feed(fuzz)
    work = sum(t.counters["cycles"] for t in f.tiles) + f.counters["copy_cycles"]
    slow = 1.0 / max(0.05, (1 - idle) * (1 - backpressure))
    budget = int(10_000 + drain + slow * 20 * (len(fuzz) + after.n_words + len(fuzz_out))
                 + 2 * work)
    want = frames_of(after_out)
    ok, summary, run = run_system_replay(cfg, sim, after, budget, build_root, seed, idle,
                                         backpressure, stim=fuzz_stimulus(fuzz, after),
                                         drain=drain, frames=len(want), fault=fault)
    res: dict[str, Any] = {"seed": seed, "words": len(fuzz), "golden_out": len(fuzz_out),
                           "inside_packet": inside, "bad_packets": g.counters["bad_packets"],
                           "run": run, "problems": []}
    p = res["problems"]
    if summary.get("timed_out"):
        p.append(f"hung: not done after {budget} cycles ({len(summary.get('resets', []))} "
                 f"resets reached)")
        return res
    if "hung_read" in summary or not ok or "registers" not in summary:
        p.append("the harness did not finish (a register read never answered?)")
        return res
    before = [(d, bool(last)) for _c, last, d in summary["before_reset"]]
    if before != [(w, bool(last)) for w, last in fuzz_out]:
        k = next((i for i, (a, b) in enumerate(zip(before, fuzz_out, strict=False))
                  if a != (b[0], bool(b[1]))), min(len(before), len(fuzz_out)))
        p.append(f"output before the reset: {len(before)} beats, golden {len(fuzz_out)}; "
                 f"first difference at beat {k}")
    resets = summary.get("resets", [])
    if len(resets) != 1:
        p.append(f"{len(resets)} resets reached, expected 1")
    elif resets[0][2]:
        p.append(f"hung: the last fuzz beat was not taken within {drain} cycles")
    elif bool(resets[0][1]) != inside:
        p.append(f"busy {resets[0][1]} at the reset, golden "
                 f"{'inside' if inside else 'between'} packets")
    got = [[int(w, 16) for w in fr] for fr in summary["responses"]]
    if got != want or summary["extra_output_frames"]:
        p.append(f"after the reset: {got} (+{summary['extra_output_frames']} frames), "
                 f"golden {want}")
    raw = summary["raw_registers"]
    bad = [a for a, v in want_regs.items() if raw.get(a) != v]
    if bad:
        p.append(f"after the reset: {len(bad)} register words differ, first {bad[0]:#x}: "
                 f"{raw.get(bad[0], 0):#x}, golden {want_regs[bad[0]]:#x}")
    res["responses"] = got
    return res
