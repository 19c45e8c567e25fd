"""Microcode as data: the per-bit LUT pass sequences of every macro-operation.

A *LUT* is what one bit position of a bit-serial operation does: a short list of
*groups*, each a few compares (the first replaces the tag, the rest accumulate into it)
followed by one write to the tagged rows. Compares and writes name *roles* (carry `c`,
operand bit `x`, destination bit `y`, condition `k`, spare `s`); the sequencer binds
each role to a real column for each bit position. The golden controller
(golden/model/controller.py) and the Amaranth sequencer both take their passes from `LUTS`.

The LUTs are not written by hand: :func:`search` finds the cheapest valid sequence for a
truth table by a uniform-cost search over pass orders, groupings that share one write by
accumulating compares in the tag, and don't-care bits in the compares (each compare is a
cube over the roles). `TEXTBOOK` keeps the classic one-compare-one-write-per-changed-
pattern sequences for comparison (4 passes, 8 cycles per bit for addition).
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

Bits = tuple[tuple[str, int], ...]  # ((role, bit), ...): a partial assignment
State = tuple[int, ...]             # one row's bits over the roles
Cube = tuple[int | None, ...]       # a compare over the roles: 0, 1 or None (not compared)


@dataclass(frozen=True)
class Group:
    compares: tuple[Bits, ...]   # first CMP, then CMPA; each compares only the roles named
    write: Bits                  # written into every tagged row

    @property
    def cycles(self) -> int:
        return len(self.compares) + 1


@dataclass(frozen=True)
class LUT:
    name: str
    roles: tuple[str, ...]
    writable: tuple[str, ...]
    groups: tuple[Group, ...]

    @property
    def cycles(self) -> int:
        return sum(g.cycles for g in self.groups)

    def apply(self, state: dict[str, int]) -> dict[str, int]:
        """What the passes do to one row whose role bits are `state`."""
        st = dict(state)
        for g in self.groups:
            if any(all(st[r] == v for r, v in cmp) for cmp in g.compares):
                st.update(dict(g.write))
        return st

    def with_condition(self, role: str = "k") -> LUT:
        """The same passes, touching only rows whose `role` bit is 1 (costs nothing)."""
        groups = tuple(Group(tuple(((role, 1),) + c for c in g.compares), g.write)
                       for g in self.groups)
        return LUT(self.name + "_if", self.roles + (role,), self.writable, groups)

    def renamed(self, name: str, mapping: dict[str, str]) -> LUT:
        """The same passes with roles renamed (e.g. swap operand and destination)."""
        def ren(bits: Bits) -> Bits:
            return tuple((mapping.get(r, r), v) for r, v in bits)
        groups = tuple(Group(tuple(ren(c) for c in g.compares), ren(g.write))
                       for g in self.groups)
        return LUT(name, tuple(mapping.get(r, r) for r in self.roles),
                   tuple(mapping.get(r, r) for r in self.writable), groups)


# -- truth tables -----------------------------------------------------------------------

def t_add(c, x, y):
    s = c + x + y
    return {"c": s >> 1, "y": s & 1}


def t_sub(c, x, y):  # y - x - c (c = borrow)
    d = y - x - c
    return {"c": int(d < 0), "y": d & 1}


def t_inc(c, y):  # y + c: the add of a known 0 bit
    return {"c": c & y, "y": c ^ y}


def t_inc1(c, y):  # y + 1 + c: the add of a known 1 bit
    s = c + y + 1
    return {"c": s >> 1, "y": s & 1}


def t_dec(c, y):  # y - c: the subtract of a known 0 bit
    d = y - c
    return {"c": int(d < 0), "y": d & 1}


def t_dec1(c, y):  # y - 1 - c
    d = y - 1 - c
    return {"c": int(d < 0), "y": d & 1}


def t_borrow(c, x, y):  # only the borrow of y - x - c: c' = 1 iff y < x + c
    return {"c": int(y - x - c < 0)}


def t_borrow_top(c, x, y):  # the same at the sign bit of a signed compare (MSBs flipped)
    return {"c": int((1 - y) - (1 - x) - c < 0)}


def t_cmov(c, x, y):  # y = x where c
    return {"y": x if c else y}


# -- search -----------------------------------------------------------------------------

def _cubes(k: int):
    """Every compare over k roles: each role 0, 1 or not compared."""
    return list(itertools.product((0, 1, None), repeat=k))


def _cube_states(cube, k):
    return frozenset(s for s in itertools.product((0, 1), repeat=k)
                     if all(cv is None or cv == sv for cv, sv in zip(cube, s, strict=True)))


def search(name: str, roles: tuple[str, ...], writable: tuple[str, ...],
           table: Callable[..., dict], max_cycles: int = 12,
           spare: str | None = None, monotone: bool = True) -> LUT:
    """Cheapest group sequence that maps every row state to table(state).

    Rows are bit vectors over `roles`; read-only roles must end unchanged, writable ones
    as `table` says. With `spare`, one more writable scratch role (0 before and after)
    may hold intermediate values. The search is uniform-cost over configurations (the
    current state of each initial row pattern); a move is a group: the set of present
    states it tags (covered by as few compare cubes as possible, cubes may include absent
    states but no present state outside the set) and one write. Writes to non-spare roles
    may only set a row's final values (rows move monotonically towards their result),
    which keeps the search small; two rows with different results may never merge.
    """
    all_roles = roles + ((spare,) if spare else ())
    k = len(all_roles)
    idx = {r: i for i, r in enumerate(all_roles)}
    inits = [s + ((0,) if spare else ()) for s in itertools.product((0, 1), repeat=len(roles))]

    def final(s):
        out = list(s)
        for r, v in table(*s[: len(roles)]).items():
            out[idx[r]] = v
        return tuple(out)

    targets = tuple(final(s) for s in inits)
    cube_list = [(c, _cube_states(c, k)) for c in _cubes(k)]
    wr_roles = writable + ((spare,) if spare else ())
    writes = []
    for n_w in range(1, len(wr_roles) + 1):
        for sub in itertools.combinations(wr_roles, n_w):
            for vals in itertools.product((0, 1), repeat=n_w):
                writes.append(tuple(zip(sub, vals, strict=True)))

    @cache
    def cover(sel: frozenset, blocked: frozenset):
        """Fewest cubes covering `sel` and no blocked state (absent states are free)."""
        allowed = [(c, st) for c, st in cube_list if not (st & blocked) and st & sel]
        for n_c in range(1, 5):
            for combo in itertools.combinations(allowed, n_c):
                if sel <= frozenset().union(*(st for _, st in combo)):
                    return tuple(c for c, _ in combo)
        return None

    def apply(state, write):
        out = list(state)
        for r, v in write:
            out[idx[r]] = v
        return tuple(out)

    target_of = {}
    start = tuple(inits)
    # (cost, tie-break, configuration, path of (cubes, write) moves)
    frontier: list[tuple[int, int, tuple[State, ...],
                         tuple[tuple[tuple[Cube, ...], Bits], ...]]] = [(0, 0, start, ())]
    best = {start: 0}
    counter = itertools.count()
    while frontier:
        cost, _, conf, path = heapq.heappop(frontier)
        if conf == targets:
            groups = tuple(Group(tuple(tuple((all_roles[i], v) for i, v in enumerate(c)
                                             if v is not None) for c in cubes), w)
                           for cubes, w in path)
            return LUT(name, all_roles, wr_roles, groups)
        if cost > best.get(conf, 1 << 30):
            continue
        target_of = dict(zip(conf, targets, strict=True))  # merged rows share one target
        for w in writes:
            movable, blocked = [], set()
            for cur, tgt in target_of.items():
                new = apply(cur, w)
                if new == cur:
                    continue  # unaffected: compares may cover it for free
                if not monotone or all(r == spare or new[idx[r]] == tgt[idx[r]] for r, _ in w):
                    movable.append(cur)
                else:
                    blocked.add(cur)
            for n_sel in range(1, len(movable) + 1):
                for chosen in itertools.combinations(sorted(movable), n_sel):
                    sel = frozenset(chosen)
                    cubes = cover(sel, frozenset(blocked | (set(movable) - sel)))
                    if cubes is None:
                        continue
                    new_conf = tuple(apply(c, w) if c in sel else c for c in conf)
                    seen: dict[State, State] = {}  # rows with different results stay apart
                    if any(seen.setdefault(c, t) != t
                           for c, t in zip(new_conf, targets, strict=True)):
                        continue
                    ncost = cost + len(cubes) + 1
                    if ncost > max_cycles or ncost >= best.get(new_conf, 1 << 30):
                        continue
                    best[new_conf] = ncost
                    heapq.heappush(frontier, (ncost, next(counter), new_conf,
                                              path + ((cubes, w),)))
    raise ValueError(f"no pass sequence for {name} within {max_cycles} cycles")


def textbook(name: str, roles: tuple[str, ...], writable: tuple[str, ...],
             table: Callable[..., dict]) -> LUT:
    """One compare (all roles) and one write per input pattern that changes, ordered so
    that no rewritten row matches a later pass (the classic sequence)."""
    k = len(roles)
    changes = []
    for s in itertools.product((0, 1), repeat=k):
        res = table(*s)
        cur = dict(zip(roles, s, strict=True))
        if any(cur[r] != v for r, v in res.items()):
            changes.append((s, tuple(sorted(res.items()))))
    # order: a pattern must come before any pattern its own result would equal
    ordered, pending = [], list(changes)
    while pending:
        for cand in pending:
            after = {**dict(zip(roles, cand[0], strict=True)), **dict(cand[1])}
            result_state = tuple(after[r] for r in roles)
            if not any(p[0] == result_state for p in pending if p is not cand):
                ordered.append(cand)
                pending.remove(cand)
                break
        else:
            raise ValueError(f"{name}: no safe textbook order")
    groups = tuple(Group((tuple(zip(roles, s, strict=True)),), w) for s, w in ordered)
    return LUT(name + "_textbook", roles, writable, groups)


# -- the table ----------------------------------------------------------------------------

_SPECS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[..., dict]]] = {
    # name: (roles, writable, truth table)
    "add": (("c", "x", "y"), ("c", "y"), t_add),
    "sub": (("c", "x", "y"), ("c", "y"), t_sub),
    "inc": (("c", "y"), ("c", "y"), t_inc),
    "inc1": (("c", "y"), ("c", "y"), t_inc1),
    "dec": (("c", "y"), ("c", "y"), t_dec),
    "dec1": (("c", "y"), ("c", "y"), t_dec1),
    "borrow": (("c", "x", "y"), ("c",), t_borrow),
    "borrow_top": (("c", "x", "y"), ("c",), t_borrow_top),
    "cmov": (("c", "x", "y"), ("y",), t_cmov),
}


def build_luts(kind: str = "search") -> dict[str, LUT]:
    make = search if kind == "search" else textbook
    luts = {name: make(name, *spec) for name, spec in _SPECS.items()}
    # conditioned variants (multiply: add/subtract only where the multiplier bit is 1)
    luts["add_if"] = luts["add"].with_condition("k")
    luts["sub_if"] = luts["sub"].with_condition("k")
    return luts


TABLE_FILE = Path(__file__).with_name("luts.json")


def _fmt(bits: Bits) -> str:
    return " ".join(f"{r}={v}" for r, v in bits)


def _parse(text: str) -> Bits:
    return tuple((r, int(v)) for r, v in (t.split("=") for t in text.split()))


def luts_to_json(luts: dict[str, LUT]) -> str:
    """Compact, readable form: each group is its compares and its write."""
    data = {name: {"roles": " ".join(lut.roles), "writable": " ".join(lut.writable),
                   "cycles": lut.cycles,
                   "groups": [{"cmp": [_fmt(c) for c in g.compares], "wr": _fmt(g.write)}
                              for g in lut.groups]}
            for name, lut in luts.items()}
    return json.dumps(data, indent=1) + "\n"


def luts_from_json(text: str) -> dict[str, LUT]:
    return {name: LUT(name, tuple(d["roles"].split()), tuple(d["writable"].split()),
                      tuple(Group(tuple(_parse(c) for c in g["cmp"]), _parse(g["wr"]))
                            for g in d["groups"]))
            for name, d in json.loads(text).items()}


# The searched table is stored (the search takes seconds); tests/test_microcode.py
# re-runs the search and checks the stored table is what it finds.
# Regenerate with: python -m bfimna.golden.spec.microcode
LUTS = luts_from_json(TABLE_FILE.read_text()) if TABLE_FILE.exists() else {}
TEXTBOOK = build_luts("textbook")
SPECS = _SPECS

if __name__ == "__main__":
    TABLE_FILE.write_text(luts_to_json(build_luts("search")))
    print(f"wrote {TABLE_FILE}")
