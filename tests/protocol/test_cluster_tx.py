"""Cluster (5000-5003, 5100-5102), heartbeat (1, 2) and transaction (4000, 4001) ops."""

from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyignite import Client as PyClient
from pyignite.datatypes import Byte, Long, String
from pyignite.queries import Query
from pyignite.queries.op_codes import OP_TX_START
from pyignite.stream import BinaryStream

from protocol import LocalProtocolError, RemoteProtocolError, cluster, tx
from protocol.binary import TypeCode
from protocol.binary.values import Collection
from protocol.cluster import (
    AttributeFilter,
    ClusterState,
    NodeEndpoint,
    NodeEndpoints,
    NodeIds,
    NodeInfo,
    NodeTypeFilter,
    NodeVersion,
    OpaqueJavaObject,
)
from tests.protocol.capture_ops import ReplayChecks
from tests.protocol.protocol_helpers import ignite_str, uuid_obj

NODE = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")
OTHER = uuid.UUID("00000000-0000-0001-ffff-fffffffffffe")


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


def i64(n: int) -> bytes:
    return struct.pack("<q", n)


def raw(u: uuid.UUID) -> bytes:
    return struct.pack("<QQ", u.int >> 64, u.int & (2**64 - 1))


def s(value: str | None) -> bytes:
    return ignite_str(value)


# -- transactions -----------------------------------------------------------------------------


def _pyignite_tx_start(concurrency: int, isolation: int, timeout: int, label: str | None
                       ) -> bytes:
    query = Query(OP_TX_START, [("concurrency", Byte), ("isolation", Byte), ("timeout", Long),
                                ("label", String)], query_id=1)
    with BinaryStream(PyClient()) as stream:
        query.from_python(stream, {"concurrency": concurrency, "isolation": isolation,
                                   "timeout": timeout, "label": label})
        return bytes(stream.getvalue()[14:])


def test_tx_start() -> None:
    assert tx.tx_start() == b"\x01\x01" + i64(0) + b"\x65"
    body = tx.tx_start(tx.TxConcurrency.OPTIMISTIC, tx.TxIsolation.SERIALIZABLE, 2500, "jobs")
    assert body == b"\x00\x02" + i64(2500) + s("jobs")
    assert body == _pyignite_tx_start(0, 2, 2500, "jobs")
    assert tx.tx_start(1, 0, 0, None) == _pyignite_tx_start(1, 0, 0, None)


@pytest.mark.parametrize(
    "call",
    [lambda: tx.tx_start(2), lambda: tx.tx_start(0, 3), lambda: tx.tx_start(True),
     lambda: tx.tx_start(timeout=2**63), lambda: tx.tx_start(label=5),  # type: ignore[arg-type]
     lambda: tx.tx_end(1, 1),  # type: ignore[arg-type]
     lambda: tx.tx_end(2**31, True)],
    ids=["concurrency", "isolation", "bool-concurrency", "timeout", "label", "committed-int",
         "tx-id"],
)
def test_tx_misuse(call: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError):
        call()


def test_tx_end_and_parsers() -> None:
    assert tx.tx_end(5, True) == i32(5) + b"\x01"
    assert tx.tx_end(5, False) == i32(5) + b"\x00"
    assert tx.parse_tx_start(i32(1)) == 1
    assert tx.parse_tx_end(b"") is None
    for bad in (b"", i32(1) + b"\x00", b"\x01"):
        with pytest.raises(RemoteProtocolError):
            tx.parse_tx_start(bad)


# -- state, WAL, heartbeat ----------------------------------------------------------------------


def test_cluster_state() -> None:
    assert cluster.cluster_get_state() == b""
    assert cluster.parse_cluster_get_state(b"\x02") is ClusterState.ACTIVE_READ_ONLY
    assert cluster.parse_cluster_get_state(memoryview(b"\x00")) is ClusterState.INACTIVE
    for bad in (b"", b"\x03", b"\x01\x00", b"\xff"):
        with pytest.raises(RemoteProtocolError):
            cluster.parse_cluster_get_state(bad)


@pytest.mark.parametrize(
    ("state", "force", "features", "expected"),
    [
        (ClusterState.ACTIVE, True, set(), b"\x01"),
        (ClusterState.INACTIVE, True, {2}, b"\x00"),
        (ClusterState.ACTIVE_READ_ONLY, True, {2}, b"\x02"),
        (ClusterState.INACTIVE, False, {2, 19}, b"\x00\x00"),
        (ClusterState.INACTIVE, True, {19}, b"\x00\x01"),
    ],
)
def test_change_state(state: int, force: bool, features: set[int], expected: bytes) -> None:
    assert cluster.cluster_change_state(state, force=force, features=features) == expected


@pytest.mark.parametrize(
    ("state", "force", "features"),
    [(ClusterState.ACTIVE_READ_ONLY, True, set()), (ClusterState.INACTIVE, False, {2}),
     (3, True, {2, 19}), (True, True, {2})],
    ids=["read-only-without-bit2", "no-force-without-bit19", "unknown-state", "bool"],
)
def test_change_state_misuse(state: int, force: bool, features: set[int]) -> None:
    with pytest.raises(LocalProtocolError):
        cluster.cluster_change_state(state, force=force, features=features)


def test_wal_and_heartbeat() -> None:
    assert cluster.cluster_change_wal_state("c", False) == s("c") + b"\x00"
    assert cluster.cluster_get_wal_state("кэш") == s("кэш")
    assert cluster.parse_cluster_change_wal_state(b"\x01") is True
    assert cluster.parse_cluster_get_wal_state(b"\x00") is False
    for call in (lambda: cluster.cluster_get_wal_state(None),  # type: ignore[arg-type]
                 lambda: cluster.cluster_change_wal_state(1, True)):  # type: ignore[arg-type]
        with pytest.raises(LocalProtocolError):
            call()
    assert cluster.heartbeat() == cluster.get_idle_timeout() == b""
    assert cluster.parse_heartbeat(b"") is None
    assert cluster.parse_get_idle_timeout(i64(30_000)) == 30_000
    with pytest.raises(RemoteProtocolError):
        cluster.parse_get_idle_timeout(i32(1))


# -- node ids -----------------------------------------------------------------------------------


def test_node_ids_request() -> None:
    assert cluster.cluster_group_get_node_ids() == i64(-1) + i32(0)
    body = cluster.cluster_group_get_node_ids(4, [
        AttributeFilter("role", "db"), AttributeFilter("n", 3, TypeCode.INT),
        AttributeFilter("any"), NodeTypeFilter(False)])
    assert body == (i64(4) + i32(4) + b"\x01\x00" + s("role") + s("db")
                    + b"\x01\x00" + s("n") + b"\x03" + i32(3)
                    + b"\x01\x00" + s("any") + b"\x65" + b"\x02\x00\x00")
    for bad in ([("role", "db")], [AttributeFilter(None)]):  # type: ignore[list-item]
        with pytest.raises(LocalProtocolError):
            cluster.cluster_group_get_node_ids(-1, bad)  # type: ignore[arg-type]


def test_node_ids_response() -> None:
    assert cluster.parse_cluster_group_get_node_ids(b"\x00") is None
    body = b"\x01" + i64(9) + i32(2) + raw(NODE) + raw(OTHER)
    assert cluster.parse_cluster_group_get_node_ids(body) == NodeIds(9, (NODE, OTHER))
    for bad in (b"", b"\x00\x00", body[:-1], body + b"\x00", b"\x01" + i64(9) + i32(2)
                + raw(NODE)):
        with pytest.raises(RemoteProtocolError):
            cluster.parse_cluster_group_get_node_ids(bad)


# -- node info ----------------------------------------------------------------------------------


def node_record(node: uuid.UUID = NODE, *, addresses: bytes | None = None,
                revision: bytes = b"\x0c" + i32(2) + b"\xab\xcd") -> bytes:
    attrs = (i32(4) + s("role") + s("db") + s("port") + b"\x03" + i32(10800)
             + s("blob") + b"\xfe" + i32(3) + b"xyz" + s("ips") + b"\x18" + i32(1) + b"\x01"
             + s("10.0.0.1"))
    if addresses is None:
        addresses = b"\x18" + i32(2) + b"\x01" + s("10.0.0.1") + s("127.0.0.1")
    return (uuid_obj(node) + attrs + addresses + b"\x65" + i64(3) + b"\x00\x00\x01"
            + s("node-0") + b"\x02\x11\x00" + s("") + i64(1739108840) + revision)


def test_node_info() -> None:
    assert cluster.cluster_group_get_node_info([NODE, OTHER]) == i32(2) + raw(NODE) + raw(OTHER)
    info = cluster.parse_cluster_group_get_node_info(i32(1) + node_record())
    assert info == [NodeInfo(
        NODE, {"role": "db", "port": 10800, "blob": OpaqueJavaObject(b"xyz"),
               "ips": Collection(1, ["10.0.0.1"])},
        ("10.0.0.1", "127.0.0.1"), (), 3, False, False, True, "node-0",
        NodeVersion(2, 17, 0, "", 1739108840, b"\xab\xcd"))]
    two = cluster.parse_cluster_group_get_node_info(i32(2) + node_record() + node_record(OTHER))
    assert [n.node_id for n in two] == [NODE, OTHER]
    no_hash = cluster.parse_cluster_group_get_node_info(i32(1) + node_record(revision=b"\x65"))
    assert no_hash[0].version.revision_hash is None
    assert cluster.parse_cluster_group_get_node_info(i32(0)) == []


@pytest.mark.parametrize(
    "body",
    [
        i32(1) + b"\x65" + node_record()[17:],
        i32(1) + node_record(addresses=s("10.0.0.1")),
        i32(1) + node_record(addresses=b"\x18" + i32(1) + b"\x01" + b"\x65"),
        i32(1) + node_record(revision=s("abc")),
        i32(1) + node_record()[:-1],
        i32(1) + node_record() + b"\x00",
        i32(2) + node_record(),
        i32(1) + b"\x09" + node_record()[1:],
    ],
    ids=["null-id", "addresses-not-collection", "null-address", "hash-not-bytes", "truncated",
         "trailing", "missing-record", "id-not-uuid"],
)
def test_node_info_malformed(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        cluster.parse_cluster_group_get_node_info(body)


# -- node endpoints -----------------------------------------------------------------------------


def test_node_endpoints() -> None:
    assert cluster.cluster_group_get_node_endpoints() == i64(-1) + i64(-1)
    assert cluster.cluster_group_get_node_endpoints(5, 7) == i64(5) + i64(7)
    body = (i64(6) + i32(2) + raw(NODE) + i32(10800) + i32(2) + s("10.0.0.1") + s("db1")
            + raw(OTHER) + i32(10801) + i32(0) + i32(1) + raw(OTHER))
    assert cluster.parse_cluster_group_get_node_endpoints(body) == NodeEndpoints(
        6, (NodeEndpoint(NODE, 10800, ("10.0.0.1", "db1")), NodeEndpoint(OTHER, 10801, ())),
        (OTHER,))
    empty = i64(6) + i32(0) + i32(0)
    assert cluster.parse_cluster_group_get_node_endpoints(memoryview(empty)) == NodeEndpoints(
        6, (), ())
    for bad in (body[:-1], body + b"\x00", i64(6) + i32(0), i64(6) + i32(1) + raw(NODE),
                i64(6) + i32(1) + raw(NODE) + i32(1) + i32(1) + b"\x65" + i32(0)):
        with pytest.raises(RemoteProtocolError):
            cluster.parse_cluster_group_get_node_endpoints(bad)


def test_endpoint_overflow() -> None:
    with pytest.raises(LocalProtocolError):
        cluster.cluster_group_get_node_endpoints(2**63)


# -- fuzzing ------------------------------------------------------------------------------------

PARSERS: list[Callable[[bytes], object]] = [
    cluster.parse_cluster_get_state, cluster.parse_cluster_change_state,
    cluster.parse_cluster_change_wal_state, cluster.parse_cluster_get_wal_state,
    cluster.parse_cluster_group_get_node_ids, cluster.parse_cluster_group_get_node_info,
    cluster.parse_cluster_group_get_node_endpoints, cluster.parse_heartbeat,
    cluster.parse_get_idle_timeout, tx.parse_tx_start, tx.parse_tx_end,
]


@given(st.binary(max_size=80))
def test_parsers_raise_only_remote_protocol_errors(body: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(body)


@given(st.data())
def test_node_info_flipped_and_cut(data: st.DataObject) -> None:
    body = bytearray(i32(1) + node_record())
    for _ in range(data.draw(st.integers(0, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    with contextlib.suppress(RemoteProtocolError):
        cluster.parse_cluster_group_get_node_info(bytes(body[:cut]))


# -- real-node vectors ------------------------------------------------------------------------


class TestClusterTxVectors(ReplayChecks):
    vectors = "ops_cluster_tx"
