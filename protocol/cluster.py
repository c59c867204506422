"""Body builders and parsers of the cluster ops (5000-5003, 5100-5102) and the heartbeat ops (1, 2).

Layouts verified against an Ignite 2.17.0 node:

- 5102 CLUSTER_GROUP_GET_NODE_ENDPOINTS (feature bit 3) takes ``i64 start topVer | i64 end
  topVer`` (-1 = "from the beginning" / "latest") and answers ``i64 topVer | i32 n added x
  (rawuuid id, i32 client port, i32 k, k x str address-or-host) | i32 m removed x rawuuid``.
  Only server nodes with a thin-client connector are listed; with start -1 nothing is removed.
- 5101 node records end with the node version as ``i8 major | i8 minor | i8 maintenance |
  str stage | i64 revision timestamp | byte[] revision hash``. Node attributes hold whatever
  the node put there, including Java-only optimized-marshaller blobs (type code -2), which
  come back as ``OpaqueJavaObject``.
- 2.17.0 negotiates bit 19 (FORCE_DEACTIVATION_FLAG), so 5001 carries the force flag.

All parsers refuse trailing bytes.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from . import _checks as check
from ._body import (
    BodyReader,
    pack,
    parse_bool,
    parse_empty,
    parse_i64,
    write_obj,
    write_raw_uuid,
    write_string,
)
from .binary import TypeCode
from .binary.codec import Buffer
from .errors import LocalProtocolError, RemoteProtocolError
from .features import Feature

if TYPE_CHECKING:
    from ._body import Ctx

__all__ = [
    "CLUSTER_STATES",
    "AttributeFilter",
    "ClusterState",
    "NodeEndpoint",
    "NodeEndpoints",
    "NodeIds",
    "NodeInfo",
    "NodeTypeFilter",
    "NodeVersion",
    "OpaqueJavaObject",
    "cluster_change_state",
    "cluster_change_wal_state",
    "cluster_get_state",
    "cluster_get_wal_state",
    "cluster_group_get_node_endpoints",
    "cluster_group_get_node_ids",
    "cluster_group_get_node_info",
    "get_idle_timeout",
    "heartbeat",
    "parse_cluster_change_state",
    "parse_cluster_change_wal_state",
    "parse_cluster_get_state",
    "parse_cluster_get_wal_state",
    "parse_cluster_group_get_node_endpoints",
    "parse_cluster_group_get_node_ids",
    "parse_cluster_group_get_node_info",
    "parse_get_idle_timeout",
    "parse_heartbeat",
]


_I8 = struct.Struct("<b")
_BOOL = struct.Struct("<?")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_TOP_VERS = struct.Struct("<qq")
_TOP_VER_COUNT = struct.Struct("<qi")

_FILTER_ATTRIBUTE = 1
_FILTER_NODE_TYPE = 2
_OPTIMIZED_MARSHALLER = TypeCode.OPTIMIZED_MARSHALLER & 0xFF
_UUID_SIZE = 16


class ClusterState(IntEnum):
    INACTIVE = 0
    ACTIVE = 1
    ACTIVE_READ_ONLY = 2  # needs feature bit 2


CLUSTER_STATES = frozenset(ClusterState)


# -- state and WAL ---------------------------------------------------------------------------


def cluster_get_state() -> bytes:
    """Body of CLUSTER_GET_STATE (5000): empty."""
    return b""


def parse_cluster_get_state(body: Buffer) -> ClusterState:
    """``i8 state`` -> ClusterState (without bit 2 it is the "active" bool: 0 or 1)."""
    reader = BodyReader(body)
    code = reader.i8()
    reader.finish("the cluster state")
    try:
        return ClusterState(code)
    except ValueError:
        raise RemoteProtocolError(f"unknown cluster state {code}") from None


def cluster_change_state(
    state: int, *, force: bool = True, features: Iterable[int] = frozenset()
) -> bytes:
    """Body of CLUSTER_CHANGE_STATE (5001): ``i8 state | [bool force, if bit 19]``.

    Without bit 19 the server always forces deactivation, so ``force=False`` is refused;
    without bit 2 only INACTIVE and ACTIVE exist.
    """
    features = check.feature_set(features)
    state = check.one_of(state, CLUSTER_STATES, "cluster state")
    force = check.flag(force, "force")
    if state == ClusterState.ACTIVE_READ_ONLY and Feature.CLUSTER_STATES not in features:
        raise LocalProtocolError("ACTIVE_READ_ONLY needs feature bit 2 (CLUSTER_STATES)")
    body = pack(_I8, state)
    if Feature.FORCE_DEACTIVATION_FLAG in features:
        return body + pack(_BOOL, force)
    if not force:
        raise LocalProtocolError("force=False needs feature bit 19 (FORCE_DEACTIVATION_FLAG)")
    return body


parse_cluster_change_state = parse_empty


def cluster_change_wal_state(cache_name: str, enable: bool) -> bytes:
    """Body of CLUSTER_CHANGE_WAL_STATE (5002): ``str cache name | bool enable`` -> bool changed."""
    buf = bytearray()
    write_string(buf, check.required_str(cache_name, "cache name"), "cache name")
    buf += pack(_BOOL, check.flag(enable, "enable"))
    return bytes(buf)


parse_cluster_change_wal_state = parse_bool


def cluster_get_wal_state(cache_name: str) -> bytes:
    """Body of CLUSTER_GET_WAL_STATE (5003): ``str cache name`` -> bool enabled."""
    buf = bytearray()
    write_string(buf, check.required_str(cache_name, "cache name"), "cache name")
    return bytes(buf)


parse_cluster_get_wal_state = parse_bool


# -- heartbeat ---------------------------------------------------------------------------------


def heartbeat() -> bytes:
    """Body of HEARTBEAT (1, feature bit 11): empty; the response is empty too."""
    return b""


parse_heartbeat = parse_empty


def get_idle_timeout() -> bytes:
    """Body of GET_IDLE_TIMEOUT (2, feature bit 11): empty."""
    return b""


def parse_get_idle_timeout(body: Buffer) -> int:
    """``i64`` -> the server's idle timeout in ms (0: connections never time out)."""
    return parse_i64(body)


# -- node ids ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeFilter:
    """Nodes whose attribute ``name`` equals ``value`` (a typed value; None: attribute set)."""

    name: str
    value: object = None
    value_hint: int | None = None


@dataclass(frozen=True, slots=True)
class NodeTypeFilter:
    """Server nodes (True) or client nodes (False)."""

    server: bool = True


@dataclass(frozen=True, slots=True)
class NodeIds:
    """The answer to 5100 when the topology is newer than the one sent."""

    top_version: int
    node_ids: tuple[uuid.UUID, ...]


def cluster_group_get_node_ids(
    top_version: int = -1,
    filters: Iterable[AttributeFilter | NodeTypeFilter] = (),
    *,
    ctx: Ctx = None,
) -> bytes:
    """Body of CLUSTER_GROUP_GET_NODE_IDS (5100): ``i64 known topVer | i32 n | n x filter``.

    A filter is ``i16 1 | str name | obj value`` or ``i16 2 | bool server``. The server
    answers "unchanged" unless its topology version is above ``top_version``.
    """
    items = check.items(filters, "filters")
    buf = bytearray(pack(_TOP_VER_COUNT, top_version, len(items)))
    for item in items:
        if isinstance(item, AttributeFilter):
            buf += pack(_I16, _FILTER_ATTRIBUTE)
            write_string(buf, check.required_str(item.name, "attribute name"), "attribute name")
            write_obj(buf, item.value, item.value_hint, ctx)
        elif isinstance(item, NodeTypeFilter):
            buf += pack(_I16, _FILTER_NODE_TYPE) + pack(_BOOL, check.flag(item.server, "server"))
        else:
            raise LocalProtocolError(f"not a node filter: {check.describe(item)}")
    return bytes(buf)


def parse_cluster_group_get_node_ids(body: Buffer) -> NodeIds | None:
    """``bool changed | [i64 topVer | i32 n | n x rawuuid]`` -> NodeIds, or None if unchanged."""
    reader = BodyReader(body)
    if not reader.flag():
        reader.finish("the unchanged flag")
        return None
    top_version = reader.i64()
    n = reader.count(_UUID_SIZE)
    ids = tuple(reader.raw_uuid() for _ in range(n))
    reader.finish("the node ids")
    return NodeIds(top_version, ids)


# -- node info ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpaqueJavaObject:
    """A Java-only optimized-marshaller blob (type code -2) the thin client cannot decode."""

    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class NodeVersion:
    """IgniteProductVersion as 5101 writes it."""

    major: int
    minor: int
    maintenance: int
    stage: str | None
    revision_timestamp: int
    revision_hash: bytes | None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One cluster node as 5101 describes it."""

    node_id: uuid.UUID
    attributes: dict[str, Any] = field(hash=False)
    addresses: tuple[str, ...]
    host_names: tuple[str, ...]
    order: int
    is_local: bool
    is_daemon: bool
    is_client: bool
    consistent_id: Any
    version: NodeVersion


def cluster_group_get_node_info(node_ids: Iterable[uuid.UUID]) -> bytes:
    """Body of CLUSTER_GROUP_GET_NODE_INFO (5101): ``i32 n | n x rawuuid``."""
    ids = check.items(node_ids, "node ids")
    buf = bytearray(pack(_I32, len(ids)))
    for node_id in ids:
        write_raw_uuid(buf, node_id)
    return bytes(buf)


def parse_cluster_group_get_node_info(body: Buffer, ctx: Ctx = None) -> list[NodeInfo]:
    """``i32 n | n x node record`` -> the nodes the server knows of (unknown ids are skipped)."""
    reader = BodyReader(body, ctx=ctx)
    n = reader.count()
    nodes = [_read_node(reader) for _ in range(n)]
    reader.finish("the node records")
    return nodes


def _read_node(reader: BodyReader) -> NodeInfo:
    node_id = reader.uuid_obj()
    if node_id is None:
        raise RemoteProtocolError("NULL node id")
    attributes = _read_attributes(reader)
    addresses = _read_string_collection(reader, "addresses")
    host_names = _read_string_collection(reader, "host names")
    order = reader.i64()
    is_local, is_daemon, is_client = reader.flag(), reader.flag(), reader.flag()
    consistent_id = reader.value()
    version = _read_version(reader)
    return NodeInfo(node_id, attributes, addresses, host_names, order, is_local, is_daemon,
                    is_client, consistent_id, version)


def _read_attributes(reader: BodyReader) -> dict[str, Any]:
    n = reader.count(min_item_size=2)
    attributes: dict[str, Any] = {}
    for _ in range(n):
        name = reader.required_string("attribute name")
        attributes[name] = _read_attribute_value(reader)
    return attributes


def _read_attribute_value(reader: BodyReader) -> Any:
    if reader.remaining > 0 and reader.body[reader.pos] == _OPTIMIZED_MARSHALLER:
        reader.pos += 1
        length = reader.count()
        data = bytes(reader.body[reader.pos : reader.pos + length])
        reader.pos += length
        return OpaqueJavaObject(data)
    return reader.value()


def _read_string_collection(reader: BodyReader, what: str) -> tuple[str, ...]:
    """A Collection (24) of strings, or NULL (read here: its layout is part of the op)."""
    code = reader.i8()
    if code == TypeCode.NULL:
        return ()
    if code != TypeCode.COLLECTION:
        raise RemoteProtocolError(f"{what}: expected a Collection, got type code {code}")
    n = reader.count()
    reader.i8()  # collection kind
    return tuple(reader.required_string(what) for _ in range(n))


def _read_version(reader: BodyReader) -> NodeVersion:
    major, minor, maintenance = reader.i8(), reader.i8(), reader.i8()
    stage = reader.string()
    timestamp = reader.i64()
    revision_hash = reader.value()
    if revision_hash is not None and not isinstance(revision_hash, bytes):
        raise RemoteProtocolError("the revision hash is not a byte[]")
    return NodeVersion(major, minor, maintenance, stage, timestamp, revision_hash)


# -- node endpoints ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """A server node's thin-client port and every address and host name it listens on."""

    node_id: uuid.UUID
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeEndpoints:
    """The answer to 5102: nodes added and removed between the two topology versions."""

    top_version: int
    added: tuple[NodeEndpoint, ...]
    removed: tuple[uuid.UUID, ...]


def cluster_group_get_node_endpoints(start_top_version: int = -1,
                                     end_top_version: int = -1) -> bytes:
    """Body of CLUSTER_GROUP_GET_NODE_ENDPOINTS (5102, bit 3): ``i64 start | i64 end``.

    -1 as start lists every node of the end version; -1 as end means the current version.
    The Java client sends (last topology version it saw, -1).
    """
    return pack(_TOP_VERS, start_top_version, end_top_version)


def parse_cluster_group_get_node_endpoints(body: Buffer) -> NodeEndpoints:
    """``i64 topVer | i32 n x endpoint | i32 m x rawuuid`` -> NodeEndpoints."""
    reader = BodyReader(body)
    top_version = reader.i64()
    n = reader.count(_UUID_SIZE + 8)
    added = tuple(_read_endpoint(reader) for _ in range(n))
    m = reader.count(_UUID_SIZE)
    removed = tuple(reader.raw_uuid() for _ in range(m))
    reader.finish("the endpoints")
    return NodeEndpoints(top_version, added, removed)


def _read_endpoint(reader: BodyReader) -> NodeEndpoint:
    node_id = reader.raw_uuid()
    port = reader.i32()
    n = reader.count()
    addresses = tuple(reader.required_string("endpoint address") for _ in range(n))
    return NodeEndpoint(node_id, port, addresses)
