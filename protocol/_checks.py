"""Argument checks for the request builders: a value of the wrong type, or out of the range the
server accepts, becomes LocalProtocolError naming the field before anything is encoded.

The builders must never let a node see a request it cannot parse: Ignite closes the whole
connection then, failing every other request on it. Struct packing alone is not enough: it
accepts a page size of 0 or an expiry of -5, and its TypeError names no field.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, TypeVar, overload

from .errors import LocalProtocolError

__all__ = [
    "I8",
    "I16",
    "I32",
    "I64",
    "describe",
    "feature_set",
    "flag",
    "i32",
    "i64",
    "integer",
    "items",
    "one_of",
    "optional_str",
    "positive_i32",
    "required_str",
]

T = TypeVar("T")

I8 = (-(2**7), 2**7 - 1)
I16 = (-(2**15), 2**15 - 1)
I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)


def describe(value: object) -> str:
    """A short description of any value, safe to put in a message: never a deep, long or
    failing repr (a list nested 5,000 deep, a 10,000-digit int)."""
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return repr(value)
    if kind is int:
        return str(value) if value.bit_length() <= 128 else f"an int of {value.bit_length()} bits"  # type: ignore[attr-defined]
    if kind is str or kind is bytes:
        text = repr(value[:40])  # type: ignore[index]
        return text if len(value) <= 40 else f"{text[:-1]}...{text[-1]} ({len(value)} long)"  # type: ignore[arg-type]
    return f"a {kind.__name__}"


def integer(value: object, what: str, low: int = I64[0], high: int = I64[1]) -> int:
    """``value`` as an int in ``low..high`` (bools and floats are refused, IntEnums taken)."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise LocalProtocolError(f"{what} must be an int, got {describe(value)}")
        value = int(value)
    if not low <= value <= high:
        raise LocalProtocolError(f"{what} must be in {low}..{high}, got {describe(value)}")
    return value


def i32(value: object, what: str) -> int:
    return integer(value, what, *I32)


def i64(value: object, what: str) -> int:
    return integer(value, what, *I64)


def positive_i32(value: object, what: str) -> int:
    """A count or size the server refuses at 0 or below (a page size)."""
    return integer(value, what, 1, I32[1])


def one_of(value: object, valid: Collection[int], what: str) -> int:
    """An enum ordinal or code that must be one of ``valid``."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in valid:
        raise LocalProtocolError(f"{what} must be one of {sorted(valid)}, got {describe(value)}")
    return int(value)


def flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise LocalProtocolError(f"{what} must be a bool, got {describe(value)}")
    return value


def required_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a str, got {describe(value)}")
    return value


def optional_str(value: object, what: str) -> str | None:
    return None if value is None else required_str(value, what)


@overload
def items(values: Iterable[T], what: str) -> list[T]: ...
@overload
def items(values: object, what: str) -> list[object]: ...
def items(values: Any, what: str) -> list[Any]:
    """The items of a list-like argument (a str, bytes or a mapping is not one), as a new list."""
    if isinstance(values, (str, bytes, bytearray, memoryview, dict)):
        raise LocalProtocolError(f"{what} must be a list of items, got {describe(values)}")
    try:
        return list(values)
    except (TypeError, ValueError) as exc:  # not iterable, or failing while iterating
        raise LocalProtocolError(f"{what} must be a list of items: {exc}") from exc


def feature_set(features: Iterable[int]) -> frozenset[int]:
    """Negotiated feature bits (a set of small non-negative ints)."""
    if isinstance(features, frozenset) and all(type(bit) is int for bit in features):
        return features
    bits = items(features, "features")
    for bit in bits:
        integer(bit, "a feature bit", 0, 1023)
    return frozenset(bits)


def any_of(value: Any, kinds: tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kinds):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise LocalProtocolError(f"{what} must be a {names}, got {describe(value)}")
    return value
