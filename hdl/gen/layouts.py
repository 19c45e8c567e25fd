"""Amaranth views of the layouts declared in golden/spec (golden/spec/layout.py: BitLayout).

The RTL never slices a word by hand: it wraps it in a `data.View` of the same layout
golden packs and checks it with, so a field moved in golden/spec moves in the Verilog.

    hdr = view(HEADER, word)                   # hdr.type, hdr.tile, hdr.wm1 ...
    bad = reserved(HEADER, word)               # gap bits a legal word has zero
    PacketType = hdl_enum(PT, HEADER["type"].width)   # golden's IntEnum, shaped
    hdr = view(HEADER, word, type=PacketType)  # hdr.type compares with PacketType.SYNC
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from enum import Enum as PyEnum

from amaranth import Const, Shape, Value, signed, unsigned
from amaranth.lib import data, enum

from bfimna.golden.spec.layout import BitLayout

_CACHE: dict[tuple, data.FlexibleLayout] = {}
_ENUMS: dict[tuple, type] = {}


def hdl_enum(members: type[PyEnum] | Mapping[str, int], width: int,
             name: str | None = None) -> type:
    """An Amaranth `lib.enum.Enum` of `width` bits with the members of golden's plain
    Python enum (same names, same values) or of a {name: value} table: signals of this
    shape show member names in waveforms, and comparisons with another enum's members
    are refused."""
    if isinstance(members, type):
        table = {mb.name: int(mb.value) for mb in members}
        name = name or members.__name__
    else:
        table = {k: int(v) for k, v in members.items()}
        if not name:
            raise TypeError("hdl_enum: a {name: value} table needs a name")
    key = (name, width, tuple(table.items()))
    cls = _ENUMS.get(key)
    if cls is None:
        def body(ns):
            for k, v in table.items():
                ns[k] = v
        cls = types.new_class(name, (enum.Enum,), {"shape": width}, body)
        if isinstance(members, type):
            cls.__doc__ = members.__doc__
        _ENUMS[key] = cls
    return cls


def data_layout(bl: BitLayout, **shapes) -> data.FlexibleLayout:
    """The Amaranth layout of `bl`: every field at its declared offset and width (signed
    fields as signed shapes, `shapes[name]` where given, e.g. an enum of the field's
    width), the whole word `bl.size` bits."""
    key = (id(bl), tuple(sorted(shapes.items(), key=lambda kv: kv[0])))
    lay = _CACHE.get(key)
    if lay is None:
        for k, shape in shapes.items():
            want = bl[k].width
            if Shape.cast(shape).width != want:
                raise ValueError(f"{bl.name}.{k}: shape {shape!r} is not {want} bits wide")
        lay = data.FlexibleLayout(bl.size, {
            k: data.Field(shapes.get(k) or (signed(f.width) if f.signed else unsigned(f.width)),
                          f.lsb)
            for k, f in bl.fields.items()})
        _CACHE[key] = lay
    return lay


def view(bl: BitLayout, word: Value, **shapes) -> data.View:
    """`word` (a `bl.size`-bit value) seen through `bl`'s fields (`shapes`: as
    data_layout)."""
    return data.View(data_layout(bl, **shapes), word)


def reserved(bl: BitLayout, word: Value) -> Value:
    """1 when `word` has a reserved gap bit set (always 0 for an `ignored` layout)."""
    if bl.gaps != "reserved" or bl.gap_mask == 0:
        return Const(0, 1)
    return (word & Const(bl.gap_mask, bl.size)).any()


def const(bl: BitLayout, **values: int) -> Const:
    """A constant word, packed by golden (so its range checks apply)."""
    return Const(bl.pack(**values), bl.size)
