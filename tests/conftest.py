"""Shared test fixtures. Random tests take their seed from here and print it.

One seed scheme for every random test (docs/architecture.md, "Tests and tiers"):

- BFIMNA_SEED (default 20261123, so that CI is reproducible) is the run's base seed;
  `BFIMNA_SEED=random` draws one, prints it in the session header and hands it to every
  pytest-xdist worker, for exploratory runs.
- A test's seed is the base mixed with its node id through SHA-256 (`test_seed`): two ids
  with the same letters get different streams, and a failure reproduces with the same
  BFIMNA_SEED and test id, in any order, serial or under `-n 2`.
- Hypothesis tests are seeded the same way (`@hypothesis.seed`) and run without the
  example database, so they draw the same cases on every run with the same BFIMNA_SEED.
  Every failure message carries the seed it ran with.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import hypothesis
import pytest

from bfimna.golden.spec.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
HW_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml"))
# The `bfimna` command, run from this interpreter whether or not the venv is on PATH.
BFIMNA = [sys.executable, "-m", "bfimna.cli"]


DEFAULT_SEED = 20261123

# Hypothesis: no example database (it would replay old failures and make runs differ),
# no deadline (the simulators' speed varies with the machine's load); seeds per test below.
hypothesis.settings.register_profile("bfimna", database=None, deadline=None)
hypothesis.settings.load_profile("bfimna")


def base_seed() -> int:
    text = os.environ.get("BFIMNA_SEED", str(DEFAULT_SEED))
    try:
        return int(text)
    except ValueError:
        raise pytest.UsageError(
            f"BFIMNA_SEED must be an integer or 'random', got {text!r}") from None


def test_seed(nodeid: str, base: int | None = None) -> int:
    """The seed of test `nodeid`: the base seed and the id mixed through SHA-256."""
    base = base_seed() if base is None else base
    digest = hashlib.sha256(f"{base}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


test_seed.__test__ = False  # type: ignore[attr-defined]  # pytest reads it: a helper, not a test


def pytest_configure(config) -> None:
    # BFIMNA_SEED=random: draw once in the controller; xdist workers inherit the environment
    if os.environ.get("BFIMNA_SEED") == "random" and not hasattr(config, "workerinput"):
        os.environ["BFIMNA_SEED"] = str(random.SystemRandom().randrange(2**31))


def pytest_report_header(config) -> str:
    return f"BFIMNA_SEED={base_seed()} (reproduce a failure with this value)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Seed every Hypothesis test from BFIMNA_SEED and its id, like the `seed` fixture
    (set per item, just before it runs: parametrised items share one function)."""
    fn = getattr(item, "obj", None)
    if getattr(fn, "is_hypothesis_test", False):
        s = test_seed(item.nodeid)
        hypothesis.seed(s)(fn)
        item.add_report_section("call", "seed", f"hypothesis seed {s} "
                                f"(BFIMNA_SEED={base_seed()})")
    return (yield)


@pytest.fixture
def seed(request) -> int:
    """A per-test seed: BFIMNA_SEED (or the default) mixed with the test's id, printed."""
    s = test_seed(request.node.nodeid)
    print(f"\n[seed] {request.node.nodeid}: seed {s} (BFIMNA_SEED={base_seed()})")
    return s


@pytest.fixture(params=HW_CONFIGS, ids=lambda p: p.stem)
def hw_config(request):
    return load_config(request.param)
