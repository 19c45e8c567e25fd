"""Board-level top: the system behind a UART host link, for real FPGA boards.

Ports: `clk_in` (the board clock), `uart_rx`, `uart_tx`, `led` (bit 0 busy, bit 1
error; inverted when the board's LEDs are active low). Reset comes from a power-on
counter, so a board needs no reset pin. The byte protocol is golden/spec/link.py's: each
AXI4-Stream beat the host sends is acknowledged ('K') once the system took it, so the
host never overruns the board; output beats and register reads go back as 'D' and 'R'
messages; 'Z' resets the system (not the link). A byte with a framing error (the
receiver's `error`) goes through the receive queue as a marker, in order with the good
bytes: it drops any partial command, answers 'E' like an unknown command byte, and
counts in the link's error count ('S' reads it). On ECP5 the design may run from the
PLL (ecp5_pll) instead of clk_in, held in reset until the PLL locks.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth import Cat, ClockDomain, Const, Instance, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import Config
from bfimna.golden.spec.link import (
    ACK,
    BOARD_FRAMES,
    DATA,
    ERR,
    FRAMES,
    HOST_FRAMES,
    LINK_ERRORS_BITS,
    READ,
    REG,
    RESET,
    STATS,
    WORD,
)
from bfimna.hdl.gen.controller import MUTANT_PORT_BITS, VERIFY, Mutants, controller_module_name
from bfimna.hdl.gen.layouts import data_layout, hdl_enum, view
from bfimna.hdl.gen.system import System
from bfimna.hdl.gen.uart import UART_FAULTS, UARTRx, UARTTx

POR_CYCLES = 16
RXQ_DEPTH = 16          # received bytes waiting for the command parser

# the board's replies by code byte (golden/spec/link.py: FRAMES), for the waveforms
Reply = hdl_enum({f.name: f.code for f in BOARD_FRAMES.values()}, 8, "Reply")
# what each host frame does once its payload is in: the state that runs it
ACTION = {WORD.name: "PUSH", READ.name: "AR", RESET.name: "RESET", STATS.name: "STATS"}
assert set(ACTION) == {f.name for f in HOST_FRAMES.values()}, "a host frame without action"


# -- mutants of the link (tests only, never real RTL) -----------------------------------------
# One deliberate break each, so that tests/test_mutation_board.py can show the link-rule
# table (tests/test_link_rules.py) and a known-good program over the link catch it.
# BoardTop(..., fault=<name>) elaborates that one; VERIFY elaborates every link and UART
# mutant (hdl/gen/uart.py: UART_FAULTS) behind the board's own `tb_fault` input (its
# numbers: board_mutant_numbers), so one build serves them all.
LINK_FAULTS = {
    "bad_cmd_decoded": "a code byte with a framing error is decoded as a good one",
    "bad_payload_taken": "a payload byte with a framing error is taken as a good one",
    "partial_kept": "a framing error in a payload answers 'E' but keeps the partial "
                    "command (its rest is read as payload)",
    "bad_not_queued": "a byte with a framing error never reaches the command parser",
    "unknown_no_err": "an unknown command byte is not answered with 'E'",
    "errors_not_counted": "an 'E' does not increment the link error count",
    "ack_not_waiting": "'K' is sent without waiting for the system to take the beat "
                       "(the beat is lost when the system is not ready)",
    "z_no_reset": "'Z' does not reset the system (it is still answered with 'K')",
    "read_stale": "'R' answers the previous reply's value, not the register read",
    "tlast_lost": "an output beat's tlast is not sent ('D' flags byte 0)",
}
BOARD_MUTANTS = {**UART_FAULTS, **LINK_FAULTS}


def board_mutant_numbers() -> dict[str, int]:
    """The board's tb_fault value of each UART and link mutant (0: none). The board's
    port is its own: the system inside is real RTL, whatever the board's mutant."""
    return {name: i for i, name in enumerate(BOARD_MUTANTS, start=1)}


def board_module_name(cfg: Config) -> str:
    tile = controller_module_name(cfg).removeprefix("bfimna_")
    return f"bfimna_board_t{cfg.system.tiles}_{tile}"


def ecp5_pll(fin_mhz: float, fout_mhz: float) -> dict:
    """EHXPLLL dividers for fout from fin (output CLKOP fed back): fout = fin * CLKFB_DIV /
    CLKI_DIV, VCO = fout * CLKOP_DIV in 400..800 MHz, phase detector >= 3.125 MHz (the
    ranges nextpnr's ecppll uses). The closest frequency, then the VCO nearest 600 MHz."""
    best = None
    for clki in range(1, 129):
        if fin_mhz / clki < 3.125:
            break
        for fb in range(1, 81):
            f = fin_mhz * fb / clki
            for op in range(1, 129):
                vco = f * op
                if 400 <= vco <= 800:
                    key = (round(abs(f - fout_mhz), 9), abs(vco - 600))
                    if best is None or key < best[0]:
                        best = (key, {"CLKI_DIV": clki, "CLKFB_DIV": fb, "CLKOP_DIV": op,
                                      "CLKOP_CPHASE": op // 2, "fout_mhz": f, "vco_mhz": vco})
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {fout_mhz} MHz from {fin_mhz} MHz")
    return best[1]


class BoardTop(wiring.Component):
    def __init__(self, cfg: Config, divisor: int, led_invert: bool = False,
                 pll: dict | None = None, fin_mhz: float | None = None,
                 fault: str | None = None):
        """pll: ecp5_pll()'s dividers to clock the design from an ECP5 PLL fed by clk_in
        (fin_mhz), held in reset until it locks; None: the design runs on clk_in.
        fault: tests only, a mutant of BOARD_MUTANTS, or VERIFY (all of them behind a
        `tb_fault` input); None: real RTL."""
        if fault is not None and fault not in BOARD_MUTANTS and fault != VERIFY:
            self._MustUse__silence = True  # never elaborated: no "unused" warning
            raise ValueError(f"unknown fault {fault!r}; known: {VERIFY}, "
                             f"{', '.join(BOARD_MUTANTS)}")
        self.cfg, self.divisor, self.led_invert = cfg, divisor, led_invert
        self.pll, self.fin_mhz, self.fault = pll, fin_mhz, fault
        verify = {"tb_fault": In(MUTANT_PORT_BITS)} if fault == VERIFY else {}
        super().__init__(wiring.Signature({**verify, "clk_in": In(1),
                                           "uart_rx": In(1, init=1),
                                           "uart_tx": Out(1, init=1), "led": Out(2)}))

    def elaborate(self, platform):
        m = Module()
        mut = Mutants(board_mutant_numbers(), self.fault,
                      self.tb_fault if self.fault == VERIFY else None)

        @contextmanager
        def unless(name: str):
            """The statements inside, except under mutant `name`."""
            on = mut.on(name)
            if on is False:
                yield
            else:
                with m.If(Const(0) if on is True else ~on):
                    yield

        # clock and power-on reset
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        clk, locked = self.clk_in, Signal(init=1)
        if self.pll is not None:
            p = self.pll
            clk, locked = Signal(), Signal()
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.fin_mhz:g}",
                a_FREQUENCY_PIN_CLKOP=f"{p['fout_mhz']:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, o_CLKOP=clk, i_CLKFB=clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.d.comb += [cd.clk.eq(clk), cd_por.clk.eq(clk)]
        por = Signal(range(POR_CYCLES + 1))
        with m.If(~locked):
            m.d.por += por.eq(0)
        with m.Elif(por != POR_CYCLES):
            m.d.por += por.eq(por + 1)
        m.d.comb += cd.rst.eq(por != POR_CYCLES)

        sys_rst = Signal()           # the link's 'Z': resets the system, not the link
        m.submodules.sys = sys = ResetInserter(sys_rst)(System(self.cfg))
        m.submodules.rx = rx = UARTRx(self.divisor, mut)
        m.submodules.tx = tx = UARTTx(self.divisor, mut)
        # received bytes, in order, bit 8 set for a byte with a framing error
        m.submodules.rxq = rxq = SyncFIFO(width=9, depth=RXQ_DEPTH)
        rx_bytes = rxq.r_stream
        rx_byte, rx_bad = rx_bytes.payload[:8], rx_bytes.payload[8]
        # the receiver cannot wait: a byte that finds the queue full is lost (the host
        # waits for every answer, so at most one command is ever in flight)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
                     rxq.w_stream.payload.eq(Cat(rx.o.payload, rx.error)),
                     rxq.w_stream.valid.eq(mut.pick("bad_not_queued", rx.o.valid | rx.error,
                                                    rx.o.valid))]
        link_errors = Signal(LINK_ERRORS_BITS)   # every 'E' sent; power-on reset only
        leds = Cat(sys.busy, sys.error)
        m.d.comb += self.led.eq(~leds if self.led_invert else leds)

        # -- commands (golden/spec/link.py: HOST_FRAMES): code byte, payload, action ------
        max_payload = max(f.nbytes for f in HOST_FRAMES.values())
        payload = Signal(8 * max_payload)       # the command's payload bytes, LE
        idx = Signal(range(max_payload + 1))
        word = view(WORD.payload, payload[:WORD.payload.size])
        read = view(READ.payload, payload[:READ.payload.size])
        # the beat 'W' pushes: its data straight from the payload register (AXI-Stream's
        # tdata and tlast matter only with tvalid, which PUSH alone raises), so that no state
        # decoding lies on the path into the tile's validator
        m.d.comb += [sys.s_axis_tdata.eq(word.word), sys.s_axis_tlast.eq(word.tlast)]
        # a reply for the TX side: which frame, its 32-bit value; `resp_req` until taken
        resp_req, resp_val = Signal(), Signal(32)
        resp_kind = Signal(Reply, init=Reply.ACK)   # (unread until resp_req is set)

        def reply(frame, value=None):
            m.d.sync += [resp_req.eq(1), resp_kind.eq(Reply[frame.name])]
            if value is not None:
                m.d.sync += resp_val.eq(value)
            if frame is ERR:
                with unless("errors_not_counted"):
                    m.d.sync += link_errors.eq(link_errors + 1)

        with m.FSM(name="link"):
            with m.State("CMD"):
                # a code byte (once the last reply has gone to the transmitter)
                m.d.comb += rx_bytes.ready.eq(~resp_req)
                with m.If(rx_bytes.valid & ~resp_req):
                    m.d.sync += idx.eq(0)
                    with m.If(mut.pick("bad_cmd_decoded", rx_bad, Const(0))):
                        reply(ERR)
                    with m.Else():
                        with m.Switch(rx_byte):
                            for f in HOST_FRAMES.values():
                                with m.Case(f.code):
                                    m.next = f"RX_{f.name}" if f.nbytes else ACTION[f.name]
                            with m.Default(), unless("unknown_no_err"):
                                reply(ERR)
            for f in HOST_FRAMES.values():
                if not f.nbytes:
                    continue
                with m.State(f"RX_{f.name}"):
                    # the payload of a frame, f.nbytes bytes
                    # (a framing error drops the partial command: 'E', back to CMD)
                    m.d.comb += rx_bytes.ready.eq(1)
                    with m.If(rx_bytes.valid & mut.pick("bad_payload_taken", rx_bad, Const(0))):
                        reply(ERR)
                        with unless("partial_kept"):
                            m.next = "CMD"
                    with m.Elif(rx_bytes.valid):
                        m.d.sync += [payload.word_select(idx, 8).eq(rx_byte),
                                     idx.eq(idx + 1)]
                        with m.If(idx == f.nbytes - 1):
                            m.next = ACTION[f.name]
            with m.State("PUSH"):
                # 'W': the beat into the system, 'K' once it took it
                m.d.comb += sys.s_axis_tvalid.eq(1)
                with m.If(mut.pick("ack_not_waiting", sys.s_axis_tready, Const(1))):
                    reply(ACK)
                    m.next = "CMD"
            with m.State("RESET"):
                # 'Z': one cycle of system reset, then 'K'
                m.d.comb += sys_rst.eq(mut.pick("z_no_reset", 1, 0))
                reply(ACK)
                m.next = "CMD"
            with m.State("STATS"):
                # 'S': the link's error count, answered as 'R' + value
                reply(REG, link_errors)
                m.next = "CMD"
            with m.State("AR"):
                # 'R': the AXI4-Lite read address ...
                m.d.comb += [sys.s_axil_araddr.eq(read.addr), sys.s_axil_arvalid.eq(1)]
                with m.If(sys.s_axil_arready):
                    m.next = "RDATA"
            with m.State("RDATA"):
                # ... and its data, answered as 'R' + value
                m.d.comb += sys.s_axil_rready.eq(1)
                with m.If(sys.s_axil_rvalid):
                    reply(REG, mut.pick("read_stale", sys.s_axil_rdata, resp_val))
                    m.next = "CMD"

        # -- transmit: one frame at a time (a reply first, else an output beat) -----------
        max_len = max(f.length for f in FRAMES if f.sender == "board")
        msg = Signal(8 * max_len)                # the frame being sent, code byte first
        mlen, midx = Signal(range(max_len + 1)), Signal(range(max_len + 1))
        reg_payload = Signal(data_layout(REG.payload))
        beat_payload = Signal(data_layout(DATA.payload))
        m.d.comb += [reg_payload.value.eq(resp_val), beat_payload.word.eq(sys.m_axis_tdata),
                     beat_payload.tlast.eq(mut.pick("tlast_lost", sys.m_axis_tlast, 0))]
        with m.If(midx == mlen):          # idle: load the next frame
            with m.If(resp_req):
                m.d.sync += [msg.eq(Cat(resp_kind, reg_payload)), midx.eq(0),
                             resp_req.eq(0)]
                with m.Switch(resp_kind):
                    for f in BOARD_FRAMES.values():
                        if f is not DATA:
                            with m.Case(Reply[f.name]):
                                m.d.sync += mlen.eq(f.length)
            with m.Elif(sys.m_axis_tvalid):
                m.d.comb += sys.m_axis_tready.eq(1)
                m.d.sync += [msg.eq(Cat(Const(DATA.code, 8), beat_payload)), midx.eq(0),
                             mlen.eq(DATA.length)]
        with m.Else():
            m.d.comb += [tx.i.payload.eq(msg.word_select(midx, 8)), tx.i.valid.eq(1)]
            with m.If(tx.i.ready):
                m.d.sync += midx.eq(midx + 1)
        # the AXI4-Lite write channel is unused over the link
        m.d.comb += [sys.s_axil_awvalid.eq(0), sys.s_axil_wvalid.eq(0),
                     sys.s_axil_bready.eq(1)]
        return m
