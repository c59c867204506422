"""pyignite-compatible type hints: pass them as ``key_hint``/``value_hint`` to choose the Ignite
type a Python value is stored as (e.g. ``IntObject`` for a 32-bit int instead of a long)."""

from __future__ import annotations


class _Hint:
    """A type hint; ``type_code`` is the Ignite binary type code it selects."""

    type_code: int = 0


class ByteObject(_Hint):
    type_code = 1


class ShortObject(_Hint):
    type_code = 2


class IntObject(_Hint):
    type_code = 3


class LongObject(_Hint):
    type_code = 4


class FloatObject(_Hint):
    type_code = 5


class DoubleObject(_Hint):
    type_code = 6


class CharObject(_Hint):
    type_code = 7


class BoolObject(_Hint):
    type_code = 8


class String(_Hint):
    type_code = 9


class ByteArrayObject(_Hint):
    type_code = 12


class Null(_Hint):
    type_code = 101


__all__ = [
    "BoolObject",
    "ByteArrayObject",
    "ByteObject",
    "CharObject",
    "DoubleObject",
    "FloatObject",
    "IntObject",
    "LongObject",
    "Null",
    "ShortObject",
    "String",
]
