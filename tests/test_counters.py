"""Counters on the RTL at their limits (issue 17): wrap-around and 64-bit counters.

Golden's counters are unbounded integers read modulo 2^ap.counter_bits (golden/model/
system.py: System.register, docs/system.md: "Counters are `ap.counter_bits` wide and
wrap"), the 64-bit register value split into a low (+0) and a high (+4) 32-bit AXI4-Lite
word. Programs short enough for a test stop far below 2^24, so the RTL is started near the
top: the VERIFY build (hdl/gen/controller.py, hdl/gen/system.py; tests only, never real
RTL) loads every counter with a preset in the first cycle after the reset, and golden
starts its counters at the same value (cosim/replay/system.py: golden_registers).

- the tile's counters (ap2d_37x16, Verilator, replay harness): random programs from a
  preset a few hundred below 2^24; every counter equals (golden + preset) mod 2^24 and
  the busiest counters did wrap;
- the system's global and tile counters through AXI4-Lite (sys_t2k2, 24 bits, Verilator):
  every register word equals golden's, counters having wrapped;
- 64-bit counters (ap.counter_bits = 64, a one-tile configuration under Icarus, which
  builds in seconds): from 0 (the CONFIG register says 64, the high words read 0) and
  from 2^64 - 30 (high words all ones before the wrap and 0 after it; the counters that
  did not wrap keep their all-ones high word).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from bfimna.cosim.replay.system import golden_registers, register_reads, verify_differences
from bfimna.cosim.replay.tile import run_tile_replay
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.spec.config import Config, config_from_dict, load_config
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, encode
from bfimna.golden.spec.regs import (
    COUNTER_STRIDE,
    GLOBAL_COUNTER_BASE,
    GLOBAL_COUNTERS,
    REG_CONFIG,
    TILE_COUNTER_BASE,
)
from bfimna.golden.spec.uops import COUNTER_KEYS
from bfimna.hdl.gen.controller import VERIFY

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"


def derived(name: str, new_name: str, **ap) -> Config:
    """A configuration of configs/<name>.yaml with fields of `ap` changed."""
    data = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())
    data["name"] = new_name
    data["ap"].update(ap)
    return config_from_dict(data)


def test_tile_counters_wrap(seed):
    from test_replay_tile import golden
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    mod = 1 << cfg.ap.counter_bits
    preset = mod - 40
    jobs = []
    for s in range(seed, seed + 6):
        rng = np.random.default_rng(s)
        words = random_tile_program(cfg, s, 15, transfer_share=0.3, illegal_share=0.1)
        cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
        cam[:, -RESERVED_COLS:] = 0
        jobs.append((words, cam, None))
    got = run_tile_replay(cfg, "verilator", jobs, BUILD, seed=seed, fault=VERIFY,
                          mutants=[(0, preset)] * len(jobs), keep=True)
    wrapped = set()
    for i, (job, g) in enumerate(zip(jobs, got, strict=True)):
        want = golden(cfg, *job)
        assert g.passed, f"job {i} (seed {seed}): rerun {g.command}"
        assert g.rows == want.cap.rows_as_ints(), f"job {i} (seed {seed})"
        for k, v in want.counters.items():
            assert g.counters[k] == (v + preset) % mod, \
                f"job {i} counter {k}: {g.counters[k]}, golden {(v + preset) % mod}"
            if v + preset >= mod:
                wrapped.add(k)
    if got[0].run is not None:
        got[0].run.cleanup()
    print(f"\n[counters] tile: 6 programs from {preset:#x}; counters that wrapped: "
          f"{sorted(wrapped)} (seed {seed})")
    assert {"cycles", "compares", "writes"} <= wrapped


def test_system_counters_wrap_through_axi_lite(seed):
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    preset = (1 << cfg.ap.counter_bits) - 100
    prog = random_host_program(cfg, seed, n_packets=25)
    diffs, run = verify_differences(cfg, "verilator", prog, BUILD, preset=preset, seed=seed,
                                    idle=0.2, backpressure=0.2)
    assert not diffs, f"seed {seed}: {diffs[:6]}; rerun: {run.command}"
    run.cleanup()
    _out, _regs, g = golden_registers(cfg, prog, preset)
    wrapped = [k for k, v in g.counters.items() if v >= 1 << cfg.ap.counter_bits]
    wrapped_t = [k for k, v in g.tiles[0].counters.items() if v >= 1 << cfg.ap.counter_bits]
    print(f"\n[counters] system: wrapped global {wrapped}, tile 0 {wrapped_t} (seed {seed})")
    assert "words_in" in wrapped and "cycles" in wrapped_t


def _short_program(cfg: Config) -> HostProgram:
    """A few packets of every common kind: enough to wrap counters 30 below the top."""
    prog = HostProgram(cfg)
    prog.write(0, 0, 0, list(range(30)), width=8)
    prog.instr(0, [encode(Instr(op=Opc.ROWS, lo=0, hi=4)),
                   encode(Instr(op=Opc.ADDI, d=0, n=8, imm=3)),
                   encode(Instr(op=Opc.NOP))])
    prog.read(0, 0, 0, 4, width=8)
    prog.raw([0])                                   # a bad packet (type 0)
    prog.sync(tag=7)
    return prog


def _reg(raw: dict, base: int, i: int) -> tuple[int, int]:
    a = base + COUNTER_STRIDE * i
    return raw[a], raw[a + 4]


def test_64_bit_counters_read_in_two_halves():
    cfg = derived("ap2d_37x16", "ap2d_37x16_c64", counter_bits=64)
    prog = _short_program(cfg)
    top = 1 << 64
    for preset in (0, top - 30):
        diffs, run = verify_differences(cfg, "icarus", prog, BUILD, preset=preset)
        assert not diffs, f"preset {preset:#x}: {diffs[:6]}; rerun: {run.command}"
        run.cleanup()
        _out, raw, g = golden_registers(cfg, prog, preset)
        assert raw[REG_CONFIG] >> 16 & 0xFF == 64
        # the golden values the RTL matched, read as the documents say: low, high word
        cyc_lo, cyc_hi = _reg(raw, TILE_COUNTER_BASE, COUNTER_KEYS.index("cycles"))
        syn_lo, syn_hi = _reg(raw, GLOBAL_COUNTER_BASE, GLOBAL_COUNTERS.index("syncs"))
        words_lo, words_hi = _reg(raw, GLOBAL_COUNTER_BASE, GLOBAL_COUNTERS.index("words_in"))
        n_words = prog.n_words
        if preset == 0:
            assert (cyc_hi, syn_hi, words_hi) == (0, 0, 0)
            assert (syn_lo, words_lo) == (1, n_words)
        else:
            # syncs: 1 after 2^64 - 30 (no wrap); words_in: n_words > 30 (wrapped)
            assert n_words > 30 and g.tiles[0].counters["cycles"] > 30
            assert (syn_hi, syn_lo) == (0xFFFFFFFF, (preset + 1) & 0xFFFFFFFF)
            assert (words_hi, words_lo) == (0, n_words - 30)
            assert cyc_hi == 0
    print(f"\n[counters] 64-bit: {len(register_reads(cfg))} register words equal golden's "
          f"from 0 and from 2^64 - 30 (icarus)")
