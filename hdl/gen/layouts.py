"""Amaranth views of the layouts declared in golden/spec (golden/spec/layout.py: BitLayout).

The RTL never slices a word by hand: it wraps it in a `data.View` of the same layout
golden packs and checks it with, so a field moved in golden/spec moves in the Verilog.

    hdr = View(data_layout(HEADER), word)      # hdr.type, hdr.tile, hdr.wm1 ...
    bad = reserved(HEADER, word)               # gap bits a legal word has zero
"""

from __future__ import annotations

from amaranth import Const, Value, signed, unsigned
from amaranth.lib import data

from bfimna.golden.spec.layout import BitLayout

_CACHE: dict[int, data.FlexibleLayout] = {}


def data_layout(bl: BitLayout) -> data.FlexibleLayout:
    """The Amaranth layout of `bl`: every field at its declared offset and width (signed
    fields as signed shapes), the whole word `bl.size` bits."""
    lay = _CACHE.get(id(bl))
    if lay is None:
        lay = data.FlexibleLayout(bl.size, {
            k: data.Field(signed(f.width) if f.signed else unsigned(f.width), f.lsb)
            for k, f in bl.fields.items()})
        _CACHE[id(bl)] = lay
    return lay


def view(bl: BitLayout, word: Value) -> data.View:
    """`word` (a `bl.size`-bit value) seen through `bl`'s fields."""
    return data.View(data_layout(bl), word)


def reserved(bl: BitLayout, word: Value) -> Value:
    """1 when `word` has a reserved gap bit set (always 0 for an `ignored` layout)."""
    if bl.gaps != "reserved" or bl.gap_mask == 0:
        return Const(0, 1)
    return (word & Const(bl.gap_mask, bl.size)).any()


def const(bl: BitLayout, **values: int) -> Const:
    """A constant word, packed by golden (so its range checks apply)."""
    return Const(bl.pack(**values), bl.size)
