"""Body builders and parsers of the query ops: SQL fields, scan, old SQL, cursors, continuous query.

Cursor lifecycle: a first-page response with ``more=False`` means the server already
released the cursor; otherwise fetch pages with its id and close it early with
``resource_close`` (RESOURCE_CLOSE, op 0). A continuous query is a resource too: its
events come as QUERY_CONTINUOUS_EVENT_NOTIFICATION (2007) notifications whose resource id
is the query's id, and ``resource_close`` stops it.

Transactions: the 2.17 query requests read the tx id only when feature bit 18
(TX_AWARE_QUERIES) is negotiated, so ``tx_id`` needs it in ``features``; an Ignite 2.17.0
node with the default configuration does not negotiate bit 18. All parsers refuse
trailing bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from . import _checks as check
from ._body import (
    BodyReader,
    pack,
    parse_empty,
    write_cache_prefix,
    write_objects,
    write_string,
)
from .binary.codec import Buffer, encode_value
from .binary.complex import raw_object
from .errors import LocalProtocolError, RemoteProtocolError
from .features import Feature
from .limits import MAX_PARTITIONS_COUNT

if TYPE_CHECKING:
    from ._body import Ctx

__all__ = [
    "SQL_TIMEOUT_MAX",
    "STATEMENT_TYPES",
    "CacheEntryEvent",
    "EntryPage",
    "EventType",
    "SqlFieldsPage",
    "StatementType",
    "continuous_query",
    "cursor_close",
    "java_filter",
    "parse_continuous_query",
    "parse_continuous_query_event",
    "parse_cursor_close",
    "parse_resource_close",
    "parse_scan",
    "parse_scan_page",
    "parse_sql",
    "parse_sql_fields",
    "parse_sql_fields_page",
    "parse_sql_page",
    "resource_close",
    "scan",
    "scan_page",
    "sql",
    "sql_fields",
    "sql_fields_page",
    "sql_page",
]


_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_BOOL = struct.Struct("<?")
_SQL_FIELDS_HEAD = struct.Struct("<ii")  # page size, max rows
_SQL_FIELDS_FLAGS = struct.Struct("<b??????q?")  # statement type, 6 flags, timeout, names
_SCAN_TAIL = struct.Struct("<ii?")  # page size, partition, local
_SQL_TAIL = struct.Struct("<???iq")  # distributed joins, local, replicated only, page, timeout
_CQ_TAIL = struct.Struct("<iq?")  # buffer size, time interval, include expired
_NULL = b"\x65"


class StatementType(IntEnum):
    ANY = 0
    SELECT = 1
    UPDATE = 2


STATEMENT_TYPES = frozenset(StatementType)
SQL_TIMEOUT_MAX = 2**31 - 1
"""SQL query timeouts travel as i64 but a node casts them to int and refuses a negative
result while parsing (a dropped connection): 0..SQL_TIMEOUT_MAX ms."""


class EventType(IntEnum):
    CREATED = 0
    UPDATED = 1
    REMOVED = 2
    EXPIRED = 3


@dataclass(frozen=True, slots=True)
class SqlFieldsPage:
    """The first page of an SQL fields query.

    ``field_names`` is empty unless the names were requested; ``column_count`` is always
    known and is what ``parse_sql_fields_page`` needs for the later pages.
    """

    cursor_id: int
    field_names: tuple[str, ...]
    rows: list[list[Any]] = field(hash=False)
    more: bool
    column_count: int


@dataclass(frozen=True, slots=True)
class EntryPage:
    """The first page of a scan or (deprecated) SQL query: (key, value) pairs."""

    cursor_id: int
    pairs: list[tuple[Any, Any]] = field(hash=False)
    more: bool


@dataclass(frozen=True, slots=True)
class CacheEntryEvent:
    """One continuous-query event; ``old_value``/``value`` are None where they do not apply."""

    key: Any
    old_value: Any
    value: Any
    event_type: EventType


# -- cursors -----------------------------------------------------------------------------------


def resource_close(resource_id: int) -> bytes:
    """Body of RESOURCE_CLOSE (0): ``i64 resource id`` (cursor, continuous query, task)."""
    return pack(_I64, check.i64(resource_id, "resource id"))


cursor_close = resource_close
parse_resource_close = parse_empty
parse_cursor_close = parse_empty


def _cursor_page(cursor_id: int) -> bytes:
    return pack(_I64, check.i64(cursor_id, "cursor id"))


def _query_prefix(cache_id: int, flags: int, tx_id: int | None, features: Iterable[int]
                  ) -> bytearray:
    if tx_id is not None and Feature.TX_AWARE_QUERIES not in check.feature_set(features):
        raise LocalProtocolError(
            "a tx id on a query needs feature bit 18 (TX_AWARE_QUERIES); older servers "
            "would misread every later field"
        )
    buf = bytearray()
    write_cache_prefix(buf, cache_id, flags, tx_id)
    return buf


# -- SQL fields (2004 / 2005) ------------------------------------------------------------------


def sql_fields(
    cache_id: int,
    query: str,
    *,
    schema: str | None = None,
    page_size: int = 1024,
    max_rows: int = -1,
    args: Sequence[object] = (),
    statement_type: int = StatementType.ANY,
    distributed_joins: bool = False,
    local: bool = False,
    replicated_only: bool = False,
    enforce_join_order: bool = False,
    collocated: bool = False,
    lazy: bool = False,
    timeout: int = 0,
    include_field_names: bool = False,
    partitions: Sequence[int] | None = None,
    update_batch_size: int = 1,
    tx_id: int | None = None,
    features: Iterable[int] = frozenset(),
    flags: int = 0,
    ctx: Ctx = None,
) -> bytes:
    """Body of QUERY_SQL_FIELDS (2004).

    ``cache_id`` may be 0 when ``schema`` names the schema. ``timeout`` is in ms; 0 means
    "none" with feature bit 6 and the server default without it. ``partitions`` and
    ``update_batch_size`` are sent only with feature bit 7 (asking for them without it is
    an error); ``args`` are typed by the value codec (use hints through ``values.Typed``).
    """
    features = check.feature_set(features)
    statement_type = check.one_of(statement_type, STATEMENT_TYPES, "statement type")
    buf = _query_prefix(cache_id, flags, tx_id, features)
    write_string(buf, schema, "schema")
    buf += pack(_SQL_FIELDS_HEAD, check.positive_i32(page_size, "page size"),
                check.i32(max_rows, "max rows"))
    write_string(buf, check.required_str(query, "query"), "query")
    write_objects(buf, args, None, ctx)
    flags_ = _flags(distributed_joins=distributed_joins, local=local,
                    replicated_only=replicated_only, enforce_join_order=enforce_join_order,
                    collocated=collocated, lazy=lazy)
    buf += pack(_SQL_FIELDS_FLAGS, statement_type, *flags_, _sql_timeout(timeout),
                check.flag(include_field_names, "include_field_names"))
    _sql_fields_extras(buf, partitions, update_batch_size, features)
    return bytes(buf)


def _flags(**flags: object) -> list[bool]:
    return [check.flag(value, name) for name, value in flags.items()]


def _sql_timeout(timeout: object) -> int:
    return check.integer(timeout, "timeout (ms)", 0, SQL_TIMEOUT_MAX)


def _sql_fields_extras(
    buf: bytearray, partitions: Sequence[int] | None, update_batch_size: int,
    features: frozenset[int],
) -> None:
    if Feature.QRY_PARTITIONS_BATCH_SIZE not in features:
        if partitions is not None or update_batch_size != 1:
            raise LocalProtocolError(
                "partitions / update_batch_size need feature bit 7 (QRY_PARTITIONS_BATCH_SIZE)"
            )
        return
    if partitions is None:
        buf += pack(_I32, -1)
    else:
        parts = _partitions(partitions)
        buf += pack(_I32, len(parts)) + struct.pack(f"<{len(parts)}i", *parts)
    buf += pack(_I32, check.positive_i32(update_batch_size, "update batch size"))


def _partitions(partitions: object) -> list[int]:
    """What SqlFieldsQuery.setPartitions accepts: distinct partitions, at least one."""
    parts = [check.integer(part, "partition", 0, MAX_PARTITIONS_COUNT - 1)
             for part in check.items(partitions, "partitions")]
    if not parts or len(set(parts)) != len(parts):
        raise LocalProtocolError("partitions must be distinct, and at least one")
    return parts


def parse_sql_fields(body: Buffer, include_field_names: bool, ctx: Ctx = None) -> SqlFieldsPage:
    """``i64 cursor | i32 columns | [names] | i32 rows | rows x columns x obj | bool more``."""
    reader = BodyReader(body, ctx=ctx)
    cursor_id = reader.i64()
    columns = reader.count(min_item_size=1 if include_field_names else 0)
    names: tuple[str, ...] = ()
    if include_field_names:
        names = tuple(reader.required_string("field name") for _ in range(columns))
    rows, more = _read_rows(reader, columns)
    return SqlFieldsPage(cursor_id, names, rows, more, columns)


def _read_rows(reader: BodyReader, columns: int) -> tuple[list[list[Any]], bool]:
    n = reader.count(min_item_size=max(columns, 0))
    if n and not columns:
        raise RemoteProtocolError(f"{n} rows of zero columns")
    rows = [[reader.value() for _ in range(columns)] for _ in range(n)]
    more = reader.flag()
    reader.finish("the rows")
    return rows, more


def sql_fields_page(cursor_id: int) -> bytes:
    """Body of QUERY_SQL_FIELDS_CURSOR_GET_PAGE (2005): ``i64 cursor id``."""
    return _cursor_page(cursor_id)


def parse_sql_fields_page(body: Buffer, column_count: int, ctx: Ctx = None
                          ) -> tuple[list[list[Any]], bool]:
    """``i32 rows | rows x column_count x obj | bool more`` -> (rows, more)."""
    if column_count < 0:
        raise LocalProtocolError(f"invalid column count {column_count}")
    return _read_rows(BodyReader(body, ctx=ctx), column_count)


# -- scan (2000 / 2001) ------------------------------------------------------------------------


def scan(
    cache_id: int,
    *,
    page_size: int = 1024,
    partition: int = -1,
    local: bool = False,
    flags: int = 0,
    tx_id: int | None = None,
    features: Iterable[int] = frozenset(),
) -> bytes:
    """Body of QUERY_SCAN (2000) without a filter: ``prefix | 101 | i32 page | i32 part | bool``.

    ``partition`` -1 scans all partitions.
    """
    buf = _query_prefix(cache_id, flags, tx_id, features)
    buf += _NULL  # no filter, hence no filter platform byte either
    buf += pack(_SCAN_TAIL, check.positive_i32(page_size, "page size"),
                check.integer(partition, "partition", -1, MAX_PARTITIONS_COUNT - 1),
                check.flag(local, "local"))
    return bytes(buf)


def parse_scan(body: Buffer, ctx: Ctx = None) -> EntryPage:
    """``i64 cursor | i32 n | n x (key, value) | bool more`` -> EntryPage."""
    reader = BodyReader(body, ctx=ctx)
    cursor_id = reader.i64()
    pairs, more = _read_pairs(reader)
    return EntryPage(cursor_id, pairs, more)


def _read_pairs(reader: BodyReader) -> tuple[list[tuple[Any, Any]], bool]:
    n = reader.count(min_item_size=2)
    pairs = [(reader.value(), reader.value()) for _ in range(n)]
    more = reader.flag()
    reader.finish("the entries")
    return pairs, more


def scan_page(cursor_id: int) -> bytes:
    """Body of QUERY_SCAN_CURSOR_GET_PAGE (2001): ``i64 cursor id``."""
    return _cursor_page(cursor_id)


def parse_scan_page(body: Buffer, ctx: Ctx = None) -> tuple[list[tuple[Any, Any]], bool]:
    """``i32 n | n x (key, value) | bool more`` -> (pairs, more)."""
    return _read_pairs(BodyReader(body, ctx=ctx))


# -- deprecated SQL (2002 / 2003) --------------------------------------------------------------


def sql(
    cache_id: int,
    table_name: str,
    query: str,
    *,
    args: Sequence[object] = (),
    distributed_joins: bool = False,
    local: bool = False,
    replicated_only: bool = False,
    page_size: int = 1024,
    timeout: int = 0,
    flags: int = 0,
    tx_id: int | None = None,
    features: Iterable[int] = (),
    ctx: Ctx = None,
) -> bytes:
    """Body of QUERY_SQL (2002, deprecated): the WHERE part of a query over a value type.

    ``prefix | str type name | str sql | i32 n + args | bool x3 | i32 page | i64 timeout``.
    """
    buf = _query_prefix(cache_id, flags, tx_id, features)
    write_string(buf, check.required_str(table_name, "table name"), "table name")
    write_string(buf, check.required_str(query, "query"), "query")
    write_objects(buf, args, None, ctx)
    flags_ = _flags(distributed_joins=distributed_joins, local=local,
                    replicated_only=replicated_only)
    buf += pack(_SQL_TAIL, *flags_, check.positive_i32(page_size, "page size"),
                _sql_timeout(timeout))
    return bytes(buf)


parse_sql = parse_scan


def sql_page(cursor_id: int) -> bytes:
    """Body of QUERY_SQL_CURSOR_GET_PAGE (2003): ``i64 cursor id``."""
    return _cursor_page(cursor_id)


parse_sql_page = parse_scan_page


# -- continuous queries (2006 / 2007) ----------------------------------------------------------


def continuous_query(
    cache_id: int,
    *,
    page_size: int = 1,
    time_interval: int = 0,
    include_expired: bool = False,
    flags: int = 0,
    remote_filter: bytes | None = None,
) -> bytes:
    """Body of QUERY_CONTINUOUS (2006).

    ``i32 cache id | i8 flags | i32 buffer size | i64 time interval ms | bool include
    expired | filter obj (i8 platform 1: Java) or 101``; ``remote_filter`` is the filter
    object's bytes (``java_filter``). The defaults are Java's ContinuousQuery defaults.
    Ignite 2.17's request carries no initial query: the Java thin client, like libclient,
    runs a scan (or SQL) query once the node answered this one.
    """
    buf = bytearray()
    write_cache_prefix(buf, cache_id, flags)
    buf += pack(_CQ_TAIL, check.positive_i32(page_size, "page size"),
                check.integer(time_interval, "time interval (ms)", 0, check.I64[1]),
                check.flag(include_expired, "include_expired"))
    if remote_filter is None:
        buf += _NULL
    else:
        buf += remote_filter
        buf.append(FILTER_PLATFORM_JAVA)
    return bytes(buf)


#: The platform byte after a filter object: the node builds a Java object from it.
FILTER_PLATFORM_JAVA = 1
#: Ignite's PlatformJavaObjectFactoryProxy, a predefined binary type (GridBinaryMarshaller
#: PLATFORM_JAVA_OBJECT_FACTORY_PROXY), and its factory kind that instantiates a named class.
JAVA_OBJECT_FACTORY_PROXY = 99
_FACTORY_DEFAULT = 1


def java_filter(class_name: str, properties: Mapping[str, object] | None = None) -> bytes:
    """A remote filter made on the node: an instance of ``class_name`` (a class on the node's
    class path implementing CacheEntryEventSerializableFilter, public no-arg constructor),
    its fields named by ``properties`` set to their values, which must be plain values
    (no complex objects). As the .NET client's ``JavaObject``: a
    PlatformJavaObjectFactoryProxy of the default kind, raw data ``i32 kind | str null |
    obj class name | i32 n | n x (str field, obj value)``."""
    raw = bytearray(_I32.pack(_FACTORY_DEFAULT))
    raw += _NULL
    write_string(raw, check.required_str(class_name, "filter class name"), "filter class name")
    props = dict(properties or {})
    raw += _I32.pack(len(props))
    for name in sorted(props):
        write_string(raw, check.required_str(name, "filter property name"),
                     "filter property name")
        raw += encode_value(props[name])
    return raw_object(JAVA_OBJECT_FACTORY_PROXY, bytes(raw))


def parse_continuous_query(body: Buffer) -> int:
    """``i64`` -> the continuous query's resource id (its notifications carry it)."""
    reader = BodyReader(body)
    resource_id = reader.i64()
    reader.finish("the query id")
    return resource_id


def parse_continuous_query_event(body: Buffer, ctx: Ctx = None) -> list[CacheEntryEvent]:
    """The body of a 2007 notification: ``i32 n | n x (key, old, new, i8 event type)``."""
    reader = BodyReader(body, ctx=ctx)
    n = reader.count(min_item_size=4)
    events = [_read_event(reader) for _ in range(n)]
    reader.finish("the events")
    return events


def _read_event(reader: BodyReader) -> CacheEntryEvent:
    key, old_value, value = reader.value(), reader.value(), reader.value()
    code = reader.i8()
    try:
        event_type = EventType(code)
    except ValueError:
        raise RemoteProtocolError(f"unknown cache event type {code}") from None
    return CacheEntryEvent(key, old_value, value, event_type)
