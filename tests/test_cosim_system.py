"""cocotb on the emitted system top through cocotbext-axi (AXI4-Stream in and out,
AXI4-Lite registers), Verilator and Icarus, on a one-tile and a two-tile configuration:

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

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import Instr, Opc, encode
from bfimna.golden.spec.regs import ID_MAGIC

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
SYSTEM_CONFIGS = ["sys_t2k2", "ap2d_37x16"]
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


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", SYSTEM_CONFIGS)
def test_system_top(name, sim, seed):
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    rtl = backend(sim, cfg, build_root=BUILD, seed=seed, idle=0.3, backpressure=0.3)
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
