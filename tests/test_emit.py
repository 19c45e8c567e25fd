"""Verilog emission (hdl/flow/emit.py), the manifest, lint (hdl/flow/lint.py) and
`bfimna verilog`."""

import json
import subprocess

import pytest

from bfimna.golden.spec.config import APConfig, Config, load_config
from bfimna.hdl.flow.emit import emit
from bfimna.hdl.flow.lint import WAIVERS, lint
from bfimna.hdl.gen.ap import ap_module_name
from bfimna.hdl.gen.controller import controller_module_name
from bfimna.hdl.gen.system import system_module_name

from conftest import BFIMNA, HW_CONFIGS


@pytest.mark.parametrize("path", HW_CONFIGS, ids=lambda p: p.stem)
def test_emit_manifest_and_lint(path, tmp_path):
    cfg = load_config(path)
    manifest = emit(cfg, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    core, ctl, top = manifest["modules"]
    assert manifest["config"]["sha256"] == cfg.hash
    assert core["name"] == ap_module_name(cfg.ap)
    assert ctl["name"] == controller_module_name(cfg)
    assert top["name"] == system_module_name(cfg) == manifest["top"]
    assert len([c for c in ctl["contains"] if "(MAP)" in c]) == cfg.tile.maps
    assert len(top["contains"]) == cfg.system.tiles + 1
    for mod in (core, ctl, top):
        text = (tmp_path / mod["file"]).read_text()
        assert f"module {mod['name']}(" in text
        ports = {p["name"]: (p["dir"], p["width"]) for p in mod["ports"]}
        for name, (_dir, width) in ports.items():  # every manifest port is in the Verilog
            decl = f"input {name};" if width == 1 else f"[{width - 1}:0] {name};"
            assert decl in text or f"output {name};" in text, name
        assert lint([tmp_path / mod["file"]], mod["name"]) == []
    ports = {p["name"]: (p["dir"], p["width"]) for p in core["ports"]}
    assert ports["key"] == ("in", cfg.ap.cols) and ports["tag"] == ("out", cfg.ap.rows)
    assert ("vec" in ports) == cfg.ap.two_d
    ports = {p["name"]: (p["dir"], p["width"]) for p in ctl["ports"]}
    assert ports["s_data"] == ("in", 64) and ports["s_ready"] == ("out", 1)
    ports = {p["name"]: (p["dir"], p["width"]) for p in top["ports"]}
    assert ports["s_axis_tdata"] == ("in", 64) and ports["m_axis_tlast"] == ("out", 1)
    assert ports["s_axil_rdata"] == ("out", 32)


def test_emission_is_reproducible(tmp_path, monkeypatch):
    """Two generations of the same configuration give the same text, module for module:
    each from scratch (no in-process memo, an empty disk cache of its own), so the
    second is generated again rather than read back from the first."""
    from bfimna.hdl.flow import emit as emit_mod
    cfg = Config(name="t", ap=APConfig(rows=13, cols=8, dims=2, counter_bits=12))
    texts = []
    for run in ("a", "b"):
        monkeypatch.setattr(emit_mod, "_MEMO", {})
        monkeypatch.setenv("BFIMNA_VERILOG_CACHE", str(tmp_path / f"cache-{run}"))
        man = emit(cfg, tmp_path / run)
        texts.append({m["file"]: (tmp_path / run / m["file"]).read_text()
                      for m in man["modules"]})
        assert any((tmp_path / f"cache-{run}").iterdir())     # generated, then cached
    assert len(texts[0]) == 3 and texts[0] == texts[1]


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
    assert out.stdout.count("verilator --lint-only -Wall") == 3  # AP core, tile, system
    assert (tmp_path / "manifest.json").is_file()
    bad = subprocess.run([*BFIMNA, "verilog", "--config", str(tmp_path / "none.yaml"),
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "configuration file not found" in bad.stderr
