"""Board-level top: the system behind a UART host link, for real FPGA boards.

Ports: `clk_in` (the board clock), `uart_rx`, `uart_tx`, `led` (bit 0 busy, bit 1
error; inverted when the board's LEDs are active low). Reset comes from a power-on
counter, so a board needs no reset pin. The byte protocol is golden/spec/link.py's: each
AXI4-Stream beat the host sends is acknowledged ('K') once the system took it, so the
host never overruns the board; output beats and register reads go back as 'D' and 'R'
messages; 'Z' resets the system (not the link). On ECP5 the design may run from the
PLL (ecp5_pll) instead of clk_in, held in reset until the PLL locks.
"""

from __future__ import annotations

from amaranth import Array, Cat, ClockDomain, Instance, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import Config
from bfimna.golden.spec.link import CMD_READ, CMD_RESET, CMD_WORD, RSP_ACK, RSP_DATA, RSP_ERR, RSP_REG
from bfimna.hdl.gen.controller import controller_module_name
from bfimna.hdl.gen.system import System
from bfimna.hdl.gen.uart import UARTRx, UARTTx

POR_CYCLES = 16


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
                 pll: dict | None = None, fin_mhz: float | None = None):
        """pll: ecp5_pll()'s dividers to clock the design from an ECP5 PLL fed by clk_in
        (fin_mhz), held in reset until it locks; None: the design runs on clk_in."""
        self.cfg, self.divisor, self.led_invert = cfg, divisor, led_invert
        self.pll, self.fin_mhz = pll, fin_mhz
        super().__init__(wiring.Signature({"clk_in": In(1), "uart_rx": In(1, init=1),
                                           "uart_tx": Out(1, init=1), "led": Out(2)}))

    def elaborate(self, platform):
        m = Module()
        # clock and power-on reset
        m.domains.sync = cd = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        clk, locked = self.clk_in, Signal(init=1)
        if self.pll is not None:
            p = self.pll
            clk, locked = Signal(), Signal()
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{self.fin_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{p['fout_mhz']:g}",
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
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.rxq = rxq = SyncFIFO(width=8, depth=16)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx),
                     rxq.w_data.eq(rx.data), rxq.w_en.eq(rx.valid)]
        leds = Cat(sys.busy, sys.error)
        m.d.comb += self.led.eq(~leds if self.led_invert else leds)

        # -- commands: 'W' + 8 + 1 bytes, 'R' + 2 bytes, 'Z' ------------------------------
        buf = Array(Signal(8, name=f"cmd{i}") for i in range(9))
        idx = Signal(4)
        # a response for the TX side: kind, 32-bit value; `resp_req` until taken
        resp_req, resp_kind, resp_val = Signal(), Signal(8), Signal(32)
        word = Cat(*(buf[i] for i in range(8)))
        with m.FSM():
            with m.State("CMD"):
                m.d.comb += rxq.r_en.eq(~resp_req)
                with m.If(rxq.r_rdy & ~resp_req):
                    m.d.sync += idx.eq(0)
                    with m.If(rxq.r_data == CMD_WORD):
                        m.next = "WORD"
                    with m.Elif(rxq.r_data == CMD_READ):
                        m.next = "ADDR"
                    with m.Elif(rxq.r_data == CMD_RESET):
                        m.next = "RESET"
                    with m.Else():
                        m.d.sync += [resp_req.eq(1), resp_kind.eq(RSP_ERR)]
            with m.State("WORD"):
                m.d.comb += rxq.r_en.eq(1)
                with m.If(rxq.r_rdy):
                    m.d.sync += [buf[idx].eq(rxq.r_data), idx.eq(idx + 1)]
                    with m.If(idx == 8):
                        m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [sys.s_axis_tvalid.eq(1), sys.s_axis_tdata.eq(word),
                             sys.s_axis_tlast.eq(buf[8][0])]
                with m.If(sys.s_axis_tready):
                    m.d.sync += [resp_req.eq(1), resp_kind.eq(RSP_ACK)]
                    m.next = "CMD"
            with m.State("RESET"):
                m.d.comb += sys_rst.eq(1)
                m.d.sync += [resp_req.eq(1), resp_kind.eq(RSP_ACK)]
                m.next = "CMD"
            with m.State("ADDR"):
                m.d.comb += rxq.r_en.eq(1)
                with m.If(rxq.r_rdy):
                    m.d.sync += [buf[idx].eq(rxq.r_data), idx.eq(idx + 1)]
                    with m.If(idx == 1):
                        m.next = "AR"
            with m.State("AR"):
                m.d.comb += [sys.s_axil_araddr.eq(Cat(buf[0], buf[1])),
                             sys.s_axil_arvalid.eq(1)]
                with m.If(sys.s_axil_arready):
                    m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += sys.s_axil_rready.eq(1)
                with m.If(sys.s_axil_rvalid):
                    m.d.sync += [resp_req.eq(1), resp_kind.eq(RSP_REG),
                                 resp_val.eq(sys.s_axil_rdata)]
                    m.next = "CMD"

        # -- transmit: one message at a time (a response first, else an output beat) ------
        msg = Array(Signal(8, name=f"msg{i}") for i in range(10))
        mlen, midx = Signal(4), Signal(4)
        with m.If(midx == mlen):          # idle: load the next message
            with m.If(resp_req):
                m.d.sync += [msg[0].eq(resp_kind), midx.eq(0), resp_req.eq(0),
                             mlen.eq(0)]
                with m.If(resp_kind == RSP_REG):
                    m.d.sync += [msg[1 + i].eq(resp_val[8 * i: 8 * i + 8]) for i in range(4)]
                    m.d.sync += mlen.eq(5)
                with m.Else():
                    m.d.sync += mlen.eq(1)
            with m.Elif(sys.m_axis_tvalid):
                m.d.comb += sys.m_axis_tready.eq(1)
                m.d.sync += [msg[0].eq(RSP_DATA), midx.eq(0), mlen.eq(10),
                             msg[9].eq(sys.m_axis_tlast)]
                m.d.sync += [msg[1 + i].eq(sys.m_axis_tdata[8 * i: 8 * i + 8]) for i in range(8)]
        with m.Else():
            m.d.comb += [tx.data.eq(msg[midx]), tx.valid.eq(1)]
            with m.If(tx.ready):
                m.d.sync += midx.eq(midx + 1)
        # the AXI4-Lite write channel is unused over the link
        m.d.comb += [sys.s_axil_awvalid.eq(0), sys.s_axil_wvalid.eq(0),
                     sys.s_axil_bready.eq(1)]
        return m
