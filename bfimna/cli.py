"""The `bfimna` command: thin entry points over golden/, hdl/ and cosim/.

    bfimna verilog --config FILE --out DIR [--lint]
    bfimna cosim --sim {verilator,icarus} --config FILE [--seed N] [--ops N]
    bfimna cosim --unit system --sim {verilator,icarus} --config FILE [--packets N]
    bfimna cosim --unit board --sim {verilator,icarus} --config FILE [--divisor N]
    bfimna run --network NET.yaml --plan PLAN.yaml --backend {golden,verilator,icarus,board}
    (RTL runs: [--path {replay,cocotb}] [--waves-from A --waves-to B])
    bfimna fpga --config FILE --target {ecp5-25k,ecp5-85k,ice40-up5k} --out DIR [--bitstream]
                [--clock-mhz F] [--abc9-delay-ns D] [--force]
    bfimna fpga-sweep --target T --rows R.. --cols C.. --tiles T.. --out DIR [--pnr]
    bfimna board --config FILE (--port DEV | --emulate) [--runs N]
    bfimna isa / exec   (the instruction set's costs; run one program on a controller)
    bfimna evaluate --network NET.yaml --plan PLAN.yaml [--config C] [--tech T] [--vdd V]
                [--batch B] [--json] [--out DIR] [--execute]   (energy, latency, EDP)
    bfimna plan --network NET.yaml --budget {latency,energy,edp}=X --out PLAN.yaml   (bits)
    bfimna sweep GRID.yaml --out DIR [--scheduler ADDRESS] [--workers N]   (Dask grid)
    bfimna dynamic --network NET.yaml --plans A.yaml,B.yaml (--budget-cycles C|--plan-per-image L)
                [--backend B] [--batch B] [--out DIR]   (a plan per image at run time)

Every subcommand prints what it did; errors (bad config, missing tool, a failed check)
end with a one-line message and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bfimna.golden.spec.config import ConfigError, default_config_path, load_config
from bfimna.golden.spec.link import BAUD
from bfimna.hdl.flow.fpga.targets import PLACERS
from bfimna.hdl.flow.tools import ToolError
from bfimna.hdl.gen.ap import FAULTS


class UsageError(ValueError):
    """Options that parse one by one but not together (exit 2, like argparse's errors)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): `bfimna run: error: ...`, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, lo=None, hi=None, lo_open=False, hi_open=False, what="a number"):
    """An argparse type: `kind` (int or float) within [lo, hi] (open ends where asked)."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if v != v or (lo is not None and (v <= lo if lo_open else v < lo)) or (
                hi is not None and (v >= hi if hi_open else v > hi)):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return v
    return parse


POSITIVE = _number(int, 1, what="a positive integer")
NON_NEGATIVE = _number(int, 0, what="an integer >= 0")
SEED = _number(int, 0, 2**31 - 1, what="a seed (an integer 0..2^31-1)")
FRACTION = _number(float, 0.0, 0.95, what="a share of cycles in 0..0.95")
SECONDS = _number(float, 0.0, lo_open=True, what="a positive number of seconds")
MHZ = _number(float, 0.0, lo_open=True, what="a positive frequency in MHz")
NS = _number(float, 0.0, lo_open=True, what="a positive delay in ns")
BITS = _number(int, 1, 32, what="a width 1..32")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=default_config_path(),
                   help="hardware configuration YAML (default: configs/default.yaml)")


def _tech_args(p: argparse.ArgumentParser) -> None:
    """The technology point a cost is computed for (golden/spec/tech.py: find_tech)."""
    p.add_argument("--tech", default=None,
                   help="technology: a name in configs/tech/ such as reram_2t2r_cam, or a "
                        "table's path (default: the first, SRAM CAM)")
    p.add_argument("--vdd", type=_number(float, 0.0, lo_open=True, what="a voltage"),
                   default=None, help="supply voltage, one of the table's (default: its "
                                      "nominal)")


def _replay_args(p: argparse.ArgumentParser) -> None:
    """How an RTL backend is driven (cosim/drivers/backends.py: RtlBackend)."""
    p.add_argument("--path", choices=("replay", "cocotb"), default="replay",
                   help="RTL runs: replay (default: an HDL testbench applies the stimulus "
                        "from a file at the simulator's speed, Python checks the responses "
                        "after) or cocotb (Python drives every cycle or bus beat: "
                        "cocotbext-axi's bus models on the system top; always with --waves)")
    p.add_argument("--waves-from", type=NON_NEGATIVE, default=None, metavar="CYCLE",
                   help="replay path: record an FST from this cycle (with --waves-to)")
    p.add_argument("--waves-to", type=NON_NEGATIVE, default=None, metavar="CYCLE",
                   help="replay path: stop recording at this cycle")


def _waves_window(args) -> tuple[int, int] | None:
    """(from, to) of --waves-from/--waves-to, or None; a bad window is a usage error."""
    lo, hi = getattr(args, "waves_from", None), getattr(args, "waves_to", None)
    if lo is None and hi is None:
        return None
    if lo is None or hi is None or hi <= lo:
        raise UsageError("--waves-from and --waves-to go together, with from < to")
    return lo, hi


def cmd_verilog(args) -> int:
    from bfimna.hdl.flow.emit import emit
    from bfimna.hdl.flow.lint import lint

    cfg = load_config(args.config)
    t0 = time.perf_counter()
    manifest = emit(cfg, args.out)
    for mod in manifest["modules"]:
        path = Path(args.out) / mod["file"]
        n_lines = len(path.read_text().splitlines())
        print(f"wrote {path} (module {mod['name']}, {n_lines} lines, "
              f"{len(mod['ports'])} ports)")
    print(f"wrote {Path(args.out) / 'manifest.json'} (config {cfg.name}, "
          f"sha256 {cfg.hash[:16]}...) in {time.perf_counter() - t0:.1f} s")
    if args.lint:
        for mod in manifest["modules"]:
            problems = lint([Path(args.out) / mod["file"]], mod["name"])
            if problems:
                print("\n\n".join(problems), file=sys.stderr)
                return 1
            print(f"lint {mod['name']}: verilator --lint-only -Wall (waivers: hdl/flow/lint.py) "
                  f"and iverilog -g2012 clean")
    return 0


def cmd_cosim_system(args, cfg) -> int:
    from bfimna.cosim.drivers.backends import backend, compare
    from bfimna.golden.host.stimulus import random_host_program

    prog = random_host_program(cfg, args.seed, n_packets=args.packets)
    via = ("the replay harness" if args.path == "replay" and not args.waves else
           "cocotbext-axi")
    board = args.unit == "board"      # the board top: the system behind its UART link
    if board and args.divisor < 4:
        raise UsageError(f"--divisor {args.divisor}: the UART needs at least 4 clock cycles "
                         f"per bit")
    top, link = "system top", "AXI"
    if board:
        via = "the replay harness" if via == "the replay harness" else "cocotb"
        top, link = "board top", f"its UART, {args.divisor} cycles per bit"
    print(f"cosim: {top} of {cfg.name} ({cfg.system.tiles} tile(s), each a "
          f"{cfg.ap.dims}D {cfg.ap.rows}x{cfg.ap.cols} CAP + {cfg.tile.maps} MAP(s) "
          f"{cfg.tile.map_rows}x{cfg.tile.map_cols}) on {args.sim} through {link} "
          f"({via}), seed {args.seed}: {len(prog.frames)} packets, "
          f"{prog.n_words} words, " + ("each beat waiting for its 'K'" if board else
                                       f"idle {args.idle:.0%}, back-pressure "
                                       f"{args.backpressure:.0%}"),
          flush=True)
    want = backend("golden", cfg).run(prog)
    t0 = time.perf_counter()
    rtl = backend(args.sim, cfg, build_root=args.build_dir, seed=args.seed, idle=args.idle,
                  backpressure=args.backpressure, waves=args.waves, path=args.path,
                  link="uart" if board else "axi", divisor=args.divisor,
                  waves_window=_waves_window(args))
    got = rtl.run(prog)
    wall = time.perf_counter() - t0
    diffs = compare(want, got, prog)
    if diffs:
        print("\n".join(diffs[:20]), file=sys.stderr)
        if rtl.command:
            print(f"rerun the simulation alone: {rtl.command}", file=sys.stderr)
        print(f"FAILED: the {top} differs from the golden system (log: {got.log}); "
              f"reproduce with `bfimna cosim --unit {args.unit} --sim {args.sim} --config "
              f"{args.config} --seed {args.seed} --packets {args.packets} --idle {args.idle} "
              f"--backpressure {args.backpressure} --path {args.path}"
              + (f" --divisor {args.divisor}" if board else "") + "` (add --waves-from A "
              "--waves-to B around the cycle above for an FST)", file=sys.stderr)
        return 1
    g = got.global_counters
    print(f"PASSED: {len(got.responses)} responses ({g['words_out']} words) equal the golden "
          f"system's; status and every counter equal")
    print("  packets: " + ", ".join(f"{k} {g[k]}" for k in
                                    ("packets", "bad_packets", "dropped_words", "instr_words",
                                     "host_writes", "host_reads", "copy_words", "copy_cols")))
    for t, c in enumerate(got.tile_counters):
        print(f"  tile {t}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(f"  speed: {got.sim_cycles} cycles, {got.cycles_per_s:.0f} simulated cycles/s "
          f"({args.sim}); wall {wall:.1f} s including build")
    return 0


def cmd_cosim(args) -> int:
    from bfimna.cosim.drivers.runner import ap_cosim_path, failure_excerpt, run_ap_cosim

    cfg = load_config(args.config)
    if args.unit in ("system", "board"):
        return cmd_cosim_system(args, cfg)
    path = ap_cosim_path(args.path, args.waves)
    print(f"cosim: AP core of {cfg.name} ({cfg.ap.dims}D, {cfg.ap.rows} rows x "
          f"{cfg.ap.cols} cols) on {args.sim}, seed {args.seed}, {args.ops} random micro-ops",
          flush=True)
    how = ("replay: the stream from a file, checked against golden afterwards" if
           path == "replay" else "cocotb: Python drives and checks every cycle")
    if path != args.path:
        how += " (--waves needs cocotb)"
    print(f"  path: {how}", flush=True)
    print(f"  building the {args.sim} model (reused when the Verilog is unchanged; log in "
          f"{args.build_dir}/...)", flush=True)
    t0 = time.perf_counter()
    res = run_ap_cosim(cfg, args.sim, seed=args.seed, n_ops=args.ops,
                       build_root=args.build_dir, waves=args.waves, fault=args.inject_fault,
                       path=path)
    wall = time.perf_counter() - t0
    if not res.passed:
        print(failure_excerpt(res), file=sys.stderr)
        fault = f" --inject-fault {args.inject_fault}" if args.inject_fault else ""
        fault += " --path cocotb" if path == "cocotb" else ""
        print(f"FAILED: RTL differs from the golden model (log: {res.log}); reproduce with "
              f"`bfimna cosim --sim {args.sim} --config {args.config} --seed {args.seed} "
              f"--ops {args.ops}{fault}`", file=sys.stderr)
        return 1
    s = res.summary
    if args.json:
        print(json.dumps(s, indent=2))
    cnt = s["counters"]
    print(f"PASSED: {s['cycles']} cycles simulated, {s['checks']} output checks against the "
          f"golden model, 0 mismatches")
    print("  micro-ops issued: " + ", ".join(f"{k} {v}" for k, v in cnt.items()
                                             if k not in ("cycles",)))
    print(f"  coverage: {s['coverage']['compares_matching']} compares matched rows, "
          f"{s['coverage']['writes_to_rows']} tag writes hit rows, "
          f"{s['coverage']['illegal']} illegal micro-ops flagged")
    print("  whole array read back and compared at the end; hardware counters equal golden")
    if path == "replay":
        print(f"  speed: {s['cycles_per_s']:.0f} cycles/s end to end ({args.sim}, replay: "
              f"simulation {s['sim_s']:.2f} s = {s['sim_cycles_per_s']:.0f} cycles/s, Python "
              f"stream + golden model {s['gen_s']:.2f} s, check {s['check_s']:.2f} s); wall "
              f"{wall:.1f} s including build")
    else:
        print(f"  speed: {s['cycles_per_s']:.0f} simulated cycles/s ({args.sim}, Python "
              f"driving every cycle); wall {wall:.1f} s including build")
    return 0


def cmd_run(args) -> int:
    from contextlib import ExitStack

    import numpy as np

    from bfimna.cosim.drivers.backends import DriverError, backend
    from bfimna.golden.nn.network import NetworkError, load_network, load_plan, quantize
    from bfimna.sched.run import Mismatch, run_network
    from bfimna.sched.schedule import ScheduleError

    cfg = load_config(args.config)
    try:
        net = load_network(args.network)
        plan = load_plan(args.plan, net)
        qnet = quantize(net, plan)
        if net.dataset is not None:
            x, y = net.test_set()
            inputs = f"{min(len(x), args.images or len(x))} test images"
        else:   # no dataset (an imported or zoo model): seeded synthetic images, labelled so
            n_syn = args.images or 1
            x = np.random.default_rng(args.seed).random((n_syn,) + net.input_shape) \
                * float(net.weights["input.act_max"])
            y = None
            inputs = (f"{n_syn} SYNTHETIC image(s) (no dataset in the network file: seeded "
                      f"uniform [0, input.act_max), seed {args.seed})")
    except NetworkError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    if len(x) == 0:
        print(f"bfimna: {net.dataset}: x: expected at least one image, got 0", file=sys.stderr)
        return 2
    n = len(x) if args.images is None else min(args.images, len(x))
    x = x[:n]
    y = None if y is None else y[:n]
    if args.predict:
        return _predict(args, cfg, net, plan, qnet, n)
    where = args.backend
    with ExitStack() as stack:
        if args.backend == "board":
            from bfimna.cosim.drivers.serial_host import SerialBackend, emulated_board
            if args.emulate:
                port, _model = stack.enter_context(emulated_board(cfg, fast=True))
                where = "the golden board model on a pseudo-terminal"
            elif args.port:
                port = args.port
                where = f"the board on {port}"
            else:
                print("bfimna: --backend board needs --port (or --emulate)", file=sys.stderr)
                return 2
            be = stack.enter_context(SerialBackend(cfg, port, args.baud, args.timeout))
        else:
            be = backend(args.backend, cfg, **({"fast": True} if args.backend == "golden" else
                                               {"build_root": args.build_dir,
                                                "path": args.path,
                                                "waves_window": _waves_window(args)}))
        print(f"run: {net.name} ({len(net.layers)} layers), plan {plan.name}, {inputs}, "
              f"on {where} ({_hardware(cfg)})", flush=True)
        t0 = time.perf_counter()
        try:
            if args.backend == "board":
                print(f"board: {be.identify()}", flush=True)
            rep = run_network(qnet, qnet.quantize_input(x), cfg, be, check=True,
                              dump=args.dump, progress=not args.no_progress,
                              resident=args.on_chip)
        except (ScheduleError, Mismatch, DriverError) as exc:
            print(f"\nbfimna: {exc}", file=sys.stderr)
            return 1
        wall = time.perf_counter() - t0
    _layer_table(qnet, rep)
    total = sum(layer.predicted for layer in rep.layers)
    print(f"total {total:,} tile cycles ({total / n:,.0f} per image), "
          f"{_words(rep, n)}; predicted = counted "
          + ("for every layer" if not rep.segments else
             "for every layer run alone and every on-chip segment")
          + "; every layer bit-exact against the golden CNN reference")
    for k, seg in enumerate(rep.segments):
        span = seg.layers[0] if len(seg.layers) == 1 else \
            f"{seg.layers[0]}..{seg.layers[-1]} ({len(seg.layers)} layers)"
        print(f"on-chip segment {k}: {span}, one program: predicted {seg.predicted:,} = "
              f"counted {sum(seg.counted):,} cycles; {seg.host_words:,} host words, plus "
              f"{seg.check_words:,} READ headers that only check the intermediate layers")
    if y is not None:
        acc = float(np.mean(rep.predictions == y))
        print(f"accuracy {acc:.4f} on {n} images (float model: {net.float_accuracy})")
    else:
        print("accuracy: not measured (synthetic inputs have no labels)")
    sim = [layer.sim_cycles for layer in rep.layers if layer.sim_cycles]
    if sim:
        print(f"simulated {sum(sim):,} clock cycles in {wall:.1f} s wall "
              f"({sum(sim) / wall:,.0f} cycles/s including builds and start-up)")
    else:
        print(f"wall {wall:.1f} s")
    if args.dump:
        print(f"wrote every layer's output to {args.dump}/ (.npy)")
    return 0


def _words(rep, n: int) -> str:
    sent = sum(layer.host_words for layer in rep.layers)
    back = sum(layer.host_out for layer in rep.layers)
    copied = sum(layer.copy_words for layer in rep.layers)
    return (f"{sent:,} host words sent ({sent / n:,.0f} per image) and {back:,} read back "
            f"({back / n:,.0f} per image)"
            + (f"; {copied:,} words copied tile to tile in "
               f"{sum(layer.copy_cycles for layer in rep.layers):,} bus cycles" if copied
               else ""))


def _hardware(cfg) -> str:
    return (f"{cfg.name}: {cfg.system.tiles} tile(s), CAP {cfg.ap.rows}x{cfg.ap.cols}, "
            f"{cfg.tile.maps} MAP(s) {cfg.tile.map_rows}x{cfg.tile.map_cols}")


def _layer_table(qnet, rep) -> None:
    """Per layer: kind, dataflow, bits, passes, cycles (predicted, counted, busiest tile:
    the layer's makespan over the tiles), host words, the share of CAP rows used, the
    makespan over the lane-parallel bound, the bit-exact check, and where the layer's
    inputs come from (acts: host = staged by the host, chip = resident in the MAPs).
    Layers of an on-chip segment have their cycles counted per segment (printed after)."""
    nw = max(7, *(len(layer.name) for layer in rep.layers))
    print(f"{'layer':<{nw}} {'type':<7} {'dataflow':<8} {'bits w/a':>9} {'passes':>6} "
          f"{'predicted':>13} {'counted':>13} {'busiest tile':>13} {'host words':>11} "
          f"{'rows':>5} {'/bound':>6} {'bit-exact':>9} {'acts':>4}")
    for q, layer in zip(qnet.layers, rep.layers, strict=True):
        wb = ",".join(str(b) for b in sorted(set(q.w_bits) | {b for r in q.w_grid
                                                              for b in r})) if q.w_bits else "-"
        ab = str(q.out_bits) if q.out_ch_bits is None else ",".join(   # activation blocks
            str(b) for b in sorted(set(q.out_ch_bits.tolist()), reverse=True))
        counted = "-" if layer.counted is None else f"{layer.counted:,}"
        exact = "-" if layer.bit_exact is None else ("yes" if layer.bit_exact else "NO")
        vs = "-" if layer.vs_bound is None else f"{layer.vs_bound:.2f}"
        rows = f"{layer.rows_used:.0%}" if layer.passes else "-"
        print(f"{layer.name:<{nw}} {q.layer.type:<7} {layer.dataflow:<8} "
              f"{wb + '/' + ab:>9} {layer.passes:>6} "
              f"{layer.predicted:>13,} {counted:>13} {layer.busiest_tile:>13,} "
              f"{layer.host_words:>11,} {rows:>5} {vs:>6} {exact:>9} {layer.residency:>4}")


def _predict(args, cfg, net, plan, qnet, n: int) -> int:
    """bfimna run --predict: the schedule's cycles, passes and host words, no execution."""
    from bfimna.sched.run import predict_network
    from bfimna.sched.schedule import ScheduleError

    print(f"predict: {net.name} ({len(net.layers)} layers), plan {plan.name}, {n} image(s), "
          f"on {_hardware(cfg)}; nothing is executed", flush=True)
    t0 = time.perf_counter()
    try:
        rep = predict_network(qnet, n, cfg, progress=not args.no_progress,
                              resident=args.on_chip)
    except ScheduleError as exc:
        print(f"\nbfimna: {exc}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    _layer_table(qnet, rep)
    total = sum(layer.predicted for layer in rep.layers)
    makespan = sum(layer.busiest_tile for layer in rep.layers)
    bound = sum(layer.bound or 0 for layer in rep.layers)
    macs = sum(layer.macs for layer in rep.layers)
    weighted = sum(layer.busiest_tile for layer in rep.layers if layer.bound)
    print(f"total {total:,} tile cycles ({total / n:,.0f} per image); makespan "
          f"{makespan:,} cycles over {cfg.system.tiles} tile(s) (layers one after another); "
          f"{_words(rep, n)}; {macs:,} MACs"
          + (f"; conv and fc layers at {weighted / bound:.2f}x the lane-parallel bound"
             if bound else ""))
    print(f"predicted in {wall:.1f} s wall")
    return 0


def cmd_evaluate(args) -> int:
    """Energy, latency, power, throughput, TOPS/W, area and EDP of a network under a
    plan, per layer and in total, from the schedule (or a golden run with --execute)."""
    import numpy as np

    from bfimna.cosim.drivers.backends import backend
    from bfimna.golden.nn.network import NetworkError, load_network, load_plan, quantize
    from bfimna.golden.spec.schema import SchemaError
    from bfimna.golden.spec.tech import find_tech
    from bfimna.sched.evaluate import evaluate, table, write_outputs
    from bfimna.sched.run import Mismatch, predict_network, run_network
    from bfimna.sched.schedule import ScheduleError

    cfg = load_config(args.config)
    try:
        point = find_tech(args.tech).point(args.vdd)
        net = load_network(args.network)
        plan = load_plan(args.plan, net)
        qnet = quantize(net, plan)
    except (NetworkError, SchemaError) as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    progress = not args.no_progress and not args.json
    log = sys.stderr if args.json else sys.stdout
    batch = args.batch
    try:
        if args.execute:
            if net.dataset is not None:
                x = net.test_set()[0][:args.batch]
                what = f"{len(x)} test image(s)"
            else:
                x = np.random.default_rng(args.seed).random((args.batch,) + net.input_shape) \
                    * float(net.weights["input.act_max"])
                what = f"{args.batch} SYNTHETIC image(s) (seed {args.seed})"
            batch = len(x)           # a dataset may hold fewer images than --batch
            print(f"evaluate: running {net.name} on the golden backend, {what}", file=log,
                  flush=True)
            rep = run_network(qnet, qnet.quantize_input(x), cfg,
                              backend("golden", cfg, fast=True), progress=progress,
                              resident=args.on_chip)
        else:
            rep = predict_network(qnet, args.batch, cfg, progress=progress,
                                  resident=args.on_chip)
    except (ScheduleError, Mismatch) as exc:
        print(f"\nbfimna: {exc}", file=sys.stderr)
        return 1
    ev = evaluate(rep, cfg, point, batch, network=net.name, plan=plan.name,
                  executed=args.execute, tagged_share=args.tagged_share)
    if args.json:
        print(ev.to_json())
    else:
        print(table(ev))
    if args.out:
        paths = write_outputs(ev, args.out)
        print(f"wrote {', '.join(str(p) for p in paths)}", file=log)
    return 0


def _plan_blocks(text: str) -> tuple[int, int]:
    """argparse type of `plan --blocks RxC` (sched/planner.py parse_blocks)."""
    from bfimna.sched.planner import PlannerError, parse_blocks
    try:
        return parse_blocks(text)
    except PlannerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_plan(args) -> int:
    """Per-layer weight and activation bits that meet a latency, energy or EDP budget
    relative to INT8 with the least quantisation loss, written as a plan (docs/planner.md)."""
    from bfimna.golden.nn.network import NetworkError, load_network, quantize
    from bfimna.golden.spec.tech import TechError, find_tech
    from bfimna.sched import planner as pl

    def fail(code: int, exc: Exception | str) -> int:
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip() not in ("", "^"))
        print(f"bfimna: {text}", file=sys.stderr)
        return code

    try:
        budget = pl.parse_budget(args.budget)
    except pl.PlannerError as exc:
        return fail(2, f"plan: --budget: {exc}")
    cfg = load_config(args.config)
    try:
        point = find_tech(args.tech).point(args.vdd)
        net = load_network(args.network)
        calib = pl.calibration(net, args.calib_images, args.seed)
        test = net.test_set() if net.dataset is not None else None
    except (NetworkError, TechError) as exc:
        return fail(2, exc)
    if len(calib.x) == 0:
        return fail(2, f"{net.dataset}: x: expected at least one image, got 0")
    config = Path(os.path.relpath(args.config)) if Path(args.config).is_absolute() and \
        not os.path.relpath(args.config).startswith("..") else Path(args.config)
    where = (f"{config} ({_hardware(cfg)}), {point.tech} at {point.vdd:g} V "
             f"({point.clock_hz / 1e6:g} MHz), batch 1")
    n_w = sum(lay.type in ("conv", "fc") for lay in net.layers)
    n_add = sum(lay.type == "add" for lay in net.layers)
    wk = (f"w_bits per block of a grid of at most {args.blocks[0]}x{args.blocks[1]}"
          if args.blocks else "w_bits")
    ak = (f"a_bits (per block of at most {args.act_blocks} output-channel blocks where the "
          f"readers allow)" if args.act_blocks else "a_bits")
    print(f"plan: {net.name} ({len(net.layers)} layers; knobs: input_bits, {wk} and {ak} "
          f"of {n_w} conv/fc layer(s)" + (f", a_bits of {n_add} add layer(s)" if n_add else "")
          + f"), budget {budget}, bits {sorted(set(args.bits) | {8})}", flush=True)
    print(f"  cost model: predict_network + evaluate on {where}")
    print(f"  calibration: {calib.what}; seed {args.seed}")
    print(f"  sensitivity ({args.sensitivity}): {pl.SENSITIVITY_TEXT[args.sensitivity]}",
          flush=True)
    if args.scheduler and args.workers:
        raise UsageError("--workers sizes the embedded local cluster; with --scheduler the "
                         "cluster's own workers evaluate the candidates")
    from contextlib import ExitStack

    from bfimna.sched.sweep import SweepError, connect
    try:
        with ExitStack() as stack:
            client = None
            if args.scheduler or (args.workers or 1) > 1:     # sched/sweep.py's cluster
                client, on = stack.enter_context(connect(args.scheduler, args.workers))
                print(f"  candidates of each step evaluated on {on}", flush=True)
            planner = pl.Planner(net, cfg, point, calib.x, args.bits, 1, args.sensitivity,
                                 progress=not args.no_progress, blocks=args.blocks,
                                 client=client, act_blocks=args.act_blocks,
                                 dataflow=args.dataflow)
            i8 = planner.int8.cost
            print(f"  INT8: latency {pl.si(i8.latency_s, 's')}, energy "
                  f"{pl.si(i8.energy_j, 'J')}, EDP {i8.edp_js:.4g} J*s, loss "
                  f"{planner.int8_loss:.4g}", flush=True)
            res = planner.search(budget)
    except (pl.PlannerError, SweepError) as exc:
        return fail(2, exc)
    except pl.BudgetNotMet as exc:
        return fail(1, exc)
    lowered = sum(s.phase == "lower" for s in res.steps)
    raised = sum(s.phase == "raise" for s in res.steps)
    flips = [f"{s.knob[0]} {s.knob[1].split()[-1]}" for s in res.steps
             if s.phase == "flip" and s.knob is not None]
    if args.dataflow != "auto":
        print(f"dataflow {args.dataflow}: " + (
            f"{len(flips)} flip(s)" + (f" ({', '.join(flips)})" if flips else "")
            if args.dataflow == "search" else
            "every conv and fc layer (INT8 too)") + "; the plan fixes "
            + (", ".join(f"{k}: {v}" for k, v in res.chosen.flows.items()) or "none"))
    print(f"search: {lowered} lowering step(s), {raised} raised back, {res.candidates} "
          f"candidate plans ({res.invalid} not quantisable or schedulable), "
          f"{res.layer_schedules} layer schedules predicted, {res.layer_forwards} layer "
          f"forward passes, {res.wall_s:.1f} s")
    print("\n".join(pl.layer_table(res)))
    print(f"predicted: {pl.cost_line(res.chosen.cost, res.int8.cost)}: budget {budget} met")
    print(f"loss ({args.sensitivity} measure on the calibration images): {res.loss:.4g} "
          f"(INT8 {res.int8_loss:.4g})")
    if test is not None:
        x, y = test
        try:
            q4 = quantize(net, pl.plan_of(net, pl.int4_bits(net)))
        except (NetworkError, ValueError):
            q4 = None
        k = calib.n_dataset
        for lo, what in ((0, f"the test split ({len(x)} images)"),
                         (k, f"the {len(x) - k} images not used for calibration")):
            if lo >= len(x):
                continue
            accs = [pl.accuracy(q, x[lo:], y[lo:]) if q is not None else None
                    for q in (res.qnet, res.int8.qnet, q4)]
            print(f"accuracy on {what}, integer reference: plan {accs[0]:.4f}, INT8 "
                  f"{accs[1]:.4f}, INT4 " + (f"{accs[2]:.4f}" if accs[2] is not None else
                                             "(cannot be quantised)")
                  + (" (INT4: 4-bit input, weights and activations, 8-bit logits)"
                     if lo == 0 else ""))
    else:
        print("accuracy: not measured (the network names no dataset)")
    bits_arg = " ".join(str(b) for b in sorted(set(args.bits)))
    command = (f"bfimna plan --network {args.network} --config {config} --tech {point.tech} "
               f"--vdd {point.vdd:g} --budget {budget.arg} --calib-images {len(calib.x)} "
               f"--bits {bits_arg} --seed {args.seed} --sensitivity {args.sensitivity} "
               + (f"--blocks {args.blocks[0]}x{args.blocks[1]} " if args.blocks else "")
               + (f"--act-blocks {args.act_blocks} " if args.act_blocks else "")
               + (f"--dataflow {args.dataflow} " if args.dataflow != "auto" else "")
               + f"--out {args.out}")
    pl.write_plan(args.out, res, pl.header(res, network=str(args.network), where=where,
                                           calib=calib, seed=args.seed,
                                           mode=args.sensitivity, command=command))
    print(f"wrote {args.out}")
    return 0


def cmd_dynamic(args) -> int:
    """Several plans for one network, a plan chosen per image (or per batch) by a cycle
    budget or an explicit list, all run on one backend (docs/dynamic.md)."""
    import numpy as np

    from bfimna.cosim.drivers.backends import DriverError, backend
    from bfimna.golden.nn.network import NetworkError, load_network
    from bfimna.sched import dynamic as dy
    from bfimna.sched.run import Mismatch
    from bfimna.sched.schedule import ScheduleError

    cfg = load_config(args.config)
    try:
        net = load_network(args.network)
        entries = dy.load_plans([Path(p.strip()) for p in args.plans.split(",") if p.strip()],
                                net)
        policy = (dy.BudgetPolicy.parse(args.budget_cycles) if args.budget_cycles is not None
                  else dy.ListPolicy.parse(args.plan_per_image))
        if net.dataset is not None:
            x, y = net.test_set()
            x, y = x[:args.images], y[:args.images]
            inputs = f"{len(x)} test image(s)"
        else:
            x = np.random.default_rng(args.seed).random((args.images or 1,) + net.input_shape) \
                * float(net.weights["input.act_max"])
            y = None
            inputs = (f"{len(x)} SYNTHETIC image(s) (no dataset: seeded uniform "
                      f"[0, input.act_max), seed {args.seed})")
        choices = dy.decide(entries, policy, len(x), args.batch, cfg)
    except (NetworkError, dy.DynamicError) as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    except ScheduleError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 1
    sizes = sorted({len(r) for r, _ in choices})
    print(f"dynamic: {net.name}, {inputs} in {len(choices)} step(s) of {args.batch}, policy "
          f"{policy.kind} ({policy.source}), on {args.backend} ({_hardware(cfg)})", flush=True)
    print("plans (order of preference) and their predicted tile cycles per step of "
          + "/".join(map(str, sizes)) + " image(s):")
    for k, e in enumerate(entries):
        dearer = [f.name for f in entries[:k] if f.cycles(sizes[0]) <= e.cycles(sizes[0])]
        note = (f"  (never chosen by a budget: {', '.join(dearer)} listed before it costs "
                f"no more)" if dearer and policy.kind == "budget" else "")
        print(f"  {e.name:<12} {e.path}: "
              + "/".join(f"{e.cycles(n):,}" for n in sizes) + note)
    over = sum(ch.over_budget for _, ch in choices)
    if over:
        print(f"note: {over} step(s) have a budget no plan fits: they run the cheapest plan "
              f"(marked 'over' below)")
    be = backend(args.backend, cfg, **({"fast": True} if args.backend == "golden" else
                                       {"build_root": args.build_dir, "path": args.path,
                                        "waves_window": _waves_window(args)}))
    try:
        rep = dy.run_dynamic(entries, choices, x, y, cfg, be, network=net.name, policy=policy,
                             progress=not args.no_progress)
    except (ScheduleError, Mismatch, DriverError) as exc:
        print(f"\nbfimna: {exc}", file=sys.stderr)
        return 1
    table = dy.rows(rep)
    widths = {c: max(len(c), *(len(str(r[c])) for r in table)) for c in dy.COLUMNS}
    print("  ".join(f"{c:>{widths[c]}}" for c in dy.COLUMNS))
    for r in table:
        print("  ".join(f"{str(r[c]):>{widths[c]}}" for c in dy.COLUMNS))
    print(dy.summary_text(rep))
    print(f"wall {rep.wall_s:.1f} s")
    if args.out:
        paths = dy.write_outputs(rep, args.out)
        print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def cmd_sweep(args) -> int:
    """Every point of a grid (networks x plans x configurations x technologies x voltages
    x batches) predicted and evaluated on Dask, resumable (docs/sweep.md)."""
    from bfimna.golden.spec.schema import SchemaError
    from bfimna.sched.sweep import sweep

    if args.scheduler and args.workers:
        raise UsageError("--workers sizes the embedded local cluster; with --scheduler the "
                         "cluster's own workers run the sweep")

    def stop(signum, frame):      # SIGTERM like Ctrl-C: the embedded cluster is closed
        raise KeyboardInterrupt

    import signal
    before = signal.signal(signal.SIGTERM, stop)
    try:
        res = sweep(args.grid, args.out, scheduler=args.scheduler, workers=args.workers,
                    progress=not args.no_progress)
    except SchemaError as exc:
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        print(f"bfimna: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nbfimna: sweep interrupted; the points finished so far are in "
              f"{args.out}/points: run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, before)
    ok = len(res.all_records) - len(res.failed)
    print(f"sweep {res.grid.name}: {ok} of {len(res.all_records)} points ok ({res.computed} "
          f"evaluated now in {res.tasks} task(s), {res.predicted} prediction(s) made; "
          f"{res.reused} done before) in {res.wall_s:.1f} s on {res.where}")
    for rec in res.failed:
        print(f"  FAILED {rec['label']}: {rec['error']}")
    print(f"wrote {', '.join(str(p) for p in res.files)} and {len(res.all_records)} point "
          f"file(s) in {Path(args.out) / 'points'}")
    return 1 if res.failed else 0


def cmd_fpga(args) -> int:
    from bfimna.hdl.flow.fpga.flow import run_flow
    from bfimna.hdl.flow.fpga.targets import TARGETS, FpgaError, FpgaUsage

    cfg = load_config(args.config)
    t = TARGETS[args.target]
    clock = (f"a PLL at about {args.clock_mhz:g} MHz from the board's {t.clk_hz / 1e6:g} MHz"
             if args.clock_mhz else f"{t.clk_hz / 1e6:g} MHz")
    print(f"fpga: board-level top of {cfg.name} (the system behind a {args.baud:,} baud UART) for "
          f"{t.part} on {t.board}, {clock}; logs in {args.out}/", flush=True)
    t0 = time.perf_counter()
    try:
        r = run_flow(cfg, args.target, args.out, bitstream=args.bitstream, seed=args.seed,
                     force=args.force, clock_mhz=args.clock_mhz, baud=args.baud,
                     abc9_delay_ns=args.abc9_delay_ns, seed_tries=args.seed_tries,
                     placer=args.placer, progress=lambda s: print("  " + s, flush=True))
    except FpgaError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, FpgaUsage) else 1
    if r["seeds_tried"]:
        print(f"  placed and routed with seed {r['seed']} ({len(r['seeds_tried'])} seed(s) "
              f"before it stopped: report.json's seeds_tried)")
    for k, v in r["utilisation"].items():
        pct = 100 * v["used"] / v["available"] if v["available"] else 0
        print(f"  {k:<5} {v['used']:>8,} / {v['available']:>8,}  {pct:5.1f}%")
    for clk, f in r["fmax_mhz"].items():
        ok = "meets" if f["achieved"] >= f["constraint"] else "MISSES"
        print(f"  Fmax {f['achieved']} MHz ({ok} {f['constraint']} MHz) on {clk}")
    for p in r.get("critical_paths", [])[:1]:
        print(f"  critical path {p['start_signal']} -> {p['end_signal']}: {p['delay_ns']:.1f} "
              f"ns, {p['logic_levels']} logic levels ({p['logic_ns']:.1f} ns logic, "
              f"{p['routing_ns']:.1f} ns routing); all in summary.md")
    if args.bitstream:
        print(f"  bitstream {Path(args.out) / r['bitstream']}")
    if r["pll"]:
        print(f"  PLL: {r['clock_mhz']:g} MHz (VCO {r['pll']['vco_mhz']:g} MHz)")
    print(f"  UART: {r['uart_baud']:,} baud, divisor {r['uart_divisor']} "
          f"({100 * r['uart_rate_error']:+.2f}%)")
    if not r["fmax_mhz"]:
        print("bfimna: warning: place and route reported no Fmax: timing is not known to "
              "be met", file=sys.stderr)
    elif not r["timing_met"]:
        print(f"bfimna: warning: the design misses its {r['clock_mhz']:g} MHz clock (nextpnr's "
              f"timing model has margin, so a bitstream may work at room temperature, but it "
              f"is not guaranteed); --clock-mhz lower on ECP5", file=sys.stderr)
    print(f"wrote {args.out}/report.json and summary.md in {time.perf_counter() - t0:.0f} s "
          f"({', '.join(f'{k} {v} s' for k, v in r['wall_s'].items())})")
    return 0


def cmd_fpga_sweep(args) -> int:
    from bfimna.hdl.flow.fpga.sweep import sweep
    from bfimna.hdl.flow.fpga.targets import FpgaError

    base = load_config(args.config)
    n = len(args.rows) * len(args.cols) * len(args.tiles)
    what = "synthesis + place-and-route" if args.pnr else "synthesis"
    print(f"fpga-sweep: {n} {what} runs of the board top for {args.target} (rows "
          f"{args.rows} x cols {args.cols} x tiles {args.tiles}, MAPs as in {base.name} "
          f"but sized like the CAP)", flush=True)
    try:
        res = sweep(base, args.target, args.rows, args.cols, args.tiles, args.out,
                    pnr=args.pnr, progress=lambda s: print("  " + s, flush=True))
    except FpgaError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}/sweep.csv and {args.out}/sweep.png ({len(res)} points)")
    return 0


def cmd_board(args) -> int:
    from contextlib import nullcontext

    from bfimna.cosim.drivers.backends import DriverError, backend, compare
    from bfimna.cosim.drivers.serial_host import SerialBackend, emulated_board
    from bfimna.golden.host.stimulus import random_host_program

    cfg = load_config(args.config)
    ctx = emulated_board(cfg) if args.emulate else nullcontext((str(args.port), None))
    failed = 0
    try:
        with ctx as (port, _model), SerialBackend(cfg, port, args.baud, args.timeout) as board:
            where = "the golden board model on a pseudo-terminal" if args.emulate else port
            print(f"board: {board.identify()} ({where}, {args.baud} baud)", flush=True)
            for i in range(args.runs):
                s = args.seed + i
                prog = random_host_program(cfg, s, n_packets=args.packets)
                sent0, recv0 = board.bytes_sent, board.bytes_received
                got = board.run(prog)
                diffs = compare(backend("golden", cfg).run(prog), got, prog)
                nbytes = board.bytes_sent - sent0 + board.bytes_received - recv0
                print(f"  run {i + 1}/{args.runs} (random_host_program seed {s}): "
                      f"{len(prog.frames)} packets, {prog.n_words} words in, "
                      f"{sum(map(len, got.responses))} out, {nbytes:,} bytes in "
                      f"{got.wall_s:.2f} s: " + ("agrees with the golden system" if not diffs
                                                 else f"{len(diffs)} differences"), flush=True)
                for d in diffs[:20]:
                    print(f"    {d}")
                failed += bool(diffs)
    except DriverError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def cmd_isa(args) -> int:
    from bfimna.golden.spec.costs import cost_table

    cfg = load_config(args.config)
    table = cost_table(tuple(args.bits), rows=cfg.ap.rows)
    if args.json:
        print(json.dumps([{k: r[k] for k in ("op", "bits", "cycles", "textbook")}
                          for r in table], indent=1))
        return 0
    print(f"cycles per macro-operation (one micro-op per cycle), searched microcode vs the "
          f"textbook 4-pass-per-bit sequences; REDUCE over {cfg.ap.rows} rows")
    print(f"{'op':<8} {'bits':>4} {'cycles':>7} {'textbook':>9} {'saved':>6} {'cyc/bit':>8}")
    for r in table:
        saved = 100 * (1 - r["cycles"] / r["textbook"])
        print(f"{r['op']:<8} {r['bits']:>4} {r['cycles']:>7} {r['textbook']:>9} "
              f"{saved:>5.0f}% {r['cycles'] / r['bits']:>8.1f}")
    return 0


def cmd_exec(args) -> int:
    import numpy as np

    from bfimna.cosim.drivers.exec import ExecInputError, exec_program, save_dump
    from bfimna.golden.spec.isa import AsmError

    cfg = load_config(args.config)
    try:
        text = Path(args.program).read_text()
    except OSError as exc:
        print(f"bfimna: cannot read program: {exc}", file=sys.stderr)
        return 2
    init = None
    if args.init:
        try:
            with np.load(args.init) as f:
                init = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            print(f"bfimna: cannot read --init {args.init}: {exc}", file=sys.stderr)
            return 2
    if args.backend != "golden":
        print(f"building and running the {args.backend} model of the controller "
              f"(reused when unchanged; build dir {args.build_dir})", flush=True)
    try:
        res = exec_program(text, cfg, args.backend, init, build_root=args.build_dir)
    except AsmError as exc:
        print(f"bfimna: {args.program} does not assemble:\n{exc}", file=sys.stderr)
        return 2
    except ExecInputError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    c = res.counters
    print(f"{args.program}: {res.n_instructions} instructions on {args.backend} "
          f"({cfg.name}: {cfg.ap.rows} x {cfg.ap.cols}, {cfg.ap.dims}D)")
    print(f"  cycles {c['cycles']}, compares {c['compares']}, writes {c['writes']}, "
          f"column transfers {c['col_transfers']}, instructions {c['instructions']}, "
          f"errors {c['errors']}" + ("  (error flag set)" if res.error else ""))
    show = min(cfg.ap.rows, args.show_rows)
    for name, vals in res.fields.items():
        more = " ..." if cfg.ap.rows > show else ""
        shown = " ".join(str(int(v)) for v in vals[:show])
        print(f"  {name:<10} rows 0..{show - 1}: {shown}{more}")
    if args.dump:
        save_dump(args.dump, res)
        print(f"  wrote {args.dump} (cam, counter_*, error, and every .field)")
    return 0


def cmd_import(args) -> int:
    from bfimna.golden.nn.network import NetworkError
    from bfimna.golden.nn.onnx_import import DEFAULT_SYNTHETIC, import_onnx

    if args.calib is not None and args.synthetic is not None:
        raise UsageError("--calib and --synthetic exclude each other (--synthetic: the number "
                         "of synthetic calibration images when there is no --calib)")
    try:
        rep = import_onnx(args.model, args.out, calib=args.calib,
                          synthetic=args.synthetic or DEFAULT_SYNTHETIC, seed=args.seed,
                          force=args.force)
    except NetworkError as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    imp, net = rep.imported, rep.net
    kinds: dict[str, int] = {}
    for lay in net.layers:
        kinds[lay.type] = kinds.get(lay.type, 0) + 1
    print(f"import: {args.model} ({len(imp.model.graph.node)} nodes, opset {imp.opset}) -> "
          f"{len(net.layers)} layers (" + ", ".join(f"{k} {v}" for k, v in kinds.items())
          + f"), input {'x'.join(map(str, net.input_shape))}, output "
          f"{'x'.join(map(str, net.layers[-1].out_shape))}")
    for what, n in sorted(imp.notes.items()):
        print(f"  {what}: {n}")
    for w in rep.warnings:
        print(f"  warning: {w}")
    print(f"  {rep.how}")
    if rep.quant is None:
        print(f"  float check: the written network (numpy, float64) against onnxruntime on "
              f"{rep.check_images} image(s): max relative difference {rep.check_rel:.2g}")
    else:        # a quantised model: the integer layers against onnxruntime's integers
        from bfimna.golden.nn.onnx_import import check_summary
        print("\n".join("  " + line for line in check_summary(rep.quant)))
    for f in rep.files:
        print(f"wrote {f}")
    if any(f.name == "test.npz" for f in rep.files):
        print(f"next: bfimna run --network {rep.out / 'network.yaml'} --plan "
              f"{rep.out / 'int8.yaml'} --backend golden")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bfimna", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("verilog", help="emit the Verilog and a JSON manifest for a config")
    _config_arg(v)
    v.add_argument("--out", type=Path, required=True, help="output directory")
    v.add_argument("--lint", action="store_true",
                   help="also run verilator --lint-only -Wall and iverilog -g2012")
    v.set_defaults(func=cmd_verilog)

    c = sub.add_parser("cosim", help="cosimulation (replay harness or cocotb) of the AP core "
                                     "or the system top against the golden model")
    c.add_argument("--unit", choices=("ap", "system", "board"), default="ap",
                   help="ap: the AP core, cycle by cycle; system: the system top through "
                        "its AXI ports with a random host program; board: the board top "
                        "(the system behind its UART link) with the same program")
    c.add_argument("--divisor", type=POSITIVE, default=8,
                   help="board: UART clock cycles per bit (at least 4)")
    c.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    _config_arg(c)
    c.add_argument("--seed", type=SEED, default=1, help="seed of the random micro-op stream")
    c.add_argument("--ops", type=POSITIVE, default=20000, help="number of random micro-ops")
    c.add_argument("--packets", type=POSITIVE, default=60, help="system: random packets")
    c.add_argument("--idle", type=FRACTION, default=0.3,
                   help="system: share of cycles the host leaves the input idle")
    c.add_argument("--backpressure", type=FRACTION, default=0.3,
                   help="system: share of cycles the host refuses output words")
    c.add_argument("--build-dir", type=Path, default=Path("build") / "cosim")
    c.add_argument("--waves", action="store_true", help="record a waveform (VCD/FST)")
    _replay_args(c)
    c.add_argument("--json", action="store_true", help="also print the JSON summary")
    c.add_argument("--inject-fault", choices=sorted(FAULTS), default=None,
                   help="mutation testing: simulate a deliberately broken generator, which "
                        "the testbench must reject")
    c.set_defaults(func=cmd_cosim)
    r = sub.add_parser("run", help="run a quantised CNN on a backend, layer by layer, "
                                   "checked against the golden CNN reference")
    r.add_argument("--network", type=Path, required=True, help="network YAML (docs/network.md)")
    r.add_argument("--plan", type=Path, required=True, help="precision plan YAML")
    r.add_argument("--backend", choices=("golden", "verilator", "icarus", "board"),
                   default="golden", help="board: an FPGA board over its serial port "
                                          "(--port) or the emulated board (--emulate)")
    r.add_argument("--port", help="serial port of the board (--backend board)")
    r.add_argument("--emulate", action="store_true",
                   help="--backend board without a board: the golden board model behind a "
                        "pseudo-terminal")
    r.add_argument("--baud", type=POSITIVE, default=BAUD)
    r.add_argument("--timeout", type=SECONDS, default=5.0,
                   help="seconds of silence before a board wait fails")
    _config_arg(r)
    r.add_argument("--images", type=POSITIVE, default=None,
                   help="first K test images (default all; without a dataset: K synthetic "
                        "images, default 1)")
    r.add_argument("--predict", action="store_true",
                   help="only predict every layer's cycles, passes and host words from the "
                        "schedule; run nothing (--backend is ignored)")
    r.add_argument("--on-chip", action="store_true",
                   help="keep activations in the MAPs between layers where they fit (one "
                        "tile; docs/scheduler.md, 'On-chip residency'): resident layers run "
                        "as one program and gather their inputs from the MAPs")
    r.add_argument("--seed", type=SEED, default=0,
                   help="seed of the synthetic images of a network without a dataset")
    r.add_argument("--dump", type=Path, help="write every layer's output as .npy here")
    r.add_argument("--build-dir", type=Path, default=Path("build") / "cosim")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    _replay_args(r)
    r.set_defaults(func=cmd_run)

    f = sub.add_parser("fpga", help="synthesis, place and route (and bitstream) of the "
                                    "board-level top with the yowasp tools")
    _config_arg(f)
    f.add_argument("--target", choices=("ecp5-25k", "ecp5-85k", "ice40-up5k"),
                   default="ecp5-85k")
    f.add_argument("--out", type=Path, required=True, help="output directory")
    f.add_argument("--bitstream", action="store_true", help="also pack the bitstream")
    f.add_argument("--seed", type=SEED, default=1, help="placer seed")
    f.add_argument("--seed-tries", type=POSITIVE, default=3,
                   help="when router2 stops converging (its overused wires back at 2.5x "
                        "their best, or at the 10th iteration still 60%% of the 5th's), "
                        "stop it and place and route again with the next seed, up to "
                        "this many seeds (default %(default)s; 1: never)")
    f.add_argument("--placer", choices=PLACERS, default=PLACERS[0],
                   help="nextpnr's placer (default %(default)s; docs/fpga.md, \"The placer\")")
    f.add_argument("--clock-mhz", type=MHZ, default=None,
                   help="ECP5: clock the design from a PLL at this frequency (the UART "
                        "divisor follows) instead of the board's clock")
    f.add_argument("--baud", type=POSITIVE, default=BAUD,
                   help="the UART's rate (default %(default)s); the clock must make it "
                        "within half the receiver's margin (2%% at 8 cycles a bit, 1.3%% at "
                        "4; 3000000, the FT231X's top rate: --clock-mhz 15 or 30 on ECP5)")
    f.add_argument("--abc9-delay-ns", type=NS, default=None,
                   help="ECP5: the delay target of synthesis' ABC9 mapping (logic only, "
                        "no routing); without it ABC maps for the least depth and keeps "
                        "that depth everywhere, a looser target (10) gives fewer LUTs")
    f.add_argument("--force", action="store_true",
                   help="synthesise even when the estimate puts the design far beyond the part")
    f.set_defaults(func=cmd_fpga)

    w = sub.add_parser("fpga-sweep", help="synthesis utilisation over a grid of rows, "
                                          "columns and tiles (CSV + PNG)")
    _config_arg(w)
    w.add_argument("--target", choices=("ecp5-25k", "ecp5-85k", "ice40-up5k"),
                   default="ecp5-85k")
    w.add_argument("--rows", type=POSITIVE, nargs="+", default=[8, 16, 32])
    w.add_argument("--cols", type=POSITIVE, nargs="+", default=[16, 32])
    w.add_argument("--tiles", type=POSITIVE, nargs="+", default=[1, 2])
    w.add_argument("--pnr", action="store_true",
                   help="also place and route every point (Fmax; much slower)")
    w.add_argument("--out", type=Path, required=True)
    w.set_defaults(func=cmd_fpga_sweep)

    b = sub.add_parser("board", help="check a board programmed with the board top over its "
                                     "serial port: identity, then random host programs "
                                     "against the golden system")
    _config_arg(b)
    where = b.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port of the board (e.g. /dev/ttyUSB0) or a "
                                      "pyserial URL")
    where.add_argument("--emulate", action="store_true",
                       help="no board: the golden board model behind a pseudo-terminal")
    b.add_argument("--baud", type=POSITIVE, default=BAUD)
    b.add_argument("--timeout", type=SECONDS, default=2.0,
                   help="seconds of silence before a wait fails")
    b.add_argument("--runs", type=POSITIVE, default=2, help="random programs to run")
    b.add_argument("--packets", type=POSITIVE, default=20, help="packets per program")
    b.add_argument("--seed", type=SEED, default=1, help="seed of the first program")
    b.set_defaults(func=cmd_board)

    i = sub.add_parser("isa", help="the instruction set: cycle costs per operation and precision")
    _config_arg(i)
    i.add_argument("--costs", action="store_true", help="print the cost table (the default)")
    i.add_argument("--json", action="store_true",
                   help="print the table as JSON: a list of {op, bits, cycles, textbook}")
    i.add_argument("--bits", type=BITS, nargs="+", default=[1, 2, 4, 8, 16],
                   help="precisions to tabulate")
    i.set_defaults(func=cmd_isa)

    e = sub.add_parser("exec", help="assemble a program and run it on a fresh AP controller")
    e.add_argument("program", type=Path, help="program in the text form (docs/isa.md)")
    _config_arg(e)
    e.add_argument("--backend", choices=("golden", "verilator", "icarus"), default="golden")
    e.add_argument("--init", type=Path, help=".npz with `cam` and/or one array per .field")
    e.add_argument("--dump", type=Path, help="write the final array, counters and fields (.npz)")
    e.add_argument("--show-rows", type=NON_NEGATIVE, default=8, help="rows of each field to print")
    e.add_argument("--build-dir", type=Path, default=Path("build") / "cosim")
    e.set_defaults(func=cmd_exec)

    ev = sub.add_parser("evaluate", help="energy, latency, power, throughput, TOPS/W, area "
                                         "and EDP of a network under a plan, per layer "
                                         "(docs/energy.md)")
    ev.add_argument("--network", type=Path, required=True, help="network YAML")
    ev.add_argument("--plan", type=Path, required=True, help="precision plan YAML")
    _config_arg(ev)
    _tech_args(ev)
    ev.add_argument("--batch", type=POSITIVE, default=1, help="images per run")
    ev.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    ev.add_argument("--out", type=Path, default=None,
                    help="write evaluation.json, layers.csv and plots (PNG) here")
    ev.add_argument("--execute", action="store_true",
                    help="run on the golden backend (test images, or synthetic ones without "
                         "a dataset) and use the activity the tiles counted; the default is "
                         "the schedule's prediction, which equals it")
    ev.add_argument("--tagged-share", type=_number(float, 0.0, 1.0, lo_open=True,
                                                   what="a share in (0, 1]"),
                    default=1.0, help="share of the enabled rows a write programs (default "
                                      "1: every enabled row, the exact upper bound; the "
                                      "bit-level golden tile measures about 0.08 on the "
                                      "digits CNN, docs/energy.md)")
    ev.add_argument("--on-chip", action="store_true",
                    help="activations stay in the MAPs between layers where they fit "
                         "(as bfimna run --on-chip)")
    ev.add_argument("--seed", type=SEED, default=0, help="seed of synthetic images")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)

    pn = sub.add_parser("plan", help="choose per-layer weight and activation bits that meet "
                                     "a latency, energy or EDP budget relative to INT8 with "
                                     "the least quantisation loss; write the plan "
                                     "(docs/planner.md)")
    pn.add_argument("--network", type=Path, required=True, help="network YAML")
    _config_arg(pn)
    _tech_args(pn)
    pn.add_argument("--budget", required=True, metavar="KIND=VALUE",
                    help="KIND latency, energy or edp; VALUE > 0 relative to the INT8 plan "
                         "(edp=0.5: at most half of INT8's EDP)")
    pn.add_argument("--out", type=Path, required=True, help="the plan YAML to write")
    pn.add_argument("--calib-images", type=POSITIVE, default=None, metavar="K",
                    help="calibration images: the first K of the network's dataset (default "
                         "64), or K seeded synthetic ones without a dataset (default 2)")
    pn.add_argument("--bits", type=_number(int, 2, 8, what="a width 2..8"), nargs="+",
                    default=[2, 3, 4, 5, 6, 7, 8],
                    help="the widths a knob may take (8, INT8's, is always one)")
    pn.add_argument("--sensitivity", choices=("network", "isolated"), default="network",
                    help="network: the output error of every candidate plan, measured; "
                         "isolated: per knob, measured alone from INT8 and added up (fewer "
                         "forward passes, for large networks)")
    pn.add_argument("--seed", type=SEED, default=0, help="seed of synthetic calibration images")
    pn.add_argument("--blocks", type=_plan_blocks, default=None, metavar="RxC",
                    help="weight bits per block instead of per layer: at most R blocks of "
                         "output channels x C reduction blocks per conv/fc layer (e.g. 2x2)")
    pn.add_argument("--act-blocks", type=_number(int, 2, 4096, what="a block count >= 2"),
                    default=None, metavar="N",
                    help="activation bits per block of output channels: at most N blocks "
                         "per conv/fc layer whose readers allow it (conv and fc, directly "
                         "or through maxpool and flatten; docs/planner.md)")
    pn.add_argument("--dataflow", choices=("auto", "pos", "chan", "search"), default="auto",
                    help="auto: the scheduler picks each conv/fc layer's dataflow; pos, chan: "
                         "that one on every conv/fc layer (INT8 too); search: flipping a "
                         "layer's dataflow is also a move of the search (docs/planner.md)")
    pn.add_argument("--workers", type=POSITIVE, default=None, metavar="N",
                    help="evaluate each step's candidate plans on an embedded local Dask "
                         "cluster of N worker processes (N > 1; default: in this process)")
    pn.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="evaluate the candidates on the running Dask cluster at ADDRESS "
                         "(tcp://HOST:8786; docs/sweep.md)")
    pn.add_argument("--no-progress", action="store_true", help="no progress bar")
    pn.set_defaults(func=cmd_plan)

    dn = sub.add_parser("dynamic", help="dynamic mixed precision: several plans for one "
                                        "network, a plan chosen per image (or per batch) by "
                                        "a cycle budget or a list, on one hardware instance "
                                        "(docs/dynamic.md)")
    dn.add_argument("--network", type=Path, required=True, help="network YAML")
    dn.add_argument("--plans", required=True, metavar="P1.yaml,P2.yaml,...",
                    help="precision plans of the network, comma-separated, in order of "
                         "preference (most precise first): a budget takes the first that fits")
    how = dn.add_mutually_exclusive_group(required=True)
    how.add_argument("--budget-cycles", metavar="C|C1,C2,...|FILE",
                     help="tile-cycle budget per step: one value, a comma-separated pattern "
                          "repeated over the steps, or a file of one budget per line")
    how.add_argument("--plan-per-image", metavar="NAME,...|FILE",
                     help="the plan (by name) of every step: a comma-separated pattern "
                          "repeated over the steps, or a file of one name per line")
    dn.add_argument("--backend", choices=("golden", "verilator", "icarus"), default="golden")
    _config_arg(dn)
    dn.add_argument("--images", type=POSITIVE, default=None,
                    help="first K test images (default all; without a dataset: K synthetic "
                         "images, default 1)")
    dn.add_argument("--batch", type=POSITIVE, default=1,
                    help="images per step: a plan is chosen per batch of this many (default "
                         "1: per image)")
    dn.add_argument("--seed", type=SEED, default=0,
                    help="seed of the synthetic images of a network without a dataset")
    dn.add_argument("--out", type=Path, default=None,
                    help="write dynamic.csv, dynamic.md, dynamic.json and dynamic.png here")
    dn.add_argument("--build-dir", type=Path, default=Path("build") / "cosim")
    dn.add_argument("--no-progress", action="store_true", help="no progress bar")
    _replay_args(dn)
    dn.set_defaults(func=cmd_dynamic)

    sw = sub.add_parser("sweep", help="predict and evaluate every point of a grid of "
                                      "networks, plans, configurations, technologies, "
                                      "voltages and batches on Dask; resumable "
                                      "(docs/sweep.md)")
    sw.add_argument("grid", type=Path, help="the grid YAML (docs/sweep.md)")
    sw.add_argument("--out", type=Path, required=True,
                    help="results: points/<key>.json, results.csv, results.md, results.png")
    sw.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="a running Dask scheduler (tcp://HOST:8786); default: an embedded "
                         "local cluster of worker processes")
    sw.add_argument("--workers", type=POSITIVE, default=None, metavar="N",
                    help="worker processes of the embedded cluster (default: one per CPU)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    sw.set_defaults(func=cmd_sweep)

    m = sub.add_parser("import", help="translate a float ONNX CNN into a network YAML, "
                                      "weights and an 8-bit plan (docs/import.md)")
    m.add_argument("model", type=Path, help="the ONNX model (one (N, C, H, W) float input)")
    m.add_argument("--out", type=Path, required=True,
                   help="output directory (network.yaml, weights.npz, int8.yaml[, test.npz])")
    m.add_argument("--calib", type=Path, default=None,
                   help="calibration .npz: x (N, C, H, W) float; with integer labels y it is "
                        "also copied to test.npz as the network's dataset")
    m.add_argument("--synthetic", type=POSITIVE, default=None, metavar="N",
                   help="without --calib: calibrate on N synthetic uniform[0,1) images "
                        "(default 16)")
    m.add_argument("--seed", type=SEED, default=0, help="seed of the synthetic images")
    m.add_argument("--force", action="store_true", help="replace an existing --out directory")
    m.set_defaults(func=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:     # a YAML parser's message spans lines: one line here
        text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip() not in ("", "^"))
        print(f"bfimna: configuration error: {text}", file=sys.stderr)
        return 2
    except (ToolError, UsageError) as exc:
        print(f"bfimna: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
            PermissionError) as exc:         # an input or output path that does not work
        where = f": {exc.filename}" if exc.filename else ""
        print(f"bfimna: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a simulator build that failed, with its log excerpt
        print(f"bfimna: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:      # the reader left (`bfimna run ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
