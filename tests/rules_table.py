"""The instruction-word rules as a table (docs/isa.md, "Illegal instructions"), derived from
OPCODES (golden/spec/isa.py), not typed again: one row per (opcode, check) with a minimal
violating word, found by changing the fewest fields of a legal instance of the opcode so
that exactly that check fails (or, where no such word exists on a configuration, so that
it is the first check validate() reports). Shared by tests/test_rules.py's tiers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bfimna.golden.host.stimulus import random_instruction
from bfimna.golden.model.tile import Tile
from bfimna.golden.spec.config import Config, config_from_dict, load_config
from bfimna.golden.spec.isa import (
    OPCODES,
    RESERVED,
    RESERVED_COLS,
    UNKNOWN_OPCODE,
    Instr,
    Opc,
    decode,
    encode,
    failing_checks,
    rule_names,
    usable_cols,
    validate,
)

DATA = Path(__file__).resolve().parent / "data"
WIDE = load_config(DATA / "wide_tile.yaml")
# the same tile, 1D: REDUCE's needs_2d. (MOVW's needs_tile fails only without a tile
# configuration, golden Controller; on a tile without MAPs aps_exist and aps_differ fail.)
WIDE_1D = config_from_dict({**WIDE.as_dict(), "name": "wide_tile_1d",
                            "ap": {**WIDE.as_dict()["ap"], "dims": 1}})
RULE_CONFIGS = (WIDE, WIDE_1D)
CONTEXT = ("srow", "drow", "stride")   # the transfer row registers MOVW's rules read


@dataclass(frozen=True)
class Row:
    op: str               # opcode name (or OP<k> for an unknown opcode)
    check: str            # "unknown_opcode", "reserved" or a Rule.name
    words: tuple[int, ...]  # an XROWS setting the context (MOVW), then the violating word
    exclusive: bool       # no other check fails on that word
    why: str              # golden validate()'s reason

    @property
    def key(self) -> tuple[str, str]:
        return (self.op, self.check)


def all_checks() -> list[tuple[str, str]]:
    """Every check golden validate() makes: (opcode, check)."""
    return [("*", UNKNOWN_OPCODE)] + [(op.name, c) for op, spec in OPCODES.items()
                                      for c in rule_names(spec)]


def hw_checks() -> set[tuple[str, str]]:
    """The checks the RTL makes (a rule with hw=False always passes on a decoded word)."""
    out = {("*", UNKNOWN_OPCODE)}
    for op, spec in OPCODES.items():
        out.add((op.name, RESERVED))
        out |= {(op.name, r.name) for r in spec.rules if r.hw}
    return out


def _field_range(spec, name: str, cfg: Config) -> tuple[int, int]:
    if name in CONTEXT:
        return (0, (1 << 16) - 1) if name != "stride" else (0, 255)
    f = spec.fmt[name]
    return (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed else \
        (0, (1 << f.width) - 1)


def _draw_legal(spec, op, cfg: Config, rng) -> tuple[Instr, tuple[int, int, int]]:
    """A random legal instance of `op` on `cfg` and the transfer rows it runs with (where
    the opcode is never legal on `cfg`, e.g. REDUCE on a 1D AP: the instance that fails
    the fewest checks)."""
    ap, k = cfg.ap, cfg.tile.maps
    if not spec.operands:
        return Instr(op=op), (0, 0, 0)
    best: tuple[int, Instr, tuple[int, int, int]] | None = None
    for _ in range(5000):
        kw: dict[str, Any] = {}
        for name in ("s", *spec.operands):
            lo, hi = {"s": (0, 1), "n": (1, 8), "m": (1, 8), "imm": (-8, 8),
                      "lo": (0, ap.rows), "hi": (0, ap.rows), "srow": (0, 3), "drow": (0, 3),
                      "stride": (0, 3), "sap": (0, k), "dap": (0, k), "count": (1, 3),
                      "b": (0, usable_cols(ap, 0) - 1), "a": (0, usable_cols(ap, 0) - 1),
                      "d": (0, usable_cols(ap, 0) - 1)}[name]
            kw[name] = int(rng.integers(lo, hi + 1))
        if "s" in kw:
            kw["s"] = bool(kw["s"]) and spec.signed
        x0, x1, x2 = (int(x) for x in rng.integers(0, 3, size=3))
        xrows = (x0, x1, x2) if op == Opc.MOVW else (0, 0, 0)
        ins = Instr(op=op, **kw)
        fails = len(failing_checks(ins, ap, cfg, xrows))
        if fails == 0:
            return ins, xrows
        if best is None or fails < best[0]:
            best = (fails, ins, xrows)
    assert best is not None
    return best[1], best[2]


def _packed(ins: Instr, spec) -> Instr:
    """`ins` with its operands laid side by side from column 0 (per AP)."""
    pos: dict[int, int] = {}
    kw: dict[str, Any] = {}
    for name, c in spec.columns(ins).items():
        ap_ = c[2] if len(c) == 3 else 0
        kw[name] = pos.get(ap_, 0)
        pos[ap_] = kw[name] + c[1]
    return dataclasses.replace(ins, **kw)


def _pool(value: int, lo: int, hi: int, cfg: Config, rng) -> list[int]:
    ap = cfg.ap
    cands = {0, 1, 2, 3, value - 1, value + 1, ap.rows - 1, ap.rows, ap.rows + 1,
             usable_cols(ap, 0) - 1, usable_cols(ap, 0), cfg.map_ap.cols, 31, 32, 33, 34,
             cfg.tile.maps, cfg.tile.maps + 1, hi, lo, int(rng.integers(lo, hi + 1))}
    return sorted(v for v in cands if lo <= v <= hi and v != value)


def _mutants(ins: Instr, xrows, spec, cfg: Config, rng, depth: int):
    """Instances that differ from (ins, xrows) in `depth` fields, values from the pools."""
    names = [f for f in spec.fmt.fields if f != "op" and f in spec.operands + ("s",)]
    if ins.op == Opc.MOVW:
        names += list(CONTEXT)
    state = {**{f: getattr(ins, f) for f in names if f not in CONTEXT},
             **dict(zip(CONTEXT, xrows, strict=True))}
    if depth == 0:
        yield ins, xrows
        return
    combos = list(itertools.combinations(names, depth))
    for combo in combos:
        pools = [_pool(int(state[f]), *_field_range(spec, f, cfg), cfg, rng) for f in combo]
        product = list(itertools.product(*pools))
        if depth > 2:   # a sample: three fields at once are rarely needed
            product = [product[int(x)] for x in rng.integers(len(product), size=40)]
        for values in product:
            new = dict(state)
            new.update(zip(combo, values, strict=True))
            xr = tuple(new.pop(c) for c in CONTEXT) if ins.op == Opc.MOVW else (0, 0, 0)
            if "s" in new:
                new["s"] = bool(new["s"])
            mut = dataclasses.replace(ins, **new)
            yield mut, xr
            yield _packed(mut, spec), xr


def _words(ins: Instr, xrows) -> tuple[int, ...]:
    pre = (encode(Instr(op=Opc.XROWS, srow=xrows[0], drow=xrows[1], stride=xrows[2])),) \
        if ins.op == Opc.MOVW else ()
    return (*pre, encode(ins))


def rules_table(cfg: Config, seed: int, only=None) -> tuple[list[Row], list[tuple[str, str]]]:
    """The rows for `cfg` (`only`: these (opcode, check) keys), and the checks no word
    violates on it (e.g. the hw=False immediate range, "operands apart" of a one-operand
    opcode)."""
    rng = np.random.default_rng(seed)
    ap = cfg.ap
    rows: list[Row] = []
    missing: list[tuple[str, str]] = []
    for op in range(len(Opc), 32):    # every unknown opcode of the 5-bit field
        if only is None or ("*", UNKNOWN_OPCODE) in only:
            rows.append(Row(f"OP{op}", UNKNOWN_OPCODE, (op,), True, f"unknown opcode {op}"))
    for op, spec in OPCODES.items():
        if only is not None and not any(o == op.name for o, _c in only):
            continue
        base, xrows = _draw_legal(spec, op, cfg, rng)
        gaps = [b for b in range(64) if spec.fmt.gap_mask >> b & 1]
        bit = gaps[int(rng.integers(len(gaps)))]
        word = encode(base) | (1 << bit)
        if only is None or (op.name, RESERVED) in only:
            rows.append(Row(op.name, RESERVED, (*_words(base, xrows)[:-1], word),
                            failing_checks(decode(word), ap, cfg, xrows) == [RESERVED],
                            validate(decode(word), ap, cfg, xrows) or ""))
        for r in spec.rules:
            if only is not None and (op.name, r.name) not in only:
                continue
            found, first = None, None
            for depth in (0, 1, 2, 3):
                for ins, xr in _mutants(base, xrows, spec, cfg, rng, depth):
                    try:
                        words = _words(ins, xr)
                    except ValueError:
                        continue
                    fails = failing_checks(decode(words[-1]), ap, cfg, xr)
                    if fails == [r.name]:
                        found = (words, xr, True)
                        break
                    if first is None and fails[:1] == [r.name]:
                        first = (words, xr, False)
                if found:
                    break
            found = found or first
            if found is None:
                missing.append((op.name, r.name))
                continue
            words, xr, excl = found
            rows.append(Row(op.name, r.name, words, excl,
                            validate(decode(words[-1]), ap, cfg, xr) or ""))
    return rows, missing


@functools.cache
def table(seed: int) -> dict[str, tuple[list[Row], list[tuple[str, str]]]]:
    """Rows per configuration: every check on WIDE, then on the next configuration the
    checks no exclusive row covers yet. Returns {config name: (rows, uncovered)}."""
    todo = set(all_checks())
    out = {}
    for cfg in RULE_CONFIGS:
        rows, missing = rules_table(cfg, seed, only=None if cfg is WIDE else todo)
        out[cfg.name] = (rows, missing)
        todo -= {("*", r.check) if r.check == UNKNOWN_OPCODE else r.key
                 for r in rows if r.exclusive}
    return out


def legal_filler(cfg: Config, rng, max_width: int = 4) -> int:
    """A legal CAP instruction word (runs between the rows)."""
    return encode(random_instruction(cfg.ap, rng, max_width))


def program(cfg: Config, rows: list[Row], seed: int) -> list[int]:
    """Every row's words, each group between legal instructions."""
    rng = np.random.default_rng(seed)
    words = [legal_filler(cfg, rng)]
    for row in rows:
        words += [*row.words, legal_filler(cfg, rng)]
    return words


def initial(cfg: Config, rng) -> dict[int, list[int]]:
    out = {}
    for k in range(cfg.tile.maps + 1):
        a = cfg.ap_of(k)
        width = a.cols - RESERVED_COLS if k == 0 else a.cols
        out[k] = [int(v) for v in rng.integers(0, 1 << 62, size=a.rows, dtype=np.uint64)
                  & ((1 << width) - 1)] if width <= 62 else \
            [int.from_bytes(rng.bytes(9), "little") & ((1 << width) - 1) for _ in range(a.rows)]
    return out


def golden_flags(cfg: Config, words: list[int], init) -> tuple[list[int], Tile, list[int]]:
    """Golden tile: the errors counter after each word, the final tile, the cycles each
    word took."""
    t = Tile(cfg)
    for k, rws in init.items():
        for r, v in enumerate(rws):
            t.host_write(k, r, v, (1 << cfg.ap_of(k).cols) - 1)
    flags, spent = [], []
    for w in words:
        before = t.counters["cycles"]
        t.execute(w)
        flags.append(t.counters["errors"])
        spent.append(t.counters["cycles"] - before)
    return flags, t, spent
