"""One validation mechanism for every file the project reads: YAML and .npz.

Why our own (one 400-line module) and not a library: pydantic v2 reports `Input should be less
than or equal to 4096` with a loc tuple, so each error type would need translating into our
form (and it adds a compiled dependency); jschon (JSON Schema) says `The value may not be
less than 1` at a JSON pointer; neither knows numpy arrays (shapes of .npz entries).

A schema is a tree of nodes (Int, Num, Bool, OneOf, Name, Text, File, Array, ListOf, MapOf,
Record, Tagged); `validate(node, data, file=..., error=...)` returns the checked data with
defaults filled in, or raises `error` (a SchemaError subclass: ConfigError, NetworkError)
with one message form for every file kind:

    FILE: dotted.path: what was expected, got what
    cfg.yaml: ap.rows: must be in [1, 4096], got 0
    net.yaml: layers[2].kernel: expected an integer in [1, 15], got str 'x'
    weights.npz: conv2.weight: expected shape (17, 8, 3, 3) (layer conv2), got (16, 8, 3, 3)
    cfg.yaml: ap.colz: unknown field (known here: rows, cols, dims, counter_bits)
    cfg.yaml: ap.cols: missing field (bit columns per word)

Type errors say `got TYPE VALUE`, value errors `got VALUE`. Rules that span fields or files
(a plan naming a missing layer, a kernel larger than its input) raise `Invalid(path, msg)`
inside `reporting(...)`, which gives them the same form. A technology table, for example,
is a few lines:

    ENERGY = Record({"energy": Num(lo=0), "unit": OneOf("fJ", "pJ", "nJ"), "source": Text()})
    TECH = Record({"name": Name(), "components": MapOf(Name(), MapOf(Name(), ENERGY))})
    table = load(TECH, "configs/tech/cmos45.yaml", error=ConfigError, what="technology table")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REQUIRED = object()   # no default: the field must be given
OMIT = object()       # default that leaves an absent field out of the result


class SchemaError(ValueError):
    """A file is missing, unreadable or has an invalid field. str(): `FILE: path: reason`;
    `.file`, `.path` (the dotted field, or the document's kind for the whole file) and
    `.reason` hold the parts (None when not known)."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.file, self.path, self.reason = file, path, reason


class Invalid(Exception):
    """Raised by nodes and cross-field checks: `path` is a tuple of keys and list indices
    (relative to the document root), `message` the `what was expected, got what` part."""

    def __init__(self, path: tuple | str | int, message: str):
        super().__init__(message)
        self.path = path if isinstance(path, tuple) else (path,)
        self.message = message


def dotted(path: tuple) -> str:
    """('layers', 2, 'kernel') -> 'layers[2].kernel'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any) -> str:
    """A value as messages quote it after `got` (long strings shortened)."""
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def typed(value: Any) -> str:
    """`got` part of a type error: the type, and the value for scalars."""
    if value is None or isinstance(value, (dict, list, tuple, np.ndarray)):
        return type(value).__name__
    return f"{type(value).__name__} {show(value)}"


def _isint(v: Any) -> bool:   # bool is an int in Python; `rows: true` is not a row count
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


# -- nodes ----------------------------------------------------------------------------------
class Node:
    """A schema node. `default`: REQUIRED, OMIT, or the value an absent field takes;
    `doc`: a short description (in `missing field (...)` messages and docs); `null_ok`:
    an empty value (YAML `key:` or `key: null`) counts as absent."""
    type_name = "a value"

    def __init__(self, *, default: Any = REQUIRED, doc: str = "", null_ok: bool = False):
        self.default, self.doc, self.null_ok = default, doc, null_ok

    def check(self, value: Any, path: tuple, ctx: Context) -> Any:
        raise NotImplementedError


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f">= {lo}" if lo is not None else (f"<= {hi}" if hi is not None else "")


class Int(Node):
    def __init__(self, lo: int | None = None, hi: int | None = None, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi
        self.type_name = f"an integer {_range(lo, hi)}".rstrip()

    def check(self, value, path, ctx):
        if not _isint(value):
            raise Invalid(path, f"expected {self.type_name}, got {typed(value)}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise Invalid(path, f"must be {_range(self.lo, self.hi)}, got {value}")
        return int(value)


class Num(Node):
    """A real number (integers accepted, booleans not); returned as float."""

    def __init__(self, lo: float | None = None, hi: float | None = None, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi
        self.type_name = f"a number {_range(lo, hi)}".rstrip()

    def check(self, value, path, ctx):
        if not (_isint(value) or isinstance(value, (float, np.floating))) or value != value:
            raise Invalid(path, f"expected {self.type_name}, got {typed(value)}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise Invalid(path, f"must be {_range(self.lo, self.hi)}, got {value}")
        return float(value)


class Bool(Node):
    type_name = "true or false"

    def check(self, value, path, ctx):
        if not isinstance(value, bool):
            raise Invalid(path, f"expected true or false, got {typed(value)}")
        return value


class OneOf(Node):
    def __init__(self, *choices, **kw):
        super().__init__(**kw)
        self.choices = choices
        self.type_name = "one of " + ", ".join(repr(c) for c in choices)

    def check(self, value, path, ctx):
        # True == 1 in Python: a boolean only matches a boolean choice
        if not any(value == c and isinstance(value, bool) == isinstance(c, bool)
                   for c in self.choices if not isinstance(value, (dict, list))):
            raise Invalid(path, f"must be {self.type_name}, got {show(value)}")
        return value


class Text(Node):
    type_name = "a non-empty string"

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value:
            raise Invalid(path, f"expected a non-empty string, got {typed(value)}")
        return value


class Name(Node):
    """A name usable in file and module names: letters, digits, '_' or '-'."""
    type_name = "a non-empty name of letters, digits, '_' or '-'"

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value or not all(
                ch.isalnum() or ch in "_-" for ch in value):
            raise Invalid(path, f"expected {self.type_name}, got {show(value)}")
        return value


class File(Node):
    """A file name relative to the validated file's folder; returns the Path."""

    def __init__(self, suffix: str = "", **kw):
        super().__init__(**kw)
        self.suffix = suffix
        self.type_name = f"an existing {suffix} file" if suffix else "an existing file"

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value:
            raise Invalid(path, f"expected a file name, got {typed(value)}")
        p = ctx.base / value
        if not p.is_file():
            raise Invalid(path, f"expected {self.type_name}, got {show(value)} "
                                f"({p} not found)")
        return p


class Array(Node):
    """A numpy array (a .npz entry). `shape`: a tuple of sizes, None (any size) or names
    (the same name must have the same size everywhere in one validation); `kind`: 'number'
    (integers or floats), 'float' or 'int'."""
    _kinds = {"number": "iuf", "float": "f", "int": "iu"}

    def __init__(self, shape: tuple | None = None, kind: str = "number", **kw):
        super().__init__(**kw)
        self.shape, self.kind = shape, kind

    def check(self, value, path, ctx):
        if not isinstance(value, np.ndarray) or value.dtype.kind not in self._kinds[self.kind]:
            got = f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) \
                else typed(value)
            raise Invalid(path, f"expected an array of {self.kind}s, got {got}")
        if self.shape is None:
            return value
        names, sizes = [], []
        for n, dim in enumerate(self.shape):
            if isinstance(dim, str):     # named: bound by the first array that has it
                sizes.append(ctx.dims.setdefault(dim, value.shape[n]) if n < value.ndim
                             else ctx.dims.get(dim))
            else:
                sizes.append(dim)
            names.append("*" if dim is None else str(dim))
        if value.ndim != len(sizes) or any(
                w is not None and w != s for w, s in zip(sizes, value.shape, strict=True)):
            shape = "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"
            bound = [f"{d} = {ctx.dims[d]}" for d in dict.fromkeys(self.shape)
                     if isinstance(d, str) and d in ctx.dims]
            note = (f" with {', '.join(bound)}" if bound else "") + \
                (f" ({self.doc})" if self.doc else "")
            raise Invalid(path, f"expected shape {shape}{note}, got {tuple(value.shape)}")
        return value


class ListOf(Node):
    def __init__(self, item: Node, min_len: int = 0, **kw):
        super().__init__(**kw)
        self.item, self.min_len = item, min_len
        self.type_name = "a non-empty list" if min_len == 1 else (
            f"a list of at least {min_len} entries" if min_len else "a list")

    def check(self, value, path, ctx):
        if not isinstance(value, list) or len(value) < self.min_len:
            got = f"{len(value)} entries" if isinstance(value, list) else typed(value)
            raise Invalid(path, f"expected {self.type_name}, got {got}")
        return [self.item.check(v, path + (i,), ctx) for i, v in enumerate(value)]


class MapOf(Node):
    """A mapping with free keys (each checked by `key`) and values checked by `value`."""

    def __init__(self, key: Node, value: Node, min_len: int = 1, **kw):
        super().__init__(**kw)
        self.key, self.value, self.min_len = key, value, min_len
        self.type_name = "a mapping"

    def check(self, value, path, ctx):
        if not isinstance(value, dict) or len(value) < self.min_len:
            got = "an empty mapping" if isinstance(value, dict) else typed(value)
            raise Invalid(path, f"expected a mapping, got {got}")
        out = {}
        for k, v in value.items():
            try:
                self.key.check(k, path + (str(k),), ctx)
            except Invalid as exc:
                raise Invalid(exc.path, f"bad key: {exc.message}") from None
            out[k] = self.value.check(v, path + (str(k),), ctx)
        return out


class Record(Node):
    """A mapping with known keys, each validated by its node, in declaration order after
    the unknown keys are rejected (unless `extra`). An absent field takes its node's
    default; an absent Record takes its fields' defaults if all have one. `what` names
    the keys in messages (field, array, layer...). `check(result)`: a rule across the
    fields, raising Invalid with a path relative to this record."""
    type_name = "a mapping"

    def __init__(self, fields: Mapping[str, Node], *, what: str = "field", extra: bool = False,
                 check: Callable[[dict], None] | None = None, **kw):
        super().__init__(**kw)
        self.fields, self.what, self.extra, self.rule = fields, what, extra, check

    @property
    def has_default(self) -> bool:
        return self.default is not REQUIRED or all(
            f.default is not REQUIRED if not isinstance(f, Record) else f.has_default
            for f in self.fields.values())

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            raise Invalid(path, f"expected a mapping, got {typed(value)}")
        if not self.extra:
            for key in value:
                if key not in self.fields:
                    known = ", ".join(self.fields) or "none"
                    raise Invalid(path + (str(key),),
                                  f"unknown {self.what} (known here: {known})")
        out = dict(value) if self.extra else {}
        for key, node in self.fields.items():
            if key in value and not (value[key] is None and node.null_ok):
                out[key] = node.check(value[key], path + (key,), ctx)
            elif isinstance(node, Record) and node.default is REQUIRED:
                if not node.has_default:
                    doc = f" ({node.doc})" if node.doc else ""
                    raise Invalid(path + (key,), "missing section" if self.what == "field"
                                  else f"missing {self.what}{doc}")
                out[key] = node.check({}, path + (key,), ctx)
            elif node.default is OMIT:
                continue
            elif node.default is not REQUIRED:
                out[key] = node.default
            else:
                doc = f" ({node.doc})" if node.doc else ""
                raise Invalid(path + (key,), f"missing {self.what}{doc}")
        if self.rule is not None:
            try:
                self.rule(out)
            except Invalid as exc:
                raise Invalid(path + exc.path, exc.message) from None
        return out


class Tagged(Node):
    """A mapping whose `tag` field chooses its Record among `variants` (layer types)."""

    def __init__(self, tag: str, variants: dict[str, Record], **kw):
        super().__init__(**kw)
        self.tag, self.variants = tag, variants
        self.choice = OneOf(*variants)

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            raise Invalid(path, f"expected a mapping, got {typed(value)}")
        if self.tag not in value:
            raise Invalid(path + (self.tag,), f"missing field ({self.choice.type_name})")
        t = self.choice.check(value[self.tag], path + (self.tag,), ctx)
        return self.variants[t].check(value, path, ctx)


# -- validation and files -------------------------------------------------------------------
class Context:
    """What nodes may need beyond the value: the folder relative file names start from,
    and the sizes bound to named array dimensions."""

    def __init__(self, base: Path):
        self.base = base
        self.dims: dict[str, int] = {}


@contextlib.contextmanager
def reporting(file: str | Path | None, error: Callable[..., SchemaError],
              what: str = "document") -> Iterator[None]:
    """Turn an Invalid raised inside into `error` with the common form; an empty path is
    reported as `what` (e.g. `cfg.yaml: configuration: expected a mapping, got NoneType`)."""
    try:
        yield
    except Invalid as exc:
        where = dotted(exc.path) or what
        head = f"{file}: " if file is not None else ""
        raise error(f"{head}{where}: {exc.message}", file=None if file is None else str(file),
                    path=where, reason=exc.message) from None


def validate(node: Node, data: Any, *, file: str | Path | None = None,
             error: Callable[..., SchemaError] = SchemaError, what: str = "document",
             base: Path | None = None, dims: dict | None = None) -> Any:
    """`data` checked against `node` (defaults filled in), or `error` raised. `base`: the
    folder File nodes resolve against (default: the file's); `dims`: named array sizes
    already known (updated with the ones bound here)."""
    ctx = Context(base if base is not None else Path(file).parent if file else Path("."))
    if dims is not None:
        ctx.dims = dims
    with reporting(file, error, what):
        return node.check(data, (), ctx)


def read_yaml(path: str | Path, error: Callable[..., SchemaError] = SchemaError,
              what: str = "YAML") -> Any:
    """The parsed YAML of `path`; a missing or unparsable file raises `error`."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} file not found", file=str(p), reason="file not found")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{p}: not valid YAML: {exc}", file=str(p), reason="not valid YAML") from None


def read_npz(path: str | Path, error: Callable[..., SchemaError] = SchemaError,
             what: str = ".npz") -> dict[str, np.ndarray]:
    """The arrays of an .npz file as a dict; a missing or unreadable file raises `error`."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {what} file not found", file=str(p), reason="file not found")
    try:
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable archive
        raise error(f"{p}: not a readable .npz ({exc})", file=str(p),
                    reason="not a readable .npz") from None


def load(node: Node, path: str | Path, *, error: Callable[..., SchemaError] = SchemaError,
         what: str = "document", **kw) -> Any:
    """Read a YAML (or, by suffix, .npz) file and validate it against `node`."""
    p = Path(path)
    data = read_npz(p, error, what) if p.suffix == ".npz" else read_yaml(p, error, what)
    return validate(node, data, file=p, error=error, what=what, **kw)
