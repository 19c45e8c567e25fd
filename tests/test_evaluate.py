"""The cost model (sched/evaluate.py, docs/energy.md): energy, latency and the figures
derived from them, recomputed by hand from a run's activity and a technology point; the
prediction evaluated equals the golden execution evaluated; `bfimna evaluate` prints,
writes JSON, CSV and plots, and refuses bad input with exit 2."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

from bfimna.cosim.drivers.backends import backend
from bfimna.golden.nn.network import load_network, load_plan, quantize
from bfimna.golden.spec.config import load_config
from bfimna.sched.evaluate import KINDS, bit_cells, evaluate
from bfimna.sched.run import predict_network, run_network

from conftest import CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"

# a made-up technology point with distinct powers of ten, so that each term of the model
# shows in the result on its own (J per unit, W, m^2)
POINT = SimpleNamespace(
    tech="test", vdd=1.0, clock_hz=1e8, sources={}, match_cols=32, write_cycles=1,
    energy={"cam.search": 1e-15, "cam.match": 1e-14, "cam.write": 1e-13,
            "cam.column": 1e-12, "cam.row": 1e-11, "controller.cycle": 1e-10,
            "host.word": 1e-9},
    leakage={"cam.leakage": 1e-12, "controller.leakage": 1e-6},
    area={"cam.cell": 1e-12, "cam.row_periphery": 1e-10, "cam.column_periphery": 1e-9,
          "controller.tile": 1e-8})


def _digits(plan="int8"):
    cfg = load_config(CONFIG_DIR / "default.yaml")
    net = load_network(DIGITS / "network.yaml")
    return cfg, net, quantize(net, load_plan(DIGITS / f"{plan}.yaml", net))


def test_energy_by_hand():
    """Every kind of energy, the latency and the derived figures of the digits CNN,
    recomputed here term by term from the activity the schedule predicts."""
    cfg, net, q = _digits()
    rep = predict_network(q, 2, cfg)
    ev = evaluate(rep, cfg, POINT, 2, network=net.name, plan="int8")
    T = cfg.system.tiles
    cells = T * (cfg.ap.rows * cfg.ap.cols + cfg.tile.maps * cfg.map_ap.rows * cfg.map_ap.cols)
    assert bit_cells(cfg) == cells
    p_static = cells * 1e-12 + T * 1e-6
    total_e = total_t = 0.0
    for layer, row in zip(rep.layers, ev.layers, strict=True):
        a = layer.activity
        want = {"compare": a["cmp_cells"] * 1e-15
                + a["match_rows"] * 1e-14 * cfg.ap.cols / 32,
                "write": a["wr_cells"] * 1e-13,
                "transfers": a["col_cells"] * 1e-12 + a["row_bits"] * 1e-11,
                "host": layer.host_words * 1e-9,
                "controller": a["cycles"] * 1e-10}
        t = (layer.busiest_tile + layer.host_words) / 1e8
        want["leakage"] = p_static * t
        for k in KINDS:
            assert row[f"energy_{k}_j"] == pytest.approx(want[k], rel=1e-12), (layer.name, k)
        assert row["latency_s"] == pytest.approx(t, rel=1e-12)
        assert row["idle_tile_cycles"] == T * (layer.busiest_tile + layer.host_words) - \
            a["cycles"] >= 0
        total_e += sum(want.values())
        total_t += t
    tot = ev.total
    assert tot["energy_j"] == pytest.approx(total_e, rel=1e-12)
    assert tot["latency_s"] == pytest.approx(total_t, rel=1e-12)
    macs = sum(layer.macs for layer in rep.layers)
    assert macs == 2 * sum(
        int(ql.w.size) * ql.layer.out_shape[1] * ql.layer.out_shape[2]
        for ql in q.layers if ql.layer.type == "conv") + 2 * sum(
        int(ql.w.size) for ql in q.layers if ql.layer.type == "fc")
    assert tot["tops_per_w"] == pytest.approx(2 * macs / total_e / 1e12)
    assert tot["frames_per_s"] == pytest.approx(2 / total_t)
    assert tot["edp_js"] == pytest.approx(total_e * total_t)
    assert tot["power_w"] == pytest.approx(total_e / total_t)
    area = (cells * 1e-12 + T * (cfg.ap.rows + cfg.tile.maps * cfg.map_ap.rows) * 1e-10
            + T * (cfg.ap.cols + cfg.tile.maps * cfg.map_ap.cols) * 1e-9 + T * 1e-8)
    assert tot["area_mm2"] == pytest.approx(area * 1e6)
    assert all(tot[f"energy_{k}_j"] > 0 for k in KINDS)


def test_copies_on_chip_by_hand():
    """On-chip residency on two tiles: a layer's latency adds the bus cycles of its
    COPYs, its transfer energy the row bits they read and write (2 x words x width)."""
    cfg = load_config(CONFIG_DIR / "sys_t2k2.yaml")
    net = load_network(DIGITS / "network.yaml")
    q = quantize(net, load_plan(DIGITS / "int4.yaml", net))
    rep = predict_network(q, 1, cfg, resident=True)
    ev = evaluate(rep, cfg, POINT, 1, network=net.name, plan="int4")
    copied = [layer for layer in rep.layers if layer.copy_words]
    assert copied and all(layer.copy_bits == 2 * 4 * layer.copy_words for layer in copied)
    for layer, row in zip(rep.layers, ev.layers, strict=True):
        a = layer.activity
        assert row["latency_cycles"] == layer.busiest_tile + layer.host_words + \
            layer.copy_cycles
        assert row["energy_transfers_j"] == pytest.approx(
            a["col_cells"] * 1e-12 + (a["row_bits"] + layer.copy_bits) * 1e-11, rel=1e-12)
        assert (row["copy_words"], row["acts"]) == (layer.copy_words, layer.residency)


def test_slow_writes_stall():
    """A technology whose write takes 3 cycles: each tile's cycles grow by 2 per WR
    micro-op, the layer waits for its slowest tile, the controller pays those cycles."""
    cfg, net, q = _digits()
    rep = predict_network(q, 1, cfg)
    slow = SimpleNamespace(**{**vars(POINT), "write_cycles": 3})
    fast_ev, slow_ev = (evaluate(rep, cfg, p, 1) for p in (POINT, slow))
    for layer, a, b in zip(rep.layers, fast_ev.layers, slow_ev.layers, strict=True):
        if not layer.passes:
            continue
        assert sum(layer.tile_wr_ops) == layer.activity["wr_ops"] > 0
        assert b["latency_cycles"] == layer.host_words + max(
            c + 2 * w for c, w in zip(layer.tile_cycles, layer.tile_wr_ops, strict=True))
        assert a["latency_cycles"] == layer.host_words + layer.busiest_tile
        assert b["energy_controller_j"] == pytest.approx(
            (layer.activity["cycles"] + 2 * layer.activity["wr_ops"]) * 1e-10)


def test_tagged_share_scales_writes_only():
    cfg, net, q = _digits()
    rep = predict_network(q, 1, cfg)
    full, part = (evaluate(rep, cfg, POINT, 1, tagged_share=s).total for s in (1.0, 0.25))
    assert part["energy_write_j"] == pytest.approx(0.25 * full["energy_write_j"])
    assert all(part[f"energy_{k}_j"] == full[f"energy_{k}_j"] for k in KINDS if k != "write")
    with pytest.raises(ValueError, match="tagged share"):
        evaluate(rep, cfg, POINT, 1, tagged_share=0)


def test_executed_equals_predicted():
    """The evaluation from the golden run (the activity the tiles counted) equals the one
    from the schedule's prediction, number for number."""
    cfg, net, q = _digits("mixed")
    x, _ = net.test_set()
    ran = run_network(q, q.quantize_input(x[:2]), cfg, backend("golden", cfg, fast=True))
    pred = predict_network(q, 2, cfg)
    a = evaluate(ran, cfg, POINT, 2, executed=True)
    b = evaluate(pred, cfg, POINT, 2)
    assert a.source == "executed" and b.source == "predicted"
    assert a.total == b.total and a.layers == b.layers


def test_precision_lowers_energy():
    """Fewer bits, fewer bit-serial passes: int4 costs less energy and time than int8 on
    the same hardware (what bit fluidity is for)."""
    cfg, net, q8 = _digits("int8")
    q4 = _digits("int4")[2]
    e8 = evaluate(predict_network(q8, 1, cfg), cfg, POINT, 1).total
    e4 = evaluate(predict_network(q4, 1, cfg), cfg, POINT, 1).total
    assert e4["energy_j"] < e8["energy_j"] and e4["latency_s"] < e8["latency_s"]
    assert e4["edp_js"] < e8["edp_js"]


def test_cli_evaluate(tmp_path, capsys):
    from bfimna.cli import main
    args = ["evaluate", "--network", str(DIGITS / "network.yaml"), "--plan",
            str(DIGITS / "int8.yaml"), "--config", str(CONFIG_DIR / "default.yaml"),
            "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "TOPS/W" in out and "EDP" in out and "conv1" in out
    files = {p.name for p in (tmp_path / "ev").iterdir()}
    assert files == {"evaluation.json", "layers.csv", "energy_by_layer.png",
                     "latency_by_layer.png", "energy_breakdown.png"}
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    rows = list(csv.DictReader((tmp_path / "ev" / "layers.csv").open()))
    assert [r["name"] for r in rows] == [lay["name"] for lay in ev["layers"]]
    assert ev["total"]["energy_j"] == pytest.approx(
        sum(float(r["energy_j"]) for r in rows), rel=1e-9)
    assert ev["tech_sources"], "every number's source travels with the result"
    # --json: the JSON alone on stdout; the nominal voltage of the first technology
    assert main(args + ["--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["total"] == ev["total"] and js["batch"] == 1
    # the ReRAM table at another of its voltages, by name
    from bfimna.golden.spec.tech import default_tech_paths, load_tech
    paths = default_tech_paths()
    other = load_tech(paths[1])
    vdd = min(other.voltages)
    assert main(args + ["--json", "--tech", paths[1].stem, "--vdd", str(vdd)]) == 0
    js2 = json.loads(capsys.readouterr().out)
    assert js2["tech"] != js["tech"] and js2["vdd"] == vdd


@pytest.mark.parametrize("extra, msg", [
    (["--vdd", "0.123"], "0.123"),
    (["--tech", "no_such_tech"], "no_such_tech"),
    (["--config", "configs/no_such.yaml"], "no_such"),
])
def test_cli_evaluate_bad_input(capsys, extra, msg):
    """A voltage the table does not have, an unknown technology, a missing file: exit 2
    with a one-line message, no traceback."""
    from bfimna.cli import main
    rc = main(["evaluate", "--network", str(DIGITS / "network.yaml"), "--plan",
               str(DIGITS / "int8.yaml"), "--no-progress"] + extra)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert msg in err and "Traceback" not in err


def test_cli_evaluate_bad_batch(capsys):
    from bfimna.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--network", str(DIGITS / "network.yaml"), "--plan",
              str(DIGITS / "int8.yaml"), "--batch", "0"])
    assert exc.value.code == 2 and "positive" in capsys.readouterr().err
