"""The codecs for null, the primitive types (byte, short, int, long, float, double, char,
boolean), String and byte[], declared as data for ``protocol.binary.codec`` to install; plus
the helpers other codecs build on (``read_length``, ``char_unit``, ``byte_array_payload``).
"""

from __future__ import annotations

import struct

from ..errors import LocalProtocolError, RemoteProtocolError
from ._engine import Buffer, LeafCodecs, NestedCodecs, PythonTypes, Writer
from .typecodes import TypeCode

__all__ = ["LEAF", "NESTED", "PYTHON_TYPES", "byte_array_payload", "char_unit", "read_length"]

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
    try:
        return str(buf[start:end], "utf-8"), end
    except UnicodeDecodeError:
        return _read_cesu8(bytes(buf[start:end])), end


def _read_cesu8(data: bytes) -> str:
    """A String a node wrote with surrogates encoded one by one (Ignite's own UTF-8 writer
    does that for a Java string holding a lone surrogate or, CESU-8 style, a pair): pairs
    become their character, lone ones stay lone (a reply carries them as msgpack's
    "surrogatepass" text); any other invalid byte is still an error."""
    text = data.decode("utf-8", "surrogatepass")
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


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


# -- the codecs, in one ordered place --------------------------------------------------------

LEAF: LeafCodecs = (
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
NESTED: NestedCodecs = ()

# Automatic mapping, as pyignite does it. Order matters: bool is a subclass of int.
PYTHON_TYPES: PythonTypes = (
    (bool, TypeCode.BOOL),
    (int, TypeCode.LONG),
    (float, TypeCode.DOUBLE),
    (str, TypeCode.STRING),
    (bytes, TypeCode.BYTE_ARRAY),
    (bytearray, TypeCode.BYTE_ARRAY),
    (memoryview, TypeCode.BYTE_ARRAY),
)
