"""The replay harness of the system top (cosim/replay/system.py): the host program's beats
and the idle / back-pressure patterns live in HDL, Python reads the response file.

- many seeded random host programs (every packet kind, bad packets, illegal words,
  copies, syncs) under random idle and back-pressure: every response word, the status
  and every counter equal the golden system's, nothing more comes out;
- the replay path and the cocotbext-axi path give identical responses and counters on the
  same program;
- the harness never hangs: a watchdog budget too small is reported as a timeout, and an
  output frame nobody asked for fails the run;
- a waveform window (--waves-from/--waves-to) records an FST of those cycles only.
"""

import random

import pytest

from bfimna.cosim.drivers.backends import DriverError, backend, compare
from bfimna.golden.host.program import HostProgram
from bfimna.golden.host.stimulus import random_host_program
from bfimna.golden.spec.config import load_config

from conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim
BUILD = ROOT / "build" / "test-cosim"
# random host programs per run: Icarus runs the harness ~100x slower than Verilator
N_PROGRAMS = {"verilator": 60, "icarus": 8}


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", ["sys_t2k2", "ap2d_37x16"])
def test_random_host_programs(name, sim, seed):
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    gold = backend("golden", cfg)
    rng = random.Random(seed)
    n = N_PROGRAMS[sim]
    rtl = backend(sim, cfg, build_root=BUILD)
    cycles = words = 0
    for k in range(n):
        s = rng.randrange(2**31)
        idle, bp = rng.choice([0.0, 0.3, 0.7]), rng.choice([0.0, 0.3, 0.7])
        prog = random_host_program(cfg, s, n_packets=rng.randrange(5, 40))
        rtl.seed, rtl.idle, rtl.backpressure = s, idle, bp
        got = rtl.run(prog)
        diffs = compare(gold.run(prog), got, prog)
        assert not diffs, (f"program {k} (seed {s}, idle {idle}, back-pressure {bp}): "
                           + "; ".join(diffs[:6]) + f"; rerun: {rtl.command}")
        assert got.extra["extra_output_frames"] == 0
        assert got.extra["path"] == "replay"
        cycles += got.sim_cycles or 0
        words += prog.n_words
    print(f"{name} on {sim}: {n} random host programs, {words} words in, {cycles} cycles, "
          f"all equal to golden (seed {seed})")


@pytest.mark.parametrize("name,sim", [("ap2d_37x16", "verilator"), ("sys_t2k2", "icarus")],
                         ids=lambda v: v)
def test_replay_equals_cocotb(name, sim, seed):
    """The two RTL paths on one program: identical responses, status and counters (both
    are also checked against golden), whatever their idle patterns. On the cocotb builds
    test_cosim_system makes (no cocotb Verilator build of the two-tile system)."""
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    prog = random_host_program(cfg, seed, n_packets=30)
    runs = {path: backend(sim, cfg, build_root=BUILD, seed=seed, idle=0.3, backpressure=0.3,
                          path=path).run(prog) for path in ("replay", "cocotb")}
    rep, coco = runs["replay"], runs["cocotb"]
    assert rep.extra["path"] == "replay" and coco.extra["path"] == "cocotb"
    assert rep.responses == coco.responses
    assert rep.global_counters == coco.global_counters
    assert rep.tile_counters == coco.tile_counters
    assert (rep.proto_error, rep.tile_errors) == (coco.proto_error, coco.tile_errors)
    assert not compare(backend("golden", cfg).run(prog), rep, prog)
    print(f"replay {rep.sim_cycles} cycles at {rep.cycles_per_s} cycles/s, cocotb "
          f"{coco.sim_cycles} cycles at {coco.cycles_per_s} cycles/s ({sim})")


def _small_program(cfg):
    prog = HostProgram(cfg)
    prog.write(0, 0, 0, [1, 2, 3], width=4)
    prog.read(0, 0, 0, 3, width=4)
    prog.sync(tag=5)
    return prog


def test_watchdog_reports_a_timeout():
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    rtl = backend("verilator", cfg, build_root=BUILD)
    rtl.budget = lambda prog: 3            # far too few cycles
    with pytest.raises(DriverError, match=r"verilator run timed out.*rerun the simulation: "):
        rtl.run(_small_program(cfg))


def test_unexpected_output_frame_fails():
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    prog = _small_program(cfg)
    prog.responses.pop()                   # the SYNC answer is now a frame nobody expects
    with pytest.raises(DriverError, match=r"1 output frames beyond the 1 expected"):
        backend("verilator", cfg, build_root=BUILD).run(prog)


@pytest.mark.parametrize("sim", ["icarus"])   # the same HDL; a Verilator FST build takes minutes
def test_waves_window(sim, tmp_path):
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")   # the smallest system: a quick build
    rtl = backend(sim, cfg, build_root=tmp_path, waves_window=(10, 60))
    got = rtl.run(_small_program(cfg))
    assert got.responses[0] == [1, 2, 3]
    fst = list(tmp_path.rglob("waves-10-60.fst"))
    assert len(fst) == 1 and fst[0].stat().st_size > 100, fst
    assert fst[0].read_bytes()[:1] == b"\x00"        # an FST header block, not VCD text
