"""The AP-core generator (hdl/ap.py) in Amaranth's simulator against the golden model,
plus Verilog emission, manifest and lint. Fast tier: no external simulator.
"""

import itertools
import json
import subprocess

import pytest
from amaranth.sim import Simulator

from bfimna.golden.ap import APModel
from bfimna.golden.config import APConfig, Config
from bfimna.golden.stimulus import random_uops, readback_uops
from bfimna.golden.uops import N_COUNTERS, port_widths
from bfimna.hdl.ap import FAULTS, APCore, ap_module_name
from bfimna.hdl.emit import emit
from bfimna.hdl.lint import WAIVERS, lint

from conftest import BFIMNA, HW_CONFIGS

SIM_CONFIGS = [
    APConfig(rows=13, cols=8, dims=2, counter_bits=12),
    APConfig(rows=9, cols=6, dims=1, counter_bits=8),   # counters wrap during the run
    APConfig(rows=16, cols=5, dims=2, counter_bits=16),
    APConfig(rows=1, cols=2, dims=2, counter_bits=8),   # degenerate single row
]


def simulate(ap: APConfig, seed: int, n_ops: int, fault: str | None = None) -> dict:
    """Run a random stream then a full read-back on the generated core, comparing every
    output with the golden model each cycle. Returns the first mismatch (or None)."""
    dut = APCore(ap, fault=fault)
    model = APModel(ap)
    fields = list(port_widths(ap))
    outcome = {"mismatch": None, "cycles": 0}

    async def bench(ctx):
        stream = itertools.chain(random_uops(model, seed, n_ops), readback_uops(ap))
        for cycle, u in enumerate(stream, start=1):
            sel = cycle % N_COUNTERS
            for f in fields:
                ctx.set(getattr(dut, f), getattr(u, f))
            ctx.set(dut.cnt_sel, sel)
            await ctx.tick()
            model.step(u)
            want = model.expected_outputs(sel)
            got = {port: ctx.get(getattr(dut, port)) for port in want}
            bad = {p: (got[p], want[p]) for p in want if got[p] != want[p]}
            if bad:
                outcome["mismatch"] = f"seed {seed}, cycle {cycle}, {u}: (RTL, golden) {bad}"
                return
            outcome["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return outcome


@pytest.mark.parametrize("ap", SIM_CONFIGS, ids=lambda a: f"{a.dims}d_{a.rows}x{a.cols}")
def test_generator_matches_golden(ap, seed):
    out = simulate(ap, seed, n_ops=400)
    assert out["mismatch"] is None, out["mismatch"]
    assert out["cycles"] == 400 + ap.rows + N_COUNTERS


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_injected_fault_is_caught(fault, seed):
    """Mutation check: the comparison is strong enough to fail on each broken generator."""
    out = simulate(SIM_CONFIGS[0], seed, n_ops=400, fault=fault)
    assert out["mismatch"] is not None, f"fault {fault!r} ({FAULTS[fault]}) went unnoticed"


def test_unknown_fault_rejected():
    with pytest.raises(ValueError, match="unknown fault"):
        APCore(SIM_CONFIGS[0], fault="nope")


def test_module_name_carries_parameters():
    names = {ap_module_name(a) for a in SIM_CONFIGS}
    assert len(names) == len(SIM_CONFIGS)
    assert ap_module_name(SIM_CONFIGS[0]) == "bfimna_ap2d_r13_c8_n12"


@pytest.mark.parametrize("path", HW_CONFIGS, ids=lambda p: p.stem)
def test_emit_manifest_and_lint(path, tmp_path):
    from bfimna.golden.config import load_config
    cfg = load_config(path)
    manifest = emit(cfg, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    mod = manifest["modules"][0]
    assert manifest["config"]["sha256"] == cfg.hash
    assert mod["name"] == ap_module_name(cfg.ap) == manifest["top"]
    text = (tmp_path / mod["file"]).read_text()
    assert f"module {mod['name']}(" in text
    ports = {p["name"]: (p["dir"], p["width"]) for p in mod["ports"]}
    assert ports["key"] == ("in", cfg.ap.cols) and ports["tag"] == ("out", cfg.ap.rows)
    assert ("vec" in ports) == cfg.ap.two_d
    for name, (_dir, width) in ports.items():  # every manifest port is in the Verilog
        decl = f"input {name};" if width == 1 else f"[{width - 1}:0] {name};"
        assert decl in text or f"output {name};" in text, name
    assert lint([tmp_path / mod["file"]], mod["name"]) == []


def test_emission_is_reproducible(tmp_path):
    cfg = Config(name="t", ap=SIM_CONFIGS[0])
    a = emit(cfg, tmp_path / "a")
    b = emit(cfg, tmp_path / "b")
    assert (tmp_path / "a" / a["modules"][0]["file"]).read_text() == \
        (tmp_path / "b" / b["modules"][0]["file"]).read_text()


def test_lint_reports_real_problems(tmp_path):
    """The waivers are narrow: a blocking assignment in a clocked block still fails."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, input d, output reg q);\n"
                   "  always @(posedge clk) q = d;\nendmodule\n")
    problems = lint([bad], "bad")
    assert problems and "BLKSEQ" in problems[0]
    assert "BLKSEQ" not in WAIVERS


def test_cli_verilog(tmp_path):
    out = subprocess.run([*BFIMNA, "verilog", "--config", str(HW_CONFIGS[0]),
                          "--out", str(tmp_path), "--lint"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "lint: verilator --lint-only -Wall" in out.stdout
    assert (tmp_path / "manifest.json").is_file()
    bad = subprocess.run([*BFIMNA, "verilog", "--config", str(tmp_path / "none.yaml"),
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "configuration file not found" in bad.stderr
