"""The value codec: the type-code registries and the codecs for null, primitives, String and byte[].

Readers are looked up in a 256-slot table indexed by the (unsigned) type-code byte;
writers in a dict keyed by type code; automatic Python -> Ignite mapping in an ordered
list of (python type, type code). Later codecs (UUID, dates, decimal, arrays,
collections, complex objects) plug in through ``register_*`` at import time, the way
asyncpg's codec registry does, without touching ``read_value``/``write_value``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from ..errors import LocalProtocolError, RemoteProtocolError
from .typecodes import TypeCode

__all__ = [
    "Buffer",
    "Reader",
    "Writer",
    "decode_value",
    "encode_value",
    "read_value",
    "register_python_type",
    "register_reader",
    "register_writer",
    "write_value",
]

Buffer = bytes | bytearray | memoryview

# A reader gets the buffer and the offset just *after* the type code, and returns the
# value and the offset after its payload. It may let struct.error / UnicodeDecodeError
# escape (read_value translates them) and must check variable lengths itself, because
# slicing past the end of a buffer does not raise.
Reader = Callable[[Buffer, int], tuple[object, int]]
# A writer appends type code + payload. It must compute everything before appending, so a
# failure (struct.error, OverflowError, UnicodeEncodeError -> LocalProtocolError) leaves
# the buffer untouched.
Writer = Callable[[bytearray, object], None]

_READERS: list[Reader | None] = [None] * 256
_WRITERS: dict[int, Writer] = {}
_AUTO_ORDER: list[tuple[type, int]] = []
_AUTO_EXACT: dict[type, int] = {}

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
_WRITE_ERRORS = (struct.error, OverflowError, UnicodeEncodeError)


def register_reader(code: int, reader: Reader) -> None:
    """Install the decoder for one type code (replacing any previous one)."""
    _READERS[code & 0xFF] = reader


def register_writer(code: int, writer: Writer) -> None:
    """Install the encoder used when a value is written with this type code."""
    _WRITERS[int(code)] = writer


def register_python_type(pytype: type, code: int) -> None:
    """Map a Python type to a type code for automatic encoding; earlier entries win."""
    _AUTO_ORDER.append((pytype, int(code)))
    _AUTO_EXACT.setdefault(pytype, int(code))


# -- public entry points ---------------------------------------------------------------


def read_value(buf: Buffer, pos: int) -> tuple[object, int]:
    """Decode the typed value at ``buf[pos]``; return it and the offset just after it.

    Raises RemoteProtocolError on truncated or invalid data or an unknown type code.
    """
    try:
        code = buf[pos]
    except IndexError:
        raise RemoteProtocolError(f"truncated value: no type code at offset {pos}") from None
    reader = _READERS[code]
    if reader is None:
        signed = code - 256 if code > 127 else code
        raise RemoteProtocolError(f"unsupported type code {signed} at offset {pos}")
    try:
        return reader(buf, pos + 1)
    except (struct.error, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"invalid value of type {code} at offset {pos}: {exc}") from exc


def decode_value(data: Buffer) -> object:
    """Decode exactly one typed value that must fill ``data`` completely."""
    value, end = read_value(data, 0)
    if end != len(data):
        raise RemoteProtocolError(f"{len(data) - end} trailing bytes after the value")
    return value


def write_value(buf: bytearray, value: object, hint: int | None = None) -> None:
    """Append ``value`` as a typed value; ``hint`` (a TypeCode) picks the Ignite type.

    None is always written as NULL. Without a hint the Python type decides (bool before
    int: int -> LONG, float -> DOUBLE, str -> STRING, bytes -> BYTE_ARRAY). Raises
    LocalProtocolError for values that do not fit the chosen type.
    """
    if value is None:
        buf.append(_NULL)
        return
    code = _infer_code(value) if hint is None else hint
    writer = _WRITERS.get(code)
    if writer is None:
        raise LocalProtocolError(f"no encoder for type code {code!r}")
    try:
        writer(buf, value)
    except _WRITE_ERRORS as exc:
        name = _code_name(code)
        raise LocalProtocolError(f"cannot encode {value!r} as {name}: {exc}") from exc


def encode_value(value: object, hint: int | None = None) -> bytes:
    """Return ``value`` encoded as one typed value (see write_value)."""
    buf = bytearray()
    write_value(buf, value, hint)
    return bytes(buf)


def _infer_code(value: object) -> int:
    code = _AUTO_EXACT.get(type(value))
    if code is not None:
        return code
    for pytype, candidate in _AUTO_ORDER:  # subclasses (IntEnum, str subclasses...)
        if isinstance(value, pytype):
            return candidate
    raise LocalProtocolError(f"no automatic Ignite type for {type(value).__name__}")


def _code_name(code: int) -> str:
    try:
        return TypeCode(code).name
    except ValueError:
        return str(code)


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


def _read_length(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read an i32 byte count at pos; return (start, end) of the payload it announces."""
    (n,) = _I32.unpack_from(buf, pos)
    start = pos + 4
    end = start + n
    if n < 0 or end > len(buf):
        raise RemoteProtocolError(f"length {n} at offset {pos} runs past the buffer")
    return start, end


def _read_string(buf: Buffer, pos: int) -> tuple[object, int]:
    start, end = _read_length(buf, pos)
    return str(buf[start:end], "utf-8"), end


def _read_byte_array(buf: Buffer, pos: int) -> tuple[object, int]:
    start, end = _read_length(buf, pos)
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


def _write_char(buf: bytearray, value: object) -> None:
    if isinstance(value, str):
        if len(value) != 1:
            raise LocalProtocolError(f"a CHAR must be a single character, got {value!r}")
        value = ord(value)  # beyond U+FFFF the u16 pack below fails -> LocalProtocolError
    buf += _CHAR.pack(TypeCode.CHAR, value)


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


def _write_byte_array(buf: bytearray, value: object) -> None:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if not isinstance(value, (bytes, bytearray)):
        raise LocalProtocolError(f"a BYTE_ARRAY must be bytes, got {type(value).__name__}")
    buf += _LENGTH.pack(TypeCode.BYTE_ARRAY, len(value))
    buf += value


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
