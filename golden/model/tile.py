"""Golden tile: one computing AP (the CAP, 2D when the configuration says so), K memory
APs (MAPs, 1D) and the tile controller.

The tile controller is the AP controller (golden/model/controller.py) plus two transfer
instructions (docs/isa.md, "Transfers inside a tile"):

    XROWS srow drow stride   set the transfer row registers (one cycle, a NOP to the CAP)
    MOVW sap dap a d n count move `count` words: bits [a, a+n) of row srow + k*stride of
                             AP `sap` go to bits [d, d+n) of row drow + k of AP `dap`

MOVW is pipelined over the two APs' row ports: cycle k reads source word k (k < count)
and writes word k-1 (k >= 1), so it takes count + 1 cycles and counts 2*count row
transfers (a read and a write per word). The host port (used by the system's global
controller while the tile is idle) reads and writes rows of any AP and columns of the
CAP; it does not count in the tile's counters, which are the controller's.
"""

from __future__ import annotations

from bfimna.golden.model.ap import APModel
from bfimna.golden.model.controller import Controller
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.isa import (
    OPCODES,
    TRANSFER_OPS,
    Instr,
    Opc,
    decode,
    movw_cycles,  # noqa: F401 (re-exported)
    validate,
)
from bfimna.golden.spec.uops import Op, UOp


class Tile:
    """A golden tile; `execute` runs one instruction word, the host_* methods are the
    tile's host port."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.ctl = Controller(cfg.ap)
        self.maps = [APModel(cfg.map_ap) for _ in range(cfg.tile.maps)]
        self.xrows = (0, 0, 0)

    # -- state ----------------------------------------------------------------------------
    @property
    def cap(self) -> APModel:
        return self.ctl.ap

    @property
    def counters(self) -> dict[str, int]:
        return self.ctl.counters

    @property
    def activity(self) -> dict[str, int]:
        """What energy depends on (golden/spec/costs.py ACTIVITY_KEYS), counted from the
        micro-ops as they run (the controller's, and MOVW's row transfers here)."""
        return self.ctl.activity

    @property
    def error(self) -> bool:
        return self.ctl.error

    def ap(self, index: int) -> APModel:
        """AP `index`: 0 is the CAP, 1..K the MAPs."""
        return self.cap if index == 0 else self.maps[index - 1]

    # -- instructions --------------------------------------------------------------------
    def execute(self, ins: Instr | int) -> None:
        if isinstance(ins, int):
            ins = decode(ins)
        if ins.op not in TRANSFER_OPS:
            self.ctl.execute(ins)
            return
        reason = validate(ins, self.cfg.ap, self.cfg, self.xrows)
        c = self.ctl.counters
        if reason is not None:
            self.ctl.error = True
            self.ctl.last_error = reason
            c["errors"] += 1
            self.ctl._issue(UOp(Op.NOP))
            return
        if ins.op == Opc.XROWS:
            self.xrows = (ins.srow, ins.drow, ins.stride)
            self.ctl._issue(UOp(Op.NOP))
        else:
            self._movw(ins)
            counts = OPCODES[Opc.MOVW].counts
            assert counts is not None   # MOVW declares its counts (golden/spec/isa.py)
            for k, v in counts(ins).items():
                c[k] += v
            self.activity["cycles"] += counts(ins)["cycles"]
        c["instructions"] += 1

    def _movw(self, ins: Instr) -> None:
        src, dst = self.ap(ins.sap), self.ap(ins.dap)
        srow, drow, stride = self.xrows
        fmask = (1 << ins.n) - 1
        data = None
        for k in range(ins.count + 1):      # one iteration = one clock cycle
            if data is not None:
                dst.step(UOp(Op.WRROW, addr=drow + k - 1, data=data << ins.d,
                             mask=fmask << ins.d))
                self.activity["row_bits"] += fmask.bit_count()
            if k < ins.count:
                src.step(UOp(Op.RDROW, addr=srow + k * stride))
                data = (src.rdata >> ins.a) & fmask
                self.activity["row_bits"] += fmask.bit_count()

    def run(self, program) -> Tile:
        for ins in program:
            self.execute(ins)
        return self

    # -- host port (the tile is idle whenever the golden model is called) ------------------
    def host_read(self, ap: int, row: int) -> int:
        return self.ap(ap).row_read(row)

    def host_write(self, ap: int, row: int, data: int, mask: int) -> None:
        self.ap(ap).row_write(row, data, mask)

    def host_read_col(self, col: int) -> int:
        return self.cap.col_read(col)

    def host_write_col(self, col: int, vec: int) -> None:
        """Writes the CAP's enabled rows (its last ROWS), as the WRCOL micro-op does."""
        self.cap.col_write(col, vec)
