"""A tile with no MAPs on the RTL (issue 17). The schema allows `tile.maps: 0` (golden/spec/
config.py: Int(0, 7)), and it should: a tile that is only a CAP is the AP of the paper's
baseline, and every generator handles K = 0 (no MAP ports, host widths from the CAP,
MAP_GEOM reads 0, XROWS / MOVW are illegal there by the ISA's `needs_tile` rule).

Here the 37 x 16 CAP of ap2d_37x16 without its MAP, under Icarus (a build of seconds):
- seeded random tile programs (every CAP instruction, illegal words, plus XROWS and MOVW
  words, which golden flags) through the tile's replay harness: every row, every counter
  and the error flag equal the golden tile's;
- seeded random host programs on the system top of that tile (packets to AP 1 are bad
  there): every response word, the status and every counter equal the golden system's.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.cosim.replay.tile import run_tile_replay
from bfimna.golden.host.stimulus import random_host_program, random_tile_program
from bfimna.golden.spec.config import Config, config_from_dict
from bfimna.golden.spec.isa import RESERVED_COLS, Instr, Opc, encode, validate
from bfimna.golden.spec.regs import PT, header

from conftest import CONFIG_DIR, ROOT

BUILD = ROOT / "build" / "test-cosim"
N_TILE, N_HOST = 16, 2


def no_map_config() -> Config:
    data = yaml.safe_load((CONFIG_DIR / "ap2d_37x16.yaml").read_text())
    data["name"] = "ap2d_37x16_k0"
    data["tile"] = {"maps": 0}
    return config_from_dict(data)


def test_schema_allows_a_tile_without_maps():
    cfg = no_map_config()
    assert cfg.tile.maps == 0
    mv = Instr(op=Opc.MOVW, sap=0, dap=0, a=0, d=0, n=4, count=1)
    assert validate(mv, cfg.ap, cfg) is not None          # no MAP: MOVW is illegal


@pytest.mark.cosim
def test_random_tile_programs_without_maps(seed):
    from test_replay_tile import first_difference, golden
    cfg = no_map_config()
    jobs = []
    for s in range(seed, seed + N_TILE):
        rng = np.random.default_rng(s)
        words = random_tile_program(cfg, s, int(rng.integers(4, 12)), illegal_share=0.1)
        if s % 2:   # transfer words golden flags illegal on this tile
            words.insert(int(rng.integers(len(words) + 1)),
                         encode(Instr(op=Opc.MOVW, sap=0, dap=0, a=0, d=4, n=4, count=2)))
            words.insert(0, encode(Instr(op=Opc.XROWS, srow=0, drow=1, stride=1)))
        cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
        cam[:, -RESERVED_COLS:] = 0
        jobs.append((words, cam, None))
    got = run_tile_replay(cfg, "icarus", jobs, BUILD, seed=seed, keep=True)
    errors = 0
    for i, (job, g) in enumerate(zip(jobs, got, strict=True)):
        want = golden(cfg, *job)
        why = first_difference(cfg, g, want)
        assert why is None, f"job {i} (seed {seed + i}): {why}; rerun: {g.command}"
        assert g.maps == []
        errors += want.counters["errors"]
    if got[0].run is not None:
        got[0].run.cleanup()
    print(f"\n[no-MAP] {N_TILE} random tile programs on icarus equal golden, "
          f"{errors} illegal words flagged (seed {seed})")
    assert errors >= N_TILE // 2


@pytest.mark.cosim
def test_random_host_programs_without_maps(seed):
    cfg = no_map_config()
    gold, rtl = backend("golden", cfg), backend("icarus", cfg, build_root=BUILD)
    for k in range(N_HOST):
        prog = random_host_program(cfg, seed + k, n_packets=10, instr_len=4)
        prog.raw([header(PT.WRITE, ap=1, count=1, width=4), 5])   # no AP 1 here
        got = rtl.run(prog)
        want = gold.run(prog)
        diffs = compare(want, got, prog)
        assert not diffs, f"program {k} (seed {seed + k}): {diffs[:6]}; rerun {rtl.command}"
        assert want.global_counters["bad_packets"] >= 1
