"""The one-byte type codes that prefix every value in Ignite's binary format."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["TypeCode"]


class TypeCode(IntEnum):
    """Ignite binary type codes (GridBinaryMarshaller); the wire byte is a signed i8."""

    BYTE = 1
    SHORT = 2
    INT = 3
    LONG = 4
    FLOAT = 5
    DOUBLE = 6
    CHAR = 7
    BOOL = 8
    STRING = 9
    UUID = 10
    DATE = 11
    BYTE_ARRAY = 12
    SHORT_ARRAY = 13
    INT_ARRAY = 14
    LONG_ARRAY = 15
    FLOAT_ARRAY = 16
    DOUBLE_ARRAY = 17
    CHAR_ARRAY = 18
    BOOL_ARRAY = 19
    STRING_ARRAY = 20
    UUID_ARRAY = 21
    DATE_ARRAY = 22
    OBJECT_ARRAY = 23
    COLLECTION = 24
    MAP = 25
    WRAPPED_BINARY = 27  # Ignite's PORTABLE_OBJ: i32 n, n bytes, i32 root offset
    ENUM = 28
    ENUM_ARRAY = 29
    DECIMAL = 30
    DECIMAL_ARRAY = 31
    CLASS = 32  # Java-only
    TIMESTAMP = 33
    TIMESTAMP_ARRAY = 34
    PROXY = 35  # Java-only
    TIME = 36
    TIME_ARRAY = 37
    BINARY_ENUM = 38
    NULL = 101
    HANDLE = 102
    COMPLEX_OBJECT = 103
    OPTIMIZED_MARSHALLER = -2  # Java-only blob
