"""Replay harness of the tile (the emitted controller top, hdl/gen/controller.py): many
tile programs run one after the other in ONE simulator process, with Python out of the
cycle loop; the response file is turned into one result per program, which the caller
checks against the golden tile (golden/model/tile.py). It does what the cocotb driver
cosim/tb/ctl_tb.py does for one program, at the simulator's own speed, under Verilator and
Icarus from the same Verilog text (cosim/replay/build.py builds and starts it).

Stimulus file (+stim; decimal counts, hex data, one item a line), per job:
    J NWORDS BUDGET NBLOCKS      a job: its word count, watchdog (cycles), row blocks
    B AP NROWS MASK              NBLOCKS times: rows 0..NROWS-1 of AP `AP` (0 the CAP,
    DATA                         1..K the MAPs) follow, one a line, each written through
    ...                          the host port (HOST_WRITE) with column mask MASK
    WORD                         NWORDS instruction words (64-bit)
    ...
The CAP is always loaded in full with its reserved column masked out (as ctl_tb.py); a
MAP without a block keeps the zeros the reset left.

Per job the harness (Verilog-2005):
  1. holds rst high for 3 cycles (the reset clears every AP, the queue and the counters);
  2. writes the row blocks through the host port, one row per cycle;
  3. streams the words on s_valid/s_data; before each cycle with a free slot it draws
     from a seeded xorshift32 and stays idle with probability +idle/65536; s_valid,
     once raised, stays up until the word is taken (s_ready);
  4. waits until `busy` is low; a job not idle BUDGET cycles after its first word writes
     a timeout line, skips its remaining words and the harness goes on with the next job
     (whose reset clears what is left);
  5. reads back every row of every AP (HOST_READ, one a cycle, pipelined; a read without
     host_rvalid writes a marker instead of the row), then every counter and the status
     word through csr_sel/csr_data, then the `error` and `busy` outputs.

Response file (+out), per job:
    J INDEX                      the job starts (its reset)
    T CYCLES TAKEN               timed out after CYCLES cycles, TAKEN words taken; next job
    I CYCLES                     idle CYCLES cycles after the first word could be sent
    R DATA | N                   R + K*MAP_ROWS lines: the CAP's rows, then each MAP's
                                 (N: host_rvalid was low, no data)
    C DATA                       one per counter (COUNTER_KEYS order), then the status word
    E ERROR BUSY
    D CYCLE                      the job ended at simulation cycle CYCLE
and at the end `Z CYCLE JOBS`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.cosim.replay.build import (
    XORSHIFT,
    ReplayRun,
    build_replay,
    run_replay,
    seed_state,
    threshold,
)
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import RESERVED_COLS
from bfimna.golden.spec.uops import COUNTER_KEYS
from bfimna.hdl.gen.controller import HOST_READ, HOST_WRITE

RESET_CYCLES = 3

# a job: (words, CAP array R x C 0/1) or (words, CAP array, [MAP arrays] or None)
Job = tuple[Sequence[int], Any] | tuple[Sequence[int], Any, Sequence[Any] | None]


def _width(ports: list[dict], name: str) -> int:
    return next(p["width"] for p in ports if p["name"] == name)


def dut_text(cfg: Config) -> str:
    """The start of a testbench module around the tile: clock, reset, a register for every
    input, a wire for every output and the instance (the harness and plain.py share it)."""
    from bfimna.hdl.flow.emit import _ports
    from bfimna.hdl.gen.controller import controller_module_name, controller_signature

    ports = _ports(controller_signature(cfg))
    dw, mw = _width(ports, "host_wdata"), _width(ports, "host_mask")
    aw, cw = _width(ports, "host_addr"), _width(ports, "csr_data")
    sw = _width(ports, "csr_sel")
    top = controller_module_name(cfg)
    return f"""`timescale 1ns/1ps
module replay_tb;
  reg clk = 0;
  always #5 clk = ~clk;
  reg rst = 1;
  reg s_valid = 0;
  reg [63:0] s_data = 0;
  reg [2:0] host_op = 0, host_ap = 0;
  reg [{aw - 1}:0] host_addr = 0;
  reg [{dw - 1}:0] host_wdata = 0;
  reg [{mw - 1}:0] host_mask = 0;
  reg [{sw - 1}:0] csr_sel = 0;
  wire s_ready, host_rvalid, busy, error;
  wire [{dw - 1}:0] host_rdata;
  wire [{cw - 1}:0] csr_data;
  {top} dut (
    .clk(clk), .rst(rst), .s_valid(s_valid), .s_data(s_data), .s_ready(s_ready),
    .host_op(host_op), .host_ap(host_ap), .host_addr(host_addr), .host_wdata(host_wdata),
    .host_mask(host_mask), .host_rdata(host_rdata), .host_rvalid(host_rvalid),
    .csr_sel(csr_sel), .csr_data(csr_data), .busy(busy), .error(error));"""


def harness_text(cfg: Config) -> str:
    """The Verilog harness around the tile (controller top) of `cfg`."""
    from bfimna.hdl.flow.emit import _ports
    from bfimna.hdl.gen.controller import controller_module_name, controller_signature

    ports = _ports(controller_signature(cfg))
    dw, mw = _width(ports, "host_wdata"), _width(ports, "host_mask")
    R, C, K = cfg.ap.rows, cfg.ap.cols, cfg.tile.maps
    MR, MC = cfg.map_ap.rows, cfg.map_ap.cols
    nctr = len(COUNTER_KEYS)          # csr_sel 0..nctr-1 counters, nctr the status word
    map_row = f"""
        else $fwrite(fout, "R %h\\n", host_rdata[{MC - 1}:0]);""" if K else ""
    top = controller_module_name(cfg)
    return f"""// Replay harness of {top} (generated by cosim/replay/tile.py)
{dut_text(cfg)}
{XORSHIFT}
  reg [8*1024-1:0] stim_name, out_name;
  integer fin, fout, code, idle_thr, phase, wait_n, job;
  integer nwords, nblocks, words_left, taken, blk_ap, rows_left, row_i;
  integer rd_ap, rd_row, csr_i;
  reg [63:0] cyc, t0, budget;
  reg [31:0] ra;
  reg have_next, p0, p1, p0_map, p1_map;
  reg [63:0] nxt_word;
  reg [{dw - 1}:0] tmp_row;
  reg [{mw - 1}:0] blk_mask;

  task next_word;   // the job's next word from +stim, if it has one left
    begin
      have_next = 0;
      if (words_left > 0) begin
        code = $fscanf(fin, "%h\\n", nxt_word);
        have_next = (code == 1);
        words_left = words_left - 1;
      end
    end
  endtask

  initial begin
    if (!$value$plusargs("stim=%s", stim_name) || !$value$plusargs("out=%s", out_name)) begin
      $display("replay: +stim and +out are required"); $finish;
    end
    if (!$value$plusargs("idle=%d", idle_thr)) idle_thr = 0;
    if (!$value$plusargs("seed_a=%d", ra)) ra = 1;
    fin = $fopen(stim_name, "r");
    fout = $fopen(out_name, "w");
    if (fin == 0 || fout == 0) begin
      $display("replay: cannot open the stimulus or output file"); $finish;
    end
    cyc = 0; phase = 0; job = 0; have_next = 0; p0 = 0; p1 = 0; p0_map = 0; p1_map = 0;
  end

  always @(posedge clk) begin
    cyc = cyc + 1;
    case (phase)
      0: begin     // the next job: its header, then reset
        code = $fscanf(fin, "J %d %d %d\\n", nwords, budget, nblocks);
        if (code != 3) begin
          $fwrite(fout, "Z %0d %0d\\n", cyc, job); $fclose(fout); $finish;
        end else begin
          $fwrite(fout, "J %0d\\n", job);
          rst <= 1; s_valid <= 0; host_op <= 0; csr_sel <= 0;
          wait_n = {RESET_CYCLES}; phase = 1;
        end
      end
      1: begin     // reset
        wait_n = wait_n - 1;
        if (wait_n == 0) begin rst <= 0; rows_left = 0; phase = 2; end
      end
      2: begin     // initial rows through the host port, one a cycle
        while (rows_left == 0 && nblocks > 0) begin
          code = $fscanf(fin, "B %d %d %h\\n", blk_ap, rows_left, blk_mask);
          nblocks = nblocks - 1; row_i = 0;
        end
        if (rows_left > 0) begin
          code = $fscanf(fin, "%h\\n", tmp_row);
          host_op <= {HOST_WRITE}; host_ap <= blk_ap; host_addr <= row_i;
          host_wdata <= tmp_row; host_mask <= blk_mask;
          row_i = row_i + 1; rows_left = rows_left - 1;
        end else begin
          host_op <= 0; phase = 3; t0 = cyc; taken = 0; words_left = nwords;
          next_word;
        end
      end
      3, 4: begin  // stream the words, then wait for idle
        if (s_valid && s_ready) begin s_valid <= 0; taken = taken + 1; end
        if (phase == 3) begin
          ra = xs32(ra);
          if (have_next && (!s_valid || s_ready) && ra[31:16] >= idle_thr) begin
            s_data <= nxt_word; s_valid <= 1;
            next_word;
          end else if (!have_next && (!s_valid || s_ready)) phase = 4;
        end else if (!busy) begin
          $fwrite(fout, "I %0d\\n", cyc - t0);
          rd_ap = 0; rd_row = 0; p0 = 0; p1 = 0; phase = 5;
        end
        if (phase != 5 && cyc - t0 >= budget) begin   // watchdog: drop the job
          while (words_left > 0) begin
            code = $fscanf(fin, "%h\\n", nxt_word); words_left = words_left - 1;
          end
          have_next = 0; s_valid <= 0;
          $fwrite(fout, "T %0d %0d\\n", cyc - t0, taken);
          job = job + 1; phase = 0;
        end
      end
      5: begin     // every row of every AP, pipelined: data two edges after the request
        if (p1) begin
          if (!host_rvalid) $fwrite(fout, "N\\n");
          else if (!p1_map) $fwrite(fout, "R %h\\n", host_rdata[{C - 1}:0]);{map_row}
        end
        p1 = p0; p1_map = p0_map;
        if (rd_ap <= {K}) begin
          host_op <= {HOST_READ}; host_ap <= rd_ap; host_addr <= rd_row;
          p0 = 1; p0_map = (rd_ap != 0);
          rd_row = rd_row + 1;
          if (rd_row == (rd_ap == 0 ? {R} : {MR})) begin rd_row = 0; rd_ap = rd_ap + 1; end
        end else begin
          host_op <= 0; p0 = 0;
          if (!p1) begin csr_i = 0; phase = 6; end
        end
      end
      6: begin     // counters and the status word: data one edge after csr_sel
        if (csr_i > 0) $fwrite(fout, "C %h\\n", csr_data);
        if (csr_i <= {nctr}) begin
          csr_sel <= csr_i; csr_i = csr_i + 1;
        end else begin
          $fwrite(fout, "E %0d %0d\\nD %0d\\n", error, busy, cyc);
          csr_sel <= 0; job = job + 1; phase = 0;
        end
      end
      default: ;
    endcase
  end
endmodule
"""


def row_ints(arr) -> list[int]:
    """Rows of a 0/1 array (bit c of row r is column c) as ints."""
    a = np.asarray(arr, dtype=np.uint8)
    packed = np.packbits(a, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def cycle_budget(cfg: Config, words: Sequence[int]) -> int:
    """Watchdog of one program: twice the cycles the golden tile needs, plus 1000
    (transfers counted as the tile counts them: XROWS sets the rows MOVW checks)."""
    from bfimna.golden.spec.costs import instr_cycles
    from bfimna.golden.spec.isa import Opc, decode, validate

    xrows, total = (0, 0, 0), 0
    for w in words:
        ins = decode(w)
        if validate(ins, cfg.ap, cfg, xrows) is not None:
            total += 1
            continue
        if ins.op == Opc.XROWS:
            xrows = (ins.srow, ins.drow, ins.stride)
        total += instr_cycles(w, cfg.ap)      # cached per word (golden/spec/costs.py)
    return 1000 + 2 * total


def stimulus_text(cfg: Config, jobs: Sequence[Job], budgets: Sequence[int]) -> str:
    C, K = cfg.ap.cols, cfg.tile.maps
    usable = (1 << (C - RESERVED_COLS)) - 1
    full_map = (1 << cfg.map_ap.cols) - 1
    out: list[str] = []
    for job, budget in zip(jobs, budgets, strict=True):
        words, cam = job[0], job[1]
        maps = job[2] if len(job) > 2 else None
        cam = np.asarray(cam)
        if cam.shape != (cfg.ap.rows, C):
            raise ValueError(f"cam has shape {cam.shape}, the CAP is {cfg.ap.rows} x {C}")
        blocks = [(0, usable, row_ints(cam))]
        for k, arr in enumerate(maps or [], start=1):
            if k > K:
                raise ValueError(f"{len(maps or [])} MAP arrays, the tile has {K} MAPs")
            if arr is not None:
                blocks.append((k, full_map, row_ints(arr)))
        out.append(f"J {len(words)} {budget} {len(blocks)}\n")
        for ap, mask, rows in blocks:
            out.append(f"B {ap} {len(rows)} {mask:x}\n")
            out.extend(f"{v & mask:x}\n" for v in rows)
        out.extend(f"{int(w) & ((1 << 64) - 1):x}\n" for w in words)
    return "".join(out)


@dataclass
class TileJobRun:
    """What the RTL tile did with one job (the fields of runner.ProgramRun, plus the
    MAPs, the job's cycles and the command that reruns the whole batch)."""
    index: int
    passed: bool           # the harness ran the job to the end and every read answered
    timed_out: bool        # still busy after the job's cycle budget
    rows: list[int]        # the CAP's rows after the program
    maps: list[list[int]]  # each MAP's rows
    counters: dict[str, int]
    error: bool
    busy: int
    sim_cycles: int        # from the first word to idle (the budget when timed out)
    budget: int
    command: str
    log: Path
    missing_reads: list[tuple[int, int]] = field(default_factory=list)  # (ap, row)
    run: ReplayRun | None = None   # the batch's files (kept when keep=True)

    @property
    def summary(self) -> dict:
        """The same keys ctl_tb.py writes (plus `maps`)."""
        if self.timed_out:
            return {"timed_out": True, "max_cycles": self.budget}
        return {"rows": [f"{v:x}" for v in self.rows], "maps": [[f"{v:x}" for v in m]
                                                                 for m in self.maps],
                "counters": self.counters, "error": int(self.error), "busy": self.busy,
                "sim_cycles": self.sim_cycles}


def parse_output(cfg: Config, text: str) -> tuple[list[dict[str, Any]], int | None]:
    """The response file as one dict per job that started, and the last cycle (None when
    the harness did not reach its end)."""
    R, K, MR = cfg.ap.rows, cfg.tile.maps, cfg.map_ap.rows
    nctr = len(COUNTER_KEYS)
    jobs: list[dict[str, Any]] = []
    end = None
    cur: dict[str, Any] = {}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        kind = f[0]
        if kind == "J":
            cur = {"index": int(f[1]), "reads": [], "ctr": [], "done": False,
                   "timed_out": False}
            jobs.append(cur)
        elif kind == "R":
            cur["reads"].append(int(f[1], 16))
        elif kind == "N":
            cur["reads"].append(None)
        elif kind == "C":
            cur["ctr"].append(int(f[1], 16))
        elif kind == "I":
            cur["cycles"] = int(f[1])
        elif kind == "T":
            cur.update(timed_out=True, cycles=int(f[1]), taken=int(f[2]))
        elif kind == "E":
            cur.update(error=int(f[1]), busy=int(f[2]))
        elif kind == "D":
            cur["done"] = True
        elif kind == "Z":
            end = int(f[1])
    for j in jobs:
        reads = j["reads"]
        j["complete"] = j["done"] and len(reads) == R + K * MR and len(j["ctr"]) == nctr + 1
        j["missing"] = [(0, r) if r < R else (1 + (r - R) // MR, (r - R) % MR)
                        for r, v in enumerate(reads) if v is None]
        j["rows"] = [v or 0 for v in reads[:R]]
        j["maps"] = [[v or 0 for v in reads[R + k * MR: R + (k + 1) * MR]] for k in range(K)]
    return jobs, end


def run_tile_replay(cfg: Config, sim: str, jobs: Sequence[Job], build_root: Path | str,
                    seed: int = 1, idle: float = 0.0, fault: str | None = None,
                    budgets: Sequence[int] | None = None, keep: bool = False,
                    timeout_s: float | None = None) -> list[TileJobRun]:
    """Run every job (words, CAP array[, MAP arrays]) on the tile of `cfg` under `sim`, in
    one simulator process, and return one TileJobRun per job, in order.
    `budgets`: per-job watchdogs (default: cycle_budget). The batch's files are removed
    when every job passed, unless `keep` (then call `results[0].run.cleanup()`)."""
    if budgets is None:
        budgets = [cycle_budget(cfg, job[0]) for job in jobs]
    unit = f"ctl-{fault}" if fault else "ctl"
    from bfimna.hdl.flow.emit import controller_verilog
    b = build_replay(cfg, sim, unit, controller_verilog(cfg, fault), harness_text(cfg),
                     Path(build_root))
    plus: dict[str, str | int] = {"idle": threshold(idle), "seed_a": seed_state(seed, 0)}
    t0 = time.perf_counter()
    run, text = run_replay(b, plus, {"stim": stimulus_text(cfg, jobs, budgets)},
                           timeout_s=timeout_s)
    parsed, end_cycle = parse_output(cfg, text)
    nctr = len(COUNTER_KEYS)
    mod = (1 << cfg.ap.counter_bits) - 1
    out: list[TileJobRun] = []
    for i, budget in enumerate(budgets):
        j = parsed[i] if i < len(parsed) else None
        if j is None:
            out.append(TileJobRun(i, False, False, [], [], {}, False, 0, 0, budget,
                                  run.command, run.log, run=run))
            continue
        ctr = j["ctr"]
        counters = {k: ctr[n] & mod for n, k in enumerate(COUNTER_KEYS)} if \
            len(ctr) > nctr else {}
        passed = run.ok and j["complete"] and not j["timed_out"] and not j["missing"]
        out.append(TileJobRun(
            i, passed, j["timed_out"], j["rows"], j["maps"], counters,
            bool(j.get("error", 0)), int(j.get("busy", 0)), int(j.get("cycles", 0)), budget,
            run.command, run.log, j["missing"], run))
    wall = time.perf_counter() - t0
    if all(r.passed for r in out) and not keep:
        run.cleanup()
    run_info = {"wall_s": wall, "sim_wall_s": run.wall_s, "build_s": b.build_s,
                "built": b.built, "cycles": end_cycle}
    _LAST_RUN.clear()
    _LAST_RUN.update(run_info)
    return out


# timing of the last run_tile_replay call in this process (wall, simulation, build)
_LAST_RUN: dict[str, Any] = {}


def last_run_info() -> dict[str, Any]:
    """{wall_s, sim_wall_s, build_s, built, cycles} of the last run_tile_replay call."""
    return dict(_LAST_RUN)
