"""pyignite's ``pyignite.utils`` helpers that user code calls (ids, hash codes, small checks),
with the hashing done by protocol.hashing / protocol.affinity, as the broker and Ignite do it.

Where pyignite's result differs from Ignite's own (strings outside the BMP, decimals of more
than 28 digits, 64-bit values it does not fold to 32 bits), these return what Ignite computes.
"""

from __future__ import annotations

import functools
import inspect
import warnings

from protocol import hashing

from .datatypes.base import IgniteDataType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "DIGITS_PER_INT", "FALLBACK", "LONG_MASK", "cache_id", "capitalize", "datetime_hashcode",
    "decimal_hashcode", "deprecated", "entity_id", "get_field_by_id", "hashcode", "int_overflow",
    "is_binary", "is_hinted", "is_iterable", "is_pow2", "process_delimiter", "schema_id",
    "unsigned",
]

#: pyignite: True when its C extension is missing and slower Python fallbacks hash.  Here the
#: one implementation is protocol.hashing, no fallback: False, as in a complete pyignite.
FALLBACK = False

LONG_MASK = 0xFFFFFFFF
DIGITS_PER_INT = 9


def is_pow2(value: int) -> bool:
    """Check if value is power of two."""
    return value > 0 and (value & (value - 1)) == 0


def is_iterable(value: Any) -> bool:
    """Check if value is iterable."""
    try:
        iter(value)
    except TypeError:
        return False
    return True


def is_binary(value: Any) -> bool:
    """Check if a value is a pythonic representation of a Complex object."""
    return all(hasattr(value, name) for name in ("type_name", "type_id", "schema", "schema_id"))


def is_hinted(value: Any) -> bool:
    """Check if a value is a tuple of data item and its type hint."""
    return (isinstance(value, tuple) and len(value) == 2 and inspect.isclass(value[1])
            and issubclass(value[1], IgniteDataType))


def int_overflow(value: int) -> int:
    """Simulates 32bit integer overflow."""
    return ((value ^ 0x80000000) & 0xFFFFFFFF) - 0x80000000


def hashcode(data: str | bytes | bytearray | memoryview | None) -> int:
    """Java's hash code of a string (``String.hashCode``) or of a byte array's contents (as
    Ignite hashes a complex object's data: signed bytes, from 1); 0 for None."""
    if data is None:
        return 0
    if isinstance(data, str):
        return hashing.java_string_hash(data)
    return hashing.object_hash(data)


def cache_id(cache: str | int) -> int:
    """Create a cache ID from cache name (an int is an ID already)."""
    return cache if type(cache) is int else hashing.cache_id(cache)  # type: ignore[arg-type]


def entity_id(cache: str | int | None) -> int | None:
    """Create a type ID from type name or field ID from field name (lower-cased hash)."""
    if cache is None:
        return None
    return cache if isinstance(cache, int) else hashing.type_id(cache)


def schema_id(schema: int | dict[str, Any] | None) -> int:
    """Calculate Complex Object schema ID from its field names (an int passes through)."""
    if isinstance(schema, int):
        return schema
    if not schema:
        return 0
    return hashing.schema_id(hashing.field_id(name) for name in schema)


def decimal_hashcode(value: Any) -> int:
    """``java.math.BigDecimal.hashCode()`` of a decimal as it is written: normalised, as
    pyignite writes it (1.50 as 1.5), but never rounded (pyignite: to 28 digits)."""
    from .datatypes._hashing import java_hash
    from .datatypes.type_codes import TC_DECIMAL
    from .wire import normalized_decimal

    return java_hash(normalized_decimal(value), TC_DECIMAL[0])


def datetime_hashcode(value: int) -> int:
    """The Java hash code of a time in milliseconds since the epoch (``Long.hashCode``)."""
    from .datatypes._hashing import long_hash

    return long_hash(value)


def get_field_by_id(obj: Any, field_id: int) -> tuple[Any, Any] | None:
    """A complex object's field value and type hint, given the field's entity ID."""
    for name, hint in obj._schema.items():
        if entity_id(name) == field_id:
            return getattr(obj, name, getattr(hint, "default", None)), hint
    return None


def unsigned(value: int, c_type: Any = None) -> int:
    """Convert signed integer value to unsigned (``ctypes.c_uint`` unless told)."""
    import ctypes

    return (c_type or ctypes.c_uint)(value).value


def capitalize(string: str) -> str:
    """Capitalize the first character only (``str.capitalize`` lowers the rest)."""
    return string[:1].upper() + string[1:]


def process_delimiter(name: str, delimiter: str) -> str:
    """Split the name by delimiter, capitalize each part, merge."""
    return "".join(capitalize(part) for part in name.split(delimiter))


def deprecated(version: str, reason: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator that warns (DeprecationWarning) on each call."""

    def decorator_deprecated(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper_deprecated(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(f"Deprecated since {version}. The reason: {reason}",
                          category=DeprecationWarning, stacklevel=2)
            return fn(*args, **kwargs)

        return wrapper_deprecated

    return decorator_deprecated

