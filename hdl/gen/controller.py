"""Amaranth generator of the tile: the AP controller (instruction queue, validation,
microcode ROM and sequencer) around one computing AP (the CAP) and K memory APs (MAPs).

Behaviour is specified by the golden controller (golden/model/controller.py: `expand`, the
exact micro-op stream of each instruction, and `Controller`, the counters). The per-bit
passes come from the same table (golden/spec/microcode.py: LUTS), packed here into a ROM.

Timing: the sequencer issues one micro-op per cycle. In the cycle it issues the last
micro-op of an instruction it pops the next one from the queue (when there is one), so
consecutive instructions follow with no idle cycle. An illegal instruction (golden
validate() says why) issues one NOP, sets the sticky `error` flag, counts in `errors`
and is skipped. Instructions arrive on a valid/ready stream (`s_valid`, `s_ready`,
`s_data`); the host reads counters through `csr_sel`/`csr_data` and may read or write
rows of any AP and columns of the CAP through the host port while the tile is idle
(`busy` low). Transfers between the tile's APs (XROWS, MOVW) are instructions, specified
by golden/model/tile.py.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import (
    GENERIC,
    MAX_WIDTH,
    MOVW_FORMAT,
    OPCODES,
    RESERVED,
    RESERVED_COLS,
    ROWS_FORMAT,
    WORD_BITS,
    XROWS_FORMAT,
    Opc,
    OpSpec,
    rule_names,
    usable_cols,
)
from bfimna.golden.spec.microcode import LUTS
from bfimna.golden.spec.uops import COUNTER_KEYS, Op, addr_bits, col_bits
from bfimna.hdl.gen.ap import APCore
from bfimna.hdl.gen.layouts import reserved, view
from bfimna.hdl.gen.mapmem import MapMemory

# -- microcode ROM: every LUT's passes, one entry per micro-op --------------------------
ROLES = ("c", "x", "y", "k")
LUT_NAMES = sorted(LUTS)
LUT_ID = {name: i for i, name in enumerate(LUT_NAMES)}
KIND_CMP, KIND_CMPA, KIND_WR = 0, 1, 2


def _rom():
    entries, starts = [], []
    for name in LUT_NAMES:
        starts.append(len(entries))
        groups = LUTS[name].groups
        for gi, g in enumerate(groups):
            for ci, cmp in enumerate(g.compares):
                entries.append((KIND_CMP if ci == 0 else KIND_CMPA, dict(cmp), False))
            entries.append((KIND_WR, dict(g.write), gi == len(groups) - 1))
    words = []
    for kind, bits, last in entries:
        w = kind
        for ri, role in enumerate(ROLES):
            if role in bits:
                w |= 1 << (2 + 2 * ri)                 # role takes part (mask)
                w |= bits[role] << (3 + 2 * ri)        # its value (key)
        w |= int(last) << 10
        words.append(w)
    return words, starts


ROM_WORDS, LUT_START = _rom()

# sequencer phases
(PH_ONE, PH_CLR0, PH_CLR1, PH_LUT, PH_COPYB, PH_CLAMPC, PH_CLAMPW, PH_RELU, PH_SHRR,
 PH_MV, PH_XFER) = range(11)


def controller_module_name(cfg: Config) -> str:
    ap, t = cfg.ap, cfg.tile
    return (f"bfimna_tile{ap.dims}d_r{ap.rows}_c{ap.cols}_n{ap.counter_bits}"
            f"_q{cfg.ctrl.queue_depth}_k{t.maps}_m{t.map_rows}x{t.map_cols}"
            + ("b" if t.map_memory == "bram" else ""))


def host_widths(cfg: Config) -> dict[str, int]:
    """Widths of the tile's host port: data (rows of any AP, columns of the CAP), mask,
    address (a row of any AP or a CAP column)."""
    ap, mp = cfg.ap, cfg.map_ap
    data = max(ap.cols, mp.cols if cfg.tile.maps else 0, ap.rows if ap.two_d else 0)
    mask = max(ap.cols, mp.cols if cfg.tile.maps else 0)
    addr = max(addr_bits(ap.rows), addr_bits(mp.rows), col_bits(ap.cols))
    return {"data": data, "mask": mask, "addr": addr}


def verify_ports(cfg: Config) -> dict:
    """The VERIFY build's extra inputs: `tb_fault` selects a mutant (0 none) and
    `tb_load` loads every counter with `tb_preset` (to start them near their top)."""
    return {"tb_fault": In(MUTANT_PORT_BITS), "tb_load": In(1),
            "tb_preset": In(cfg.ap.counter_bits)}


def controller_signature(cfg: Config, verify: bool = False) -> wiring.Signature:
    hw = host_widths(cfg)
    return wiring.Signature({**(verify_ports(cfg) if verify else {}),
        "s_valid": In(1), "s_data": In(WORD_BITS), "s_ready": Out(1),
        "host_op": In(3), "host_ap": In(3), "host_addr": In(hw["addr"]),
        "host_wdata": In(hw["data"]), "host_mask": In(hw["mask"]),
        "host_rdata": Out(hw["data"]), "host_rvalid": Out(1),
        "csr_sel": In(4), "csr_data": Out(cfg.ap.counter_bits),
        "busy": Out(1), "error": Out(1),
    })


# host port operations (`host_op`), honoured while the tile is idle
HOST_NONE, HOST_READ, HOST_WRITE, HOST_READ_COL, HOST_WRITE_COL = 0, 1, 2, 3, 4


FAULTS = {
    "no_carry_clear": "the carry column is not cleared before an add/sub/compare chain",
    "last_bit_skipped": "bit-serial loops stop one bit early",
}


DROP_RULE = "drop_rule"

# -- mutants of MOVW and the counters (tests only, never in real RTL) -----------------------
# Each is one deliberate break, so that tests/test_mutation.py can show the random tile
# programs (MOVW) and the counter checks catch it. A fault name elaborates that break alone;
# VERIFY elaborates every one of them behind a select port (a mutant schema: one build,
# the mutant chosen per run), tb_fault == MUTANT_NUMBER[name], 0 for none.
MOVW_FAULTS = {
    "movw_stride_ignored": "MOVW reads consecutive source rows, whatever XROWS' stride",
    "movw_dst_strided": "MOVW steps the destination row by the stride instead of 1",
    "movw_last_word_lost": "MOVW ends one cycle early: its last word is never written",
    "movw_one_more": "MOVW runs one cycle too long: one more destination row is written",
    "movw_first_dst_skipped": "MOVW writes its first word one destination row too far",
    "movw_swapped": "MOVW moves in the wrong direction (destination AP to source AP)",
    "movw_src_field_ignored": "MOVW takes the field from column 0 of the source, not a",
    "movw_dst_field_ignored": "MOVW writes the field at column 0 of the destination, not d",
    "movw_width_short": "MOVW moves n - 1 bits of each word",
}
COUNTER_FAULTS = {
    **{f"ctr_skip_{k}": f"the tile counter `{k}` is never incremented" for k in COUNTER_KEYS},
    "ctr_movw_by_one": "a MOVW cycle adds 1 to row_transfers even when it reads and writes",
    "ctr_cmpa_by_two": "a CMPA micro-op adds 2 to compares",
    "ctr_saturate": "the tile counters saturate at their top instead of wrapping",
}
TILE_MUTANTS = {**MOVW_FAULTS, **COUNTER_FAULTS}
VERIFY = "verify"
MUTANT_PORT_BITS = 8     # tb_fault: 0 none, 1..255 a mutant (tile and system numbered together)


def tile_mutant_numbers() -> dict[str, int]:
    """The tb_fault value of each tile mutant (the system's follow: system_mutant_numbers)."""
    return {name: i for i, name in enumerate(TILE_MUTANTS, start=1)}


class Mutants:
    """Which test-only faults a generator elaborates: none (real RTL: every `pick` returns
    the good value, the Verilog is unchanged), one (`fault` is its name) or all, each
    behind `sel == its number` (the VERIFY build)."""

    def __init__(self, numbers: dict[str, int], fault: str | None, sel=None):
        self.numbers, self.fault, self.sel = numbers, fault, sel

    def on(self, name: str):
        """True / False when decided at elaboration, else the select comparison."""
        assert name in self.numbers, name
        if self.sel is not None:
            return self.sel == self.numbers[name]
        return self.fault == name

    def pick(self, name: str, good, bad):
        on = self.on(name)
        if on is False:
            return good
        if on is True:
            return bad
        return Mux(on, bad, good)

    def bump(self, counter, by, skip: str, wrong=None):
        """counter + by, as a statement, under the counter mutants: `skip` keeps it, a
        `wrong` (name, amount) adds that amount instead, ctr_saturate / gctr_saturate stops
        at the top instead of wrapping."""
        width = len(counter)
        addends = by if isinstance(by, tuple) else (by,)
        if wrong is not None and self.on(wrong[0]) is not False:
            addends = (self.pick(wrong[0], _sum(addends), wrong[1]),)
        new = counter
        for a in addends:
            new = new + a
        sat = next((n for n in ("ctr_saturate", "gctr_saturate") if n in self.numbers), None)
        if sat is not None and self.on(sat) is not False:
            top = Const((1 << width) - 1, width)
            new = self.pick(sat, new, Mux(new[width:].any(), top, new[:width]))
        return counter.eq(self.pick(skip, new, counter))


def _sum(values):
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


def validator_faults() -> list[str]:
    """One fault per check of the RTL validator, `drop_rule:<opcode>:<rule>`: the
    validator elaborated without that check (`reserved` or a hardware rule of the
    opcode's OPCODES entry, golden/spec/isa.py: rule_names)."""
    return [f"{DROP_RULE}:{op.name}:{name}" for op, spec in OPCODES.items()
            for name, r in zip(rule_names(spec), (None, *spec.rules), strict=True)
            if r is None or r.hw]


def _dropped(fault: str | None) -> tuple[Opc, str] | None:
    """(opcode, check) a `drop_rule:` fault removes, else None."""
    if fault is None or not fault.startswith(DROP_RULE + ":"):
        return None
    _, op, name = fault.split(":", 2)
    return Opc[op], name


class APController(wiring.Component):
    """`fault` deliberately breaks the sequencer (FAULTS), drops one check of the
    validator (`validator_faults()`) or breaks MOVW or a counter (TILE_MUTANTS); VERIFY
    elaborates every TILE_MUTANTS fault behind the `tb_fault` port and makes the counters
    loadable (verify_ports). Only so that the tests can show the testbenches catch it;
    never used to emit real RTL."""

    def __init__(self, cfg: Config, fault: str | None = None):
        if fault is not None and fault not in FAULTS and fault not in TILE_MUTANTS \
                and fault != VERIFY and fault not in validator_faults():
            self._MustUse__silence = True
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}, "
                             f"{', '.join(TILE_MUTANTS)}, {VERIFY} and "
                             f"{DROP_RULE}:<opcode>:<rule> (validator_faults())")
        self.cfg = cfg
        self.fault = fault
        super().__init__(controller_signature(cfg, verify=fault == VERIFY))

    def elaborate(self, platform):
        m = Module()
        cfg, ap = self.cfg, self.cfg.ap
        C, R = ap.cols, ap.rows
        verify = self.fault == VERIFY
        mut = Mutants(tile_mutant_numbers(), self.fault, self.tb_fault if verify else None)
        CY = C - RESERVED_COLS

        m.submodules.core = core = APCore(ap)
        K = cfg.tile.maps
        mp = cfg.map_ap
        maps = []
        for k in range(K):
            maps.append(MapMemory(mp) if cfg.tile.map_memory == "bram" else APCore(mp))
            m.submodules[f"map{k + 1}"] = maps[-1]
        aps = [core] + maps
        m.submodules.queue = queue = SyncFIFOBuffered(width=WORD_BITS, depth=cfg.ctrl.queue_depth)
        m.d.comb += [queue.w_data.eq(self.s_data), queue.w_en.eq(self.s_valid),
                     self.s_ready.eq(queue.w_rdy)]

        # -- decode and validate the queue head (views of golden/spec/isa.py's formats) ---
        w = queue.r_data
        head = view(GENERIC, w)
        h_op, h_m, h_imm = head.op, head.m, head.imm
        h_legal = Signal()
        # transfer row registers (XROWS)
        xr = view(XROWS_FORMAT, w)
        x_srow, x_drow, x_stride = (Signal.like(xr.srow), Signal.like(xr.drow),
                                    Signal.like(xr.stride))
        self._validate(m, h_legal, w, cfg, (x_srow, x_drow, x_stride), _dropped(self.fault))

        # -- instruction register: the word in progress, seen through its formats -------
        iw = Signal(WORD_BITS)
        ins, movw = view(GENERIC, iw), view(MOVW_FORMAT, iw)
        op, s, n, mm = ins.op, ins.s, ins.n, ins.m
        illegal = Signal()

        active = Signal()
        ph = Signal(4)
        step = Signal(3)
        p = Signal(range(len(ROM_WORDS) + 1))
        i = Signal(7)
        j = Signal(7)
        xi = Signal(17)                 # MOVW cycle: reads word xi, writes word xi - 1
        src_ptr, dst_ptr = Signal(16), Signal(16)
        digits_pos, digits_neg = Signal(18), Signal(18)
        dsign = Signal()   # sign of the MAC digit in progress (1: subtract)

        # -- host port -------------------------------------------------------------------
        busy = Signal()
        # w_level covers a word written this cycle that r_rdy shows only later
        m.d.comb += [busy.eq(active | queue.r_rdy | (queue.w_level != 0)), self.busy.eq(busy)]
        host_rd_pending, host_rd_col = Signal(), Signal()
        host_rd_ap = Signal(3)
        m.d.sync += host_rd_pending.eq(0)
        with m.If(host_rd_col):
            if ap.two_d:
                m.d.comb += [self.host_rdata.eq(core.rcol),
                             self.host_rvalid.eq(host_rd_pending & core.rcol_valid)]
        with m.Else():
            with m.Switch(host_rd_ap):
                for k, a_ in enumerate(aps):
                    with m.Case(k):
                        m.d.comb += [self.host_rdata.eq(a_.rdata),
                                     self.host_rvalid.eq(host_rd_pending & a_.rd_valid)]

        # -- the micro-op this cycle: registers, loaded one cycle ahead ------------------
        # micro_op() is a pure function of the sequencer state (the instruction word, ph,
        # step, p, i, j, illegal, dsign). Below, the sequencer computes it for the state
        # it moves to and registers it with that state, so the arrays see a micro-op
        # straight from flip-flops, in the same cycle as before (no added cycle: golden's
        # cycle model is unchanged), and the sequencer's next-state logic reads the
        # registered last_pass / cnt instead of decoding the ROM itself.
        u_op, u_key, u_mask = Signal(4), Signal(C), Signal(C)
        u_col, u_col2, u_shift = Signal(core.col.shape() if ap.two_d else 1), \
            Signal(core.col2.shape() if ap.two_d else 1), \
            Signal(core.shift.shape() if ap.two_d else 1)
        u_addr, u_addr2 = Signal(addr_bits(R)), Signal(addr_bits(R))
        u_last_pass = Signal()  # PH_LUT: this micro-op is the last pass of the LUT
        u_cnt = Signal(7)       # PH_LUT: bits the LUT loop runs over
        last = Signal()   # this micro-op is the last of the instruction

        def onehot(col):
            """C-bit one-hot of a column number (a decoder, not a wide shifter)."""
            return Cat(*((col == k) for k in range(C)))

        def rng_mask(start, width):
            """C-bit mask of columns [start, start + width)."""
            return Cat(*((start <= k) & (start + width > k) for k in range(C)))

        def micro_op(iw_, ph, step, p, i, j, illegal, dsign):
            """The micro-op of a sequencer state (a pure function of it), as signals:
            op, key, mask, addr, addr2, col, col2, shift, last_pass, cnt."""
            ins_, rows_ = view(GENERIC, iw_), view(ROWS_FORMAT, iw_)
            op, s, n, mm, d, a, b, imm = (ins_.op, ins_.s, ins_.n, ins_.m, ins_.d, ins_.a,
                                          ins_.b, ins_.imm)
            lo, hi = rows_.lo, rows_.hi
            g_op, g_key, g_mask = Signal(4, name="g_op"), Signal(C, name="g_key"), \
                Signal(C, name="g_mask")
            g_col, g_col2, g_shift = (Signal.like(u_col, name="g_col"),
                                      Signal.like(u_col2, name="g_col2"),
                                      Signal.like(u_shift, name="g_shift"))
            g_addr, g_addr2 = Signal.like(u_addr, name="g_addr"), \
                Signal.like(u_addr2, name="g_addr2")

            # LUT selection and role columns for (op, step, i, j)
            lut = Signal(range(len(LUT_NAMES)))
            cnt = Signal(7)
            xcol, ycol, kcol = Signal(10), Signal(10), Signal(10)
            ncl = Mux(i < n - 1, i, n - 1)  # min(i, n-1): sign extension of an operand
            imm_bit = (imm >> i)[0]  # imm is signed: bits above 15 repeat the sign
            with m.Switch(op):
                with m.Case(Opc.ADD, Opc.SUB):
                    m.d.comb += [lut.eq(Mux(op == Opc.SUB, LUT_ID["sub"], LUT_ID["add"])),
                                 cnt.eq(n), xcol.eq(a + i), ycol.eq(d + i)]
                with m.Case(Opc.ADDI):
                    m.d.comb += [lut.eq(Mux(imm_bit, LUT_ID["inc1"], LUT_ID["inc"])),
                                 cnt.eq(n), ycol.eq(d + i)]
                with m.Case(Opc.SUBI):
                    m.d.comb += [lut.eq(Mux(imm_bit, LUT_ID["dec1"], LUT_ID["dec"])),
                                 cnt.eq(n), ycol.eq(d + i)]
                with m.Case(Opc.MUL):
                    m.d.comb += [ycol.eq(d + j + i), kcol.eq(b + j)]
                    with m.If(s):
                        m.d.comb += [lut.eq(Mux(j == mm - 1, LUT_ID["sub_if"],
                                                LUT_ID["add_if"])),
                                     cnt.eq(n + mm - j), xcol.eq(a + ncl)]
                    with m.Else():
                        m.d.comb += [lut.eq(Mux(i < n, LUT_ID["add_if"], LUT_ID["inc"])),
                                     cnt.eq(n + 1), xcol.eq(a + i)]
                with m.Case(Opc.MAC):
                    m.d.comb += [cnt.eq(mm - j), ycol.eq(d + j + i)]
                    with m.If(s | (i < n)):
                        m.d.comb += [lut.eq(Mux(dsign, LUT_ID["sub"], LUT_ID["add"])),
                                     xcol.eq(Mux(s, a + ncl, a + i))]
                    with m.Else():
                        m.d.comb += lut.eq(Mux(dsign, LUT_ID["dec"], LUT_ID["inc"]))
                with m.Case(Opc.MAX, Opc.MIN):
                    m.d.comb += cnt.eq(n)
                    with m.If(step == 1):
                        m.d.comb += lut.eq(Mux(s & (i == n - 1), LUT_ID["borrow_top"],
                                               LUT_ID["borrow"]))
                        with m.If(op == Opc.MAX):
                            m.d.comb += [xcol.eq(a + i), ycol.eq(d + i)]
                        with m.Else():
                            m.d.comb += [xcol.eq(d + i), ycol.eq(a + i)]
                    with m.Else():
                        m.d.comb += [lut.eq(LUT_ID["cmov"]), xcol.eq(a + i), ycol.eq(d + i)]
                with m.Case(Opc.SHR):
                    m.d.comb += [lut.eq(LUT_ID["inc"]), cnt.eq(n - mm), ycol.eq(d + mm + i)]
                with m.Case(Opc.REDUCE):
                    m.d.comb += [lut.eq(LUT_ID["add"]), cnt.eq(n), xcol.eq(a + i),
                                 ycol.eq(d + i)]

            rom = Array(Const(wd, 11) for wd in ROM_WORDS)
            starts = Array(Const(x, p.shape()) for x in LUT_START)
            entry = Signal(11)
            m.d.comb += entry.eq(rom[starts[lut] + p])
            role_col = {"c": Const(CY, 10), "x": xcol, "y": ycol, "k": kcol}
            lut_key, lut_mask = Signal(C), Signal(C)
            m.d.comb += [
                lut_mask.eq(_or([Mux(entry[2 + 2 * ri], onehot(role_col[r]), 0)
                                 for ri, r in enumerate(ROLES)])),
                lut_key.eq(_or([Mux(entry[2 + 2 * ri] & entry[3 + 2 * ri],
                                    onehot(role_col[r]), 0)
                                for ri, r in enumerate(ROLES)])),
            ]
            lut_kind = entry[0:2]

            # clear masks and CLAMP ranges
            clr_mask = Signal(C)
            with m.Switch(op):
                with m.Case(Opc.CLEAR, Opc.COPY):
                    m.d.comb += clr_mask.eq(rng_mask(d, n))
                with m.Case(Opc.MUL):
                    m.d.comb += clr_mask.eq(Mux(step == 0, rng_mask(d, n + mm), 0)
                                            | onehot(CY))
                with m.Default():
                    m.d.comb += clr_mask.eq(0 if self.fault == "no_carry_clear"
                                            else onehot(CY))
            sign_col = d + n - 1
            clamp_t0 = Mux(s, mm - 1, mm)   # CLAMP loop index t runs over i (+ this)

            with m.Switch(ph):
                with m.Case(PH_ONE):
                    with m.If(~illegal & (op == Opc.ROWS)):
                        m.d.comb += [g_op.eq(Op.ROWEN), g_addr.eq(lo), g_addr2.eq(hi)]
                    with m.Else():  # NOP, XROWS, MAC by 0, an illegal word
                        m.d.comb += g_op.eq(Op.NOP)
                with m.Case(PH_CLR0):
                    m.d.comb += g_op.eq(Op.CMP)
                with m.Case(PH_CLR1):
                    m.d.comb += [g_op.eq(Op.WR), g_mask.eq(clr_mask)]
                with m.Case(PH_LUT):
                    m.d.comb += [g_op.eq(Mux(lut_kind == KIND_WR, Op.WR,
                                             Mux(lut_kind == KIND_CMPA, Op.CMPA, Op.CMP))),
                                 g_key.eq(lut_key), g_mask.eq(lut_mask)]
                with m.Case(PH_COPYB):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(onehot(a + i)),
                                     g_mask.eq(onehot(a + i))]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_key.eq(onehot(d + i)),
                                     g_mask.eq(onehot(d + i))]
                with m.Case(PH_CLAMPC):
                    t = clamp_t0 + i
                    m.d.comb += [g_op.eq(Mux(i == 0, Op.CMP, Op.CMPA))]
                    with m.If(~s):
                        m.d.comb += [g_key.eq(onehot(d + t)), g_mask.eq(onehot(d + t))]
                    with m.Elif(step == 0):
                        m.d.comb += [g_key.eq(onehot(d + t)),
                                     g_mask.eq(onehot(sign_col) | onehot(d + t))]
                    with m.Else():
                        m.d.comb += [g_key.eq(onehot(sign_col)),
                                     g_mask.eq(onehot(sign_col) | onehot(d + t))]
                with m.Case(PH_CLAMPW):
                    m.d.comb += [g_op.eq(Op.WR), g_mask.eq(rng_mask(d, n))]
                    with m.If(~s):
                        m.d.comb += g_key.eq(rng_mask(d, mm))
                    with m.Elif(step == 0):
                        m.d.comb += g_key.eq(rng_mask(d, mm - 1))
                    with m.Else():
                        m.d.comb += g_key.eq(rng_mask(d + mm - 1, n - mm + 1))
                with m.Case(PH_RELU):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(onehot(sign_col)),
                                     g_mask.eq(onehot(sign_col))]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_mask.eq(rng_mask(d, n))]
                with m.Case(PH_SHRR):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(onehot(d + mm - 1)),
                                     g_mask.eq(onehot(d + mm - 1))]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_key.eq(onehot(CY)),
                                     g_mask.eq(onehot(CY))]
                if ap.two_d:
                    with m.Case(PH_MV):
                        m.d.comb += [g_op.eq(Op.MVCOL), g_col.eq(a + i), g_col2.eq(d + i),
                                     g_shift.eq(Const(1, 1) << j)]
            return {"op": g_op, "key": g_key, "mask": g_mask, "addr": g_addr,
                    "addr2": g_addr2, "col": g_col, "col2": g_col2, "shift": g_shift,
                    "last_pass": entry[10], "cnt": cnt}

        # CLAMP loop bounds of the current instruction (the phase logic below)
        clamp_t0 = Mux(s, mm - 1, mm)
        clamp_tn = Mux(s, n - 1, n)

        # -- MAC digits: the lowest nonzero CSD digit below m, and taking it ------------
        def lowest_digit(pos, neg, limit, name):
            found, k_out = Signal(name=f"{name}_any"), Signal(5, name=f"{name}_pos")
            rem = (pos | neg) & ((Const(1, 1) << limit) - 1)[:18]
            for k in reversed(range(18)):
                with m.If(rem[k]):
                    m.d.comb += [found.eq(1), k_out.eq(k)]
            return found, k_out

        def take_digit(pos, neg, k):
            """Remove digit k from the remaining digits; its sign (digit_sign) decides add
            or sub."""
            bit = (Const(1, 1) << k)[:18]
            return [digits_pos.eq(pos & ~bit), digits_neg.eq(neg & ~bit)]

        def digit_sign(neg, k):
            return (neg >> k)[0]

        dig_any, dig_pos = lowest_digit(digits_pos, digits_neg, mm, "dig")

        # -- next state ------------------------------------------------------------------
        # what happens when the current phase ends: the next phase of this instruction
        # (through `goto`) or the end of the instruction (`last`)
        nxt_ph, nxt_step, nxt_i, nxt_p, nxt_j = (Signal(4), Signal(3), Signal(7), Signal.like(p),
                                                 Signal(7))
        phase_end = Signal()
        m.d.comb += [nxt_ph.eq(ph), nxt_step.eq(step), nxt_i.eq(i), nxt_p.eq(p), nxt_j.eq(j)]

        def goto(phase, step_=None, j_=None):
            stmts = [nxt_ph.eq(phase), nxt_i.eq(0), nxt_p.eq(0)]
            if step_ is not None:
                stmts.append(nxt_step.eq(step_))
            if j_ is not None:
                stmts.append(nxt_j.eq(j_))
            return stmts

        def finish():  # the micro-op this cycle ends the instruction
            return [last.eq(1)]

        with m.Switch(ph):
            with m.Case(PH_ONE):
                m.d.comb += phase_end.eq(1)
            with m.Case(PH_CLR0):
                m.d.comb += goto(PH_CLR1)
            with m.Case(PH_CLR1, PH_CLAMPW):
                m.d.comb += phase_end.eq(1)
            with m.Case(PH_LUT):
                with m.If(u_last_pass):
                    with m.If(i + 1 == u_cnt - (1 if self.fault == "last_bit_skipped" else 0)):
                        m.d.comb += phase_end.eq(1)
                    with m.Else():
                        m.d.comb += [nxt_i.eq(i + 1), nxt_p.eq(0)]
                with m.Else():
                    m.d.comb += nxt_p.eq(p + 1)
            with m.Case(PH_COPYB):
                with m.If(p == 1):
                    with m.If(i + 1 == n):
                        m.d.comb += phase_end.eq(1)
                    with m.Else():
                        m.d.comb += [nxt_i.eq(i + 1), nxt_p.eq(0)]
                with m.Else():
                    m.d.comb += nxt_p.eq(1)
            with m.Case(PH_RELU, PH_SHRR):
                with m.If(p == 1):
                    m.d.comb += phase_end.eq(1)
                with m.Else():
                    m.d.comb += nxt_p.eq(1)
            with m.Case(PH_CLAMPC):
                with m.If(clamp_t0 + i + 1 == clamp_tn):
                    m.d.comb += phase_end.eq(1)
                with m.Else():
                    m.d.comb += nxt_i.eq(i + 1)
            with m.Case(PH_MV):
                with m.If(i + 1 == n):
                    m.d.comb += phase_end.eq(1)
                with m.Else():
                    m.d.comb += nxt_i.eq(i + 1)
            with m.Case(PH_XFER):
                m.d.comb += phase_end.eq(mut.pick(
                    "movw_last_word_lost",
                    mut.pick("movw_one_more", xi == movw.count, xi == movw.count + 1),
                    xi + 1 == movw.count))

        # per-opcode phase sequences (mirror golden _expand)
        with m.If(phase_end):
            with m.If(illegal | (ph == PH_ONE)):
                m.d.comb += finish()
            with m.Else():
                with m.Switch(op):
                    with m.Case(Opc.CLEAR, Opc.RELU):
                        m.d.comb += finish()
                    with m.Case(Opc.COPY):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_COPYB)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.ADD, Opc.SUB, Opc.ADDI, Opc.SUBI):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_LUT)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.MUL):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_LUT, step_=1)
                        with m.Elif(j + 1 == mm):
                            m.d.comb += finish()
                        with m.Elif(s):
                            m.d.comb += goto(PH_CLR0, j_=j + 1)
                        with m.Else():
                            m.d.comb += goto(PH_LUT, j_=j + 1)
                    with m.Case(Opc.MAC):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_LUT)
                        with m.Elif(dig_any):
                            m.d.comb += goto(PH_CLR0, j_=dig_pos)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.MAX, Opc.MIN):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_LUT, step_=1)
                        with m.Elif(step == 1):
                            m.d.comb += goto(PH_LUT, step_=2)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.CLAMP):
                        with m.If(ph == PH_CLAMPC):
                            m.d.comb += goto(PH_CLAMPW)
                        with m.Elif(s & (step == 0)):
                            m.d.comb += goto(PH_CLAMPC, step_=1)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.SHR):
                        with m.If(ph == PH_CLR1):
                            m.d.comb += goto(PH_SHRR)
                        with m.Elif(ph == PH_SHRR):
                            m.d.comb += goto(PH_LUT)
                        with m.Else():
                            m.d.comb += finish()
                    with m.Case(Opc.REDUCE):
                        with m.If(ph == PH_MV):
                            m.d.comb += goto(PH_CLR0)
                        with m.Elif(ph == PH_CLR1):
                            m.d.comb += goto(PH_LUT)
                        with m.Elif(j + 1 == mm):
                            m.d.comb += finish()
                        with m.Else():
                            m.d.comb += goto(PH_MV, j_=j + 1)
                    with m.Default():
                        m.d.comb += finish()

        # -- load: the next instruction starts right after the last micro-op ------------
        load = Signal()
        m.d.comb += load.eq(queue.r_rdy & (~active | last))
        m.d.comb += queue.r_en.eq(load)

        # initial phase of the head instruction (h_ph0: as if it were legal)
        h_ph, h_ph0, h_j = Signal(4), Signal(4), Signal(7)
        h_dpos, h_dneg = Signal(18), Signal(18)
        x = Signal(signed(19))
        xh = Signal(signed(19))
        x3 = Signal(signed(19))
        c3 = Signal(19)
        m.d.comb += [x.eq(h_imm), xh.eq(x >> 1), x3.eq(x + xh), c3.eq(xh ^ x3),
                     h_dpos.eq((x3 & c3)[:18]), h_dneg.eq((xh & c3)[:18])]
        h_first_any, h_first = lowest_digit(h_dpos, h_dneg, h_m, "h_first")
        with m.Switch(h_op):
            with m.Case(Opc.NOP, Opc.ROWS, Opc.XROWS):
                m.d.comb += h_ph0.eq(PH_ONE)
            with m.Case(Opc.MOVW):
                m.d.comb += h_ph0.eq(PH_XFER)
            with m.Case(Opc.RELU):
                m.d.comb += h_ph0.eq(PH_RELU)
            with m.Case(Opc.CLAMP):
                m.d.comb += h_ph0.eq(PH_CLAMPC)
            with m.Case(Opc.REDUCE):
                m.d.comb += h_ph0.eq(PH_MV)
            with m.Case(Opc.MAC):
                m.d.comb += [h_ph0.eq(Mux(h_first_any, PH_CLR0, PH_ONE)), h_j.eq(h_first)]
            with m.Default():
                m.d.comb += h_ph0.eq(PH_CLR0)
        m.d.comb += h_ph.eq(Mux(h_legal, h_ph0, PH_ONE))

        # dsign after a load (h_dsign) or a step of this instruction (c_dsign)
        h_dsign, c_dsign = Signal(), Signal()
        take_next = Signal()    # a MAC moves on to its next digit
        m.d.comb += [take_next.eq((op == Opc.MAC) & (nxt_ph == PH_CLR0) & (ph != PH_CLR0)),
                     h_dsign.eq(Mux(h_op == Opc.MAC, digit_sign(h_dneg, h_first), dsign)),
                     c_dsign.eq(Mux(take_next, digit_sign(digits_neg, dig_pos), dsign))]

        with m.If(load):
            m.d.sync += [active.eq(1), iw.eq(w), illegal.eq(~h_legal), ph.eq(h_ph), step.eq(0),
                         i.eq(0), p.eq(0), j.eq(h_j), digits_pos.eq(h_dpos),
                         digits_neg.eq(h_dneg), dsign.eq(h_dsign)]
            with m.If(h_op == Opc.MAC):
                # the first digit is consumed now
                m.d.sync += take_digit(h_dpos, h_dneg, h_first)
            with m.If(h_legal & (h_op == Opc.XROWS)):
                m.d.sync += [x_srow.eq(xr.srow), x_drow.eq(xr.drow), x_stride.eq(xr.stride)]
            m.d.sync += [xi.eq(0), src_ptr.eq(x_srow), dst_ptr.eq(x_drow)]
        with m.Elif(last):
            m.d.sync += active.eq(0)
        with m.Elif(active):
            m.d.sync += [ph.eq(nxt_ph), step.eq(nxt_step), i.eq(nxt_i), p.eq(nxt_p), j.eq(nxt_j),
                         dsign.eq(c_dsign)]
            with m.If(ph == PH_XFER):
                m.d.sync += [xi.eq(xi + 1), src_ptr.eq(
                    src_ptr + mut.pick("movw_stride_ignored", x_stride, 1))]
                with m.If(mut.pick("movw_first_dst_skipped", xi != 0, 1)):
                    m.d.sync += dst_ptr.eq(dst_ptr + mut.pick("movw_dst_strided", 1, x_stride))
            with m.If(take_next):
                m.d.sync += take_digit(digits_pos, digits_neg, dig_pos)

        # ... and the micro-op of the next state, registered with it: that of the head
        # instruction's first state (as if legal, in parallel with the validator, which
        # only turns it into the NOP of an illegal word) or of this instruction's next
        # state (a micro-op register nobody reads when the tile goes idle)
        g_head = micro_op(w, h_ph0, Const(0, step.shape()), Const(0, p.shape()),
                          Const(0, i.shape()), h_j, Const(0, 1), h_dsign)
        g_cont = micro_op(iw, nxt_ph, nxt_step, nxt_p, nxt_i, nxt_j, illegal, c_dsign)
        u_regs = {"op": u_op, "key": u_key, "mask": u_mask, "addr": u_addr, "addr2": u_addr2,
                  "col": u_col, "col2": u_col2, "shift": u_shift, "last_pass": u_last_pass,
                  "cnt": u_cnt}
        with m.If(load):
            m.d.sync += [r.eq(Mux(h_legal, g_head[k], 0)) for k, r in u_regs.items()]
        with m.Else():
            m.d.sync += [r.eq(g_cont[k]) for k, r in u_regs.items()]

        # -- MOVW: read word xi of the source AP, write word xi-1 into the destination ---
        xfer = Signal()
        m.d.comb += xfer.eq(active & (ph == PH_XFER))
        # xi < count (a word left to read) and xi != 0 (a word to write), registered with
        # xi: the comparators stay off the path into the arrays' port multiplexers
        x_rd, x_wr, rd_left, wr_on = Signal(), Signal(), Signal(), Signal()
        with m.If(load):
            m.d.sync += [rd_left.eq(view(MOVW_FORMAT, w).count != 0), wr_on.eq(0)]
        with m.Elif(active & ~last & (ph == PH_XFER)):
            m.d.sync += [rd_left.eq(xi + 1 < movw.count), wr_on.eq(1)]
        m.d.comb += [x_rd.eq(xfer & rd_left), x_wr.eq(xfer & wr_on)]
        sap = mut.pick("movw_swapped", movw.sap, movw.dap)
        dap = mut.pick("movw_swapped", movw.dap, movw.sap)
        wmax = max(a_.cols for a_ in [ap, mp])
        src_word = Signal(wmax)
        with m.Switch(sap):
            for k, a_ in enumerate(aps):
                with m.Case(k):
                    m.d.comb += src_word.eq(a_.rdata)
        # word k of the destination: bits [d, d + n) = bits [a, a + n) of the source word,
        # ((src >> a) & n low bits) << d, as one shift by a - d of the word above wmax
        # zeros, and a mask; the shift and the mask depend on the instruction alone, so
        # they are registered when it is loaded, off the path from the source
        # AP's read register to the destination's rows
        def movw_shift(iw_):
            mv = view(MOVW_FORMAT, iw_)
            n_moved = mut.pick("movw_width_short", mv.n, mv.n - 1)
            fmask = Cat(*((n_moved > k) for k in range(min(wmax, MAX_WIDTH))))
            x_a = mut.pick("movw_src_field_ignored", mv.a, 0)
            x_d = mut.pick("movw_dst_field_ignored", mv.d, 0)
            sh = Signal(signed(len(mv.a) + 2))
            m.d.comb += sh.eq(wmax + x_a - x_d)
            # d beyond the word shifts every bit out (an illegal MOVW, which never runs)
            return Mux((sh < 0) | (sh >= 2 * wmax), 2 * wmax, sh), (fmask << x_d)[:wmax]

        x_sh, x_mask = Signal(range(2 * wmax + 1)), Signal(wmax)
        sh_h, mask_h = movw_shift(w)    # the head's, registered when it is loaded
        with m.If(load):
            m.d.sync += [x_sh.eq(sh_h), x_mask.eq(mask_h)]
        x_data = Signal(wmax)
        m.d.comb += x_data.eq((Cat(Const(0, wmax), src_word) >> x_sh)[:wmax] & x_mask)

        # -- drive the APs: the sequencer's micro-op, MOVW, or the host port when idle -----
        issuing = active  # the sequencer issues a micro-op in every active cycle
        host_idle = ~active & ~queue.r_rdy
        for k, a_ in enumerate(aps):
            with m.If(x_rd & (sap == k)):
                m.d.comb += [a_.op.eq(Op.RDROW), a_.addr.eq(src_ptr)]
            with m.Elif(x_wr & (dap == k)):
                m.d.comb += [a_.op.eq(Op.WRROW), a_.addr.eq(dst_ptr), a_.data.eq(x_data),
                             a_.mask.eq(x_mask)]
            if k == 0:
                with m.Elif(active & ~xfer):
                    m.d.comb += [core.op.eq(u_op), core.key.eq(u_key), core.mask.eq(u_mask),
                                 core.addr.eq(u_addr), core.addr2.eq(u_addr2)]
                    if ap.two_d:
                        m.d.comb += [core.col.eq(u_col), core.col2.eq(u_col2),
                                     core.shift.eq(u_shift)]
            with m.Elif(host_idle & (self.host_ap == k)):
                with m.Switch(self.host_op):
                    with m.Case(HOST_READ):
                        m.d.comb += [a_.op.eq(Op.RDROW), a_.addr.eq(self.host_addr)]
                        m.d.sync += [host_rd_pending.eq(1), host_rd_ap.eq(k),
                                     host_rd_col.eq(0)]
                    with m.Case(HOST_WRITE):
                        m.d.comb += [a_.op.eq(Op.WRROW), a_.addr.eq(self.host_addr),
                                     a_.data.eq(self.host_wdata), a_.mask.eq(self.host_mask)]
                    if k == 0 and ap.two_d:
                        with m.Case(HOST_READ_COL):
                            m.d.comb += [core.op.eq(Op.RDCOL), core.col.eq(self.host_addr)]
                            m.d.sync += [host_rd_pending.eq(1), host_rd_col.eq(1)]
                        with m.Case(HOST_WRITE_COL):
                            m.d.comb += [core.op.eq(Op.WRCOL), core.col.eq(self.host_addr),
                                         core.vec.eq(self.host_wdata)]

        # -- counters and status ------------------------------------------------------------
        err = Signal()
        m.d.comb += self.error.eq(err)
        cb = ap.counter_bits
        counters = {k: Signal(cb, name=f"ctl_{k}") for k in COUNTER_KEYS}

        def bump(key, by=1, wrong=None):   # counters[key] + by (wraps), under the mutants
            return mut.bump(counters[key], by, f"ctr_skip_{key}", wrong)

        with m.If(issuing):
            m.d.sync += bump("cycles")
            with m.If(last):
                with m.If(illegal):
                    m.d.sync += [bump("errors"), err.eq(1)]
                with m.Else():
                    m.d.sync += bump("instructions")
        with m.If(xfer):
            m.d.sync += bump("row_transfers", (x_rd, x_wr), ("ctr_movw_by_one", 1))
        with m.Elif(issuing):
            with m.Switch(u_op):
                with m.Case(Op.CMP, Op.CMPA):
                    m.d.sync += bump("compares", 1,
                                     ("ctr_cmpa_by_two", Mux(u_op == Op.CMPA, 2, 1)))
                with m.Case(Op.WR):
                    m.d.sync += bump("writes")
                with m.Case(Op.RDROW, Op.WRROW):
                    m.d.sync += bump("row_transfers")
                with m.Case(Op.RDCOL, Op.WRCOL, Op.MVCOL):
                    m.d.sync += bump("col_transfers")
                with m.Case(Op.ROWEN):
                    m.d.sync += bump("rowen")
                with m.Case(Op.NOP):
                    m.d.sync += bump("nops")
        if verify:      # test-only: every counter loaded with tb_preset (near its top)
            with m.If(self.tb_load):
                m.d.sync += [c.eq(self.tb_preset) for c in counters.values()]
        with m.Switch(self.csr_sel):
            for idx, key in enumerate(COUNTER_KEYS):
                with m.Case(idx):
                    m.d.comb += self.csr_data.eq(counters[key])
            with m.Case(len(COUNTER_KEYS)):
                m.d.comb += self.csr_data.eq(Cat(busy, err))
        # the micro-op stream, for simulator testbenches (internal signals, not ports)
        self.uop = {"valid": issuing & ~xfer, "op": u_op, "key": u_key, "mask": u_mask,
                    "addr": u_addr, "addr2": u_addr2}
        if ap.two_d:
            self.uop.update(col=u_col, col2=u_col2, shift=u_shift)
        return m

    @staticmethod
    def _validate(m, legal, w, cfg, xrows, drop=None):
        """Combinational mirror of golden isa.validate(): per opcode, no reserved bit set
        and every rule of its OPCODES entry, evaluated on a view of the word. `drop`
        (a fault: opcode, check name) leaves that one check out."""
        t = _Target(cfg, xrows)
        with m.Switch(view(GENERIC, w).op):
            for op, spec in OPCODES.items():
                skip = drop[1] if drop is not None and drop[0] == op else None
                ok = rules_hold(spec, view(spec.fmt, w), t, skip)
                if ok is False:
                    continue                  # never legal on this tile: no case, illegal
                with m.Case(op):
                    bad = Const(0, 1) if skip == RESERVED else reserved(spec.fmt, w)
                    m.d.comb += legal.eq(~bad if ok is True else ~bad & ok)


class _Target:
    """The tile as the rules of golden/spec/isa.py see it (golden: isa.Target), in
    signals: AP-dependent limits are multiplexers on the AP index."""

    def __init__(self, cfg: Config, xrows):
        self.ap, self.maps, self.xrows = cfg.ap, cfg.tile.maps, xrows
        self.tile = self.maps > 0
        self._map = cfg.map_ap

    def _per_ap(self, index, value):
        if isinstance(index, int):
            return value(self.ap if index == 0 else self._map, index)
        return Mux(index == 0, value(self.ap, 0), value(self._map, 1))

    def usable(self, index):
        return self._per_ap(index, usable_cols)

    def rows(self, index):
        return self._per_ap(index, lambda ap, _k: ap.rows)


def rules_hold(spec: OpSpec, ins, t, skip: str | None = None):
    """AND of the hardware-checked rules of `spec` on `ins` (a view of the word): an
    Amaranth value, or a Python bool when the rules decide statically. `skip`: the name
    of a rule left out (a `drop_rule:` fault)."""
    cols = spec.columns(ins)
    out = True
    for r in spec.rules:
        if not r.hw or r.name == skip:
            continue
        v = r.ok(ins, t, cols)
        if v is False:
            return False
        if v is not True:
            out = v if out is True else out & v
    return out


def _or(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
