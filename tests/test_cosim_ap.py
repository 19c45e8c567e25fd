"""cocotb cosimulation of the emitted AP core against the golden model, on Verilator and
Icarus, for every configuration in configs/ (1D and 2D, row counts that are not powers
of two, and the 256-row default). One build directory per configuration and simulator.
"""

import subprocess

import pytest

from bfimna.cosim.drivers.runner import failure_excerpt, run_ap_cosim
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.uops import N_COUNTERS

from conftest import BFIMNA, CONFIG_DIR, HW_CONFIGS, ROOT

pytestmark = pytest.mark.cosim

BUILD = ROOT / "build" / "test-cosim"
# Python drives every cycle; Icarus is several times slower, so it gets a shorter stream.
OPS = {"verilator": 20000, "icarus": 3000}


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("path", HW_CONFIGS, ids=lambda p: p.stem)
def test_random_stream_matches_golden(path, sim, seed):
    res = run_ap_cosim(path, sim, seed=seed, n_ops=OPS[sim], build_root=BUILD)
    assert res.passed, f"seed {seed}:\n{failure_excerpt(res)}"
    s = res.summary
    print(f"[cosim] {path.stem} on {sim}: {s['cycles']} cycles, {s['checks']} checks, "
          f"{s['cycles_per_s']:.0f} cycles/s")
    cfg = load_config(path)
    mod = 1 << cfg.ap.counter_bits
    # the testbench drove every micro-op: the random ones plus, per sweep, a read of every
    # row and one NOP per counter (a sweep every SWEEP_EVERY = 4000 and one at the end)
    assert s["cycles"] == OPS[sim] + (OPS[sim] // 4000 + 1) * (cfg.ap.rows + N_COUNTERS)
    # the RTL's own counters against what the testbench drove (not the golden model's):
    # `cycles` as read at clock c is c; each opcode's counter is the micro-ops of that
    # opcode driven so far minus the illegal ones, which the `illegal` counter has
    seen, issued = s["rtl_counters"], s["issued"]
    at, _, rtl_cycles = seen["cycles"]
    assert rtl_cycles == at % mod
    missing = sum((n_issued - rtl) % mod for name, (_at, n_issued, rtl) in seen.items()
                  if name not in ("illegal", "cycles"))
    assert (missing + issued.get("unknown", 0)) % mod == seen["illegal"][2]
    # the stream did real work (seen on the RTL's outputs): compares that matched,
    # writes that landed, errors flagged
    assert s["coverage"]["compares_matching"] > OPS[sim] // 20
    assert s["coverage"]["writes_to_rows"] > OPS[sim] // 50
    assert s["coverage"]["illegal"] > 0


@pytest.mark.parametrize("sim,fault", [("verilator", "cmp_ignores_mask"),
                                       ("icarus", "shift_off_by_one")])
def test_broken_generator_fails_cosim(sim, fault, seed):
    res = run_ap_cosim(CONFIG_DIR / "ap2d_37x16.yaml", sim, seed=seed, n_ops=2000,
                       build_root=BUILD, fault=fault)
    assert not res.passed, f"fault {fault} was not caught by the {sim} testbench"
    assert "Mismatch" in failure_excerpt(res)


def test_cli_cosim(tmp_path):
    out = subprocess.run([*BFIMNA, "cosim", "--sim", "icarus", "--config",
                          str(CONFIG_DIR / "ap2d_37x16.yaml"), "--seed", "5", "--ops", "500",
                          "--build-dir", str(BUILD)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # 500 random micro-ops, 37 row reads back, one NOP per counter (12)
    assert "PASSED: 549 cycles simulated" in out.stdout
