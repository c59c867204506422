"""Issue 10, items 2, 4 and 7 (broker half): no worker argument can halt a node or drop the shared
node connection, and no worker can take every transaction or cursor of a node connection.

Real broker, real 3-node cluster (a huge page only halts a node when another node serves part of
the query), raw frames over both transports, libclient as the well-behaved neighbour.  After the
bad requests the broker has lost no node connection and answered nothing INTERNAL."""

from __future__ import annotations

import itertools
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from protocol import ipc
from protocol.binary.typecodes import TypeCode
from protocol.cacheconfig import CacheAtomicityMode, Prop
from protocol.ipcstream import MessageReader, frame, stream_path

pytestmark = pytest.mark.integration

MAX_PAGE = 50
MAX_KEYS = 100
ENTRIES = 120  # more than two clamped pages
NODES = 3
TRANSPORTS = ["ipc", "unix"]


def _transactional(name: str) -> dict[int, Any]:
    return {Prop.NAME: name, Prop.CACHE_ATOMICITY_MODE: CacheAtomicityMode.TRANSACTIONAL}


# -- a raw worker on either transport ---------------------------------------------------------


class RawWorker:
    """One worker speaking raw frames: a DEALER socket (ipc://) or a stream connection
    (unix://); ``ask`` returns the reply whatever its status."""

    def __init__(self, broker: BrokerProcess, transport: str) -> None:
        self.ids = itertools.count(1)
        self.transport = transport
        if transport == "ipc":
            self.zmq = zmq.Context.instance().socket(zmq.DEALER)
            self.zmq.setsockopt(zmq.LINGER, 0)
            self.zmq.setsockopt(zmq.RCVTIMEO, 20000)
            self.zmq.connect(broker.endpoint)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(20)
            self.sock.connect(stream_path(broker.stream_endpoint))
            self.reader = MessageReader()
            self.received: deque[bytes] = deque()

    def _send(self, message: bytes) -> None:
        if self.transport == "ipc":
            self.zmq.send(message)
        else:
            self.sock.sendall(frame(message))

    def _recv(self) -> ipc.Reply:
        if self.transport == "ipc":
            return ipc.unpack_reply(self.zmq.recv())
        while not self.received:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.received.extend(self.reader.feed(data))  # type: ignore[arg-type]
        return ipc.unpack_reply(self.received.popleft())

    def ask(self, op: str, **args: Any) -> ipc.Reply:
        rid = next(self.ids)
        self._send(ipc.pack_request(rid, op, args))
        reply = self._recv()
        assert reply.request_id == rid
        return reply

    def call(self, op: str, **args: Any) -> Any:
        reply = self.ask(op, **args)
        assert reply.status == ipc.Status.OK, reply.payload
        return reply.payload

    def close(self) -> None:
        if self.transport == "ipc":
            self.zmq.close()
        else:
            self.sock.close()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(ignite_cluster3, tmp_path_factory) -> Iterator[BrokerProcess]:
    """Default tx/cursor caps; small page and key bounds, so clamping is visible."""
    with running_broker(ignite_cluster3.addresses, tmp_path_factory.mktemp("isolation"),
                        {"limits.max_page_size": MAX_PAGE,
                         "limits.max_keys_per_request": MAX_KEYS},
                        wait_nodes=NODES) as proc:
        with Client(broker=proc.endpoint) as client:
            client.connect()
            cache = client.get_or_create_cache("isolation-args")
            cache.put_all({i: f"v{i}" for i in range(MAX_KEYS)})
            cache.put_all({i: f"v{i}" for i in range(MAX_KEYS, ENTRIES)})
            client.get_or_create_cache(_transactional("isolation-neighbour"))
        yield proc


@pytest.fixture(scope="module")
def tight_broker(ignite_cluster3, tmp_path_factory) -> Iterator[BrokerProcess]:
    """As if the nodes allowed 4 transactions and 4 cursors per connection: room for 3 each on
    each of the 3 node connections."""
    with running_broker(ignite_cluster3.addresses, tmp_path_factory.mktemp("isolation-tight"),
                        {"limits.node_max_active_tx_per_connection": 4,
                         "limits.node_max_open_cursors_per_connection": 4,
                         "cluster.max_connections_per_node": 1},
                        wait_nodes=NODES) as proc:
        with Client(broker=proc.endpoint) as client:
            client.connect()
            cache = client.get_or_create_cache(_transactional("isolation-tight"))
            # A key on every node: each node starts the cache before any transaction uses it
            # (Ignite refuses to start a cache inside a transaction).
            for key in range(30):
                cache.put(key, key)
        yield proc


@pytest.fixture(params=TRANSPORTS)
def raw(request, broker) -> Iterator[RawWorker]:
    worker = RawWorker(broker, request.param)
    yield worker
    worker.close()


def _neighbour_still_works(broker: BrokerProcess, cluster: Any) -> None:
    """Every node's JVM runs and answers; a libclient worker writes, reads, runs a transaction
    and a query; the broker lost no node connection and answered nothing INTERNAL."""
    assert all(node.alive() for node in cluster.record.nodes)
    for idx in range(len(cluster.addresses)):
        cluster.handshake(idx)
    with Client(broker=broker.endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache("isolation-neighbour")
        cache.put("k", "still fine")
        assert cache.get("k") == "still fine"
        with client.tx_start() as tx:
            cache.put("t", 1)
            tx.commit()
        assert cache.get("t") == 1
        assert len(list(client.get_cache("isolation-args").scan(page_size=200))) == ENTRIES
    stats = broker.admin("show stats")
    assert stats["node_connections_lost"] == 0
    assert stats["internal_errors"] == 0


def _refused(reply: ipc.Reply, *words: str) -> None:
    assert reply.status == ipc.Status.BAD_REQUEST, reply.payload
    for word in words:
        assert word in reply.payload["message"]


# -- item 2: numbers are bounded ---------------------------------------------------------------


@pytest.mark.parametrize("op, args", [
    ("scan", {"cache": "isolation-args"}),
    ("sql", {"query": "SELECT X FROM SYSTEM_RANGE(1, 120)", "schema": "PUBLIC"}),
])
def test_scan_with_huge_page_size_does_not_halt_the_node(raw, broker, ignite_cluster3, op,
                                                         args):
    first = raw.call(op, page_size=2**31 - 1, **args)
    assert len(first["rows"]) == MAX_PAGE and first["more"]  # clamped, not refused
    rows = list(first["rows"])
    page = first
    while page["more"]:
        page = raw.call("cursor_next", cursor=first["cursor"])
        assert len(page["rows"]) <= MAX_PAGE
        rows += page["rows"]
    assert len(rows) == ENTRIES
    _neighbour_still_works(broker, ignite_cluster3)


def test_sql_page_size_zero_is_refused_and_the_node_connection_stays(raw, broker,
                                                                       ignite_cluster3):
    for page_size in (0, -1, -(2**31)):
        _refused(raw.ask("sql", query="SELECT 1", schema="PUBLIC", page_size=page_size),
                 "'page_size'", f"1..{MAX_PAGE}")
        _refused(raw.ask("scan", cache="isolation-args", page_size=page_size), "'page_size'")
        _refused(raw.ask("select_row", cache="isolation-args", table="T", query="1=1",
                         page_size=page_size), "'page_size'")
    _neighbour_still_works(broker, ignite_cluster3)


@pytest.mark.parametrize("expiry", [[-5, -5, -5], [0, -3, 0], [2**62, -1, -1]])
def test_bad_expiry_is_refused_and_the_node_connection_stays(raw, broker, ignite_cluster3,
                                                             expiry):
    for op, extra in [("cache_put", {"key": 1, "value": 1}), ("cache_get", {"key": 1}),
                      ("cache_get_size", {"peek_modes": []})]:
        _refused(raw.ask(op, cache="isolation-neighbour", expiry=expiry, **extra), "'expiry'")
    _refused(raw.ask("cache_create", config={Prop.NAME: "isolation-expiry",
                                             Prop.EXPIRY_POLICY: expiry}), "'expiry'")
    assert raw.call("cache_put", cache="isolation-neighbour", key=1, value=1,
                    expiry=[-2, -1, 0]) is None  # Ignite's special values pass
    _neighbour_still_works(broker, ignite_cluster3)


OUT_OF_RANGE = [
    ("sql", {"query": "SELECT 1", "schema": "PUBLIC", "timeout": -1}, "'timeout'"),
    ("sql", {"query": "SELECT 1", "schema": "PUBLIC", "timeout": 2**31}, "'timeout'"),
    ("sql", {"query": "SELECT 1", "schema": "PUBLIC", "statement_type": 9}, "'statement_type'"),
    ("sql", {"query": "SELECT 1", "schema": "PUBLIC", "max_rows": 2**40}, "'max_rows'"),
    ("sql", {"query": "SELECT ?", "schema": "PUBLIC", "args": [1] * 65536}, "'args'"),
    ("sql", {"query": "SELECT 1", "schema": "S" * 2000}, "'schema'"),
    ("select_row", {"cache": "isolation-args", "table": "T", "query": "1=1", "timeout": -1},
     "'timeout'"),
    ("scan", {"cache": "isolation-args", "partitions": 70000}, "'partitions'"),
    ("scan", {"cache": "isolation-args", "partitions": -7}, "'partitions'"),
    ("tx_start", {"concurrency": 5}, "'concurrency'"),
    ("tx_start", {"isolation": 7}, "'isolation'"),
    ("tx_start", {"timeout": -1}, "'timeout'"),
    ("tx_start", {"label": "L" * 2000}, "'label'"),
    ("cache_get_size", {"cache": "isolation-neighbour", "peek_modes": [9]}, "'peek_modes'"),
    ("cache_get_all", {"cache": "isolation-neighbour", "keys": list(range(MAX_KEYS + 1))},
     "'keys'"),
    ("cache_put_all", {"cache": "isolation-neighbour",
                       "pairs": [[i, i] for i in range(MAX_KEYS + 1)]}, "'pairs'"),
    ("cache_remove_keys", {"cache": "isolation-neighbour", "keys": list(range(MAX_KEYS + 1))},
     "'keys'"),
    ("cluster_set_state", {"state": 7}, "'state'"),
    ("cluster_wal", {"cache": "c" * 300}, "'cache'"),
    ("cache_create", {"name": "n" * 300}, "'name'"),
    ("cache_create", {"config": {Prop.NAME: "isolation-qp", Prop.QUERY_PARALLELISM: 2**31 - 1}},
     "QUERY_PARALLELISM"),
    ("cache_create", {"config": {Prop.NAME: "isolation-qp0", Prop.QUERY_PARALLELISM: 0}},
     "QUERY_PARALLELISM"),
    # The node's setters refuse these while parsing, and an unparsable request closes the
    # connection (the fuzz run's 3 lost connections per transport came from SQL_SCHEMA "").
    ("cache_get_or_create", {"config": {Prop.NAME: "isolation-schema", Prop.SQL_SCHEMA: ""}},
     "SQL_SCHEMA"),
    ("cache_create", {"config": {Prop.NAME: "isolation-region", Prop.DATA_REGION_NAME: ""}},
     "DATA_REGION_NAME"),
    ("cache_create", {"config": {Prop.NAME: "isolation-group", Prop.GROUP_NAME: ""}},
     "GROUP_NAME"),
    ("binary_type_put", {"type_name": "Bad", "schema": [["f", 127]]}, "'schema'"),
    ("binary_type_put", {"type_name": "Big", "schema": [[f"f{i}", 3] for i in range(1025)]},
     "'schema'"),
    ("binary_type_get", {"type": 2**40}, "'type'"),
]


@pytest.mark.parametrize("op, args, word", OUT_OF_RANGE, ids=[
    f"{op}-{word.strip(chr(39))}-{i}" for i, (op, _, word) in enumerate(OUT_OF_RANGE)])
def test_out_of_range_arguments_are_refused_before_a_node_sees_them(raw, broker,
                                                                     ignite_cluster3, op,
                                                                     args, word):
    _refused(raw.ask(op, **args), word)
    assert raw.call("ping") is None
    _neighbour_still_works(broker, ignite_cluster3)


def test_a_lone_surrogate_char_stored_by_one_worker_reads_back_for_every_other(raw, broker,
                                                                              ignite_cluster3):
    """A CHAR is one UTF-16 unit, so a node holds lone surrogates (any Java client can store
    one): replies carry them as msgpack "surrogatepass" text, as pyignite returns them; they
    were answered INTERNAL ("cannot serialize the result") to every reader."""
    char = msgpack.ExtType(ipc.ExtCode.TYPED, msgpack.packb([int(TypeCode.CHAR), 0xDC80]))
    assert raw.call("cache_put", cache="isolation-neighbour", key="lone", value=char) is None
    assert raw.call("cache_get", cache="isolation-neighbour", key="lone") == "\udc80"
    for endpoint in (broker.endpoint, broker.stream_endpoint):
        with Client(broker=endpoint) as client:
            client.connect()
            assert client.get_cache("isolation-neighbour").get("lone") == "\udc80"
    _neighbour_still_works(broker, ignite_cluster3)


# -- item 7: per-worker caps, per-connection limits --------------------------------------------


def test_one_worker_cannot_take_every_transaction(raw, broker, ignite_cluster3):
    cap = broker.admin("show config")["limits.max_transactions_per_worker"]
    handles = [raw.call("tx_start") for _ in range(cap)]
    refused = raw.ask("tx_start")
    assert refused.status == ipc.Status.OVERLOADED
    assert "limits.max_transactions_per_worker" in refused.payload["message"]
    try:
        _neighbour_still_works(broker, ignite_cluster3)
        # The worker's own transactions still work, and ending one makes room again.
        raw.call("cache_put", cache="isolation-neighbour", key="own", value=1, tx=handles[0])
        raw.call("tx_end", tx=handles.pop(0), commit=True)
        handles.append(raw.call("tx_start"))
    finally:
        for handle in handles:
            raw.call("tx_end", tx=handle, commit=False)


def test_one_worker_cannot_take_every_cursor(raw, broker, ignite_cluster3):
    cap = broker.admin("show config")["limits.max_cursors_per_worker"]
    cursors = [raw.call("scan", cache="isolation-args", page_size=1)["cursor"]
               for _ in range(cap)]
    assert None not in cursors
    for op, args in [("scan", {"cache": "isolation-args", "page_size": 1}),
                     ("sql", {"query": "SELECT X FROM SYSTEM_RANGE(1, 9)", "schema": "PUBLIC",
                              "page_size": 1})]:
        refused = raw.ask(op, **args)
        assert refused.status == ipc.Status.OVERLOADED
        assert "limits.max_cursors_per_worker" in refused.payload["message"]
    try:
        _neighbour_still_works(broker, ignite_cluster3)
        assert raw.call("cursor_next", cursor=cursors[0])["more"]
        raw.call("cursor_close", cursor=cursors.pop(0))
        cursors.append(raw.call("scan", cache="isolation-args", page_size=1)["cursor"])
    finally:
        for cursor in cursors:
            raw.call("cursor_close", cursor=cursor)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transactions_spread_over_node_connections_and_stop_below_ignites_limit(
        tight_broker, transport):
    workers = [RawWorker(tight_broker, transport) for _ in range(2)]
    handles: list[tuple[RawWorker, int]] = []
    try:
        # Two workers, each below its own cap, fill every connection's room (3 x 3): each
        # transaction works, none was sent to a node that would have refused it.
        for i in range(NODES * 3):
            worker = workers[i % 2]
            handle = worker.call("tx_start")
            worker.call("cache_put", cache="isolation-tight", key=i, value=i, tx=handle)
            handles.append((worker, handle))
        refused = workers[0].ask("tx_start")
        assert refused.status == ipc.Status.OVERLOADED
        message = refused.payload["message"]
        assert "every node connection" in message
        assert "limits.node_max_active_tx_per_connection" in message
        worker, handle = handles.pop()
        worker.call("tx_end", tx=handle, commit=True)
        handles.append((workers[0], workers[0].call("tx_start")))  # room again
    finally:
        for worker, handle in handles:
            worker.call("tx_end", tx=handle, commit=False)
        for worker in workers:
            worker.close()
    assert tight_broker.admin("show stats")["node_connections_lost"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cursors_spread_over_node_connections_and_stop_below_ignites_limit(
        tight_broker, transport):
    with Client(broker=tight_broker.endpoint) as client:
        client.connect()
        client.get_or_create_cache("isolation-tight-scan").put_all({i: i for i in range(10)})
    worker = RawWorker(tight_broker, transport)
    cursors = []
    try:
        for _ in range(NODES * 3):
            page = worker.call("scan", cache="isolation-tight-scan", page_size=1)
            assert page["more"]
            cursors.append(page["cursor"])
        refused = worker.ask("scan", cache="isolation-tight-scan", page_size=1)
        assert refused.status == ipc.Status.OVERLOADED
        assert "limits.node_max_open_cursors_per_connection" in refused.payload["message"]
        for cursor in cursors:  # every cursor is usable: none hit a node's limit
            assert len(worker.call("cursor_next", cursor=cursor)["rows"]) == 1
    finally:
        for cursor in cursors:
            worker.call("cursor_close", cursor=cursor)
        worker.close()
    assert tight_broker.admin("show stats")["node_connections_lost"] == 0


@pytest.fixture(scope="module")
def growing_broker(ignite_cluster3, tmp_path_factory) -> Iterator[BrokerProcess]:
    """As tight_broker, but allowed a second connection to each node."""
    with running_broker(ignite_cluster3.addresses, tmp_path_factory.mktemp("isolation-grow"),
                        {"limits.node_max_active_tx_per_connection": 4,
                         "cluster.max_connections_per_node": 2},
                        wait_nodes=NODES) as proc:
        yield proc


def test_node_connections_are_added_when_transactions_fill_them(growing_broker):
    workers = [RawWorker(growing_broker, "unix") for _ in range(4)]
    handles: list[tuple[RawWorker, int]] = []
    try:
        for i in range(NODES * 3):  # fills the room of the first connection to each node
            worker = workers[i % len(workers)]
            handles.append((worker, worker.call("tx_start")))
        refused = workers[0].ask("tx_start")
        assert refused.status == ipc.Status.OVERLOADED
        assert "another connection to each node is being opened" in refused.payload["message"]
        deadline = time.monotonic() + 30
        while sum(n["connections"] for n in growing_broker.admin("show nodes")) < 2 * NODES:
            assert time.monotonic() < deadline, growing_broker.admin("show nodes")
            time.sleep(0.1)
        for i in range(NODES * 3):  # as many again, on the new connections
            worker = workers[i % len(workers)]
            handles.append((worker, worker.call("tx_start")))
        refused = workers[0].ask("tx_start")
        assert refused.status == ipc.Status.OVERLOADED
        assert "retry when some are closed" in refused.payload["message"]
    finally:
        for worker, handle in handles:
            worker.call("tx_end", tx=handle, commit=False)
        for worker in workers:
            worker.close()
    assert growing_broker.admin("show stats")["node_connections_lost"] == 0
