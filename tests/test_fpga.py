"""The FPGA flow (hdl/flow/fpga/): real synthesis of the smallest configuration for the
iCE40 UP5K, which does not fit, and the report says by how much; constraints and the
parsing of nextpnr's utilisation. The full flow (place and route, bitstreams) on every
target is a benchmark (scripts/bench_fpga.py), not a test."""

import json
import time
from pathlib import Path

import pytest

from bfimna.golden.spec.config import config_from_dict, load_config
from bfimna.hdl.flow.emit import board_verilog
from bfimna.hdl.flow.fpga import flow
from bfimna.hdl.flow.fpga.estimate import REFUSE_FACTOR, cam_bits, estimate
from bfimna.hdl.flow.fpga.flow import run_flow
from bfimna.hdl.flow.fpga.report import pnr_overuse
from bfimna.hdl.flow.fpga.sweep import sweep
from bfimna.hdl.flow.fpga.targets import TARGETS, FpgaError, FpgaUsage, constraints
from bfimna.hdl.gen.board import ecp5_pll

from conftest import CONFIG_DIR

TINY = config_from_dict({"name": "fpga_tiny", "ap": {"rows": 8, "cols": 12, "dims": 2,
                                                     "counter_bits": 16},
                         "ctrl": {"queue_depth": 4},
                         "tile": {"maps": 1, "map_rows": 8, "map_cols": 16}})


def test_synthesis_report_and_a_clear_does_not_fit(tmp_path):
    with pytest.raises(FpgaError, match=r"does not fit the iCE40UP5K-SG48: luts: needs "
                                        r"[\d,]+, the iCE40UP5K-SG48 has 5,280 \([\d,]+ too many"):
        run_flow(TINY, "ice40-up5k", tmp_path)
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["fits"] is False and r["config_sha256"] == TINY.hash
    assert r["synthesis_cells"]["SB_LUT4"] > 5280 and r["synthesis_cells"]["SB_DFFESR"] > 0
    assert r["utilisation"]["luts"]["available"] == 5280
    assert r["wall_s"]["synthesis"] > 0
    assert "Does not fit" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "yosys.log").stat().st_size > 0


def test_constraints_name_every_port():
    lpf = constraints(TARGETS["ecp5-85k"])
    assert 'LOCATE COMP "clk_in" SITE "G2";' in lpf and 'FREQUENCY PORT "clk_in" 25 MHZ;' in lpf
    pcf = constraints(TARGETS["ice40-up5k"])
    assert "set_io uart_rx 6" in pcf and "set_io uart_tx 9" in pcf


def test_pnr_overuse_parsing():
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    7334/   5280   138%\n"
           "Info: \t        ICESTORM_RAM:       0/     30     0%\n")
    assert pnr_overuse(log) == ["ICESTORM_LC: needs 7,334, the part has 5,280 (2,054 too many, "
                                "39% over)"]


def test_the_estimate_refuses_the_default_config_on_the_85k_at_once(tmp_path):
    cfg = load_config(CONFIG_DIR / "default.yaml")
    t0 = time.monotonic()
    with pytest.raises(FpgaError, match=r"default does not fit the LFE5U-85F-6BG381C: luts: "
                                        r"needs about [\d,]+ by the estimate, the "
                                        r"LFE5U-85F-6BG381C has 83,640 \(\d+\.\dx\)\. "
                                        r"Synthesis skipped: .* --force runs it anyway"):
        run_flow(cfg, "ecp5-85k", tmp_path)
    assert time.monotonic() - t0 < 10
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["fits"] is False and r["estimated_only"] is True
    assert r["estimate"]["luts"] > REFUSE_FACTOR * 83640 and r["cam_bits"] == 32768
    assert not (tmp_path / "yosys.log").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "Not synthesised" in summary and "| resource | estimated |" in summary


def test_the_estimate_fits_its_calibration_and_grows_with_the_arrays():
    small, big = estimate(TINY), estimate(load_config(CONFIG_DIR / "default.yaml"))
    assert small["calibration_points"] >= 10 and small["max_error_pct"] < 15
    assert 0 < small["luts"] < big["luts"] and 0 < small["ffs"] < big["ffs"]
    assert big["ffs"] > big["cam_bits"]          # one flip-flop per CAM bit, plus control


def test_the_port_register_has_its_own_fit(tmp_path, monkeypatch):
    """A design with the tile's port register is estimated from the calibration points
    measured with it (more flip-flops: the register and the cores' decode), one without
    from the others; a calibration without points of a kind fails naming the file."""
    from bfimna.hdl.flow.fpga import estimate as est_mod
    d = load_config(CONFIG_DIR / "ap2d_37x16.yaml").as_dict()
    assert d["tile"]["port_register"] is True
    with_reg = config_from_dict(d)
    d["tile"]["port_register"] = False
    without = config_from_dict(d)
    pts = {flag: est_mod.calibration_points(flag) for flag in (False, True)}
    assert len(pts[False]) >= 10 and len(pts[True]) >= 10
    a, b = estimate(with_reg), estimate(without)
    assert (a["calibration_points"], b["calibration_points"]) == (len(pts[True]),
                                                                  len(pts[False]))
    assert a["max_error_pct"] < 15 and a["ffs"] > b["ffs"]
    only = tmp_path / "calibration.csv"
    text = est_mod.CALIBRATION_FILE.read_text().splitlines()
    only.write_text("\n".join(ln for ln in text if not ln.split(",")[5:6] == ["True"]) + "\n")
    monkeypatch.setattr(est_mod, "CALIBRATION_FILE", only)
    monkeypatch.setattr(est_mod, "_MODELS", {})
    with pytest.raises(ValueError, match=r"calibration.csv: 0 rows with port_register True"):
        estimate(with_reg)


def test_sweep_tables_and_plots_every_point(tmp_path, monkeypatch):
    """The sweep's bookkeeping with the tools replaced (the real sweep is a benchmark)."""
    calls = []

    def fake_synthesis(cfg, target, out):
        calls.append((cfg.ap.rows, cfg.ap.cols, cfg.tile.map_rows, cfg.system.tiles))
        bits = cam_bits(cfg)
        return {"used": {"luts": 6000 + 8 * bits, "ffs": 1300 + bits, "bram": 0, "dsp": 1},
                "fits": True, "wall_s": 1.0, "cam_bits": bits}

    monkeypatch.setattr(flow, "synthesis_only", fake_synthesis)
    rows = sweep(TINY, "ecp5-25k", [8, 16], [12], [1, 2], tmp_path, progress=lambda s: None)
    assert calls == [(8, 12, 8, 1), (16, 12, 16, 1), (8, 12, 8, 2), (16, 12, 16, 2)]
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert lines[0].split(",")[:7] == ["rows", "cols", "tiles", "maps", "counter_bits",
                                       "port_register", "cam_bits"]
    assert all(ln.split(",")[5] == "False" for ln in lines[1:])   # TINY has no register
    assert len(lines) == 5 and rows[3]["cam_bits"] == 2 * (16 * 12 + 16 * 12)
    assert all(r["est_luts"] > 0 for r in rows)
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_with_place_and_route_records_fmax_and_misfits(tmp_path, monkeypatch):
    def fake_flow(cfg, target, out, force=False):
        assert force                      # the sweep measures, it never refuses early
        Path(out).mkdir(parents=True, exist_ok=True)
        fits = cfg.ap.rows < 16
        rep = {"fits": fits, "synthesis_cells": {"LUT4": 1000 * cfg.ap.rows, "TRELLIS_FF": 99},
               "wall_s": {"synthesis": 2.0, **({"place_and_route": 5.0} if fits else {})},
               "utilisation": {"luts": {"used": 1100 * cfg.ap.rows, "available": 24288}}}
        if fits:
            rep["fmax_mhz"] = {"clk": {"achieved": 31.5, "constraint": 25.0}}
        (Path(out) / "report.json").write_text(json.dumps(rep))
        if not fits:
            raise FpgaError(f"{cfg.name} does not fit")
        return rep

    monkeypatch.setattr(flow, "run_flow", fake_flow)
    msgs = []
    rows = sweep(TINY, "ecp5-25k", [8, 16], [12], [1], tmp_path, pnr=True, progress=msgs.append)
    assert [r["fmax_mhz"] for r in rows] == [31.5, ""] and rows[1]["fits"] is False
    assert rows[0]["pnr_luts"] == 8800 and rows[0]["luts"] == 8000
    assert any("does not fit" in m for m in msgs)
    assert "fmax_mhz" in (tmp_path / "sweep.csv").read_text().splitlines()[0]


def test_ecp5_pll_dividers():
    p = ecp5_pll(25, 20)
    assert p["fout_mhz"] == 20 and 400 <= p["vco_mhz"] <= 800
    assert 25 * p["CLKFB_DIV"] / p["CLKI_DIV"] == 20 and 25 / p["CLKI_DIV"] >= 3.125
    assert p["vco_mhz"] == p["fout_mhz"] * p["CLKOP_DIV"]
    near = ecp5_pll(25, 16)               # 16 would need a 1 MHz phase detector
    assert abs(near["fout_mhz"] - 16) < 0.5 and 25 / near["CLKI_DIV"] >= 3.125
    v = board_verilog(TINY, 174, False, p, 25.0)
    assert "EHXPLLL" in v and ".CLKI_DIV(32'd5)" in v and '(* FREQUENCY_PIN_CLKOP = "20" *)' in v
    assert "EHXPLLL" not in board_verilog(TINY, 217)


def test_a_pll_clock_on_ice40_is_refused(tmp_path):
    with pytest.raises(FpgaError, match="needs a PLL, which the flow supports on ECP5 only"):
        run_flow(TINY, "ice40-up5k", tmp_path, clock_mhz=10)


def test_abc9_delay_target_reaches_yosys_and_the_report(tmp_path, monkeypatch, capsys):
    """--abc9-delay-ns sets ABC9's `abc9.D` (ps) before synth_ecp5 and is recorded in
    report.json and summary.md; without it the script sets nothing; on iCE40 (no ABC9 in
    synth_ice40) and for a non-positive value the command refuses before any tool runs."""
    from bfimna.cli import main
    from bfimna.hdl.flow.fpga.flow import synthesis_script
    assert synthesis_script("top", "ecp5", True, 10).startswith(
        "scratchpad -set abc9.D 10000; read_verilog top.v; synth_ecp5 -top top -json top.json")
    assert "scratchpad" not in synthesis_script("top", "ecp5", True)
    seen = []

    def stop(cmd, log, what, timeout=None):      # the first tool call: yosys
        seen.append(cmd)
        raise FpgaError("stopped by the test")

    monkeypatch.setattr(flow, "_run", stop)
    with pytest.raises(FpgaError, match="stopped by the test"):
        run_flow(TINY, "ecp5-25k", tmp_path / "a", abc9_delay_ns=12.5)
    assert seen[0][seen[0].index("-p") + 1].startswith("scratchpad -set abc9.D 12500; ")
    from bfimna.hdl.flow.fpga.report import write_report
    write_report(tmp_path, {"config": "t", "part": "p", "board": "b", "target": "ecp5-25k",
                            "abc9_delay_ns": 12.5, "wall_s": {}})
    assert "ABC9's delay target 12.5 ns" in (tmp_path / "summary.md").read_text()
    with pytest.raises(FpgaUsage, match="synth_ice40, which does not use ABC9"):
        run_flow(TINY, "ice40-up5k", tmp_path / "b", abc9_delay_ns=10)
    assert len(seen) == 1
    for bad in ("0", "-3", "x"):
        with pytest.raises(SystemExit):
            main(["fpga", "--config", str(CONFIG_DIR / "ap2d_37x16.yaml"), "--out",
                  str(tmp_path / "c"), "--abc9-delay-ns", bad])
        assert "a positive delay in ns" in capsys.readouterr().err
    assert len(seen) == 1


def test_timing_verdict_on_empty_and_partial_fmax():
    """An empty Fmax section (place and route failed or cut short) is not timing met;
    `all([])` used to make it so."""
    from bfimna.hdl.flow.fpga.report import pnr_fmax, timing_verdict
    assert timing_verdict({}) == (False, ["the place-and-route report has no Fmax for any "
                                          "clock"])
    assert timing_verdict(pnr_fmax({}))[0] is False
    assert timing_verdict(pnr_fmax({"fmax": {"clk": {"achieved": 31.5, "constraint": 25}}})) \
        == (True, [])
    met, why = timing_verdict(pnr_fmax({"fmax": {"clk": {"achieved": 22.7,
                                                         "constraint": 25}}}))
    assert not met and why == ["clk: 22.7 MHz, constraint 25 MHz"]
    met, why = timing_verdict(pnr_fmax({"fmax": {"clk": {"constraint": 25}}}))  # no achieved
    assert not met and "no achieved frequency" in why[0]


def test_failed_stalled_and_truncated_tool_output(tmp_path):
    """A tool that fails, one that stalls, and a report cut short all raise FpgaError
    naming the log (with its last lines), never a half-read report."""
    import sys

    from bfimna.hdl.flow.fpga.report import read_pnr_report
    log = tmp_path / "nextpnr.log"
    with pytest.raises(FpgaError, match=r"(?s)place and route failed .*nextpnr.log.*"
                       r"ERROR: Max frequency"):
        flow._run([sys.executable, "-c", "print('Info: routing'); print('ERROR: Max "
                   "frequency for clock'); raise SystemExit(1)"], log, "place and route")
    t0 = time.perf_counter()
    with pytest.raises(FpgaError, match=r"(?s)place and route stalled: no result after "
                       r"0.5 s.*Info: still placing"):
        flow._run([sys.executable, "-u", "-c", "print('Info: still placing'); "
                   "import time; time.sleep(30)"], log, "place and route", timeout=0.5)
    assert time.perf_counter() - t0 < 10                     # stopped, not waited for
    with pytest.raises(FpgaError, match="without writing nextpnr_report.json"):
        read_pnr_report(tmp_path / "nextpnr_report.json")
    (tmp_path / "nextpnr_report.json").write_text('{"utilization": {"TRELLIS_COMB": ')
    with pytest.raises(FpgaError, match="not a complete JSON report"):
        read_pnr_report(tmp_path / "nextpnr_report.json")


def test_a_report_without_fmax_is_not_timing_met(tmp_path, monkeypatch):
    """The whole flow with fake tools: nextpnr 'succeeds' but its report has no Fmax."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")

    def fake_run(cmd, log, what, timeout=None):
        log.write_text(f"{what}: ok\n")
        if what == "synthesis":
            (log.parent / "stat.json").write_text(json.dumps(
                {"design": {"num_cells_by_type": {"LUT4": 100, "TRELLIS_FF": 50}}}))
        elif what.startswith("place and route"):
            (log.parent / "nextpnr_report.json").write_text(json.dumps(
                {"utilization": {"TRELLIS_COMB": {"used": 100, "available": 24288}},
                 "fmax": {}}))
        return 0.1

    monkeypatch.setattr(flow, "_run", fake_run)
    monkeypatch.setattr(flow, "_run_watched", fake_run)
    monkeypatch.setattr(flow, "tool", lambda name: name)
    rep = flow.run_flow(cfg, "ecp5-25k", tmp_path)
    assert rep["fits"] and rep["timing_met"] is False and rep["timing_problems"]
    assert json.loads((tmp_path / "report.json").read_text())["timing_met"] is False
    assert "none reported (timing NOT met)" in (tmp_path / "summary.md").read_text()


def _router2_log(overused):
    """nextpnr's log as router2 writes it, one line per iteration (iterations 1, 2, ...)."""
    return "".join(f"Info:     iter={i} wires={300000 + 10 * i} overused={o} overuse={o} "
                   f"archfail=NA\n" for i, o in enumerate(overused, 1))


def test_router2_divergence_from_its_log():
    """Converging runs, long tails near zero and bumps under 2.5x included, are never
    taken for divergence; a count back at 2.5x its best, 10 iterations after it, is."""
    from bfimna.hdl.flow.fpga.report import router2_divergence
    falling = [15000, 9000, 4000, 1500, 600, 300, 150, 90, 60, 40, 30]
    assert router2_divergence("Info: placing\n") is None
    assert router2_divergence(_router2_log(falling + [2, 1] * 30 + [4, 0])) is None
    assert router2_divergence(_router2_log(falling + [45] * 12 + [74] * 10 + [3, 0])) is None
    over = falling + [25] + [40, 50, 61, 62]
    assert router2_divergence(_router2_log(over)) is None        # 2.48x: not yet
    # best 25 at iteration 12; 10 iterations later, 2.5x of it: diverging
    why = router2_divergence(_router2_log(falling + [25] + [30] * 9 + [63]))
    assert why == ("router2 is not converging: 63 overused wires at iteration 22, 2.5x its "
                   "best (25, iteration 12)")
    # the same rise before the best is 10 iterations old, or from a best under 20: not yet
    assert router2_divergence(_router2_log(falling + [25] + [30] * 5 + [63])) is None
    assert router2_divergence(_router2_log(falling + [19] + [30] * 9 + [60])) is None


def test_router2_stall_from_its_log():
    """A run whose overused count at iteration 10 is still 60% or more of its count at
    iteration 5 (and at least 1,000 wires) is taken as stalled; the measured converging
    starts are not. The sequences are router2's of 2026-11-27 (docs/fpga.md)."""
    from bfimna.hdl.flow.fpga.report import router2_divergence
    stalled = [25779, 18114, 12640, 9357, 7421, 6887, 6432, 6433, 6555, 6736, 7278]
    assert router2_divergence(_router2_log(stalled[:9])) is None       # not at 10 yet
    assert router2_divergence(_router2_log(stalled)) == (
        "router2 is not converging: 6,736 overused wires at iteration 10, still 91% of "
        "its 7,421 at iteration 5")
    heap_seed2 = [24191, 16331, 10762, 7288, 5235, 3782, 2832, 2303, 1773, 1400, 1380, 1287]
    tmg_ripup = [21079, 15251, 10642, 7860, 6142, 5046, 4032, 3746, 3124, 2709, 2520, 2334]
    for converging in (heap_seed2, tmg_ripup):                          # 27%, 44%
        assert router2_divergence(_router2_log(converging)) is None
    start = [20000, 12000, 8000, 6000, 5000, 4000, 3500, 3200, 3100]
    assert router2_divergence(_router2_log(start + [3000])) is not None  # 60%: stalled
    assert router2_divergence(_router2_log(start + [2999])) is None      # under 60%
    small = [2000, 1500, 1200, 1000, 900, 800, 700, 650, 600, 999]      # 111%, < 1,000
    assert router2_divergence(_router2_log(small)) is None


def test_place_and_route_stopped_when_router2_diverges(tmp_path):
    """_run_watched stops a nextpnr whose log says router2 diverges, without waiting for
    it to end, and raises Diverged; a tool that ends well is waited for."""
    import sys
    log = tmp_path / "nextpnr.log"
    text = _router2_log([15000, 900, 100] + [120] * 9 + [300])
    script = (f"import sys, time; sys.stdout.write({text!r}); sys.stdout.flush(); "
              f"time.sleep(60)")
    t0 = time.perf_counter()
    with pytest.raises(flow.Diverged, match=r"route \(seed 4\): router2 is not converging: "
                       r"300 overused wires at iteration 13, 3.0x its best \(100, "
                       r"iteration 3\); stopped"):
        flow._run_watched([sys.executable, "-c", script], log, "route (seed 4)", poll_s=0.2)
    assert time.perf_counter() - t0 < 20                     # stopped, not waited for
    ok = _router2_log([900, 100, 0])
    flow._run_watched([sys.executable, "-c", f"print({ok!r})"], log, "route", poll_s=0.2)
    assert log.read_text().startswith(ok)


def _fake_tools(monkeypatch, diverging_seeds, seen):
    """The flow's tools faked: synthesis writes a small design's statistics; place and
    route on a seed of `diverging_seeds` diverges, on any other writes a report."""
    def fake_run(cmd, log, what, timeout=None):
        log.write_text(f"{what}: ok\n")
        (log.parent / "stat.json").write_text(json.dumps(
            {"design": {"num_cells_by_type": {"LUT4": 100, "TRELLIS_FF": 50}}}))
        return 0.1

    def fake_pnr(cmd, log, what, timeout=None):
        s = int(cmd[cmd.index("--seed") + 1])
        seen.append(s)
        log.write_text(f"seed {s}\n")
        if s in diverging_seeds:
            raise flow.Diverged(f"{what}: router2 is not converging (fake); stopped")
        (log.parent / "nextpnr_report.json").write_text(json.dumps(
            {"utilization": {"TRELLIS_COMB": {"used": 100, "available": 24288}},
             "fmax": {"clk": {"achieved": 40.0, "constraint": 25}}}))
        return 0.1

    monkeypatch.setattr(flow, "_run", fake_run)
    monkeypatch.setattr(flow, "_run_watched", fake_pnr)
    monkeypatch.setattr(flow, "tool", lambda name: name)


def test_a_diverging_seed_gives_way_to_the_next(tmp_path, monkeypatch):
    """With seed_tries, a seed on which router2 diverges is given up (its log kept, the
    report says so) and the next is placed and routed; when every seed diverges, the
    flow fails saying which, and writes a report that says it did not route."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    seen, said = [], []
    _fake_tools(monkeypatch, {3, 4}, seen)
    rep = flow.run_flow(cfg, "ecp5-25k", tmp_path / "a", seed=3, seed_tries=3,
                        progress=said.append)
    assert seen == [3, 4, 5] and rep["seed"] == 5 and rep["timing_met"]
    assert [d["seed"] for d in rep["seeds_tried"]] == [3, 4] and len(said) == 2
    assert said[0] == ("place and route (seed 3): router2 is not converging (fake); stopped "
                       "(its log: nextpnr-seed3.log)")
    assert (tmp_path / "a" / "nextpnr-seed3.log").read_text() == "seed 3\n"
    assert (tmp_path / "a" / "nextpnr.log").read_text() == "seed 5\n"
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert "Place and route, seed 4: place and route (seed 4): router2 is not converging" \
        in summary and "routed with seed 5 (stopped before it: 3, 4)" in summary

    seen.clear()
    with pytest.raises(FpgaError, match=r"did not converge on seeds 3 to 4 .*--seed-tries"):
        flow.run_flow(cfg, "ecp5-25k", tmp_path / "b", seed=3, seed_tries=2)
    assert seen == [3, 4]
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["routed"] is False and "seed" not in rep and len(rep["seeds_tried"]) == 2

    seen.clear()       # the default: one seed, as before
    with pytest.raises(FpgaError, match="did not converge on seeds 3 to 3"):
        flow.run_flow(cfg, "ecp5-25k", tmp_path / "c", seed=3)
    assert seen == [3]


def test_the_placer_reaches_nextpnr_the_report_and_the_summary(tmp_path, monkeypatch):
    """--placer picks nextpnr's placer (static by default), recorded in report.json and
    summary.md; an unknown one is refused before any tool runs."""
    cfg = load_config(CONFIG_DIR / "ap2d_37x16.yaml")
    cmds = []
    _fake_tools(monkeypatch, set(), [])
    watched = flow._run_watched

    def recorded(cmd, *args, **kwargs):
        cmds.append(cmd)
        return watched(cmd, *args, **kwargs)

    monkeypatch.setattr(flow, "_run_watched", recorded)
    for placer in ("static", "heap"):
        kw = {} if placer == "static" else {"placer": "heap"}
        rep = flow.run_flow(cfg, "ecp5-25k", tmp_path / placer, **kw)
        assert cmds[-1][cmds[-1].index("--placer") + 1] == placer == rep["placer"]
        assert f"nextpnr's {placer} placer" in (tmp_path / placer / "summary.md").read_text()
    with pytest.raises(FpgaUsage, match="unknown placer 'sa': choose one of static, heap"):
        flow.run_flow(cfg, "ecp5-25k", tmp_path / "sa", placer="sa")
    assert len(cmds) == 2


def _seg(kind, frm, to, delay, net=None, sources=None):
    seg = {"type": kind, "delay": delay, "from": {"cell": frm, "port": "Q", "loc": [1, 2]},
           "to": {"cell": to, "port": "D", "loc": [3, 4]}}
    if net is not None:
        seg.update(net=net, sources=sources or [])
    return seg


def test_critical_paths_from_a_nextpnr_report(tmp_path):
    """pnr_critical_paths on a hand-made report shaped like nextpnr's --report JSON: the
    worst path first, levels, logic vs routing, net names shortened, Verilog identifiers
    for the placer's nets from their source location; malformed parts are no path."""
    from bfimna.hdl.flow.fpga.report import critical_path_table, pnr_critical_paths, write_report
    ff, lut = "sys.tile0.iw_TRELLIS_FF_Q_7", "sys.tile0.phase_end_LUT4_Z_D_LUT4_Z"
    carry, row = "sys.tile0.dsign_CCU2C_COUT$CCU2_COMB0", "sys.tile0.core.row14_TRELLIS_FF_Q_1"
    clk = "posedge $glbnet$clk_in$TRELLIS_IO_IN"
    long_path = [
        _seg("clk-to-q", ff, ff, 0.5),
        _seg("routing", ff, carry, 2.0, "sys.tile0.dsign_LUT4_D_Z_CCU2C_COUT[0]"),
        _seg("logic", carry, carry, 0.25),
        _seg("routing", carry, carry, 0.0, "$nextpnr_CCU2C_3$CIN"),
        _seg("logic", carry, carry, 0.0),                  # inside the carry chain: no level
        _seg("routing", carry, lut, 1.5, "$abc$123$auto", ["top.v:3.8-3.13"]),
        _seg("logic", lut, lut, 0.25),
        _seg("routing", lut, row, 1.0, "sys.tile0.core.row14_TRELLIS_FF_Q_1_DI[2]"),
        _seg("setup", row, row, 0.125)]
    rep = {"critical_paths": [
        {"from": "<async>", "to": clk, "path": [
            _seg("source", "uart_rx$tr_io", "uart_rx$tr_io", 0),
            _seg("routing", "uart_rx$tr_io", "rx.sync_TRELLIS_FF_Q", 0.9,
                 "uart_rx$TRELLIS_IO_IN")]},
        {"from": clk, "to": clk, "path": long_path},
        {"from": clk, "to": clk},                          # no path: skipped
        {"from": clk, "to": clk, "path": []},              # empty: skipped
        "not a path"]}
    verilog = ["module top;", "  wire x;", "  wire u_key;", "endmodule"]
    paths = pnr_critical_paths(rep, verilog)
    assert len(paths) == 2
    worst = paths[0]
    assert worst["from_clock"] == worst["to_clock"] == clk
    assert worst["start"] == ff and worst["end"] == row
    assert worst["start_signal"] == "sys.tile0.iw" and worst["end_signal"] == "sys.tile0.core.row14"
    assert worst["logic_levels"] == 2
    assert worst["delay_ns"] == pytest.approx(5.625)
    assert worst["routing_ns"] == pytest.approx(4.5) and worst["logic_ns"] == pytest.approx(1.125)
    assert worst["nets"] == ["sys.tile0.dsign", "u_key", "sys.tile0.core.row14"]
    assert paths[1]["start_signal"] == "uart_rx$tr_io" and paths[1]["logic_levels"] == 0
    assert pnr_critical_paths(rep, None)[0]["nets"][1] == "$abc$123$auto"
    assert pnr_critical_paths(rep, verilog, max_nets=1)[0]["nets"] == ["sys.tile0.dsign",
                                                                      "... 2 more"]
    for bad in ({}, {"critical_paths": None}, {"critical_paths": {"a": 1}}, [],
                {"critical_paths": [{"path": [{"type": "logic", "delay": "x"}]}]}):
        got = pnr_critical_paths(bad)
        assert all(p["delay_ns"] == 0 for p in got)
    table = critical_path_table(paths)
    assert "| `sys.tile0.iw` | `sys.tile0.core.row14` | 2 | 5.62 |" in table[5]
    assert critical_path_table([]) == []
    report = {"config": "c", "part": "p", "board": "b", "wall_s": {}, "critical_paths": paths,
              "fmax_mhz": {clk: {"achieved": 177.8, "constraint": 25.0}}}
    write_report(tmp_path, report)
    assert "Critical paths" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["critical_paths"][0] == worst


def test_uart_divisor_within_the_links_tolerance():
    from bfimna.golden.spec.link import uart_divisor
    assert uart_divisor(25e6, 115200)[0] == 217            # 115,207 baud, +0.006%
    assert uart_divisor(12e6, 3_000_000) == (4, 0.0)       # the FT231X's top rate, exact
    assert uart_divisor(24e6, 3_000_000) == (8, 0.0)
    with pytest.raises(ValueError, match=r"25 MHz / 8 = 3,125,000 baud is \+4.2% off "
                                         r"3,000,000 \(at most 2.0% at 8 cycles a bit\); a "
                                         r"clock of 12, 24, 48 MHz"):
        uart_divisor(25e6, 3_000_000)
    with pytest.raises(ValueError, match=r"1.5% off .* \(at most 1.3% at 4 cycles a bit\)"):
        uart_divisor(12e6 * 1.015, 3_000_000)    # within 2%, not within 4 cycles' bound
    assert uart_divisor(12e6 * 1.01, 3_000_000)[0] == 4
    with pytest.raises(ValueError, match=r"8 MHz gives 2.67 cycles a bit, below 4"):
        uart_divisor(8e6, 3_000_000)


def test_cli_refuses_a_baud_the_clock_cannot_make_before_any_tool_runs(tmp_path, capsys):
    from bfimna.cli import main
    out = tmp_path / "f"
    code = main(["fpga", "--config", str(CONFIG_DIR / "ap2d_37x16.yaml"), "--target",
                 "ecp5-85k", "--baud", "3000000", "--out", str(out)])
    assert code == 2
    assert "--baud 3,000,000: 25 MHz / 8 = 3,125,000 baud is +4.2% off" in capsys.readouterr().err
    assert not (out / "yosys.log").exists()
