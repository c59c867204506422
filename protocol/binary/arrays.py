"""Codecs for arrays: primitive arrays (13-19; byte[] 12 lives with the primitives), arrays of
standard types (String[] 20, UUID[] 21, Date[] 22, Timestamp[] 34, Time[] 37, Decimal[] 31),
Enum[] 29 and Object[] 23; plus the automatic mapping of Python lists.

Arrays decode to Python lists (byte[] to bytes, char[] to a list of one-character strs),
Object[] to ObjectArray. A homogeneous list or tuple encodes as the matching array, as in
pyignite: ints -> long[], floats -> double[], bools -> boolean[], strs -> String[], UUIDs
-> UUID[], datetimes/dates/Date -> Date[], Timestamp -> Timestamp[], timedeltas/Time ->
Time[], Decimals -> Decimal[], EnumValues -> Enum[]. None is allowed among elements of
the object-typed arrays only. Empty, all-None and mixed lists are refused: say what you
mean with Typed(code, [...]), ObjectArray or Collection.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import struct
import uuid
from collections.abc import Sequence

from ..errors import LocalProtocolError, RemoteProtocolError
from . import primitives, standard
from ._engine import (
    Buffer,
    Decoder,
    Encoder,
    LeafCodecs,
    NestedCodecs,
    PythonTypes,
    Reader,
    Writer,
    infer_type_code,
)
from .primitives import char_unit, read_length
from .standard import enum_parts, read_type_id
from .typecodes import TypeCode
from .values import Date, EnumValue, ObjectArray, Time, Timestamp

__all__ = ["LEAF", "NESTED", "PYTHON_TYPES"]

T = TypeCode
_NULL = T.NULL.value
_LENGTH = struct.Struct("<bi")
_TYPED_LENGTH = struct.Struct("<bii")  # code, type id, count
_I32 = struct.Struct("<i")
_ENUM_W = struct.Struct("<bii")


def _items(value: object, code: int) -> Sequence[object]:
    if isinstance(value, (list, tuple)):
        return value
    raise LocalProtocolError(
        f"a {T(code).name} must be a list or tuple, got {type(value).__name__}"
    )


# -- primitive arrays ------------------------------------------------------------------------


def _numeric_array(code: TypeCode, fmt: str, size: int) -> tuple[Reader, Writer]:
    def read(buf: Buffer, pos: int) -> tuple[object, int]:
        n, start = read_length(buf, pos, size)
        return list(struct.unpack_from(f"<{n}{fmt}", buf, start)), start + n * size

    def write(buf: bytearray, value: object) -> None:
        items = _items(value, code)
        n = len(items)
        buf += _LENGTH.pack(code, n) + struct.pack(f"<{n}{fmt}", *items)

    read.__name__ = f"_read_{code.name.lower()}"
    write.__name__ = f"_write_{code.name.lower()}"
    return read, write


def _read_char_array(buf: Buffer, pos: int) -> tuple[object, int]:
    n, start = read_length(buf, pos, 2)
    return [chr(u) for u in struct.unpack_from(f"<{n}H", buf, start)], start + 2 * n


def _write_char_array(buf: bytearray, value: object) -> None:
    if isinstance(value, str):  # Java's toCharArray: UTF-16 units, surrogates included
        data = value.encode("utf-16-le", "surrogatepass")
        buf += _LENGTH.pack(T.CHAR_ARRAY, len(data) // 2) + data
        return
    units = [char_unit(x) for x in _items(value, T.CHAR_ARRAY)]
    buf += _LENGTH.pack(T.CHAR_ARRAY, len(units)) + struct.pack(f"<{len(units)}H", *units)


def _read_bool_array(buf: Buffer, pos: int) -> tuple[object, int]:
    n, start = read_length(buf, pos)
    return [b != 0 for b in buf[start : start + n]], start + n


def _write_bool_array(buf: bytearray, value: object) -> None:
    items = _items(value, T.BOOL_ARRAY)
    for x in items:
        if not isinstance(x, int):
            raise LocalProtocolError(f"boolean[] element {x!r} is not a bool")
    buf += _LENGTH.pack(T.BOOL_ARRAY, len(items)) + bytes(1 if x else 0 for x in items)


# -- arrays of standard types: i32 count + full values (or NULL) -------------------------------


# The element codecs the arrays of standard types and Enum[] are built from, by type code.
_ELEMENTS: dict[int, tuple[Reader, Writer]] = {
    code: (reader, writer) for code, reader, writer in primitives.LEAF + standard.LEAF
}


def _standard_array(code: TypeCode, element: TypeCode) -> tuple[Reader, Writer]:
    elem_code = element.value
    elem_reader, elem_writer = _ELEMENTS[elem_code]

    def read(buf: Buffer, pos: int) -> tuple[object, int]:
        n, pos = read_length(buf, pos)
        items: list[object] = []
        append = items.append
        for _ in range(n):
            c = buf[pos]
            if c == elem_code:
                value, pos = elem_reader(buf, pos + 1)
                append(value)
            elif c == _NULL:
                append(None)
                pos += 1
            else:
                raise RemoteProtocolError(
                    f"{code.name} element of type {c} at offset {pos}, not {element.name}"
                )
        return items, pos

    def write(buf: bytearray, value: object) -> None:
        items = _items(value, code)
        buf += _LENGTH.pack(code, len(items))
        for x in items:
            if x is None:
                buf.append(_NULL)
            else:
                elem_writer(buf, x)

    read.__name__ = f"_read_{code.name.lower()}"
    write.__name__ = f"_write_{code.name.lower()}"
    return read, write


# -- Enum[]: i32 type id (0: class name) + i32 count + (28/38 values or NULL) -----------------

_ENUM_CODES = (T.ENUM.value, T.BINARY_ENUM.value)


def _read_enum_array(buf: Buffer, pos: int) -> tuple[object, int]:
    _, _, pos = read_type_id(buf, pos)
    n, pos = read_length(buf, pos)
    items: list[object] = []
    for _ in range(n):
        c = buf[pos]
        if c in _ENUM_CODES:
            value, pos = _ELEMENTS[c][0](buf, pos + 1)
            items.append(value)
        elif c == _NULL:
            items.append(None)
            pos += 1
        else:
            raise RemoteProtocolError(f"ENUM_ARRAY element of type {c} at offset {pos}")
    return items, pos


def _write_enum_array(buf: bytearray, value: object) -> None:
    """A list of EnumValue/None; the array's type id is the elements' common one (or -1).
    ObjectArray(type_id, items) sets it explicitly."""
    if isinstance(value, ObjectArray):
        type_id, items = value.type_id, _items(value.items, T.ENUM_ARRAY)
    else:
        items = _items(value, T.ENUM_ARRAY)
        ids = {x.type_id for x in items if isinstance(x, EnumValue)}
        type_id = ids.pop() if len(ids) == 1 else -1
    if type_id == 0:
        raise LocalProtocolError("an Enum[] with type id 0 would need a class name")
    buf += _TYPED_LENGTH.pack(T.ENUM_ARRAY, type_id, len(items))
    for x in items:
        if x is None:
            buf.append(_NULL)
        else:
            binary = isinstance(x, EnumValue) and x.binary
            buf += _ENUM_W.pack(T.BINARY_ENUM if binary else T.ENUM, *enum_parts(x))


# -- Object[]: i32 component type id (-1 = java.lang.Object, 0: class name) + count + objs ----


def _read_object_array(buf: Buffer, pos: int, dec: Decoder) -> tuple[object, int]:
    type_id, _, pos = read_type_id(buf, pos)
    n, pos = read_length(buf, pos)
    dec.enter()
    read = dec.read
    items: list[object] = []
    append = items.append
    for _ in range(n):
        value, pos = read(buf, pos)
        append(value)
    dec.depth -= 1
    return ObjectArray(type_id, items), pos


def _write_object_array(buf: bytearray, value: object, enc: Encoder) -> None:
    if isinstance(value, ObjectArray):
        type_id, items = value.type_id, _items(value.items, T.OBJECT_ARRAY)
    else:
        type_id, items = -1, _items(value, T.OBJECT_ARRAY)
    if type_id == 0:
        raise LocalProtocolError("an Object[] with type id 0 would need a class name")
    buf += _TYPED_LENGTH.pack(T.OBJECT_ARRAY, type_id, len(items))
    write = enc.write
    for x in items:
        write(buf, x)


# -- automatic mapping of lists ----------------------------------------------------------------

# element Python type -> array type code; the last group may hold None among the elements
_ELEMENT_ARRAYS: dict[type, int] = {
    bool: T.BOOL_ARRAY,
    int: T.LONG_ARRAY,
    float: T.DOUBLE_ARRAY,
    str: T.STRING_ARRAY,
    uuid.UUID: T.UUID_ARRAY,
    _dt.datetime: T.DATE_ARRAY,
    _dt.date: T.DATE_ARRAY,
    Date: T.DATE_ARRAY,
    Timestamp: T.TIMESTAMP_ARRAY,
    _dt.timedelta: T.TIME_ARRAY,
    _dt.time: T.TIME_ARRAY,
    Time: T.TIME_ARRAY,
    decimal.Decimal: T.DECIMAL_ARRAY,
    EnumValue: T.ENUM_ARRAY,
}
_SCALAR_TO_ARRAY: dict[int, int] = {
    T.BOOL: T.BOOL_ARRAY,
    T.LONG: T.LONG_ARRAY,
    T.DOUBLE: T.DOUBLE_ARRAY,
    T.STRING: T.STRING_ARRAY,
    T.UUID: T.UUID_ARRAY,
    T.DATE: T.DATE_ARRAY,
    T.TIMESTAMP: T.TIMESTAMP_ARRAY,
    T.TIME: T.TIME_ARRAY,
    T.DECIMAL: T.DECIMAL_ARRAY,
    T.ENUM: T.ENUM_ARRAY,
    T.BINARY_ENUM: T.ENUM_ARRAY,
}
_NULLABLE_ARRAYS = frozenset({
    T.STRING_ARRAY, T.UUID_ARRAY, T.DATE_ARRAY, T.TIMESTAMP_ARRAY, T.TIME_ARRAY,
    T.DECIMAL_ARRAY, T.ENUM_ARRAY,
})


def _element_array_code(x: object) -> int | None:
    code = _ELEMENT_ARRAYS.get(type(x))
    if code is not None:
        return code
    try:
        return _SCALAR_TO_ARRAY.get(infer_type_code(x))  # subclasses: IntEnum, str enums...
    except LocalProtocolError:
        return None


def _list_code(value: object) -> int:
    """The array type of a homogeneous list or tuple (see the module docstring)."""
    code = None
    has_none = False
    for x in value:  # type: ignore[attr-defined]
        if x is None:
            has_none = True
            continue
        c = _element_array_code(x)
        if c is None:
            raise LocalProtocolError(
                f"no Ignite array type for a list of {type(x).__name__}: use Typed(), "
                "ObjectArray or Collection"
            )
        if code is None:
            code = c
        elif c != code:
            raise LocalProtocolError(
                "a list mixing element types has no automatic Ignite type: use Typed(), "
                "ObjectArray or Collection"
            )
    if code is None:
        raise LocalProtocolError(
            "cannot infer the array type of an empty or all-None list: use Typed()"
        )
    if has_none and code not in _NULLABLE_ARRAYS:
        raise LocalProtocolError(f"a {T(code).name} cannot hold None")
    return code


# -- the codecs, in one ordered place --------------------------------------------------------

LEAF: LeafCodecs = (
    *(
        (code, *_numeric_array(code, fmt, size))
        for code, fmt, size in (
            (T.SHORT_ARRAY, "h", 2),
            (T.INT_ARRAY, "i", 4),
            (T.LONG_ARRAY, "q", 8),
            (T.FLOAT_ARRAY, "f", 4),
            (T.DOUBLE_ARRAY, "d", 8),
        )
    ),
    (T.CHAR_ARRAY, _read_char_array, _write_char_array),
    (T.BOOL_ARRAY, _read_bool_array, _write_bool_array),
    *(
        (code, *_standard_array(code, element))
        for code, element in (
            (T.STRING_ARRAY, T.STRING),
            (T.UUID_ARRAY, T.UUID),
            (T.DATE_ARRAY, T.DATE),
            (T.TIMESTAMP_ARRAY, T.TIMESTAMP),
            (T.TIME_ARRAY, T.TIME),
            (T.DECIMAL_ARRAY, T.DECIMAL),
        )
    ),
    (T.ENUM_ARRAY, _read_enum_array, _write_enum_array),
)
NESTED: NestedCodecs = ((T.OBJECT_ARRAY, _read_object_array, _write_object_array),)

PYTHON_TYPES: PythonTypes = (
    (list, _list_code),
    (tuple, _list_code),
    (ObjectArray, T.OBJECT_ARRAY),
)
