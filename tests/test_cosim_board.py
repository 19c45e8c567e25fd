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
