"""Coverage of the tile programs to the ISA's limits (issue 17), filled deterministically.

The bins (cosim/replay/tile.py: coverage_bins): every operation with a precision x width
1..32 x signedness that the ISA and the configuration allow, every MOVW source-stride class
(0, 1, 2, 3, 4-7, 8-15, 16-63, 64-255), every MOVW width and direction, every kind of ROWS
range. covering_programs() places one legal instruction per bin (seeded placements), so
the table is full by construction, not by random luck; the test checks it is full by
reading the bins back from the words (coverage_of), and that the ISA's limits shape it
(width 32 reachable for ADD, not for MUL, whose n + m <= 32).

The RTL run: a configuration wide enough for every width (a 16 x 72 2D CAP: two 32-bit
operands and a 32-bit result fit; a 260-row MAP: strides up to 255), every covering
program on its tile under Verilator, every row of both APs, every counter and the error
flag equal to the golden tile's. The table is printed, beside the share of the same bins
that 100 programs of the random tier (golden/host/stimulus.py: random_tile_program) reach.
"""

from __future__ import annotations

import numpy as np
import pytest

from bfimna.cosim.replay.tile import (
    coverage_bins,
    coverage_of,
    coverage_table,
    covering_programs,
    run_tile_replay,
)
from bfimna.golden.host.stimulus import random_tile_program
from bfimna.golden.spec.config import Config, config_from_dict
from bfimna.golden.spec.isa import RESERVED_COLS

from conftest import ROOT

BUILD = ROOT / "build" / "test-cosim"
COVER_SEED = 17      # placements of the covering programs: a fixed artefact, like a table


def wide_config() -> Config:
    return config_from_dict({
        "name": "wide72",
        "ap": {"rows": 16, "cols": 72, "dims": 2, "counter_bits": 24},
        "ctrl": {"queue_depth": 8},
        "tile": {"maps": 1, "map_rows": 260, "map_cols": 40},
        "system": {"tiles": 1}})


def test_covering_programs_fill_every_bin():
    cfg = wide_config()
    bins = set(coverage_bins(cfg, COVER_SEED))
    hit = coverage_of(cfg, covering_programs(cfg, COVER_SEED))
    table = coverage_table(cfg, hit, bins)
    print(f"\n[coverage] {cfg.name}: {len(hit & bins)}/{len(bins)} bins\n{table}")
    assert hit == bins
    # the limits come from the ISA and the configuration, not from the generator
    assert ("op", "ADD", 32, False) in bins and ("op", "MAC", 32, True) in bins
    assert ("op", "MUL", 31, True) in bins and ("op", "MUL", 32, True) not in bins
    assert ("op", "SHR", 1, False) not in bins          # m < n: n = 1 has no m
    assert {b[1] for b in bins if b[0] == "movw_stride"} == {
        "0", "1", "2", "3", "4-7", "8-15", "16-63", "64-255"}
    assert {b[1] for b in bins if b[0] == "movw_n"} == set(range(1, 33))
    assert len({b for b in bins if b[0] == "rows"}) == 6


@pytest.mark.cosim
def test_covering_programs_on_verilator(seed):
    from test_replay_tile import first_difference, golden
    cfg = wide_config()
    progs = covering_programs(cfg, COVER_SEED)
    rng = np.random.default_rng(seed)
    jobs = []
    for words in progs:
        cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
        cam[:, -RESERVED_COLS:] = 0
        maps = [rng.integers(0, 2, size=(cfg.map_ap.rows, cfg.map_ap.cols)).astype(np.uint8)]
        jobs.append((words, cam, maps))
    got = run_tile_replay(cfg, "verilator", jobs, BUILD, seed=seed, keep=True)
    cycles = 0
    for i, (job, g) in enumerate(zip(jobs, got, strict=True)):
        want = golden(cfg, *job)
        why = first_difference(cfg, g, want)
        assert why is None, f"covering program {i} (seed {seed}): {why}; rerun: {g.command}"
        cycles += want.counters["cycles"]
    if got[0].run is not None:
        got[0].run.cleanup()
    bins = set(coverage_bins(cfg, COVER_SEED))
    rand = coverage_of(cfg, [random_tile_program(cfg, seed + k, 20, max_width=32)
                             for k in range(100)])
    print(f"\n[coverage] {len(progs)} covering programs ({sum(map(len, progs))} words, "
          f"{cycles} cycles) equal golden on verilator; 100 random programs of 20 "
          f"instructions reach {len(rand & bins)}/{len(bins)} of the same bins "
          f"(seed {seed})\n{coverage_table(cfg, coverage_of(cfg, progs), bins)}")
