"""Shared test fixtures. Random tests take their seed from here and print it.

Seeds are fixed by default so that CI is reproducible; set BFIMNA_SEED=<int> to explore
other streams. Every failure message carries the seed it ran with.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bfimna.golden.spec.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
HW_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml"))
# The `bfimna` command, run from this interpreter whether or not the venv is on PATH.
BFIMNA = [sys.executable, "-m", "bfimna.cli"]


def base_seed() -> int:
    return int(os.environ.get("BFIMNA_SEED", "20261123"))


@pytest.fixture
def seed(request) -> int:
    """A per-test seed: BFIMNA_SEED (or the default) mixed with the test's id, printed."""
    s = (base_seed() + sum(map(ord, request.node.nodeid))) % (2**31)
    print(f"\n[seed] {request.node.nodeid}: seed {s} (BFIMNA_SEED={base_seed()})")
    return s


@pytest.fixture(params=HW_CONFIGS, ids=lambda p: p.stem)
def hw_config(request):
    return load_config(request.param)
