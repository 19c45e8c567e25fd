"""Amaranth generator of the system top: T tiles on a shared bus, the global controller
and the host interface.

Host interface (docs/system.md):
- `s_axis_*`  AXI4-Stream slave, 64-bit: packets (header, payload, tlast on the last word)
- `m_axis_*`  AXI4-Stream master, 64-bit: READ responses and SYNC status words
- `s_axil_*`  AXI4-Lite slave, 32-bit data: identification, status, counters, control
- `busy`, `error`: the status bits as pins (for LEDs on a board)

Behaviour is specified by the golden system (golden/model/system.py): packet parsing, checks,
what each packet does and the global counters. The global controller is the only master
of the shared bus: it pushes instruction words into one tile's queue (or every tile's,
lockstep, for a broadcast) and, while the tiles a packet touches are idle, moves data
through their host ports (a word or a CAP column per cycle, reads and writes overlapped).
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import Config
from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.model.system import (BROADCAST, DEST, GLOBAL_COUNTER_BASE, GLOBAL_COUNTERS, HEADER,
                             ID_MAGIC, PT, REG_CAP_GEOM, REG_CONFIG, REG_CONTROL, REG_ID,
                             REG_MAP_GEOM, REG_STATUS, REG_TILE_BUSY, REG_TILE_ERROR,
                             TILE_COUNTER_BASE, TILE_COUNTER_STRIDE)
from bfimna.hdl.gen.controller import (HOST_READ, HOST_READ_COL, HOST_WRITE, HOST_WRITE_COL, APController,
                         controller_module_name)

OUT_FIFO_DEPTH = 4
AXIL_ADDR_BITS = 16

# the AXI4-Lite register map (REG_*, ID_MAGIC, counter bases) is golden/model/system.py's
RESP_OKAY, RESP_SLVERR = 0, 2


def system_module_name(cfg: Config) -> str:
    tile = controller_module_name(cfg).removeprefix("bfimna_")
    return f"bfimna_sys_t{cfg.system.tiles}_{tile}"


def system_signature(cfg: Config) -> wiring.Signature:
    return wiring.Signature({
        "s_axis_tdata": In(64), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
        "s_axis_tlast": In(1),
        "m_axis_tdata": Out(64), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        "m_axis_tlast": Out(1),
        "s_axil_awaddr": In(AXIL_ADDR_BITS), "s_axil_awprot": In(3), "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(32), "s_axil_wstrb": In(4), "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2), "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
        "s_axil_araddr": In(AXIL_ADDR_BITS), "s_axil_arprot": In(3), "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(32), "s_axil_rresp": Out(2), "s_axil_rvalid": Out(1),
        "s_axil_rready": In(1),
        "busy": Out(1), "error": Out(1),
    })


def _f(word, layout, name):
    lsb, width = layout[name]
    return word[lsb: lsb + width]


# global controller states
(S_HDR, S_HDR2, S_INSTR, S_WAITW, S_WRITE, S_WAITR, S_READ, S_WAITC, S_COPY, S_WAITS,
 S_DROP) = range(11)


class System(wiring.Component):
    def __init__(self, cfg: Config):
        self.cfg = cfg
        super().__init__(system_signature(cfg))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, K = cfg.system.tiles, cfg.tile.maps
        cap, mp = cfg.ap, cfg.map_ap
        cb = cap.counter_bits

        tiles = []
        for t in range(T):
            tiles.append(APController(cfg))
            m.submodules[f"tile{t}"] = tiles[-1]
        tile_busy = Cat(*(t.busy for t in tiles))
        tile_err = Cat(*(t.error for t in tiles))

        m.submodules.out_fifo = ofifo = SyncFIFO(width=65, depth=OUT_FIFO_DEPTH)
        m.d.comb += [self.m_axis_tvalid.eq(ofifo.r_rdy), self.m_axis_tdata.eq(ofifo.r_data[:64]),
                     self.m_axis_tlast.eq(ofifo.r_data[64]), ofifo.r_en.eq(self.m_axis_tready)]

        counters = {k: Signal(cb, name=f"g_{k}") for k in GLOBAL_COUNTERS}

        def inc(key, by=1):
            return counters[key].eq(counters[key] + by)

        proto_err = Signal()
        state = Signal(4)
        m.d.comb += self.busy.eq((state != S_HDR) | tile_busy.any() | ofifo.r_rdy)
        m.d.comb += self.error.eq(proto_err | tile_err.any())

        # -- input beat -----------------------------------------------------------------
        w, last = self.s_axis_tdata, self.s_axis_tlast
        beat = Signal()
        m.d.comb += beat.eq(self.s_axis_tvalid & self.s_axis_tready)
        with m.If(beat):
            m.d.sync += inc("words_in")

        # -- header checks (combinational on the incoming word), golden check_header -----
        def ap_rows(idx):
            return Mux(idx == 0, cap.rows, mp.rows)

        def ap_cols(idx):
            return Mux(idx == 0, cap.cols, mp.cols)

        i_type, i_tile, i_ap = _f(w, HEADER, "type"), _f(w, HEADER, "tile"), _f(w, HEADER, "ap")
        i_row, i_count, i_col = _f(w, HEADER, "row"), _f(w, HEADER, "count"), _f(w, HEADER, "col")
        i_width = Signal(7)
        m.d.comb += i_width.eq(_f(w, HEADER, "wm1") + 1)
        rsv = _f(w, HEADER, "rsv0") | _f(w, HEADER, "rsv1")
        field_ok = ((i_ap <= K) & (i_row + i_count <= ap_rows(i_ap))
                    & (i_col + i_width <= ap_cols(i_ap)))
        hdr_ok = Signal()
        with m.Switch(i_type):
            with m.Case(PT.SYNC):
                m.d.comb += hdr_ok.eq(~rsv)
            with m.Case(PT.INSTR):
                m.d.comb += hdr_ok.eq(~rsv & ((i_tile < T) | (i_tile == BROADCAST)) & (i_count != 0))
            with m.Case(PT.WRITE, PT.READ, PT.COPY):
                m.d.comb += hdr_ok.eq(~rsv & (i_tile < T) & (i_count != 0) & field_ok)
            with m.Case(PT.COPYCOL):
                if cap.two_d:
                    m.d.comb += hdr_ok.eq(~rsv & (i_tile < T) & (i_count != 0)
                                          & (i_row + i_count <= cap.cols))
        has_payload = Signal()
        m.d.comb += has_payload.eq((i_type == PT.INSTR) | (i_type == PT.WRITE)
                                   | (i_type == PT.COPY) | (i_type == PT.COPYCOL))

        # -- packet registers ------------------------------------------------------------
        h_type, h_tile, h_ap = Signal(4), Signal(8), Signal(3)
        h_row, h_count, h_col, h_width = Signal(16), Signal(16), Signal(9), Signal(7)
        d_tile, d_ap, d_row, d_col = Signal(8), Signal(3), Signal(16), Signal(9)
        k = Signal(17)        # payload words taken / reads or bus cycles issued
        kr = Signal(17)       # READ responses received
        inflight = Signal()   # a READ issued last cycle

        # destination word checks (golden check_dest), against the latched header
        dw_tile, dw_ap = _f(w, DEST, "tile"), _f(w, DEST, "ap")
        dw_row, dw_col = _f(w, DEST, "row"), _f(w, DEST, "col")
        dw_rest = Signal()
        m.d.comb += dw_rest.eq((w[0:4] != 0) | (w[15] != 0) | (w[32:48] != 0) | (w[57:64] != 0))
        dest_ok = Signal()
        base_ok = ~dw_rest & (dw_tile < T) & (dw_tile != h_tile)
        with m.If(h_type == PT.COPYCOL):
            m.d.comb += dest_ok.eq(base_ok & (dw_row + h_count <= cap.cols))
        with m.Else():
            m.d.comb += dest_ok.eq(base_ok & (dw_ap <= K) & (dw_row + h_count <= ap_rows(dw_ap))
                                   & (dw_col + h_width <= ap_cols(dw_ap)))

        fmask = Signal(64)
        m.d.comb += fmask.eq(Cat(*((h_width > b) for b in range(64))))

        def bad(to_drop):
            return [inc("bad_packets"), proto_err.eq(1), state.eq(Mux(to_drop, S_DROP, S_HDR))]

        def end_of_payload(n):
            """After payload word k (this beat): done, truncated or overlong."""
            with m.If((k + 1 == n) & last):
                m.d.sync += [inc("packets"), state.eq(S_HDR)]
            with m.Elif(last):
                m.d.sync += bad(0)
            with m.Elif(k + 1 == n):
                m.d.sync += bad(1)

        # -- instruction push: one tile, or every tile in lockstep -------------------------
        bcast = h_tile == BROADCAST
        all_ready = Cat(*(t.s_ready for t in tiles)).all()
        sel_ready = Signal()
        m.d.comb += sel_ready.eq(Mux(bcast, all_ready, Array(t.s_ready for t in tiles)[h_tile[:4]]
                                     if T > 1 else tiles[0].s_ready))
        for t, tile in enumerate(tiles):
            m.d.comb += [tile.s_data.eq(w),
                         tile.s_valid.eq((state == S_INSTR) & self.s_axis_tvalid & sel_ready
                                         & (bcast | (h_tile == t)))]

        # -- tile host ports ---------------------------------------------------------------
        src_rdata = Signal(len(tiles[0].host_rdata))
        m.d.comb += src_rdata.eq(Array(t.host_rdata for t in tiles)[h_tile[:4]] if T > 1
                                 else tiles[0].host_rdata)
        src_rvalid = Signal()
        m.d.comb += src_rvalid.eq(Array(t.host_rvalid for t in tiles)[h_tile[:4]] if T > 1
                                  else tiles[0].host_rvalid)
        is_col = h_type == PT.COPYCOL
        rd_now, wr_now = Signal(), Signal()       # bus read from h_tile, write into d_tile
        rd_addr, wr_addr = Signal(16), Signal(16)
        wr_data, wr_mask = Signal(len(src_rdata)), Signal(len(tiles[0].host_mask))
        rd_op, wr_op = Signal(3), Signal(3)
        rd_ap, wr_ap = Signal(3), Signal(3)
        wr_tile = Signal(8)
        for t, tile in enumerate(tiles):
            with m.If(rd_now & (h_tile == t)):
                m.d.comb += [tile.host_op.eq(rd_op), tile.host_ap.eq(rd_ap),
                             tile.host_addr.eq(rd_addr)]
            with m.Elif(wr_now & (wr_tile == t)):
                m.d.comb += [tile.host_op.eq(wr_op), tile.host_ap.eq(wr_ap),
                             tile.host_addr.eq(wr_addr), tile.host_wdata.eq(wr_data),
                             tile.host_mask.eq(wr_mask)]

        idle_src = ~(tile_busy.bit_select(h_tile[:4], 1)) if T > 1 else ~tile_busy[0]
        idle_dst = ~(tile_busy.bit_select(d_tile[:4], 1)) if T > 1 else ~tile_busy[0]

        # -- the global controller -----------------------------------------------------------
        m.d.comb += self.s_axis_tready.eq(
            (state == S_HDR) | (state == S_HDR2) | (state == S_WRITE) | (state == S_DROP)
            | ((state == S_INSTR) & sel_ready))
        ofifo_room = Signal()
        m.d.comb += ofifo_room.eq(ofifo.level + inflight < OUT_FIFO_DEPTH)
        m.d.sync += inflight.eq(0)

        with m.Switch(state):
            with m.Case(S_HDR):
                with m.If(beat):
                    with m.If(~hdr_ok):
                        m.d.sync += bad(~last)
                    with m.Elif(has_payload & last):
                        m.d.sync += bad(0)
                    with m.Elif(~has_payload & ~last):
                        m.d.sync += bad(1)
                    with m.Else():
                        m.d.sync += [h_type.eq(i_type), h_tile.eq(i_tile), h_ap.eq(i_ap),
                                     h_row.eq(i_row), h_count.eq(i_count), h_col.eq(i_col),
                                     h_width.eq(i_width), k.eq(0), kr.eq(0)]
                        with m.Switch(i_type):
                            with m.Case(PT.INSTR):
                                m.d.sync += state.eq(S_INSTR)
                            with m.Case(PT.WRITE):
                                m.d.sync += state.eq(S_WAITW)
                            with m.Case(PT.READ):
                                m.d.sync += state.eq(S_WAITR)
                            with m.Case(PT.COPY, PT.COPYCOL):
                                m.d.sync += state.eq(S_HDR2)
                            with m.Case(PT.SYNC):
                                m.d.sync += state.eq(S_WAITS)
            with m.Case(S_HDR2):
                with m.If(beat):
                    with m.If(~last):
                        m.d.sync += bad(1)
                    with m.Elif(~dest_ok):
                        m.d.sync += bad(0)
                    with m.Else():
                        m.d.sync += [d_tile.eq(dw_tile), d_ap.eq(dw_ap), d_row.eq(dw_row),
                                     d_col.eq(dw_col), state.eq(S_WAITC)]
            with m.Case(S_INSTR):
                with m.If(beat):
                    m.d.sync += [inc("instr_words"), k.eq(k + 1)]
                    end_of_payload(h_count)
            with m.Case(S_WAITW):
                with m.If(idle_src):
                    m.d.sync += state.eq(S_WRITE)
            with m.Case(S_WRITE):
                m.d.comb += [wr_now.eq(beat), wr_tile.eq(h_tile), wr_op.eq(HOST_WRITE),
                             wr_ap.eq(h_ap), wr_addr.eq(h_row + k),
                             wr_data.eq((w & fmask) << h_col), wr_mask.eq(fmask << h_col)]
                with m.If(beat):
                    m.d.sync += [inc("host_writes"), k.eq(k + 1)]
                    end_of_payload(h_count)
            with m.Case(S_WAITR):
                with m.If(idle_src):
                    m.d.sync += state.eq(S_READ)
            with m.Case(S_READ):
                with m.If((k < h_count) & ofifo_room):
                    m.d.comb += [rd_now.eq(1), rd_op.eq(HOST_READ), rd_ap.eq(h_ap),
                                 rd_addr.eq(h_row + k)]
                    m.d.sync += [k.eq(k + 1), inflight.eq(1), inc("host_reads")]
                with m.If(src_rvalid):
                    m.d.sync += kr.eq(kr + 1)
                    with m.If(kr + 1 == h_count):
                        m.d.sync += [inc("packets"), state.eq(S_HDR)]
            with m.Case(S_WAITC):
                with m.If(idle_src & idle_dst):
                    m.d.sync += state.eq(S_COPY)
            with m.Case(S_COPY):
                m.d.sync += [k.eq(k + 1), inc("copy_cycles")]
                with m.If(k < h_count):
                    m.d.comb += [rd_now.eq(1), rd_ap.eq(Mux(is_col, 0, h_ap)),
                                 rd_op.eq(Mux(is_col, HOST_READ_COL, HOST_READ)),
                                 rd_addr.eq(h_row + k)]
                with m.If(k != 0):
                    m.d.comb += [wr_now.eq(1), wr_tile.eq(d_tile),
                                 wr_ap.eq(Mux(is_col, 0, d_ap)),
                                 wr_op.eq(Mux(is_col, HOST_WRITE_COL, HOST_WRITE)),
                                 wr_addr.eq(d_row + k - 1)]
                    with m.If(is_col):
                        m.d.comb += wr_data.eq(src_rdata)
                        m.d.sync += inc("copy_cols")
                    with m.Else():
                        m.d.comb += [wr_data.eq(((src_rdata >> h_col) & fmask) << d_col),
                                     wr_mask.eq(fmask << d_col)]
                        m.d.sync += inc("copy_words")
                with m.If(k == h_count):
                    m.d.sync += [inc("packets"), state.eq(S_HDR)]
            with m.Case(S_WAITS):
                with m.If(~tile_busy.any() & ofifo_room):
                    m.d.sync += [inc("syncs"), inc("packets"), state.eq(S_HDR)]
            with m.Case(S_DROP):
                with m.If(beat):
                    m.d.sync += inc("dropped_words")
                    with m.If(last):
                        m.d.sync += state.eq(S_HDR)

        # responses into the output FIFO: READ data, or the SYNC status word
        sync_word = Cat(h_row, proto_err, Const(0, 15), tile_err, Const(0, 32 - T))
        with m.If((state == S_READ) & src_rvalid):
            m.d.comb += [ofifo.w_en.eq(1),
                         ofifo.w_data.eq(Cat((src_rdata >> h_col)[:64] & fmask,
                                             kr + 1 == h_count))]
        with m.Elif((state == S_WAITS) & ~tile_busy.any() & ofifo_room):
            m.d.comb += [ofifo.w_en.eq(1), ofifo.w_data.eq(Cat(sync_word[:64], 1))]
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += inc("words_out")

        # -- AXI4-Lite register port -------------------------------------------------------
        rdata, rvalid = Signal(32), Signal()
        m.d.comb += [self.s_axil_rdata.eq(rdata), self.s_axil_rvalid.eq(rvalid),
                     self.s_axil_rresp.eq(RESP_OKAY), self.s_axil_arready.eq(~rvalid)]
        addr = self.s_axil_araddr
        word_sel = addr[2]                          # low/high half of a counter
        cidx = addr[3:8]                            # counter index
        reg = Signal(32)
        tile_cnt = Signal(cb)
        for t, tile in enumerate(tiles):
            m.d.comb += tile.csr_sel.eq(cidx[:4])
        m.d.comb += tile_cnt.eq(Array(t.csr_data for t in tiles)[addr[8:12]] if T > 1
                                else tiles[0].csr_data)
        glob = Signal(cb)
        with m.Switch(cidx):
            for i, key in enumerate(GLOBAL_COUNTERS):
                with m.Case(i):
                    m.d.comb += glob.eq(counters[key])

        def half(value):
            wide = Cat(value, Const(0, 64 - len(value))) if len(value) < 64 else value
            return Mux(word_sel, wide[32:64], wide[0:32])

        with m.If(addr == REG_ID):
            m.d.comb += reg.eq(ID_MAGIC)
        with m.Elif(addr == REG_CONFIG):
            m.d.comb += reg.eq(Cat(Const(T, 8), Const(K, 4), Const(cap.dims, 4), Const(cb, 8)))
        with m.Elif(addr == REG_CAP_GEOM):
            m.d.comb += reg.eq(Cat(Const(cap.rows, 16), Const(cap.cols, 16)))
        with m.Elif(addr == REG_MAP_GEOM):
            m.d.comb += reg.eq(Cat(Const(mp.rows, 16), Const(mp.cols, 16)) if K else 0)
        with m.Elif(addr == REG_STATUS):
            m.d.comb += reg.eq(Cat(self.busy, proto_err, tile_err.any()))
        with m.Elif(addr == REG_TILE_BUSY):
            m.d.comb += reg.eq(tile_busy)
        with m.Elif(addr == REG_TILE_ERROR):
            m.d.comb += reg.eq(tile_err)
        with m.Elif((addr >= GLOBAL_COUNTER_BASE)
                    & (addr < GLOBAL_COUNTER_BASE + 8 * len(GLOBAL_COUNTERS))):
            m.d.comb += reg.eq(half(glob))
        with m.Elif((addr >= TILE_COUNTER_BASE) & (addr < TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * T)
                    & (addr[0:8] < 8 * len(COUNTER_KEYS))):
            m.d.comb += reg.eq(half(tile_cnt))
        with m.If(self.s_axil_arvalid & ~rvalid):
            m.d.sync += [rdata.eq(reg), rvalid.eq(1)]
        with m.Elif(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)

        # writes: CONTROL bit 0 clears the protocol error; every other address is read-only
        bvalid, bresp = Signal(), Signal(2)
        take_w = Signal()
        m.d.comb += [take_w.eq(self.s_axil_awvalid & self.s_axil_wvalid & ~bvalid),
                     self.s_axil_awready.eq(take_w), self.s_axil_wready.eq(take_w),
                     self.s_axil_bvalid.eq(bvalid), self.s_axil_bresp.eq(bresp)]
        with m.If(take_w):
            is_ctl = self.s_axil_awaddr == REG_CONTROL
            m.d.sync += [bvalid.eq(1), bresp.eq(Mux(is_ctl, RESP_OKAY, RESP_SLVERR))]
            with m.If(is_ctl & self.s_axil_wstrb[0] & self.s_axil_wdata[0]):
                m.d.sync += proto_err.eq(0)
        with m.Elif(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        return m
