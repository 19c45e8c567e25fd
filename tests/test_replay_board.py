"""The replay harness of the board-level top (cosim/replay/board.py): an HDL UART
serialiser sends the host's bytes from a file, an HDL deserialiser logs every byte the
board sends with its cycle, Python checks the log against golden.

- seeded random host programs over the link on Verilator: responses, status and every
  counter equal the golden system's;
- the replay path and the cocotb path (cosim/tb/board_tb.py) give identical responses and
  counters on the same program (the worked example, after a short program and the link's
  reset 'Z'), on Icarus;
- the watchdog: a silent board (a command it waits for the rest of) and a budget too small
  end the run with a timeout record, never a hang; an output frame nobody asked for and a
  reply golden does not give fail the run;
- the UART fuzz: random bytes, bytes with a low stop bit and commands cut short, then the
  link's reset and the worked example: every byte the board sends is one golden's board
  sends, and the example is answered exactly (a fixed budget of seeded cases; the longer
  campaign is scripts/fuzz_board.py);
- a waveform window records an FST of those cycles only.
"""

import random
import sys

import pytest

from bfimna.cosim.drivers.backends import DriverError, backend, compare
from bfimna.cosim.replay.board import (
    SEND,
    WAIT_REPLIES,
    fuzz_run,
    plan_script,
    problems,
    run_board_replay,
)
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.link import read_bytes, stats_bytes, word_bytes
from bfimna.golden.spec.regs import REG_ID, header

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
DIVISOR = 8           # the divisor of tests/test_cosim_board.py: its builds are shared
N_PROGRAMS = 4        # random host programs over the link on Verilator
N_FUZZ = 12           # fuzz cases per run on Verilator (scripts/fuzz_board.py: more)

sys.path.insert(0, str(ROOT / "docs" / "examples"))
from host_example import build as worked_example  # noqa: E402


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG_DIR / "sys_t2k2.yaml")


def uart(sim, cfg, **kw):
    return backend(sim, cfg, build_root=BUILD, link="uart", divisor=DIVISOR, **kw)


def test_random_programs_on_verilator(cfg, seed):
    rng = random.Random(seed)
    gold, rtl = backend("golden", cfg), uart("verilator", cfg)
    cycles = 0
    for k in range(N_PROGRAMS):
        s = rng.randrange(2**31)
        prog = random_host_program(cfg, s, n_packets=rng.randrange(3, 10))
        got = rtl.run(prog)
        diffs = compare(gold.run(prog), got, prog)
        assert not diffs, (f"program {k} (random_host_program seed {s}): "
                           + "; ".join(diffs[:6]) + f"; rerun: {rtl.command}")
        assert got.extra["path"] == "replay" and got.extra["link"] == "uart"
        assert got.extra["extra_output_frames"] == 0
        cycles += got.sim_cycles or 0
    print(f"{N_PROGRAMS} random host programs over the UART on verilator, {cycles} cycles, "
          f"all equal to golden (seed {seed})")


def before_reset(cfg, seed: int) -> HostProgram:
    """A short program the link's reset must undo: seeded values written and read, a bad
    packet (the sticky protocol error) and a SYNC."""
    rng = random.Random(seed)
    prog = HostProgram(cfg)
    row = rng.randrange(cfg.ap.rows - 3)
    prog.write(0, 0, row, [rng.randrange(16) for _ in range(3)], width=4)
    prog.raw([header(0, count=1)])
    prog.read(1, 0, row, 3, width=4)
    prog.sync(tag=rng.randrange(256))
    return prog


@pytest.mark.parametrize("sim", ["icarus"])    # the cocotb board build of test_cosim_board
def test_replay_equals_cocotb(cfg, sim, seed):
    """The two RTL paths of the board on one program, after another program and the
    link's reset: identical responses, status and counters (and equal to golden). The
    replay path's only Icarus test: the worked example over the link."""
    before = before_reset(cfg, seed)
    prog = worked_example(cfg)
    runs = {path: uart(sim, cfg, path=path).run(prog, reset_prog=before)
            for path in ("replay", "cocotb")}
    rep, coco = runs["replay"], runs["cocotb"]
    assert rep.extra["path"] == "replay" and coco.extra["path"] == "cocotb"
    assert rep.responses == coco.responses
    assert rep.global_counters == coco.global_counters
    assert rep.tile_counters == coco.tile_counters
    assert (rep.proto_error, rep.tile_errors, rep.extra["status"]) == (
        coco.proto_error, coco.tile_errors, coco.extra["status"])
    assert not compare(backend("golden", cfg).run(prog), rep, prog)
    assert rep.responses == [[101, 102, 103, 44], [42]]      # docs/system.md
    assert rep.extra["id"] == 0xBF1A0001 and not rep.proto_error
    print(f"replay {rep.sim_cycles} cycles at {rep.cycles_per_s} cycles/s, cocotb "
          f"{coco.sim_cycles} cycles at {coco.cycles_per_s} cycles/s ({sim}, seed {seed})")


def test_a_silent_board_times_out(cfg):
    """A 'W' cut short: the board waits for the rest, the host for a 'K' that never
    comes. The watchdog ends the run with a record of where it stood."""
    script = [(SEND, b) for b in word_bytes(5, True)[:4]] + [(WAIT_REPLIES, 1)]
    ok, s, run = run_board_replay(cfg, "verilator", script, [], DIVISOR, 3000, BUILD)
    assert not ok and s["timed_out"] and not s["finished"]
    assert s["timeout"]["phase"] == 1 and s["timeout"]["replies"] == 0
    assert problems(s, [("ack",)], 0)[0].startswith("timed out at cycle 3000 (phase 1: "
                                                    "script; 0 replies")
    run.cleanup()


def test_budget_too_small_raises(cfg):
    rtl = uart("verilator", cfg)
    rtl.uart_budget = lambda prog, reset_prog=None: 3000    # not one 'W' and its 'K'

    with pytest.raises(DriverError, match=r"verilator run timed out \(AssertionError: timed "
                       r"out at cycle .*rerun the simulation: "):
        rtl.run(worked_example(cfg))


def test_unexpected_output_frame_fails(cfg):
    prog = worked_example(cfg)
    prog.responses.pop()              # the SYNC answer becomes a frame nobody expects
    with pytest.raises(DriverError, match=r"verilator testbench failed: AssertionError: 1 "
                       r"output frames beyond the 1 expected"):
        uart("verilator", cfg).run(prog)


def test_a_reply_golden_does_not_give_fails(cfg):
    """The checks see every reply: a script whose golden answers are changed (an 'E'
    where the board says 'R') is reported, with the reply's index."""
    plan = plan_script(cfg, [("send", stats_bytes() + read_bytes(REG_ID))])
    ok, s, run = run_board_replay(cfg, "verilator", plan.script, [], DIVISOR, 100_000, BUILD)
    assert ok and not problems(s, plan.replies, 0)
    wrong = problems(s, [plan.replies[0], ("err",)], 0)
    assert len(wrong) == 1 and wrong[0].startswith("reply 1 of the script at cycle "), wrong
    assert problems(s, plan.replies[:1], 0)       # a reply beyond the expected ones
    run.cleanup()


def test_uart_fuzz(cfg, seed):
    """N_FUZZ seeded cases on Verilator: the board answers every byte as golden's board,
    never sends a byte golden's does not, never hangs, and after the link's reset runs
    the worked example exactly (responses, registers, counters)."""
    rng = random.Random(seed)
    total = {"bytes": 0, "link_errors": 0, "beats": 0, "cycles": 0}
    for k in range(N_FUZZ):
        s_k = rng.randrange(2**31)
        wrong, info, run = fuzz_run(cfg, "verilator", s_k, worked_example(cfg), BUILD,
                                    DIVISOR)
        assert not wrong, (f"fuzz case {k} (fuzz_chunks seed {s_k}): " + "; ".join(wrong)
                           + f"; rerun: {run.command}")
        for key in total:
            total[key] += info[key]
        run.cleanup()
    print(f"UART fuzz: {N_FUZZ} cases on verilator, {total['bytes']} host bytes, "
          f"{total['link_errors']} link errors, {total['beats']} output beats, "
          f"{total['cycles']} cycles, all answered as golden (seed {seed})")


def test_link_reset_on_verilator(cfg, seed):
    before = random_host_program(cfg, seed, n_packets=6, instr_len=4, final_readback=False)
    prog = worked_example(cfg)
    got = uart("verilator", cfg).run(prog, reset_prog=before)
    assert not compare(backend("golden", cfg).run(prog), got, prog)
    assert got.proto_error is False and got.responses == [[101, 102, 103, 44], [42]]


def test_waves_window(tmp_path):
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")   # the smallest board: a quick build
    plan = plan_script(cfg, [("send", stats_bytes())])
    ok, s, run = run_board_replay(cfg, "icarus", plan.script, [], DIVISOR, 100_000,
                                  tmp_path, waves=(10, 200))
    assert ok and not problems(s, plan.replies, 0)
    fst = list(tmp_path.rglob("waves-10-200.fst"))
    assert len(fst) == 1 and fst[0].stat().st_size > 100, fst
    assert fst[0].read_bytes()[:1] == b"\x00"        # an FST header block, not VCD text


def test_cli_cosim_board(tmp_path):
    """`bfimna cosim --unit board` runs the board top through its replay harness; a
    divisor below 4 is a usage error (exit 2, no traceback)."""
    import subprocess

    from conftest import BFIMNA

    base = [*BFIMNA, "cosim", "--unit", "board", "--config",
            str(CONFIG_DIR / "sys_t2k2.yaml"), "--build-dir", str(BUILD)]
    bad = subprocess.run([*base, "--divisor", "3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--divisor 3: the UART needs at least 4" in bad.stderr
    ok = subprocess.run([*base, "--sim", "verilator", "--seed", "3", "--packets", "6"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "board top of sys_t2k2" in ok.stdout and "(the replay harness)" in ok.stdout
    assert "PASSED:" in ok.stdout


def test_bytes_golden_never_sends_are_reported(cfg):
    """The log parser on a hand-written response file: a byte that starts no board frame
    (0x99), a byte with a low stop bit and a frame cut off at the end are each reported,
    besides the replies that are right ('K' for the script, 'R' for the STATUS poll)."""
    from bfimna.cosim.replay.board import parse_output

    text = "\n".join(["S 40", "B 100 4b", "B 180 99", "F 260 12", "P 300",
                      *[f"B {400 + 80 * i} {b:02x}" for i, b in enumerate(b"R\0\0\0\0")],
                      "Q 800 00000000", "I 800", "B 900 44", "B 980 01", "D 2000"])
    s = parse_output(cfg, text)
    assert [ev for _c, ev in s["events"]] == [("ack",), ("reg", 0)]
    wrong = problems(s, [("ack",)], 0)
    assert wrong == ["1 byte(s) from the board start no frame (the first 0x99 at cycle 180)",
                     "1 byte(s) from the board with a low stop bit (the first 0x12 at cycle "
                     "260)", "the board's last frame is incomplete: 4401"], wrong


def test_host_uart_off_the_boards_rate(cfg):
    """Two clocks: the host's UART runs a few percent off the board's divisor (as a USB
    serial chip does) and the worked example still runs exactly; 8% off, the board
    samples bits outside themselves and the run fails, never hangs (scripts/uart_margin.py
    measures the whole range: -3.5% to +4.5% at divisor 8, docs/fpga.md)."""
    prog = worked_example(cfg)
    gold = backend("golden", cfg).run(prog)
    for pct in (-3, 4):
        rtl = uart("verilator", cfg, host_bit=DIVISOR * (1 + pct / 100))
        diffs = compare(gold, rtl.run(prog), prog)
        assert not diffs, f"host {pct:+d}%: " + "; ".join(diffs[:4])
    with pytest.raises(DriverError, match="timed out"):
        uart("verilator", cfg, host_bit=DIVISOR * 1.08).run(prog)
    with pytest.raises(ValueError, match="host_bit needs link='uart'"):
        backend("verilator", cfg, host_bit=8.0)
