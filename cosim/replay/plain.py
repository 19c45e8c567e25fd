"""Plain HDL testbenches: the speed reference of the replay harnesses (cosim/replay/ap.py,
tile.py, system.py). Each is a Verilog-2005 module `replay_tb` around the same emitted top,
built and started by cosim/replay/build.py (units "ap-plain", "ctl-plain", "sys-plain"),
with the clock in HDL and nothing between the simulator and the design: no per-cycle or
per-beat file I/O and no output logging. What the design produces is folded into a
checksum (so the simulator cannot drop any output logic as unused) and printed once, at
the end, with the cycle count, as one line `PLAIN key=value ...` in the simulator's log.
scripts/bench_cosim.py compares the replay path's speed with these.

- AP core (`ap_plain_text`): like ../shared/bench/native_ap_tb.sv, but for any
  configuration: a xorshift64 draws a micro-op every cycle (the opcode from a 32-entry
  table weighted as random_uops weights its opcodes, every field from the same state,
  row and column fields in range when the size is a power of two), cnt_sel rotates over
  the counters; +cycles=N cycles, +seed=S. Not the replay's stream: a speed reference of
  the same kind of load (no readback sweeps, no illegal share). Its inputs change at the
  rising edge, with the state, as in native_ap_tb.sv (the replay harness drives at the
  falling edge, so the simulator evaluates the core's logic twice a cycle).
- tile (`tile_plain_text`) and system top (`system_plain_text`): the SAME workload as a
  replay run, so that the two speeds compare: the tile loads the CAP (and the MAPs) row
  by row through the host port, streams the program, waits for idle, reads every row of
  every AP back and every counter, as cosim/replay/tile.py does for one job with no idle
  cycles; the system top sends every beat of the host program on s_axis (no idle, no
  back-pressure), counts the output beats and frames and waits for `busy` to fall.

Where the stimulus comes from: a memory `mem` filled by ONE `$readmemh` of a file at time 0
(+mem=FILE; the counts as plusargs). Not initialised in the text (`initial mem[0] = ...`):
that would make the Verilog, hence the build (minutes under Verilator for these designs),
depend on the workload, and a 10^5-statement initial block is itself slow to compile. The
text depends on the memory's depth only, a power of two of at least MIN_DEPTH
(`mem_depth`), so one build serves every workload up to that size. The one file read
happens before the first clock edge; the process wall time the bench measures includes
it (milliseconds).

The tile and system runs can be checked against the golden models: the readback's and the
output beats' checksum (`rotxor`: rotate left by one, XOR the next value; order matters and
equal rows do not cancel), the counters, the beat and frame counts (tile_differences,
system_differences). The AP core's run is not checked (its stream is the xorshift's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.cosim.replay.build import ReplayBuild, build_replay, run_replay, seed_state
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import RESERVED_COLS, host_read_latency
from bfimna.golden.spec.uops import COUNTER_KEYS, N_COUNTERS, Op, addr_bits, col_bits
from bfimna.hdl.gen.controller import HOST_READ, HOST_WRITE

TILE_RESET_CYCLES = 3                    # as cosim/replay/tile.py
SYS_RESET_CYCLES, SYS_SETTLE_CYCLES = 4, 2   # as cosim/replay/system.py
MIN_DEPTH = 1 << 16          # one build serves programs of up to 65,536 entries


def _ports(signature) -> list[dict]:
    from bfimna.hdl.flow.emit import _ports as emit_ports

    return emit_ports(signature)


def _width(ports: list[dict], name: str) -> int:
    return next(p["width"] for p in ports if p["name"] == name)


def mem_depth(n: int) -> int:
    """Depth of the stimulus memory for `n` entries: a power of two, at least MIN_DEPTH."""
    return max(MIN_DEPTH, 1 << max(0, n - 1).bit_length())


def _fold(expr: str, width: int, to: int = 64) -> str:
    """XOR of the `to`-bit slices of a `width`-bit expression (a name)."""
    if width <= to:
        return expr
    return " ^ ".join(f"{expr}[{min(lo + to, width) - 1}:{lo}]" for lo in range(0, width, to))


def _rot(r: int) -> str:
    """The 64-bit state rotated left by r (0 < r < 64)."""
    return f"{{x[{63 - r}:0], x[63:{64 - r}]}}"


XORSHIFT64 = """
  function [63:0] xs64;
    input [63:0] v;
    reg [63:0] y;
    begin
      y = v ^ (v << 13); y = y ^ (y >> 7); xs64 = y ^ (y << 17);
    end
  endfunction
"""


# -- AP core -------------------------------------------------------------------------------

def op_table(cfg: Config, slots: int = 32) -> list[int]:
    """`slots` opcodes in the proportions random_uops draws them (largest remainder)."""
    from bfimna.golden.host.stimulus import _WEIGHTS_1D, _WEIGHTS_2D

    weights: dict[Op, int] = _WEIGHTS_2D if cfg.ap.two_d else _WEIGHTS_1D
    total = sum(weights.values())
    exact = {op: w * slots / total for op, w in weights.items()}
    count = {op: int(v) for op, v in exact.items()}
    for op in sorted(exact, key=lambda o: exact[o] - count[o], reverse=True)[
            :slots - sum(count.values())]:
        count[op] += 1
    return [int(op) for op in weights for _ in range(count[op])]


def ap_plain_text(cfg: Config) -> str:
    """The plain testbench of the AP core of `cfg` (micro-ops from a xorshift64)."""
    from bfimna.hdl.gen.ap import ap_module_name, ap_signature

    ap = cfg.ap
    ports = [p for p in _ports(ap_signature(ap)) if p["name"] not in ("clk", "rst")]
    ins = [(p["name"], p["width"]) for p in ports if p["dir"] == "in"]
    outs = [(p["name"], p["width"]) for p in ports if p["dir"] == "out"]
    aw, cw = addr_bits(ap.rows), col_bits(ap.cols)
    # fields in range when the size is a power of two (else a share is illegal: a NOP)
    row_bits = aw - 1 if ap.rows == 1 << (aw - 1) else aw
    col_in = cw if ap.cols == 1 << cw else cw + 1
    limited = {"addr": row_bits, "addr2": row_bits, "shift": row_bits, "col": col_in,
               "col2": col_in}
    table = op_table(cfg)
    cases = "\n".join(f"        {k}: op_of = {op};" for k, op in enumerate(table))
    decl, rot = [], 7
    for name, w in ins:
        if name == "op":
            decl.append(f"  wire [{w - 1}:0] i_op = rst ? {w}'d0 : op_of(x[4:0]);")
            continue
        if name == "cnt_sel":
            decl.append(f"  wire [{w - 1}:0] i_cnt_sel = sel;")
            continue
        bits = min(w, limited.get(name, w))
        reps = (bits + 63) // 64
        src = f"{{{reps}{{{_rot(rot)}}}}}" if reps > 1 else _rot(rot)
        rot = rot + 11 if rot + 11 < 64 else rot + 11 - 63
        # (the assignments truncate to `bits`, then zero-extend to the port)
        decl.append(f"  wire [{bits - 1}:0] r_{name} = {src};")
        decl.append(f"  wire [{w - 1}:0] i_{name} = r_{name};")
    decl += [f"  wire [{w - 1}:0] o_{n};" for n, w in outs]
    conns = ", ".join([f".{n}(i_{n})" for n, _ in ins] + [f".{n}(o_{n})" for n, _ in outs])
    fold = " ^ ".join(_fold(f"o_{n}", w) for n, w in outs)
    top = ap_module_name(ap)
    nl = "\n"
    return f"""// Plain testbench of {top} (generated by cosim/replay/plain.py): a xorshift64
// micro-op every cycle, clock in HDL, outputs folded into a checksum, no I/O until the end.
`timescale 1ns/1ps
module replay_tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg [63:0] x, cyc, n_cycles, acc;
  reg [3:0] sel;
{XORSHIFT64}
  function [3:0] op_of;
    input [4:0] k;
    begin
      case (k)
{cases}
        default: op_of = 0;
      endcase
    end
  endfunction
{nl.join(decl)}
  {top} dut (.clk(clk), .rst(rst),
    {conns});

  initial begin
    if (!$value$plusargs("cycles=%d", n_cycles)) n_cycles = 1000000;
    if (!$value$plusargs("seed=%d", x)) x = 64'h9E3779B97F4A7C15;
    if (x == 0) x = 1;
    cyc = 0; acc = 0; sel = 0;
  end

  always @(posedge clk) begin
    cyc <= cyc + 1;
    if (cyc == 2) rst <= 0;
    x <= xs64(x);
    sel <= (sel == {N_COUNTERS - 1}) ? 4'd0 : sel + 4'd1;
    acc <= {{acc[62:0], acc[63]}} ^ {fold};
    if (cyc + 1 == n_cycles) begin
      $display("PLAIN cycles=%0d acc=%h cnt=%h", cyc + 1, acc, o_cnt);
      $finish;
    end
  end
endmodule
"""


# -- tile ----------------------------------------------------------------------------------

def tile_plain_text(cfg: Config, depth: int) -> str:
    """The plain testbench of the tile of `cfg`, stimulus memory of `depth` entries."""
    from bfimna.cosim.replay.tile import dut_text as tile_dut_text
    from bfimna.hdl.gen.controller import controller_module_name, controller_signature

    ports = _ports(controller_signature(cfg))
    mw, cw = _width(ports, "host_mask"), _width(ports, "csr_data")
    R, C, K = cfg.ap.rows, cfg.ap.cols, cfg.tile.maps
    L = host_read_latency(cfg.tile.port_register)   # a host read's data: edges after
    MR, MC = cfg.map_ap.rows, cfg.map_ap.cols
    W = max(64, C, MC if K else 0)          # a memory entry: a row or an instruction word
    RW = max(C, MC if K else 0)             # the readback checksum
    usable = (1 << (C - RESERVED_COLS)) - 1
    full_map = (1 << MC) - 1
    nctr = len(COUNTER_KEYS)
    map_row = f"""
          else acc = {{acc[{RW - 2}:0], acc[{RW - 1}]}} ^ host_rdata[{MC - 1}:0];""" if K else ""
    top = controller_module_name(cfg)
    return f"""// Plain testbench of {top} (generated by cosim/replay/plain.py): the workload
// of one replay job (rows in, program, idle, every row and counter out) from a memory read
// once at time 0, no idle cycles, readback folded into a checksum, no I/O until the end.
{tile_dut_text(cfg)}

  reg [{W - 1}:0] mem [0:{depth - 1}];
  reg [{cw - 1}:0] ctr [0:{nctr}];
  reg [8*1024-1:0] mem_name;
  integer phase, wait_n, maps, n_words, idx, w_end, load_ap, load_row, rd_ap, rd_row;
  integer csr_i, missing, i;
  reg [63:0] cyc, t0, budget, work;
  reg [{RW - 1}:0] acc;
  reg [{L}:0] pv, pm;   // a host read asked i edges ago (pv[i]), of a MAP (pm[i])

  initial begin
    if (!$value$plusargs("mem=%s", mem_name) || !$value$plusargs("words=%d", n_words)) begin
      $display("plain: +mem and +words are required"); $finish;
    end
    if (!$value$plusargs("maps=%d", maps)) maps = 0;
    if (!$value$plusargs("budget=%d", budget)) budget = 64'd1000000000;
    $readmemh(mem_name, mem);
    cyc = 0; phase = 1; wait_n = {TILE_RESET_CYCLES}; acc = 0; missing = 0;
    pv = 0; pm = 0; idx = 0; load_ap = 0; load_row = 0;
  end

  always @(posedge clk) begin
    cyc = cyc + 1;
    case (phase)
      1: begin     // reset
        wait_n = wait_n - 1;
        if (wait_n == 0) begin rst <= 0; phase = 2; end
      end
      2: begin     // the CAP's rows (then each MAP's with +maps=1), one a cycle
        if (load_ap == 0 || (maps != 0 && load_ap <= {K})) begin
          host_op <= {HOST_WRITE}; host_ap <= load_ap; host_addr <= load_row;
          host_wdata <= mem[idx];
          host_mask <= (load_ap == 0) ? {mw}'h{usable:x} : {mw}'h{full_map:x};
          idx = idx + 1; load_row = load_row + 1;
          if (load_row == (load_ap == 0 ? {R} : {MR})) begin
            load_row = 0; load_ap = load_ap + 1;
          end
        end else begin
          host_op <= 0; phase = 3; t0 = cyc; w_end = idx + n_words;
        end
      end
      3, 4: begin  // stream the words, then wait for idle
        if (s_valid && s_ready) s_valid <= 0;
        if (phase == 3) begin
          if (idx < w_end && (!s_valid || s_ready)) begin
            s_data <= mem[idx][63:0]; s_valid <= 1; idx = idx + 1;
          end else if (idx == w_end && (!s_valid || s_ready)) phase = 4;
        end else if (!busy) begin
          work = cyc - t0; rd_ap = 0; rd_row = 0; phase = 5;
        end
        if (phase != 5 && cyc - t0 >= budget) begin
          $display("PLAIN timeout=1 cycles=%0d", cyc); $finish;
        end
      end
      5: begin     // every row of every AP, pipelined: data {L + 1} edges after the request
        if (pv[{L}]) begin
          if (!host_rvalid) missing = missing + 1;
          else if (!pm[{L}])
            acc = {{acc[{RW - 2}:0], acc[{RW - 1}]}} ^ host_rdata[{C - 1}:0];{map_row}
        end
        pv = pv << 1; pm = pm << 1;
        if (rd_ap <= {K}) begin
          host_op <= {HOST_READ}; host_ap <= rd_ap; host_addr <= rd_row;
          pv[0] = 1; pm[0] = (rd_ap != 0);
          rd_row = rd_row + 1;
          if (rd_row == (rd_ap == 0 ? {R} : {MR})) begin rd_row = 0; rd_ap = rd_ap + 1; end
        end else begin
          host_op <= 0;
          if (pv == 0) begin csr_i = 0; phase = 6; end
        end
      end
      6: begin     // counters and the status word: data one edge after csr_sel
        if (csr_i > 0) ctr[csr_i - 1] = csr_data;
        if (csr_i <= {nctr}) begin
          csr_sel <= csr_i; csr_i = csr_i + 1;
        end else begin
          $write("PLAIN cycles=%0d work=%0d missing=%0d error=%0d busy=%0d rows=%h ctr=",
                 cyc, work, missing, error, busy, acc);
          for (i = 0; i <= {nctr}; i = i + 1) begin
            if (i > 0) $write(",");
            $write("%h", ctr[i]);
          end
          $display("");
          $finish;
        end
      end
      default: ;
    endcase
  end
endmodule
"""


def tile_memory(cfg: Config, words, cam, maps=None) -> tuple[str, int]:
    """The memory file of one tile job (the CAP's rows, every MAP's when `maps` is given, a
    MAP without an array as zeros, then the words) and its number of entries. Rows are
    masked as the replay harness writes them."""
    from bfimna.cosim.replay.tile import row_ints

    usable = (1 << (cfg.ap.cols - RESERVED_COLS)) - 1
    ent = [v & usable for v in row_ints(cam)]
    if maps is not None:
        full = (1 << cfg.map_ap.cols) - 1
        for k in range(cfg.tile.maps):
            arr = maps[k] if k < len(maps) and maps[k] is not None else \
                np.zeros((cfg.map_ap.rows, cfg.map_ap.cols), dtype=np.uint8)
            ent += [v & full for v in row_ints(arr)]
    ent += [int(w) & ((1 << 64) - 1) for w in words]
    return "".join(f"{v:x}\n" for v in ent), len(ent)


# -- system top ----------------------------------------------------------------------------

def system_plain_text(cfg: Config, depth: int) -> str:
    """The plain testbench of the system top of `cfg`, `depth` beats of memory."""
    from bfimna.hdl.gen.system import system_module_name, system_signature

    ports = _ports(system_signature(cfg))
    dw, aw = _width(ports, "s_axis_tdata"), _width(ports, "s_axil_araddr")
    rw = _width(ports, "s_axil_rdata")
    top = system_module_name(cfg)
    return f"""// Plain testbench of {top} (generated by cosim/replay/plain.py): every beat of
// the host program from a memory read once at time 0, no idle, no back-pressure, output
// beats counted and folded into a checksum, no I/O until the end.
`timescale 1ns/1ps
module replay_tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg s_valid = 0, s_last = 0, m_ready = 0;
  reg [{dw - 1}:0] s_data = 0;
  wire s_ready, m_valid, m_last, busy, error;
  wire [{dw - 1}:0] m_data;
  wire arready, rvalid, awready, wready, bvalid;
  wire [{rw - 1}:0] rdata;
  wire [1:0] rresp, bresp;
  {top} dut (
    .clk(clk), .rst(rst),
    .s_axis_tvalid(s_valid), .s_axis_tdata(s_data), .s_axis_tlast(s_last),
    .s_axis_tready(s_ready),
    .m_axis_tvalid(m_valid), .m_axis_tdata(m_data), .m_axis_tlast(m_last),
    .m_axis_tready(m_ready),
    .s_axil_awaddr({aw}'d0), .s_axil_awprot(3'd0), .s_axil_awvalid(1'b0),
    .s_axil_awready(awready), .s_axil_wdata({rw}'d0), .s_axil_wstrb({rw // 8}'d0),
    .s_axil_wvalid(1'b0), .s_axil_wready(wready), .s_axil_bresp(bresp),
    .s_axil_bvalid(bvalid), .s_axil_bready(1'b1),
    .s_axil_araddr({aw}'d0), .s_axil_arprot(3'd0), .s_axil_arvalid(1'b0),
    .s_axil_arready(arready), .s_axil_rdata(rdata), .s_axil_rresp(rresp),
    .s_axil_rvalid(rvalid), .s_axil_rready(1'b1),
    .busy(busy), .error(error));

  reg [{dw}:0] mem [0:{depth - 1}];     // {{tlast, tdata}}
  reg [8*1024-1:0] mem_name;
  integer phase, n_beats, idx, frames, frames_seen, beats_seen;
  reg [63:0] cyc, t0, max_cycles;
  reg [{dw - 1}:0] acc;

  initial begin
    if (!$value$plusargs("mem=%s", mem_name) || !$value$plusargs("beats=%d", n_beats)) begin
      $display("plain: +mem and +beats are required"); $finish;
    end
    if (!$value$plusargs("frames=%d", frames)) frames = 0;
    if (!$value$plusargs("max_cycles=%d", max_cycles)) max_cycles = 64'd1000000000;
    $readmemh(mem_name, mem);
    cyc = 0; phase = 0; idx = 0; frames_seen = 0; beats_seen = 0; acc = 0;
  end

  always @(posedge clk) begin
    cyc = cyc + 1;
    if (s_valid && s_ready) begin s_valid <= 0; idx = idx + 1; end
    if (m_valid && m_ready) begin
      beats_seen = beats_seen + 1; acc = {{acc[{dw - 2}:0], acc[{dw - 1}]}} ^ m_data;
      if (m_last) frames_seen = frames_seen + 1;
    end
    case (phase)
      0: if (cyc == {SYS_RESET_CYCLES}) rst <= 0;
         else if (cyc == {SYS_RESET_CYCLES + SYS_SETTLE_CYCLES}) begin
           phase = 1; t0 = cyc; m_ready <= 1;
         end
      1: if (idx < n_beats) begin
           s_valid <= 1; {{s_last, s_data}} <= mem[idx];
         end else if (frames_seen >= frames) phase = 2;
      2: if (!busy) begin
           $display("PLAIN cycles=%0d work=%0d beats=%0d frames=%0d acc=%h error=%0d",
                    cyc, cyc - t0, beats_seen, frames_seen, acc, error);
           $finish;
         end
      default: ;
    endcase
    if (cyc - t0 >= max_cycles && phase > 0) begin
      $display("PLAIN timeout=1 cycles=%0d beats=%0d frames=%0d", cyc, beats_seen,
               frames_seen);
      $finish;
    end
  end
endmodule
"""


def system_memory(prog) -> tuple[str, int]:
    """The memory file of a HostProgram ({tlast, tdata} per beat) and its beat count."""
    beats = prog.beats()
    return "".join(f"{(int(last) << 64) | w:x}\n" for w, last in beats), len(beats)


# -- what a correct run prints ---------------------------------------------------------------

def rotxor(values, width: int) -> int:
    """The testbenches' checksum: acc = rotate_left(acc, 1) ^ value, from 0, over `width`
    bits (order matters; equal values do not cancel)."""
    full = (1 << width) - 1
    acc = 0
    for v in values:
        acc = (((acc << 1) | (acc >> (width - 1))) & full) ^ (int(v) & full)
    return acc


def tile_expected(cfg: Config, tile) -> dict[str, Any]:
    """The PLAIN line's values (as ints) a golden tile (golden/model/tile.py) says a
    correct run ends with: rows, error, missing, busy and the counters."""
    K = cfg.tile.maps
    rows = [v for k in range(K + 1) for v in tile.ap(k).rows_as_ints()]
    mod = 1 << cfg.ap.counter_bits
    return {"rows": rotxor(rows, max(cfg.ap.cols, cfg.map_ap.cols if K else 0)),
            "error": int(tile.error), "missing": 0, "busy": 0,
            "ctr": [tile.counters[k] % mod for k in COUNTER_KEYS]}


def tile_differences(cfg: Config, run: PlainRun, tile) -> list[str]:
    """What differs between a plain tile run and the golden tile (empty: nothing)."""
    if not run.ok:
        return [f"the plain testbench did not finish (log {run.log})"]
    want = tile_expected(cfg, tile)
    v = run.values
    got = {"rows": int(v["rows"], 16), "error": int(v["error"]), "missing": int(v["missing"]),
           "busy": int(v["busy"]),
           "ctr": [int(c, 16) for c in v["ctr"].split(",")][:len(COUNTER_KEYS)]}
    return [f"{k}: plain {got[k]}, golden {want[k]}" for k in want if got[k] != want[k]]


def system_differences(cfg: Config, run: PlainRun, responses: list[list[int]]) -> list[str]:
    """What differs between a plain system run and the expected responses (the golden
    system's, as word lists)."""
    if not run.ok:
        return [f"the plain testbench did not finish (log {run.log})"]
    words = [w for r in responses for w in r]
    want = {"beats": len(words), "frames": len(responses), "acc": rotxor(words, 64)}
    v = run.values
    got = {"beats": int(v["beats"]), "frames": int(v["frames"]), "acc": int(v["acc"], 16)}
    return [f"{k}: plain {got[k]}, golden {want[k]}" for k in want if got[k] != want[k]]


# -- build and run -------------------------------------------------------------------------

@dataclass
class PlainRun:
    ok: bool                  # the simulator exited normally and printed its PLAIN line
    values: dict[str, Any]    # the PLAIN line: cycles, work, checksums, counts...
    cycles: int               # simulated cycles, time 0 to the end
    wall_s: float             # the simulator process (no build)
    build_s: float
    built: bool
    command: str
    log: Path

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.wall_s if self.wall_s > 0 else 0.0


_LINE = re.compile(r"^PLAIN (.*)$", re.M)


def _parse(log_text: str) -> dict[str, Any]:
    """The last PLAIN line of a log as {key: text}."""
    found = _LINE.findall(log_text)
    if not found:
        return {}
    out: dict[str, Any] = {}
    for kv in found[-1].split():
        k, _, v = kv.partition("=")
        out[k] = v
    return out


def build_plain(cfg: Config, sim: str, unit: str, build_root: Path,
                depth: int = MIN_DEPTH) -> ReplayBuild:
    """Build the plain testbench of `unit` ("ap", "ctl" or "sys") for `sim` (cached per
    text: the AP's does not depend on `depth`)."""
    from bfimna.hdl.flow.emit import ap_verilog, controller_verilog, system_verilog

    if unit == "ap":
        dut, tb = ap_verilog(cfg), ap_plain_text(cfg)
    elif unit == "ctl":
        dut, tb = controller_verilog(cfg), tile_plain_text(cfg, depth)
    elif unit == "sys":
        dut, tb = system_verilog(cfg), system_plain_text(cfg, depth)
    else:
        raise ValueError(f"unknown unit {unit!r}: ap, ctl or sys")
    return build_replay(cfg, sim, f"{unit}-plain", dut, tb, Path(build_root))


def _run(b: ReplayBuild, plus: dict[str, str | int], files: dict[str, str],
         timeout_s: float | None) -> PlainRun:
    run, _ = run_replay(b, plus, files, timeout_s=timeout_s)
    log_text = run.log.read_text(errors="replace") if run.log.exists() else ""
    values = _parse(log_text)
    ok = run.ok and bool(values) and "timeout" not in values
    res = PlainRun(ok, values, int(values.get("cycles", 0) or 0), run.wall_s, b.build_s,
                   b.built, run.command, run.log)
    if ok:
        run.cleanup()
    return res


def run_ap_plain(cfg: Config, sim: str, cycles: int, build_root: Path, seed: int = 1,
                 timeout_s: float | None = None) -> PlainRun:
    """`cycles` cycles of xorshift micro-ops on the AP core of `cfg` under `sim`."""
    b = build_plain(cfg, sim, "ap", build_root)
    state = seed_state(seed, 0) << 32 | seed_state(seed, 1)
    return _run(b, {"cycles": cycles, "seed": state}, {}, timeout_s)


def run_tile_plain(cfg: Config, sim: str, words, cam, build_root: Path, maps=None,
                   budget: int | None = None, timeout_s: float | None = None) -> PlainRun:
    """One tile job (as cosim/replay/tile.py runs it with idle 0) under `sim`. The result's
    values: cycles, work (first word to idle), missing (reads without host_rvalid), error,
    busy, rows (hex XOR of every row read back, CAP then MAPs) and ctr (the counters in
    COUNTER_KEYS order and the status word, hex, comma-separated)."""
    text, n = tile_memory(cfg, words, cam, maps)
    b = build_plain(cfg, sim, "ctl", build_root, mem_depth(n))
    plus: dict[str, str | int] = {"words": len(words), "maps": int(maps is not None)}
    if budget is not None:
        plus["budget"] = budget
    return _run(b, plus, {"mem": text}, timeout_s)


def run_system_plain(cfg: Config, sim: str, prog, build_root: Path,
                     max_cycles: int | None = None, timeout_s: float | None = None
                     ) -> PlainRun:
    """A HostProgram on the system top under `sim`, no idle, no back-pressure. The result's
    values: cycles, work (first beat to idle), beats, frames (output beats and frames
    seen), acc (hex XOR of every output beat's data), error."""
    text, n = system_memory(prog)
    b = build_plain(cfg, sim, "sys", build_root, mem_depth(n))
    plus: dict[str, str | int] = {"beats": n, "frames": len(prog.responses)}
    if max_cycles is not None:
        plus["max_cycles"] = max_cycles
    return _run(b, plus, {"mem": text}, timeout_s)
