"""Seeded random micro-operation streams for AP-core verification.

The stream is biased so that it exercises what matters: compare keys are often taken
from a row the array really holds (so compares match some rows, not none), masks are
sparse, row ranges are sometimes partial, and a small share of micro-ops is illegal
(bad opcode, row, column, shift or range). Every field always fits its port, so the
same stream can drive the RTL.

The generator reads the model it is checked against (to pick keys that match), so the
caller must step that model with each micro-op before asking for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from bfimna.golden.model.ap import APModel
from bfimna.golden.spec.config import APConfig
from bfimna.golden.spec.isa import (
    OPCODES,
    RESERVED_COLS,
    Instr,
    Opc,
    encode,
    operand_fields,
    runs_on,
    validate,
)
from bfimna.golden.spec.uops import (
    COLUMN_OPS,
    N_COUNTERS,
    OP_BITS,
    Op,
    UOp,
    addr_bits,
    col_bits,
    is_legal,
)

_WEIGHTS_1D = {Op.NOP: 2, Op.CMP: 20, Op.CMPA: 10, Op.WR: 16, Op.RDROW: 10,
               Op.WRROW: 16, Op.ROWEN: 4}
_WEIGHTS_2D = {**_WEIGHTS_1D, Op.RDCOL: 6, Op.WRCOL: 6, Op.MVCOL: 8}
ILLEGAL_SHARE = 0.02
MVCOL_NOP_SHARE = 0.8   # how often an MVCOL is followed by the NOP it needs


def _rand_bits(rng: np.random.Generator, n: int) -> int:
    return int.from_bytes(rng.bytes((n + 7) // 8), "little") & ((1 << n) - 1)


def _sparse_mask(rng: np.random.Generator, cols: int) -> int:
    r = rng.random()
    if r < 0.05:
        return 0
    if r < 0.15:
        return _rand_bits(rng, cols)
    mask = 0
    for c in rng.choice(cols, size=min(cols, int(rng.integers(1, 4))), replace=False):
        mask |= 1 << int(c)
    return mask


def _shift(rng: np.random.Generator, rows: int) -> int:
    r = rng.random()
    if r < 0.3:
        return 0
    if r < 0.8:  # powers of two: the vertical moves of a reduction
        return min(rows - 1, 1 << int(rng.integers(0, max(1, rows.bit_length() - 1))))
    return int(rng.integers(0, rows))


def _illegal(rng: np.random.Generator, model: APModel) -> UOp:
    ap = model.cfg
    aw, cw = addr_bits(ap.rows), col_bits(ap.cols)
    kinds = ["opcode", "row", "rowen"]
    if ap.two_d:
        kinds += ["shift"] + (["col"] if (1 << cw) > ap.cols else [])
    else:
        kinds += ["column_op_on_1d"]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "opcode":
        return UOp(int(rng.integers(max(Op) + 1, 1 << OP_BITS)))
    if kind == "row":
        op = Op.RDROW if rng.random() < 0.5 else Op.WRROW
        return UOp(op, addr=int(rng.integers(ap.rows, 1 << aw)), mask=(1 << ap.cols) - 1,
                   data=_rand_bits(rng, ap.cols))
    if kind == "rowen":  # end beyond the last row, or start after end
        if rng.random() < 0.5 and ap.rows + 1 < (1 << aw):
            return UOp(Op.ROWEN, addr=0, addr2=int(rng.integers(ap.rows + 1, 1 << aw)))
        hi = int(rng.integers(0, ap.rows))
        return UOp(Op.ROWEN, addr=int(rng.integers(hi + 1, ap.rows + 1)), addr2=hi)
    if kind == "shift":
        return UOp(Op.MVCOL, shift=int(rng.integers(ap.rows, 1 << aw)))
    if kind == "col":
        return UOp(Op.RDCOL, col=int(rng.integers(ap.cols, 1 << cw)))
    return UOp(Op.RDCOL)  # column op on a 1D AP


def random_uops(model: APModel, seed: int, n: int) -> Iterator[UOp]:
    """Yield `n` micro-ops; step `model` with each before taking the next. A legal MVCOL
    is followed by the NOP it needs (its second cycle) four times in five, else by the
    next random micro-op, which is then illegal unless it is a NOP; the stream never ends
    on an MVCOL."""
    ap = model.cfg
    rng = np.random.default_rng(seed)
    weights = _WEIGHTS_2D if ap.two_d else _WEIGHTS_1D
    ops = list(weights)
    p = np.array([weights[o] for o in ops], dtype=float)
    p /= p.sum()
    after_mv = False              # the last micro-op yielded was a legal MVCOL
    for i in range(n):
        nop_now, after_mv = after_mv and rng.random() < MVCOL_NOP_SHARE, False
        if nop_now:
            yield UOp(Op.NOP)         # MVCOL's second cycle; else an illegal micro-op
            continue
        if rng.random() < ILLEGAL_SHARE:
            yield _illegal(rng, model)
            continue
        op = ops[int(rng.choice(len(ops), p=p))]
        mask = _sparse_mask(rng, ap.cols)
        if op in (Op.CMP, Op.CMPA) and rng.random() < 0.6:
            key = model.row(int(rng.integers(ap.rows)))  # matches at least that row
        else:
            key = _rand_bits(rng, ap.cols)
        u = UOp(op, key=key, mask=mask, data=_rand_bits(rng, ap.cols),
                addr=int(rng.integers(ap.rows)))
        if op == Op.ROWEN:
            if rng.random() < 0.4:
                lo, hi = 0, ap.rows
            else:
                lo, hi = sorted(int(x) for x in rng.integers(0, ap.rows + 1, size=2))
            u = UOp(op, addr=lo, addr2=hi)
        elif op in COLUMN_OPS:
            u = UOp(op, col=int(rng.integers(ap.cols)), col2=int(rng.integers(ap.cols)),
                    shift=_shift(rng, ap.rows), vec=_rand_bits(rng, ap.rows))
            if op == Op.MVCOL and i == n - 1:
                # the stream never ends on an MVCOL: what follows it (a read-back) could
                # not be legal
                u = UOp(Op.NOP)
        after_mv = u.op == Op.MVCOL and is_legal(ap, u)
        yield u



def readback_uops(ap: APConfig) -> Iterator[UOp]:
    """Read every row through the row port, then idle for one cycle per counter, so that
    a testbench rotating cnt_sel sees every counter (the whole state becomes visible)."""
    for r in range(ap.rows):
        yield UOp(Op.RDROW, addr=r, mask=(1 << ap.cols) - 1)
    for _ in range(N_COUNTERS):
        yield UOp(Op.NOP)


def random_instruction(ap: APConfig, rng: np.random.Generator, max_width: int = 16):
    """One legal macro-instruction with random operation, precision (1..max_width),
    signedness, immediate and field placement."""
    usable = ap.cols - RESERVED_COLS
    ops = [o for o, spec in OPCODES.items() if runs_on(spec, ap)]
    while True:
        op = ops[int(rng.integers(len(ops)))]
        spec = OPCODES[op]
        n = int(rng.integers(1, max_width + 1))
        s = bool(rng.integers(2))
        m = 0
        if op == Opc.ROWS:
            lo, hi = sorted(int(x) for x in rng.integers(0, ap.rows + 1, size=2))
            if rng.random() < 0.5:
                lo, hi = 0, ap.rows
            return Instr(op=op, lo=lo, hi=hi)
        if not spec.operands:
            return Instr(op=op)
        if spec.m == "width":       # MUL's b
            m = int(rng.integers(1, max_width + 1))
        elif spec.m == "acc":       # MAC's accumulator
            m = int(rng.integers(n, 2 * max_width + 1))
        elif spec.m == "below":     # CLAMP, SHR
            n = max(n, 2)
            m = int(rng.integers(1, n))
        elif spec.m == "stages":    # REDUCE
            m = int(rng.integers(1, max(1, (ap.rows - 1).bit_length()) + 1))
        imm = int(rng.integers(-(1 << 15), 1 << 15))
        if rng.random() < 0.3:
            imm = int(rng.integers(-8, 9))
        probe = Instr(op=op, n=n, m=m, s=s, imm=imm)
        fields = operand_fields(probe)
        total = sum(w for _s, w in fields.values())
        if total > usable:
            continue
        names = [str(x) for x in rng.permutation(list(fields))]
        slack = usable - total
        kw, pos = {}, 0
        for name in names:
            gap = int(rng.integers(0, slack // len(names) + 1))
            pos += gap
            kw[name] = pos
            pos += fields[name][1]
        ins = Instr(op=op, n=n, m=m, s=s, imm=imm, **kw)
        if validate(ins, ap) is None:
            return ins


def random_program(ap: APConfig, seed: int, n_instr: int, illegal_share: float = 0.03,
                   max_width: int = 16) -> list[int]:
    """A seeded random program as 64-bit words: legal instructions over every operation,
    precision and signedness, and a share of illegal words (bad opcode, fields out of
    range, reserved bits set, overlapping operands)."""
    rng = np.random.default_rng(seed)
    words = []
    for _ in range(n_instr):
        if rng.random() < illegal_share:
            kind = int(rng.integers(4))
            if kind == 0:
                words.append(int(rng.integers(len(Opc), 32)))          # unknown opcode
            elif kind == 1:
                words.append(encode(Instr(op=Opc.ADD, d=ap.cols - 3, a=0, n=4)))  # off the end
            elif kind == 2:
                words.append(encode(Instr(op=Opc.NOP)) | (1 << 62))     # reserved bit
            else:
                words.append(encode(Instr(op=Opc.SUB, d=0, a=1, n=4)))  # overlap
        else:
            words.append(encode(random_instruction(ap, rng, max_width)))
    return words


def random_transfer(cfg, rng: np.random.Generator) -> list[Instr]:
    """XROWS + a legal MOVW between two random APs of a tile (cfg.tile.maps >= 1)."""
    from bfimna.golden.spec.isa import usable_cols
    K = cfg.tile.maps
    sap, dap = (int(x) for x in rng.choice(K + 1, size=2, replace=False))
    src, dst = cfg.ap_of(sap), cfg.ap_of(dap)
    us, ud = usable_cols(src, sap), usable_cols(dst, dap)
    n = int(rng.integers(1, min(us, ud, 16) + 1))
    a, d = int(rng.integers(0, us - n + 1)), int(rng.integers(0, ud - n + 1))
    count = int(rng.integers(1, min(src.rows, dst.rows) + 1))
    if rng.random() < 0.3:
        count = min(count, 4)
    stride_max = (src.rows - 1) // max(1, count - 1) if count > 1 else 255
    stride = int(rng.integers(0, min(stride_max, 255, 3) + 1))
    srow = int(rng.integers(0, src.rows - (count - 1) * stride))
    drow = int(rng.integers(0, dst.rows - count + 1))
    return [Instr(op=Opc.XROWS, srow=srow, drow=drow, stride=stride),
            Instr(op=Opc.MOVW, sap=sap, dap=dap, a=a, d=d, n=n, count=count)]


def random_tile_program(cfg, seed: int, n_instr: int, transfer_share: float = 0.3,
                        illegal_share: float = 0.03, max_width: int = 16) -> list[int]:
    """A random program for a tile: CAP instructions (as random_program) mixed with
    XROWS + MOVW between random APs; some MOVWs are illegal (rows past the end)."""
    rng = np.random.default_rng(seed)
    cap_words = iter(random_program(cfg.ap, seed + 1, n_instr, illegal_share, max_width))
    words: list[int] = []
    while len(words) < n_instr:
        if cfg.tile.maps and rng.random() < transfer_share:
            xr, mv = random_transfer(cfg, rng)
            if rng.random() < illegal_share * 3:
                mv = Instr(op=Opc.MOVW, sap=mv.sap, dap=mv.dap, a=mv.a, d=mv.d, n=mv.n,
                           count=cfg.ap_of(mv.dap).rows + 1)
            words += [encode(xr), encode(mv)]
        else:
            words.append(next(cap_words))
    return words


def random_host_program(cfg, seed: int, n_packets: int = 30, bad_share: float = 0.08,
                        instr_len: int = 12, final_readback: bool = True):
    """A seeded random HostProgram (golden/host/program.py) for the system: random data into every
    AP of every tile, then random INSTR (tile programs, sometimes broadcast), WRITE, READ,
    COPY, COPYCOL and SYNC packets and a share of bad packets (unknown type, a tile that
    does not exist, count 0, tlast early, tlast late), then every AP read back and a
    SYNC."""
    from bfimna.golden.host.program import HostProgram
    from bfimna.golden.spec.regs import BROADCAST, PT, header
    rng = np.random.default_rng(seed)
    T, K = cfg.system.tiles, cfg.tile.maps
    prog = HostProgram(cfg)

    def rand_field(ap):
        cols = cfg.ap_of(ap).cols
        col = int(rng.integers(0, cols))
        width = int(rng.integers(1, min(64, cols - col) + 1))
        return col, width

    def rand_rows(ap, cap=None):
        rows = cfg.ap_of(ap).rows
        count = int(rng.integers(1, min(rows, cap or rows) + 1))
        return int(rng.integers(0, rows - count + 1)), count

    def vals(n, width):
        return [int(v) for v in rng.integers(0, 1 << min(width, 62), size=n, dtype=np.int64)]

    for t in range(T):
        for ap in range(K + 1):
            a = cfg.ap_of(ap)
            for col in range(0, a.cols, 64):
                w = min(64, a.cols - col)
                prog.write(t, ap, 0, vals(a.rows, w), col=col, width=w)
    def bad_frames(tile):
        return [[header(PT.SYNC) | 0xF],                                  # type 15
                [header(PT.READ, tile=min(T, 254), count=1)],             # no such tile
                [header(PT.WRITE, tile=tile, count=0), 1, 2],             # count 0
                [header(PT.WRITE, tile=tile, ap=0, count=3, width=4), 5],  # tlast early
                [header(PT.INSTR, tile=tile, count=1), 0, 0, 0]]          # tlast late

    pkt_seed = seed * 7919
    for _ in range(n_packets):
        r = rng.random()
        tile = int(rng.integers(T))
        ap = int(rng.integers(K + 1))
        if r < bad_share:
            prog.raw(bad_frames(tile)[int(rng.integers(5))])
            continue
        if r < 0.45:
            pkt_seed += 1
            words = random_tile_program(cfg, pkt_seed, int(rng.integers(1, instr_len + 1)),
                                        illegal_share=0.02, max_width=8)
            prog.instr(BROADCAST if rng.random() < 0.2 else tile, words)
        elif r < 0.6:
            col, width = rand_field(ap)
            row, count = rand_rows(ap, 16)
            prog.write(tile, ap, row, vals(count, width), col=col, width=width)
        elif r < 0.75:
            col, width = rand_field(ap)
            row, count = rand_rows(ap, 16)
            prog.read(tile, ap, row, count, col=col, width=width)
        elif r < 0.85 and T > 1:
            dtile = int((tile + rng.integers(1, T)) % T)
            dap = int(rng.integers(K + 1))
            c_s, c_d = cfg.ap_of(ap).cols, cfg.ap_of(dap).cols
            width = int(rng.integers(1, min(64, c_s, c_d) + 1))
            col, dcol = int(rng.integers(0, c_s - width + 1)), int(rng.integers(0, c_d - width + 1))
            rows = min(cfg.ap_of(ap).rows, cfg.ap_of(dap).rows)
            count = int(rng.integers(1, rows + 1))
            prog.copy(tile, ap, int(rng.integers(0, cfg.ap_of(ap).rows - count + 1)), count,
                      dtile, dap, int(rng.integers(0, cfg.ap_of(dap).rows - count + 1)),
                      col=col, width=width, dst_col=dcol)
        elif r < 0.92 and T > 1 and cfg.ap.two_d:
            dtile = int((tile + rng.integers(1, T)) % T)
            count = int(rng.integers(1, cfg.ap.cols + 1))
            prog.copy_cols(tile, int(rng.integers(0, cfg.ap.cols - count + 1)), count, dtile,
                           int(rng.integers(0, cfg.ap.cols - count + 1)))
        else:
            prog.sync(int(rng.integers(1 << 16)))
    if bad_share > 0:            # every kind of bad packet at least once
        for frame in bad_frames(int(rng.integers(T))):
            prog.raw(frame)
    if final_readback:
        for t in range(T):
            for ap in range(K + 1):
                a = cfg.ap_of(ap)
                for col in range(0, a.cols, 64):
                    prog.read(t, ap, 0, a.rows, col=col, width=min(64, a.cols - col))
        prog.sync(0xBEEF)
    return prog


def random_network(out_dir, seed: int, in_hw: int = 4, conv_ch: int = 3, classes: int = 4,
                   n_images: int = 8):
    """A small random CNN (conv 3x3 stride 2 pad 1 + ReLU, maxpool 2 stride 1, fc) with
    float weights, calibration and a random 'test set', written as network.yaml,
    weights.npz, test.npz and plan.yaml (4-bit) into out_dir; returns the network path."""
    from pathlib import Path

    import yaml
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    oh = (in_hw + 2 - 3) // 2 + 1
    ph = oh - 1
    feat = conv_ch * ph * ph
    w: dict[str, np.ndarray | np.float32] = {"conv1.weight": rng.normal(0, 0.5, (conv_ch, 1, 3, 3)),
         "conv1.bias": rng.normal(0, 0.1, conv_ch),
         "fc.weight": rng.normal(0, 0.5, (classes, feat)), "fc.bias": rng.normal(0, 0.1, classes)}
    x = rng.random((n_images, 1, in_hw, in_hw))
    w["input.act_max"] = np.float32(1.0)
    w["conv1.act_max"] = np.float32(2.0)
    w["fc.act_max"] = np.float32(4.0)
    # Any: numpy's stub would match **weights against savez's allow_pickle: bool
    weights: dict[str, Any] = {k: np.asarray(v, dtype=np.float32) for k, v in w.items()}
    np.savez(out / "weights.npz", **weights)
    np.savez(out / "test.npz", x=x.astype(np.float32), y=rng.integers(0, classes, n_images))
    layers = [{"name": "conv1", "type": "conv", "out_channels": conv_ch, "kernel": 3,
               "stride": 2, "pad": 1, "relu": True},
              {"name": "pool1", "type": "maxpool", "kernel": 2, "stride": 1},
              {"name": "fc", "type": "fc", "out_features": classes, "relu": False}]
    (out / "network.yaml").write_text(yaml.safe_dump(
        {"name": f"random{seed}", "input": {"channels": 1, "height": in_hw, "width": in_hw},
         "weights": "weights.npz", "dataset": "test.npz", "layers": layers}, sort_keys=False))
    (out / "plan.yaml").write_text(yaml.safe_dump(
        {"name": "int4", "input_bits": 4, "layers": {"conv1": {"w_bits": 4, "a_bits": 4},
                                                      "fc": {"w_bits": 4, "a_bits": 6}}}))
    return out / "network.yaml"
