"""The fast macro-level golden tile (golden/model/fast.py) against the bit-level golden tile
(golden/model/tile.py): random tile programs over every operation, precision and transfer;
every column but the reserved carry column, the counters, the activity counts (energy)
and the error flag agree."""

import numpy as np
import pytest

from bfimna.golden.host.stimulus import random_tile_program
from bfimna.golden.model.fast import FastTile
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import config_from_dict

CFGS = [config_from_dict({"name": "a", "ap": {"rows": 19, "cols": 40, "dims": 2},
                          "tile": {"maps": 2, "map_rows": 23, "map_cols": 30}}),
        config_from_dict({"name": "b", "ap": {"rows": 8, "cols": 24, "dims": 1},
                          "tile": {"maps": 1, "map_rows": 5, "map_cols": 64}})]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_fast_tile_equals_bit_level_tile(cfg, seed):
    for s in range(seed, seed + 6):
        print(f"seed {s}")
        rng = np.random.default_rng(s)
        slow, fast = Tile(cfg), FastTile(cfg)
        for k in range(cfg.tile.maps + 1):
            a = cfg.ap_of(k)
            width = a.cols - 1 if k == 0 else a.cols
            for r in range(a.rows):
                v = int(rng.integers(0, 1 << min(width, 62))) | \
                    (int(rng.integers(0, 2)) << (width - 1))
                slow.host_write(k, r, v, (1 << width) - 1)
                fast.host_write(k, r, v, (1 << width) - 1)
        words = random_tile_program(cfg, s, 120, transfer_share=0.2, illegal_share=0.05)
        slow.run(words)
        fast.run(words)
        C = cfg.ap.cols
        for k in range(cfg.tile.maps + 1):
            got, want = fast.ap(k).cam, slow.ap(k).cam
            if k == 0:
                got, want = got[:, :C - 1], want[:, :C - 1]
            bad = np.argwhere(got != want)
            assert bad.size == 0, f"seed {s}: AP {k} differs first at (row, col) {bad[0]}"
        assert fast.counters == slow.counters, f"seed {s}"
        assert fast.error == slow.error
        # the activity energy depends on: the cost model's per-word profile (fast) against
        # the micro-ops counted as they ran, with the rows they ran on (bit level)
        want_act = {k: v for k, v in slow.activity.items() if k != "wr_tagged"}
        assert fast.activity == want_act, f"seed {s}"
        assert slow.activity["wr_tagged"] <= slow.activity["wr_cells"]
        used = [k for k in want_act if k != "col_cells" or cfg.ap.two_d]   # REDUCE: 2D only
        assert all(want_act[k] > 0 for k in used), f"seed {s}: {want_act}"
