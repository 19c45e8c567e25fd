"""The worked example of docs/system.md: load four numbers into a MAP, move them into the
CAP, add 100 to each, move the sums back and read them, on the golden system or the RTL.

    python docs/examples/host_example.py                      # golden backend
    python docs/examples/host_example.py --backend icarus     # the emitted Verilog
"""

import argparse

from bfimna.cosim.drivers.backends import backend, compare
from bfimna.golden.host.program import HostProgram
from bfimna.golden.spec.config import load_config
from bfimna.golden.spec.isa import assemble, encode
from bfimna.golden.spec.regs import PT, Header

PROGRAM = """
XROWS srow=0 drow=0 stride=1
MOVW sap=1 dap=0 a=0 d=0 n=8 count=4    ; MAP 1 bits 0..7 -> CAP bits 0..7, rows 0..3
ROWS lo=0 hi=4
ADDI d=0 imm=100 n=8                    ; x = x + 100 (mod 256) in every row at once
MOVW sap=0 dap=1 a=0 d=8 n=8 count=4    ; CAP bits 0..7 -> MAP 1 bits 8..15
"""


def build(cfg):
    prog = HostProgram(cfg)
    prog.write(tile=0, ap=1, row=0, values=[1, 2, 3, 200], col=0, width=8)
    words = [encode(i) for i in assemble(PROGRAM, cfg.ap, cfg)]
    prog.instr(tile=0, words=words)
    prog.read(tile=0, ap=1, row=0, count=4, col=8, width=8)
    prog.sync(tag=42)
    return prog


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--backend", default="golden", choices=("golden", "verilator", "icarus"))
    args = ap.parse_args()
    cfg = load_config(args.config)
    prog = build(cfg)
    print("host -> system (AXI4-Stream, tlast on the last word of each packet):")
    for f in prog.frames:
        h = Header.decode(f[0])
        print(f"  {PT(h.type).name:6s} " + " ".join(f"{w:016x}" for w in f))
    res = backend(args.backend, cfg).run(prog)
    print("system -> host:")
    for r in res.responses:
        print("  " + " ".join(f"{w:016x}" for w in r))
    print("tile 0 counters:", res.tile_counters[0])
    print("global counters:", res.global_counters)
    if args.backend != "golden":
        diffs = compare(backend("golden", cfg).run(prog), res, prog)
        print("agrees with the golden system" if not diffs else "\n".join(diffs))
        raise SystemExit(1 if diffs else 0)


if __name__ == "__main__":
    main()
