"""The tile's parts (hdl/gen/tile.py), each alone in Amaranth's simulator against the
golden model: the queue's decoder says legal exactly when golden `validate` does and keeps
golden's XROWS registers; the sequencer issues golden `expand`'s micro-op stream back to
back; the transfer unit reads and writes the rows golden's MOVW does, in its cycles; the
host port does to the arrays what golden's host_* methods do; the counters count what
golden's tile counts. The whole tile is tests/test_hdl_controller.py's and
tests/test_hdl_tile.py's; that the split tile equals the one-piece one is
scripts/equiv_tile.py's (docs/architecture.md, "The tile's parts").
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from amaranth.sim import Simulator
from test_hdl_controller import same_uop

from bfimna.golden.host.stimulus import (
    random_instruction,
    random_program,
    random_tile_program,
    random_transfer,
)
from bfimna.golden.model.ap import APModel
from bfimna.golden.model.controller import COUNTER_KEYS, expand
from bfimna.golden.model.tile import Tile as GoldenTile
from bfimna.golden.model.tile import movw_cycles
from bfimna.golden.spec.config import config_from_dict
from bfimna.golden.spec.isa import (
    TRANSFER_OPS,
    WORD_BITS,
    Instr,
    Opc,
    decode,
    encode,
    movw_src_rows_ok,
    validate,
)
from bfimna.golden.spec.uops import Op, UOp
from bfimna.hdl.gen.tile import (
    HOST_READ,
    HOST_READ_COL,
    HOST_WRITE,
    HOST_WRITE_COL,
    Counters,
    HostPort,
    InstrQueue,
    Sequencer,
    TransferUnit,
    col_onehot,
    col_range,
)

# a 2D CAP with two MAPs of other shapes (MOVW between every pair), small counters (wrap)
CFG = config_from_dict({"name": "parts", "ap": {"rows": 9, "cols": 20, "dims": 2,
                                                "counter_bits": 8},
                        "ctrl": {"queue_depth": 4},
                        "tile": {"maps": 2, "map_rows": 13, "map_cols": 11}})
CFG1 = config_from_dict({"name": "parts1", "ap": {"rows": 6, "cols": 14, "dims": 1},
                         "ctrl": {"queue_depth": 2}})


def golden_reason(cfg, ins: Instr, xrows) -> str | None:
    """Why golden's tile refuses `ins` (None: legal), as golden/model/tile.py asks."""
    if ins.op in TRANSFER_OPS:
        return validate(ins, cfg.ap, cfg, xrows)
    return validate(ins, cfg.ap)


def run(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


# -- instruction queue and decoder -----------------------------------------------------------
def edge_words(cfg, rng, n: int) -> list[int]:
    """Words near the legal ones: legal words with one bit flipped (a field one off, a
    reserved bit set, another opcode), XROWS/MOVW pairs at the rows' limits, and raw
    random words (mostly an unknown opcode or a reserved bit)."""
    legal = random_tile_program(cfg, int(rng.integers(2**31)), n, transfer_share=0.4,
                                illegal_share=0.0, max_width=8)
    out = []
    for w in legal:
        out.append(w)
        out.append(w ^ (1 << int(rng.integers(WORD_BITS))))
    for _ in range(n // 4):
        out.append(int(rng.integers(2**62)) << int(rng.integers(3)))
    n_aps = 1 + cfg.tile.maps
    for ap in range(n_aps):
        dap = (ap + 1) % n_aps
        rows = min(cfg.ap_of(ap).rows, cfg.ap_of(dap).rows)
        out.append(encode(Instr(op=Opc.XROWS, srow=0, drow=0, stride=1)))
        out += [encode(Instr(op=Opc.MOVW, sap=ap, dap=dap, a=0, d=0, n=1, count=rows + k))
                for k in (0, 1)]
    return out


def test_queue_decoder_matches_golden_validate(seed):
    """InstrQueue: words come out in order; head.legal is golden's verdict on each (its
    XROWS registers included), the registers follow every legal XROWS popped, s_ready
    falls when the queue is full."""
    rng = np.random.default_rng(seed)
    words = edge_words(CFG, rng, 40)
    rng.shuffle(words)
    seen = queue_verdicts(words, rng)
    print(f"[queue] seed {seed}: {seen}")
    assert seen["legal"] > 20 and seen["illegal"] > 20 and seen["full"] and seen["xrows"]


def test_movw_source_rows_split_equals_golden(seed):
    """MOVW's source rows check, split over the queue's two stages without a multiplier
    (hdl/gen/tile.py, `_movw_src_rows_split`), says what golden's `src_rows` rule says
    around each of its bounds: XROWS / MOVW pairs from every AP, with srow, stride and
    count at 0, 1, the rows of either AP and one either side, the last row the MOVW may
    reach and one past it, and the fields' largest values."""
    rng = np.random.default_rng(seed)
    rows = sorted({CFG.ap_of(k).rows for k in range(1 + CFG.tile.maps)})
    near = sorted({v + d for v in (0, *rows) for d in (-1, 0, 1) if v + d >= 0})
    # powers of two and one past them: a count - 1 or stride whose low bits are 0 or 1,
    # so a product taken from the low bits alone would look small
    wraps = [(1 << k) + d for k in range(3, 16) for d in (0, 1)]
    words, cases = [], []
    for sap in range(1 + CFG.tile.maps):
        dap = (sap + 1) % (1 + CFG.tile.maps)
        for _ in range(100):
            srow = int(rng.choice(near + [0xFFFF]))
            stride = int(rng.choice(near + [0xFF] + [w for w in wraps if w < 0x100]))
            count = int(rng.choice(near + [2, 3, 0xFFFF] + wraps))
            if rng.random() < 0.4 and stride:       # reach the source's last row, or one past
                last = CFG.ap_of(sap).rows - 1 + int(rng.integers(2))
                count = max(1, (last - srow) // stride + 1) if last >= srow else count
            words += [encode(Instr(op=Opc.XROWS, srow=srow, drow=0, stride=stride)),
                      encode(Instr(op=Opc.MOVW, sap=sap, dap=dap, a=0, d=0, n=1,
                                   count=count))]
            cases.append((sap, srow, stride, count))
    seen = queue_verdicts(words, rng)
    ok = sum(movw_src_rows_ok(srow, stride, count, CFG.ap_of(sap).rows)
             for sap, srow, stride, count in cases)
    print(f"[queue] seed {seed}: {len(cases)} MOVWs, {ok} within the source rows; {seen}")
    assert ok > 30 and len(cases) - ok > 30     # both sides of the rule, each asserted above


def queue_verdicts(words, rng) -> dict:
    """Push `words` through an InstrQueue of CFG in random batches and pop them; assert
    each head and its verdict (golden's, with the XROWS registers), and the registers."""
    dut = InstrQueue(CFG)
    seen = {"legal": 0, "illegal": 0, "full": 0, "xrows": 0}

    async def bench(ctx):
        xrows = (0, 0, 0)
        pending = list(words)
        while pending:
            batch = []     # push a random number of words, while the queue takes them
            for _ in range(int(rng.integers(1, 7))):
                if not pending:
                    break
                ctx.set(dut.s_valid, 1)
                ctx.set(dut.s_data, pending[0])
                if not ctx.get(dut.s_ready):
                    seen["full"] += 1
                    break
                await ctx.tick()
                batch.append(pending.pop(0))
            ctx.set(dut.s_valid, 0)
            for w in batch:        # then pop them, in order, checking each head
                for _ in range(3):
                    if ctx.get(dut.head.valid):
                        break
                    await ctx.tick()
                assert ctx.get(dut.head.valid) and ctx.get(dut.pending)
                assert ctx.get(dut.head.word.as_value()) == w
                ins = decode(w)
                reason = golden_reason(CFG, ins, xrows)
                got = ctx.get(dut.head.legal)
                assert got == (reason is None), (f"{w:#018x} ({ins}): RTL legal={got}, golden "
                                                 f"{reason or 'legal'}; xrows {xrows}")
                seen["legal" if got else "illegal"] += 1
                ctx.set(dut.head.pop, 1)
                await ctx.tick()
                ctx.set(dut.head.pop, 0)
                if reason is None and ins.op == Opc.XROWS:
                    xrows = (ins.srow, ins.drow, ins.stride)
                    seen["xrows"] += 1
                x = dut.xrows
                assert (ctx.get(x.srow), ctx.get(x.drow), ctx.get(x.stride)) == xrows
        await ctx.tick()
        assert not ctx.get(dut.head.valid) and not ctx.get(dut.pending)

    run(dut, bench)
    return seen


# -- sequencer and microcode ROM -------------------------------------------------------------
def every_phase_path(ap, rng) -> list[int]:
    """Random legal words, one per kind of LUT-phase entry and exit the sequencer has
    (its registered LUT selection: from CLR1 or SHRR, bit to bit, LUT phase to LUT
    phase): every computing opcode, MUL with and without s over two digits or more,
    ADDI / SUBI with both immediate signs; and one per way through the phases that read
    S's registered word terms (`s_terms`): CLAMP with and without s over two columns or
    more, RELU, CLEAR and COPY (MUL and SHR above)."""
    def kind(ins):
        op = Opc(ins.op)
        if op == Opc.MUL:
            return (op, ins.s) if ins.m >= 2 and ins.n >= 2 else None
        if op in (Opc.ADDI, Opc.SUBI):
            return (op, ins.imm < 0) if ins.n >= 2 else None
        if op == Opc.CLAMP:
            return (op, ins.s) if ins.n - ins.m >= 2 else None
        return (op,) if op in LUT_OPCODES + TERM_OPCODES and ins.n >= 2 else None
    want: set[tuple] = {(o, s) for o in (Opc.MUL, Opc.ADDI, Opc.SUBI, Opc.CLAMP)
                        for s in (False, True)}
    want |= {(o,) for o in LUT_OPCODES + TERM_OPCODES
             if o not in (Opc.MUL, Opc.ADDI, Opc.SUBI) and (ap.two_d or o != Opc.REDUCE)}
    words, seen = [], set()
    for _ in range(20000):
        ins = random_instruction(ap, rng, 8)
        k = kind(ins)
        if k in want and k not in seen:
            seen.add(k)
            words.append(encode(ins))
        if seen == want:
            return words
    raise AssertionError(f"no random word of {sorted(map(str, want - seen))}")


# the opcodes that run a LUT phase (golden _expand's passes())
LUT_OPCODES = (Opc.ADD, Opc.SUB, Opc.ADDI, Opc.SUBI, Opc.MUL, Opc.MAC, Opc.MAX, Opc.MIN,
               Opc.SHR, Opc.REDUCE)
# the other opcodes whose micro-ops read the word's column terms (Sequencer word_terms)
TERM_OPCODES = (Opc.CLEAR, Opc.COPY, Opc.RELU)


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=["2d_k2", "1d"])
def test_sequencer_issues_golden_stream(cfg, seed):
    """Sequencer alone (the queue head and the transfer unit's `done` played by the
    bench): per instruction, golden expand's micro-ops, one a cycle; an illegal word one
    NOP with `illegal`; a MOVW count + 1 cycles of `xfer.run`; no idle cycle while a word
    waits. Besides the random program, a word of every way into and out of a LUT phase
    and through the phases that read the word's terms (`every_phase_path`), back to
    back."""
    rng = np.random.default_rng(seed)
    words = (random_tile_program(cfg, seed, 40, transfer_share=0.25, illegal_share=0.1,
                                 max_width=8) if cfg.tile.maps else
             random_program(cfg.ap, seed, 40, illegal_share=0.1, max_width=8))
    words += every_phase_path(cfg.ap, rng)
    want, xrows = [], (0, 0, 0)
    for w in words:
        ins = decode(w)
        reason = golden_reason(cfg, ins, xrows)
        if reason is not None:
            want.append(("illegal", w))
        elif ins.op == Opc.MOVW:
            want += [("xfer", w)] * movw_cycles(ins.count)
        else:
            want += [(u, w) for u in expand(ins, cfg.ap)]
            if ins.op == Opc.XROWS:
                xrows = (ins.srow, ins.drow, ins.stride)
    dut = Sequencer(cfg)
    fields = list(dut.uop.shape().members)
    got, bubbles = [], [0]

    async def bench(ctx):
        pending, xrows_, xfer_k = list(words), (0, 0, 0), 0
        offered = False
        for _ in range(len(want) * 2 + 50):
            if not pending and not ctx.get(dut.active):
                break
            offer = bool(pending) and rng.random() < 0.8
            ctx.set(dut.head.valid, offer)
            if offer:
                ins = decode(pending[0])
                ctx.set(dut.head.word.as_value(), pending[0])
                ctx.set(dut.head.legal, golden_reason(cfg, ins, xrows_) is None)
            # the transfer unit: done in the count + 1-th cycle of a MOVW
            run_ = ctx.get(dut.xfer.run)
            count = decode(ctx.get(dut.xfer.ins.as_value())).count if run_ else 0
            ctx.set(dut.xfer.done, run_ and xfer_k == count)
            active = ctx.get(dut.active)
            if offered and not active:
                bubbles[0] += 1     # a word waited in the last cycle, nothing runs now
            if active:
                if run_:
                    got.append("xfer")
                elif ctx.get(dut.illegal):
                    got.append("illegal" if ctx.get(dut.uop.op.as_value()) == Op.NOP
                               else "illegal-not-nop")
                else:
                    got.append({f: ctx.get(dut.uop[f].as_value() if f == "op"
                                           else dut.uop[f]) for f in fields})
            xfer_k = xfer_k + 1 if run_ else 0
            popped = offer and ctx.get(dut.head.pop)
            offered = offer      # a word waits: the next cycle must issue something
            await ctx.tick()
            if popped:
                w = pending.pop(0)
                ins = decode(w)
                if ins.op == Opc.XROWS and golden_reason(cfg, ins, xrows_) is None:
                    xrows_ = (ins.srow, ins.drow, ins.stride)

    run(dut, bench)
    print(f"[sequencer] seed {seed}: {len(words)} words, {len(want)} cycles")
    assert len(got) == len(want), f"{len(got)} issue cycles, golden {len(want)}"
    for k, (g, (u, w)) in enumerate(zip(got, want, strict=True)):
        if isinstance(u, str):
            assert g == u, f"cycle {k} ({decode(w)}): RTL {g}, golden {u}"
        else:
            assert isinstance(g, dict) and same_uop(g, u), \
                f"cycle {k} ({decode(w)}): RTL {g}, golden {u}"
    assert bubbles[0] == 0, f"{bubbles[0]} idle cycles with a word waiting"


# -- transfer unit ---------------------------------------------------------------------------
def random_aps(cfg, rng) -> list[APModel]:
    aps = []
    for k in range(1 + cfg.tile.maps):
        a = APModel(cfg.ap_of(k))
        for r in range(a.rows):
            a.row_write(r, int(rng.integers(2**a.cols)), (1 << a.cols) - 1)
        aps.append(a)
    return aps


def test_transfer_unit_moves_like_golden_movw(seed):
    """TransferUnit alone, driven as the sequencer does (load, then run until done): its
    row reads and writes (AP, row, data, mask, cycle) are golden Tile._movw's, it takes
    movw_cycles(count) cycles, and the arrays it leaves equal golden's."""
    rng = np.random.default_rng(seed)
    golden = GoldenTile(CFG)
    init = random_aps(CFG, rng)
    golden.ctl.ap, golden.maps = copy.deepcopy(init[0]), copy.deepcopy(init[1:])
    rtl_aps = copy.deepcopy(init)
    jobs = []
    for _ in range(12):
        xr, mv = random_transfer(CFG, rng)
        jobs.append(((xr.srow, xr.drow, xr.stride), mv))
    dut = TransferUnit(CFG)
    width = dut.width
    log = {"rtl": [], "golden": []}

    # golden's row traffic, cycle by cycle: reads in cycles 0..count-1, writes in 1..count
    for xrows, mv in jobs:
        golden.xrows = xrows
        ev: list = []
        for k, ap in enumerate([golden.cap, *golden.maps]):
            def step(u, k=k, orig=ap.step, ev=ev):
                ev.append((k, u))
                orig(u)
            ap.step = step
        golden._movw(mv)
        for ap in [golden.cap, *golden.maps]:
            del ap.step
        reads = [(k, u.addr) for k, u in ev if u.op == Op.RDROW]
        writes = [(k, u.addr, u.data, u.mask) for k, u in ev if u.op == Op.WRROW]
        log["golden"].append(([(c, *r) for c, r in enumerate(reads)],
                              [(c + 1, *wr) for c, wr in enumerate(writes)],
                              movw_cycles(mv.count)))

    async def bench(ctx):
        for xrows, mv in jobs:
            w = encode(mv)
            ctx.set(dut.xrows.srow, xrows[0])
            ctx.set(dut.xrows.drow, xrows[1])
            ctx.set(dut.xrows.stride, xrows[2])
            ctx.set(dut.head.as_value(), w)
            ctx.set(dut.ctl.load, 1)          # the sequencer loads the MOVW ...
            await ctx.tick()
            ctx.set(dut.ctl.load, 0)
            ctx.set(dut.head.as_value(), int(rng.integers(2**63)))  # the next word, any
            ctx.set(dut.ctl.ins.as_value(), w)
            ctx.set(dut.ctl.run, 1)           # ... and runs it until done
            reads, writes, cyc = [], [], 0
            while True:
                done = ctx.get(dut.ctl.done)
                ctx.set(dut.ctl.last, done)
                rd = wr = None
                if ctx.get(dut.rd):
                    rd = (ctx.get(dut.sap), ctx.get(dut.src_addr))
                    reads.append((cyc, *rd))
                if ctx.get(dut.wr):
                    wr = (ctx.get(dut.dap), ctx.get(dut.dst_addr), ctx.get(dut.data),
                          ctx.get(dut.mask))
                    writes.append((cyc, *wr))
                await ctx.tick()
                cyc += 1
                # the APs: the write lands, the read's data is there the cycle after
                if wr is not None:
                    a = rtl_aps[wr[0]]
                    a.step(UOp(Op.WRROW, addr=wr[1], data=wr[2] & ((1 << a.cols) - 1),
                               mask=wr[3] & ((1 << a.cols) - 1)))
                if rd is not None:
                    rtl_aps[rd[0]].step(UOp(Op.RDROW, addr=rd[1]))
                    ctx.set(getattr(dut, f"rdata{rd[0]}"), rtl_aps[rd[0]].rdata)
                if done or cyc > 1000:
                    break
            ctx.set(dut.ctl.run, 0)
            ctx.set(dut.ctl.last, 0)
            log["rtl"].append((reads, writes, cyc))
            for _ in range(int(rng.integers(0, 3))):     # idle cycles between MOVWs
                await ctx.tick()

    run(dut, bench)
    print(f"[transfer] seed {seed}: {len(jobs)} MOVWs, "
          f"{sum(m.count for _, m in jobs)} words, width {width}")
    for n, ((xrows, mv), got, want) in enumerate(zip(jobs, log["rtl"], log["golden"],
                                                     strict=True)):
        assert got == want, f"MOVW {n} ({mv}, xrows {xrows}): RTL {got}, golden {want}"
    for k, (a, g) in enumerate(zip(rtl_aps, [golden.cap, *golden.maps], strict=True)):
        assert a.rows_as_ints() == g.rows_as_ints(), f"AP {k} differs from golden's"


# -- host port -------------------------------------------------------------------------------
def test_host_port_matches_golden_host_access(seed):
    """HostPort alone: while idle, each host operation is one micro-op on the AP it
    names (golden Tile.host_read / host_write / host_read_col / host_write_col), a read's
    data comes back the cycle after with host_rvalid; nothing while busy, for an AP or
    an operation the tile does not have."""
    rng = np.random.default_rng(seed)
    n_aps = 1 + CFG.tile.maps
    golden = GoldenTile(CFG)
    init = random_aps(CFG, rng)
    golden.ctl.ap, golden.maps = copy.deepcopy(init[0]), copy.deepcopy(init[1:])
    rtl_aps = copy.deepcopy(init)
    dut = HostPort(CFG)
    counts = dict.fromkeys(("read", "write", "read_col", "write_col", "none"), 0)

    async def bench(ctx):
        expect = None       # the data the read of the last cycle must return
        for _ in range(400):
            idle = rng.random() < 0.85
            op = int(rng.choice([0, HOST_READ, HOST_WRITE, HOST_READ_COL, HOST_WRITE_COL,
                                 5, 7], p=[.1, .25, .25, .15, .15, .05, .05]))
            ap = int(rng.integers(n_aps + 1)) if rng.random() < 0.1 else \
                int(rng.integers(n_aps))
            cfg_ap = CFG.ap_of(min(ap, n_aps - 1))
            if op in (HOST_READ_COL, HOST_WRITE_COL):
                addr = int(rng.integers(CFG.ap.cols))
            else:
                addr = int(rng.integers(cfg_ap.rows))
            wdata = int(rng.integers(2**len(dut.host_wdata)))
            mask = int(rng.integers(2**len(dut.host_mask)))
            for port, v in (("idle", idle), ("host_op", op), ("host_ap", ap),
                            ("host_addr", addr), ("host_wdata", wdata), ("host_mask", mask)):
                ctx.set(getattr(dut, port), v)
            # the read asked last cycle comes back now
            assert ctx.get(dut.host_rvalid) == (expect is not None)
            if expect is not None:
                assert ctx.get(dut.host_rdata) == expect
            # what golden's host port does with this operation
            does = None
            if idle and ap < n_aps and op in (HOST_READ, HOST_WRITE):
                does = "read" if op == HOST_READ else "write"
            elif idle and ap == 0 and op in (HOST_READ_COL, HOST_WRITE_COL):
                does = "read_col" if op == HOST_READ_COL else "write_col"
            counts[does or "none"] += 1
            expect = None
            g = golden.ap(ap) if ap < n_aps else None
            if does == "read":
                expect = golden.host_read(ap, addr)
            elif does == "write":
                golden.host_write(ap, addr, wdata & ((1 << g.cols) - 1),
                                  mask & ((1 << g.cols) - 1))
            elif does == "read_col":
                expect = golden.host_read_col(addr)
            elif does == "write_col":
                golden.host_write_col(addr, wdata & ((1 << CFG.ap.rows) - 1))
            # what the port asks of the APs; the bench's APs do it
            req = dut.req
            rop = Op(ctx.get(req.op.as_value()))
            want_op = {None: Op.NOP, "read": Op.RDROW, "write": Op.WRROW,
                       "read_col": Op.RDCOL, "write_col": Op.WRCOL}[does]
            assert rop == want_op, f"host op {op} on AP {ap} (idle {idle}): RTL {rop.name}"
            target = rtl_aps[ctx.get(req.ap)] if rop != Op.NOP else None
            u = None
            if rop != Op.NOP:
                assert ctx.get(req.ap) == ap
                lim = (1 << target.cols) - 1
                u = UOp(rop, addr=ctx.get(req.addr), data=ctx.get(req.data) & lim,
                        mask=ctx.get(req.mask) & lim, col=ctx.get(req.col),
                        vec=ctx.get(req.vec))
            await ctx.tick()
            for k, a in enumerate(rtl_aps):
                a.step(u if a is target else UOp(Op.NOP))
                ctx.set(getattr(dut, f"rdata{k}"), a.rdata)
                ctx.set(getattr(dut, f"rd_valid{k}"), a.rd_valid)
            ctx.set(dut.rcol, rtl_aps[0].rcol)
            ctx.set(dut.rcol_valid, rtl_aps[0].rcol_valid)

    run(dut, bench)
    print(f"[host] seed {seed}: {counts}")
    assert all(counts.values())
    for k, (a, g) in enumerate(zip(rtl_aps, [golden.cap, *golden.maps], strict=True)):
        assert a.rows_as_ints() == g.rows_as_ints(), f"AP {k} differs from golden's"


# -- counters and status ---------------------------------------------------------------------
def test_counters_count_like_golden(seed):
    """Counters alone, fed what the sequencer and the transfer unit do cycle by cycle on
    a random tile program (golden expand, MOVW's reads and writes, illegal words), with
    idle cycles: every counter equals golden Tile's (mod 2^counter_bits: they wrap),
    the status word is (busy, error)."""
    rng = np.random.default_rng(seed)
    words = random_tile_program(CFG, seed, 60, transfer_share=0.3, illegal_share=0.1,
                                max_width=8)
    golden = GoldenTile(CFG).run(words)
    events, xrows = [], (0, 0, 0)
    for w in words:
        ins = decode(w)
        if golden_reason(CFG, ins, xrows) is not None:
            events.append({"op": Op.NOP, "last": 1, "illegal": 1})
        elif ins.op == Opc.MOVW:
            for k in range(movw_cycles(ins.count)):
                events.append({"op": Op(int(rng.integers(10))), "xfer": 1,
                               "x_rd": int(k < ins.count), "x_wr": int(k >= 1),
                               "last": int(k == ins.count)})
        else:
            us = list(expand(ins, CFG.ap))
            events += [{"op": u.op, "last": int(n == len(us) - 1)} for n, u in enumerate(us)]
            if ins.op == Opc.XROWS:
                xrows = (ins.srow, ins.drow, ins.stride)
    dut = Counters(CFG)
    mod = 1 << CFG.ap.counter_bits

    async def bench(ctx):
        for ev in events:
            while rng.random() < 0.2:            # an idle cycle: nothing counts
                ctx.set(dut.active, 0)
                ctx.set(dut.op.as_value(), int(rng.integers(10)))
                for k in ("last", "illegal", "xfer", "x_rd", "x_wr"):
                    ctx.set(getattr(dut, k), int(rng.integers(2)) if k != "xfer" else 0)
                await ctx.tick()
            ctx.set(dut.active, 1)
            ctx.set(dut.op.as_value(), int(ev["op"]))
            for k in ("last", "illegal", "xfer", "x_rd", "x_wr"):
                ctx.set(getattr(dut, k), ev.get(k, 0))
            await ctx.tick()
        ctx.set(dut.active, 0)
        for idx, key in enumerate(COUNTER_KEYS):
            ctx.set(dut.csr_sel, idx)
            got = ctx.get(dut.csr_data)
            assert got == golden.counters[key] % mod, \
                f"{key}: RTL {got}, golden {golden.counters[key]} (mod {mod})"
        for busy in (0, 1):
            ctx.set(dut.busy, busy)
            ctx.set(dut.csr_sel, len(COUNTER_KEYS))
            assert ctx.get(dut.csr_data) == busy | (int(golden.error) << 1)
        assert ctx.get(dut.error) == int(golden.error)

    run(dut, bench)
    print(f"[counters] seed {seed}: {len(events)} issue cycles, golden {golden.counters}")
    assert golden.counters["cycles"] >= mod and golden.error   # wrapped, and an error seen


@pytest.mark.parametrize("C", [1, 5, 8, 16, 55])
def test_column_decoders_equal_the_plain_comparisons(C):
    """col_onehot and col_range (the sequencer's key and mask decoders, built from
    predecoded halves) against `v == k` and `start <= k < start + width`, for every start
    and width over a range that reaches below 0 and beyond the columns."""
    from amaranth import Module, Signal, signed
    start, width = Signal(signed(12)), Signal(signed(12))
    got_oh, got_rng = Signal(C), Signal(C)
    m = Module()
    m.d.comb += [got_oh.eq(col_onehot(start, C)), got_rng.eq(col_range(start, width, C))]
    span = list(range(-9, C + 10)) + [511, 1024, -1024]
    bad = []

    async def bench(ctx):
        for a in span:
            ctx.set(start, a)
            want = sum(1 << k for k in range(C) if a == k)
            if ctx.get(got_oh) != want:
                bad.append(("onehot", a, ctx.get(got_oh), want))
            for w in range(-3, C + 12):
                ctx.set(width, w)
                want = sum(1 << k for k in range(C) if a <= k < a + w)
                if ctx.get(got_rng) != want:
                    bad.append(("range", a, w, ctx.get(got_rng), want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]
