"""Every pyignite type-hint class (``IntObject``, ``StringArrayObject``, ``MapObject`` ...) with
pyignite's type codes, defaults and constants; the pyignite-named submodules re-export these."""

from __future__ import annotations

from . import type_codes as tc
from . import type_ids as ti
from . import type_names as tn
from .base import IgniteDataType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def _decimal() -> ModuleType:
    import decimal

    return decimal


def _datetime() -> ModuleType:
    import datetime

    return datetime


class Null(IgniteDataType):
    default = None
    pythonic = type(None)


class Nullable(IgniteDataType):
    pass


# -- primitives (payload-only wire structs in pyignite; accepted here as plain hints) ----------


class Primitive(IgniteDataType):
    _type_name: str | None = None
    _type_id: int | None = None


def _primitive(name: str, code: bytes, type_name: str, type_id: int, base: type) -> type:
    return type(name, (base,), {"type_code": code, "_type_name": type_name, "_type_id": type_id})


Byte = _primitive("Byte", tc.TC_BYTE, tn.NAME_BYTE, ti.TYPE_BYTE, Primitive)
Short = _primitive("Short", tc.TC_SHORT, tn.NAME_SHORT, ti.TYPE_SHORT, Primitive)
Int = _primitive("Int", tc.TC_INT, tn.NAME_INT, ti.TYPE_INT, Primitive)
Long = _primitive("Long", tc.TC_LONG, tn.NAME_LONG, ti.TYPE_LONG, Primitive)
Float = _primitive("Float", tc.TC_FLOAT, tn.NAME_FLOAT, ti.TYPE_FLOAT, Primitive)
Double = _primitive("Double", tc.TC_DOUBLE, tn.NAME_DOUBLE, ti.TYPE_DOUBLE, Primitive)
Char = _primitive("Char", tc.TC_CHAR, tn.NAME_CHAR, ti.TYPE_CHAR, Primitive)
Bool = _primitive("Bool", tc.TC_BOOL, tn.NAME_BOOLEAN, ti.TYPE_BOOLEAN, Primitive)


class _JavaHashed:
    """pyignite's ``hashcode`` for types Ignite hashes by value: Java's ``hashCode()``."""

    type_code: bytes

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        from ._hashing import java_hash

        return java_hash(value, cls.type_code[0])


class DataObject(Nullable):
    _type_name: str | None = None
    _type_id: int | None = None


class ByteObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_BYTE, ti.TYPE_BYTE, tc.TC_BYTE, int, 0)


class ShortObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_SHORT, ti.TYPE_SHORT, tc.TC_SHORT, int, 0)


class IntObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_INT, ti.TYPE_INT, tc.TC_INT, int, 0)


class LongObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_LONG, ti.TYPE_LONG, tc.TC_LONG, int, 0)


class FloatObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_FLOAT, ti.TYPE_FLOAT, tc.TC_FLOAT, float, 0.0)


class DoubleObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_DOUBLE, ti.TYPE_DOUBLE, tc.TC_DOUBLE, float, 0.0)


class CharObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_CHAR, ti.TYPE_CHAR, tc.TC_CHAR, str, " ")


class BoolObject(_JavaHashed, DataObject):
    _type_name, _type_id, type_code, pythonic, default = (
        tn.NAME_BOOLEAN, ti.TYPE_BOOLEAN, tc.TC_BOOL, bool, False)


# -- primitive arrays ---------------------------------------------------------------------------


class PrimitiveArray(IgniteDataType):
    _type_name: str | None = None
    _type_id: int | None = None
    primitive_type: type | None = None


class PrimitiveArrayObject(PrimitiveArray):
    pythonic = list
    default: list[Any] = []


def _arrays(name: str, code: bytes, type_name: str, type_id: int,
            element: type) -> tuple[type, type]:
    attrs = {"type_code": code, "_type_name": type_name, "_type_id": type_id,
             "primitive_type": element}
    return (type(name, (PrimitiveArray,), dict(attrs)),
            type(name + "Object", (PrimitiveArrayObject,), dict(attrs)))


ByteArray, ByteArrayObject = _arrays("ByteArray", tc.TC_BYTE_ARRAY, tn.NAME_BYTE_ARR,
                                     ti.TYPE_BYTE_ARR, Byte)
ShortArray, ShortArrayObject = _arrays("ShortArray", tc.TC_SHORT_ARRAY, tn.NAME_SHORT_ARR,
                                       ti.TYPE_SHORT_ARR, Short)
IntArray, IntArrayObject = _arrays("IntArray", tc.TC_INT_ARRAY, tn.NAME_INT_ARR,
                                   ti.TYPE_INT_ARR, Int)
LongArray, LongArrayObject = _arrays("LongArray", tc.TC_LONG_ARRAY, tn.NAME_LONG_ARR,
                                     ti.TYPE_LONG_ARR, Long)
FloatArray, FloatArrayObject = _arrays("FloatArray", tc.TC_FLOAT_ARRAY, tn.NAME_FLOAT_ARR,
                                       ti.TYPE_FLOAT_ARR, Float)
DoubleArray, DoubleArrayObject = _arrays("DoubleArray", tc.TC_DOUBLE_ARRAY, tn.NAME_DOUBLE_ARR,
                                         ti.TYPE_DOUBLE_ARR, Double)
CharArray, CharArrayObject = _arrays("CharArray", tc.TC_CHAR_ARRAY, tn.NAME_CHAR_ARR,
                                     ti.TYPE_CHAR_ARR, Char)
BoolArray, BoolArrayObject = _arrays("BoolArray", tc.TC_BOOL_ARRAY, tn.NAME_BOOLEAN_ARR,
                                     ti.TYPE_BOOLEAN_ARR, Bool)


# -- standard objects ---------------------------------------------------------------------------


class StandardObject(Nullable):
    _type_name: str | None = None
    _type_id: int | None = None


class String(_JavaHashed, Nullable):
    _type_name, _type_id, type_code, pythonic = tn.NAME_STRING, ti.TYPE_STRING, tc.TC_STRING, str


class DecimalObject(StandardObject):
    _type_name, _type_id, type_code = tn.NAME_DECIMAL, ti.TYPE_DECIMAL, tc.TC_DECIMAL
    _lazy = {"pythonic": lambda: _decimal().Decimal,
             "default": lambda: _decimal().Decimal("0.00")}

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        from ..utils import decimal_hashcode

        return decimal_hashcode(value)


class UUIDObject(_JavaHashed, StandardObject):
    _type_name, _type_id, type_code = tn.NAME_UUID, ti.TYPE_UUID, tc.TC_UUID
    UUID_BYTE_ORDER = (7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8)


class TimestampObject(StandardObject):
    _type_name, _type_id, type_code = tn.NAME_TIMESTAMP, ti.TYPE_TIMESTAMP, tc.TC_TIMESTAMP
    pythonic = tuple
    _lazy = {"default": lambda: (_datetime().datetime(1970, 1, 1), 0)}

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        from ._hashing import datetime_ms, long_hash

        return long_hash(datetime_ms(value[0]))


class DateObject(StandardObject):
    _type_name, _type_id, type_code = tn.NAME_DATE, ti.TYPE_DATE, tc.TC_DATE
    _lazy = {"pythonic": lambda: _datetime().datetime,
             "default": lambda: _datetime().datetime(1970, 1, 1)}

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        from ._hashing import datetime_ms, long_hash

        return long_hash(datetime_ms(value))


class TimeObject(StandardObject):
    _type_name, _type_id, type_code = tn.NAME_TIME, ti.TYPE_TIME, tc.TC_TIME
    _lazy = {"pythonic": lambda: _datetime().timedelta,
             "default": lambda: _datetime().timedelta()}

    @classmethod
    def hashcode(cls, value: Any, **kwargs: Any) -> int:
        from ._hashing import long_hash

        return long_hash(int(value.total_seconds() * 1000))


class EnumObject(StandardObject):
    _type_name, _type_id, type_code = "Enum", ti.TYPE_ENUM, tc.TC_ENUM


class BinaryEnumObject(EnumObject):
    _type_id, type_code = ti.TYPE_BINARY_ENUM, tc.TC_BINARY_ENUM


class StandardArray(IgniteDataType):
    _type_name: str | None = None
    _type_id: int | None = None
    standard_type: type | None = None


class StandardArrayObject(StandardArray, Nullable):
    pythonic = list
    default: list[Any] = []


def _std_arrays(name: str, code: bytes, type_name: str, type_id: int,
                element: type) -> tuple[type, type]:
    attrs = {"type_code": code, "_type_name": type_name, "_type_id": type_id,
             "standard_type": element}
    return (type(name, (StandardArray,), {"_type_name": type_name, "_type_id": type_id,
                                          "standard_type": element}),
            type(name + "Object", (StandardArrayObject,), attrs))


StringArray, StringArrayObject = _std_arrays("StringArray", tc.TC_STRING_ARRAY,
                                             tn.NAME_STRING_ARR, ti.TYPE_STRING_ARR, String)
DecimalArray, DecimalArrayObject = _std_arrays("DecimalArray", tc.TC_DECIMAL_ARRAY,
                                               tn.NAME_DECIMAL_ARR, ti.TYPE_DECIMAL_ARR,
                                               DecimalObject)
UUIDArray, UUIDArrayObject = _std_arrays("UUIDArray", tc.TC_UUID_ARRAY, tn.NAME_UUID_ARR,
                                         ti.TYPE_UUID_ARR, UUIDObject)
TimestampArray, TimestampArrayObject = _std_arrays("TimestampArray", tc.TC_TIMESTAMP_ARRAY,
                                                   tn.NAME_TIMESTAMP_ARR, ti.TYPE_TIMESTAMP_ARR,
                                                   TimestampObject)
DateArray, DateArrayObject = _std_arrays("DateArray", tc.TC_DATE_ARRAY, tn.NAME_DATE_ARR,
                                         ti.TYPE_DATE_ARR, DateObject)
TimeArray, TimeArrayObject = _std_arrays("TimeArray", tc.TC_TIME_ARRAY, tn.NAME_TIME_ARR,
                                         ti.TYPE_TIME_ARR, TimeObject)


class EnumArray(StandardArray):
    _type_name, _type_id = "Enum[]", ti.TYPE_ENUM_ARR
    standard_type = EnumObject


class EnumArrayObject(StandardArrayObject):
    _type_name, _type_id, type_code = "Enum[]", ti.TYPE_ENUM_ARR, tc.TC_ENUM_ARRAY
    standard_type = EnumObject
    OBJECT = -1


class BinaryEnumArrayObject(EnumArrayObject):
    standard_type = BinaryEnumObject


class ObjectArray(EnumArrayObject):
    standard_type = BinaryEnumObject  # as in pyignite


# -- complex objects ----------------------------------------------------------------------------


class Map(IgniteDataType):
    _type_name, _type_id = tn.NAME_MAP, ti.TYPE_MAP
    HASH_MAP = 1
    LINKED_HASH_MAP = 2


class MapObject(Nullable):
    """A ``(kind, dict)`` value; ``HASH_MAP`` comes back as dict, ``LINKED_HASH_MAP`` ordered."""

    _type_name, _type_id, type_code = tn.NAME_MAP, ti.TYPE_MAP, tc.TC_MAP
    HASH_MAP = 1
    LINKED_HASH_MAP = 2


class CollectionObject(Nullable):
    """A ``(kind, list)`` value."""

    _type_name, _type_id, type_code = tn.NAME_COL, ti.TYPE_COL, tc.TC_COLLECTION
    USER_SET = -1
    USER_COL = 0
    ARR_LIST = 1
    LINKED_LIST = 2
    HASH_SET = 3
    LINKED_HASH_SET = 4
    SINGLETON_LIST = 5


class ObjectArrayObject(Nullable):
    """A ``(type_id, list)`` value; ``OBJECT`` (-1) is java.lang.Object."""

    _type_name, _type_id, type_code = tn.NAME_OBJ_ARR, ti.TYPE_OBJ_ARR, tc.TC_OBJECT_ARRAY
    OBJECT = -1


class WrappedDataObject(Nullable):
    """Not supported by the stub (the broker unwraps such values before answering)."""

    type_code = tc.TC_ARRAY_WRAPPED_OBJECTS


class BinaryObject(Nullable):
    """A complex object: an instance of a ``GenericObjectMeta`` class."""

    _type_id, type_code = ti.TYPE_BINARY_OBJ, tc.TC_COMPLEX_OBJECT
    USER_TYPE = 0x0001
    HAS_SCHEMA = 0x0002
    HAS_RAW_DATA = 0x0004
    OFFSET_ONE_BYTE = 0x0008
    OFFSET_TWO_BYTES = 0x0010
    COMPACT_FOOTER = 0x0020

    @classmethod
    def hashcode(cls, value: Any, client: Any = None, **kwargs: Any) -> int:
        """The object's hash code; with a client, computed from its fields as pyignite does
        (by encoding them), else only the one it carries (None for a new object, as in
        pyignite, whatever the annotation says)."""
        known = getattr(value, "_hashcode", None)
        if known or client is None:
            return known  # type: ignore[return-value]  # None for a new object
        from ._hashing import object_hash

        return object_hash(value)

    @classmethod
    async def hashcode_async(cls, value: Any, client: Any = None, **kwargs: Any) -> int:
        return cls.hashcode(value, client)


class AnyDataObject:
    """pyignite's "infer the type from the Python value" marker (the stub infers in wire.py)."""


class AnyDataArray(AnyDataObject):
    pass


def _code_of(hint: type) -> int:
    """A hint's one-byte type code as an int (every hint in the table below has one)."""
    if not issubclass(hint, IgniteDataType) or hint.type_code is None:
        raise TypeError(f"{hint.__name__} names no Ignite type")
    return hint.type_code[0]


#: Ignite type code -> the hint class that reads it (pyignite's ``tc_map``), for schemas.
HINT_BY_CODE: dict[int, type] = {
    _code_of(cls): cls
    for cls in (
        ByteObject, ShortObject, IntObject, LongObject, FloatObject, DoubleObject, CharObject,
        BoolObject, String, UUIDObject, DateObject, ByteArrayObject, ShortArrayObject,
        IntArrayObject, LongArrayObject, FloatArrayObject, DoubleArrayObject, CharArrayObject,
        BoolArrayObject, StringArrayObject, UUIDArrayObject, DateArrayObject, ObjectArrayObject,
        CollectionObject, MapObject, EnumObject, EnumArrayObject, DecimalObject,
        DecimalArrayObject, TimestampObject, TimestampArrayObject, TimeObject, TimeArrayObject,
        BinaryEnumObject, BinaryObject, WrappedDataObject,
    )
}
HINT_BY_CODE[tc.TC_NULL[0]] = Null

#: pyignite's ALLOWED_FIELD_TYPES for GenericObjectMeta schemas.
ALLOWED_FIELD_TYPES: frozenset[type] = frozenset(HINT_BY_CODE.values())
