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

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


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

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor {divisor} below 4 clock cycles per bit")
        self.divisor = divisor
        super().__init__(wiring.Signature({"rx": In(1, init=1),
                                           "o": Out(stream.Signature(8, always_ready=True)),
                                           "error": Out(1)}))

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        sync_rx = Signal(2, init=0b11)            # two flip-flops against metastability
        m.d.sync += sync_rx.eq((sync_rx << 1) | self.rx)
        rx = sync_rx[1]
        cnt = Signal(range(div + 1))
        bit = Signal(4)
        shreg = Signal(8)
        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):            # line high: wait for a falling edge
                with m.If(~rx):
                    m.d.sync += cnt.eq(div // 2)
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
                    m.d.sync += [shreg.eq((shreg >> 1) | (rx << 7)), cnt.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):            # the stop bit must be high
                with m.If(cnt == 0):
                    m.d.comb += [self.o.valid.eq(rx), self.error.eq(~rx), self.o.payload.eq(shreg)]
                    m.next = "IDLE"
                    with m.If(~rx):
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

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor {divisor} below 4 clock cycles per bit")
        self.divisor = divisor
        super().__init__(wiring.Signature({"i": In(stream.Signature(8)),
                                           "tx": Out(1, init=1)}))

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        cnt = Signal(range(div))
        shreg = Signal(10)
        bits = Signal(4)
        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), bits.eq(10),
                             cnt.eq(div - 1), self.tx.eq(0)]
        with m.Else():
            with m.If(cnt == 0):
                # next bit out: start, d0..d7, stop, then idle high
                m.d.sync += [cnt.eq(div - 1), bits.eq(bits - 1), shreg.eq(shreg >> 1),
                             self.tx.eq(shreg[1] | (bits == 1))]
            with m.Else():
                m.d.sync += cnt.eq(cnt - 1)
        return m
