"""The environment Verilator models are built in (hdl/flow/tools.py)."""

import shutil

import pytest

from bfimna.hdl.flow import tools


def test_make_vars_and_compiler_cache(monkeypatch):
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    monkeypatch.delenv("BFIMNA_CCACHE", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    flags = tools.verilator_build_env()["MAKEFLAGS"].split()
    assert "CFG_CXXFLAGS_PCH_I=-include" in flags and "OPT_FAST=-O2" in flags
    flags = tools.verilator_build_env(tools.OPT_FAST_COCOTB)["MAKEFLAGS"].split()
    assert "OPT_FAST=-O0" in flags and "OPT_FAST=-O2" not in flags
    monkeypatch.setenv("MAKEFLAGS", "OPT_FAST=-O3")               # the user's own is kept
    flags = tools.verilator_build_env()["MAKEFLAGS"].split()
    assert [f for f in flags if f.startswith("OPT_FAST")] == ["OPT_FAST=-O3"]
    monkeypatch.delenv("MAKEFLAGS")
    flags = tools.verilator_build_env()["MAKEFLAGS"].split()
    assert "OBJCACHE=ccache" in flags
    monkeypatch.setenv("BFIMNA_CCACHE", "0")                      # turned off
    assert "OBJCACHE" not in tools.verilator_build_env()["MAKEFLAGS"]
    monkeypatch.delenv("BFIMNA_CCACHE")
    monkeypatch.setenv("MAKEFLAGS", "OBJCACHE=sccache")           # the user's own is kept
    flags = tools.verilator_build_env()["MAKEFLAGS"].split()
    assert [f for f in flags if f.startswith("OBJCACHE")] == ["OBJCACHE=sccache"]
    monkeypatch.delenv("MAKEFLAGS")
    monkeypatch.setattr(shutil, "which", lambda name: None)       # no ccache installed
    assert "OBJCACHE" not in tools.verilator_build_env()["MAKEFLAGS"]


@pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache not installed")
def test_ccache_is_used_when_installed(monkeypatch):
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    monkeypatch.delenv("BFIMNA_CCACHE", raising=False)
    assert tools.objcache() == "ccache"
