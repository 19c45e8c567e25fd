"""The tile's replay harness (cosim/replay/tile.py) on the emitted tile, Verilator and Icarus:
a thousand (Verilator) / a hundred (Icarus) seeded random tile programs in one simulation
per configuration, every CAP and MAP row, every counter and the error flag equal to the
golden tile's (golden/model/tile.py); the replay and cocotb paths agree on the same
programs; the per-job watchdog drops a job and the next job of the batch still runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bfimna.cosim.drivers.runner import run_program_rtl
from bfimna.cosim.replay.tile import TileJobRun, last_run_info, row_ints, run_tile_replay
from bfimna.golden.host.stimulus import random_tile_program
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import config_from_dict, load_config
from bfimna.golden.spec.isa import RESERVED_COLS

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"

# per simulator: (config, programs, instructions per program [lo, hi), idle share).
# default.yaml (256 x 64 CAP + 2 MAPs of 256 rows): each job also writes and reads back
# 768 rows, and the golden tile takes ~3 ms an instruction, so its programs are short;
# ap2d_37x16 (37 x 16 CAP + 1 MAP) takes the bulk. Measured on a 2-core machine busy with
# another test run, once built: Verilator 39-47 s (about 1 s of it in the simulator, the
# rest the golden tile and the stimulus), Icarus 35 s (the simulator: ~300 cycles/s on
# default.yaml, ~3000 on ap2d_37x16; the golden runs meanwhile).
PLAN = {
    "verilator": [("default", 150, (3, 13), 0.0), ("ap2d_37x16", 850, (5, 41), 0.3)],
    "icarus": [("default", 4, (3, 8), 0.0), ("ap2d_37x16", 96, (5, 41), 0.3)],
}


def make_job(cfg, s: int, n_range: tuple[int, int]):
    """Job of program seed `s`: a random tile program (some up to 32 bits wide, illegal
    words included), a random CAP and, in half the jobs, random MAPs."""
    rng = np.random.default_rng(s)
    n = int(rng.integers(*n_range))
    max_width = 32 if rng.random() < 0.25 else 16
    words = random_tile_program(cfg, s, n, illegal_share=0.05, max_width=max_width)
    cam = rng.integers(0, 2, size=(cfg.ap.rows, cfg.ap.cols)).astype(np.uint8)
    cam[:, -RESERVED_COLS:] = 0
    maps = None
    if cfg.tile.maps and rng.random() < 0.5:
        maps = [rng.integers(0, 2, size=(cfg.map_ap.rows, cfg.map_ap.cols)).astype(np.uint8)
                for _ in range(cfg.tile.maps)]
    return words, cam, maps


def golden(cfg, words, cam, maps) -> Tile:
    t = Tile(cfg)
    usable = (1 << (cfg.ap.cols - RESERVED_COLS)) - 1
    for r, v in enumerate(row_ints(cam)):
        t.host_write(0, r, v, usable)
    for k, arr in enumerate(maps or [], start=1):
        for r, v in enumerate(row_ints(arr)):
            t.host_write(k, r, v, (1 << cfg.map_ap.cols) - 1)
    return t.run(words)


def first_difference(cfg, got: TileJobRun, want: Tile) -> str | None:
    """None when the RTL job equals the golden tile, else what differs first."""
    if got.timed_out:
        return f"timed out after {got.sim_cycles} cycles (budget {got.budget})"
    if not got.passed:
        return ("host reads without host_rvalid at (ap, row) " + str(got.missing_reads[:4])
                if got.missing_reads else "the harness did not finish the job")
    for k in range(cfg.tile.maps + 1):
        rows = got.rows if k == 0 else got.maps[k - 1]
        for r, (g, w) in enumerate(zip(rows, want.ap(k).rows_as_ints(), strict=True)):
            if g != w:
                return f"AP {k} row {r}: RTL {g:#x}, golden {w:#x}"
    mod = 1 << cfg.ap.counter_bits
    for key, v in want.counters.items():
        if got.counters.get(key) != v % mod:
            return f"counter {key}: RTL {got.counters.get(key)}, golden {v % mod}"
    if got.error != want.error:
        return f"error flag: RTL {got.error}, golden {want.error}"
    if got.busy:
        return "still busy after the readback"
    return None


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_random_tile_programs_match_golden(sim, seed):
    total = 0
    for name, count, n_range, idle in PLAN[sim]:
        cfg = load_config(CONFIG_DIR / f"{name}.yaml")
        seeds = [seed + i for i in range(count)]
        jobs = [make_job(cfg, s, n_range) for s in seeds]
        with ThreadPoolExecutor(1) as pool:   # the golden runs while the simulator does
            fut = pool.submit(run_tile_replay, cfg, sim, jobs, BUILD, seed=seed, idle=idle,
                              keep=True)
            want = [golden(cfg, *job) for job in jobs]
            got = fut.result()
        info = last_run_info()
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            why = first_difference(cfg, g, w)
            assert why is None, (
                f"{name} on {sim}, job {i} (program seed {seeds[i]}, test seed {seed}): "
                f"{why}\n  rerun the simulation: {g.command}\n  log: {g.log}")
        if got[0].run is not None:
            got[0].run.cleanup()
        cycles = sum(w.counters["cycles"] for w in want)
        print(f"[replay-tile] {name} on {sim}: {count} programs checked (seed {seed}), "
              f"{cycles} program cycles, {info['cycles']} simulated, "
              f"{info['sim_wall_s']:.2f} s in the simulator "
              f"({info['cycles'] / info['sim_wall_s']:.0f} cycles/s), "
              f"{sum(w.counters['errors'] for w in want)} illegal words")
        total += count
    print(f"[replay-tile] {total} programs checked on {sim}, seed {seed}")
    assert total >= (1000 if sim == "verilator" else 100)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_replay_and_cocotb_paths_agree(sim, seed):
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    for s in (seed, seed + 1, seed + 2):
        words, cam, _ = make_job(cfg, s, (20, 31))
        a = run_program_rtl(cfg, sim, words, cam, build_root=BUILD, path="replay")
        b = run_program_rtl(cfg, sim, words, cam, build_root=BUILD, path="cocotb")
        assert a.passed and b.passed, f"program seed {s}: {a.log} / {b.log}"
        assert a.summary["path"] == "replay" and b.summary["path"] == "cocotb"
        assert (a.rows, a.counters, a.error) == (b.rows, b.counters, b.error), \
            f"program seed {s}: the paths differ; rerun the replay with {a.command}"
        want = golden(cfg, words, cam, None)
        assert a.rows == want.cap.rows_as_ints(), f"program seed {s}"


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_watchdog_drops_a_job_and_the_batch_goes_on(sim, seed):
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    jobs = [make_job(cfg, s, (30, 41)) for s in (seed, seed + 1, seed + 2)]
    # job 1 gets 5 cycles: it times out while its words still stream (more words than
    # the queue holds), so the harness must also skip the rest of them in the file
    assert len(jobs[1][0]) > cfg.ctrl.queue_depth
    budgets = [100_000, 5, 100_000]
    got = run_tile_replay(cfg, sim, jobs, BUILD, seed=seed, budgets=budgets, keep=True)
    assert got[1].timed_out and not got[1].passed, f"seed {seed}: {got[1]}"
    for i in (0, 2):
        why = first_difference(cfg, got[i], golden(cfg, *jobs[i]))
        assert why is None, f"job {i} (seed {seed}): {why}; rerun: {got[i].command}"
    if got[0].run is not None:
        got[0].run.cleanup()


def test_bram_maps_match_golden_on_icarus(seed):
    """The tile with its MAP in block RAM (tile.map_memory: bram, hdl/gen/mapmem.py) as
    Verilog: random programs (transfers to and from the MAP included) on Icarus, whose
    build takes seconds, equal the golden tile row for row and counter for counter."""
    base = load_config(CONFIG_DIR / "ap2d_37x16.yaml").as_dict()
    base["name"] = "ap2d_37x16_bram"
    base["tile"]["map_memory"] = "bram"
    cfg = config_from_dict(base)
    # the harness resets the tile between jobs and a memory keeps its rows over a reset
    # (golden's System.reset models that), so every job here loads the whole MAP
    rng = np.random.default_rng(seed)
    jobs = [(w, cam, [rng.integers(0, 2, size=(cfg.map_ap.rows, cfg.map_ap.cols))
                      .astype(np.uint8)])
            for w, cam, _ in (make_job(cfg, seed + i, (5, 41)) for i in range(40))]
    got = run_tile_replay(cfg, "icarus", jobs, BUILD, seed=seed, idle=0.3, keep=True)
    movw = 0
    for i, (g, job) in enumerate(zip(got, jobs, strict=True)):
        want = golden(cfg, *job)
        why = first_difference(cfg, g, want)
        assert why is None, f"job {i} (program seed {seed + i}): {why}; rerun: {g.command}"
        movw += want.counters["row_transfers"]
    assert movw > 0, f"seed {seed}: no row moved: the MAP was not exercised"
    if got[0].run is not None:
        got[0].run.cleanup()
