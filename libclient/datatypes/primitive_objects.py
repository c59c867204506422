"""pyignite's nullable primitive hints (``pyignite.datatypes.primitive_objects``)."""

from ._hints import (
    BoolObject,
    ByteObject,
    CharObject,
    DataObject,
    DoubleObject,
    FloatObject,
    IntObject,
    LongObject,
    ShortObject,
)

__all__ = [
    "BoolObject",
    "ByteObject",
    "CharObject",
    "DataObject",
    "DoubleObject",
    "FloatObject",
    "IntObject",
    "LongObject",
    "ShortObject",
]
