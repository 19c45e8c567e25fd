"""cocotb cosimulation of the emitted AP core against the golden model, on Verilator and
Icarus, for every configuration in configs/ (1D and 2D, row counts that are not powers
of two, and the 256-row default). One build directory per configuration and simulator.
"""

import subprocess

import pytest

from bfimna.cosim.drivers.runner import failure_excerpt, run_ap_cosim
from bfimna.golden.spec.config import load_config

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
    assert s["seed"] == seed and s["random_uops"] == OPS[sim]
    assert s["hw_cycles"] == s["cycles"] % (1 << load_config(path).ap.counter_bits)
    # the stream did real work: compares that matched, writes that landed, errors flagged
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
