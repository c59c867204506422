"""The value codec's engine: the type-code tables, the read/write entry points and the
Decoder/Encoder walkers. It knows no type itself: ``protocol.binary.codec`` installs every
codec module's table here, in one place, and is the module to import the codec from.

Readers are looked up in 256-slot tables indexed by the (unsigned) type-code byte; writers
in dicts keyed by type code; automatic Python -> Ignite mapping in an ordered list of
(python type, type code or chooser). Each codec module (primitives, standard, arrays,
containers, complex) declares its codecs as data (``LEAF``, ``NESTED``, ``PYTHON_TYPES``)
without side effects; ``install`` puts them in the tables, the way asyncpg's codec registry
is filled, without touching ``read_value``/``write_value``.

Two kinds of codec, so the common case stays one function call:

- a *leaf* codec handles a value that holds no other typed value (numbers, strings, UUIDs,
  primitive arrays, String[] ...): ``reader(buf, pos)`` / ``writer(buf, value)``;
- a *nested* codec handles values that contain arbitrary values (Object[], Collection,
  Map, complex objects, handles, wrapped objects). It gets the walker of the current call
  (``Decoder`` / ``Encoder``), which carries the ``CodecContext`` (binary-type registry,
  footer choice), the nesting depth guard and the handle bookkeeping.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._checks import describe
from ..errors import LocalProtocolError, RemoteProtocolError
from ..limits import MAX_NESTING
from .typecodes import TypeCode
from .values import Typed

if TYPE_CHECKING:
    from .registry import CodecContext, Registry

Buffer = bytes | bytearray | memoryview

# A leaf reader gets the buffer and the offset just *after* the type code, and returns the
# value and the offset after its payload. It may let struct.error / UnicodeDecodeError /
# IndexError escape (read_value translates them) and must check variable lengths itself,
# because slicing past the end of a buffer does not raise.
Reader = Callable[[Buffer, int], tuple[object, int]]
NestedReader = Callable[[Buffer, int, "Decoder"], tuple[object, int]]
# A writer appends type code + payload. write_value removes whatever a failed write
# appended, and turns struct.error / OverflowError / TypeError / ValueError /
# UnicodeEncodeError / AttributeError into LocalProtocolError.
Writer = Callable[[bytearray, object], None]
NestedWriter = Callable[[bytearray, object, "Encoder"], None]
# Picks the type code of a value whose Python type alone does not decide (lists, enums).
Chooser = Callable[[object], int]
# What a codec module declares: its leaf codecs (code, reader, writer), its nested ones (a
# side may be None: HANDLE is only read) and its automatic Python -> Ignite mapping.
LeafCodecs = tuple[tuple[int, Reader, Writer], ...]
NestedCodecs = tuple[tuple[int, NestedReader | None, NestedWriter | None], ...]
PythonTypes = tuple[tuple[type, "int | Chooser"], ...]

# Nesting levels of containers/objects (CodecContext.max_depth's default); guards the Python
# stack. One limit for every codec: see protocol.limits.
DEFAULT_MAX_DEPTH = MAX_NESTING

_READERS: list[Reader | None] = [None] * 256
_NESTED_READERS: list[NestedReader | None] = [None] * 256
_WRITERS: dict[int, Writer] = {}
_NESTED_WRITERS: dict[int, NestedWriter] = {}
_AUTO_ORDER: list[tuple[type, int | Chooser]] = []
_AUTO_EXACT: dict[type, int | Chooser] = {}

_NULL = TypeCode.NULL.value
_READ_ERRORS = (struct.error, UnicodeDecodeError, IndexError)
_WRITE_ERRORS = (
    struct.error, OverflowError, UnicodeEncodeError, TypeError, ValueError, AttributeError,
)


def register_reader(code: int, reader: Reader | NestedReader, *, nested: bool = False) -> None:
    """Install the decoder for one type code (replacing any previous one).

    ``nested=True`` for a reader that takes the Decoder as a third argument.
    """
    slot = code & 0xFF
    _READERS[slot] = None if nested else reader  # type: ignore[assignment]
    _NESTED_READERS[slot] = reader if nested else None  # type: ignore[assignment]


def register_writer(code: int, writer: Writer | NestedWriter, *, nested: bool = False) -> None:
    """Install the encoder used when a value is written with this type code.

    ``nested=True`` for a writer that takes the Encoder as a third argument.
    """
    code = int(code)
    _WRITERS.pop(code, None)
    _NESTED_WRITERS.pop(code, None)
    if nested:
        _NESTED_WRITERS[code] = writer  # type: ignore[assignment]
    else:
        _WRITERS[code] = writer  # type: ignore[assignment]


def register_python_type(pytype: type, code: int | Chooser) -> None:
    """Map a Python type to a type code for automatic encoding; earlier entries win.

    ``code`` may be a function of the value returning the type code (e.g. for lists,
    whose array type depends on the elements).
    """
    entry = code if callable(code) else int(code)
    _AUTO_ORDER.append((pytype, entry))
    _AUTO_EXACT.setdefault(pytype, entry)


def install(leaf: LeafCodecs, nested: NestedCodecs, python_types: PythonTypes) -> None:
    """Put one codec module's declared codecs and Python types in the tables, in order."""
    for code, reader, writer in leaf:
        register_reader(code, reader)
        register_writer(code, writer)
    for code, nested_reader, nested_writer in nested:
        if nested_reader is not None:
            register_reader(code, nested_reader, nested=True)
        if nested_writer is not None:
            register_writer(code, nested_writer, nested=True)
    for pytype, code_or_chooser in python_types:
        register_python_type(pytype, code_or_chooser)


# -- public entry points ---------------------------------------------------------------


def read_value(buf: Buffer, pos: int, *, ctx: CodecContext | None = None) -> tuple[object, int]:
    """Decode the typed value at ``buf[pos]``; return it and the offset just after it.

    ``ctx`` supplies the binary-type registry that complex objects need (without it a
    complex object raises UnknownSchema). Raises RemoteProtocolError on truncated or
    invalid data or an unknown type code, UnknownSchema (a RemoteProtocolError) when
    metadata must be fetched first.
    """
    try:
        code = buf[pos]
    except IndexError:
        raise RemoteProtocolError(f"truncated value: no type code at offset {pos}") from None
    try:
        reader = _READERS[code]
        if reader is not None:  # a leaf: no Decoder needed
            return reader(buf, pos + 1)
        return Decoder(ctx, pos).read(buf, pos)
    except _READ_ERRORS as exc:
        raise RemoteProtocolError(f"invalid value of type {code} at offset {pos}: {exc}") from exc


def decode_value(data: Buffer, *, ctx: CodecContext | None = None) -> object:
    """Decode exactly one typed value that must fill ``data`` completely."""
    value, end = read_value(data, 0, ctx=ctx)
    if end != len(data):
        raise RemoteProtocolError(f"{len(data) - end} trailing bytes after the value")
    return value


def write_value(
    buf: bytearray, value: object, hint: int | None = None, *, ctx: CodecContext | None = None
) -> None:
    """Append ``value`` as a typed value; ``hint`` (a TypeCode) picks the Ignite type.

    None is always written as NULL; a ``Typed`` value carries its own type code. Without
    either, the Python type decides (see ``infer_type_code``). ``ctx`` is needed for
    complex objects (registry, footer form, schemas to register). Raises
    LocalProtocolError for values that do not fit the chosen type; on any error the
    buffer is left as it was.
    """
    start = len(buf)
    code = hint
    try:
        code, value = _resolve(value, hint)
        if not _write_leaf(buf, code, value):
            _nested_writer(code)(buf, value, Encoder(ctx))  # the Encoder only when needed
    except _WRITE_ERRORS as exc:
        del buf[start:]
        name = _code_name(code)
        raise LocalProtocolError(f"cannot encode {_short(value)} as {name}: {exc}") from exc
    except RecursionError as exc:  # a structure too deep for the Python stack
        del buf[start:]
        raise LocalProtocolError(f"cannot encode {_short(value)}: nested too deeply") from exc
    except BaseException:
        del buf[start:]
        raise


def _resolve(value: object, hint: int | None) -> tuple[int, object]:
    """The type code to write ``value`` as, and the value itself: None (also inside a
    ``Typed``) is NULL whatever the hint; a ``Typed`` carries its own code; otherwise the hint,
    or the Python type (``infer_type_code``)."""
    if type(value) is Typed:
        hint, value = value.type_code, value.value
    if value is None:
        return _NULL, None
    return (infer_type_code(value) if hint is None else hint), value


def _write_leaf(buf: bytearray, code: int, value: object) -> bool:
    """Append NULL or a value of a leaf type; False when ``code`` needs a nested writer."""
    if value is None:
        buf.append(_NULL)
        return True
    writer = _WRITERS.get(code)
    if writer is None:
        return False
    writer(buf, value)
    return True


def _nested_writer(code: int) -> NestedWriter:
    nested = _NESTED_WRITERS.get(code)
    if nested is None:
        raise LocalProtocolError(f"no encoder for type code {code!r}")
    return nested


def encode_value(
    value: object, hint: int | None = None, *, ctx: CodecContext | None = None
) -> bytes:
    """Return ``value`` encoded as one typed value (see write_value)."""
    buf = bytearray()
    write_value(buf, value, hint, ctx=ctx)
    return bytes(buf)


def infer_type_code(value: object) -> int:
    """The type code the automatic mapping picks for ``value`` (LocalProtocolError if none).

    bool -> BOOL, int -> LONG, float -> DOUBLE, str -> STRING, bytes -> BYTE_ARRAY, plus
    whatever the other codec modules register (UUID, Decimal, dates, lists, value classes).
    """
    code = _AUTO_EXACT.get(type(value))
    if code is None:
        for pytype, candidate in _AUTO_ORDER:  # subclasses (IntEnum, str subclasses...)
            if isinstance(value, pytype):
                code = candidate
                break
        else:
            raise LocalProtocolError(f"no automatic Ignite type for {type(value).__name__}")
    return code if isinstance(code, int) else code(value)


def writable_codes() -> frozenset[int]:
    """The type codes a value can be written as (the installed writers)."""
    return frozenset(_WRITERS) | frozenset(_NESTED_WRITERS)


def _code_name(code: object) -> str:
    if type(code) is not int and not isinstance(code, TypeCode):
        return f"type code {describe(code)}"
    try:
        return TypeCode(code).name
    except ValueError:
        return f"type code {code}"


def _short(value: object) -> str:
    return describe(value)  # never repr: the value may be nested deep or huge


def _unsupported(code: int, pos: int) -> RemoteProtocolError:
    signed = code - 256 if code > 127 else code
    return RemoteProtocolError(f"unsupported type code {signed} at offset {pos}")


# -- the walkers ---------------------------------------------------------------------------


class Decoder:
    """The state of one ``read_value`` call, handed to nested readers.

    Carries the CodecContext, the depth guard, and the handle bookkeeping: where the
    outermost value starts (``base``: handles may not point before it), the values
    already resolved through handles (by position) and the ones being resolved (a
    handle back into one of them is a cycle).
    """

    __slots__ = ("_resolved", "_resolving", "base", "ctx", "depth", "max_depth", "registry")

    def __init__(self, ctx: CodecContext | None, base: int) -> None:
        self.ctx = ctx
        self.registry: Registry | None = None if ctx is None else ctx.registry
        self.max_depth = DEFAULT_MAX_DEPTH if ctx is None else ctx.max_depth
        self.depth = 0
        self.base = base
        self._resolved: dict[int, object] | None = None
        self._resolving: set[int] | None = None

    def read(self, buf: Buffer, pos: int) -> tuple[object, int]:
        """Decode the typed value at ``buf[pos]`` inside the current value."""
        code = buf[pos]
        reader = _READERS[code]
        if reader is not None:
            return reader(buf, pos + 1)
        nested = _NESTED_READERS[code]
        if nested is None:
            raise _unsupported(code, pos)
        return nested(buf, pos + 1, self)

    def enter(self) -> None:
        """Call on entering a container; pair with ``self.depth -= 1`` on the way out."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise RemoteProtocolError(f"values nested deeper than {self.max_depth} levels")

    def resolve_handle(self, buf: Buffer, handle_pos: int, offset: int) -> object:
        """The value a HANDLE at ``handle_pos`` refers to (``offset`` bytes back)."""
        target = handle_pos - offset
        if offset <= 0 or target < self.base:
            raise RemoteProtocolError(
                f"handle at offset {handle_pos} points to {target}, outside the value "
                f"starting at {self.base}"
            )
        resolved = self._resolved
        if resolved is None:
            resolved = self._resolved = {}
            self._resolving = set()
        elif target in resolved:
            return resolved[target]
        resolving = self._resolving
        assert resolving is not None
        if target in resolving:
            raise RemoteProtocolError(f"cyclic reference to offset {target}: not representable")
        resolving.add(target)
        self.enter()  # a chain of handles to handles nests like containers do
        value, _ = self.read(buf, target)
        self.depth -= 1
        resolving.discard(target)
        resolved[target] = value
        return value

    def enter_buffer(self) -> tuple[int, dict[int, object] | None, set[int] | None]:
        """Start decoding a separate buffer (a wrapped object array); returns what to restore."""
        saved = (self.base, self._resolved, self._resolving)
        self.base, self._resolved, self._resolving = 0, None, None
        return saved

    def leave_buffer(self, saved: tuple[int, dict[int, object] | None, set[int] | None]) -> None:
        self.base, self._resolved, self._resolving = saved


class Encoder:
    """The state of one ``write_value`` call, handed to nested writers: the CodecContext and
    the depth guard (a container that contains itself would otherwise recurse forever)."""

    __slots__ = ("ctx", "depth", "max_depth")

    def __init__(self, ctx: CodecContext | None) -> None:
        self.ctx = ctx
        self.max_depth = DEFAULT_MAX_DEPTH if ctx is None else ctx.max_depth
        self.depth = 1  # the value being written, as the Decoder counts it: what it reads back

    def write(self, buf: bytearray, value: object, hint: int | None = None) -> None:
        """Append ``value`` (an element or field of the value being written)."""
        code, value = _resolve(value, hint)
        if _write_leaf(buf, code, value):
            return
        nested = _nested_writer(code)
        self.depth += 1
        if self.depth > self.max_depth:
            raise LocalProtocolError(f"values nested deeper than {self.max_depth} levels")
        nested(buf, value, self)
        self.depth -= 1


