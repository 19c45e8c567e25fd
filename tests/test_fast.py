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
from bfimna.golden.spec.costs import counts, profile
from bfimna.golden.spec.isa import OP_FIELD, Instr, Opc, encode

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
        assert fast.last_error == slow.ctl.last_error, f"seed {s}"
        # the activity energy depends on: the cost model's per-word profile (fast) against
        # the micro-ops counted as they ran, with the rows they ran on (bit level)
        want_act = {k: v for k, v in slow.activity.items() if k != "wr_tagged"}
        assert fast.activity == want_act, f"seed {s}"
        assert slow.activity["wr_tagged"] <= slow.activity["wr_cells"]
        used = [k for k in want_act if k != "col_cells" or cfg.ap.two_d]   # REDUCE: 2D only
        assert all(want_act[k] > 0 for k in used), f"seed {s}: {want_act}"


def _same_aps(fast, slow, cfg, why):
    for k in range(cfg.tile.maps + 1):
        got, want = fast.ap(k).cam, slow.ap(k).cam
        if k == 0:
            got, want = got[:, :cfg.ap.cols - 1], want[:, :cfg.ap.cols - 1]
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"{why}: AP {k} differs first at (row, col) {bad[0]}"


# packed words: columns across the 64-bit word boundaries, a 130-column MAP (3 words)
WIDE = config_from_dict({"name": "w", "ap": {"rows": 37, "cols": 130, "dims": 2},
                         "tile": {"maps": 2, "map_rows": 41, "map_cols": 130}})


def test_fast_ap_fields_rows_and_columns_equal_bit_level(seed):
    """The packed AP against the bit-level one: host rows and fields at every edge (width
    63 and 64, fields across a 64-bit word, the top columns, whole rows), bit columns,
    MOVW across word boundaries and its row rules at their limits."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = WIDE
    slow, fast = Tile(cfg), FastTile(cfg)
    C, R = cfg.ap.cols, cfg.ap.rows
    for k in range(cfg.tile.maps + 1):                   # whole rows, random bits
        for r in range(cfg.ap_of(k).rows):
            v = int.from_bytes(rng.bytes(17), "little") & ((1 << C) - 1)
            slow.host_write(k, r, v, (1 << C) - 1)
            fast.host_write(k, r, v, (1 << C) - 1)
    fields = [(0, 64), (1, 63), (64, 64), (63, 2), (C - 64, 64), (C - 63, 63), (C - 1, 1),
              (60, 9), (120, 10), (2, 62)]
    for k in range(cfg.tile.maps + 1):
        rows = cfg.ap_of(k).rows
        for col, width in fields:
            row = int(rng.integers(0, rows))
            n = int(rng.integers(1, rows - row + 1))
            vals = rng.integers(0, 1 << 63, size=n, dtype=np.uint64) * np.uint64(2) \
                + rng.integers(0, 2, size=n, dtype=np.uint64)     # all 64 bits random
            fm = (1 << width) - 1
            for i, v in enumerate(vals.tolist()):               # the reference: row by row
                slow.host_write(k, row + i, (v & fm) << col, fm << col)
            fast.host_write_field(k, row, col, width, vals)
            got = fast.host_read_field(k, 0, rows, col, width).tolist()
            assert got == [(slow.host_read(k, r) >> col) & fm for r in range(rows)], \
                f"seed {seed}: AP {k} field ({col}, {width})"
            r = int(rng.integers(0, rows))                      # a masked row write
            data, mask = (int.from_bytes(rng.bytes(17), "little") & ((1 << C) - 1)
                          for _ in range(2))
            slow.host_write(k, r, data, mask)
            fast.host_write(k, r, data, mask)
            assert fast.host_read(k, r) == slow.host_read(k, r)
    for col in (0, 63, 64, C - 1):                              # bit columns of the CAP
        assert fast.host_read_col(col) == slow.host_read_col(col)
    words = [encode(Instr(op=Opc.ROWS, lo=3, hi=30))]
    slow.run(words)
    fast.run(words)
    for col in (0, 63, 64, C - 2):                              # into the enabled rows
        vec = int.from_bytes(rng.bytes(5), "little") & ((1 << R) - 1)
        slow.host_write_col(col, vec)
        fast.host_write_col(col, vec)
    _same_aps(fast, slow, cfg, f"seed {seed}: after the column writes")
    # MOVW: fields across word boundaries, stride 0 and 3, row rules at their limits
    mrows = cfg.tile.map_rows
    moves = [((0, 0, 1), dict(sap=1, dap=0, a=60, d=62, n=32, count=R)),        # fits
             ((0, 0, 1), dict(sap=1, dap=0, a=60, d=62, n=32, count=R + 1)),    # dst past
             ((mrows - 1, 5, 0), dict(sap=2, dap=0, a=C - 32, d=0, n=32, count=9)),
             ((2, 0, 3), dict(sap=1, dap=2, a=1, d=97, n=32, count=13)),        # last row
             ((3, 0, 3), dict(sap=1, dap=2, a=1, d=97, n=32, count=13)),        # src past
             ((0, 30, 2), dict(sap=0, dap=1, a=64, d=64, n=17, count=11)),
             ((0, 31, 2), dict(sap=0, dap=2, a=64, d=64, n=17, count=11))]      # both fit
    for (srow, drow, stride), kw in moves:
        words = [encode(Instr(op=Opc.XROWS, srow=srow, drow=drow, stride=stride)),
                 encode(Instr(op=Opc.MOVW, **kw))]
        slow.run(words)
        fast.run(words)
        assert fast.error == slow.error and fast.last_error == slow.ctl.last_error, \
            f"MOVW {kw} from {srow, drow, stride}: {fast.last_error} / {slow.ctl.last_error}"
        _same_aps(fast, slow, cfg, f"seed {seed}: MOVW {kw} from {srow, drow, stride}")
    assert fast.counters == slow.counters
    assert fast.counters["errors"] == 2


def test_every_legal_xrows_costs_the_same():
    """FastTile tallies every XROWS under one entry: their counts and activity agree."""
    cfg = WIDE
    words = [encode(Instr(op=Opc.XROWS, srow=s, drow=d, stride=k))
             for s, d, k in ((0, 0, 0), (5, 40, 3), (65535, 65535, 255), (1, 0, 1))]
    assert len({counts(w, cfg.ap) for w in words}) == 1
    assert len({profile(w, cfg.ap) for w in words}) == 1


def test_gathers_equal_bit_level(seed):
    """Long stretches of XROWS + MOVW pairs (FastTile.run moves them together): MAP fields
    into CAP rows, the same and different destination fields, runs that write the same
    cells (taken pair by pair), stride 0, an illegal MOVW inside a stretch, other words
    between stretches; contents, counters, activity and errors as the bit-level tile."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = WIDE
    R, MR = cfg.ap.rows, cfg.tile.map_rows
    slow, fast = Tile(cfg), FastTile(cfg)
    for k in range(1, cfg.tile.maps + 1):
        for r in range(MR):
            v = int.from_bytes(rng.bytes(17), "little") & ((1 << 130) - 1)
            slow.host_write(k, r, v, (1 << 130) - 1)
            fast.host_write(k, r, v, (1 << 130) - 1)
    words = []
    for _ in range(12):
        fields = [(int(rng.integers(0, 100)), int(rng.integers(1, 17))) for _ in range(2)]
        for _ in range(int(rng.integers(2, 30))):
            d, n = fields[int(rng.integers(2))]
            count = int(rng.integers(1, 6))
            stride = int(rng.integers(0, 4))
            srow = int(rng.integers(0, MR - (count - 1) * stride))
            drow = int(rng.integers(0, R - count + 1))
            if rng.random() < 0.03:
                count = R + 1                                      # illegal: dst rows
            words += [encode(Instr(op=Opc.XROWS, srow=srow, drow=drow, stride=stride)),
                      encode(Instr(op=Opc.MOVW, sap=int(rng.integers(1, 3)), dap=0,
                                   a=int(rng.integers(0, 130 - n)), d=d, n=n, count=count))]
        words.append(encode(Instr(op=Opc.ROWS, lo=int(rng.integers(0, 5)), hi=R)))
    slow.run(words)
    fast.run(words)
    _same_aps(fast, slow, cfg, f"seed {seed}")
    assert fast.counters == slow.counters, f"seed {seed}"
    assert fast.activity == {k: v for k, v in slow.activity.items() if k != "wr_tagged"}
    assert (fast.error, fast.last_error) == (slow.error, slow.ctl.last_error)


def _twin_tiles(rng, cfg) -> tuple[Tile, FastTile]:
    """A bit-level and a fast tile whose APs hold the same random 129-bit rows."""
    slow, fast = Tile(cfg), FastTile(cfg)
    for k in range(cfg.tile.maps + 1):
        for r in range(cfg.ap_of(k).rows):
            v = int.from_bytes(rng.bytes(17), "little") & ((1 << 129) - 1)
            slow.host_write(k, r, v, (1 << 129) - 1)
            fast.host_write(k, r, v, (1 << 129) - 1)
    return slow, fast


def _mac_program(rng, cfg, MR):
    """Taps as the scheduler emits them (a gather into the operand field, then MACs into
    a few accumulators), mixed with what must apply the deferred MACs first: an operand
    or an ADD reading an accumulator, a MAC into a field overlapping another one, ROWS
    changes (also to no rows), CLEAR of an accumulator, a MOVW from the CAP, illegal
    words. Yields word lists; between them the test reads and writes through the host."""
    R = cfg.ap.rows
    accs = [(40, 20), (60, 24), (84, 20), (104, 16)]        # (d, m): apart, one past 64
    lo, hi = 0, R
    for _ in range(10):
        words = []
        if rng.random() < 0.3:
            lo = int(rng.integers(0, R))
            hi = lo if rng.random() < 0.15 else int(rng.integers(lo, R + 1))
            words.append(encode(Instr(op=Opc.ROWS, lo=lo, hi=hi)))
        for _ in range(int(rng.integers(1, 5))):               # taps
            n = int(rng.integers(1, 17))
            a = int(rng.choice([0, 3, 20]))
            count = int(rng.integers(1, 6))
            for r0 in range(0, R, count):
                k = min(count, R - r0)
                words += [encode(Instr(op=Opc.XROWS, srow=int(rng.integers(0, MR - k)),
                                       drow=r0, stride=1)),
                          encode(Instr(op=Opc.MOVW, sap=int(rng.integers(1, 3)), dap=0,
                                       a=int(rng.integers(0, 100)), d=a, n=n, count=k))]
            s = bool(rng.integers(2))
            for _ in range(int(rng.integers(1, 7))):
                d, m = accs[int(rng.integers(len(accs)))]
                words.append(encode(Instr(op=Opc.MAC, s=s, d=d, a=a, n=n, m=m,
                                          imm=int(rng.integers(-(1 << 15), 1 << 15)))))
        what = rng.random()
        d, m = accs[int(rng.integers(len(accs)))]
        if what < 0.1:        # the operand is a deferred accumulator
            words.append(encode(Instr(op=Opc.MAC, d=accs[0][0], a=accs[1][0], n=12,
                                      m=accs[0][1], imm=int(rng.integers(-99, 99)))))
        elif what < 0.25:     # a field overlapping deferred ones, then one of them again
            big = int(rng.integers(1 << 14, 1 << 15))
            words += [encode(Instr(op=Opc.MAC, s=s, d=d + 4, a=a, n=n, m=m, imm=big)),
                      encode(Instr(op=Opc.MAC, s=s, d=d, a=a, n=n, m=m, imm=-big))]
        elif what < 0.4:      # the operand changes (not by a gather stretch), then MACs
            words += [encode(Instr(op=Opc.ADDI, d=a, n=n, imm=int(rng.integers(1, 7)))),
                      encode(Instr(op=Opc.MAC, s=s, d=d, a=a, n=n, m=m, imm=5)),
                      encode(Instr(op=Opc.XROWS, srow=0, drow=0, stride=1)),
                      encode(Instr(op=Opc.MOVW, sap=1, dap=0, a=7, d=a, n=n, count=R)),
                      encode(Instr(op=Opc.MAC, s=s, d=d, a=a, n=n, m=m, imm=-3))]
        elif what < 0.5:
            words.append(encode(Instr(op=Opc.ADD, d=0, a=d, n=16)))
        elif what < 0.6:
            words.append(encode(Instr(op=Opc.CLEAR, d=d, n=m)))
        elif what < 0.7:
            words += [encode(Instr(op=Opc.XROWS, srow=0, drow=0, stride=1)),
                      encode(Instr(op=Opc.MOVW, sap=0, dap=1, a=d, d=3, n=m, count=R))]
        elif what < 0.75:     # illegal: operand and destination overlap
            words.append(encode(Instr(op=Opc.MAC, d=d, a=d + 1, n=4, m=m, imm=3)))
        yield words


@pytest.mark.parametrize("batch", [256, 3])
def test_deferred_macs_equal_bit_level(seed, batch, monkeypatch):
    """FastTile defers runs of MACs into one matrix product (module docstring): against
    the bit-level tile on gather + MAC programs with everything that must apply them
    first, host reads and writes in between, and (batch 3) X full every few MACs."""
    import bfimna.golden.model.fast as fast_mod

    monkeypatch.setattr(fast_mod, "MAC_BATCH", batch)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = WIDE
    R, MR = cfg.ap.rows, cfg.tile.map_rows
    slow, fast = _twin_tiles(rng, cfg)
    macs = 0
    for words in _mac_program(rng, cfg, MR):
        macs += sum(1 for w in words if (w & OP_FIELD.mask) >> OP_FIELD.lsb == Opc.MAC)
        slow.run(words)
        fast.run(words)
        if rng.random() < 0.3:            # the host reads a row, or writes one
            r = int(rng.integers(0, R))
            low = (1 << (cfg.ap.cols - 1)) - 1        # not the reserved carry column
            assert fast.host_read(0, r) & low == slow.host_read(0, r) & low, \
                f"seed {seed}: row {r}"
        elif rng.random() < 0.3:
            r, v = int(rng.integers(0, R)), int(rng.integers(0, 1 << 62))
            slow.host_write(0, r, v << 40, ((1 << 62) - 1) << 40)
            fast.host_write(0, r, v << 40, ((1 << 62) - 1) << 40)
    assert macs > 50
    _same_aps(fast, slow, cfg, f"seed {seed}")
    assert fast.counters == slow.counters, f"seed {seed}"
    assert fast.activity == {k: v for k, v in slow.activity.items() if k != "wr_tagged"}
    assert (fast.error, fast.last_error) == (slow.error, slow.ctl.last_error)


def test_scheduler_gather_pairs_equal_generic_emitter(seed):
    """The scheduler's gather words (Emitter.gather_runs packs XROWS directly and checks
    MOVW's row rules itself, sched/schedule.py _gather_pair) against the same pairs
    through the generic, validating Emitter call: the same words, cycles and activity;
    rows at their limits; a pair that breaks a row rule raises the same error."""
    from bfimna.sched.schedule import Emitter, ScheduleError

    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = WIDE
    R, MR = cfg.ap.rows, cfg.tile.map_rows
    for trial in range(20):
        runs, srcs = [], []
        for _ in range(int(rng.integers(1, 12))):
            count = int(rng.integers(1, R + 1))
            stride = int(rng.choice([0, 1, 2, 255])) if count > 1 else 0
            top = MR - 1 - (count - 1) * stride
            if top < 0:
                count, stride, top = 1, 0, MR - 1
            srow = int(rng.choice([0, top, int(rng.integers(0, top + 1))]))
            drow = int(rng.integers(0, R - count + 1))
            if trial % 5 == 4 and rng.random() < 0.3:      # break a row rule
                srow, drow = (MR, drow) if rng.random() < 0.5 else (srow, R - count + 1)
            runs.append((drow, count, stride))
            srcs.append((int(rng.integers(1, 3)), srow, int(rng.integers(0, 100))))
        width, d = int(rng.integers(1, 17)), int(rng.integers(0, 100))
        ap, row, col = (np.zeros(R + 1, dtype=np.int64) for _ in range(3))
        fast, slow = Emitter(cfg), Emitter(cfg)
        results = []
        for em, generic in ((fast, False), (slow, True)):
            em(Opc.ROWS, lo=0, hi=R)
            try:
                for (drow, count, stride), (sap, srow, a) in zip(runs, srcs, strict=True):
                    if generic:
                        em(Opc.XROWS, srow=srow, drow=drow, stride=stride)
                        em(Opc.MOVW, sap=sap, dap=0, a=a, d=d, n=width, count=count)
                    else:
                        ap[drow], row[drow], col[drow] = sap, srow, a
                        em.gather_runs(d, width, ap, row, col, [(drow, count, stride)])
                words, cycles, act = em.take()
                results.append((words, cycles, act.tolist(), em.xrows))
            except ScheduleError as exc:
                results.append(str(exc))
        assert results[0] == results[1], f"seed {seed}, trial {trial}"


def _tap_loops(rng, cfg, MR):
    """Tap loops as the scheduler emits them (per tap: a CLEAR of the operand field F
    when it reads padding, gather pairs into F, MACs of F into a few accumulators),
    mixed with words that do not conform (FastTile._bulk_run): CLEARs and ADDIs of the
    accumulators, a requantisation MAC reading one, MACs into overlapping fields, MOVWs
    that break a row rule, into another field or from the CAP, XROWS with reserved bits
    set or without their MOVW, illegal words, ROWS changes (also to no rows)."""
    R = cfg.ap.rows
    F = (int(rng.choice([0, 3, 56])), int(rng.integers(1, 17)))
    accs, c = [], 0                                         # apart from F and each other
    for m in (20, 24, 20):
        if c < F[0] + F[1] and F[0] < c + m:
            c = F[0] + F[1] + 1
        accs.append((c, m))
        c += m
    words = [encode(Instr(op=Opc.ROWS, lo=int(rng.integers(0, 4)), hi=R))]
    for _ in range(int(rng.integers(40, 80))):
        if rng.random() < 0.3:
            words.append(encode(Instr(op=Opc.CLEAR, d=F[0], n=F[1])))
        r0 = int(rng.integers(0, 3))
        while r0 < R:
            k = min(int(rng.integers(1, 12)), R - r0)
            stride = int(rng.choice([0, 1, 2]))
            x = Instr(op=Opc.XROWS, srow=int(rng.integers(0, MR - (k - 1) * stride)),
                      drow=r0, stride=stride)
            m = Instr(op=Opc.MOVW, sap=int(rng.integers(1, 3)), dap=0,
                      a=int(rng.integers(0, 100)), d=F[0], n=F[1], count=k)
            odd = rng.random()
            if odd < 0.003:
                m = Instr(op=Opc.MOVW, sap=1, dap=0, a=3, d=F[0], n=F[1], count=R + 1)
            elif odd < 0.006:
                m = Instr(op=Opc.MOVW, sap=1, dap=0, a=3, d=F[0] + 1, n=F[1], count=k)
            elif odd < 0.009:
                x = Instr(op=Opc.XROWS, srow=x.srow, drow=x.drow, stride=x.stride, rsv=1 << 63)
            elif odd < 0.012:
                words.append(encode(x))                        # an XROWS without a MOVW
            words += [encode(x), encode(m)]
            if rng.random() < 0.05:                            # rows written twice
                words += [encode(Instr(op=Opc.XROWS, srow=0, drow=max(0, r0 - 2),
                                       stride=1)),
                          encode(Instr(op=Opc.MOVW, sap=2, dap=0, a=7, d=F[0], n=F[1],
                                       count=min(4, R - max(0, r0 - 2))))]
            r0 += k + int(rng.integers(0, 2))
        s = bool(rng.random() < 0.3)
        for _ in range(int(rng.integers(1, 5))):
            d, mm = accs[int(rng.integers(len(accs)))]
            words.append(encode(Instr(op=Opc.MAC, s=s, d=d, a=F[0], n=F[1], m=mm,
                                      imm=int(rng.integers(-(1 << 15), 1 << 15)))))
        what = rng.random() * 2      # half the taps: nothing else
        d, mm = accs[int(rng.integers(len(accs)))]
        if what < 0.04:
            words.append(encode(Instr(op=Opc.CLEAR, d=d, n=mm)))
        elif what < 0.07:
            words.append(encode(Instr(op=Opc.ADDI, d=d, n=mm, imm=7)))
        elif what < 0.1:      # a requantisation: reads an accumulator
            words.append(encode(Instr(op=Opc.MAC, s=True, d=0, a=d, n=mm, m=20, imm=-5)))
        elif what < 0.12:     # a field overlapping an accumulator
            words.append(encode(Instr(op=Opc.MAC, d=d + 2, a=F[0], n=F[1], m=8, imm=9)))
        elif what < 0.14:
            words += [encode(Instr(op=Opc.XROWS, srow=0, drow=0, stride=1)),
                      encode(Instr(op=Opc.MOVW, sap=0, dap=1, a=d, d=3, n=mm, count=R))]
        elif what < 0.16:
            words.append(encode(Instr(op=Opc.MAC, d=F[0], a=F[0] + 1, n=4, m=8, imm=3)))
        elif what < 0.19:
            lo = int(rng.integers(0, R))
            words.append(encode(Instr(op=Opc.ROWS, lo=lo,
                                      hi=lo if rng.random() < 0.3 else R)))
    return words


@pytest.mark.parametrize("bulk_min,cells,f64", [(48, 1 << 21, 53), (4, 50, 0)])
def test_tap_loops_equal_bit_level(seed, bulk_min, cells, f64, monkeypatch):
    """FastTile runs tap loops at once (_bulk_run, _taps): against the bit-level tile on
    tap loops with words that do not conform among them; (4, 50, 0): short stretches
    taken too, F's contents held a few at a time (_taps splits the words) and the
    products in int64 rather than float64."""
    import bfimna.golden.model.fast as fast_mod

    monkeypatch.setattr(fast_mod, "BULK_MIN", bulk_min)
    monkeypatch.setattr(fast_mod, "BULK_CELLS", cells)
    monkeypatch.setattr(fast_mod, "F64_BITS", f64)
    cfg = WIDE
    MR = cfg.tile.map_rows
    together = total = 0
    for s in range(seed, seed + 3):
        print(f"seed {s}")
        rng = np.random.default_rng(s)
        slow, fast = _twin_tiles(rng, cfg)
        words = _tap_loops(rng, cfg, MR)
        for part in np.array_split(np.array(words, dtype=np.uint64), 3):
            slow.run(part.tolist())
            fast.run(part if s % 2 else part.tolist())    # an array or a list of ints
        _same_aps(fast, slow, cfg, f"seed {s}")
        assert fast.counters == slow.counters, f"seed {s}"
        assert fast.activity == {k: v for k, v in slow.activity.items() if k != "wr_tagged"}
        assert (fast.error, fast.last_error) == (slow.error, slow.ctl.last_error), f"seed {s}"
        assert fast.xrows == slow.xrows, f"seed {s}"
        print(f"{fast.bulk_words} of {len(words)} words together")
        assert fast.bulk_words > 0, f"seed {s}"
        together += fast.bulk_words
        total += len(words)
    assert together > total // 2


def test_scheduler_tap_loop_equals_word_by_word(seed):
    """Emitter.tap_loop (the pos pass's taps as arrays, sched/schedule.py) against the
    same loop through Emitter.block and the validating Emitter call: the same words,
    cycles, activity and transfer rows; zero weights, several accumulators, taps of
    different widths and bits k, a layout reused from the cache; an imm outside 16 bits
    raises the same error."""
    from bfimna.sched.schedule import Emitter, ScheduleError

    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    cfg = WIDE
    R, MR = cfg.ap.rows, cfg.tile.map_rows
    ab, xc = 24, 100

    def gather(sub, t):              # a tap's block: CLEAR (some taps), gather pairs
        r = np.random.default_rng(t)
        if t % 3 == 0:
            sub(Opc.CLEAR, d=xc, n=8)
        runs: list[tuple[int, int, int]] = []
        ap, row, col = (np.zeros(R, dtype=np.int64) for _ in range(3))
        r0 = int(r.integers(0, 3))
        while r0 < R:
            k = min(int(r.integers(1, 9)), R - r0)
            ap[r0], row[r0], col[r0] = int(r.integers(1, 3)), int(r.integers(0, MR - k)), \
                int(r.integers(0, 100))
            runs.append((r0, k, 1))
            r0 += k
        sub.gather_runs(xc, 8 - t % 2, ap, row, col, runs)

    for trial in range(6):
        T, G = int(rng.integers(1, 40)), int(rng.integers(1, 4))
        taps = sorted(rng.choice(200, size=T, replace=False).tolist())
        W = rng.integers(-128, 128, size=(G, T)) * (rng.random((G, T)) < 0.7)
        if trial == 5:
            W[-1, -1] = 1 << 16                       # illegal imm
        nbits = np.array([8 - t % 2 for t in taps])
        kbits = np.array([int(rng.integers(0, 3)) for _ in taps])
        results = []
        for bulk in (True, False):
            em = Emitter(cfg)
            em(Opc.ROWS, lo=1, hi=R)
            try:
                for _ in range(2):                    # the second from the layout cache
                    if bulk:
                        em.tap_loop(("g",), taps, lambda t: (("gather", t),
                                                              lambda sub, t=t: gather(sub, t)),
                                    W, nbits, kbits, xc, ab)
                    else:
                        for i, t in enumerate(taps):
                            em.block(("gather", t), lambda sub, t=t: gather(sub, t))
                            for g in range(G):
                                if W[g, i]:
                                    em(Opc.MAC, d=g * ab + int(kbits[i]), a=xc,
                                       imm=int(W[g, i]), n=int(nbits[i]),
                                       m=ab - int(kbits[i]))
                words, cycles, act = em.take()
                results.append((words, cycles, act.tolist(), em.xrows))
            except ScheduleError as exc:
                results.append(str(exc))
        assert results[0] == results[1], f"seed {seed}, trial {trial}"
        assert isinstance(results[0], str) == (trial == 5)
