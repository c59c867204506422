"""pyignite's bare primitive hints (``pyignite.datatypes.primitive``)."""

from ._hints import (
    Bool,
    Byte,
    Char,
    Double,
    Float,
    Int,
    Long,
    Primitive,
    Short,
)

__all__ = [
    "Bool",
    "Byte",
    "Char",
    "Double",
    "Float",
    "Int",
    "Long",
    "Primitive",
    "Short",
]
