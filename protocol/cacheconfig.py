"""Cache configuration both ways: the 1053/1054 property list we send and the 1055 struct we read.

A configuration is a dict keyed by property code (``Prop``, pyignite's ``PROP_*`` numbers)
holding plain Python values: str / int / bool for the scalar properties (enum properties
are their int ordinals), a list of ``QueryEntity`` for QUERY_ENTITIES, a list of
``CacheKeyConfiguration`` for CACHE_KEY_CONFIGURATION, and an ``ExpiryPolicy`` or None for
EXPIRY_POLICY. Builders also accept pyignite-shaped dicts for entities, key
configurations and the expiry policy.

Version differences (``version`` is the negotiated protocol version): query-entity fields
carry precision and scale from 1.2.0; the expiry policy exists from 1.6.0 (sending it
earlier is refused, and the 1055 struct has it only from 1.6.0).

The 1055 struct starts with its own byte length: bytes inside that length after the
fields we know (a newer server's additions) are skipped; bytes after it are an error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

from . import _checks as check
from ._body import BodyReader, check_expiry, pack, write_obj, write_string
from .binary.codec import Buffer
from .errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ._body import Ctx

__all__ = [
    "INDEX_TYPES",
    "CacheAtomicityMode",
    "CacheKeyConfiguration",
    "CacheMode",
    "ExpiryPolicy",
    "IndexType",
    "PartitionLossPolicy",
    "Prop",
    "QueryEntity",
    "QueryField",
    "QueryFieldAlias",
    "QueryIndex",
    "QueryIndexField",
    "RebalanceMode",
    "WriteSynchronizationMode",
    "build_cache_config",
    "parse_cache_config",
]

Version = tuple[int, int, int]  # a ProtocolVersion or a plain tuple
Writer = Callable[[bytearray, Any, Version, Any], None]

_V1_2_0 = (1, 2, 0)  # query-entity field precision and scale
_V1_6_0 = (1, 6, 0)  # expiry policy

_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_BOOL = struct.Struct("<?")
_EXPIRY = struct.Struct("<?qqq")


class Prop(IntEnum):
    """Cache property codes (ClientCacheConfigurationSerializer; pyignite's PROP_* names)."""

    NAME = 0
    CACHE_MODE = 1
    CACHE_ATOMICITY_MODE = 2
    BACKUPS_NUMBER = 3
    WRITE_SYNCHRONIZATION_MODE = 4
    COPY_ON_READ = 5
    READ_FROM_BACKUP = 6
    DATA_REGION_NAME = 100
    IS_ONHEAP_CACHE_ENABLED = 101
    QUERY_ENTITIES = 200
    QUERY_PARALLELISM = 201
    QUERY_DETAIL_METRIC_SIZE = 202
    SQL_SCHEMA = 203
    SQL_INDEX_INLINE_MAX_SIZE = 204
    SQL_ESCAPE_ALL = 205
    MAX_QUERY_ITERATORS = 206
    REBALANCE_MODE = 300
    REBALANCE_DELAY = 301
    REBALANCE_TIMEOUT = 302
    REBALANCE_BATCH_SIZE = 303
    REBALANCE_BATCHES_PREFETCH_COUNT = 304
    REBALANCE_ORDER = 305
    REBALANCE_THROTTLE = 306
    GROUP_NAME = 400
    CACHE_KEY_CONFIGURATION = 401
    DEFAULT_LOCK_TIMEOUT = 402
    MAX_CONCURRENT_ASYNC_OPERATIONS = 403
    PARTITION_LOSS_POLICY = 404
    EAGER_TTL = 405
    STATISTICS_ENABLED = 406
    EXPIRY_POLICY = 407


class CacheMode(IntEnum):
    LOCAL = 0
    REPLICATED = 1
    PARTITIONED = 2


class CacheAtomicityMode(IntEnum):
    TRANSACTIONAL = 0
    ATOMIC = 1


class WriteSynchronizationMode(IntEnum):
    FULL_SYNC = 0
    FULL_ASYNC = 1
    PRIMARY_SYNC = 2


class RebalanceMode(IntEnum):
    SYNC = 0
    ASYNC = 1
    NONE = 2


class PartitionLossPolicy(IntEnum):
    READ_ONLY_SAFE = 0
    READ_ONLY_ALL = 1
    READ_WRITE_SAFE = 2
    READ_WRITE_ALL = 3
    IGNORE = 4


class IndexType(IntEnum):
    SORTED = 0
    FULLTEXT = 1
    GEOSPATIAL = 2


INDEX_TYPES = frozenset(IndexType)


# -- structured property values ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryField:
    """A query-entity field; precision/scale -1 mean "not set" (and travel only from 1.2.0)."""

    name: str
    type_name: str
    is_key_field: bool = False
    is_notnull_constraint_field: bool = False
    default_value: Any = None
    precision: int = -1
    scale: int = -1


@dataclass(frozen=True, slots=True)
class QueryFieldAlias:
    field_name: str
    alias: str


@dataclass(frozen=True, slots=True)
class QueryIndexField:
    name: str
    is_descending: bool = False


@dataclass(frozen=True, slots=True)
class QueryIndex:
    index_name: str | None
    index_type: int = IndexType.SORTED
    inline_size: int = -1
    fields: tuple[QueryIndexField, ...] = ()


@dataclass(frozen=True, slots=True)
class QueryEntity:
    """A QueryEntity; the field names are pyignite's dict keys."""

    key_type_name: str | None
    value_type_name: str | None
    table_name: str | None = None
    key_field_name: str | None = None
    value_field_name: str | None = None
    query_fields: tuple[QueryField, ...] = ()
    field_name_aliases: tuple[QueryFieldAlias, ...] = ()
    query_indexes: tuple[QueryIndex, ...] = ()


@dataclass(frozen=True, slots=True)
class CacheKeyConfiguration:
    """Affinity key field of a key type (what partition awareness routes by)."""

    type_name: str | None
    affinity_key_field_name: str | None


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    """Cache-wide TTLs in ms: -2 unchanged, -1 eternal (pyignite's ExpiryPolicy)."""

    create: int = -2
    update: int = -2
    access: int = -2


# -- coercing builder input ----------------------------------------------------------------------


_D = TypeVar("_D", bound="DataclassInstance")  # one of the configuration dataclasses


def _coerce(cls: type[_D], value: Any, nested: Mapping[str, Callable[[Any], Any]]) -> _D:
    """A dataclass instance from itself, a mapping of its fields, or a tuple of them."""
    if isinstance(value, cls):
        return value
    try:
        if isinstance(value, Mapping):
            kwargs = dict(value)
        elif isinstance(value, tuple | list):
            names = [f for f in cls.__dataclass_fields__][: len(value)]
            kwargs = dict(zip(names, value, strict=True))
        else:
            raise TypeError(f"cannot make a {cls.__name__} of {type(value).__name__}")
        for name, convert in nested.items():
            if name in kwargs:
                kwargs[name] = tuple(convert(item) for item in kwargs[name])
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"invalid {cls.__name__}: {exc}") from exc


def _index_field(value: Any) -> QueryIndexField:
    return _coerce(QueryIndexField, value, {})


def _index(value: Any) -> QueryIndex:
    return _coerce(QueryIndex, value, {"fields": _index_field})


def _entity(value: Any) -> QueryEntity:
    nested = {
        "query_fields": lambda v: _coerce(QueryField, v, {}),
        "field_name_aliases": lambda v: _coerce(QueryFieldAlias, v, {}),
        "query_indexes": _index,
    }
    return _coerce(QueryEntity, value, nested)


def _key_config(value: Any) -> CacheKeyConfiguration:
    return _coerce(CacheKeyConfiguration, value, {})


def _expiry(value: Any) -> ExpiryPolicy | None:
    return None if value is None else _coerce(ExpiryPolicy, value, {})


# -- writing (1053 / 1054) -----------------------------------------------------------------------


def _write_i32(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    buf += pack(_I32, check.i32(value, "the value"))


def _write_i64(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    buf += pack(_I64, check.i64(value, "the value"))


def _enum_writer(enum: type[IntEnum]) -> Writer:
    """An i32 enum ordinal; the node reads others as null and fails later, or not at all."""
    valid = frozenset(enum)

    def write(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
        buf += pack(_I32, check.one_of(value, valid, enum.__name__))

    return write


def _write_bool(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    if not isinstance(value, bool):
        raise LocalProtocolError(f"expected a bool, got {value!r}")
    buf += pack(_BOOL, value)


def _write_str(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    write_string(buf, value)


def _write_key_configs(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    configs = [_key_config(item) for item in check.items(value or (), "key configurations")]
    buf += pack(_I32, len(configs))
    for config in configs:
        write_string(buf, config.type_name)
        write_string(buf, config.affinity_key_field_name)


def _write_entities(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    entities = [_entity(item) for item in check.items(value or (), "query entities")]
    buf += pack(_I32, len(entities))
    for entity in entities:
        _write_entity(buf, entity, version, ctx)


def _write_entity(buf: bytearray, entity: QueryEntity, version: Version,
                  ctx: Ctx) -> None:
    for name in (entity.key_type_name, entity.value_type_name, entity.table_name,
                 entity.key_field_name, entity.value_field_name):
        write_string(buf, name)
    buf += pack(_I32, len(entity.query_fields))
    for qf in entity.query_fields:
        write_string(buf, qf.name)
        write_string(buf, qf.type_name)
        buf += pack(_BOOL, bool(qf.is_key_field))
        buf += pack(_BOOL, bool(qf.is_notnull_constraint_field))
        write_obj(buf, qf.default_value, None, ctx)
        if version >= _V1_2_0:
            buf += pack(_I32, qf.precision) + pack(_I32, qf.scale)
    buf += pack(_I32, len(entity.field_name_aliases))
    for alias in entity.field_name_aliases:
        write_string(buf, alias.field_name)
        write_string(buf, alias.alias)
    buf += pack(_I32, len(entity.query_indexes))
    for index in entity.query_indexes:
        _write_index(buf, index)


def _write_index(buf: bytearray, index: QueryIndex) -> None:
    write_string(buf, index.index_name)
    # The node indexes QueryIndexType.values() with this byte: anything else drops the link.
    buf += pack(_I8, check.one_of(index.index_type, INDEX_TYPES, "index type"))
    buf += pack(_I32, check.i32(index.inline_size, "inline size"))
    buf += pack(_I32, len(index.fields))
    for item in index.fields:
        write_string(buf, item.name)
        buf += pack(_BOOL, bool(item.is_descending))


def _write_expiry(buf: bytearray, value: Any, version: Version, ctx: Ctx) -> None:
    if version < _V1_6_0:
        raise LocalProtocolError("EXPIRY_POLICY needs protocol version 1.6.0")
    policy = _expiry(value)
    if policy is None:
        buf += pack(_BOOL, False)
    else:
        buf += pack(_EXPIRY, True, *check_expiry((policy.create, policy.update, policy.access)))


_WRITERS: dict[int, Writer] = {
    Prop.NAME: _write_str,
    Prop.CACHE_MODE: _enum_writer(CacheMode),
    Prop.CACHE_ATOMICITY_MODE: _enum_writer(CacheAtomicityMode),
    Prop.BACKUPS_NUMBER: _write_i32,
    Prop.WRITE_SYNCHRONIZATION_MODE: _enum_writer(WriteSynchronizationMode),
    Prop.COPY_ON_READ: _write_bool,
    Prop.READ_FROM_BACKUP: _write_bool,
    Prop.DATA_REGION_NAME: _write_str,
    Prop.IS_ONHEAP_CACHE_ENABLED: _write_bool,
    Prop.QUERY_ENTITIES: _write_entities,
    Prop.QUERY_PARALLELISM: _write_i32,
    Prop.QUERY_DETAIL_METRIC_SIZE: _write_i32,
    Prop.SQL_SCHEMA: _write_str,
    Prop.SQL_INDEX_INLINE_MAX_SIZE: _write_i32,
    Prop.SQL_ESCAPE_ALL: _write_bool,
    Prop.MAX_QUERY_ITERATORS: _write_i32,
    Prop.REBALANCE_MODE: _enum_writer(RebalanceMode),
    Prop.REBALANCE_DELAY: _write_i64,
    Prop.REBALANCE_TIMEOUT: _write_i64,
    Prop.REBALANCE_BATCH_SIZE: _write_i32,
    Prop.REBALANCE_BATCHES_PREFETCH_COUNT: _write_i64,
    Prop.REBALANCE_ORDER: _write_i32,
    Prop.REBALANCE_THROTTLE: _write_i64,
    Prop.GROUP_NAME: _write_str,
    Prop.CACHE_KEY_CONFIGURATION: _write_key_configs,
    Prop.DEFAULT_LOCK_TIMEOUT: _write_i64,
    Prop.MAX_CONCURRENT_ASYNC_OPERATIONS: _write_i32,
    Prop.PARTITION_LOSS_POLICY: _enum_writer(PartitionLossPolicy),
    Prop.EAGER_TTL: _write_bool,
    Prop.STATISTICS_ENABLED: _write_bool,
    Prop.EXPIRY_POLICY: _write_expiry,
}


def build_cache_config(
    config: Mapping[int, Any], *, version: Version, ctx: Ctx = None
) -> bytes:
    """Body of 1053/1054: ``i32 byte length | i16 count | count x (i16 code | value)``.

    Properties go out in the mapping's order. NAME is required; unknown codes are refused.
    """
    if not isinstance(config, Mapping):
        raise LocalProtocolError(
            f"a cache configuration is a mapping, not {check.describe(config)}"
        )
    if not isinstance(config.get(Prop.NAME), str):
        raise LocalProtocolError("a cache configuration needs a str NAME (property 0)")
    version = _version(version)
    props = bytearray(pack(_I16, len(config)))
    for code, value in config.items():
        if type(code) is not int and not isinstance(code, Prop):
            raise LocalProtocolError(f"a cache property code is an int, not {check.describe(code)}")
        writer = _WRITERS.get(code)
        if writer is None:
            raise LocalProtocolError(f"unknown cache property code {code}")
        props += pack(_I16, code)
        _write_property(props, Prop(code), writer, value, version, ctx)
    return pack(_I32, len(props)) + bytes(props)


def _write_property(buf: bytearray, prop: Prop, writer: Writer, value: Any, version: Version,
                    ctx: Ctx) -> None:
    """One property's value; whatever is wrong with it is a LocalProtocolError naming it."""
    try:
        writer(buf, value, version, ctx)
    except LocalProtocolError as exc:
        raise LocalProtocolError(f"cache property {prop.name}: {exc}") from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, struct.error) as exc:
        message = f"cache property {prop.name}: {type(exc).__name__}: {exc}"
        raise LocalProtocolError(message) from exc


def _version(version: object) -> Version:
    if (not isinstance(version, tuple) or len(version) != 3
            or not all(type(part) is int for part in version)):
        raise LocalProtocolError(f"version must be a (major, minor, patch) tuple, got "
                                 f"{check.describe(version)}")
    return version


# -- reading (1055) ------------------------------------------------------------------------------


def _read_i32(reader: BodyReader, version: Version) -> int:
    return reader.i32()


def _read_i64(reader: BodyReader, version: Version) -> int:
    return reader.i64()


def _read_bool(reader: BodyReader, version: Version) -> bool:
    return reader.flag()


def _read_str(reader: BodyReader, version: Version) -> str | None:
    return reader.string()


def _read_key_configs(reader: BodyReader, version: Version
                      ) -> list[CacheKeyConfiguration]:
    n = reader.count(min_item_size=2)
    return [CacheKeyConfiguration(reader.string(), reader.string()) for _ in range(n)]


def _read_entities(reader: BodyReader, version: Version) -> list[QueryEntity]:
    n = reader.count(min_item_size=17)  # five NULL strings and three counts
    return [_read_entity(reader, version) for _ in range(n)]


def _read_entity(reader: BodyReader, version: Version) -> QueryEntity:
    key_type, value_type, table, key_field, value_field = (reader.string() for _ in range(5))
    n = reader.count(min_item_size=5)
    query_fields = tuple(_read_query_field(reader, version) for _ in range(n))
    n = reader.count(min_item_size=2)
    aliases = tuple(QueryFieldAlias(_field_name(reader), _field_name(reader)) for _ in range(n))
    n = reader.count(min_item_size=10)
    indexes = tuple(_read_index(reader) for _ in range(n))
    return QueryEntity(key_type, value_type, table, key_field, value_field,
                       query_fields, aliases, indexes)


def _field_name(reader: BodyReader) -> str:
    return reader.required_string("query field name")


def _read_query_field(reader: BodyReader, version: Version) -> QueryField:
    name = _field_name(reader)
    type_name = reader.required_string("query field type")
    is_key, not_null = reader.flag(), reader.flag()
    default = reader.value()
    precision, scale = (reader.i32(), reader.i32()) if version >= _V1_2_0 else (-1, -1)
    return QueryField(name, type_name, is_key, not_null, default, precision, scale)


def _read_index(reader: BodyReader) -> QueryIndex:
    name = reader.string()
    index_type, inline_size = reader.i8(), reader.i32()
    n = reader.count(min_item_size=2)
    fields = tuple(QueryIndexField(_field_name(reader), reader.flag()) for _ in range(n))
    return QueryIndex(name, index_type, inline_size, fields)


def _read_expiry(reader: BodyReader, version: Version) -> ExpiryPolicy | None:
    if not reader.flag():
        return None
    return ExpiryPolicy(reader.i64(), reader.i64(), reader.i64())


Reader = Callable[[BodyReader, Version], Any]

# The order ClientCacheConfigurationSerializer.write puts them in (not the code order).
_RESPONSE_ORDER: tuple[tuple[Prop, Reader], ...] = (
    (Prop.CACHE_ATOMICITY_MODE, _read_i32),
    (Prop.BACKUPS_NUMBER, _read_i32),
    (Prop.CACHE_MODE, _read_i32),
    (Prop.COPY_ON_READ, _read_bool),
    (Prop.DATA_REGION_NAME, _read_str),
    (Prop.EAGER_TTL, _read_bool),
    (Prop.STATISTICS_ENABLED, _read_bool),
    (Prop.GROUP_NAME, _read_str),
    (Prop.DEFAULT_LOCK_TIMEOUT, _read_i64),
    (Prop.MAX_CONCURRENT_ASYNC_OPERATIONS, _read_i32),
    (Prop.MAX_QUERY_ITERATORS, _read_i32),
    (Prop.NAME, _read_str),
    (Prop.IS_ONHEAP_CACHE_ENABLED, _read_bool),
    (Prop.PARTITION_LOSS_POLICY, _read_i32),
    (Prop.QUERY_DETAIL_METRIC_SIZE, _read_i32),
    (Prop.QUERY_PARALLELISM, _read_i32),
    (Prop.READ_FROM_BACKUP, _read_bool),
    (Prop.REBALANCE_BATCH_SIZE, _read_i32),
    (Prop.REBALANCE_BATCHES_PREFETCH_COUNT, _read_i64),
    (Prop.REBALANCE_DELAY, _read_i64),
    (Prop.REBALANCE_MODE, _read_i32),
    (Prop.REBALANCE_ORDER, _read_i32),
    (Prop.REBALANCE_THROTTLE, _read_i64),
    (Prop.REBALANCE_TIMEOUT, _read_i64),
    (Prop.SQL_ESCAPE_ALL, _read_bool),
    (Prop.SQL_INDEX_INLINE_MAX_SIZE, _read_i32),
    (Prop.SQL_SCHEMA, _read_str),
    (Prop.WRITE_SYNCHRONIZATION_MODE, _read_i32),
    (Prop.CACHE_KEY_CONFIGURATION, _read_key_configs),
    (Prop.QUERY_ENTITIES, _read_entities),
)


def parse_cache_config(
    body: Buffer, *, version: Version, ctx: Ctx = None
) -> dict[int, Any]:
    """The 1055 body (``i32 length | fixed-order fields``) -> {Prop: value}."""
    reader = BodyReader(body, ctx=ctx)
    length = reader.count()
    end = reader.pos + length
    config: dict[int, Any] = {}
    for prop, read in _RESPONSE_ORDER:
        config[prop] = read(reader, version)
    if version >= _V1_6_0:
        config[Prop.EXPIRY_POLICY] = _read_expiry(reader, version)
    if reader.pos > end:
        raise RemoteProtocolError(
            f"the cache configuration overruns its length ({reader.pos - end} bytes)"
        )
    reader.pos = end  # skip what a newer server may have appended
    reader.finish("the cache configuration")
    return config

