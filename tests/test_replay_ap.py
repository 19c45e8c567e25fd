"""The replay path of the AP-core cosimulation (cosim/replay/ap.py): an HDL harness
applies a seeded micro-op stream from a file at the simulator's own speed, Python checks
every cycle of its response file against the golden model afterwards. Checked here: it
passes on a 1D and a 2D configuration, it agrees with the cocotb testbench (ap_tb.py) on
the same stream, and an injected generator fault fails it at the same cycle as cocotb.
"""

import re
import subprocess

import pytest

from bfimna.cosim.drivers.runner import failure_excerpt, run_ap_cosim
from bfimna.cosim.replay.ap import SWEEP_EVERY
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.uops import N_COUNTERS

from conftest import BFIMNA, CONFIG_DIR, ROOT

pytestmark = pytest.mark.cosim

BUILD = ROOT / "build" / "test-cosim"     # shared with test_cosim_ap.py (same builds)
SIMS = ["verilator", "icarus"]
# Python (stream + golden model) is the limit on Verilator; Icarus simulates these cores
# at a few thousand cycles/s
OPS = {"verilator": 12000, "icarus": 3000}
SUMMARY_KEYS = ("config", "seed", "random_uops", "cycles", "hw_cycles", "checks",
                "rtl_counters", "issued", "wall_s", "cycles_per_s", "counters", "coverage")
SAME = ("config", "seed", "random_uops", "cycles", "hw_cycles", "checks", "rtl_counters",
        "issued", "counters", "coverage")


def _cycle(text: str) -> int:
    m = re.search(r"Mismatch.*?cycle (\d+)", text)
    assert m, text
    return int(m.group(1))


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("name", ["ap2d_37x16", "ap1d_100x24"])
def test_replay_matches_golden(name, sim, seed):
    path = CONFIG_DIR / f"{name}.yaml"
    n = OPS[sim]
    res = run_ap_cosim(path, sim, seed=seed, n_ops=n, build_root=BUILD, path="replay")
    assert res.passed, f"seed {seed}:\n{failure_excerpt(res)}"
    s = res.summary
    assert set(SUMMARY_KEYS) <= set(s) and s["path"] == "replay"
    print(f"[replay] {name} on {sim}: {s['cycles']} cycles, {s['checks']} checks; "
          f"simulation {s['sim_cycles_per_s']:.0f} cycles/s, end to end "
          f"{s['cycles_per_s']:.0f} (Python {s['gen_s']:.2f} + {s['check_s']:.2f} s, "
          f"simulator {s['sim_s']:.2f} s)")
    cfg = load_config(path)
    mod = 1 << cfg.ap.counter_bits
    assert s["cycles"] == n + (n // SWEEP_EVERY + 1) * (cfg.ap.rows + N_COUNTERS)
    assert s["counters"]["cycles"] == s["cycles"] % mod
    # the RTL's own counters against what the harness drove (as test_cosim_ap.py)
    seen, issued = s["rtl_counters"], s["issued"]
    at, _, rtl_cycles = seen["cycles"]
    assert rtl_cycles == at % mod == s["hw_cycles"]
    missing = sum((n_issued - rtl) % mod for k, (_at, n_issued, rtl) in seen.items()
                  if k not in ("illegal", "cycles"))
    assert (missing + issued.get("unknown", 0)) % mod == seen["illegal"][2]
    assert s["coverage"]["compares_matching"] > n // 20
    assert s["coverage"]["writes_to_rows"] > n // 50
    assert s["coverage"]["illegal"] > 0


@pytest.mark.parametrize("sim", SIMS)
def test_replay_agrees_with_cocotb(sim, seed):
    """The same stream through both paths: the same cycles, checks, counters (the RTL's,
    as each path read them, and golden's), micro-ops issued and coverage."""
    path = CONFIG_DIR / "ap2d_37x16.yaml"
    n = 5000 if sim == "verilator" else 1500
    rep = run_ap_cosim(path, sim, seed=seed, n_ops=n, build_root=BUILD, path="replay")
    coc = run_ap_cosim(path, sim, seed=seed, n_ops=n, build_root=BUILD, path="cocotb")
    assert rep.passed, f"seed {seed}:\n{failure_excerpt(rep)}"
    assert coc.passed, f"seed {seed}:\n{failure_excerpt(coc)}"
    assert coc.summary["path"] == "cocotb"
    for key in SAME:
        assert rep.summary[key] == coc.summary[key], key


@pytest.mark.parametrize("sim,fault,name", [
    ("verilator", "cmp_ignores_mask", "ap2d_37x16"),
    ("icarus", "shift_off_by_one", "ap2d_37x16"),
    ("icarus", "wrrow_ignores_mask", "ap1d_100x24"),
])
def test_replay_catches_fault(sim, fault, name, seed):
    res = run_ap_cosim(CONFIG_DIR / f"{name}.yaml", sim, seed=seed, n_ops=2000,
                       build_root=BUILD, fault=fault, path="replay")
    assert not res.passed, f"fault {fault} was not caught on the {sim} replay path"
    text = failure_excerpt(res)
    assert "Mismatch" in text and f"seed {seed}" in text
    assert "micro-op of cycle" in text and "rerun the simulation:" in text
    assert res.summary["mismatch_cycle"] == _cycle(text)


def test_fault_found_at_the_same_cycle_as_cocotb(seed):
    """Sampling semantics: both paths see the first wrong output at the same cycle."""
    path = CONFIG_DIR / "ap2d_37x16.yaml"
    kw = dict(seed=seed, n_ops=1500, build_root=BUILD, fault="cmpa_overwrites")
    rep = run_ap_cosim(path, "icarus", path="replay", **kw)
    coc = run_ap_cosim(path, "icarus", path="cocotb", **kw)
    assert not rep.passed and not coc.passed
    assert _cycle(failure_excerpt(rep)) == _cycle(failure_excerpt(coc))


def test_cli_cosim_path(tmp_path):
    base = [*BFIMNA, "cosim", "--sim", "icarus", "--config",
            str(CONFIG_DIR / "ap2d_37x16.yaml"), "--seed", "5", "--ops", "300",
            "--build-dir", str(BUILD)]
    for path in ("replay", "cocotb"):
        out = subprocess.run([*base, "--path", path], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"path: {path}:" in out.stdout
        # 300 random micro-ops, 37 row reads back, one NOP per counter (12)
        assert "PASSED: 349 cycles simulated" in out.stdout
