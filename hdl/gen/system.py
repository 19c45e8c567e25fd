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

Every field is read through a `data` view of golden/spec/regs.py's layouts (the header,
the destination word, SYNC's answer, the register words; hdl/gen/layouts.py), packet
types are an Amaranth enum of golden's PT, the global controller is an `m.FSM` with named
states, and the register read multiplexer is built from REGISTERS: a field or register
changed in golden/spec changes here, and waveforms show state and type names.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bfimna.golden.model.controller import COUNTER_KEYS
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import host_read_latency
from bfimna.golden.spec.regs import (
    BROADCAST,
    CONFIG_WORD,
    CONTROL_WORD,
    COUNTER_ADDR,
    COUNTER_STRIDE,
    DEST,
    GEOM_WORD,
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    HAS_PAYLOAD,
    HEADER,
    HEADER_RESERVED,
    ID_MAGIC,
    PT,
    REG_CONTROL,
    REGISTERS,
    STATUS_WORD,
    SYNC_WORD,
    TILE_COUNTER_BASE,
    TILE_COUNTER_STRIDE,
)
from bfimna.hdl.gen.controller import (
    HOST_READ,
    HOST_READ_COL,
    HOST_WRITE,
    HOST_WRITE_COL,
    TILE_MUTANTS,
    VERIFY,
    APController,
    Mutants,
    controller_module_name,
    verify_ports,
)
from bfimna.hdl.gen.layouts import const, data_layout, hdl_enum, reserved, view
from bfimna.hdl.gen.tile import field_move, field_move_amount

OUT_FIFO_DEPTH = 4
AXIL_ADDR_BITS = 16

# packet types as an Amaranth enum of the header's type field (golden/spec/regs.py: PT)
PacketType = hdl_enum(PT, HEADER["type"].width, "PacketType")

# an output beat as it waits in the output FIFO
OUT_BEAT = data.StructLayout({"tdata": 64, "tlast": 1})


# -- mutants of the packet parser and the global counters (tests only, never real RTL) ------
# One deliberate break each, so that tests/test_mutation.py can show the packet-rule table,
# the framing rows and the counter checks catch it (as the validator's drop_rule faults,
# hdl/gen/controller.py). System(cfg, fault=<name>) elaborates that one; VERIFY elaborates
# all of them and the tiles' (TILE_MUTANTS) behind the `tb_fault` port (a mutant schema).
PARSER_FAULTS = {
    "hdr_reserved": "reserved header bits are not checked",
    "hdr_type": "an unknown packet type is taken as a header-only packet",
    "instr_tile": "INSTR to a tile that does not exist is not caught",
    "instr_count": "INSTR with count 0 is not caught",
    "hdr_tile": "WRITE/READ/COPY/COPYCOL to a tile that does not exist is not caught",
    "hdr_count": "WRITE/READ/COPY/COPYCOL with count 0 is not caught",
    "hdr_ap": "an AP index past the MAPs is not caught",
    "hdr_rows": "rows past the AP's end are not caught",
    "hdr_cols": "columns past the AP's end are not caught",
    "copycol_needs_2d": "COPYCOL on a 1D CAP is not caught",
    "copycol_cols": "COPYCOL columns past the CAP's end are not caught",
    "tlast_on_header": "tlast on the header of a packet with a payload is not caught",
    "no_tlast_header_only": "a header-only packet without tlast is not caught",
    "dest_no_tlast": "a COPY destination word without tlast is not caught",
    "dest_reserved": "the destination word's reserved bits are not checked",
    "dest_tile": "a destination tile that does not exist is not caught",
    "dest_same_tile": "COPY to its own tile is not caught",
    "dest_ap": "a destination AP past the MAPs is not caught",
    "dest_rows": "destination rows past the AP's end are not caught",
    "dest_cols": "destination columns past the AP's end are not caught",
    "dest_copycol_cols": "COPYCOL destination columns past the CAP's end are not caught",
    "payload_short": "tlast before the last payload word is not caught",
    "payload_long": "no tlast on the last payload word is not caught",
}
GLOBAL_COUNTER_FAULTS = {
    **{f"gctr_skip_{k}": f"the global counter `{k}` is never incremented"
       for k in GLOBAL_COUNTERS},
    "gctr_words_in_stalls": "words_in counts every cycle with tvalid, taken or not",
    "gctr_host_writes_by_two": "a WRITE payload word adds 2 to host_writes",
    "gctr_saturate": "the global counters saturate at their top instead of wrapping",
}
SYSTEM_MUTANTS = {**PARSER_FAULTS, **GLOBAL_COUNTER_FAULTS}


def system_mutant_numbers() -> dict[str, int]:
    """The tb_fault value of each system mutant: after the tiles' (tile_mutant_numbers)."""
    return {name: i for i, name in enumerate(SYSTEM_MUTANTS, start=len(TILE_MUTANTS) + 1)}


class AxiResp(enum.Enum, shape=2):  # type: ignore[call-arg]  # Amaranth's EnumType takes shape=
    """AXI4-Lite response codes (the register map is golden/spec/regs.py's)."""

    OKAY = 0
    SLVERR = 2


def system_module_name(cfg: Config) -> str:
    tile = controller_module_name(cfg).removeprefix("bfimna_")
    return f"bfimna_sys_t{cfg.system.tiles}_{tile}"


def system_signature(cfg: Config, verify: bool = False) -> wiring.Signature:
    """The top-level ports. They stay flat (`s_axis_tdata`, `s_axil_araddr`, ...): the
    cocotbext-axi bus models and the board top bind to these names. `verify`: the VERIFY
    build's test ports first (hdl/gen/controller.py: verify_ports)."""
    return wiring.Signature({**(verify_ports(cfg) if verify else {}),
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


class System(wiring.Component):
    """The system top of `cfg`: T tiles, the global controller, the host interface.

    Ports (system_signature): `s_axis_*` in, packets; `m_axis_*` out, READ responses and
    SYNC words; `s_axil_*` the register port; `busy`, `error` status pins.
    """

    def __init__(self, cfg: Config, fault: str | None = None):
        """`fault` (tests only, never real RTL): a SYSTEM_MUTANTS or TILE_MUTANTS name
        breaks that one thing; VERIFY elaborates every one behind the `tb_fault` port
        and makes every counter loadable (`tb_load`, `tb_preset`)."""
        if fault is not None and fault not in SYSTEM_MUTANTS and fault not in TILE_MUTANTS \
                and fault != VERIFY:
            self._MustUse__silence = True
            raise ValueError(f"unknown fault {fault!r}; known: {VERIFY}, "
                             f"{', '.join(SYSTEM_MUTANTS)}, {', '.join(TILE_MUTANTS)}")
        self.cfg = cfg
        self.fault = fault
        super().__init__(system_signature(cfg, verify=fault == VERIFY))

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        T, K = cfg.system.tiles, cfg.tile.maps
        cap, mp = cfg.ap, cfg.map_ap
        cb = cap.counter_bits

        verify = self.fault == VERIFY
        mut = Mutants(system_mutant_numbers(), self.fault, self.tb_fault if verify else None)
        tile_fault = self.fault if self.fault in TILE_MUTANTS or verify else None
        tiles = []
        for t in range(T):
            tiles.append(APController(cfg, fault=tile_fault))
            m.submodules[f"tile{t}"] = tiles[-1]
            if verify:
                m.d.comb += [tiles[-1].tb_fault.eq(self.tb_fault),
                             tiles[-1].tb_load.eq(self.tb_load),
                             tiles[-1].tb_preset.eq(self.tb_preset)]
        tile_busy = Cat(*(t.busy for t in tiles))
        tile_err = Cat(*(t.error for t in tiles))

        # output beats wait in a FIFO (its streams carry OUT_BEAT) until the host takes them
        m.submodules.out_fifo = ofifo = SyncFIFO(width=OUT_BEAT.size, depth=OUT_FIFO_DEPTH)
        out_w, out_r = ofifo.w_stream, ofifo.r_stream
        out_wp, out_rp = data.View(OUT_BEAT, out_w.payload), data.View(OUT_BEAT, out_r.payload)
        m.d.comb += [self.m_axis_tvalid.eq(out_r.valid), self.m_axis_tdata.eq(out_rp.tdata),
                     self.m_axis_tlast.eq(out_rp.tlast), out_r.ready.eq(self.m_axis_tready)]

        counters = {k: Signal(cb, name=f"g_{k}") for k in GLOBAL_COUNTERS}

        def inc(key, by=1, wrong=None):
            return mut.bump(counters[key], by, f"gctr_skip_{key}", wrong)

        proto_err = Signal()

        # -- input beat -----------------------------------------------------------------
        w, last = self.s_axis_tdata, self.s_axis_tlast
        beat = Signal()
        m.d.comb += beat.eq(self.s_axis_tvalid & self.s_axis_tready)
        with m.If(mut.pick("gctr_words_in_stalls", beat, self.s_axis_tvalid)):
            m.d.sync += inc("words_in")

        # -- header checks (combinational on the incoming word), golden check_header -----
        def ap_rows(idx):
            return Mux(idx == 0, cap.rows, mp.rows)

        def ap_cols(idx):
            return Mux(idx == 0, cap.cols, mp.cols)

        hdr = view(HEADER, w, type=PacketType)      # the incoming word as a header
        i_width = Signal(7)
        m.d.comb += i_width.eq(hdr.wm1 + 1)
        rsv = Cat(*(hdr[k] for k in HEADER_RESERVED)).any()
        no_rsv = mut.pick("hdr_reserved", ~rsv, 1)
        field_ok = (mut.pick("hdr_ap", hdr.ap <= K, 1)
                    & mut.pick("hdr_rows", hdr.row + hdr.count <= ap_rows(hdr.ap), 1)
                    & mut.pick("hdr_cols", hdr.col + i_width <= ap_cols(hdr.ap), 1))
        tile_ok = mut.pick("hdr_tile", hdr.tile < T, 1)
        count_ok = mut.pick("hdr_count", hdr.count != 0, 1)
        colcol_ok = mut.pick("copycol_cols", hdr.row + hdr.count <= cap.cols, 1)
        hdr_ok = Signal()
        with m.Switch(hdr.type):
            with m.Case(PacketType.SYNC):
                m.d.comb += hdr_ok.eq(no_rsv)
            with m.Case(PacketType.INSTR):
                m.d.comb += hdr_ok.eq(
                    no_rsv & mut.pick("instr_tile", (hdr.tile < T) | (hdr.tile == BROADCAST), 1)
                    & mut.pick("instr_count", hdr.count != 0, 1))
            with m.Case(PacketType.WRITE, PacketType.READ, PacketType.COPY):
                m.d.comb += hdr_ok.eq(no_rsv & tile_ok & count_ok & field_ok)
            if cap.two_d:
                with m.Case(PacketType.COPYCOL):
                    m.d.comb += hdr_ok.eq(no_rsv & tile_ok & count_ok & colcol_ok)
            elif mut.on("copycol_needs_2d") is not False:
                with m.Case(PacketType.COPYCOL):
                    m.d.comb += hdr_ok.eq(mut.pick("copycol_needs_2d", 0, no_rsv & tile_ok
                                                   & count_ok & colcol_ok))
            if mut.on("hdr_type") is not False:
                with m.Default():
                    m.d.comb += hdr_ok.eq(mut.pick("hdr_type", 0, no_rsv))
        has_payload = Signal()
        m.d.comb += has_payload.eq(
            Cat(*(hdr.type == PacketType[t.name] for t in HAS_PAYLOAD)).any())

        # -- packet registers ------------------------------------------------------------
        h = Signal(data_layout(HEADER, type=PacketType), name="h")   # the packet's header
        h_width = Signal(7)                                          # its field width
        d = Signal(data_layout(DEST), name="d")                      # COPY's destination
        k = Signal(17)        # payload words taken / reads or bus cycles issued
        kr = Signal(17)       # READ responses received
        lat = host_read_latency(cfg.tile.port_register)   # a host read's data: cycles after
        inflight = Signal(lat)   # bit i: a READ issued i + 1 cycles ago (its data not back yet)
        issued = Signal()        # a READ issued this cycle
        # kept with k, so that no adder or comparator of k sits between the packet's state
        # and a tile's host port (the board's critical path ran through them):
        ra = Signal(16)       # h.row + k: the row (COPYCOL: column) of word k at the source
        wa = Signal(16)       # d.row + k - lat: COPY's destination row of word k - lat
        more = Signal()       # k < h.count
        wr_on = Signal()      # k >= lat: COPY writes word k - lat
        fin = Signal()        # k == h.count + lat - 1: COPY's last cycle

        def step():
            """Word k done: k + 1, and what is kept with it."""
            m.d.sync += [k.eq(k + 1), ra.eq(ra + 1), wa.eq(wa + 1),
                         more.eq(k + 1 < h.count), wr_on.eq(k + 1 >= lat),
                         fin.eq(k + 2 == h.count + lat)]

        # destination word checks (golden check_dest), against the latched header
        dw = view(DEST, w)                          # the incoming word as a destination
        dest_ok = Signal()
        base_ok = (mut.pick("dest_reserved", ~reserved(DEST, w), 1)
                   & mut.pick("dest_tile", dw.tile < T, 1)
                   & mut.pick("dest_same_tile", dw.tile != h.tile, 1))
        with m.If(h.type == PacketType.COPYCOL):
            m.d.comb += dest_ok.eq(
                base_ok & mut.pick("dest_copycol_cols", dw.row + h.count <= cap.cols, 1))
        with m.Else():
            m.d.comb += dest_ok.eq(
                base_ok & mut.pick("dest_ap", dw.ap <= K, 1)
                & mut.pick("dest_rows", dw.row + h.count <= ap_rows(dw.ap), 1)
                & mut.pick("dest_cols", dw.col + h_width <= ap_cols(dw.ap), 1))

        fmask = Signal(64)
        m.d.comb += fmask.eq(Cat(*((h_width > b) for b in range(64))))
        # a COPY word's move, bits [h.col, + width) of the source's word to [d.col, +
        # width) of the destination's: one shift by Wd + h.col - d.col (tile.py
        # field_move, as MOVW's) and a mask, both registered while the packet waits for the tiles
        # (WAITC, a cycle or more), so that a single shifter, not two in a row, lies
        # between a host read's data and the destination's host port (docs/fpga.md,
        # "Critical paths", after 21)
        Wd = len(tiles[0].host_rdata)
        c_sh = Signal(range(2 * Wd + 1), name="c_sh")
        c_mask = Signal(len(tiles[0].host_mask), name="c_mask")

        def bad(to_drop):
            """A bad packet: count it, flag it, drop up to its tlast (to_drop: 1 when this
            word was not its tlast)."""
            m.d.sync += [inc("bad_packets"), proto_err.eq(1)]
            if isinstance(to_drop, int):
                m.next = "DROP" if to_drop else "HDR"
            else:
                with m.If(to_drop):
                    m.next = "DROP"
                with m.Else():
                    m.next = "HDR"

        def end_of_payload(n):
            """After payload word k (this beat): done, truncated or overlong."""
            with m.If((k + 1 == n) & last):
                m.d.sync += inc("packets")
                m.next = "HDR"
            with m.Elif(mut.pick("payload_short", last, 0)):
                bad(0)
            with m.Elif(mut.pick("payload_long", k + 1 == n, 0)):
                bad(1)

        # -- instruction push: one tile, or every tile in lockstep -------------------------
        bcast = h.tile == BROADCAST
        all_ready = Cat(*(t.s_ready for t in tiles)).all()
        sel_ready = Signal()
        m.d.comb += sel_ready.eq(Mux(bcast, all_ready, Array(t.s_ready for t in tiles)[h.tile[:4]]
                                     if T > 1 else tiles[0].s_ready))
        for tile in tiles:
            m.d.comb += tile.s_data.eq(w)

        # -- tile host ports ---------------------------------------------------------------
        src_rdata = Signal(len(tiles[0].host_rdata))
        m.d.comb += src_rdata.eq(Array(t.host_rdata for t in tiles)[h.tile[:4]] if T > 1
                                 else tiles[0].host_rdata)
        src_rvalid = Signal()
        m.d.comb += src_rvalid.eq(Array(t.host_rvalid for t in tiles)[h.tile[:4]] if T > 1
                                  else tiles[0].host_rvalid)
        is_col = h.type == PacketType.COPYCOL
        rd_now, wr_now = Signal(), Signal()       # bus read from h.tile, write into d.tile
        rd_addr, wr_addr = Signal(16), Signal(16)
        wr_data, wr_mask = Signal(len(src_rdata)), Signal(len(tiles[0].host_mask))
        rd_op, wr_op = Signal(3), Signal(3)
        rd_ap, wr_ap = Signal(3), Signal(3)
        wr_tile = Signal(8)
        for t, tile in enumerate(tiles):
            with m.If(rd_now & (h.tile == t)):
                m.d.comb += [tile.host_op.eq(rd_op), tile.host_ap.eq(rd_ap),
                             tile.host_addr.eq(rd_addr)]
            with m.Elif(wr_now & (wr_tile == t)):
                m.d.comb += [tile.host_op.eq(wr_op), tile.host_ap.eq(wr_ap),
                             tile.host_addr.eq(wr_addr), tile.host_wdata.eq(wr_data),
                             tile.host_mask.eq(wr_mask)]

        idle_src = ~(tile_busy.bit_select(h.tile[:4], 1)) if T > 1 else ~tile_busy[0]
        idle_dst = ~(tile_busy.bit_select(d.tile[:4], 1)) if T > 1 else ~tile_busy[0]

        # -- the global controller -----------------------------------------------------------
        ofifo_room = Signal()
        m.d.comb += ofifo_room.eq(ofifo.level + sum(inflight[i] for i in range(lat))
                                  < OUT_FIFO_DEPTH)
        m.d.sync += inflight.eq(Cat(issued, inflight[:-1]))
        sync_word = Signal(data_layout(SYNC_WORD))
        m.d.comb += [sync_word.tag.eq(h.row), sync_word.proto_error.eq(proto_err),
                     sync_word.tile_errors.eq(tile_err)]

        with m.FSM(init="HDR", name="ctl") as fsm:
            with m.State("HDR"):
                # a header word: check it, latch it, go where its type leads. It is latched
                # whatever the checks say: only the states after a good header read it,
                # and the next header overwrites a bad one's. So the checks decide the
                # next state only, not the enable of every packet register (docs/fpga.md,
                # "Critical paths", after 22)
                m.d.comb += self.s_axis_tready.eq(1)
                with m.If(beat):
                    m.d.sync += [h.eq(w), h_width.eq(i_width), k.eq(0), kr.eq(0),
                                 ra.eq(hdr.row), more.eq(hdr.count != 0),
                                 wr_on.eq(0), fin.eq(hdr.count + lat == 1)]
                    with m.If(~hdr_ok):
                        bad(~last)
                    with m.Elif(mut.pick("tlast_on_header", has_payload & last, 0)):
                        bad(0)
                    with m.Elif(mut.pick("no_tlast_header_only", ~has_payload & ~last, 0)):
                        bad(1)
                    with m.Else():
                        with m.Switch(hdr.type):
                            with m.Case(PacketType.INSTR):
                                m.next = "INSTR"
                            with m.Case(PacketType.WRITE):
                                m.next = "WAITW"
                            with m.Case(PacketType.READ):
                                m.next = "WAITR"
                            with m.Case(PacketType.COPY, PacketType.COPYCOL):
                                m.next = "HDR2"
                            with m.Case(PacketType.SYNC):
                                m.next = "WAITS"
            with m.State("HDR2"):
                # COPY / COPYCOL: the destination word, which must carry tlast (latched
                # whatever the checks say, as the header)
                m.d.comb += self.s_axis_tready.eq(1)
                with m.If(beat):
                    m.d.sync += [d.eq(w), wa.eq(dw.row - lat)]
                    with m.If(mut.pick("dest_no_tlast", ~last, 0)):
                        bad(1)
                    with m.Elif(~dest_ok):
                        bad(0)
                    with m.Else():
                        m.next = "WAITC"
            with m.State("INSTR"):
                # instruction words into the tile's queue (every queue, for a broadcast)
                m.d.comb += self.s_axis_tready.eq(sel_ready)
                for t, tile in enumerate(tiles):
                    m.d.comb += tile.s_valid.eq(self.s_axis_tvalid & sel_ready
                                                & (bcast | (h.tile == t)))
                with m.If(beat):
                    m.d.sync += inc("instr_words")
                    step()
                    end_of_payload(h.count)
            with m.State("WAITW"):
                # WRITE: until the tile is idle
                with m.If(idle_src):
                    m.next = "WRITE"
            with m.State("WRITE"):
                # one data word per beat into the tile's host port
                m.d.comb += self.s_axis_tready.eq(1)
                m.d.comb += [wr_now.eq(beat), wr_tile.eq(h.tile), wr_op.eq(HOST_WRITE),
                             wr_ap.eq(h.ap), wr_addr.eq(ra),
                             wr_data.eq((w & fmask) << h.col), wr_mask.eq(fmask << h.col)]
                with m.If(beat):
                    m.d.sync += inc("host_writes", 1, ("gctr_host_writes_by_two", 2))
                    step()
                    end_of_payload(h.count)
            with m.State("WAITR"):
                # READ: until the tile is idle
                with m.If(idle_src):
                    m.next = "READ"
            with m.State("READ"):
                # one row read per cycle while the output FIFO has room; answers into it
                with m.If(more & ofifo_room):
                    m.d.comb += [rd_now.eq(1), rd_op.eq(HOST_READ), rd_ap.eq(h.ap),
                                 rd_addr.eq(ra)]
                    m.d.comb += issued.eq(1)
                    m.d.sync += inc("host_reads")
                    step()
                with m.If(src_rvalid):
                    m.d.comb += [out_w.valid.eq(1),
                                 out_wp.tdata.eq((src_rdata >> h.col)[:64] & fmask),
                                 out_wp.tlast.eq(kr + 1 == h.count)]
                    m.d.sync += kr.eq(kr + 1)
                    with m.If(kr + 1 == h.count):
                        m.d.sync += inc("packets")
                        m.next = "HDR"
            with m.State("WAITC"):
                # COPY / COPYCOL: until both tiles are idle
                # in [0, 2 Wd) for a COPY that passed its checks
                m.d.sync += [c_sh.eq(field_move_amount(Wd + h.col - d.col, Wd)),
                             c_mask.eq(fmask << d.col)]
                with m.If(idle_src & idle_dst):
                    m.next = "COPY"
            with m.State("COPY"):
                # read word (column) k from the source, write word k - lat (the one whose
                # data comes back now) into the destination: count + lat cycles
                m.d.sync += inc("copy_cycles")
                step()
                with m.If(more):
                    m.d.comb += [rd_now.eq(1), rd_ap.eq(Mux(is_col, 0, h.ap)),
                                 rd_op.eq(Mux(is_col, HOST_READ_COL, HOST_READ)),
                                 rd_addr.eq(ra)]
                with m.If(wr_on):
                    m.d.comb += [wr_now.eq(1), wr_tile.eq(d.tile),
                                 wr_ap.eq(Mux(is_col, 0, d.ap)),
                                 wr_op.eq(Mux(is_col, HOST_WRITE_COL, HOST_WRITE)),
                                 wr_addr.eq(wa)]
                    with m.If(is_col):
                        m.d.comb += wr_data.eq(src_rdata)
                        m.d.sync += inc("copy_cols")
                    with m.Else():
                        m.d.comb += [wr_data.eq(field_move(src_rdata, c_sh, Wd) & c_mask),
                                     wr_mask.eq(c_mask)]
                        m.d.sync += inc("copy_words")
                with m.If(fin):
                    m.d.sync += inc("packets")
                    m.next = "HDR"
            with m.State("WAITS"):
                # SYNC: once every tile is idle, its answer into the output FIFO
                with m.If(~tile_busy.any() & ofifo_room):
                    m.d.comb += [out_w.valid.eq(1), out_wp.tdata.eq(sync_word),
                                 out_wp.tlast.eq(1)]
                    m.d.sync += [inc("syncs"), inc("packets")]
                    m.next = "HDR"
            with m.State("DROP"):
                # a bad packet's words up to its tlast
                m.d.comb += self.s_axis_tready.eq(1)
                with m.If(beat):
                    m.d.sync += inc("dropped_words")
                    with m.If(last):
                        m.next = "HDR"

        m.d.comb += self.busy.eq(~fsm.ongoing("HDR") | tile_busy.any() | out_r.valid)
        m.d.comb += self.error.eq(proto_err | tile_err.any())
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += inc("words_out")
        if verify:      # test-only: every global counter loaded with tb_preset
            with m.If(self.tb_load):
                m.d.sync += [c.eq(self.tb_preset) for c in counters.values()]

        # -- AXI4-Lite register port: the read multiplexer, built from REGISTERS ----------
        rdata, rvalid = Signal(32), Signal()
        m.d.comb += [self.s_axil_rdata.eq(rdata), self.s_axil_rvalid.eq(rvalid),
                     self.s_axil_rresp.eq(AxiResp.OKAY), self.s_axil_arready.eq(~rvalid)]
        addr = self.s_axil_araddr
        ca = view(COUNTER_ADDR, addr)               # low/high half, counter, tile
        reg = Signal(32)
        tile_cnt = Signal(cb)
        for tile in tiles:
            m.d.comb += tile.csr_sel.eq(ca.index[:4])
        m.d.comb += tile_cnt.eq(Array(t.csr_data for t in tiles)[ca.tile] if T > 1
                                else tiles[0].csr_data)
        glob = Signal(cb)
        with m.Switch(ca.index):
            for i, key in enumerate(GLOBAL_COUNTERS):
                with m.Case(i):
                    m.d.comb += glob.eq(counters[key])

        def half(value):
            wide = Cat(value, Const(0, 64 - len(value))) if len(value) < 64 else value
            return Mux(ca.half, wide[32:64], wide[0:32])

        status = Signal(data_layout(STATUS_WORD))
        m.d.comb += [status.busy.eq(self.busy), status.proto_error.eq(proto_err),
                     status.tile_error.eq(tile_err.any())]
        values = {   # golden/model/system.py: System.register_values
            "ID": Const(ID_MAGIC, 32),
            "CONFIG": const(CONFIG_WORD, tiles=T, maps=K, dims=cap.dims, counter_bits=cb),
            "CAP_GEOM": const(GEOM_WORD, rows=cap.rows, cols=cap.cols),
            "MAP_GEOM": const(GEOM_WORD, rows=mp.rows, cols=mp.cols) if K else Const(0, 32),
            "STATUS": status,
            "TILE_BUSY": tile_busy,
            "TILE_ERROR": tile_err,
            "CONTROL": Const(0, 32),                # write-only
        }
        missing = {r.name for r in REGISTERS} ^ set(values)
        assert not missing, f"registers without a read value (or unknown): {missing}"
        for i, r in enumerate(REGISTERS):
            with (m.Elif if i else m.If)(addr == r.addr):
                m.d.comb += reg.eq(values[r.name])
        with m.Elif((addr >= GLOBAL_COUNTER_BASE)
                    & (addr < GLOBAL_COUNTER_BASE
                           + COUNTER_STRIDE * len(GLOBAL_COUNTERS))):
            m.d.comb += reg.eq(half(glob))
        with m.Elif((addr >= TILE_COUNTER_BASE)
                    & (addr < TILE_COUNTER_BASE + TILE_COUNTER_STRIDE * T)
                    & (addr[0:8] < COUNTER_STRIDE * len(COUNTER_KEYS))):
            m.d.comb += reg.eq(half(tile_cnt))
        with m.If(self.s_axil_arvalid & ~rvalid):
            m.d.sync += [rdata.eq(reg), rvalid.eq(1)]
        with m.Elif(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)

        # writes: CONTROL bit 0 clears the protocol error; every other address is read-only
        bvalid, bresp = Signal(), Signal(AxiResp)
        take_w = Signal()
        m.d.comb += [take_w.eq(self.s_axil_awvalid & self.s_axil_wvalid & ~bvalid),
                     self.s_axil_awready.eq(take_w), self.s_axil_wready.eq(take_w),
                     self.s_axil_bvalid.eq(bvalid), self.s_axil_bresp.eq(bresp)]
        with m.If(take_w):
            is_ctl = self.s_axil_awaddr == REG_CONTROL
            control = view(CONTROL_WORD, self.s_axil_wdata)
            m.d.sync += [bvalid.eq(1), bresp.eq(Mux(is_ctl, AxiResp.OKAY, AxiResp.SLVERR))]
            with m.If(is_ctl & self.s_axil_wstrb[0] & control.clear_error):
                m.d.sync += proto_err.eq(0)
        with m.Elif(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        return m
