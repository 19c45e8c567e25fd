"""Bit layouts, declared once: how a word (an instruction, a packet header, a register, a
link frame's payload) is cut into named fields.

Every layout of the project is a `BitLayout` in golden/spec/ (isa.py: instruction formats;
regs.py: packet header, destination word, register map, register words; link.py: serial
frames). golden packs and unpacks words with it; the RTL gets Amaranth `data` layouts from
the same object (hdl/gen/layouts.py: `data_layout`), the scheduler and the host tools
encode and decode through it. golden stays free of Amaranth: this module is plain Python.

    >>> HDR = BitLayout("hdr", 16, {"kind": (0, 4), "n": (4, 8)}, gaps="reserved")
    >>> HDR.pack(kind=3, n=200)
    3203
    >>> HDR.unpack(3203)
    {'kind': 3, 'n': 200}
    >>> HDR.reserved_bits(1 << 15)
    32768

Bits no field covers ("gaps") are either `reserved` (a legal word has them zero: the
validator and the RTL check `reserved_bits(word) == 0`) or `ignored` (any value decodes
the same). Each layout says which, so decoders never disagree about a stray bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Field:
    """`width` bits starting at bit `lsb`; `signed` fields hold two's complement."""

    lsb: int
    width: int
    signed: bool = False

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    @property
    def lo(self) -> int:
        """Smallest value the field holds."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest value the field holds."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


FieldSpec = Field | tuple[int, int] | tuple[int, int, bool]


class BitLayout:
    """A `size`-bit word cut into named, non-overlapping fields.

    Parameters
    ----------
    name : str
        What the word is, for messages ("ROWS instruction", "packet header").
    size : int
        Bits in the word.
    fields : dict
        name -> Field, or (lsb, width) / (lsb, width, signed). Order is the declaration
        order (docs tables list fields in it).
    gaps : "reserved" or "ignored"
        What the bits no field covers mean: must be zero, or don't care.
    """

    def __init__(self, name: str, size: int, fields: dict[str, FieldSpec],
                 gaps: Literal["reserved", "ignored"] = "reserved"):
        if gaps not in ("reserved", "ignored"):
            raise ValueError(f"{name}: gaps must be 'reserved' or 'ignored', got {gaps!r}")
        self.name, self.size, self.gaps = name, size, gaps
        self.fields: dict[str, Field] = {
            k: v if isinstance(v, Field) else Field(*v) for k, v in fields.items()}
        used = 0
        for k, f in self.fields.items():
            if f.width < 1 or f.lsb < 0 or f.lsb + f.width > size:
                raise ValueError(f"{name}.{k}: bits [{f.lsb}, {f.lsb + f.width}) outside "
                                 f"the {size}-bit word")
            if used & f.mask:
                raise ValueError(f"{name}.{k}: overlaps another field")
            used |= f.mask
        self.used_mask = used
        self.gap_mask = ((1 << size) - 1) & ~used

    def __repr__(self) -> str:
        return f"BitLayout({self.name!r}, {self.size}, {list(self.fields)})"

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    # -- words ----------------------------------------------------------------------------

    def pack(self, **values: int) -> int:
        """The word with the given fields set (others zero). A value that does not fit
        its field raises ValueError naming the layout, the field and its range."""
        word = 0
        for k, v in values.items():
            f = self.fields.get(k)
            if f is None:
                raise ValueError(f"{self.name} has no field {k!r} "
                                 f"(it has {', '.join(self.fields)})")
            v = int(v)
            if not f.lo <= v <= f.hi:
                kind = "signed " if f.signed else ""
                raise ValueError(f"{self.name}: {k}={v} does not fit its {f.width}-bit "
                                 f"{kind}field [{f.lo}, {f.hi}]")
            word |= (v & ((1 << f.width) - 1)) << f.lsb
        return word

    def get(self, word: int, name: str) -> int:
        """One field of `word` (sign-extended for signed fields)."""
        f = self.fields[name]
        v = (int(word) >> f.lsb) & ((1 << f.width) - 1)
        if f.signed and v >> (f.width - 1):
            v -= 1 << f.width
        return v

    def unpack(self, word: int) -> dict[str, int]:
        """Every field of `word`, by name, in declaration order."""
        return {k: self.get(word, k) for k in self.fields}

    def reserved_bits(self, word: int) -> int:
        """The gap bits of `word` that a legal word has zero (0 for an `ignored` layout)."""
        return int(word) & self.gap_mask if self.gaps == "reserved" else 0

    def table(self) -> list[tuple[str, int, int, bool]]:
        """(name, msb, lsb, signed) per field, most significant first: a docs table."""
        rows = [(k, f.lsb + f.width - 1, f.lsb, f.signed) for k, f in self.fields.items()]
        return sorted(rows, key=lambda r: -r[2])


@dataclass(frozen=True)
class Register:
    """One AXI4-Lite register: byte address, what it holds, and its bit layout (None: one
    32-bit value)."""

    name: str
    addr: int
    doc: str
    layout: BitLayout | None = None
    writable: bool = False
