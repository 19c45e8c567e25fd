"""cocotb on the emitted system top through cocotbext-axi (AXI4-Stream in and out,
AXI4-Lite registers), on a one-tile configuration under Verilator and Icarus and a
two-tile one under Icarus (`CELLS`):

- a seeded random host program (data loads into every AP, instruction streams with
  illegal words, reads, tile-to-tile word and column copies, syncs, bad packets) with
  random idle cycles on the input and random back-pressure on the output: every response
  word, the status and every counter equal the golden system's, and nothing more
  comes out;
- reset in the middle of a program: the system is idle with every counter at zero and
  nothing on its output, and a new program then runs exactly as on a fresh golden system;
- illegal instructions raise the tile's error status and the program still finishes.
"""

import pytest

from bfimna.cosim.drivers.backends import DriverError, backend, compare
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import Instr, Opc, encode
from bfimna.golden.spec.regs import ID_MAGIC

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
# (configuration, simulator). The two-tile system on Verilator runs through the replay
# harness instead (test_replay_sys: 60 random host programs, test_fuzz_system, the
# mutation tests): its cocotb build (--public-flat-rw, --vpi) alone took about 200 s of the
# suite, for a bus model that is the same Python on either simulator and a Verilog that
# Icarus runs here (2026-11-27).
CELLS = [("sys_t2k2", "icarus"), ("ap2d_37x16", "verilator"), ("ap2d_37x16", "icarus")]
N_PACKETS = {"verilator": 60, "icarus": 40}


def long_program(cfg, seed):
    """A program that keeps every tile busy for a while (for the reset test)."""
    prog = HostProgram(cfg)
    for t in range(cfg.system.tiles):
        prog.instr(t, random_tile_program(cfg, seed + t, 60))
    prog.read(0, 0, 0, cfg.ap.rows)
    return prog


def illegal_program(cfg):
    prog = HostProgram(cfg)
    prog.instr(0, [encode(Instr(op=Opc.ADD, d=0, a=4, n=4)),
                   encode(Instr(op=Opc.ADD, d=0, a=2, n=4)),        # operands overlap
                   31,                                               # no such opcode
                   encode(Instr(op=Opc.MOVW, sap=0, dap=0, n=4, count=1)),  # same AP
                   encode(Instr(op=Opc.ADDI, d=0, imm=1, n=4))])
    s = prog.sync(tag=7)
    return prog, s


@pytest.mark.parametrize("name,sim", CELLS, ids=lambda v: v)
def test_system_top(name, sim, seed):
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    # the cocotbext-axi bus models (the replay harness has its own tests: test_replay_sys)
    rtl = backend(sim, cfg, build_root=BUILD, seed=seed, idle=0.3, backpressure=0.3,
                  path="cocotb")
    gold = backend("golden", cfg)

    # 1. random host program under idle cycles and back-pressure
    prog = random_host_program(cfg, seed, n_packets=N_PACKETS[sim])
    want, got = gold.run(prog), rtl.run(prog)
    print(f"{name} on {sim}: {prog.n_words} words in, {got.sim_cycles} cycles, "
          f"{got.cycles_per_s} cycles/s")
    assert got.extra["id"] == ID_MAGIC
    diffs = compare(want, got, prog)
    assert not diffs, f"seed {seed}: " + "; ".join(diffs[:6])
    assert got.extra["extra_output_frames"] == 0
    assert want.global_counters["bad_packets"] > 0 and want.global_counters["dropped_words"] > 0
    assert want.global_counters["copy_words"] > 0 or cfg.system.tiles == 1
    assert sum(t["row_transfers"] for t in want.tile_counters) > 0   # MOVWs ran

    # 2. reset in the middle of a long program, then a program on a clean system
    first = long_program(cfg, seed)
    after = random_host_program(cfg, seed + 1, n_packets=10, bad_share=0.0)
    got = rtl.run(after, reset_prog=first, reset_after=150)
    ar = got.extra["after_reset"]
    assert ar["words_in_before"] > 0, "the first program had not started when reset came"
    assert ar["tile_busy_before"] != 0, "no tile was busy when reset came"
    regs = ar["registers"]
    assert regs["status"] == 0 and regs["tile_busy"] == 0 and regs["tile_error"] == 0
    assert all(v == 0 for v in regs["global"].values()), regs["global"]
    assert all(v == 0 for t in regs["tiles"] for v in t.values()), regs["tiles"]
    assert ar["output_words"] == 0 and ar["output_words_later"] == 0
    diffs = compare(gold.run(after), got, after)
    assert not diffs, f"after reset, seed {seed}: " + "; ".join(diffs[:6])

    # 3. illegal instructions: error status, skipped, no hang
    prog, s = illegal_program(cfg)
    want, got = gold.run(prog), rtl.run(prog)
    assert not compare(want, got, prog)
    assert got.tile_errors == 1 and got.tile_counters[0]["errors"] == 3
    assert got.responses[s] == [7 | 1 << 32]      # SYNC: tag 7, tile 0 in error


@pytest.mark.parametrize("path", ["cocotb", "replay"])
def test_testbench_failure_raises(path):
    """A failed check inside the testbench is never lost: a job that expects one response
    fewer than the program asks for leaves a frame on the stream after the expected ones,
    sys_tb asserts on it (the replay path counts it from the response file), and the
    backend raises DriverError naming the failure and the log (before, RtlBackend.run
    kept the verdict in `extra` and returned normally)."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    prog = HostProgram(cfg)
    prog.write(0, 0, 0, [1, 2, 3], width=4)
    prog.read(0, 0, 0, 3, width=4)
    prog.sync(tag=5)
    prog.responses.pop()                 # the SYNC answer is now a beat nobody expects
    rtl = backend("icarus", cfg, build_root=BUILD, seed=1, path=path)
    with pytest.raises(DriverError, match=r"icarus testbench failed: AssertionError: 1 "
                       r"output frames beyond the 1 expected.*; log: .*\.log"):
        rtl.run(prog)


def test_axil_writes_with_partial_strobes():
    """AXI4-Lite writes on the Verilog (docs/system.md, "Registers"): only CONTROL answers
    OKAY, every other address SLVERR and nothing changes; CONTROL clears the protocol
    error only when byte 0 is strobed and bit 0 is 1, whatever the other bytes say."""
    from bfimna.cosim.drivers.runner import run_system_job
    from bfimna.golden.spec.regs import REG_CONTROL, REG_ID, REG_STATUS

    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    prog = HostProgram(cfg)
    prog.raw([0xF])                       # packet type 15 does not exist: protocol error
    prog.sync(tag=1)
    OKAY, SLVERR, PERR = 0, 2, 0b10       # BRESP codes; STATUS bit 1
    writes = [  # addr, data, strb -> BRESP, protocol error still set?
        (REG_CONTROL, 0x00000100, 0b0010, OKAY, True),    # bit 8 only: no clear
        (REG_CONTROL, 0x00000001, 0b0000, OKAY, True),    # bit 0 set but byte 0 not strobed
        (REG_CONTROL, 0x00000001, 0b1110, OKAY, True),    # the same with the other strobes
        (REG_CONTROL, 0xFFFFFFFE, 0b1111, OKAY, True),    # every bit but 0
        (REG_STATUS, 0x00000002, 0b1111, SLVERR, True),   # read-only register
        (REG_ID, 0x00000000, 0b1111, SLVERR, True),       # ID stays 0xBF1A0001
        (REG_CONTROL + 2, 0x00000001, 0b0001, SLVERR, True),   # not CONTROL's address
        (0x0100, 0x00000001, 0b1111, SLVERR, True),       # a counter
        (0xFFFC, 0x00000001, 0b1111, SLVERR, True),       # unmapped
        (REG_CONTROL, 0x00000001, 0b0001, OKAY, False),   # byte 0 strobed, bit 0: clears
        (REG_CONTROL, 0xFFFFFFFF, 0b1111, OKAY, False),   # again: stays clear
    ]
    job = {"frames": [[f"{w:x}" for w in f] for f in prog.frames],
           "n_responses": len(prog.responses), "seed": 1, "idle": 0.0, "backpressure": 0.0,
           "max_cycles": 20000, "axil_writes": [[a, d, s] for a, d, s, _, _ in writes]}
    passed, summary, log = run_system_job(cfg, "icarus", job, BUILD)
    assert passed, f"log {log}"
    assert summary["registers"]["status"] & PERR, "the bad packet did not set the error"
    got = summary["axil_writes"]
    for (addr, data, strb, bresp, err), (g_bresp, g_status, g_id) in zip(writes, got,
                                                                         strict=True):
        what = f"write {data:#x} strb {strb:#06b} to {addr:#x}"
        assert g_bresp == bresp, f"{what}: BRESP {g_bresp}"
        assert bool(g_status & PERR) == err, f"{what}: STATUS {g_status:#x}"
        assert g_id == ID_MAGIC, what


def _hold_build_lock(bdir, log, hold_s):
    import time as _time

    from bfimna.cosim.drivers.runner import build_lock, run_tag
    with build_lock(bdir):
        t0 = _time.monotonic()
        _time.sleep(hold_s)
        with open(log, "a") as fh:
            fh.write(f"{t0} {_time.monotonic()} {run_tag()}\n")


def test_build_lock_serialises_processes_and_run_files_are_unique(tmp_path):
    """pytest -n 2 safety (cosim/drivers/runner.py): two processes building the same
    directory hold its lock in turn, and every run names its own job/result/log files."""
    import multiprocessing as mp

    log = tmp_path / "held.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hold_build_lock, args=(tmp_path / "b", log, 0.5))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    (a0, a1, tag_a), (b0, b1, tag_b) = sorted(
        (float(x), float(y), t) for x, y, t in (ln.split() for ln in log.read_text().splitlines()))
    assert a1 <= b0, "both processes held the build lock at once"
    assert tag_a != tag_b
    from bfimna.cosim.drivers.runner import run_tag
    assert len({run_tag() for _ in range(100)}) == 100
