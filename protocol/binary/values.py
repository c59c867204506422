"""Python value types for the Ignite types that have no exact Python builtin.

Decoders return these, encoders accept them (plus builtins via the automatic mapping), and the
broker translates them to and from IPC ext types.  They are plain frozen value objects: equal
when their fields are equal, hashable where their fields are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Timestamp:
    """java.sql.Timestamp: milliseconds since the epoch (UTC) + nanoseconds within that milli."""

    epoch_ms: int
    nanos: int = 0  # 0..999_999


@dataclass(frozen=True, slots=True)
class Date:
    """java.util.Date: milliseconds since the epoch (UTC)."""

    epoch_ms: int


@dataclass(frozen=True, slots=True)
class Time:
    """java.sql.Time: milliseconds since midnight."""

    ms: int


@dataclass(frozen=True, slots=True)
class EnumValue:
    """An Enum (28) or BinaryEnum (38): the enum's type id and the constant's ordinal."""

    type_id: int
    ordinal: int
    binary: bool = False  # True when it came as 38 (BinaryEnum)


@dataclass(frozen=True, slots=True)
class Collection:
    """Collection (24): a kind code (see CollectionKind) and the elements."""

    kind: int
    items: list[Any] = field(default_factory=list, hash=False)


@dataclass(frozen=True, slots=True)
class Map:
    """Map (25): a kind code (1 HASH_MAP, 2 LINKED_HASH_MAP) and (key, value) pairs in order."""

    kind: int
    items: list[tuple[Any, Any]] = field(default_factory=list, hash=False)


@dataclass(frozen=True, slots=True)
class ObjectArray:
    """Object[] (23): the component type id (-1 = java.lang.Object) and the elements."""

    type_id: int
    items: list[Any] = field(default_factory=list, hash=False)


@dataclass(frozen=True, slots=True)
class BinaryObject:
    """A complex object (103) with its fields by name, in schema order.

    ``type_name`` is known when the type is registered (or read from metadata);
    ``hash_code`` is the header hash as read. The writer ignores it and always computes the
    hash from the bytes it writes (the server trusts the header, so only that value is safe).
    ``raw`` is the raw-data section (Binarylizable raw writers), None when absent.
    """

    type_id: int
    fields: dict[str, Any] = field(hash=False)
    type_name: str | None = None
    schema_id: int | None = None
    hash_code: int | None = None
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class Typed:
    """A value with an explicit type code (pyignite's type hint), e.g. Typed(3, 5) = Int 5,
    Typed(14, [1, 2]) = int[]."""

    type_code: int
    value: Any


class CollectionKind:
    USER_SET = -1
    USER_COL = 0
    ARR_LIST = 1
    LINKED_LIST = 2
    HASH_SET = 3
    LINKED_HASH_SET = 4
    SINGLETON_LIST = 5


class MapKind:
    HASH_MAP = 1
    LINKED_HASH_MAP = 2


# The kinds a node reads (BinaryUtils): any other fails its request parsing, and the node then
# drops the connection.
COLLECTION_KINDS = frozenset(range(CollectionKind.USER_SET, CollectionKind.SINGLETON_LIST + 1))
MAP_KINDS = frozenset({MapKind.HASH_MAP, MapKind.LINKED_HASH_MAP})


__all__ = [
    "COLLECTION_KINDS",
    "MAP_KINDS",
    "BinaryObject",
    "Collection",
    "CollectionKind",
    "Date",
    "EnumValue",
    "Map",
    "MapKind",
    "ObjectArray",
    "Time",
    "Timestamp",
    "Typed",
]
