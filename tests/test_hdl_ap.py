"""The AP-core generator (hdl/gen/ap.py) in Amaranth's simulator against the golden model.
Fast tier: no external simulator.
"""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from bfimna.golden.host.stimulus import random_uops, readback_uops
from bfimna.golden.model.ap import APModel
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.uops import N_COUNTERS, Op, UOp, port_widths
from bfimna.hdl.gen.ap import FAULTS, APCore, ap_module_name

SIM_CONFIGS = [
    APConfig(rows=13, cols=8, dims=2, counter_bits=12),
    APConfig(rows=9, cols=6, dims=1, counter_bits=8),   # counters wrap during the run
    APConfig(rows=16, cols=5, dims=2, counter_bits=16),
    APConfig(rows=1, cols=2, dims=2, counter_bits=8),   # degenerate single row
]


# The operand fields each micro-op reads (docs/ap_core.md's table); the others are
# don't-cares the core must ignore.
READS = {Op.NOP: (), Op.CMP: ("key", "mask"), Op.CMPA: ("key", "mask"), Op.WR: ("key", "mask"),
         Op.RDROW: ("addr",), Op.WRROW: ("addr", "data", "mask"), Op.ROWEN: ("addr", "addr2"),
         Op.RDCOL: ("col",), Op.WRCOL: ("col", "shift", "vec"),
         Op.MVCOL: ("col", "col2", "shift")}


def with_noise(ap: APConfig, stream, seed: int):
    """The same micro-ops with every field the op does not read set at random (the core
    shares its comparator, write data and decoders between ops, so a field leaking into
    an op that ignores it would show here)."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    widths = port_widths(ap)
    for u in stream:
        keep = READS.get(Op(u.op), ()) if u.op in Op.__members__.values() else ()
        fields = {f: (getattr(u, f) if f in keep else int(rng.integers(1 << w)))
                  for f, w in widths.items() if f != "op"}
        yield UOp(u.op, **fields)


def simulate(ap: APConfig, seed: int, n_ops: int, fault: str | None = None,
             noise: bool = False, registered: bool = False) -> dict:
    """Run a random stream then a full read-back on the generated core, comparing every
    output with the golden model each cycle. Returns the first mismatch (or None). With
    `noise`, the fields a micro-op does not read carry random values.

    `registered`: the core as a tile with `port_register` builds it, which executes each
    micro-op the cycle after its port carries it (taking `data` in the cycle it executes);
    the golden model is stepped with the micro-op executing, a NOP (the reset's) first."""
    dut = APCore(ap, fault=fault, registered=registered)
    model = APModel(ap)
    fields = list(port_widths(ap))
    outcome = {"mismatch": None, "cycles": 0}

    async def bench(ctx):
        stream = itertools.chain(random_uops(model, seed, n_ops), readback_uops(ap),
                                 [UOp(Op.NOP)] if registered else [])
        if noise:
            stream = with_noise(ap, stream, seed)
        executing = UOp(Op.NOP)
        for cycle, u in enumerate(stream, start=1):
            sel = cycle % N_COUNTERS
            for f in fields:
                ctx.set(getattr(dut, f), getattr(executing if registered and f == "data"
                                                 else u, f))
            ctx.set(dut.cnt_sel, sel)
            await ctx.tick()
            model.step(executing if registered else u)
            want = model.expected_outputs(sel)
            got = {port: ctx.get(getattr(dut, port)) for port in want}
            bad = {p: (got[p], want[p]) for p in want if got[p] != want[p]}
            if bad:
                outcome["mismatch"] = (f"seed {seed}, cycle {cycle}, port {u}, executing "
                                       f"{executing if registered else u}: (RTL, golden) {bad}")
                return
            outcome["cycles"] = cycle
            executing = u

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outcome


@pytest.mark.parametrize("ap", SIM_CONFIGS, ids=lambda a: f"{a.dims}d_{a.rows}x{a.cols}")
def test_generator_matches_golden(ap, seed):
    out = simulate(ap, seed, n_ops=400)
    assert out["mismatch"] is None, out["mismatch"]
    assert out["cycles"] == 400 + ap.rows + N_COUNTERS


@pytest.mark.parametrize("ap", SIM_CONFIGS, ids=lambda a: f"{a.dims}d_{a.rows}x{a.cols}")
def test_registered_core_matches_golden_a_cycle_later(ap, seed):
    """The core of a tile with `port_register`: the same stream, each micro-op executed
    (and checked) the cycle after its port carries it."""
    out = simulate(ap, seed, n_ops=400, registered=True)
    assert out["mismatch"] is None, out["mismatch"]
    assert out["cycles"] == 400 + ap.rows + N_COUNTERS + 1


# micro-ops per fault run: enough that the rarest fault (a column move taking a disabled
# row's bit into an enabled one, then read) shows on every seed tried (24 base seeds)
FAULT_OPS = 1000


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_injected_fault_is_caught_in_the_registered_core(fault, seed):
    out = simulate(SIM_CONFIGS[0], seed, n_ops=FAULT_OPS, fault=fault, registered=True)
    assert out["mismatch"] is not None, f"fault {fault!r} ({FAULTS[fault]}) went unnoticed"


@pytest.mark.parametrize("ap", SIM_CONFIGS[:2], ids=lambda a: f"{a.dims}d_{a.rows}x{a.cols}")
def test_ignored_fields_are_ignored(ap, seed):
    """Fields a micro-op does not read (key and mask of a column read, data of a column
    write, col of a row read...) change nothing. The random streams leave them 0, so
    a core that shares its comparator, write data or decoders between ops (as a cheaper
    FPGA mapping does) could leak one unseen."""
    out = simulate(ap, seed, n_ops=400, noise=True)
    assert out["mismatch"] is None, out["mismatch"]
    assert out["cycles"] == 400 + ap.rows + N_COUNTERS


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_injected_fault_is_caught(fault, seed):
    """Mutation check: the comparison is strong enough to fail on each broken generator."""
    out = simulate(SIM_CONFIGS[0], seed, n_ops=FAULT_OPS, fault=fault)
    assert out["mismatch"] is not None, f"fault {fault!r} ({FAULTS[fault]}) went unnoticed"


def test_unknown_fault_rejected():
    with pytest.raises(ValueError, match="unknown fault"):
        APCore(SIM_CONFIGS[0], fault="nope")


def test_module_name_carries_parameters():
    names = {ap_module_name(a) for a in SIM_CONFIGS}
    assert len(names) == len(SIM_CONFIGS)
    assert ap_module_name(SIM_CONFIGS[0]) == "bfimna_ap2d_r13_c8_n12"
