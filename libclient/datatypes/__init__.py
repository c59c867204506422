"""pyignite-compatible type hints and enums, at pyignite's module paths.

Pass a hint as ``key_hint``/``value_hint`` (or a ``(value, hint)`` tuple) to choose the Ignite
type a Python value is stored as, e.g. ``IntObject`` for a 32-bit int instead of a long.  The
submodules (``prop_codes``, ``cache_config``, ``key_value``, ...) load on first use.
"""

from __future__ import annotations

import importlib

from ._hints import (
    AnyDataArray,
    AnyDataObject,
    BinaryEnumArrayObject,
    BinaryEnumObject,
    BinaryObject,
    Bool,
    BoolArray,
    BoolArrayObject,
    BoolObject,
    Byte,
    ByteArray,
    ByteArrayObject,
    ByteObject,
    Char,
    CharArray,
    CharArrayObject,
    CharObject,
    CollectionObject,
    DataObject,
    DateArray,
    DateArrayObject,
    DateObject,
    DecimalArray,
    DecimalArrayObject,
    DecimalObject,
    Double,
    DoubleArray,
    DoubleArrayObject,
    DoubleObject,
    EnumArray,
    EnumArrayObject,
    EnumObject,
    Float,
    FloatArray,
    FloatArrayObject,
    FloatObject,
    Int,
    IntArray,
    IntArrayObject,
    IntObject,
    Long,
    LongArray,
    LongArrayObject,
    LongObject,
    Map,
    MapObject,
    Null,
    Nullable,
    ObjectArray,
    ObjectArrayObject,
    Primitive,
    Short,
    ShortArray,
    ShortArrayObject,
    ShortObject,
    String,
    StringArray,
    StringArrayObject,
    TimeArray,
    TimeArrayObject,
    TimeObject,
    TimestampArray,
    TimestampArrayObject,
    TimestampObject,
    UUIDArray,
    UUIDArrayObject,
    UUIDObject,
    WrappedDataObject,
)
from .cluster_state import ClusterState
from .expiry_policy import ExpiryPolicy
from .internal import Struct, StructArray, tc_map
from .transactions import TransactionConcurrency, TransactionIsolation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SUBMODULES = frozenset({
    "base", "binary", "cache_config", "cache_properties", "cluster_state", "complex",
    "expiry_policy", "internal", "key_value",
    "null_object", "primitive", "primitive_arrays", "primitive_objects", "prop_codes", "sql",
    "standard", "transactions", "type_codes", "type_ids", "type_names",
})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnyDataArray", "AnyDataObject", "BinaryEnumArrayObject", "BinaryEnumObject", "BinaryObject",
    "Bool", "BoolArray", "BoolArrayObject", "BoolObject", "Byte", "ByteArray", "ByteArrayObject",
    "ByteObject", "Char", "CharArray", "CharArrayObject", "CharObject", "ClusterState",
    "CollectionObject", "DataObject", "DateArray", "DateArrayObject", "DateObject",
    "DecimalArray", "DecimalArrayObject", "DecimalObject", "Double", "DoubleArray",
    "DoubleArrayObject", "DoubleObject", "EnumArray", "EnumArrayObject", "EnumObject",
    "ExpiryPolicy", "Float", "FloatArray", "FloatArrayObject", "FloatObject", "Int", "IntArray",
    "IntArrayObject", "IntObject", "Long", "LongArray", "LongArrayObject", "LongObject", "Map",
    "MapObject", "Null", "Nullable", "ObjectArray", "ObjectArrayObject", "Primitive", "Short",
    "ShortArray", "ShortArrayObject", "ShortObject", "String", "StringArray",
    "StringArrayObject", "Struct", "StructArray", "TimeArray", "TimeArrayObject", "TimeObject",
    "TimestampArray",
    "TimestampArrayObject", "TimestampObject", "TransactionConcurrency", "TransactionIsolation",
    "UUIDArray", "UUIDArrayObject", "UUIDObject", "WrappedDataObject", "tc_map",
]
