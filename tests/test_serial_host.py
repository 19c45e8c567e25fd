"""The host driver over a serial port (cosim/drivers/serial_host.py) against the golden board model
(golden/model/board.py's BoardModel) on a pseudo-terminal: the pyserial code path a real board
uses. Programs match the golden system, the link reset makes runs independent, and a
wrong, silent or confused board gives a clear error within the timeout."""

import os
import sys
import time
import tty

import pytest

from bfimna.cosim.drivers.backends import DriverError, backend, compare
from bfimna.cosim.drivers.serial_host import SerialBackend, emulated_board
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.model.board import BoardModel
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.link import read_bytes
from bfimna.golden.spec.regs import ID_MAGIC, REG_ID

from conftest import CONFIG_DIR, ROOT

CFG = load_config(CONFIG_DIR / "sys_t2k2.yaml")


def worked_example(cfg):
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    from host_example import build
    return build(cfg)


def test_worked_example_and_random_programs_match_golden(seed):
    with emulated_board(CFG) as (port, _model), SerialBackend(CFG, port, timeout=5) as board:
        assert board.identify() == "2 tile(s), CAP 24x48 (2D), 2 MAP(s) 16x40, 24-bit counters"
        prog = worked_example(CFG)
        got = board.run(prog)
        assert not compare(backend("golden", CFG).run(prog), got, prog)
        assert got.responses == [[101, 102, 103, 44], [42]]
        for s in (seed, seed + 1):        # the same board, one program after another
            print(f"random_host_program seed {s}")
            prog = random_host_program(CFG, s, n_packets=12)
            want = backend("golden", CFG).run(prog)
            got = board.run(prog)
            assert not compare(want, got, prog), (s, compare(want, got, prog))
            assert got.proto_error and got.global_counters["bad_packets"] > 0
            assert got.extra["extra_output_words"] == 0


def test_without_the_reset_state_carries_over():
    with emulated_board(CFG) as (port, _model), SerialBackend(CFG, port) as board:
        prog = worked_example(CFG)
        board.run(prog)
        again = board.run(prog, reset=False)
        once = board.run(prog)
        assert again.global_counters["packets"] == 2 * once.global_counters["packets"]
        assert again.tile_counters[0]["cycles"] == 2 * once.tile_counters[0]["cycles"] > 0


def test_a_board_with_another_configuration_is_refused():
    other = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    with emulated_board(other) as (port, _model), SerialBackend(CFG, port) as board:
        with pytest.raises(DriverError, match=r"the board's system has 1 tile\(s\), CAP 37x16 "
                                              r".*sys_t2k2 describes 2 tile\(s\), CAP 24x48"):
            board.identify()


def test_a_silent_or_foreign_device_gives_a_message_not_a_hang():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        with SerialBackend(CFG, os.ttyname(slave), timeout=0.3) as board:
            t0 = time.monotonic()
            with pytest.raises(DriverError, match=r"no answer from the board .* within 0.3 s, "
                                                  r"waiting for the value of register 0x0000"):
                board.read(REG_ID)
            assert time.monotonic() - t0 < 3
            os.write(master, b"hello\r\n")      # something else on the port
            with pytest.raises(DriverError, match=r"unexpected byte 0x68 .* out of step"):
                board.read(REG_ID)
    finally:
        os.close(master)
        os.close(slave)


def test_unknown_command_and_garbage_are_reported():
    with emulated_board(CFG) as (port, _model), SerialBackend(CFG, port) as board:
        board._send(b"X")                 # not a command: the board answers 'E'
        with pytest.raises(DriverError, match="answered 'E'"):
            board.read(REG_ID)
        assert board.read(REG_ID) == ID_MAGIC   # the link is back in step
    model = BoardModel(CFG)
    assert model.feed(b"X" + read_bytes(REG_ID)[:2]) == b"E"    # partial command waits
    assert model.feed(read_bytes(REG_ID)[2:]) == b"R" + ID_MAGIC.to_bytes(4, "little")


def test_a_port_that_does_not_exist():
    with pytest.raises(DriverError, match="cannot open serial port /dev/does-not-exist"):
        SerialBackend(CFG, "/dev/does-not-exist").open()


def test_beats_beyond_the_expected_responses_raise():
    """An output frame nobody asked for (here: the job expects one response fewer than
    the program produces) is an error, not silently dropped or returned."""
    with emulated_board(CFG) as (port, _model), SerialBackend(CFG, port, timeout=5) as board:
        prog = worked_example(CFG)
        prog.responses.pop()
        with pytest.raises(DriverError, match=r"2 response frames from .*, expected 1: the "
                           r"stream has beats nobody asked for"):
            board.run(prog)
