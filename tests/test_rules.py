"""Every instruction-word rule as a row (tests/rules_table.py, derived from OPCODES), replayed
on golden, on the tile in Amaranth's simulator (word by word: the RTL flags exactly the
words golden flags, keeps running the legal words around them and counts them), on the
emitted Verilog under Verilator and Icarus (one program per simulator), and against the
validator's mutants (`drop_rule:<opcode>:<rule>`, hdl/gen/controller.py), each run on the
tile's decoder, the one part it changes: each must be caught.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_host import host_load
from rules_table import (
    RULE_CONFIGS,
    WIDE,
    Row,
    all_checks,
    golden_flags,
    hw_checks,
    initial,
    program,
    table,
)

from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import UNKNOWN_OPCODE, Opc, decode, failing_checks, validate
from bfimna.golden.spec.uops import COUNTER_KEYS
from bfimna.hdl.gen.controller import HOST_READ, APController, validator_faults
from bfimna.hdl.gen.tile import InstrQueue, _dropped

from conftest import ROOT

TABLE_SEED = 17   # the table is a fixed artefact (its words are minimal, not random)
CFGS = {c.name: c for c in RULE_CONFIGS}
ERRORS = COUNTER_KEYS.index("errors")
SLACK = 20   # cycles a word may run past golden's count before the bench calls it hung


def _key(r: Row):
    return ("*", r.check) if r.check == UNKNOWN_OPCODE else r.key


def covered() -> set:
    return {_key(r) for rows, _m in table(TABLE_SEED).values() for r in rows if r.exclusive}


def test_rules_table_on_golden():
    """validate() names each row's rule; an exclusive row fails that rule alone."""
    for name, (rows, _missing) in table(TABLE_SEED).items():
        cfg = CFGS[name]
        for r in rows:
            xr = (0, 0, 0)
            if len(r.words) == 2:
                pre = decode(r.words[0])
                assert pre.op == Opc.XROWS and validate(pre, cfg.ap, cfg) is None
                xr = (pre.srow, pre.drow, pre.stride)
            fails = failing_checks(decode(r.words[-1]), cfg.ap, cfg, xr)
            assert fails[0] == r.check, (name, r)
            assert validate(decode(r.words[-1]), cfg.ap, cfg, xr) == r.why != ""
            assert (fails == [r.check]) == r.exclusive
    golden, hw, cov = set(all_checks()), hw_checks(), covered()
    print(f"\n[rules] exclusive rows for {len(cov & hw)} of {len(hw)} RTL checks, "
          f"{len(cov)} of {len(golden)} golden checks; no violating word: "
          f"{sorted(golden - cov)}")
    # what no row covers is either not checkable on a decoded word (imm_range: hw=False),
    # vacuous (apart of a one-operand opcode) or needs no tile configuration at all
    for op, check in golden - cov:
        assert check in ("imm_range", "apart", "needs_tile"), (op, check)


def run_tile(cfg: Config, words: list[int], init, budgets: list[int]):
    """The tile in Amaranth's simulator, one word at a time (offered, accepted, run to
    idle, within `budgets` cycles each): the errors counter after each word, then every
    AP's rows and the counters."""
    dut = APController(cfg)
    sim = Simulator(dut)
    res: dict = {"flags": [], "aps": {}, "counters": {}}

    async def bench(ctx):
        for k, rows in init.items():
            await host_load(ctx, dut, k, rows,
                            (1 << 128) - 1 if k else (1 << (cfg.ap.cols - 1)) - 1)
        ctx.set(dut.csr_sel, ERRORS)
        for w, budget in zip(words, budgets, strict=True):
            ctx.set(dut.s_valid, 1)
            ctx.set(dut.s_data, w)
            await ctx.tick()          # the queue accepts it (it is empty)
            ctx.set(dut.s_valid, 0)
            await ctx.tick()
            # a broken validator may start a long or endless loop: give up past golden's
            while ctx.get(dut.busy) and budget:
                await ctx.tick()
                budget -= 1
            if not budget:
                res["hung"] = hex(w)
                return
            res["flags"].append(ctx.get(dut.csr_data))
        for k in init:
            res["aps"][k] = []
            for r in range(cfg.ap_of(k).rows):
                ctx.set(dut.host_op, HOST_READ)
                ctx.set(dut.host_ap, k)
                ctx.set(dut.host_addr, r)
                await ctx.tick()
                res["aps"][k].append(ctx.get(dut.host_rdata))
        ctx.set(dut.host_op, 0)
        for idx, key in enumerate(COUNTER_KEYS):
            ctx.set(dut.csr_sel, idx)
            await ctx.delay(1e-9)
            res["counters"][key] = ctx.get(dut.csr_data)
        res["error"] = ctx.get(dut.error)

    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return res


def mismatches(cfg: Config, rows: list[Row], seed: int) -> list:
    """Where the RTL differs from golden on the rows' program."""
    rng = np.random.default_rng(seed)
    words = program(cfg, rows, seed)
    init = initial(cfg, rng)
    want, gold, spent = golden_flags(cfg, words, init)
    got = run_tile(cfg, words, init, [2 * c + SLACK for c in spent])
    if "hung" in got:
        return [f"still busy past twice golden's cycles + {SLACK} after word {got['hung']}"]
    out: list = [(k, hex(w), g, x) for k, (w, g, x) in
           enumerate(zip(words, got["flags"], want, strict=True)) if g != x]
    for k in init:
        if got["aps"][k] != [gold.host_read(k, r) for r in range(cfg.ap_of(k).rows)]:
            out.append(f"AP {k} rows differ")
    mod = 1 << cfg.ap.counter_bits
    if got["counters"] != {k: v % mod for k, v in gold.counters.items()}:
        out.append(("counters", got["counters"], gold.counters))
    if got["error"] != int(gold.error):
        out.append("error flag")
    return out


@pytest.mark.parametrize("name", sorted(CFGS))
def test_rules_table_on_amaranth_tile(name, seed):
    """Exactly the words golden flags are flagged (the errors counter after each word),
    the legal words around them run (every AP, every counter equal golden's)."""
    cfg = CFGS[name]
    rows, _missing = table(TABLE_SEED)[name]
    assert rows
    assert not mismatches(cfg, rows, seed), f"seed {seed}"
    words = program(cfg, rows, seed)
    flags, _gold, _spent = golden_flags(cfg, words, initial(cfg, np.random.default_rng(seed)))
    assert flags[-1] == len(rows)      # every row's word, and nothing else, is illegal
    rtl = covered() & hw_checks()
    print(f"\n[rules] {name}: {len(rows)} rows; RTL checks covered (all configs) "
          f"{len(rtl)}/{len(hw_checks())}, golden checks {len(all_checks())}")


def _fault_rows(fault: str) -> tuple[Config, list[Row]] | None:
    _, op, check = fault.split(":", 2)
    for cfg in RULE_CONFIGS:
        rows = table(TABLE_SEED)[cfg.name][0]
        mine = [r for r in rows if r.op == op]
        if any(r.check == check and r.exclusive for r in mine):
            return cfg, mine
    return None


MUTANTS = validator_faults()


def decoder_verdicts(cfg: Config, words: list[int], drop=None) -> list[bool]:
    """The tile's decoder (hdl/gen/tile.py: InstrQueue, validator without `drop`) alone
    in Amaranth's simulator: `legal` of each word at the queue's head, popped in order
    (its XROWS registers follow the legal XROWS words, as in the tile)."""
    dut = InstrQueue(cfg, drop)
    out: list[bool] = []

    async def bench(ctx):
        for w in words:
            ctx.set(dut.s_valid, 1)
            ctx.set(dut.s_data, w)
            await ctx.tick()
            ctx.set(dut.s_valid, 0)
            while not ctx.get(dut.head.valid):
                await ctx.tick()
            out.append(bool(ctx.get(dut.head.legal)))
            ctx.set(dut.head.pop, 1)
            await ctx.tick()
            ctx.set(dut.head.pop, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("fault", MUTANTS)
def test_validator_mutant_is_caught(fault, seed):
    """Mutation: the validator without one check must disagree with golden on the rows
    of its opcode. A check with no exclusive violating word is a known equivalent mutant
    (vacuous: `apart` of one operand; redundant on RTL: MOVW's `needs_tile`).

    The mutant runs on the tile's decoder alone, the one part a `drop_rule:` fault changes
    (hdl/gen/tile.py: Tile builds InstrQueue(cfg, _dropped(fault)) and nothing else reads
    the fault): a word the mutant judges otherwise than golden is one the tile would count
    or run otherwise, and the tile counting and running exactly what the decoder says is
    test_rules_table_on_amaranth_tile's (and the tile's own tests'). The unmutated decoder
    agreeing with golden on the same words shows the disagreement is the mutant's."""
    found = _fault_rows(fault)
    if found is None:
        assert fault.endswith((":apart", ":needs_tile")), fault
        pytest.skip(f"{fault}: equivalent mutant, no word violates that check alone")
    cfg, rows = found
    words = program(cfg, rows, seed)
    flags, _gold, _spent = golden_flags(cfg, words, initial(cfg, np.random.default_rng(seed)))
    want = [f == before for f, before in zip(flags, [0, *flags[:-1]], strict=True)]
    assert decoder_verdicts(cfg, words) == want, f"seed {seed}"
    got = decoder_verdicts(cfg, words, _dropped(fault))
    wrong = [hex(w) for w, g, x in zip(words, got, want, strict=True) if g != x]
    assert wrong, f"{fault} went unnoticed (seed {seed})"
    print(f"\n[mutation] {fault}: {len(wrong)} of {len(words)} words judged otherwise, "
          f"e.g. {wrong[0]}")


def test_mutation_score_is_complete():
    """The score of the mutants above: every one whose check has a violating word."""
    caught = [f for f in MUTANTS if _fault_rows(f) is not None]
    print(f"\n[mutation] validator: {len(caught)}/{len(MUTANTS)} mutants have a row that "
          f"must catch them; equivalent: {sorted(set(MUTANTS) - set(caught))}")
    assert len(caught) >= len(MUTANTS) - 8


@pytest.mark.cosim
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_rules_table_on_verilog(sim, seed):
    """All rows of the wide tile in one program, legal words between them, on the
    emitted Verilog: final CAP array, counters and error equal the golden tile's."""
    from bfimna.cosim.drivers.runner import run_program_rtl

    cfg = WIDE
    rows, _m = table(TABLE_SEED)[cfg.name]
    words = program(cfg, rows, seed)
    rng = np.random.default_rng(seed)
    cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
    cam[:, -1] = 0
    res = run_program_rtl(cfg, sim, words, cam, build_root=ROOT / "build" / "test-rules")
    assert res.passed, f"the driver did not finish, see {res.log}"
    from bfimna.golden.model.tile import Tile
    gold = Tile(cfg)
    gold.cap.cam[:] = cam.astype(bool)
    gold.run(words)
    assert res.rows == gold.cap.rows_as_ints()
    mod = 1 << cfg.ap.counter_bits
    assert res.counters == {k: v % mod for k, v in gold.counters.items()}
    assert res.error == gold.error and gold.counters["errors"] >= len(rows)
    print(f"\n[rules] {sim}: {len(rows)} rows in {len(words)} words, "
          f"{gold.counters['errors']} flagged, {gold.counters['cycles']} cycles")

