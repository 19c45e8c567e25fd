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

The verification build (run_tile_replay(fault=VERIFY), tests only: hdl/gen/controller.py's
every MOVW and counter mutant behind `tb_fault`, counters loadable) reads two more numbers
on each job's line, `J NWORDS BUDGET NBLOCKS FAULT PRESET` (FAULT decimal, 0 none; PRESET
hex): the job runs that mutant, with every counter loaded with PRESET in the first cycle
after its reset. One build then runs a whole mutation matrix in one simulator process.
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
from bfimna.golden.spec.isa import RESERVED_COLS, host_read_latency
from bfimna.golden.spec.uops import COUNTER_KEYS
from bfimna.hdl.gen.controller import HOST_READ, HOST_WRITE

RESET_CYCLES = 3

# a job: (words, CAP array R x C 0/1) or (words, CAP array, [MAP arrays] or None)
Job = tuple[Sequence[int], Any] | tuple[Sequence[int], Any, Sequence[Any] | None]


def _width(ports: list[dict], name: str) -> int:
    return next(p["width"] for p in ports if p["name"] == name)


def dut_text(cfg: Config, verify: bool = False) -> str:
    """The start of a testbench module around the tile: clock, reset, a register for every
    input, a wire for every output and the instance (the harness and plain.py share it).
    `verify`: around the VERIFY build (its test inputs tb_fault, tb_load, tb_preset)."""
    from bfimna.hdl.flow.emit import _ports
    from bfimna.hdl.gen.controller import controller_module_name, controller_signature

    ports = _ports(controller_signature(cfg, verify))
    v_regs = v_ports = ""
    if verify:
        v_regs = f"""
  reg [7:0] tb_fault = 0;
  reg tb_load = 0;
  reg [{cfg.ap.counter_bits - 1}:0] tb_preset = 0;
  integer j_fault;
  reg [63:0] j_preset;"""
        v_ports = """
    .tb_fault(tb_fault), .tb_load(tb_load), .tb_preset(tb_preset),"""
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
  reg [{aw - 1}:0] host_addr = 0;{v_regs}
  reg [{dw - 1}:0] host_wdata = 0;
  reg [{mw - 1}:0] host_mask = 0;
  reg [{sw - 1}:0] csr_sel = 0;
  wire s_ready, host_rvalid, busy, error;
  wire [{dw - 1}:0] host_rdata;
  wire [{cw - 1}:0] csr_data;
  {top} dut ({v_ports}
    .clk(clk), .rst(rst), .s_valid(s_valid), .s_data(s_data), .s_ready(s_ready),
    .host_op(host_op), .host_ap(host_ap), .host_addr(host_addr), .host_wdata(host_wdata),
    .host_mask(host_mask), .host_rdata(host_rdata), .host_rvalid(host_rvalid),
    .csr_sel(csr_sel), .csr_data(csr_data), .busy(busy), .error(error));"""


def harness_text(cfg: Config, verify: bool = False) -> str:
    """The Verilog harness around the tile (controller top) of `cfg` (`verify`: around its
    VERIFY build, each job's line naming a mutant and a counter preset)."""
    from bfimna.hdl.flow.emit import _ports
    from bfimna.hdl.gen.controller import controller_module_name, controller_signature

    ports = _ports(controller_signature(cfg))
    dw, mw = _width(ports, "host_wdata"), _width(ports, "host_mask")
    R, C, K = cfg.ap.rows, cfg.ap.cols, cfg.tile.maps
    L = host_read_latency(cfg.tile.port_register)   # a host read's data: edges after
    MR, MC = cfg.map_ap.rows, cfg.map_ap.cols
    nctr = len(COUNTER_KEYS)          # csr_sel 0..nctr-1 counters, nctr the status word
    map_row = f"""
        else $fwrite(fout, "R %h\\n", host_rdata[{MC - 1}:0]);""" if K else ""
    top = controller_module_name(cfg)
    if verify:
        job_line = """code = $fscanf(fin, "J %d %d %d %d %h\\n", nwords, budget, nblocks, j_fault,
                       j_preset);
        if (code == 5) begin tb_fault <= j_fault; tb_preset <= j_preset; code = 3; end
        if (code != 3) begin"""
        load_on, load_off = " tb_load <= 1;", "\n        tb_load <= 0;"
    else:
        job_line = """code = $fscanf(fin, "J %d %d %d\\n", nwords, budget, nblocks);
        if (code != 3) begin"""
        load_on = load_off = ""
    return f"""// Replay harness of {top} (generated by cosim/replay/tile.py)
{dut_text(cfg, verify)}
{XORSHIFT}
  reg [8*1024-1:0] stim_name, out_name;
  integer fin, fout, code, idle_thr, phase, wait_n, job;
  integer nwords, nblocks, words_left, taken, blk_ap, rows_left, row_i;
  integer rd_ap, rd_row, csr_i;
  reg [63:0] cyc, t0, budget;
  reg [31:0] ra;
  reg have_next;
  reg [{L}:0] pv, pm;   // a host read asked i edges ago (pv[i]), of a MAP (pm[i])
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
    cyc = 0; phase = 0; job = 0; have_next = 0; pv = 0; pm = 0;
  end

  always @(posedge clk) begin
    cyc = cyc + 1;
    case (phase)
      0: begin     // the next job: its header, then reset
        {job_line}
          $fwrite(fout, "Z %0d %0d\\n", cyc, job); $fclose(fout); $finish;
        end else begin
          $fwrite(fout, "J %0d\\n", job);
          rst <= 1; s_valid <= 0; host_op <= 0; csr_sel <= 0;
          wait_n = {RESET_CYCLES}; phase = 1;
        end
      end
      1: begin     // reset
        wait_n = wait_n - 1;
        if (wait_n == 0) begin rst <= 0; rows_left = 0; phase = 2;{load_on} end
      end
      2: begin     // initial rows through the host port, one a cycle{load_off}
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
          rd_ap = 0; rd_row = 0; pv = 0; phase = 5;
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
      5: begin     // every row of every AP, pipelined: data {L + 1} edges after the request
        if (pv[{L}]) begin
          if (!host_rvalid) $fwrite(fout, "N\\n");
          else if (!pm[{L}]) $fwrite(fout, "R %h\\n", host_rdata[{C - 1}:0]);{map_row}
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


def stimulus_text(cfg: Config, jobs: Sequence[Job], budgets: Sequence[int],
                  mutants: Sequence[tuple[int, int]] | None = None) -> str:
    C, K = cfg.ap.cols, cfg.tile.maps
    usable = (1 << (C - RESERVED_COLS)) - 1
    full_map = (1 << cfg.map_ap.cols) - 1
    out: list[str] = []
    for i, (job, budget) in enumerate(zip(jobs, budgets, strict=True)):
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
        more = f" {mutants[i][0]} {mutants[i][1]:x}" if mutants is not None else ""
        out.append(f"J {len(words)} {budget} {len(blocks)}{more}\n")
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
                    timeout_s: float | None = None,
                    mutants: Sequence[tuple[int, int]] | None = None) -> list[TileJobRun]:
    """Run every job (words, CAP array[, MAP arrays]) on the tile of `cfg` under `sim`, in
    one simulator process, and return one TileJobRun per job, in order.
    `mutants` (with fault=VERIFY, tests only): per job, (the mutant's number,
    hdl/gen/controller.py: tile_mutant_numbers, 0 none; every counter's value after reset).
    `budgets`: per-job watchdogs (default: cycle_budget). The batch's files are removed
    when every job passed, unless `keep` (then call `results[0].run.cleanup()`)."""
    if budgets is None:
        budgets = [cycle_budget(cfg, job[0]) for job in jobs]
    unit = f"ctl-{fault}" if fault else "ctl"
    from bfimna.hdl.flow.emit import controller_verilog
    from bfimna.hdl.gen.controller import VERIFY
    verify = fault == VERIFY
    if verify and mutants is None:
        mutants = [(0, 0)] * len(jobs)
    b = build_replay(cfg, sim, unit, controller_verilog(cfg, fault),
                     harness_text(cfg, verify), Path(build_root))
    plus: dict[str, str | int] = {"idle": threshold(idle), "seed_a": seed_state(seed, 0)}
    t0 = time.perf_counter()
    run, text = run_replay(b, plus, {"stim": stimulus_text(cfg, jobs, budgets,
                                                          mutants if verify else None)},
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


# -- coverage of tile programs (tests/test_coverage.py; issue 17) ---------------------------
# The bins a tile configuration can reach: every operation with a precision x every legal
# width 1..32 x signedness; every MOVW source stride class, width and direction (source
# AP, destination AP); every kind of ROWS range. covering_programs() fills each bin
# deterministically (one legal instruction per bin, placements drawn from a seed), so a
# full table does not depend on random luck; coverage_of() reads the bins a set of
# programs hit from their words (legal instructions only, as golden validates them).
STRIDE_BINS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 7), (8, 15), (16, 63), (64, 255))
ROW_KINDS = ("all", "empty", "one", "prefix", "suffix", "inner")


def _stride_bin(stride: int) -> str:
    lo, hi = next(b for b in STRIDE_BINS if b[0] <= stride <= b[1])
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _rows_kind(lo: int, hi: int, rows: int) -> str:
    if lo == hi:
        return "empty"
    if (lo, hi) == (0, rows):
        return "all"
    if hi == lo + 1:
        return "one"
    return "prefix" if lo == 0 else "suffix" if hi == rows else "inner"


def _instr_for(cfg: Config, op, n: int, s: bool, rng: np.random.Generator):
    """A legal instruction of opcode `op`, precision `n`, signedness `s` with random
    operands and placement, or None when the ISA or `cfg` allows none."""
    from bfimna.golden.spec.isa import MAX_WIDTH, OPCODES, Instr, operand_fields, validate

    spec, ap = OPCODES[op], cfg.ap
    usable = ap.cols - RESERVED_COLS
    for _ in range(100):
        m = 0
        if spec.m == "width":
            if n >= MAX_WIDTH:
                return None
            m = int(rng.integers(1, MAX_WIDTH - n + 1))
        elif spec.m == "acc":
            m = int(rng.integers(n, MAX_WIDTH + 1))
        elif spec.m == "below":
            if n < 2:
                return None
            m = int(rng.integers(1, n))
        elif spec.m == "stages":
            m = int(rng.integers(1, max(1, (ap.rows - 1).bit_length()) + 1))
        imm = int(rng.integers(-(1 << 15), 1 << 15))
        fields = operand_fields(Instr(op=op, n=n, m=m, s=s, imm=imm))
        total = sum(w for _s, w in fields.values())
        if total > usable:
            if spec.m in ("width", "acc") and total - m + (n if spec.m == "acc" else 1) \
                    > usable:
                return None          # even the smallest m does not fit
            continue
        names = [str(x) for x in rng.permutation(list(fields))]
        slack, pos, kw = usable - total, 0, {}
        for name in names:
            pos += int(rng.integers(0, slack // len(names) + 1))
            kw[name] = pos
            pos += fields[name][1]
        ins = Instr(op=op, n=n, m=m, s=s, imm=imm, **kw)
        if validate(ins, ap, cfg) is None:
            return ins
    return None


def coverage_bins(cfg: Config, seed: int = 0) -> dict[tuple, list]:
    """Every bin `cfg` can reach, with the words of one legal instruction (sequence) that
    hits it: ("op", name, n, s), ("movw_stride", class), ("movw_n", n), ("movw_dir",
    sap, dap), ("rows", kind)."""
    from bfimna.golden.spec.isa import MAX_WIDTH, OPCODES, Instr, Opc, encode, runs_on

    rng = np.random.default_rng(seed)
    bins: dict[tuple, list] = {}
    for op, spec in OPCODES.items():
        if "n" not in spec.operands or spec.transfer or not runs_on(spec, cfg.ap):
            continue
        for n in range(1, MAX_WIDTH + 1):
            for s in ((False, True) if spec.signed else (False,)):
                ins = _instr_for(cfg, op, n, s, rng)
                if ins is not None:
                    bins[("op", op.name, n, s)] = [encode(ins)]
    R = cfg.ap.rows
    for kind, (lo, hi) in {"all": (0, R), "empty": (R // 2, R // 2), "one": (1, 2),
                           "prefix": (0, R - 1), "suffix": (1, R),
                           "inner": (1, R - 1)}.items():
        if _rows_kind(lo, hi, R) == kind:
            bins[("rows", kind)] = [encode(Instr(op=Opc.ROWS, lo=lo, hi=hi))]
    K = cfg.tile.maps
    for sap in range(K + 1):
        for dap in range(K + 1):
            if sap == dap:
                continue
            src, dst = cfg.ap_of(sap), cfg.ap_of(dap)
            width = min(usable_cols_of(cfg, sap), usable_cols_of(cfg, dap), MAX_WIDTH)
            rows = min(src.rows, dst.rows)

            def move(n, stride, count, sap=sap, dap=dap, width=width, src=src, dst=dst):
                a = int(rng.integers(0, usable_cols_of(cfg, sap) - n + 1))
                d = int(rng.integers(0, usable_cols_of(cfg, dap) - n + 1))
                srow = int(rng.integers(0, src.rows - (count - 1) * stride))
                drow = int(rng.integers(0, dst.rows - count + 1))
                return [encode(Instr(op=Opc.XROWS, srow=srow, drow=drow, stride=stride)),
                        encode(Instr(op=Opc.MOVW, sap=sap, dap=dap, a=a, d=d, n=n,
                                     count=count))]
            bins.setdefault(("movw_dir", sap, dap), move(min(8, width), 1, min(4, rows)))
            for n in range(1, width + 1):
                bins.setdefault(("movw_n", n), move(n, 1, min(3, rows)))
            for lo, hi in STRIDE_BINS:
                stride = min(hi, src.rows - 1) if lo else 0
                if lo <= stride <= hi and rows >= 2:
                    bins.setdefault(("movw_stride", _stride_bin(stride)),
                                    move(min(6, width), stride, 2 if stride else rows))
    return bins


def usable_cols_of(cfg: Config, index: int) -> int:
    from bfimna.golden.spec.isa import usable_cols
    return usable_cols(cfg.ap_of(index), index)


def covering_programs(cfg: Config, seed: int = 0, per_program: int = 24) -> list[list[int]]:
    """Programs that together hit every bin of coverage_bins(cfg): the bins' words in a
    seeded order, `per_program` bins a program."""
    bins = list(coverage_bins(cfg, seed).values())
    order = np.random.default_rng(seed + 1).permutation(len(bins))
    progs: list[list[int]] = []
    for k in range(0, len(order), per_program):
        progs.append([w for i in order[k:k + per_program] for w in bins[int(i)]])
    return progs


def coverage_of(cfg: Config, programs) -> set[tuple]:
    """The bins the legal instructions of `programs` hit (XROWS's stride tracked per
    program, as golden does)."""
    from bfimna.golden.spec.isa import OPCODES, Opc, decode, validate

    hit: set[tuple] = set()
    for words in programs:
        xrows = (0, 0, 0)
        for w in words:
            ins = decode(int(w))
            if validate(ins, cfg.ap, cfg, xrows) is not None:
                continue
            if ins.op == Opc.XROWS:
                xrows = (ins.srow, ins.drow, ins.stride)
            elif ins.op == Opc.MOVW:
                hit.add(("movw_dir", ins.sap, ins.dap))
                hit.add(("movw_n", ins.n))
                if ins.count >= 2:
                    hit.add(("movw_stride", _stride_bin(xrows[2])))
            elif ins.op == Opc.ROWS:
                hit.add(("rows", _rows_kind(ins.lo, ins.hi, cfg.ap.rows)))
            elif "n" in OPCODES[Opc(ins.op)].operands:
                hit.add(("op", Opc(ins.op).name, ins.n, bool(ins.s)))
    return hit


def coverage_table(cfg: Config, hit: set[tuple], reachable: set[tuple]) -> str:
    """A Markdown table: per operation and signedness the widths hit of those reachable,
    then the MOVW strides, widths, directions and the ROWS ranges."""
    def widths(ns: list[int]) -> str:
        runs, start = [], None
        for k in range(1, 34):
            if k in ns and start is None:
                start = k
            elif k not in ns and start is not None:
                runs.append(f"{start}" if start == k - 1 else f"{start}-{k - 1}")
                start = None
        return ",".join(runs) or "-"

    lines = ["| bin | hit | reachable | hit / reachable |", "|---|---|---|---|"]
    ops = sorted({(b[1], b[3]) for b in reachable if b[0] == "op"})
    for name, s in ops:
        r = [b[2] for b in reachable if b[0] == "op" and (b[1], b[3]) == (name, s)]
        h = [n for n in r if ("op", name, n, s) in hit]
        lines.append(f"| {name}{'.s' if s else ''} n | {widths(h)} | {widths(r)} | "
                     f"{len(h)}/{len(r)} |")
    for kind in ("movw_stride", "movw_n", "movw_dir", "rows"):
        r = sorted((b for b in reachable if b[0] == kind), key=str)
        h = [b for b in r if b in hit]
        label = ",".join(str(b[1]) if len(b) == 2 else f"{b[1]}>{b[2]}" for b in h)
        if kind == "movw_n":
            label = widths([b[1] for b in h])
        lines.append(f"| {kind} | {label or '-'} | {len(r)} | {len(h)}/{len(r)} |")
    return "\n".join(lines)
