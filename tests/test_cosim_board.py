"""The board-level top (hdl/gen/board.py) in cocotb: the host driver talks to its Verilog over
a simulated UART (golden/spec/link.py's byte protocol, cosim/tb/board_tb.py), and the worked
example of docs/system.md runs end to end with responses, status and every counter equal
to the golden system's; after the link's reset command a board that ran another program
(bad packets included) answers like a fresh golden system."""

import sys

import pytest

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.spec.config import load_config

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"


def test_worked_example_over_uart_on_icarus():
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from host_example import build

    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    prog = build(cfg)
    want = backend("golden", cfg).run(prog)
    got = backend("icarus", cfg, build_root=BUILD, link="uart", divisor=8).run(prog)
    assert not compare(want, got, prog), compare(want, got, prog)
    assert got.responses == [[101, 102, 103, 44], [42]]
    assert got.extra["id"] == 0xBF1A0001


def test_link_reset_returns_the_board_to_power_on_state(seed):
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from host_example import build

    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    before = random_host_program(cfg, seed, n_packets=6, instr_len=4, final_readback=False)
    print(f"program before the reset: random_host_program seed {seed}, "
          f"{before.n_words} words")
    prog = build(cfg)
    want = backend("golden", cfg).run(prog)
    got = backend("icarus", cfg, build_root=BUILD, link="uart", divisor=8).run(
        prog, reset_prog=before)
    assert not compare(want, got, prog), compare(want, got, prog)
    assert got.proto_error is False and got.responses == [[101, 102, 103, 44], [42]]


def test_framing_errors_answer_e_and_are_counted():
    """A byte with a low stop bit (the UART receiver's `error`) is not ignored: the board
    drops it with any partial command, answers 'E' as for an unknown byte, and counts it
    in the link's error count ('S'); the same script on golden/model/board.py gives the
    same answers, and the worked example then runs exactly (nothing of the dropped
    partial 'W' reached the system)."""
    import json

    from bfimna.cosim.drivers.runner import run_board_job
    from bfimna.golden.model.board import BoardModel
    from bfimna.golden.spec.link import LinkParser, stats_bytes, word_bytes

    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from host_example import build

    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    S = stats_bytes().hex()
    partial_w = word_bytes(0x0000000500000001, False)[:4].hex()    # 'W' + 3 bytes
    script = [
        [["send", S]],                                  # count 0
        [["send", partial_w], ["bad", "a5"]],           # a framing error mid-command: 'E'
        [["send", S]],                                  # count 1
        [["bad", "57"]],                                # a bad 'W' code byte itself: 'E'
        [["send", "00"]],                               # an unknown command byte: 'E'
        [["send", S]],                                  # count 3
    ]
    model, parser, want = BoardModel(cfg), LinkParser(), []
    for step in script:
        out = b""
        for kind, data in step:
            raw = bytes.fromhex(data)
            out += (b"".join(model.framing_error() for _ in raw) if kind == "bad"
                    else model.feed(raw))
        want += [list(ev) for ev in parser.feed(out)]
    assert want == [["reg", 0], ["err"], ["reg", 1], ["err"], ["err"], ["reg", 3]]

    prog = build(cfg)
    job = {"frames": [[f"{w:x}" for w in f] for f in prog.frames],
           "n_responses": len(prog.responses), "max_cycles": 3_000_000, "divisor": 8,
           "link_script": script}
    passed, summary, log = run_board_job(cfg, "icarus", job, BUILD)
    assert passed, f"log {log}"
    assert summary["link_events"] == want, json.dumps(summary["link_events"])
    assert summary["responses"] == [[f"{v:x}" for v in r] for r in [[101, 102, 103, 44],
                                                                    [42]]]


def test_a_board_testbench_failure_raises():
    """The board backend loses no failure either: a job expecting one response fewer
    than the program produces makes board_tb assert on the extra frame, and RtlBackend
    raises DriverError naming that assertion."""
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from host_example import build

    from bfimna.cosim.drivers.backends import DriverError

    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    prog = build(cfg)
    prog.responses.pop()                  # the SYNC answer becomes a frame nobody expects
    with pytest.raises(DriverError, match=r"icarus testbench failed: AssertionError: 1 "
                       r"output frames beyond the 1 expected"):
        backend("icarus", cfg, build_root=BUILD, link="uart", divisor=8).run(prog)
