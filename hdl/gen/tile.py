"""Amaranth generator of the tile, as named parts: one computing AP (the CAP) and K memory
APs (MAPs) around the tile controller, which is five sub-components, each a
`wiring.Component` with its own signature and its own simulator test
(tests/test_tile_parts.py) against the golden model:

    InstrQueue   the instruction queue and its decoder/validator: the head word seen
                 through golden/spec/isa.py's formats, legal or not (golden validate(),
                 computed as the word enters and stored with it), and the transfer row
                 registers XROWS sets
    Sequencer    the instruction register, the sequencer state (phase, step, p, i, j, the
                 MAC digits) and the microcode ROM: the micro-op of each state,
                 registered one cycle ahead (golden/model/controller.py: expand)
    TransferUnit MOVW: read word xi of the source AP, write word xi - 1 of the destination
                 (golden/model/tile.py: Tile._movw)
    HostPort     host reads and writes of the APs' rows and of the CAP's columns while the
                 tile is idle, and the read data back
    Counters     the tile counters, the sticky error flag and the CSR read mux
                 (golden Controller.counters)

`Tile` composes them with the APCores; its ports, signature and emitted module name are
those of the controller top the system, the harnesses and the board flow use
(hdl/gen/controller.py re-exports it as `APController`). docs/architecture.md, "The tile's
parts", tabulates the parts' members and what each is checked against.

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

from amaranth import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bfimna.golden.spec.config import APConfig, Config
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
    host_read_latency,
    rule_names,
    usable_cols,
)
from bfimna.golden.spec.microcode import LUTS
from bfimna.golden.spec.uops import COUNTER_KEYS, OP_BITS, Op, addr_bits, col_bits, port_widths
from bfimna.hdl.gen.ap import APCore
from bfimna.hdl.gen.layouts import data_layout, hdl_enum, reserved, view
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
# one ROM word, by field: the micro-op kind, per role (c, x, y, k) whether it takes part
# and its bit, and whether this is the last pass of its LUT
ROM_ENTRY = data.StructLayout({
    "kind": 2, **{f"{part}_{r}": 1 for r in ROLES for part in ("use", "bit")},
    "last": 1})


class Phase(enum.Enum, shape=4):  # type: ignore[call-arg]  # Amaranth's EnumType takes shape=
    """The sequencer's phases (its state machine; the micro-op of each is `micro_op`)."""
    ONE = 0      # one micro-op: NOP, ROWS (ROWEN), XROWS, MAC by 0, an illegal word
    CLR0 = 1     # clear: tag every enabled row ...
    CLR1 = 2     # ... and write zeros under a mask (the carry, a field)
    LUT = 3      # bit loop over a LUT's passes from the microcode ROM
    COPYB = 4    # COPY: compare a bit, write it
    CLAMPC = 5   # CLAMP: the compares of one bound
    CLAMPW = 6   # CLAMP: the write of that bound
    RELU = 7     # RELU: compare the sign, write zeros
    SHRR = 8     # SHR: the rounding bit into the carry
    MV = 9       # REDUCE: column moves (2D), each an MVCOL and its NOP
    XFER = 10    # MOVW: the transfer unit runs


# the phase an instruction starts in (the sequencer's load: the head's first state), by
# opcode; a MAC starts in CLR0, or in ONE when its immediate has no digit, and every other
# opcode in CLR0. FIRST_PHASES: all of them, the only phases built for the head's state
START_PHASE = {Opc.NOP: Phase.ONE, Opc.ROWS: Phase.ONE, Opc.XROWS: Phase.ONE,
               Opc.MOVW: Phase.XFER, Opc.RELU: Phase.RELU, Opc.CLAMP: Phase.CLAMPC,
               Opc.REDUCE: Phase.MV}
FIRST_PHASES = frozenset(START_PHASE.values()) | {Phase.ONE, Phase.CLR0}

# the phases by their former constant names (hdl/gen/controller.py's readers)
(PH_ONE, PH_CLR0, PH_CLR1, PH_LUT, PH_COPYB, PH_CLAMPC, PH_CLAMPW, PH_RELU, PH_SHRR,
 PH_MV, PH_XFER) = (int(p.value) for p in Phase.__members__.values())

# golden's opcodes and micro-op codes as Amaranth enums (same names and values)
Opcode = hdl_enum(Opc, GENERIC["op"].width)
UOpcode = hdl_enum(Op, OP_BITS)


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




# -- the parts' signatures: the interfaces between them, with named fields --------------
def head_layout() -> data.FlexibleLayout:
    """The instruction word as golden/spec/isa.py's GENERIC format, `op` an Opcode."""
    return data_layout(GENERIC, op=Opcode)


# the transfer row registers XROWS sets (their widths: XROWS_FORMAT's fields)
XROWS_REGS = data.StructLayout({k: XROWS_FORMAT[k].width for k in ("srow", "drow", "stride")})


def uop_layout(ap: APConfig) -> data.StructLayout:
    """One micro-op of the CAP, the fields the sequencer drives (golden/spec/uops.py:
    port_widths; `op` a UOpcode)."""
    w = port_widths(ap)
    names = ("op", "key", "mask", "addr", "addr2") + (("col", "col2", "shift") if ap.two_d
                                                      else ())
    return data.StructLayout({k: UOpcode if k == "op" else w[k] for k in names})


def queue_head_signature() -> wiring.Signature:
    """The head of the instruction queue, as the decoder presents it (the queue's side):
    `word` decoded through the formats, `valid` (a word is there), `legal` (golden
    validate() on the word and the XROWS registers); the sequencer answers `pop`."""
    return wiring.Signature({"word": Out(head_layout()), "valid": Out(1), "legal": Out(1),
                             "pop": In(1)})


def xfer_control_signature() -> wiring.Signature:
    """The sequencer's control of the transfer unit (the sequencer's side): `load` (the
    head instruction starts), `run` (a MOVW runs this cycle), `last` (its last cycle),
    `ins` (the instruction register); the transfer unit answers `done` (MOVW's last
    cycle: it moves the sequencer on)."""
    return wiring.Signature({"load": Out(1), "run": Out(1), "last": Out(1),
                             "ins": Out(head_layout()), "done": In(1)})


def host_request_layout(cfg: Config) -> data.StructLayout:
    """What the host port asks of one AP (`ap`) in a cycle: a row or column micro-op
    (`op` NOP: nothing) and its operands."""
    hw, ap = host_widths(cfg), cfg.ap
    fields = {"op": UOpcode, "ap": 3, "addr": hw["addr"], "data": hw["data"],
              "mask": hw["mask"]}
    if ap.two_d:
        fields.update(col=col_bits(ap.cols), vec=ap.rows)
    return data.StructLayout(fields)


def _ap_cfgs(cfg: Config) -> list[APConfig]:
    """The tile's APs in index order: the CAP, then the K MAPs."""
    return [cfg.ap] + [cfg.map_ap] * cfg.tile.maps


def _readback_members(cfg: Config, rows: bool = True) -> dict:
    """Inputs carrying the APs' registered reads: rdata<k> (and rd_valid<k>) per AP, the
    CAP's column read (rcol, rcol_valid, 2D)."""
    out: dict = {}
    for k, a in enumerate(_ap_cfgs(cfg)):
        out[f"rdata{k}"] = In(a.cols)
        if rows:
            out[f"rd_valid{k}"] = In(1)
    if rows and cfg.ap.two_d:
        out.update(rcol=In(cfg.ap.rows), rcol_valid=In(1))
    return out


# -- part 1: the instruction queue and its decoder/validator ----------------------------------
class InstrQueue(wiring.Component):
    """The instruction queue (valid/ready in, the head out) and its decoder: the head word
    through golden/spec/isa.py's formats, `legal` as golden `validate` (every hardware rule
    of its OPCODES entry, no reserved bit set), and the XROWS transfer row registers,
    loaded when a legal XROWS is popped. `drop` (a `drop_rule:` fault: opcode, check)
    leaves that one check out.

    The verdict is computed as a word enters, over two cycles, and stored with it in the
    queue, so that the validator (MOVW's source rows check has a multiplier) lies neither
    between the head and the sequencer nor, whole, between two registers:
      - the cycle a word is taken, each opcode's rules are evaluated on it (`rules_hold`)
        and registered with it in the input stage (`st_word`, `st_ok`);
      - the cycle after, the stage's opcode picks its rules' verdict, the reserved bits
        are checked, and the word goes into the queue with its verdict.
    A word's verdict depends on the XROWS registers in force when it is popped: the last
    legal XROWS popped before it. The queue pops in the order it takes, so that is the
    last legal XROWS taken before it, which a copy of the registers at the input
    (`t_srow`, `t_drow`, `t_stride`) follows (XROWS' own rules do not read them). The
    stage delays a word's arrival at the head by one cycle; no count changes, since the
    tile counts the cycles it issues micro-ops, and `pending` includes the stage."""

    def __init__(self, cfg: Config, drop: tuple[Opc, str] | None = None):
        self.cfg, self.drop = cfg, drop
        super().__init__({"s_valid": In(1), "s_data": In(WORD_BITS), "s_ready": Out(1),
                          "head": Out(queue_head_signature()),
                          "pending": Out(1),      # a word in the stage or the queue
                          "xrows": Out(XROWS_REGS)})

    def elaborate(self, platform):
        m = Module()
        # each entry: the word and its verdict (bit WORD_BITS)
        m.submodules.fifo = queue = SyncFIFOBuffered(width=WORD_BITS + 1,
                                                     depth=self.cfg.ctrl.queue_depth)

        def xrows_regs(prefix, word):
            xr = view(XROWS_FORMAT, word)
            return xr, tuple(Signal.like(getattr(xr, k), name=f"{prefix}_{k}")
                             for k in ("srow", "drow", "stride"))

        # -- the input stage: the word taken and its opcodes' rule verdicts --------------
        st_valid = Signal()
        st_word = Signal(WORD_BITS)
        take = Signal()
        m.d.comb += [self.s_ready.eq(~st_valid | queue.w_rdy),
                     take.eq(self.s_valid & self.s_ready)]
        with m.If(self.s_ready):
            m.d.sync += [st_valid.eq(self.s_valid), st_word.eq(self.s_data)]
        s_xr, t_regs = xrows_regs("t", self.s_data)
        # MOVW's source rows check has a multiplier: it is split over the two stages
        split = self.cfg.tile.maps > 0 and self.drop != (Opc.MOVW, "src_rows")
        rules_ok = _rules_by_opcode(self.s_data, self.cfg, t_regs, self.drop,
                                    defer={Opc.MOVW: "src_rows"} if split else None)
        if split:
            src_rows = _movw_src_rows_split(m, self.s_data, take, t_regs, self.cfg)
        st_ok = {op: Signal(name=f"st_ok_{op.name.lower()}") for op, ok in rules_ok.items()
                 if not isinstance(ok, bool)}
        with m.If(take):
            m.d.sync += [st_ok[op].eq(rules_ok[op]) for op in st_ok]
        # a legal XROWS taken (as `_verdict` will say, the same check dropped): the
        # registers the next words' rules read
        xrows_ok = rules_ok.get(Opc.XROWS, False)
        if xrows_ok is not False:
            xrows_legal = Signal()
            _verdict(m, xrows_legal, self.s_data, {**dict.fromkeys(rules_ok, False),
                                                   Opc.XROWS: xrows_ok}, self.drop)
            with m.If(take & xrows_legal):
                m.d.sync += [r.eq(v) for r, v in
                             zip(t_regs, (s_xr.srow, s_xr.drow, s_xr.stride), strict=True)]

        # -- into the queue: the stage's verdict ----------------------------------------
        st_legal = Signal()
        st_rules = {op: st_ok.get(op, ok) for op, ok in rules_ok.items()}
        if split:
            st_rules[Opc.MOVW] = src_rows(st_word) if st_rules[Opc.MOVW] is True else \
                st_rules[Opc.MOVW] & src_rows(st_word)
        _verdict(m, st_legal, st_word, st_rules, self.drop)
        m.d.comb += [queue.w_data.eq(Cat(st_word, st_legal)), queue.w_en.eq(st_valid),
                     queue.r_en.eq(self.head.pop), self.head.valid.eq(queue.r_rdy),
                     # w_level covers a word written this cycle that r_rdy shows only later
                     self.pending.eq(st_valid | queue.r_rdy | (queue.w_level != 0))]

        # -- the head: the word, its stored verdict, the registers the transfer unit uses --
        w, h_legal = queue.r_data[:WORD_BITS], queue.r_data[WORD_BITS]
        xr, x_regs = xrows_regs("x", w)
        m.d.comb += [self.head.word.eq(w), self.head.legal.eq(h_legal),
                     self.xrows.srow.eq(x_regs[0]), self.xrows.drow.eq(x_regs[1]),
                     self.xrows.stride.eq(x_regs[2])]
        with m.If(self.head.pop & h_legal & (view(GENERIC, w).op == Opc.XROWS)):
            m.d.sync += [r.eq(v) for r, v in
                         zip(x_regs, (xr.srow, xr.drow, xr.stride), strict=True)]
        return m


def _rules_by_opcode(w, cfg, xrows, drop=None, defer=None) -> dict:
    """Per opcode, the AND of its OPCODES entry's hardware rules on a view of the word
    `w` (golden isa.validate() without the reserved bits): an Amaranth value, or a Python
    bool where the rules decide statically. `drop` (a fault: opcode, check name) leaves
    that one check out; `defer` (opcode -> check name) too, for a check evaluated
    elsewhere."""
    t = _Target(cfg, xrows)
    out = {}
    for op, spec in OPCODES.items():
        skip = {drop[1]} if drop is not None and drop[0] == op else set()
        if defer and op in defer:
            skip.add(defer[op])
        out[op] = rules_hold(spec, view(spec.fmt, w), t, skip)
    return out


def _movw_src_rows_split(m, word, take, xrows, cfg):
    """MOVW's `src_rows` rule (golden isa.movw_src_rows_ok: srow + (count - 1) * stride
    below the source AP's rows) over the queue's two stages, without its 16 x 8
    multiplier. No AP has more rows than RMAX (the larger AP's), so with c = count - 1
    and stride both >= 1, the rule fails when c >= RMAX or stride >= RMAX; otherwise both
    fit in B bits and the product is a B x B one. The input stage registers c's range
    (-1, 0, too far) and that product from the word taken (`word`, when `take`) and the
    XROWS copy (`xrows`); it returns a function of the stage's word that adds srow and
    compares. The XROWS copy changes only after a legal XROWS is taken, so in the stage's
    cycle it holds what it held when the MOVW was taken. Exact for every count and stride
    (tests/test_tile_parts.py, test_movw_source_rows_split_equals_golden)."""
    rmax = max(cfg.ap.rows, cfg.map_ap.rows)
    B = max(1, (rmax - 1).bit_length())
    srow, _, stride = xrows
    count = view(MOVW_FORMAT, word).count
    c = Signal(B, name="mvs_c")
    m.d.comb += c.eq(count - 1)
    q_neg, q_far = Signal(name="mvs_neg"), Signal(name="mvs_far")
    s_low = stride[:min(B, len(stride))]
    q_prod = Signal(B + len(s_low), name="mvs_prod")
    with m.If(take):
        m.d.sync += [q_neg.eq(count == 0),
                     q_far.eq((count >= 2) & (stride != 0) & ((count > rmax) | (stride >= rmax))),
                     q_prod.eq(c * s_low)]

    def verdict(st_word):
        rows = _Target(cfg, xrows).rows(view(MOVW_FORMAT, st_word).sap)
        return Mux(q_neg, srow < rows + stride, ~q_far & (srow + q_prod < rows))
    return verdict


def _verdict(m, legal, w, rules_ok: dict, drop=None):
    """`legal` = golden isa.validate() on `w`, given its rules' verdicts per opcode
    (`rules_ok`, from `_rules_by_opcode`, registered or not): no reserved bit set, and
    its opcode's rules hold. `drop` with RESERVED leaves the reserved bits unchecked."""
    with m.Switch(view(GENERIC, w).op):
        for op, spec in OPCODES.items():
            ok = rules_ok[op]
            if ok is False:
                continue                  # never legal on this tile: no case, illegal
            skip = drop[1] if drop is not None and drop[0] == op else None
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


def rules_hold(spec: OpSpec, ins, t, skip: str | set[str] | None = None):
    """AND of the hardware-checked rules of `spec` on `ins` (a view of the word): an
    Amaranth value, or a Python bool when the rules decide statically. `skip`: the name
    (or names) of rules left out (a `drop_rule:` fault, a rule evaluated elsewhere)."""
    cols = spec.columns(ins)
    out = True
    skips = {skip} if isinstance(skip, str) else set(skip or ())
    for r in spec.rules:
        if not r.hw or r.name in skips:
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


# -- column decoders: the sequencer builds every key and mask from them ---------------------
# A decoder written as C comparisons of a 10-bit column number with a constant costs about
# three LUT4 per output bit, and one `k >= v` about as much; the sequencer has a dozen
# of them per micro_op() call, which made it about 80 LUTs per AP column. Split into a
# low part of LO_BITS and a high part, each decoded once, every output bit is one LUT of
# three inputs. Exact for every value, negative and too large ones included
# (tests/test_tile_parts.py compares them with the plain comparisons).
LO_BITS = 3


def _halves(v: Value, C: int):
    """(low bits, high bits, bit count B, low bit count L) of v, with B the bits of the
    column numbers."""
    B = max(1, (C - 1).bit_length())
    L = min(LO_BITS, B)
    return v[:L], v[L:B], B, L


def _outside(v: Value, B: int):
    """(v < 0, v >= 2**B), each None where v's shape rules it out (so that no comparison
    is constant: Verilator's lint refuses those)."""
    sh = v.shape()
    top = (1 << (sh.width - 1)) - 1 if sh.signed else (1 << sh.width) - 1
    return (v < 0 if sh.signed else None), (v >= (1 << B) if top >= (1 << B) else None)


def _and(*xs):
    """AND of the values that are not None (1 when none is)."""
    xs = [x for x in xs if x is not None]
    out = xs[0] if xs else Const(1, 1)
    for x in xs[1:]:
        out = out & x
    return out


def col_onehot(v, C: int) -> Value:
    """C bits, bit k = (v == k), for any integer value v (signed, wide or a constant)."""
    v = Value.cast(v)
    lo, hi, B, L = _halves(v, C)
    neg, big = _outside(v, B)
    ok = _and(None if neg is None else ~neg, None if big is None else ~big)
    eq_lo = [lo == t for t in range(1 << L)]
    eq_hi = [ok & (hi == h) if B > L else ok for h in range(((C - 1) >> L) + 1)]
    return Cat(*(eq_hi[k >> L] & eq_lo[k & ((1 << L) - 1)] for k in range(C)))


def col_atleast(v, C: int) -> Value:
    """C bits, bit k = (k >= v), for any integer value v (a thermometer code of v)."""
    v = Value.cast(v)
    lo, hi, B, L = _halves(v, C)
    neg, big = _outside(v, B)
    inside = _and(None if neg is None else ~neg, None if big is None else ~big)
    ge_lo = [lo <= t if t < (1 << L) - 1 else Const(1, 1) for t in range(1 << L)]
    gt, eq = [], []
    for h in range(((C - 1) >> L) + 1):
        # k >= v for every k of this high part: v < 0, or v's high part below it
        above = (_and(None if big is None else ~big, hi < h) if (B > L and h > 0)
                 else None)
        terms = [x for x in (neg, above) if x is not None]
        gt.append(_or(terms) if terms else Const(0, 1))
        eq.append(inside & (hi == h) if B > L else inside)
    return Cat(*(gt[k >> L] | (eq[k >> L] & ge_lo[k & ((1 << L) - 1)]) for k in range(C)))


def field_move_amount(sh, width: int) -> Value:
    """The shift of field_move that moves bits [a, ...) of a `width`-bit word to [d, ...):
    `sh` = width + a - d, or 2 * width (every bit shifted out) outside [0, 2 * width)."""
    return Mux((sh < 0) | (sh >= 2 * width), 2 * width, sh)


def field_move(word, amount, width: int) -> Value:
    """A field of `word` moved to another position as one right shift of the word above
    `width` zeros by field_move_amount's `amount` (not a right and a left shift in a row):
    the low `width` bits; the caller masks the field (MOVW, the packet engine's COPY)."""
    return (Cat(Const(0, width), word) >> amount)[:width]


def col_range(start, width, C: int) -> Value:
    """C bits, bit k = (start <= k < start + width)."""
    start, width = Value.cast(start), Value.cast(width)
    return col_atleast(start, C) & ~col_atleast(start + width, C)


# -- part 2: the sequencer and its microcode ROM ------------------------------------------
class Sequencer(wiring.Component):
    """The instruction register and the sequencer state (phase, step, p, i, j, the MAC
    digits still to add) with the microcode ROM: it pops the queue head (`head.pop`) when
    idle or in an instruction's last cycle, steps through the phases of golden `expand`,
    and holds in `uop` the micro-op issuing this cycle, straight from flip-flops.

    It is a two-stage pipeline that adds no cycle (golden's cycle model is unchanged): the
    issue stage (U) holds the micro-op issuing now and whether it ends its instruction;
    the state stage (S) holds the sequencer state of the micro-op after it. Each cycle U
    takes the micro-op of S and S takes S's successor, two functions of S computed side by
    side, so neither the next-state decision nor the microcode ROM lies on the other's
    path (docs/fpga.md, "Critical paths"). A loaded instruction fills both stages at
    once, from its first state (U) and that state's successor (S). `fault`: one of
    FAULTS."""

    def __init__(self, cfg: Config, fault: str | None = None):
        assert fault is None or fault in FAULTS, fault
        self.cfg, self.fault = cfg, fault
        super().__init__({"head": In(queue_head_signature()),
                          "xfer": Out(xfer_control_signature()),
                          "active": Out(1),      # an instruction runs (a micro-op issues)
                          "illegal": Out(1),     # ... and it is an illegal word (one NOP)
                          "phase": Out(Phase),
                          "uop": Out(uop_layout(cfg.ap))})

    def elaborate(self, platform):
        m = Module()
        ap = self.cfg.ap
        C, R = ap.cols, ap.rows
        CY = C - RESERVED_COLS
        two_d = ap.two_d

        w = self.head.word.as_value()
        head = view(GENERIC, w, op=Opcode)
        h_op, h_m, h_imm = head.op, head.m, head.imm
        h_legal = self.head.legal

        # -- instruction register: the word in progress -----------------------------------
        iw = Signal(WORD_BITS)
        illegal = Signal()
        active = Signal()          # U holds a micro-op: it issues this cycle

        # -- U: the micro-op issuing this cycle, its phase, whether it is the last -------
        pw = port_widths(ap)
        u_op, u_key, u_mask = (Signal(4, name="u_op"), Signal(C, name="u_key"),
                               Signal(C, name="u_mask"))
        u_col, u_col2, u_shift = (Signal(pw["col"] if two_d else 1, name="u_col"),
                                  Signal(pw["col2"] if two_d else 1, name="u_col2"),
                                  Signal(pw["shift"] if two_d else 1, name="u_shift"))
        u_addr, u_addr2 = (Signal(addr_bits(R), name="u_addr"),
                           Signal(addr_bits(R), name="u_addr2"))
        u_ph = Signal(Phase, name="u_ph")
        u_xfer = Signal(name="u_xfer")   # u_ph == XFER, kept as its own flip-flop
        u_last = Signal(name="u_last")   # U ends its instruction (an XFER: see `last`)
        u_regs = {"op": u_op, "key": u_key, "mask": u_mask, "addr": u_addr, "addr2": u_addr2,
                  "col": u_col, "col2": u_col2, "shift": u_shift}

        # -- S: the state of the micro-op after U (meaningful while U is not the last) -----
        s_st = {"iw": iw, "illegal": illegal,
                "ph": Signal(Phase, name="s_ph"), "step": Signal(3, name="s_step"),
                "p": Signal(1, name="s_p"),   # a two-micro-op step's second (LUT: `s_sel`)
                "i": Signal(7, name="s_i"), "j": Signal(7, name="s_j"),
                "dpos": Signal(18, name="s_dpos"), "dneg": Signal(18, name="s_dneg"),
                "dsign": Signal(name="s_dsign")}
        NEXT = ("ph", "step", "p", "i", "j", "dpos", "dneg", "dsign")

        def onehot(col):
            """C-bit one-hot of a column number (a decoder, not a wide shifter)."""
            return col_onehot(col, C)

        # The column terms of an instruction that depend on its word alone (its fields'
        # sums, range masks and one-hots), which micro_op and next_state read:
        #   a    the clear range: [d, d + n), MUL's [d, d + n + m)
        #   b    CLAMPW's key without s or at step 0: [d, d + m), with s [d, d + m - 1)
        #   c    CLAMPW's key with s after step 0: [d + m - 1, d + n)
        #   oh   the sign column d + n - 1, SHR's d + m - 1 (one-hot)
        #   ct0  CLAMPC's first column: d + m, with s d + m - 1
        #   cn   CLAMPC's columns: n - m
        # S's are decoded (terms_of) from the bounds registered with the word (word_bounds,
        # `s_bounds`); the head's first state computes the few it reads from the head word
        # (first_terms).
        def clampc_terms(ins_):
            """ct0 and cn of a word's fields (a view of GENERIC)."""
            return {"ct0": ins_.d + Mux(ins_.s, ins_.m - 1, ins_.m), "cn": ins_.n - ins_.m}

        def first_terms(iw_):
            """The terms of an instruction's first state (CLAMPC, RELU's compare), which
            reads only ct0, cn and oh: the others are 0 and the opcode picks nothing."""
            ins_ = view(GENERIC, iw_, op=Opcode)
            return {**clampc_terms(ins_), "a": Const(0, C), "b": Const(0, C),
                    "c": Const(0, C), "oh": onehot(ins_.d + ins_.n - 1)}

        def word_bounds(iw_):
            """The columns the word's terms are decoded from: the ranges' bounds (a range
            [lo, hi) is at-least-lo and not at-least-hi; lo is d for a and b), the
            one-hot's column, and ct0, cn. S loads them with the word, so that no adder of
            the fields lies between the instruction register and U's key and mask
            (docs/fpga.md, "Critical paths", after 20), and decodes them itself, so that no
            decoder lies between the head word and S's registers either (after 23)."""
            ins_ = view(GENERIC, iw_, op=Opcode)
            op, s, n, mm, d = ins_.op, ins_.s, ins_.n, ins_.m, ins_.d
            return {"a_hi": Mux(op == Opcode.MUL, d + (n + mm), d + n),
                    "b_hi": Mux(s, d + (mm - 1), d + mm),
                    "c_lo": d + mm - 1, "c_hi": (d + mm - 1) + (n - mm + 1),
                    "oh": Mux(op == Opcode.SHR, d + mm - 1, d + n - 1), **clampc_terms(ins_)}

        def terms_of(bounds, d):
            """S's terms from word_bounds (and the word's d, the ranges' lower bound)."""
            def atleast(v):
                return col_atleast(v, C)
            return {"a": atleast(d) & ~atleast(bounds["a_hi"]),
                    "b": atleast(d) & ~atleast(bounds["b_hi"]),
                    "c": atleast(bounds["c_lo"]) & ~atleast(bounds["c_hi"]),
                    "oh": onehot(bounds["oh"]), "ct0": bounds["ct0"], "cn": bounds["cn"]}

        def lut_select(st):
            """The LUT of a state in the LUT phase, the bits its loop runs over (`cnt`),
            and the role columns x, y, k."""
            ins_ = view(GENERIC, st["iw"], op=Opcode)
            op, s, n, mm, d, a, b, imm = (ins_.op, ins_.s, ins_.n, ins_.m, ins_.d, ins_.a,
                                          ins_.b, ins_.imm)
            i, j, dsign = st["i"], st["j"], st["dsign"]
            lut = Signal(range(len(LUT_NAMES)))
            cnt = Signal(7)
            xcol, ycol, kcol = Signal(10), Signal(10), Signal(10)
            ncl = Mux(i < n - 1, i, n - 1)  # min(i, n-1): sign extension of an operand
            imm_bit = (imm >> i)[0]  # imm is signed: bits above 15 repeat the sign
            with m.Switch(op):
                with m.Case(Opcode.ADD, Opcode.SUB):
                    m.d.comb += [lut.eq(Mux(op == Opcode.SUB, LUT_ID["sub"], LUT_ID["add"])),
                                 cnt.eq(n), xcol.eq(a + i), ycol.eq(d + i)]
                with m.Case(Opcode.ADDI):
                    m.d.comb += [lut.eq(Mux(imm_bit, LUT_ID["inc1"], LUT_ID["inc"])),
                                 cnt.eq(n), ycol.eq(d + i)]
                with m.Case(Opcode.SUBI):
                    m.d.comb += [lut.eq(Mux(imm_bit, LUT_ID["dec1"], LUT_ID["dec"])),
                                 cnt.eq(n), ycol.eq(d + i)]
                with m.Case(Opcode.MUL):
                    m.d.comb += [ycol.eq(d + j + i), kcol.eq(b + j)]
                    with m.If(s):
                        m.d.comb += [lut.eq(Mux(j == mm - 1, LUT_ID["sub_if"],
                                                LUT_ID["add_if"])),
                                     cnt.eq(n + mm - j), xcol.eq(a + ncl)]
                    with m.Else():
                        m.d.comb += [lut.eq(Mux(i < n, LUT_ID["add_if"], LUT_ID["inc"])),
                                     cnt.eq(n + 1), xcol.eq(a + i)]
                with m.Case(Opcode.MAC):
                    m.d.comb += [cnt.eq(mm - j), ycol.eq(d + j + i)]
                    with m.If(s | (i < n)):
                        m.d.comb += [lut.eq(Mux(dsign, LUT_ID["sub"], LUT_ID["add"])),
                                     xcol.eq(Mux(s, a + ncl, a + i))]
                    with m.Else():
                        m.d.comb += lut.eq(Mux(dsign, LUT_ID["dec"], LUT_ID["inc"]))
                with m.Case(Opcode.MAX, Opcode.MIN):
                    m.d.comb += cnt.eq(n)
                    with m.If(st["step"] == 1):
                        m.d.comb += lut.eq(Mux(s & (i == n - 1), LUT_ID["borrow_top"],
                                               LUT_ID["borrow"]))
                        with m.If(op == Opcode.MAX):
                            m.d.comb += [xcol.eq(a + i), ycol.eq(d + i)]
                        with m.Else():
                            m.d.comb += [xcol.eq(d + i), ycol.eq(a + i)]
                    with m.Else():
                        m.d.comb += [lut.eq(LUT_ID["cmov"]), xcol.eq(a + i), ycol.eq(d + i)]
                with m.Case(Opcode.SHR):
                    m.d.comb += [lut.eq(LUT_ID["inc"]), cnt.eq(n - mm), ycol.eq(d + mm + i)]
                with m.Case(Opcode.REDUCE):
                    m.d.comb += [lut.eq(LUT_ID["add"]), cnt.eq(n), xcol.eq(a + i),
                                 ycol.eq(d + i)]
            return {"lut": lut, "cnt": cnt, "x": xcol, "y": ycol, "k": kcol}

        def micro_op(st, sel, terms, first=False):
            """The micro-op of a sequencer state (a pure function of it), as signals:
            op, key, mask, addr, addr2, col, col2, shift. `terms`: its word's
            (the terms above). `first`: `st` is an instruction's first state, so only
            FIRST_PHASES' logic is built (no ROM)."""
            ins_, rows_ = view(GENERIC, st["iw"], op=Opcode), view(ROWS_FORMAT, st["iw"])
            op, s, d, a = ins_.op, ins_.s, ins_.d, ins_.a
            ph, step, p, i, j = st["ph"], st["step"], st["p"], st["i"], st["j"]
            lo, hi = rows_.lo, rows_.hi
            g_op, g_key, g_mask = Signal(4, name="g_op"), Signal(C, name="g_key"), \
                Signal(C, name="g_mask")
            g_col, g_col2, g_shift = (Signal.like(u_col, name="g_col"),
                                      Signal.like(u_col2, name="g_col2"),
                                      Signal.like(u_shift, name="g_shift"))
            g_addr, g_addr2 = Signal.like(u_addr, name="g_addr"), \
                Signal.like(u_addr2, name="g_addr2")

            if not first:
                # the LUT phase's micro-op: a ROM read at the registered address and an OR
                # of the registered role columns' one-hots (`sel`, S's LUT selection)
                rom = Array(Const(wd, ROM_ENTRY.size) for wd in ROM_WORDS)
                entry = Signal(ROM_ENTRY.size)
                m.d.comb += entry.eq(rom[sel["ra"]])
                e = data.View(ROM_ENTRY, entry)
                role_oh = {"c": onehot(Const(CY, 10)), "x": sel["oh_x"], "y": sel["oh_y"],
                           "k": sel["oh_k"]}
                lut_key, lut_mask = Signal(C), Signal(C)
                m.d.comb += [
                    lut_mask.eq(_or([Mux(e[f"use_{r}"], role_oh[r], 0) for r in ROLES])),
                    lut_key.eq(_or([Mux(e[f"use_{r}"] & e[f"bit_{r}"], role_oh[r], 0)
                                    for r in ROLES])),
                ]

            else:   # a first state is never in the LUT phase: no ROM
                e = data.View(ROM_ENTRY, Const(0, ROM_ENTRY.size))
                lut_key = lut_mask = Const(0, C)

            def _case(phase):
                """m.Case(phase), or for a first state a case that never matches (so no
                logic) when `phase` cannot be first."""
                return m.Case(phase) if not first or phase in FIRST_PHASES else m.Case()

            # clear masks and CLAMP ranges
            clr_mask = Signal(C)
            with m.Switch(op):
                with m.Case(Opcode.CLEAR, Opcode.COPY):
                    m.d.comb += clr_mask.eq(terms["a"])
                with m.Case(Opcode.MUL):
                    m.d.comb += clr_mask.eq(Mux(step == 0, terms["a"], 0) | onehot(CY))
                with m.Default():
                    m.d.comb += clr_mask.eq(0 if self.fault == "no_carry_clear"
                                            else onehot(CY))
            sign_oh = terms["oh"]   # the sign column's one-hot (SHR: d + m - 1's)

            with m.Switch(ph):
                with _case(Phase.ONE):
                    with m.If(~st["illegal"] & (op == Opcode.ROWS)):
                        m.d.comb += [g_op.eq(Op.ROWEN), g_addr.eq(lo), g_addr2.eq(hi)]
                    with m.Else():  # NOP, XROWS, MAC by 0, an illegal word
                        m.d.comb += g_op.eq(Op.NOP)
                with _case(Phase.CLR0):
                    m.d.comb += g_op.eq(Op.CMP)
                with _case(Phase.CLR1):
                    m.d.comb += [g_op.eq(Op.WR), g_mask.eq(clr_mask)]
                with _case(Phase.LUT):
                    m.d.comb += [g_op.eq(Mux(e.kind == KIND_WR, Op.WR,
                                             Mux(e.kind == KIND_CMPA, Op.CMPA, Op.CMP))),
                                 g_key.eq(lut_key), g_mask.eq(lut_mask)]
                with _case(Phase.COPYB):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(onehot(a + i)),
                                     g_mask.eq(onehot(a + i))]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_key.eq(onehot(d + i)),
                                     g_mask.eq(onehot(d + i))]
                with _case(Phase.CLAMPC):
                    t_oh = onehot(terms["ct0"] + i)   # column d + t, t = m (s: m - 1) + i
                    m.d.comb += [g_op.eq(Mux(i == 0, Op.CMP, Op.CMPA))]
                    with m.If(~s):
                        m.d.comb += [g_key.eq(t_oh), g_mask.eq(t_oh)]
                    with m.Elif(step == 0):
                        m.d.comb += [g_key.eq(t_oh), g_mask.eq(sign_oh | t_oh)]
                    with m.Else():
                        m.d.comb += [g_key.eq(sign_oh), g_mask.eq(sign_oh | t_oh)]
                with _case(Phase.CLAMPW):
                    m.d.comb += [g_op.eq(Op.WR), g_mask.eq(terms["a"])]
                    with m.If(~s | (step == 0)):
                        m.d.comb += g_key.eq(terms["b"])
                    with m.Else():
                        m.d.comb += g_key.eq(terms["c"])
                with _case(Phase.RELU):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(sign_oh), g_mask.eq(sign_oh)]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_mask.eq(terms["a"])]
                with _case(Phase.SHRR):
                    with m.If(p == 0):
                        m.d.comb += [g_op.eq(Op.CMP), g_key.eq(sign_oh), g_mask.eq(sign_oh)]
                    with m.Else():
                        m.d.comb += [g_op.eq(Op.WR), g_key.eq(onehot(CY)),
                                     g_mask.eq(onehot(CY))]
                if two_d:
                    with _case(Phase.MV):   # p = 1: the NOP of MVCOL's second cycle
                        with m.If(p == 0):
                            m.d.comb += [g_op.eq(Op.MVCOL), g_col.eq(a + i),
                                         g_col2.eq(d + i), g_shift.eq(Const(1, 1) << j)]
            return {"op": g_op, "key": g_key, "mask": g_mask, "addr": g_addr,
                    "addr2": g_addr2, "col": g_col, "col2": g_col2, "shift": g_shift}

        # -- MAC digits: the lowest nonzero CSD digit, and taking it ---------------------
        def lowest_digit(pos, neg, name):
            """Whether `pos | neg` holds a digit, and the position of the lowest."""
            found, k_out = Signal(name=f"{name}_any"), Signal(5, name=f"{name}_pos")
            rem = pos | neg
            for k in reversed(range(18)):
                with m.If(rem[k]):
                    m.d.comb += [found.eq(1), k_out.eq(k)]
            return found, k_out

        # S's next digit, registered one cycle behind S's digits. They change only when a
        # MAC loads (S then holds CLR1) or takes a digit (S then holds CLR0), and the
        # digit is read only at the end of a LUT phase, two cycles or more after either,
        # so the register holds the lowest of S's digits whenever it is read. The
        # priority encoder is then off the path into the sequencer's state (docs/fpga.md,
        # "Critical paths"); the digits are masked below m at the load.
        nd_any, nd_pos = Signal(name="nd_any"), Signal(5, name="nd_pos")
        s_any, s_pos = lowest_digit(s_st["dpos"], s_st["dneg"], "s_dig")
        m.d.sync += [nd_any.eq(s_any), nd_pos.eq(s_pos)]

        def without_digit(v, k):
            """Digits `v` without digit k (taken: its sign decides add or sub)."""
            return v & ~(Const(1, 1) << k)[:18]

        def digit_sign(neg, k):
            return (neg >> k)[0]

        # each LUT's last pass, by ROM address: a LUT-phase state is its LUT's last pass
        # when the ROM address equals it (the ROM's `last` flag, without reading the ROM)
        ends = [nxt - 1 for nxt in LUT_START[1:] + [len(ROM_WORDS)]]
        assert all((ROM_WORDS[e] >> ROM_ENTRY["last"].offset) & 1 for e in ends), \
            "the ROM's `last` marks each LUT's final pass"
        # S's LUT selection is read one cycle behind S (`nb`, `nj` below): every LUT must
        # hold a bit for two passes or more
        assert min(e + 1 - start for start, e in zip(LUT_START, ends, strict=True)) >= 2

        def next_state(st, sel, terms, first=False):
            """The state after `st` in its instruction (a pure function of it) and whether
            `st`'s micro-op is the instruction's last (`last`; an XFER's is never: the
            transfer unit ends it). Mirrors golden _expand. `first`: `st` is an
            instruction's first state (only FIRST_PHASES' logic; no MAC digit to take)."""
            ins_ = view(GENERIC, st["iw"], op=Opcode)
            op, s, n, mm = ins_.op, ins_.s, ins_.n, ins_.m
            ph, step, p, i, j = st["ph"], st["step"], st["p"], st["i"], st["j"]
            nx = {k: Signal.like(s_st[k], name=f"nx_{k}") for k in NEXT}
            last, phase_end = Signal(name="nx_last"), Signal(name="nx_phase_end")
            lut_end = Signal(name="nx_lut_end")   # S is its LUT phase's last micro-op
            m.d.comb += [nx[k].eq(st[k]) for k in NEXT]
            dig_any, dig_pos = (Const(0, 1), Const(0, 5)) if first else (nd_any, nd_pos)

            def _case(*phases):
                ps = [q for q in phases if not first or q in FIRST_PHASES]
                return m.Case(*ps)      # no phase: a case that never matches (no logic)

            def goto(phase, step_=None, j_=None):
                stmts = [nx["ph"].eq(phase), nx["i"].eq(0), nx["p"].eq(0)]
                if step_ is not None:
                    stmts.append(nx["step"].eq(step_))
                if j_ is not None:
                    stmts.append(nx["j"].eq(j_))
                return stmts

            def finish():  # this micro-op ends the instruction
                return [last.eq(1)]

            with m.Switch(ph):
                with _case(Phase.ONE):
                    m.d.comb += phase_end.eq(1)
                with _case(Phase.CLR0):
                    m.d.comb += goto(Phase.CLR1)
                with _case(Phase.CLR1, Phase.CLAMPW):
                    m.d.comb += phase_end.eq(1)
                with _case(Phase.LUT):
                    if sel is not None:     # none for a first state (no LUT selection)
                        with m.If(sel["ra"] == sel["ra_end"]):
                            with m.If(i + 1 == sel["cnt"] - (
                                    1 if self.fault == "last_bit_skipped" else 0)):
                                m.d.comb += [phase_end.eq(1), lut_end.eq(1)]
                            with m.Else():   # the ROM address steps in s_sel
                                m.d.comb += nx["i"].eq(i + 1)
                with _case(Phase.COPYB):
                    with m.If(p == 1):
                        with m.If(i + 1 == n):
                            m.d.comb += phase_end.eq(1)
                        with m.Else():
                            m.d.comb += [nx["i"].eq(i + 1), nx["p"].eq(0)]
                    with m.Else():
                        m.d.comb += nx["p"].eq(1)
                with _case(Phase.RELU, Phase.SHRR):
                    with m.If(p == 1):
                        m.d.comb += phase_end.eq(1)
                    with m.Else():
                        m.d.comb += nx["p"].eq(1)
                with _case(Phase.CLAMPC):
                    # t + 1 == n (s: n - 1), t = m (s: m - 1) + i
                    with m.If(i + 1 == terms["cn"]):
                        m.d.comb += phase_end.eq(1)
                    with m.Else():
                        m.d.comb += nx["i"].eq(i + 1)
                with _case(Phase.MV):       # each move: MVCOL (p = 0), NOP (p = 1)
                    with m.If(p == 1):
                        with m.If(i + 1 == n):
                            m.d.comb += phase_end.eq(1)
                        with m.Else():
                            m.d.comb += [nx["i"].eq(i + 1), nx["p"].eq(0)]
                    with m.Else():
                        m.d.comb += nx["p"].eq(1)
                # XFER: the state holds; the transfer unit's `done` ends it

            # per-opcode phase sequences (mirror golden _expand)
            with m.If(phase_end):
                with m.If(st["illegal"] | (ph == Phase.ONE)):
                    m.d.comb += finish()
                with m.Else():
                    with m.Switch(op):
                        with m.Case(Opcode.CLEAR, Opcode.RELU):
                            m.d.comb += finish()
                        with m.Case(Opcode.COPY):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.COPYB)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.ADD, Opcode.SUB, Opcode.ADDI, Opcode.SUBI):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.LUT)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.MUL):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.LUT, step_=1)
                            with m.Elif(j + 1 == mm):
                                m.d.comb += finish()
                            with m.Elif(s):
                                m.d.comb += goto(Phase.CLR0, j_=j + 1)
                            with m.Else():
                                m.d.comb += goto(Phase.LUT, j_=j + 1)
                        with m.Case(Opcode.MAC):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.LUT)
                            with m.Elif(dig_any):
                                m.d.comb += goto(Phase.CLR0, j_=dig_pos)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.MAX, Opcode.MIN):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.LUT, step_=1)
                            with m.Elif(step == 1):
                                m.d.comb += goto(Phase.LUT, step_=2)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.CLAMP):
                            with m.If(ph == Phase.CLAMPC):
                                m.d.comb += goto(Phase.CLAMPW)
                            with m.Elif(s & (step == 0)):
                                m.d.comb += goto(Phase.CLAMPC, step_=1)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.SHR):
                            with m.If(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.SHRR)
                            with m.Elif(ph == Phase.SHRR):
                                m.d.comb += goto(Phase.LUT)
                            with m.Else():
                                m.d.comb += finish()
                        with m.Case(Opcode.REDUCE):
                            with m.If(ph == Phase.MV):
                                m.d.comb += goto(Phase.CLR0)
                            with m.Elif(ph == Phase.CLR1):
                                m.d.comb += goto(Phase.LUT)
                            with m.Elif(j + 1 == mm):
                                m.d.comb += finish()
                            with m.Else():
                                m.d.comb += goto(Phase.MV, j_=j + 1)
                        with m.Default():
                            m.d.comb += finish()

            # a MAC moving on to its next digit takes it (its sign: add or sub). That is
            # the one way a MAC enters CLR0 after its first state: from the last micro-op
            # of its LUT phase, with a digit left (the switch above). Said so directly, not
            # as "nx ph is CLR0", which put the whole phase switch in front of the digits'
            # registers (docs/fpga.md, "Critical paths", after 19)
            take_next = Signal(name="nx_take")
            m.d.comb += take_next.eq((op == Opcode.MAC) & lut_end & dig_any
                                     & ~st["illegal"])
            with m.If(take_next):
                m.d.comb += [nx["dsign"].eq(digit_sign(st["dneg"], dig_pos)),
                             nx["dpos"].eq(without_digit(st["dpos"], dig_pos)),
                             nx["dneg"].eq(without_digit(st["dneg"], dig_pos))]
            return nx, last

        # -- the head instruction's first state (as if legal: the validator only turns it
        # into the one NOP of an illegal word, at the end, off the paths below) ----------
        h_ph0, h_j = Signal(Phase), Signal(7)
        h_dpos, h_dneg = Signal(18), Signal(18)
        x = Signal(signed(19))
        xh = Signal(signed(19))
        x3 = Signal(signed(19))
        c3 = Signal(19)
        below_m = ((Const(1, 1) << h_m) - 1)[:18]   # digits at or above m add 0 mod 2^m
        m.d.comb += [x.eq(h_imm), xh.eq(x >> 1), x3.eq(x + xh), c3.eq(xh ^ x3),
                     h_dpos.eq(x3 & c3 & below_m), h_dneg.eq(xh & c3 & below_m)]
        h_first_any, h_first = lowest_digit(h_dpos, h_dneg, "h_first")
        with m.Switch(h_op):
            for phase in sorted(set(START_PHASE.values()), key=lambda q: q.value):
                with m.Case(*(Opcode[o.name] for o, q in START_PHASE.items() if q == phase)):
                    m.d.comb += h_ph0.eq(phase)
            with m.Case(Opcode.MAC):
                m.d.comb += [h_ph0.eq(Mux(h_first_any, Phase.CLR0, Phase.ONE)),
                             h_j.eq(h_first)]
            with m.Default():
                m.d.comb += h_ph0.eq(Phase.CLR0)
        is_mac = h_op == Opcode.MAC
        h_st = {"iw": w, "illegal": Const(0, 1), "ph": h_ph0,
                "step": Const(0, 3), "p": Const(0, s_st["p"].shape()), "i": Const(0, 7),
                "j": h_j,   # a MAC's first digit is taken when the word is loaded
                "dpos": Mux(is_mac, without_digit(h_dpos, h_first), 0),
                "dneg": Mux(is_mac, without_digit(h_dneg, h_first), 0),
                "dsign": is_mac & digit_sign(h_dneg, h_first)}

        # -- S's LUT selection, registered ----------------------------------------------
        # In the LUT phase U's micro-op is a ROM read and an OR of role columns, and S's
        # next state compares p and i with the LUT's bounds. Computed from S (the LUT of
        # the opcode and bit, the role columns' adders, their decoders, the ROM address)
        # they were the longest path into U (docs/fpga.md, "Critical paths", after 15).
        # So S carries them as registers (`s_sel`), loaded when S moves:
        #   the next pass of the same bit   the ROM address + 1
        #   the next bit (i + 1)            `nb`, the selection of S with i + 1
        #   a LUT phase right after one     `nj`, of S with i = 0, j + 1 and step 2 (MUL
        #                                   without s: j + 1; MAX / MIN: step 2; neither
        #                                   reads the other)
        #   the LUT phase from another      `z`, of S with i = 0 and step 1 (MUL, MAX and
        #                                   MIN enter it from CLR1 with step 1; the
        #                                   opcodes entering it otherwise do not read it)
        # `nb` and `nj` are registers one cycle behind S: they are read when S leaves a
        # bit's last pass, and S was in the same bit (same i, j, step, word) the cycle
        # before, since every LUT has two passes or more (asserted above). `z` is
        # combinational: an instruction's first two states are never in the LUT phase,
        # so the state before it is not known a cycle ahead.
        ra_shape = range(len(ROM_WORDS) + 1)
        starts = Array(Const(x, ra_shape) for x in LUT_START)
        last_ra = Array(Const(x, ra_shape) for x in ends)
        s_sel = {"ra": Signal(ra_shape, name="sel_ra"),
                 "ra_end": Signal(ra_shape, name="sel_ra_end"), "cnt": Signal(7, name="sel_cnt"),
                 **{f"oh_{r}": Signal(C, name=f"sel_oh_{r}") for r in ("x", "y", "k")}}

        def sel_of(raw):
            """s_sel's value for a lut_select() result."""
            return {"ra": starts[raw["lut"]], "ra_end": last_ra[raw["lut"]], "cnt": raw["cnt"],
                    **{f"oh_{r}": onehot(raw[r]) for r in ("x", "y", "k")}}

        def registered(raw, name):
            q = {k: Signal.like(v, name=f"{name}_{k}") for k, v in raw.items()}
            m.d.sync += [q[k].eq(v) for k, v in raw.items()]
            return q

        nb = registered(lut_select({**s_st, "i": s_st["i"] + 1}), "nb")
        nj = registered(lut_select({**s_st, "i": Const(0, 7), "j": s_st["j"] + 1,
                                    "step": Const(2, 3)}), "nj")
        z = lut_select({**s_st, "i": Const(0, 7), "step": Const(1, 3)})
        sel_next = {k: Signal.like(v, name=f"sel_next_{k}") for k, v in s_sel.items()}
        with m.If(s_st["ph"] != Phase.LUT):
            m.d.comb += [sel_next[k].eq(v) for k, v in sel_of(z).items()]
        with m.Elif(s_sel["ra"] != s_sel["ra_end"]):
            m.d.comb += [sel_next[k].eq(v) for k, v in s_sel.items()]
            m.d.comb += sel_next["ra"].eq(s_sel["ra"] + 1)
        with m.Elif(s_st["i"] + 1 != s_sel["cnt"]):
            m.d.comb += [sel_next[k].eq(v) for k, v in sel_of(nb).items()]
        with m.Else():
            m.d.comb += [sel_next[k].eq(v) for k, v in sel_of(nj).items()]

        # -- the two stages' next values: from the head (a load) or from S ---------------
        # (no instruction starts in the LUT phase: the head's state needs no LUT selection)
        h_terms = first_terms(w)
        w_bounds = word_bounds(w)   # loaded into S's registers with the word
        s_bounds = {k: Signal(v.shape(), name=f"s_bounds_{k}") for k, v in w_bounds.items()}
        s_terms = terms_of(s_bounds, view(GENERIC, iw).d)
        g_head, g_cont = (micro_op(h_st, None, h_terms, first=True),
                          micro_op(s_st, s_sel, s_terms))
        (h_nx, h_last), (s_nx, s_last) = (next_state(h_st, None, h_terms, first=True),
                                          next_state(s_st, s_sel, s_terms))

        # `last`: U's micro-op ends its instruction (a MOVW's: the transfer unit's count)
        last = Signal()
        m.d.comb += last.eq(active & Mux(u_xfer, self.xfer.done, u_last))
        load = Signal()
        m.d.comb += load.eq(self.head.valid & (~active | last))
        m.d.comb += self.head.pop.eq(load)

        with m.If(load):
            m.d.sync += [s_bounds[k].eq(v) for k, v in w_bounds.items()]
            m.d.sync += [active.eq(1), iw.eq(w), illegal.eq(~h_legal),
                         u_ph.eq(Mux(h_legal, h_ph0, Phase.ONE)),
                         u_xfer.eq(h_legal & (h_ph0 == Phase.XFER)),
                         u_last.eq(~h_legal | h_last)]
            # the head's micro-op even for an illegal word: its one NOP is made at the
            # output, from `illegal`, so the validator stays off these registers' inputs
            m.d.sync += [r.eq(g_head[k]) for k, r in u_regs.items()]
            m.d.sync += [s_st[k].eq(h_nx[k]) for k in NEXT]
        with m.Elif(last):
            m.d.sync += active.eq(0)
        with m.Elif(active):
            m.d.sync += [u_ph.eq(s_st["ph"]), u_xfer.eq(s_st["ph"] == Phase.XFER),
                         u_last.eq(s_last)]
            m.d.sync += [r.eq(g_cont[k]) for k, r in u_regs.items()]
            m.d.sync += [s_st[k].eq(s_nx[k]) for k in NEXT]
            m.d.sync += [s_sel[k].eq(v) for k, v in sel_next.items()]

        # -- outputs ---------------------------------------------------------------------
        run = Signal()    # a MOVW runs: the transfer unit drives the APs' row ports
        m.d.comb += [run.eq(active & u_xfer),
                     self.active.eq(active), self.illegal.eq(illegal), self.phase.eq(u_ph),
                     self.xfer.load.eq(load), self.xfer.run.eq(run), self.xfer.last.eq(last),
                     self.xfer.ins.eq(iw)]
        # an illegal word issues one NOP (op NOP = 0 and every operand 0, as golden's)
        m.d.comb += [self.uop[k].eq(Mux(illegal, 0, u_regs[k])) for k in uop_layout(ap).members]
        return m


# -- part 3: the transfer unit (MOVW; XROWS only sets the decoder's registers) -------------
class TransferUnit(wiring.Component):
    """MOVW, pipelined over two APs' row ports: in cycle xi it reads word xi of the
    source AP (row srow + xi * stride, while xi < count) and writes word xi - 1 into the
    destination (row drow + xi - 1, bits [d, d + n) from the source's [a, a + n), when
    xi >= 1): count + 1 cycles, `done` in the last (golden/model/tile.py: Tile._movw).
    `data` is the word to write: with the tile's port register (`tile.port_register`) a
    write executes the cycle after it issues, and `data` is then the word for the write
    issued the cycle before, shifted from the source's read of this cycle.
    `fault`: one of MOVW_FAULTS, or VERIFY (every one behind `tb_fault`)."""

    def __init__(self, cfg: Config, fault: str | None = None):
        assert fault is None or fault in MOVW_FAULTS or fault == VERIFY, fault
        self.cfg, self.fault = cfg, fault
        self.late = cfg.tile.port_register
        self.width = max(a.cols for a in _ap_cfgs(cfg))
        aw = 16   # the row pointers: XROWS' 16-bit rows, stepped by up to the stride
        super().__init__({
            **({"tb_fault": In(MUTANT_PORT_BITS)} if fault == VERIFY else {}),
            "ctl": In(xfer_control_signature()),
            "head": In(head_layout()),     # the queue head (loaded with the instruction)
            "xrows": In(XROWS_REGS),
            **_readback_members(cfg, rows=False),
            "rd": Out(1), "sap": Out(MOVW_FORMAT["sap"].width), "src_addr": Out(aw),
            "wr": Out(1), "dap": Out(MOVW_FORMAT["dap"].width), "dst_addr": Out(aw),
            "data": Out(self.width), "mask": Out(self.width)})

    def elaborate(self, platform):
        m = Module()
        cfg, wmax = self.cfg, self.width
        verify = self.fault == VERIFY
        mut = Mutants(tile_mutant_numbers(), self.fault, self.tb_fault if verify else None)
        load, run, last = self.ctl.load, self.ctl.run, self.ctl.last
        movw = view(MOVW_FORMAT, self.ctl.ins.as_value())
        w = self.head.as_value()
        xi = Signal(17)                 # MOVW cycle: reads word xi, writes word xi - 1
        src_ptr, dst_ptr = Signal(16, name="src_ptr"), Signal(16, name="dst_ptr")
        x_stride = self.xrows.stride

        def done_at(x, count):
            """MOVW's last cycle: xi == count (count + 1 cycles), under the mutants."""
            return mut.pick("movw_last_word_lost",
                            mut.pick("movw_one_more", x == count, x == count + 1),
                            x + 1 == count)

        # `done` is kept with xi (loaded and stepped with it, like rd_left below), so no
        # comparator lies between xi and the sequencer's load, which selects every
        # sequencer register
        x_done = Signal(name="x_done")
        m.d.comb += self.ctl.done.eq(x_done)
        with m.If(load):
            m.d.sync += [xi.eq(0), src_ptr.eq(self.xrows.srow), dst_ptr.eq(self.xrows.drow),
                         x_done.eq(done_at(Const(0, 17), view(MOVW_FORMAT, w).count))]
        with m.Elif(run & ~last):
            m.d.sync += [xi.eq(xi + 1), x_done.eq(done_at(xi + 1, movw.count)), src_ptr.eq(
                src_ptr + mut.pick("movw_stride_ignored", x_stride, 1))]
            with m.If(mut.pick("movw_first_dst_skipped", xi != 0, 1)):
                m.d.sync += dst_ptr.eq(dst_ptr + mut.pick("movw_dst_strided", 1, x_stride))

        # xi < count (a word left to read) and xi != 0 (a word to write), registered with
        # xi: the comparators stay off the path into the arrays' port multiplexers
        x_rd, x_wr, rd_left, wr_on = (Signal(name="x_rd"), Signal(name="x_wr"),
                                      Signal(name="rd_left"), Signal(name="wr_on"))
        with m.If(load):
            m.d.sync += [rd_left.eq(view(MOVW_FORMAT, w).count != 0), wr_on.eq(0)]
        with m.Elif(run & ~last):
            m.d.sync += [rd_left.eq(xi + 1 < movw.count), wr_on.eq(1)]
        m.d.comb += [x_rd.eq(run & rd_left), x_wr.eq(run & wr_on)]
        sap = mut.pick("movw_swapped", movw.sap, movw.dap)
        dap = mut.pick("movw_swapped", movw.dap, movw.sap)
        # the source, shift and mask of the write data: this cycle's, or with the port
        # register the previous cycle's (the load of the next instruction may change
        # them in the cycle the last write waits in the register)
        d_sap = Signal(len(sap), name="d_sap")
        src_word = Signal(wmax)
        with m.Switch(d_sap):
            for k in range(1 + cfg.tile.maps):
                with m.Case(k):
                    m.d.comb += src_word.eq(getattr(self, f"rdata{k}"))
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
            return field_move_amount(sh, wmax), (fmask << x_d)[:wmax]

        x_sh, x_mask = Signal(range(2 * wmax + 1), name="x_sh"), Signal(wmax, name="x_mask")
        sh_h, mask_h = movw_shift(w)    # the head's, registered when it is loaded
        with m.If(load):
            m.d.sync += [x_sh.eq(sh_h), x_mask.eq(mask_h)]
        d_sh, d_mask = Signal.like(x_sh, name="d_sh"), Signal.like(x_mask, name="d_mask")
        m.d["sync" if self.late else "comb"] += [d_sap.eq(sap), d_sh.eq(x_sh),
                                                 d_mask.eq(x_mask)]
        x_data = Signal(wmax)
        m.d.comb += x_data.eq(field_move(src_word, d_sh, wmax) & d_mask)
        m.d.comb += [self.rd.eq(x_rd), self.sap.eq(sap), self.src_addr.eq(src_ptr),
                     self.wr.eq(x_wr), self.dap.eq(dap), self.dst_addr.eq(dst_ptr),
                     self.data.eq(x_data), self.mask.eq(x_mask)]
        return m


# -- part 4: the host port ------------------------------------------------------------------
class HostPort(wiring.Component):
    """The host's access to the arrays while the tile is idle (`idle`: nothing runs,
    nothing queued): HOST_READ / HOST_WRITE a row of AP `host_ap`, HOST_READ_COL /
    HOST_WRITE_COL a column of the CAP (2D). `req` is the micro-op it asks of that AP
    this cycle (op NOP: none); a read's data comes back host_read_latency cycles after
    on `host_rdata` with `host_rvalid`: the cycle after, or four with the tile's port
    registers (golden/model/tile.py: Tile.host_*; golden/spec/isa.py: host_read_latency).

    With the port registers (`tile.port_register`) `req` is registered: what the host
    asks in a cycle, decoded and checked against `idle` in that cycle, reaches the port
    multiplexer the cycle after. So no path runs from the system's packet engine (or the
    board's link) through the multiplexer into the APs (docs/fpga.md, "Critical paths",
    after 13 and 16). The sources still never meet: a request registered while idle
    leaves the register in the cycle the sequencer loads, a cycle before it issues. The
    data read is registered too, after the multiplexer of the answering AP (after 18)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        hw = host_widths(cfg)
        super().__init__({
            "host_op": In(3), "host_ap": In(3), "host_addr": In(hw["addr"]),
            "host_wdata": In(hw["data"]), "host_mask": In(hw["mask"]),
            "host_rdata": Out(hw["data"]), "host_rvalid": Out(1),
            "idle": In(1), **_readback_members(cfg),
            "req": Out(host_request_layout(cfg))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        n_aps = 1 + cfg.tile.maps
        if cfg.tile.port_register:     # the request register (reset: a NOP, op 0)
            req = Signal(host_request_layout(cfg), name="req_in")
            m.d.sync += self.req.eq(req)
        else:
            req = self.req
        # the read asked for this cycle (`rq_*`), delayed to the cycle its data comes back
        rq_pending, rq_col, rq_ap = (Signal(name="rq_pending"), Signal(name="rq_col"),
                                 Signal(3, name="rq_ap"))
        host_rd_pending, host_rd_col = Signal(name="host_rd_pending"), Signal(name="host_rd_col")
        host_rd_ap = Signal(3, name="host_rd_ap")
        # (the data register below is the latency's last cycle, with the port registers)
        lat = host_read_latency(cfg.tile.port_register) - int(cfg.tile.port_register)
        stage = (rq_pending, rq_col, rq_ap)
        for n in range(lat):
            nxt = ((host_rd_pending, host_rd_col, host_rd_ap) if n == lat - 1
                   else tuple(Signal.like(v, name=f"rd{n}_{i}") for i, v in enumerate(stage)))
            m.d.sync += [a.eq(b) for a, b in zip(nxt, stage, strict=True)]
            stage = nxt
        # the answering AP's data; with the port registers registered once more after this
        # multiplexer, so that no path runs from an AP's read port through the packet
        # engine's COPY into a tile's request register (docs/fpga.md, after 18)
        if cfg.tile.port_register:
            rdata, rvalid = Signal.like(self.host_rdata), Signal()
            m.d.sync += [self.host_rdata.eq(rdata), self.host_rvalid.eq(rvalid)]
        else:
            rdata, rvalid = self.host_rdata, self.host_rvalid
        with m.If(host_rd_col):
            if cfg.ap.two_d:
                m.d.comb += [rdata.eq(self.rcol),
                             rvalid.eq(host_rd_pending & self.rcol_valid)]
        with m.Else():
            with m.Switch(host_rd_ap):
                for k in range(n_aps):
                    with m.Case(k):
                        m.d.comb += [rdata.eq(getattr(self, f"rdata{k}")),
                                     rvalid.eq(host_rd_pending
                                               & getattr(self, f"rd_valid{k}"))]

        m.d.comb += req.ap.eq(self.host_ap)
        with m.If(self.idle):
            with m.Switch(self.host_op):
                with m.Case(HOST_READ):
                    with m.If(self.host_ap < n_aps):
                        m.d.comb += [req.op.eq(UOpcode.RDROW), req.addr.eq(self.host_addr)]
                        m.d.comb += [rq_pending.eq(1), rq_ap.eq(self.host_ap)]
                with m.Case(HOST_WRITE):
                    with m.If(self.host_ap < n_aps):
                        m.d.comb += [req.op.eq(UOpcode.WRROW), req.addr.eq(self.host_addr),
                                     req.data.eq(self.host_wdata),
                                     req.mask.eq(self.host_mask)]
                if cfg.ap.two_d:
                    with m.Case(HOST_READ_COL):
                        with m.If(self.host_ap == 0):
                            m.d.comb += [req.op.eq(UOpcode.RDCOL), req.col.eq(self.host_addr)]
                            m.d.comb += [rq_pending.eq(1), rq_col.eq(1)]
                    with m.Case(HOST_WRITE_COL):
                        with m.If(self.host_ap == 0):
                            m.d.comb += [req.op.eq(UOpcode.WRCOL), req.col.eq(self.host_addr),
                                         req.vec.eq(self.host_wdata)]
        return m


# -- part 5: counters and status ------------------------------------------------------------
class Counters(wiring.Component):
    """The tile counters (COUNTER_KEYS, golden Controller.counters: every issued micro-op
    in `cycles` and its UOP_COUNTER, MOVW's row reads and writes in row_transfers, the
    instruction in `instructions` or `errors` in its last cycle), the sticky `error`
    flag, and the CSR read mux (csr_sel: a counter's index, or len(COUNTER_KEYS) for
    status: busy, error). `fault`: one of COUNTER_FAULTS, or VERIFY (every one behind
    `tb_fault`, and the counters loadable with `tb_preset`)."""

    def __init__(self, cfg: Config, fault: str | None = None):
        assert fault is None or fault in COUNTER_FAULTS or fault == VERIFY, fault
        self.cfg, self.fault = cfg, fault
        super().__init__({
            **(verify_ports(cfg) if fault == VERIFY else {}),
            "active": In(1), "last": In(1), "illegal": In(1),   # the sequencer's state
            "op": In(UOpcode),                                   # the micro-op it issues
            "xfer": In(1), "x_rd": In(1), "x_wr": In(1),         # a MOVW cycle: read, write
            "busy": In(1),
            "csr_sel": In(4), "csr_data": Out(cfg.ap.counter_bits), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        verify = self.fault == VERIFY
        mut = Mutants(tile_mutant_numbers(), self.fault, self.tb_fault if verify else None)
        issuing, last, u_op = self.active, self.last, self.op
        err = Signal()
        m.d.comb += self.error.eq(err)
        cb = self.cfg.ap.counter_bits
        counters = {k: Signal(cb, name=f"ctl_{k}") for k in COUNTER_KEYS}

        def bump(key, by=1, wrong=None):   # counters[key] + by (wraps), under the mutants
            return mut.bump(counters[key], by, f"ctr_skip_{key}", wrong)

        with m.If(issuing):
            m.d.sync += bump("cycles")
            with m.If(last):
                with m.If(self.illegal):
                    m.d.sync += [bump("errors"), err.eq(1)]
                with m.Else():
                    m.d.sync += bump("instructions")
        with m.If(self.xfer):
            m.d.sync += bump("row_transfers", (self.x_rd, self.x_wr), ("ctr_movw_by_one", 1))
        with m.Elif(issuing):
            with m.Switch(u_op):
                with m.Case(UOpcode.CMP, UOpcode.CMPA):
                    m.d.sync += bump("compares", 1,
                                     ("ctr_cmpa_by_two", Mux(u_op == UOpcode.CMPA, 2, 1)))
                with m.Case(UOpcode.WR):
                    m.d.sync += bump("writes")
                with m.Case(UOpcode.RDROW, UOpcode.WRROW):
                    m.d.sync += bump("row_transfers")
                with m.Case(UOpcode.RDCOL, UOpcode.WRCOL, UOpcode.MVCOL):
                    m.d.sync += bump("col_transfers")
                with m.Case(UOpcode.ROWEN):
                    m.d.sync += bump("rowen")
                with m.Case(UOpcode.NOP):
                    m.d.sync += bump("nops")
        if verify:      # test-only: every counter loaded with tb_preset (near its top)
            with m.If(self.tb_load):
                m.d.sync += [c.eq(self.tb_preset) for c in counters.values()]
        with m.Switch(self.csr_sel):
            for idx, key in enumerate(COUNTER_KEYS):
                with m.Case(idx):
                    m.d.comb += self.csr_data.eq(counters[key])
            with m.Case(len(COUNTER_KEYS)):
                m.d.comb += self.csr_data.eq(Cat(self.busy, err))
        return m


# -- the tile: the parts and the APs -----------------------------------------------------------
class Tile(wiring.Component):
    """The tile: the CAP (`core`), the MAPs (`map1`..`mapK`) and the controller's parts
    (`queue`: InstrQueue, `seq`: Sequencer, `transfer`: TransferUnit, `host`: HostPort,
    `ctr`: Counters). Its ports and module name are the controller top's
    (controller_signature, controller_module_name).

    `fault` deliberately breaks the sequencer (FAULTS), drops one check of the
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

    def _part_fault(self, table: dict) -> str | None:
        """The fault a part elaborates: this tile's, if it is one of `table` or VERIFY."""
        return self.fault if self.fault in table or self.fault == VERIFY else None

    def elaborate(self, platform):
        m = Module()
        cfg, ap = self.cfg, self.cfg.ap
        verify = self.fault == VERIFY

        preg = cfg.tile.port_register
        m.submodules.core = core = APCore(ap, registered=preg)
        maps = []
        for k in range(cfg.tile.maps):
            maps.append(MapMemory(cfg.map_ap) if cfg.tile.map_memory == "bram"
                        else APCore(cfg.map_ap, registered=preg))
            m.submodules[f"map{k + 1}"] = maps[-1]
        aps = [core] + maps
        m.submodules.queue = queue = InstrQueue(cfg, _dropped(self.fault))
        m.submodules.seq = seq = Sequencer(cfg, self.fault if self.fault in FAULTS else None)
        m.submodules.transfer = xfer = TransferUnit(cfg, self._part_fault(MOVW_FAULTS))
        m.submodules.host = host = HostPort(cfg)
        m.submodules.ctr = ctr = Counters(cfg, self._part_fault(COUNTER_FAULTS))

        # the instruction stream into the queue, its head into the sequencer, which runs
        # the transfer unit; XROWS' registers into the transfer unit
        m.d.comb += [queue.s_data.eq(self.s_data), queue.s_valid.eq(self.s_valid),
                     self.s_ready.eq(queue.s_ready)]
        wiring.connect(m, queue.head, seq.head)
        wiring.connect(m, seq.xfer, xfer.ctl)
        m.d.comb += [xfer.head.eq(queue.head.word), xfer.xrows.eq(queue.xrows)]
        for k, a_ in enumerate(aps):
            m.d.comb += [getattr(xfer, f"rdata{k}").eq(a_.rdata),
                         getattr(host, f"rdata{k}").eq(a_.rdata),
                         getattr(host, f"rd_valid{k}").eq(a_.rd_valid)]
        if ap.two_d:
            m.d.comb += [host.rcol.eq(core.rcol), host.rcol_valid.eq(core.rcol_valid)]

        # busy: an instruction runs or waits; the host port works only when not
        busy = Signal()
        m.d.comb += [busy.eq(seq.active | queue.pending), self.busy.eq(busy),
                     host.idle.eq(~seq.active & ~queue.head.valid),
                     host.host_op.eq(self.host_op), host.host_ap.eq(self.host_ap),
                     host.host_addr.eq(self.host_addr), host.host_wdata.eq(self.host_wdata),
                     host.host_mask.eq(self.host_mask), self.host_rdata.eq(host.host_rdata),
                     self.host_rvalid.eq(host.host_rvalid)]

        # -- drive the APs: MOVW, the sequencer's micro-op, or the host port when idle -----
        # `drv[k]`: what AP k is asked this cycle; with the port register
        # (tile.port_register) AP k executes it the cycle after, from flip-flops (an AP
        # core registers the per-row and per-column terms its inputs decode to, a MAP in
        # block RAM the inputs), so that no path runs from the sources' selects through
        # the multiplexer and the decoders into the arrays (docs/fpga.md, "Critical
        # paths"). The sources never meet in the register: the sequencer issues only the
        # cycle after it loads, when the host port was not idle (and the host port's
        # request, registered too, comes from a cycle the tile was idle: HostPort).
        # A MOVW write's data bypasses the register: it is the source's read, which comes
        # back only in the cycle the write executes (TransferUnit.data).
        u, req = seq.uop, host.req
        for k, a_ in enumerate(aps):
            names = list(port_widths(cfg.ap_of(k)))
            drv = {n: Signal.like(getattr(a_, n), name=f"drv{k}_{n}") for n in names}
            drv["xw"] = Signal(name=f"drv{k}_xw")    # a MOVW write: data from the transfer
            with m.If(xfer.rd & (xfer.sap == k)):
                m.d.comb += [drv["op"].eq(Op.RDROW), drv["addr"].eq(xfer.src_addr)]
            with m.Elif(xfer.wr & (xfer.dap == k)):
                m.d.comb += [drv["op"].eq(Op.WRROW), drv["addr"].eq(xfer.dst_addr),
                             drv["mask"].eq(xfer.mask), drv["xw"].eq(1)]
            if k == 0:
                with m.Elif(seq.active & ~seq.xfer.run):
                    m.d.comb += [drv[n].eq(u[n]) for n in ("op", "key", "mask", "addr", "addr2")]
                    if ap.two_d:
                        m.d.comb += [drv[n].eq(u[n]) for n in ("col", "col2", "shift")]
            with m.Elif((req.op != UOpcode.NOP) & (req.ap == k)):
                m.d.comb += [drv[n].eq(req[n]) for n in ("op", "addr", "data", "mask")]
                if k == 0 and ap.two_d:
                    m.d.comb += [drv[n].eq(req[n]) for n in ("col", "vec")]
            if preg:
                # an AP core registers what its inputs decode to (APCore `registered`)
                # and takes `data` in the cycle it executes; a MapMemory takes its inputs
                # from this register
                here = ("data", "xw") if isinstance(a_, APCore) else tuple(drv)
                reg = {n: Signal.like(drv[n], name=f"port{k}_{n}") for n in here}
                m.d.sync += [reg[n].eq(drv[n]) for n in here]
                drv = {**drv, **reg}
            m.d.comb += [getattr(a_, n).eq(drv[n]) for n in names if n != "data"]
            m.d.comb += a_.data.eq(Mux(drv["xw"], xfer.data, drv["data"]))

        # -- counters and status ------------------------------------------------------------
        m.d.comb += [ctr.active.eq(seq.active), ctr.last.eq(seq.xfer.last),
                     ctr.illegal.eq(seq.illegal), ctr.op.eq(u.op), ctr.xfer.eq(seq.xfer.run),
                     ctr.x_rd.eq(xfer.rd), ctr.x_wr.eq(xfer.wr), ctr.busy.eq(busy),
                     ctr.csr_sel.eq(self.csr_sel), self.csr_data.eq(ctr.csr_data),
                     self.error.eq(ctr.error)]
        if verify:
            m.d.comb += [xfer.tb_fault.eq(self.tb_fault), ctr.tb_fault.eq(self.tb_fault),
                         ctr.tb_load.eq(self.tb_load), ctr.tb_preset.eq(self.tb_preset)]
        # the micro-op stream, for simulator testbenches (internal signals, not ports)
        self.uop = {"valid": seq.active & ~seq.xfer.run, "op": u.op.as_value(),
                    "key": u.key, "mask": u.mask, "addr": u.addr, "addr2": u.addr2}
        if ap.two_d:
            self.uop.update(col=u.col, col2=u.col2, shift=u.shift)
        self.parts = {"queue": queue, "seq": seq, "transfer": xfer, "host": host, "ctr": ctr}
        return m


APController = Tile   # the tile's former name (hdl/gen/controller.py re-exports both)
