"""The host driver over a real serial port: runs a HostProgram (golden/host/program.py) on a board
programmed with the board-level top (hdl/gen/board.py, `bfimna fpga --bitstream`), speaking
golden/spec/link.py's byte protocol through pyserial, and returns the same RunResult as the
golden and simulator backends (cosim/drivers/backends.py), so `compare()` checks a board the way
it checks the Verilog:

    with SerialBackend(cfg, "/dev/ttyUSB0") as board:
        board.identify()              # the board's system is the one cfg describes
        res = board.run(prog)         # link reset 'Z' first: starts from power-on state

`emulated_board(cfg)` opens a pseudo-terminal whose other end answers as the board
would (golden/model/board.py's BoardModel in a thread): the same code path without a board,
for the tests and `bfimna board --emulate`.

Every wait has a timeout: a silent, wrong or unprogrammed board gives a DriverError that
says what was expected, never a hang.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bfimna.cosim.drivers.backends import DriverError, RunResult
from bfimna.golden.host.program import HostProgram
from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.link import BAUD, LinkParser, read_bytes, reset_bytes, word_bytes
from bfimna.golden.spec.regs import (
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    ID_MAGIC,
    REG_CAP_GEOM,
    REG_CONFIG,
    REG_ID,
    REG_MAP_GEOM,
    REG_STATUS,
    REG_TILE_BUSY,
    REG_TILE_ERROR,
    STATUS_WORD,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
    describe_config,
)

if TYPE_CHECKING:   # pyserial is imported when a port is opened
    from serial import Serial


class SerialBackend:
    """A board on a serial port. `timeout`: seconds of silence after which a wait fails."""

    name = "serial"

    def __init__(self, cfg: Config, port: str, baud: int = BAUD, timeout: float = 2.0):
        self.cfg, self.port, self.baud, self.timeout = cfg, port, baud, timeout
        self.ser: Serial | None = None
        self.parser = LinkParser()
        self.events: list[tuple] = []
        self.data: list[tuple[int, bool]] = []
        self.bytes_sent = self.bytes_received = 0

    # -- the port ---------------------------------------------------------------------
    def open(self) -> SerialBackend:
        import serial
        try:
            self.ser = serial.serial_for_url(self.port, baudrate=self.baud, bytesize=8,
                                             parity="N", stopbits=1, timeout=0.01)
        except (serial.SerialException, ValueError) as exc:
            raise DriverError(f"cannot open serial port {self.port}: {exc}") from None
        self.ser.reset_input_buffer()
        return self

    def close(self) -> None:
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def __enter__(self) -> SerialBackend:
        return self.open() if self.ser is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def _port(self) -> Serial:
        if self.ser is None:
            raise DriverError(f"serial port {self.port} is not open")
        return self.ser

    def _send(self, data: bytes) -> None:
        self._port().write(data)
        self.bytes_sent += len(data)

    def _pump(self) -> bool:
        """Read what has arrived; True if anything did."""
        ser = self._port()
        chunk = ser.read(max(1, ser.in_waiting))
        if not chunk:
            return False
        self.bytes_received += len(chunk)
        try:
            events = self.parser.feed(chunk)
        except ValueError as exc:
            raise DriverError(f"{exc} on {self.port}: the link is out of step (wrong baud "
                              f"rate, or not the bfimna board top?)") from None
        for ev in events:
            if ev[0] == "data":
                self.data.append((ev[1], ev[2]))
            else:
                self.events.append(ev)
        return True

    def _event(self, waiting_for: str) -> tuple:
        quiet_since = time.monotonic()
        while not self.events:
            if self._pump():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > self.timeout:
                raise DriverError(f"no answer from the board on {self.port} within "
                                  f"{self.timeout:g} s, waiting for {waiting_for} (is it "
                                  f"programmed with the board top at {self.baud} baud?)")
        ev = self.events.pop(0)
        if ev == ("err",):
            raise DriverError(f"the board answered 'E' while the host waited for "
                              f"{waiting_for}: it got a byte it did not expect")
        return ev

    # -- link commands -------------------------------------------------------------------
    def beat(self, word: int, last: bool) -> None:
        self._send(word_bytes(word, last))
        ev = self._event("'K' after a beat")
        if ev != ("ack",):
            raise DriverError(f"expected 'K' after a beat, got {ev}")

    def read(self, addr: int) -> int:
        self._send(read_bytes(addr))
        ev = self._event(f"the value of register {addr:#06x}")
        if ev[0] != "reg":
            raise DriverError(f"expected 'R' after a register read, got {ev}")
        return ev[1]

    def reset(self) -> None:
        """The link's 'Z': tiles, arrays, counters and the protocol error to power-on
        state; output beats from before it are dropped."""
        self._send(reset_bytes())
        ev = self._event("'K' after a reset")
        if ev != ("ack",):
            raise DriverError(f"expected 'K' after a reset, got {ev}")
        self.data.clear()

    def read64(self, addr: int) -> int:
        return self.read(addr) | self.read(addr + 4) << 32

    # -- what a user calls ---------------------------------------------------------------
    def identify(self) -> str:
        """Check that the board runs the system `cfg` describes; returns its description."""
        ident = self.read(REG_ID)
        if ident != ID_MAGIC:
            raise DriverError(f"the board answered ID {ident:#010x}, not {ID_MAGIC:#010x}: "
                              f"is the bfimna bitstream loaded?")
        from bfimna.golden.model.system import System
        want_sys = System(self.cfg)
        regs = (REG_CONFIG, REG_CAP_GEOM, REG_MAP_GEOM)
        got = [self.read(a) for a in regs]
        want = [want_sys.register(a) for a in regs]
        if got != want:
            raise DriverError(f"the board's system has {describe_config(*got)}; the "
                              f"configuration {self.cfg.name} describes "
                              f"{describe_config(*want)}: program the bitstream built from "
                              f"it (bfimna fpga --bitstream)")
        return describe_config(*got)

    def run(self, prog: HostProgram, reset: bool = True) -> RunResult:
        """Send every frame of `prog` (after the link reset unless reset=False), wait for
        every response and for the system to be idle, then read status and counters."""
        if self.ser is None:
            self.open()
        t0 = time.perf_counter()
        if reset:
            self.reset()
        for frame in prog.frames:
            for i, w in enumerate(frame):
                self.beat(w, i == len(frame) - 1)
        quiet_since = time.monotonic()
        n_resp = len(prog.responses)
        while sum(1 for _w, last in self.data if last) < n_resp:
            if self._pump():
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > self.timeout:
                got = sum(1 for _w, last in self.data if last)
                raise DriverError(f"{got} of {n_resp} responses after {self.timeout:g} s of "
                                  f"silence on {self.port}")
        busy_since = time.monotonic()
        while STATUS_WORD.get(self.read(REG_STATUS), "busy"):
            if time.monotonic() - busy_since > self.timeout:
                raise DriverError(f"the system stayed busy for {self.timeout:g} s after the "
                                  f"last response")
        wall = time.perf_counter() - t0
        responses, cur = [], []
        for w, last in self.data:
            cur.append(w)
            if last:
                responses.append(cur)
                cur = []
        if len(responses) != n_resp or cur:   # nothing may come beyond what was asked for
            self.data.clear()
            raise DriverError(f"{len(responses)} response frames"
                              + (f" and {len(cur)} words without tlast" if cur else "")
                              + f" from {self.port}, expected {n_resp}: the stream has "
                              "beats nobody asked for")
        status = self.read(REG_STATUS)
        res = RunResult(
            backend=f"serial:{self.port}", responses=responses,
            proto_error=bool(STATUS_WORD.get(status, "proto_error")),
            tile_errors=self.read(REG_TILE_ERROR),
            global_counters={k: self.read64(GLOBAL_COUNTER_BASE + 8 * i)
                             for i, k in enumerate(GLOBAL_COUNTERS)},
            tile_counters=[{k: self.read64(TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * t + 8 * i)
                            for i, k in enumerate(COUNTER_KEYS)}
                           for t in range(self.cfg.system.tiles)],
            wall_s=wall,
            extra={"status": status, "tile_busy": self.read(REG_TILE_BUSY),
                   "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                   "extra_output_words": len(cur)})
        self.data.clear()
        return res


@contextmanager
def emulated_board(cfg: Config, fast: bool = False):
    """A pseudo-terminal with the golden board model (golden/model/board.py's BoardModel) on the
    other end; yields (port path, model). fast: the macro-level tile model."""
    from bfimna.golden.model.board import BoardModel
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    path = os.ttyname(slave)
    if fast:
        from bfimna.golden.model.fast import FastTile
        model = BoardModel(cfg, FastTile)
    else:
        model = BoardModel(cfg)
    stop = threading.Event()
    failure: list[BaseException] = []

    def serve():
        try:
            while not stop.is_set():
                ready, _, _ = select.select([master], [], [], 0.02)
                if ready:
                    out = model.feed(os.read(master, 4096))
                    while out:
                        n = os.write(master, out)
                        out = out[n:]
        except OSError:
            pass
        except BaseException as exc:          # surfaces in the caller, not lost in a thread
            failure.append(exc)

    th = threading.Thread(target=serve, name="bfimna-board-emulator", daemon=True)
    th.start()
    try:
        yield path, model
    finally:
        stop.set()
        th.join(timeout=2)
        os.close(master)
        os.close(slave)
    if failure:
        raise failure[0]
