"""The value codec: the type-code registries, the decoder/encoder walkers, and the codecs for
null, primitives, String and byte[].

Readers are looked up in 256-slot tables indexed by the (unsigned) type-code byte; writers
in dicts keyed by type code; automatic Python -> Ignite mapping in an ordered list of
(python type, type code or chooser). The other codecs (standard types, arrays, containers,
complex objects) plug in through ``register_*`` at import time, the way asyncpg's codec
registry does, without touching ``read_value``/``write_value``.

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

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "Buffer",
    "Decoder",
    "Encoder",
    "NestedReader",
    "NestedWriter",
    "Reader",
    "Writer",
    "decode_value",
    "encode_value",
    "infer_type_code",
    "leaf_reader",
    "leaf_writer",
    "read_value",
    "register_python_type",
    "register_reader",
    "register_writer",
    "write_value",
]

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

# Nesting levels of containers/objects (CodecContext.max_depth's default); guards the Python
# stack. One limit for every codec: see protocol.limits.
DEFAULT_MAX_DEPTH = MAX_NESTING

_READERS: list[Reader | None] = [None] * 256
_NESTED_READERS: list[NestedReader | None] = [None] * 256
_WRITERS: dict[int, Writer] = {}
_NESTED_WRITERS: dict[int, NestedWriter] = {}
_AUTO_ORDER: list[tuple[type, int | Chooser]] = []
_AUTO_EXACT: dict[type, int | Chooser] = {}

_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_CHAR = struct.Struct("<bH")  # type code + payload, packed in one call
_BOOL = struct.Struct("<bb")
_LENGTH = struct.Struct("<bi")

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
        if reader is not None:
            return reader(buf, pos + 1)
        nested = _NESTED_READERS[code]
        if nested is None:
            raise _unsupported(code, pos)
        return nested(buf, pos + 1, Decoder(ctx, pos))
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


def leaf_reader(code: int) -> Reader:
    """The registered leaf reader of a type code (for codecs built from other codecs)."""
    reader = _READERS[code & 0xFF]
    if reader is None:
        raise LookupError(f"no leaf reader for type code {code}")
    return reader


def leaf_writer(code: int) -> Writer:
    """The registered leaf writer of a type code (for codecs built from other codecs)."""
    return _WRITERS[int(code)]


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


# -- readers ---------------------------------------------------------------------------


def _read_null(buf: Buffer, pos: int) -> tuple[object, int]:
    return None, pos


def _read_byte(buf: Buffer, pos: int) -> tuple[object, int]:
    return _I8.unpack_from(buf, pos)[0], pos + 1


def _read_short(buf: Buffer, pos: int) -> tuple[object, int]:
    return _I16.unpack_from(buf, pos)[0], pos + 2


def _read_int(buf: Buffer, pos: int) -> tuple[object, int]:
    return _I32.unpack_from(buf, pos)[0], pos + 4


def _read_long(buf: Buffer, pos: int) -> tuple[object, int]:
    return _I64.unpack_from(buf, pos)[0], pos + 8


def _read_float(buf: Buffer, pos: int) -> tuple[object, int]:
    return _F32.unpack_from(buf, pos)[0], pos + 4


def _read_double(buf: Buffer, pos: int) -> tuple[object, int]:
    return _F64.unpack_from(buf, pos)[0], pos + 8


def _read_char(buf: Buffer, pos: int) -> tuple[object, int]:
    # One UTF-16 code unit; a lone surrogate comes back as a lone-surrogate str.
    return chr(_U16.unpack_from(buf, pos)[0]), pos + 2


def _read_bool(buf: Buffer, pos: int) -> tuple[object, int]:
    return _I8.unpack_from(buf, pos)[0] != 0, pos + 1


def read_length(buf: Buffer, pos: int, item_size: int = 1) -> tuple[int, int]:
    """Read an i32 count at pos; return (count, payload start), refusing counts of
    ``item_size``-byte items that the rest of the buffer cannot hold."""
    (n,) = _I32.unpack_from(buf, pos)
    start = pos + 4
    if n < 0 or n * item_size > len(buf) - start:
        raise RemoteProtocolError(f"length {n} at offset {pos} runs past the buffer")
    return n, start


def _read_string(buf: Buffer, pos: int) -> tuple[object, int]:
    n, start = read_length(buf, pos)
    end = start + n
    return str(buf[start:end], "utf-8"), end


def _read_byte_array(buf: Buffer, pos: int) -> tuple[object, int]:
    n, start = read_length(buf, pos)
    end = start + n
    return bytes(buf[start:end]), end


# -- writers ---------------------------------------------------------------------------


def _fixed_writer(code: TypeCode, fmt: str) -> Writer:
    packer = struct.Struct("<b" + fmt)

    def write(buf: bytearray, value: object) -> None:
        buf += packer.pack(code, value)

    write.__name__ = f"_write_{code.name.lower()}"
    return write


def _write_null(buf: bytearray, value: object) -> None:
    raise LocalProtocolError(f"the NULL type code only encodes None, not {value!r}")


def char_unit(value: object) -> int:
    """A CHAR value (a one-character str or an int) as its UTF-16 code unit."""
    if isinstance(value, str):
        if len(value) != 1:
            raise LocalProtocolError(f"a CHAR must be a single character, got {value!r}")
        return ord(value)  # beyond U+FFFF the u16 pack fails -> LocalProtocolError
    if isinstance(value, bool) or not isinstance(value, int):
        raise LocalProtocolError(f"a CHAR must be a str or an int, got {type(value).__name__}")
    return value


def _write_char(buf: bytearray, value: object) -> None:
    buf += _CHAR.pack(TypeCode.CHAR, char_unit(value))


def _write_bool(buf: bytearray, value: object) -> None:
    if not isinstance(value, int):  # bool is an int; anything else is a mistake
        raise LocalProtocolError(f"a BOOL must be a bool, got {type(value).__name__}")
    buf += _BOOL.pack(TypeCode.BOOL, 1 if value else 0)


def _write_string(buf: bytearray, value: object) -> None:
    if not isinstance(value, str):
        raise LocalProtocolError(f"a STRING must be a str, got {type(value).__name__}")
    data = value.encode("utf-8")
    buf += _LENGTH.pack(TypeCode.STRING, len(data))
    buf += data


def byte_array_payload(value: object) -> bytes | bytearray:
    """byte[] contents from bytes-like values or a sequence of ints in -128..255."""
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, (list, tuple)):
        out = bytearray(len(value))
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, int) or not -128 <= x <= 255:
                raise LocalProtocolError(f"byte[] element {x!r} is not an int in -128..255")
            out[i] = x & 0xFF
        return out
    raise LocalProtocolError(f"a BYTE_ARRAY must be bytes, got {type(value).__name__}")


def _write_byte_array(buf: bytearray, value: object) -> None:
    data = byte_array_payload(value)
    buf += _LENGTH.pack(TypeCode.BYTE_ARRAY, len(data))
    buf += data


# -- the registry, in one ordered place --------------------------------------------------

_PRIMITIVES: tuple[tuple[TypeCode, Reader, Writer], ...] = (
    (TypeCode.NULL, _read_null, _write_null),
    (TypeCode.BYTE, _read_byte, _fixed_writer(TypeCode.BYTE, "b")),
    (TypeCode.SHORT, _read_short, _fixed_writer(TypeCode.SHORT, "h")),
    (TypeCode.INT, _read_int, _fixed_writer(TypeCode.INT, "i")),
    (TypeCode.LONG, _read_long, _fixed_writer(TypeCode.LONG, "q")),
    (TypeCode.FLOAT, _read_float, _fixed_writer(TypeCode.FLOAT, "f")),
    (TypeCode.DOUBLE, _read_double, _fixed_writer(TypeCode.DOUBLE, "d")),
    (TypeCode.CHAR, _read_char, _write_char),
    (TypeCode.BOOL, _read_bool, _write_bool),
    (TypeCode.STRING, _read_string, _write_string),
    (TypeCode.BYTE_ARRAY, _read_byte_array, _write_byte_array),
)

for _code, _reader, _writer in _PRIMITIVES:
    register_reader(_code, _reader)
    register_writer(_code, _writer)

# Automatic mapping, as pyignite does it. Order matters: bool is a subclass of int.
register_python_type(bool, TypeCode.BOOL)
register_python_type(int, TypeCode.LONG)
register_python_type(float, TypeCode.DOUBLE)
register_python_type(str, TypeCode.STRING)
register_python_type(bytes, TypeCode.BYTE_ARRAY)
register_python_type(bytearray, TypeCode.BYTE_ARRAY)
register_python_type(memoryview, TypeCode.BYTE_ARRAY)

# The other codecs register themselves on import; loading them here means every user of
# read_value/write_value gets the complete codec (each imports what it builds on).
from . import arrays as _arrays  # noqa: E402
from . import complex as _complex  # noqa: E402
from . import containers as _containers  # noqa: E402
from . import standard as _standard  # noqa: E402

del _standard, _arrays, _containers, _complex
