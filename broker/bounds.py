"""The bounds on every number, count and string length a worker sends that reaches an Ignite
node: one table, checked by the handlers of broker/ops_*.py before anything is encoded.

Policy (docs/ipc.md, "Argument bounds"): a page size above its bound is clamped to it (the
cursor then has more pages, which stubs fetch anyway); any other value outside its range, and
an enum value the node does not know, is refused with BAD_REQUEST naming the argument and the
allowed range, so a node never receives a request it would fail on or choke on.  Bounds whose
``high`` names a ``Limits`` field come from limits.* settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from protocol.binary import TypeCode
from protocol.binary.values import Typed
from protocol.cacheconfig import Prop
from protocol.limits import MAX_PARTITIONS_COUNT

from . import sqlhead
from .errors import BadRequest

I32_MAX = 2**31 - 1
I64_MAX = 2**63 - 1
#: Expiry durations: 100 years in ms, far from overflowing the node's ``now + duration``.
EXPIRY_MAX_MS = 100 * 365 * 24 * 3600 * 1000
#: The highest partition number: Ignite's CacheConfiguration.MAX_PARTITIONS_COUNT (65000,
#: protocol.limits, the one source for every layer) less one.
MAX_PARTITION = MAX_PARTITIONS_COUNT - 1


@dataclass(frozen=True, slots=True)
class Bound:
    low: int
    high: int | str  # an int, or the name of the Limits field (a limits.* setting) holding it
    why: str
    clamp: bool = False  # above high: use high (page sizes) instead of refusing

    def limit(self, limits: Any) -> int:
        return self.high if isinstance(self.high, int) else getattr(limits, self.high)


# fmt: off
#: Numbers, by the argument's name (``<op>.<arg>`` where ops differ).
NUMBERS: dict[str, Bound] = {
    "page_size": Bound(1, "max_page_size", "rows per page (limits.max_page_size); Ignite "
                       "allocates a page up front and halts on running out of heap", clamp=True),
    "max_rows": Bound(-1, I32_MAX, "rows; -1 or 0: no limit"),
    "query.timeout": Bound(0, I32_MAX, "ms; 0: none (Ignite reads it as a Java int)"),
    "tx.timeout": Bound(0, I32_MAX, "ms; 0: none"),
    "expiry": Bound(-2, EXPIRY_MAX_MS, "ms; -2 unchanged, -1 eternal, 0 expire at once"),
    "partitions": Bound(-1, MAX_PARTITION, "a partition number, -1: all"),
    "enum_ordinal": Bound(-(2**31), I32_MAX, "an enum literal's ordinal (Java int)"),
    "type_id": Bound(-(2**31), I32_MAX, "a binary type id (Java int)"),
}

#: List lengths.
COUNTS: dict[str, Bound] = {
    "keys": Bound(0, "max_keys_per_request", "keys per request (limits.max_keys_per_request)"),
    "pairs": Bound(0, "max_keys_per_request", "pairs per request (limits.max_keys_per_request)"),
    "args": Bound(0, 65535, "query arguments"),
    "peek_modes": Bound(0, 6, "peek modes"),
    "schema": Bound(0, 1024, "fields or enum literals of a binary type"),
    "filter_properties": Bound(0, 256, "fields set on a continuous query's remote filter"),
}

#: String lengths in characters, except cache names: UTF-8 bytes, so that the node's cache
#: directory name (cacheGroup-<name>) fits a 255-byte file name on a persistent cluster.
TEXTS: dict[str, Bound] = {
    "query": Bound(0, 1 << 20, "characters"),
    "name": Bound(0, 1024, "characters"),  # schema, table, label, type and field names
    # A cache's data region and SQL schema: the node's setters refuse an empty one while it
    # parses the request, and a request it cannot parse closes the whole connection.
    "config_text": Bound(1, 1024, "characters"),
    "cache_name": Bound(1, 240, "UTF-8 bytes"),
}

#: Numeric cache-configuration properties (cache_create config maps): far above any real
#: configuration, below what makes a node allocate without limit.
CONFIG: dict[Prop, Bound] = {
    Prop.BACKUPS_NUMBER: Bound(0, 1024, "backups"),
    Prop.QUERY_PARALLELISM: Bound(1, 256, "index segments per node"),
    Prop.QUERY_DETAIL_METRIC_SIZE: Bound(0, 65536, "query metrics kept"),
    Prop.SQL_INDEX_INLINE_MAX_SIZE: Bound(-1, 2048, "bytes (Ignite's maximum inline size)"),
    Prop.MAX_QUERY_ITERATORS: Bound(0, 65536, "iterators"),
    Prop.REBALANCE_DELAY: Bound(-1, I64_MAX, "ms; -1: manual"),
    Prop.REBALANCE_TIMEOUT: Bound(0, I64_MAX, "ms"),
    Prop.REBALANCE_BATCH_SIZE: Bound(1, 64 << 20, "bytes per rebalance message"),
    Prop.REBALANCE_BATCHES_PREFETCH_COUNT: Bound(1, 1024, "batches"),
    Prop.REBALANCE_ORDER: Bound(-(2**31), I32_MAX, "a Java int"),
    Prop.REBALANCE_THROTTLE: Bound(0, I64_MAX, "ms"),
    Prop.DEFAULT_LOCK_TIMEOUT: Bound(0, I64_MAX, "ms"),
    Prop.MAX_CONCURRENT_ASYNC_OPERATIONS: Bound(0, I32_MAX, "operations; 0: unlimited"),
}
_CONFIG_NAMES = (Prop.NAME, Prop.GROUP_NAME)
_CONFIG_TEXTS = (Prop.DATA_REGION_NAME, Prop.SQL_SCHEMA)
# fmt: on

#: Ignite 2.17 halts a node (CorruptedTreeException: its failure handler stops the JVM) on
#: the next update of an entry whose value is an empty byte array and whose data row spans
#: more than one page: at the default 4 KiB page, a key of 4,005 encoded bytes halted the
#: primary and its backup, 3,955 did not (fuzz finding 12, docs/reliability.md). Pages can
#: be as small as 1 KiB, so such a write is refused from this key size on.
EMPTY_BYTES_KEY_MAX = 512

#: Binary field type codes a node can name (its field-type table ends at COMPLEX_OBJECT).
FIELD_TYPE_CODES = frozenset(c.value for c in TypeCode if 0 < c.value <= TypeCode.COMPLEX_OBJECT)

#: The limits.* settings the bounds, the tx/cursor caps and the cache-change rate read (Limits
#: fields of those names).
BOUND_SETTINGS = ("max_page_size", "max_keys_per_request", "max_transactions_per_worker",
                  "max_cursors_per_worker", "node_max_active_tx_per_connection",
                  "node_max_open_cursors_per_connection", "cache_changes_per_second",
                  "cache_changes_burst", "cache_changes_duty", "cache_changes_hold_burst")

_MISSING = object()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(bound: Bound, high: int, unit: str = "") -> str:
    return f"{bound.low}..{high}{unit} ({bound.why})"


def number(args: dict[str, Any], name: str, default: int, limits: Any,
           bound_name: str | None = None) -> int:
    """The int argument ``name`` (``default`` when absent), clamped or refused per its bound."""
    value = args.get(name, _MISSING)
    if value is _MISSING:
        return default
    if not _is_int(value):
        raise BadRequest(f"argument {name!r} must be an int, got {type(value).__name__}")
    return check(value, bound_name or name, limits, name)


def check(value: int, bound_name: str, limits: Any, what: str | None = None) -> int:
    bound = NUMBERS[bound_name]
    high = bound.limit(limits)
    if value > high and bound.clamp:
        return high
    if not bound.low <= value <= high:
        raise BadRequest(f"argument {what or bound_name!r} is {value}: allowed "
                         f"{_range(bound, high)}")
    return value


def count(items: list[Any], name: str, limits: Any) -> list[Any]:
    """``items`` if its length is within the bound of the list argument ``name``."""
    bound = COUNTS[name]
    high = bound.limit(limits)
    if len(items) > high:
        raise BadRequest(f"argument {name!r} has {len(items)} items: at most {high} "
                         f"{bound.why}")
    return items


def optional_text(value: str | None, name: str, bound_name: str = "name") -> str | None:
    """``text``, where None passes."""
    return None if value is None else text(value, name, bound_name)


def text(value: str, name: str, bound_name: str = "name") -> str:
    """``value`` if its length is within its bound."""
    bound = TEXTS[bound_name]
    size = len(value.encode("utf-8", "surrogatepass")) if bound_name == "cache_name" else len(value)
    high = bound.limit(None)  # text bounds are fixed, not limits.* settings
    if not bound.low <= size <= high:
        raise BadRequest(f"argument {name!r} is {size} {bound.why} long: allowed "
                         f"{bound.low}..{high}")
    return value


def member(args: dict[str, Any], name: str, enum: type[IntEnum], default: int | None) -> int:
    """The argument ``name`` as a member of ``enum`` (the protocol's contract); required when
    ``default`` is None."""
    value = args.get(name, default)
    if value is None:
        raise BadRequest(f"missing argument {name!r}")
    if not _is_int(value) or value not in enum._value2member_map_:
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum)
        raise BadRequest(f"argument {name!r} is {value!r}: allowed {allowed}")
    return int(value)


def members(values: Iterable[Any], name: str, allowed: Iterable[int]) -> None:
    allowed = frozenset(allowed)
    for value in values:
        if not _is_int(value) or value not in allowed:
            raise BadRequest(f"argument {name!r} holds {value!r}: allowed "
                             f"{', '.join(map(str, sorted(allowed)))}")


def expiry(value: Any) -> tuple[int, int, int]:
    """An expiry ``[create_ms, update_ms, access_ms]`` within the node's accepted values."""
    if not isinstance(value, list | tuple) or len(value) != 3 or not all(map(_is_int, value)):
        raise BadRequest("argument 'expiry' must be [create_ms, update_ms, access_ms] (ints)")
    for v in value:
        check(v, "expiry", None)
    return value[0], value[1], value[2]


def is_empty_bytes(value: Any) -> bool:
    """Whether ``value`` is stored as an empty byte array (a raw byte[] cache object)."""
    if type(value) is bytes:
        return not value
    return (isinstance(value, Typed) and value.type_code == TypeCode.BYTE_ARRAY
            and isinstance(value.value, bytes | bytearray | list) and not value.value)


def stored_entry(key_size: int) -> None:
    """A write of an empty byte array value under a key of ``key_size`` encoded bytes."""
    if key_size > EMPTY_BYTES_KEY_MAX:
        raise BadRequest(
            f"an empty byte array value under a key of {key_size} encoded bytes (allowed up "
            f"to {EMPTY_BYTES_KEY_MAX}): Ignite 2.17 corrupts such an entry and halts the "
            "node on its next update; store a non-empty value or use a shorter key")


def sql_write(query: str, args: list[Any]) -> None:
    """An SQL write that stores an empty byte array, as an argument or an X'' literal:
    refused whatever its key, which is not known here (a statement names it in its own
    words), for the reason of ``stored_entry``."""
    if (any(map(is_empty_bytes, args)) or sqlhead.has_empty_binary_literal(query)) \
            and sqlhead.writes(query):
        raise BadRequest(
            "an empty byte array in an SQL write: Ignite 2.17 corrupts an entry whose value "
            "is an empty byte array under a key of about 4 KB or more and halts the node on "
            "its next update, and the key an SQL statement writes is not known to the "
            "broker; write NULL or a non-empty value, or use cache_put (which checks the key)")


def cache_config(config: dict[Any, Any]) -> None:
    """The numbers and names of a cache configuration map, before the protocol encodes it."""
    for prop in _CONFIG_NAMES:
        name = config.get(prop)
        if name is not None:
            if not isinstance(name, str):
                raise BadRequest(f"config property {prop.value} ({prop.name}) must be a str")
            text(name, f"config {prop.value} ({prop.name})", "cache_name")
    for prop in _CONFIG_TEXTS:
        name = config.get(prop)
        if isinstance(name, str):
            text(name, f"config {prop.value} ({prop.name})", "config_text")
    for prop, bound in CONFIG.items():
        value = config.get(prop)
        if value is None:
            continue
        high = bound.limit(None)
        if not _is_int(value) or not bound.low <= value <= high:
            raise BadRequest(f"config property {prop.value} ({prop.name}) is {value!r}: "
                             f"allowed {_range(bound, high)}")
    policy = config.get(Prop.EXPIRY_POLICY)
    if isinstance(policy, dict):
        policy = [policy.get(k, -2) for k in ("create", "update", "access")]
    if policy is not None:
        expiry(policy)
