"""Every op family of protocol/ against a real node over a plain socket, checked against pyignite.

Differential: our codec and pyignite drive the same node (the same caches, or twin caches
with the same op script) and must see the same results; values written by one side are
read back by the other.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyignite import Client as PyClient
from pyignite.api.key_value import cache_local_peek as py_local_peek
from pyignite.api.sql import sql as py_old_sql
from pyignite.datatypes import IntObject
from pyignite.datatypes.cluster_state import ClusterState as PyClusterState
from pyignite.datatypes.prop_codes import PROP_CACHE_ATOMICITY_MODE, PROP_NAME
from pyignite.datatypes.transactions import TransactionConcurrency, TransactionIsolation

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    Notification,
    OpCode,
    Response,
    cache_id,
    cacheconfig,
    cluster,
    ops,
    queries,
    tx,
)
from protocol.binary import TypeCode, metadata
from protocol.binary.registry import CodecContext, Registry
from protocol.cacheconfig import Prop
from protocol.errors import UnknownSchema
from protocol.features import Feature
from tests.protocol.capture_ops import full_config

pytestmark = pytest.mark.integration

O = OpCode  # noqa: E741
ALL_FEATURES = frozenset(range(1, 32))


class Wire:
    """Our ClientConnection over a plain blocking socket."""

    def __init__(self, address: tuple[str, int], **config: Any) -> None:
        config.setdefault("features", ALL_FEATURES)
        self.sock = socket.create_connection(address, timeout=30)
        self.conn = ClientConnection(ConnectionConfig(**config))
        self.sock.sendall(self.conn.initiate())
        event = self._next()
        assert isinstance(event, HandshakeAccepted), event
        self.hello = event
        self.notifications: list[Notification] = []

    @property
    def version(self) -> tuple[int, int, int]:
        return tuple(self.hello.version)  # type: ignore[return-value]

    def close(self) -> None:
        self.sock.close()

    def _next(self) -> object:
        while (event := self.conn.next_event()) is NEED_DATA:
            self.conn.receive_data(self.sock.recv(1 << 16))
        return event

    def call(self, op: OpCode, body: bytes) -> Response | ErrorResponse:
        request_id, frame = self.conn.send_request(op, body)
        self.sock.sendall(frame)
        while True:
            event = self._next()
            if isinstance(event, Notification):
                self.notifications.append(event)
            elif isinstance(event, Response | ErrorResponse) and event.request_id == request_id:
                return event

    def ok(self, op: OpCode, body: bytes, parse: Callable[..., Any] = ops.parse_empty,
           *args: Any, **kwargs: Any) -> Any:
        event = self.call(op, body)
        assert isinstance(event, Response), event
        return parse(event.body, *args, **kwargs)

    def wait_events(self, resource_id: int, n: int, timeout: float = 10.0
                    ) -> list[queries.CacheEntryEvent]:
        """Continuous-query events of one query until there are ``n`` (a notification may
        carry several), sending heartbeats so notifications get read."""
        events: list[queries.CacheEntryEvent] = []
        deadline = time.monotonic() + timeout
        while len(events) < n and time.monotonic() < deadline:
            time.sleep(0.05)
            self.ok(O.HEARTBEAT, cluster.heartbeat())
            for note in self.notifications:
                assert (note.op, note.resource_id) == (O.QUERY_CONTINUOUS_EVENT_NOTIFICATION,
                                                       resource_id)
                events += queries.parse_continuous_query_event(note.body)
            self.notifications = []
        return events


@pytest.fixture
def wire(ignite_node: Any) -> Iterator[Wire]:
    w = Wire(ignite_node.addresses[0])
    yield w
    w.close()


@pytest.fixture
def py(ignite_node: Any) -> Iterator[PyClient]:
    client = PyClient(partition_aware=False)
    client.connect(*ignite_node.addresses[0])
    yield client
    client.close()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- key/value --------------------------------------------------------------------------------

# (name, our call on cache id, pyignite call on the Cache, how to compare)
Step = tuple[str, Callable[[Wire, int], Any], Callable[[Any], Any]]


def _kv_steps() -> list[Step]:
    def w(op: OpCode, build: Callable[..., bytes], parse: Callable[..., Any], *args: Any,
          **kwargs: Any) -> Callable[[Wire, int], Any]:
        return lambda wire, cid: wire.ok(op, build(cid, *args, **kwargs), parse)

    return [
        ("put", w(O.CACHE_PUT, ops.cache_put, ops.parse_cache_put, "a", "x"),
         lambda c: c.put("a", "x")),
        ("put_if_absent-present", w(O.CACHE_PUT_IF_ABSENT, ops.cache_put_if_absent,
                                    ops.parse_cache_put_if_absent, "a", "y"),
         lambda c: c.put_if_absent("a", "y")),
        ("put_if_absent-new", w(O.CACHE_PUT_IF_ABSENT, ops.cache_put_if_absent,
                                ops.parse_cache_put_if_absent, "b", 2.5),
         lambda c: c.put_if_absent("b", 2.5)),
        ("put_all", w(O.CACHE_PUT_ALL, ops.cache_put_all, ops.parse_cache_put_all,
                      {"c": 3, "d": b"\x00\x01", "e": True}),
         lambda c: c.put_all({"c": 3, "d": b"\x00\x01", "e": True})),
        ("get_all", w(O.CACHE_GET_ALL, ops.cache_get_all, ops.parse_cache_get_all,
                      ["a", "c", "d", "zz"]),
         lambda c: c.get_all(["a", "c", "d", "zz"])),
        ("get_and_put", w(O.CACHE_GET_AND_PUT, ops.cache_get_and_put,
                          ops.parse_cache_get_and_put, "a", "x2"),
         lambda c: c.get_and_put("a", "x2")),
        ("get_and_replace", w(O.CACHE_GET_AND_REPLACE, ops.cache_get_and_replace,
                              ops.parse_cache_get_and_replace, "a", "x3"),
         lambda c: c.get_and_replace("a", "x3")),
        ("get_and_replace-missing", w(O.CACHE_GET_AND_REPLACE, ops.cache_get_and_replace,
                                      ops.parse_cache_get_and_replace, "zz", "q"),
         lambda c: c.get_and_replace("zz", "q")),
        ("get_and_remove", w(O.CACHE_GET_AND_REMOVE, ops.cache_get_and_remove,
                             ops.parse_cache_get_and_remove, "e"),
         lambda c: c.get_and_remove("e")),
        ("get_and_put_if_absent", w(O.CACHE_GET_AND_PUT_IF_ABSENT,
                                    ops.cache_get_and_put_if_absent,
                                    ops.parse_cache_get_and_put_if_absent, "a", "no"),
         lambda c: c.get_and_put_if_absent("a", "no")),
        ("replace", w(O.CACHE_REPLACE, ops.cache_replace, ops.parse_cache_replace, "b", 7),
         lambda c: c.replace("b", 7)),
        ("replace-missing", w(O.CACHE_REPLACE, ops.cache_replace, ops.parse_cache_replace,
                              "zz", 7),
         lambda c: c.replace("zz", 7)),
        ("replace_if_equals", w(O.CACHE_REPLACE_IF_EQUALS, ops.cache_replace_if_equals,
                                ops.parse_cache_replace_if_equals, "b", 7, 8),
         lambda c: c.replace_if_equals("b", 7, 8)),
        ("replace_if_equals-no", w(O.CACHE_REPLACE_IF_EQUALS, ops.cache_replace_if_equals,
                                   ops.parse_cache_replace_if_equals, "b", 7, 9),
         lambda c: c.replace_if_equals("b", 7, 9)),
        ("contains_key", w(O.CACHE_CONTAINS_KEY, ops.cache_contains_key,
                           ops.parse_cache_contains_key, "b"),
         lambda c: c.contains_key("b")),
        ("contains_keys", w(O.CACHE_CONTAINS_KEYS, ops.cache_contains_keys,
                            ops.parse_cache_contains_keys, ["a", "zz"]),
         lambda c: c.contains_keys(["a", "zz"])),
        ("get_size", w(O.CACHE_GET_SIZE, ops.cache_get_size, ops.parse_cache_get_size),
         lambda c: c.get_size()),
        ("get_size-primary", w(O.CACHE_GET_SIZE, ops.cache_get_size, ops.parse_cache_get_size,
                               [ops.PeekMode.PRIMARY]),
         lambda c: c.get_size([ops.PeekMode.PRIMARY])),
        ("local_peek", w(O.CACHE_LOCAL_PEEK, ops.cache_local_peek, ops.parse_cache_local_peek,
                         "a", [ops.PeekMode.ALL]),
         lambda c: py_local_peek(c.client.random_node, c.cache_info, "a", peek_modes=0).value),
        ("clear_key", w(O.CACHE_CLEAR_KEY, ops.cache_clear_key, ops.parse_cache_clear_key, "c"),
         lambda c: c.clear_key("c")),
        ("clear_keys", w(O.CACHE_CLEAR_KEYS, ops.cache_clear_keys, ops.parse_cache_clear_keys,
                         ["d"]),
         lambda c: c.clear_keys(["d"])),
        ("remove_key", w(O.CACHE_REMOVE_KEY, ops.cache_remove_key, ops.parse_cache_remove_key,
                         "b"),
         lambda c: c.remove_key("b")),
        ("remove_if_equals", w(O.CACHE_REMOVE_IF_EQUALS, ops.cache_remove_if_equals,
                               ops.parse_cache_remove_if_equals, "a", "x3"),
         lambda c: c.remove_if_equals("a", "x3")),
        ("put_all-again", w(O.CACHE_PUT_ALL, ops.cache_put_all, ops.parse_cache_put_all,
                            {"p": 1, "q": 2, "r": 3}),
         lambda c: c.put_all({"p": 1, "q": 2, "r": 3})),
        ("remove_keys", w(O.CACHE_REMOVE_KEYS, ops.cache_remove_keys,
                          ops.parse_cache_remove_keys, ["p"]),
         lambda c: c.remove_keys(["p"])),
        ("get_size-2", w(O.CACHE_GET_SIZE, ops.cache_get_size, ops.parse_cache_get_size),
         lambda c: c.get_size()),
        ("remove_all", w(O.CACHE_REMOVE_ALL, ops.cache_remove_all, ops.parse_cache_remove_all),
         lambda c: c.remove_all()),
        ("put-3", w(O.CACHE_PUT, ops.cache_put, ops.parse_cache_put, "z", 1),
         lambda c: c.put("z", 1)),
        ("clear", w(O.CACHE_CLEAR, ops.cache_clear, ops.parse_cache_clear),
         lambda c: c.clear()),
        ("get_size-0", w(O.CACHE_GET_SIZE, ops.cache_get_size, ops.parse_cache_get_size),
         lambda c: c.get_size()),
    ]


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, list) and isinstance(theirs, dict):  # get_all: pairs vs dict
        return dict(ours) == theirs
    return bool(ours == theirs)


def test_key_value_ops_match_pyignite(wire: Wire, py: PyClient) -> None:
    ours_name, theirs_name = _unique("live-kv-ours"), _unique("live-kv-py")
    wire.ok(O.CACHE_GET_OR_CREATE_WITH_NAME, ops.cache_get_or_create_with_name(ours_name))
    theirs = py.get_or_create_cache(theirs_name)
    cid = cache_id(ours_name)
    for name, ours_call, py_call in _kv_steps():
        ours, expected = ours_call(wire, cid), py_call(theirs)
        assert _same(ours, expected), (name, ours, expected)


def test_values_cross_between_the_clients(wire: Wire, py: PyClient) -> None:
    name = _unique("live-cross")
    cache = py.get_or_create_cache(name)
    cid = cache_id(name)
    samples = ["text ✓", -(2**62), 0.25, b"\xff\x00", True, uuid.UUID(int=2**127 + 5)]
    for i, value in enumerate(samples):
        wire.ok(O.CACHE_PUT, ops.cache_put(cid, f"ours-{i}", value))
        assert cache.get(f"ours-{i}") == value
        cache.put(f"py-{i}", value)
        assert wire.ok(O.CACHE_GET, ops.cache_get(cid, f"py-{i}"), ops.parse_cache_get) == value
    wire.ok(O.CACHE_PUT, ops.cache_put(cid, 5, 6, TypeCode.INT, TypeCode.INT))
    assert cache.get(5, key_hint=IntObject) == 6
    wire.ok(O.CACHE_PUT, ops.cache_put(cid, "ttl", 1, expiry=(60_000, -2, -2)))
    assert cache.get("ttl") == 1


# -- cache management and configuration ---------------------------------------------------------


def test_cache_lifecycle(wire: Wire, py: PyClient) -> None:
    name = _unique("live-life")
    wire.ok(O.CACHE_CREATE_WITH_NAME, ops.cache_create_with_name(name))
    names = wire.ok(O.CACHE_GET_NAMES, ops.cache_get_names(), ops.parse_cache_get_names)
    assert sorted(names) == sorted(py.get_cache_names())
    assert name in names
    error = wire.call(O.CACHE_CREATE_WITH_NAME, ops.cache_create_with_name(name))
    assert isinstance(error, ErrorResponse) and error.status == 1001
    wire.ok(O.CACHE_DESTROY, ops.cache_destroy(cache_id(name)))
    assert name not in py.get_cache_names()


def _as_pyignite(config: dict[int, Any]) -> dict[int, Any]:
    """Our parsed configuration in pyignite's Cache.settings shape."""
    plain: dict[int, Any] = {}
    for code, value in config.items():
        if code == Prop.EXPIRY_POLICY:
            value = None if value is None else (value.create, value.update, value.access)
        elif code in (Prop.QUERY_ENTITIES, Prop.CACHE_KEY_CONFIGURATION):
            value = [_lists(dataclasses.asdict(v)) for v in value]
        plain[code] = value
    return plain


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def _pyignite_settings(cache: Any) -> dict[int, Any]:
    settings = dict(cache.settings)
    policy = settings.get(Prop.EXPIRY_POLICY)
    if policy is not None:
        settings[Prop.EXPIRY_POLICY] = (policy.create, policy.update, policy.access)
    return settings


def test_configuration_round_trip(wire: Wire, py: PyClient) -> None:
    name = _unique("live-cfg")
    suffix = name.rsplit("-", 1)[1]
    config = full_config(name, suffix=suffix)
    wire.ok(O.CACHE_CREATE_WITH_CONFIGURATION,
            ops.cache_create_with_configuration(config, version=wire.hello.version))
    ours = wire.ok(O.CACHE_GET_CONFIGURATION, ops.cache_get_configuration(cache_id(name)),
                   ops.parse_cache_get_configuration, version=wire.hello.version)
    assert _as_pyignite(ours) == _pyignite_settings(py.get_cache(name))
    for code, value in config.items():
        if code != Prop.QUERY_ENTITIES:
            assert ours[code] == value, Prop(code).name


def test_configuration_made_by_pyignite(wire: Wire, py: PyClient) -> None:
    name = _unique("live-pycfg")
    cache = py.create_cache({PROP_NAME: name, PROP_CACHE_ATOMICITY_MODE: 0})
    ours = wire.ok(O.CACHE_GET_CONFIGURATION, ops.cache_get_configuration(cache_id(name)),
                   ops.parse_cache_get_configuration, version=wire.hello.version)
    assert ours[Prop.CACHE_ATOMICITY_MODE] == cacheconfig.CacheAtomicityMode.TRANSACTIONAL
    assert _as_pyignite(ours) == _pyignite_settings(cache)


# -- queries ------------------------------------------------------------------------------------


def _sql(wire: Wire, query: str, **kwargs: Any) -> queries.SqlFieldsPage:
    names = kwargs.pop("include_field_names", False)
    kwargs.setdefault("schema", "PUBLIC")
    return wire.ok(O.QUERY_SQL_FIELDS,  # type: ignore[no-any-return]
                   queries.sql_fields(0, query, include_field_names=names,
                                      features=wire.hello.features, **kwargs),
                   queries.parse_sql_fields, names)


def _all_rows(wire: Wire, page: queries.SqlFieldsPage) -> list[list[Any]]:
    rows, more = list(page.rows), page.more
    while more:
        got, more = wire.ok(O.QUERY_SQL_FIELDS_CURSOR_GET_PAGE,
                            queries.sql_fields_page(page.cursor_id),
                            queries.parse_sql_fields_page, page.column_count)
        rows += got
    return rows


def test_sql_fields_match_pyignite(wire: Wire, py: PyClient) -> None:
    table = "LIVE_" + uuid.uuid4().hex[:8].upper()
    _sql(wire, f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR, score DOUBLE)")
    for i in range(7):
        page = _sql(wire, f"INSERT INTO {table} VALUES (?, ?, ?)", args=[i, f"n{i}", i * 1.5])
        assert page.rows == [[1]]
    query = f"SELECT id, name, score FROM {table} ORDER BY id"
    first = _sql(wire, query, page_size=3, include_field_names=True)
    with py.sql(query, include_field_names=True, page_size=3) as cursor:
        theirs = list(cursor)
    assert [list(first.field_names), *_all_rows(wire, first)] == theirs
    closing = _sql(wire, query, page_size=1)
    assert closing.more
    wire.ok(O.RESOURCE_CLOSE, queries.resource_close(closing.cursor_id))
    dml = _sql(wire, f"UPDATE {table} SET score = 0 WHERE id < ?", args=[3],
               statement_type=queries.StatementType.UPDATE)
    assert dml.rows == [[3]]
    with py.sql(f"SELECT COUNT(*) FROM {table} WHERE score = 0") as cursor:
        assert list(cursor) == [[3]]
    if Feature.QRY_PARTITIONS_BATCH_SIZE in wire.hello.features:
        counted = _sql(wire, f"SELECT COUNT(*) FROM {table}", partitions=list(range(1024)))
        assert counted.rows == [[7]]


def test_scan_matches_pyignite(wire: Wire, py: PyClient) -> None:
    name = _unique("live-scan")
    cache = py.get_or_create_cache(name)
    cache.put_all({i: f"v{i}" for i in range(9)})
    first = wire.ok(O.QUERY_SCAN, queries.scan(cache_id(name), page_size=4), queries.parse_scan)
    pairs, more = list(first.pairs), first.more
    while more:
        got, more = wire.ok(O.QUERY_SCAN_CURSOR_GET_PAGE, queries.scan_page(first.cursor_id),
                            queries.parse_scan_page)
        pairs += got
    with cache.scan(page_size=4) as cursor:
        assert sorted(pairs) == sorted(cursor)


def test_scan_of_sql_rows_needs_and_uses_the_codec_context(wire: Wire, py: PyClient) -> None:
    """Rows of an SQL table are binary objects: parsers take ``ctx`` (the type registry)."""
    table = "LIVE_ROWS_" + uuid.uuid4().hex[:8].upper()
    cache = f"SQL_{table}"
    _sql(wire, f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR, score INT) "
         f"WITH \"CACHE_NAME={cache},VALUE_TYPE={table}_V\"")
    for i in range(3):
        _sql(wire, f"INSERT INTO {table} VALUES (?, ?, ?)", args=[i, f"n{i}", i * 10])
    event = wire.call(O.QUERY_SCAN, queries.scan(cache_id(cache), page_size=10))
    assert isinstance(event, Response)
    with pytest.raises(UnknownSchema) as unknown:
        queries.parse_scan(event.body)
    binary_type = wire.ok(O.BINARY_TYPE_GET, metadata.binary_type_get(unknown.value.type_id),
                          metadata.parse_binary_type_get)
    registry = Registry()
    registry.add(binary_type)
    page = queries.parse_scan(event.body, ctx=CodecContext(registry))
    ours = sorted((k, v.fields["NAME"], v.fields["SCORE"]) for k, v in page.pairs)
    with py.sql(f"SELECT id, name, score FROM {table}") as cursor:
        assert ours == sorted(tuple(row) for row in cursor)


@pytest.mark.filterwarnings("ignore:Deprecated since 1.2.0:DeprecationWarning")
def test_old_sql_matches_pyignite(wire: Wire, py: PyClient) -> None:
    name = _unique("live-oldsql")
    entity = cacheconfig.QueryEntity("java.lang.Integer", "java.lang.String",
                                     "S" + uuid.uuid4().hex[:8].upper())
    wire.ok(O.CACHE_CREATE_WITH_CONFIGURATION, ops.cache_create_with_configuration(
        {Prop.NAME: name, Prop.QUERY_ENTITIES: [entity]}, version=wire.hello.version))
    cache = py.get_cache(name)
    for i in range(5):
        cache.put(i, f"s{i}", key_hint=IntObject)  # the entity's key type is Integer
    first = wire.ok(O.QUERY_SQL, queries.sql(cache_id(name), "String", "_key > ?", args=[1],
                                             page_size=10), queries.parse_sql)
    theirs = py_old_sql(py.random_node, cache.cache_info, "String", "_key > ?", 10,
                        query_args=[1])
    assert theirs.status == 0
    assert sorted(first.pairs) == sorted(theirs.value["data"].items())


def test_continuous_query_sees_pyignite_writes(wire: Wire, py: PyClient) -> None:
    name = _unique("live-cq")
    cache = py.get_or_create_cache(name)
    qid = wire.ok(O.QUERY_CONTINUOUS, queries.continuous_query(cache_id(name)),
                  queries.parse_continuous_query)
    # The server deploys the listener asynchronously after answering: wait until it sees a
    # write before the writes under test.
    deadline = time.monotonic() + 10
    while not wire.wait_events(qid, 1, timeout=0.5) and time.monotonic() < deadline:
        cache.put("warm-up", 0)
    cache.put("k", 1)
    cache.put("k", 2)
    cache.remove_key("k")
    events: list[queries.CacheEntryEvent] = []
    while len(events) < 3 and time.monotonic() < deadline + 10:
        events += [e for e in wire.wait_events(qid, 1, timeout=0.5) if e.key != "warm-up"]
    E = queries.EventType
    assert [(e.key, e.old_value, e.value, e.event_type) for e in events] == [
        ("k", None, 1, E.CREATED), ("k", 1, 2, E.UPDATED), ("k", 2, None, E.REMOVED)]
    wire.ok(O.RESOURCE_CLOSE, queries.resource_close(qid))
    cache.put("after", 0)
    assert wire.wait_events(qid, 1, timeout=1.0) == []


# -- transactions -------------------------------------------------------------------------------


def test_transactions_against_pyignite(wire: Wire, py: PyClient) -> None:
    name = _unique("live-tx")
    cache = py.create_cache({PROP_NAME: name, PROP_CACHE_ATOMICITY_MODE: 0})
    time.sleep(1)  # IGNITE-14868: a new transactional cache is not ready at once
    cid = cache_id(name)
    tx_id = wire.ok(O.TX_START, tx.tx_start(tx.TxConcurrency.PESSIMISTIC,
                                            tx.TxIsolation.READ_COMMITTED, 10_000, "live"),
                    tx.parse_tx_start)
    wire.ok(O.CACHE_PUT, ops.cache_put(cid, "a", 1, tx_id=tx_id))
    assert cache.get("a") is None  # not committed yet
    wire.ok(O.TX_END, tx.tx_end(tx_id, True))
    assert cache.get("a") == 1
    tx_id = wire.ok(O.TX_START, tx.tx_start(), tx.parse_tx_start)
    wire.ok(O.CACHE_PUT, ops.cache_put(cid, "b", 2, tx_id=tx_id))
    wire.ok(O.TX_END, tx.tx_end(tx_id, False))
    assert cache.get("b") is None
    with py.tx_start(TransactionConcurrency.OPTIMISTIC, TransactionIsolation.SERIALIZABLE) as t:
        cache.put("c", 3)
        t.commit()
    assert wire.ok(O.CACHE_GET, ops.cache_get(cid, "c"), ops.parse_cache_get) == 3
    error = wire.call(O.TX_END, tx.tx_end(12345, True))
    assert isinstance(error, ErrorResponse) and error.status == 1021


# -- cluster ------------------------------------------------------------------------------------


def test_cluster_discovery(wire: Wire, ignite_node: Any) -> None:
    node = wire.hello.node_id
    ids = wire.ok(O.CLUSTER_GROUP_GET_NODE_IDS, cluster.cluster_group_get_node_ids(),
                  cluster.parse_cluster_group_get_node_ids)
    assert ids.node_ids == (node,)
    assert wire.ok(O.CLUSTER_GROUP_GET_NODE_IDS,
                   cluster.cluster_group_get_node_ids(ids.top_version),
                   cluster.parse_cluster_group_get_node_ids) is None
    [info] = wire.ok(O.CLUSTER_GROUP_GET_NODE_INFO, cluster.cluster_group_get_node_info([node]),
                     cluster.parse_cluster_group_get_node_info)
    assert (info.node_id, info.is_client, info.is_local) == (node, False, True)
    assert info.version.major == 2 and info.attributes["clientListenerPort"] == \
        ignite_node.addresses[0][1]
    endpoints = wire.ok(O.CLUSTER_GROUP_GET_NODE_ENDPOINTS,
                        cluster.cluster_group_get_node_endpoints(),
                        cluster.parse_cluster_group_get_node_endpoints)
    host, port = ignite_node.addresses[0]
    assert endpoints.top_version == ids.top_version
    assert endpoints.added == (cluster.NodeEndpoint(node, port, (host,)),)
    assert wire.ok(O.GET_IDLE_TIMEOUT, cluster.get_idle_timeout(),
                   cluster.parse_get_idle_timeout) >= 0
    wire.ok(O.HEARTBEAT, cluster.heartbeat())


def test_cluster_state_and_wal(ignite_auth: Any) -> None:
    user, password = ignite_auth.credentials
    wire = Wire(ignite_auth.addresses[0], username=user, password=password)
    py = PyClient(username=user, password=password, partition_aware=False)
    py.connect(*ignite_auth.addresses[0])
    state = cluster.ClusterState
    features = wire.hello.features
    try:
        assert wire.ok(O.CLUSTER_GET_STATE, cluster.cluster_get_state(),
                       cluster.parse_cluster_get_state) == py.get_cluster().get_state()
        wire.ok(O.CLUSTER_CHANGE_STATE,
                cluster.cluster_change_state(state.ACTIVE_READ_ONLY, features=features))
        assert py.get_cluster().get_state() == PyClusterState.ACTIVE_READ_ONLY
        py.get_cluster().set_state(PyClusterState.ACTIVE)
        assert wire.ok(O.CLUSTER_GET_STATE, cluster.cluster_get_state(),
                       cluster.parse_cluster_get_state) is state.ACTIVE
        _wal_round_trip(wire, py)
    finally:
        py.get_cluster().set_state(PyClusterState.ACTIVE)
        py.close()
        wire.close()


def _wal_round_trip(wire: Wire, py: PyClient) -> None:
    name = _unique("live-wal")
    py.get_or_create_cache(name)
    get = cluster.parse_cluster_get_wal_state
    change = cluster.parse_cluster_change_wal_state
    assert wire.ok(O.CLUSTER_GET_WAL_STATE, cluster.cluster_get_wal_state(name), get) is True
    assert wire.ok(O.CLUSTER_CHANGE_WAL_STATE, cluster.cluster_change_wal_state(name, False),
                   change) is True
    assert wire.ok(O.CLUSTER_GET_WAL_STATE, cluster.cluster_get_wal_state(name), get) is False
    assert wire.ok(O.CLUSTER_CHANGE_WAL_STATE, cluster.cluster_change_wal_state(name, True),
                   change) is True
    assert wire.ok(O.CLUSTER_GET_WAL_STATE, cluster.cluster_get_wal_state(name), get) is True
