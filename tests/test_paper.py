"""BF-IMNA's qualitative claims on ResNet18's HAWQ-V3 plans (scripts/paper.py,
docs/results.md): the claims' check (accuracy from HAWQ's published table, EDP from the
model) says what the data says, on hand-made rows here; on ResNet18 predicted at 32 x 32
in tests/test_resnet.py (which predicts those plans anyway)."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PAPER = _module("paper")
TOP1 = _module("make_zoo").HAWQ_TOP1


def _rows(edp: dict[str, float]) -> dict:
    return {(p, "t"): {"edp_js": e} for p, e in edp.items()}


def test_claims_check_on_hand_made_rows():
    ok = {"uniform8": 10.0, "latency_0.75": 8.0, "latency_0.5": 6.0, "latency_0.25": 4.2,
          "uniform4": 4.0}
    got = PAPER.check_claims(_rows(ok), ["t"], TOP1)
    assert [c["holds"] for c in got] == [True, True]
    # the high-latency plan cheaper than INT4: claim 1 fails
    bad1 = dict(ok, **{"latency_0.75": 3.9})
    assert [c["holds"] for c in PAPER.check_claims(_rows(bad1), ["t"], TOP1)] == [False, False]
    # the mid plan closer to INT4 in EDP than the low-latency one: claim 2 fails
    bad2 = dict(ok, **{"latency_0.5": 4.1})
    assert [c["holds"] for c in PAPER.check_claims(_rows(bad2), ["t"], TOP1)] == [True, False]
    # HAWQ's published accuracies: the claims' accuracy halves hold in the table itself
    assert TOP1["latency_0.75"] > TOP1["latency_0.5"] > TOP1["latency_0.25"] > \
        TOP1["uniform4"]
