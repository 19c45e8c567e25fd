"""UART receiver and transmitter (8 data bits, no parity, 1 stop bit) for the board top.

`divisor` = clock cycles per bit (clock frequency / baud rate). The receiver samples each
bit in its middle, after a start bit that is still low at its middle; a stop bit that is
low is a framing error and the byte is dropped; the receiver then waits for the line to
go high (the rest of a break, or the low stop bit itself) before it looks for the next
start bit, so one bad stop bit is one error and not a garbage byte after it. Bytes go
in and out as `lib.stream`
streams of 8-bit payloads.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bfimna.hdl.gen.controller import Mutants

# -- mutants of the UART (tests only, never real RTL) -----------------------------------------
# One deliberate break each, so that tests/test_mutation_board.py can show the link-rule
# table and a known-good program over the link catch it. The board top elaborates them
# (hdl/gen/board.py: BOARD_MUTANTS, its own `tb_fault` port in the VERIFY build); without a
# fault every `pick` is the good expression and the Verilog is unchanged.
UART_FAULTS = {
    "rx_stop_unchecked": "the stop bit is not checked: a low stop bit raises no framing "
                         "error and the byte is taken as good",
    "rx_samples_late": "the receiver samples each bit at its end, not in its middle",
    "rx_msb_first": "the receiver shifts the bits in MSB first",
    "rx_seven_bits": "the receiver expects the stop bit after seven data bits",
    "tx_no_stop": "the transmitter sends a low stop bit",
    "tx_stop_short": "the transmitter's stop bit lasts one cycle, not a bit time",
    "tx_msb_first": "the transmitter sends the bits MSB first",
    "tx_ready_busy": "the transmitter says ready while it is sending (a byte given then "
                     "is lost)",
}


def _no_mutants() -> Mutants:
    return Mutants({n: i for i, n in enumerate(UART_FAULTS, start=1)}, None)


class UARTRx(wiring.Component):
    """UART receiver.

    Ports
    -----
    rx : In(1)
        The serial line (idle high).
    o : Out(stream.Signature(8, always_ready=True))
        Received bytes, one cycle of `valid` each; nothing holds them back (a byte not
        taken that cycle is lost).
    error : Out(1)
        One cycle high on a framing error (a low stop bit); that byte is dropped and the
        receiver waits for the line to be high again.
    """

    def __init__(self, divisor: int, mutants: Mutants | None = None):
        """mutants: the board's (test-only UART_FAULTS; None: real RTL)."""
        if divisor < 4:
            raise ValueError(f"UART divisor {divisor} below 4 clock cycles per bit")
        self.divisor = divisor
        self.mut = mutants if mutants is not None else _no_mutants()
        super().__init__(wiring.Signature({"rx": In(1, init=1),
                                           "o": Out(stream.Signature(8, always_ready=True)),
                                           "error": Out(1)}))

    def elaborate(self, platform):
        m = Module()
        div, mut = self.divisor, self.mut
        sync_rx = Signal(2, init=0b11)            # two flip-flops against metastability
        m.d.sync += sync_rx.eq((sync_rx << 1) | self.rx)
        rx = sync_rx[1]
        cnt = Signal(range(div + 1))
        bit = Signal(4)
        shreg = Signal(8)
        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):            # line high: wait for a falling edge
                with m.If(~rx):
                    m.d.sync += cnt.eq(mut.pick("rx_samples_late", div // 2, div - 1))
                    m.next = "START"
            with m.State("START"):           # half a bit: still low in the middle?
                with m.If(cnt == 0):
                    with m.If(rx):
                        m.next = "IDLE"          # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [cnt.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("DATA"):            # eight bits, LSB first, each in its middle
                with m.If(cnt == 0):
                    m.d.sync += [shreg.eq(mut.pick("rx_msb_first", (shreg >> 1) | (rx << 7),
                                                   (shreg << 1) | rx)), cnt.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(mut.pick("rx_seven_bits", bit == 7, bit == 6)):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):            # the stop bit must be high
                with m.If(cnt == 0):
                    m.d.comb += [self.o.valid.eq(mut.pick("rx_stop_unchecked", rx, 1)),
                                 self.error.eq(mut.pick("rx_stop_unchecked", ~rx, 0)),
                                 self.o.payload.eq(shreg)]
                    m.next = "IDLE"
                    with m.If(mut.pick("rx_stop_unchecked", ~rx, Const(0))):
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("BREAK"):           # after a framing error: wait for the line high
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Ports
    -----
    i : In(stream.Signature(8))
        Bytes to send; one is taken when `valid` and `ready` are both high (`ready`: the
        previous byte's stop bit is out).
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, divisor: int, mutants: Mutants | None = None):
        """mutants: the board's (test-only UART_FAULTS; None: real RTL)."""
        if divisor < 4:
            raise ValueError(f"UART divisor {divisor} below 4 clock cycles per bit")
        self.divisor = divisor
        self.mut = mutants if mutants is not None else _no_mutants()
        super().__init__(wiring.Signature({"i": In(stream.Signature(8)),
                                           "tx": Out(1, init=1)}))

    def elaborate(self, platform):
        m = Module()
        div, mut = self.divisor, self.mut
        cnt = Signal(range(div))
        shreg = Signal(10)
        bits = Signal(4)
        m.d.comb += self.i.ready.eq(mut.pick("tx_ready_busy", bits == 0, 1))
        with m.If(bits == 0):
            with m.If(self.i.valid):
                data = mut.pick("tx_msb_first", self.i.payload, self.i.payload[::-1])
                m.d.sync += [shreg.eq(mut.pick("tx_no_stop", 1 << 9, 0) | (data << 1)),
                             bits.eq(10),
                             cnt.eq(div - 1), self.tx.eq(0)]
        with m.Else():
            with m.If(cnt == 0):
                # next bit out: start, d0..d7, stop, then idle high
                m.d.sync += [cnt.eq(mut.pick("tx_stop_short", div - 1,
                                             Mux(bits == 2, 0, div - 1))),
                             bits.eq(bits - 1), shreg.eq(shreg >> 1),
                             self.tx.eq(shreg[1] | (bits == 1))]
            with m.Else():
                m.d.sync += cnt.eq(cnt - 1)
        return m
