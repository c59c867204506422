"""The sync Client against a fake broker: every method's request and result shape, errors,
cursors, transactions, binary types, events and the heartbeat."""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict

import pytest

from libclient import Client, GenericObjectMeta
from libclient import datatypes as dt
from libclient.binary import entity_id
from libclient.datatypes import prop_codes as pc
from libclient.datatypes.key_value import PeekModes
from libclient.exceptions import (
    BrokerTimeout,
    BrokerUnavailable,
    CacheCreationError,
    CacheError,
    ClusterError,
    NodeMismatchError,
    NotSupportedError,
    ParameterError,
    ReconnectError,
    SQLError,
)
from libclient.monitoring import ConnectionEventListener, QueryEventListener
from tests.libclient.fakebroker import FakeBroker, object_value


def last(fake, op):
    return [args for _, name, args in fake.requests if name == op][-1]


def test_connect_forms(fake):
    for args in [(), ("127.0.0.1", 10800), ([("127.0.0.1", 10800)],)]:
        c = Client(broker=fake.endpoint)
        with c.connect(*args):
            assert c.protocol_context.version == (1, 7, 0)
            assert c.partition_aware
        assert last(fake, "hello")["nodes"] == [f"{h}:{p}" for h, p in (
            args[0] if len(args) == 1 else [args] if args else [])]


def test_the_label_goes_in_hello_from_the_kwarg_or_the_environment(fake, monkeypatch):
    with Client(broker=fake.endpoint, label="celery:send_email") as c:
        c.connect()
    assert last(fake, "hello")["label"] == "celery:send_email"
    monkeypatch.setenv("IGNITE_BROKER_LABEL", "gunicorn/web-1")
    with Client(broker=fake.endpoint) as c:
        c.connect()
    assert last(fake, "hello")["label"] == "gunicorn/web-1"
    monkeypatch.delenv("IGNITE_BROKER_LABEL")
    with Client(broker=fake.endpoint) as c:
        c.connect()
    assert "label" not in last(fake, "hello")


@pytest.mark.parametrize("label", ["", "x" * 65, "has space", "naïve", 7])
def test_a_label_out_of_its_bounds_is_refused_before_anything_is_sent(label, monkeypatch):
    with pytest.raises(ParameterError, match="label"):
        Client(broker="unix:///nonexistent/broker.stream", label=label)
    if isinstance(label, str) and label:
        monkeypatch.setenv("IGNITE_BROKER_LABEL", label)
        with pytest.raises(ParameterError, match=r"\$IGNITE_BROKER_LABEL"):
            Client(broker="unix:///nonexistent/broker.stream")


def test_connect_to_another_cluster_is_refused(fake):
    with pytest.raises(NodeMismatchError, match="not a node") as exc:
        Client(broker=fake.endpoint).connect("10.9.9.9", 10800)
    assert isinstance(exc.value, ParameterError) and isinstance(exc.value, ReconnectError)


def test_no_broker_is_a_clear_error_after_the_handshake_timeout(endpoint):
    client = Client(broker=endpoint, handshake_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="no socket file") as exc:
        client.connect()
    assert 0.4 < time.monotonic() - started < 15  # not cut short; not left waiting
    assert exc.value.maybe_applied is False
    assert isinstance(exc.value, ReconnectError)  # what pyignite raises: 'Can not connect.'


def test_key_value_methods(client, fake):
    cache = client.get_or_create_cache("kv")
    assert cache.name == "kv" and cache.get("nope") is None
    assert cache.put("a", 1) is None
    assert cache.get("a") == 1
    assert cache.contains_key("a") is True and cache.contains_keys(["a", "b"]) is False
    cache.put_all({"b": 2, "c": [1, 2]})
    assert cache.get_all(["a", "b", "c", "zz"]) == {"a": 1, "b": 2, "c": [1, 2]}
    assert cache.replace("a", 10) is True and cache.replace("zz", 1) is False
    assert cache.get_and_put("a", 11) == 10
    assert cache.get_and_put_if_absent("a", 12) == 11
    assert cache.put_if_absent("d", 4) is True and cache.put_if_absent("d", 5) is False
    assert cache.get_and_replace("d", 6) == 4
    assert cache.get_and_remove("d") == 6
    assert cache.remove_if_equals("a", 999) is False and cache.remove_if_equals("a", 11) is True
    cache.put("e", 5)
    assert cache.replace_if_equals("e", 5, 50) is True and cache.get("e") == 50
    assert cache.remove_key("e") is True and cache.remove_key("e") is False
    assert cache.get_size() == 2
    assert cache.get_size(PeekModes.PRIMARY) == 2
    assert last(fake, "cache_get_size")["peek_modes"] == [2]
    cache.get_size([PeekModes.PRIMARY, PeekModes.BACKUP])
    assert last(fake, "cache_get_size")["peek_modes"] == [2, 3]
    cache.clear_key("b")
    cache.clear_keys(["c"])
    assert cache.get_size() == 0
    cache.put_all({1: 1, 2: 2})
    cache.remove_keys([1])
    cache.clear([2])
    cache.put(3, 3)
    cache.clear()
    cache.put(4, 4)
    cache.remove_all()
    assert cache.get_size() == 0


def test_hints_and_hinted_pairs(client, fake):
    cache = client.get_or_create_cache("hints")
    cache.put(1, 2, key_hint=dt.IntObject, value_hint=dt.ShortObject)
    assert fake.requests[-1][2]["key"].type_code == 3
    cache.put_all({(5, dt.IntObject): ("x", dt.CharObject)})
    pair = last(fake, "cache_put_all")["pairs"][0]
    assert (pair[0].type_code, pair[1].type_code) == (3, 7)
    cache.remove_keys(["a", ("a", dt.CharObject)])
    assert last(fake, "cache_remove_keys")["keys"][1].type_code == 7


def test_cache_administration(client, fake):
    created = client.create_cache("adm")
    assert created.cache_id == client.get_cache("adm").cache_id
    with pytest.raises(CacheCreationError, match="already exists"):
        client.create_cache("adm")
    client.get_or_create_cache({pc.PROP_NAME: "cfg", pc.PROP_BACKUPS_NUMBER: 1,
                                pc.PROP_EXPIRY_POLICY: dt.ExpiryPolicy(create=5)})
    config = last(fake, "cache_get_or_create")["config"]
    assert config == {0: "cfg", 3: 1, 407: [5, -2, -2]}
    assert set(client.get_cache_names()) == {"adm", "cfg"}
    settings = created.settings
    assert settings[pc.PROP_NAME] == "adm" and settings[pc.PROP_EXPIRY_POLICY] is None
    assert created.settings is settings  # lazy, fetched once
    created.destroy()
    assert client.get_cache_names() == ["cfg"]


def test_server_errors(client):
    with pytest.raises(CacheError, match="Cache does not exist") as exc:
        client.get_cache("missing").get(1)
    assert exc.value.server_status == 1000
    with pytest.raises(SQLError, match="Failed to parse"):
        client.sql("FAIL")


def test_unknown_op_says_the_broker_lacks_it(client, fake):
    fake.op_node_for = None  # this broker does not implement node_for
    with pytest.raises(NotSupportedError, match="does not implement 'node_for'"):
        client.random_node  # noqa: B018


def test_expiry_policy_views(client, fake):
    cache = client.get_or_create_cache("ttl")
    ttl = cache.with_expire_policy(access=1000)
    assert type(ttl) is type(cache) and ttl.name == "ttl"
    ttl.put(1, 1)
    assert last(fake, "cache_put")["expiry"] == [-2, -2, 1000]
    cache.put(1, 1)
    assert "expiry" not in last(fake, "cache_put")
    with pytest.raises(TypeError):
        cache.with_expire_policy(access=1.0)


def test_sql_cursor_pages_and_field_names(client, fake):
    cursor = client.sql("SELECT x FROM t 5", page_size=2, include_field_names=True,
                        query_args=[1, ("a", dt.CharObject)])
    request = last(fake, "sql")
    assert request["schema"] == "PUBLIC" and request["page_size"] == 2
    assert request["args"][1].type_code == 7
    rows = list(cursor)
    assert rows[0] == ["ID", "NAME", "ARG0", "ARG1"]
    assert rows[1:] == [[i, f"row {i}", 1, "a"] for i in range(5)]
    assert fake.ops().count("cursor_next") == 2 and "cursor_close" not in fake.ops()
    assert client.sql("SELECT 1", cache="kv").__class__.__name__ == "SqlFieldsCursor"
    assert last(fake, "sql")["schema"] is None and last(fake, "sql")["cache"] == "kv"


def test_closing_a_half_read_cursor_closes_it_in_the_broker(client, fake):
    with client.sql("SELECT x 10", page_size=3) as cursor:
        assert next(cursor) == [0, "row 0"]
        cursor_id = cursor.cursor_id
    assert last(fake, "cursor_close") == {"cursor": cursor_id}
    assert fake.cursors == {}


def test_an_abandoned_cursor_is_closed_with_the_next_request(client, fake):
    cursor = client.sql("SELECT x 10", page_size=3)
    cursor_id = cursor.cursor_id
    del cursor
    gc.collect()
    client.get_cache_names()
    time.sleep(0.1)
    assert {"cursor": cursor_id} in [a for _, op, a in fake.requests if op == "cursor_close"]


def test_scan_and_select_row(client):
    cache = client.get_or_create_cache("scan")
    cache.put_all({f"k{i}": i for i in range(7)})
    with cache.scan(page_size=3) as cursor:
        pairs = list(cursor)
    assert sorted(pairs) == sorted((f"k{i}", i) for i in range(7))
    assert all(type(p) is tuple for p in pairs)
    with pytest.warns(DeprecationWarning, match="sql_fields"):  # as pyignite warns
        rows = cache.select_row("SELECT * FROM Thing", page_size=2)
    assert dict(rows) == {f"k{i}": i for i in range(7)}


def test_a_cursor_can_be_read_from_another_thread(client):
    cursor = client.sql("SELECT x 9", page_size=2)
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(cursor))
    worker.start()
    worker.join(10)
    assert out == [[i, f"row {i}"] for i in range(9)]


def test_transactions(client, fake):
    cache = client.get_or_create_cache("tx")
    cache.put("k", "before")
    with client.tx_start(label="t1") as tx:
        cache.put("k", "inside")
        assert last(fake, "cache_put")["tx"] == tx.tx_id
        assert cache.get("k") == "inside"
        tx.commit()
    assert cache.get("k") == "inside" and "tx" not in last(fake, "cache_get")
    with client.tx_start(timeout=1000):
        cache.put("k", "rolled back")
    assert cache.get("k") == "inside"
    assert last(fake, "tx_end")["commit"] is False
    with pytest.raises(RuntimeError), client.tx_start():
        cache.put("k", "boom")
        raise RuntimeError
    assert cache.get("k") == "inside"


def test_a_transaction_belongs_to_its_thread(client, fake):
    cache = client.get_or_create_cache("tx2")
    tx = client.tx_start()
    seen: list = []

    def other() -> None:
        cache.put("x", 1)  # not in the transaction
        seen.append("tx" in last(fake, "cache_put"))
        try:
            tx.commit()
        except CacheError as exc:
            seen.append(str(exc))

    worker = threading.Thread(target=other)
    worker.start()
    worker.join(10)
    assert seen == [False, "Cannot commit transaction from different thread or coroutine"]
    tx.rollback()


def test_cluster(client):
    cluster = client.get_cluster()
    assert cluster.get_state() == dt.ClusterState.ACTIVE
    cluster.set_state(dt.ClusterState.ACTIVE_READ_ONLY)
    assert cluster.get_state() == 2
    assert cluster.is_wal_enabled("c") is True
    assert cluster.disable_wal("c") is True and cluster.is_wal_enabled("c") is False


def test_cluster_errors_are_cluster_errors(client, fake):
    fake.op_cluster_get_state = lambda peer, args: (_ for _ in ()).throw(
        __import__("tests.libclient.fakebroker", fromlist=["x"]).ServerError(1, "no"))
    with pytest.raises(ClusterError):
        client.get_cluster().get_state()


class Person(metaclass=GenericObjectMeta, type_name="test.Person", schema=OrderedDict([
    ("name", dt.String), ("age", dt.IntObject)])):
    pass


def test_complex_objects_go_with_typed_fields_and_join_the_registry(client, fake):
    cache = client.get_or_create_cache("people")
    cache.put(1, Person(name="Ivan", age=33))
    cache.put(2, Person(name="Olga", age=30))
    assert "binary_type_put" not in fake.ops()  # the broker registers new schemas itself
    sent = last(fake, "cache_put")["value"]
    assert sent.type_name == "test.Person" and sent.fields["age"].type_code == 3
    assert client.query_binary_type("test.Person") == {Person.schema_id: Person}
    got = cache.get(1)
    assert type(got) is Person and got == Person(name="Ivan", age=33)
    assert "binary_type_get" not in fake.ops()


def test_objects_of_unknown_types_get_classes_from_cluster_metadata(client, fake):
    fake.types[Person.type_id] = {
        "type_id": Person.type_id, "type_name": "test.Person", "affinity_key_field": None,
        "is_enum": False, "fields": [["name", 9, entity_id("name")], ["age", 3, entity_id("age")]],
        "enum_values": [], "schemas": {Person.schema_id: [entity_id("name"), entity_id("age")]}}
    cache = client.get_or_create_cache("people2")
    fake.caches["people2"] = {
        b"k": (1, object_value("test.Person", {"name": "A", "age": 5})),
        b"j": (2, object_value("other.Thing", {"x": 1.5}))}
    with cache.scan() as cursor:
        values = dict(cursor)
    person, thing = values[1], values[2]
    assert type(person).__name__ == "TestPerson" and type(person) is not Person
    assert (person.name, person.age, person.version) == ("A", 5, 1)
    assert type(person).schema == OrderedDict([("name", dt.String), ("age", dt.IntObject)])
    assert type(thing).__name__ == "OtherThing" and thing.x == 1.5  # no metadata: inferred
    assert fake.ops().count("binary_type_get") == 2


def test_binary_type_methods(client, fake):
    assert client.get_binary_type("nothing") == {"type_exists": False}
    client.put_binary_type("test.Enum2", is_enum=True, schema={"X": 5})
    assert client.get_binary_type("test.Enum2")["enums"] == [{"literal": "X", "type_id": 5}]
    result = client.put_binary_type("test.Enum", is_enum=True, schema={"A": 0, "B": 1})
    assert result == {"type_id": entity_id("test.Enum"), "schema_id": None}
    assert last(fake, "binary_type_put")["schema"] == [["A", 0], ["B", 1]]
    client.register_binary_type(Person)
    assert last(fake, "binary_type_put") == {
        "type_name": "test.Person", "affinity_key_field": None, "is_enum": False,
        "schema": [["name", 9], ["age", 3]]}
    info = client.get_binary_type("test.Person")
    assert info["type_name"] == "test.Person"
    assert info["schemas"] == [OrderedDict([("name", dt.String), ("age", dt.IntObject)])]
    assert client.query_binary_type("test.Person", Person.schema_id) is Person
    assert client.query_binary_type(Person.type_id) == {Person.schema_id: Person}
    assert client.unwrap_binary((1, [2])) == (1, [2])


def test_nodes(client, fake):
    node = client.random_node
    assert (node.host, node.port, node.alive) == ("127.0.0.1", 10800, True)
    assert repr(client.get_best_node("kv", 5, dt.IntObject)) == "127.0.0.1:10800"
    assert last(fake, "node_for")["cache"] == "kv"
    assert last(fake, "node_for")["key"].type_code == 3


class Recorder(QueryEventListener, ConnectionEventListener):
    def __init__(self) -> None:
        self.events: list = []

    def on_query_start(self, event):
        self.events.append(("start", event.op_name, event.op_code))

    def on_query_success(self, event):
        self.events.append(("success", event.op_name, event.duration >= 0))

    def on_query_fail(self, event):
        self.events.append(("fail", event.op_name, event.err_msg))

    def on_handshake_start(self, event):
        self.events.append(("handshake_start", event.host))

    def on_handshake_success(self, event):
        self.events.append(("handshake_success", event.host))

    def on_connection_closed(self, event):
        self.events.append(("closed", event.host))


class Broken(QueryEventListener):
    def on_query_start(self, event):
        raise RuntimeError("listener bug")


def test_events(fake):
    recorder = Recorder()
    client = Client(broker=fake.endpoint, event_listeners=[Broken(), recorder])
    client.connect()
    cache = client.get_or_create_cache("ev")
    cache.put(1, 1)
    with pytest.raises(CacheError):
        client.get_cache("missing").get(1)
    client.close()
    assert recorder.events == [
        ("handshake_start", fake.endpoint), ("handshake_success", fake.endpoint),
        ("start", "OP_CACHE_GET_OR_CREATE_WITH_NAME", 1052),
        ("success", "OP_CACHE_GET_OR_CREATE_WITH_NAME", True),
        ("start", "OP_CACHE_PUT", 1001), ("success", "OP_CACHE_PUT", True),
        ("start", "OP_CACHE_GET", 1000),
        ("fail", "OP_CACHE_GET", f"'Cache does not exist [cacheId={hash('missing')}]'"),
        ("closed", fake.endpoint),
    ]


def test_heartbeat_pings_idle_sockets_that_hold_cursors(fake):
    from libclient.heartbeat import heartbeat

    fake.hello_extra["worker_liveness_s"] = 0.3  # -> ping after 0.1 s of silence
    client = Client(broker=fake.endpoint)
    client.connect()
    assert client.get_cache_names() == []
    time.sleep(0.4)
    assert "ping" not in fake.ops()  # nothing held: no heartbeat at all
    cursor = client.sql("SELECT x 10", page_size=2)
    peer = [p for p, op, _ in fake.requests if op == "sql"][-1]
    time.sleep(0.6)
    pings = [p for p, op, _ in fake.requests if op == "ping"]
    assert len(pings) >= 2 and set(pings) == {peer}  # on the cursor's own socket
    assert heartbeat().running
    cursor.close()
    time.sleep(0.3)
    count = fake.ops().count("ping")
    time.sleep(0.4)
    assert fake.ops().count("ping") == count  # released: pinging stopped
    assert not heartbeat().running
    client.close()


def test_a_silent_broker_is_a_timeout_that_says_if_a_write_may_have_landed(fake):
    fake.silent_ops.update({"cache_get", "cache_put"})
    client = Client(broker=fake.endpoint, timeout=0.3)
    client.connect()
    cache = client.get_cache("c")
    started = time.monotonic()
    with pytest.raises(BrokerTimeout) as read:
        cache.get(1)
    assert 0.3 <= time.monotonic() - started < 15  # not cut short; not left waiting
    assert read.value.maybe_applied is None
    with pytest.raises(BrokerTimeout, match="may have been applied") as write:
        cache.put(1, 1)
    assert write.value.maybe_applied is True and isinstance(write.value, TimeoutError)
    fake.silent_ops.clear()
    client.get_or_create_cache("c")
    assert cache.get(1) is None  # the late replies were dropped, the socket still works
    client.close()


def test_closed_client(fake):
    client = Client(broker=fake.endpoint)
    client.connect()
    cache = client.get_or_create_cache("c")
    client.close()
    with pytest.raises(ReconnectError):
        cache.get(1)
    client.connect()
    assert cache.get(1) is None
    client.close()


def test_context_managers(fake):
    with Client(broker=fake.endpoint) as client, client.connect() as conn:
        assert conn.client is client
        client.get_cache_names()
    assert client._transport is None


def test_a_connected_zmq_channel_sends_and_waits_without_pyzmq_poll(tmp_path, monkeypatch):
    """The hot path over ZeroMQ: one send and one blocking receive (RCVTIMEO), no
    ``Socket.poll`` (a Poller built per call, and more system calls in libzmq)."""
    import zmq

    fake = FakeBroker(f"ipc://{tmp_path}/broker.sock")
    c = Client(broker=fake.endpoint, timeout=5)
    try:
        c.connect()
        cache = c.get_or_create_cache("polls")
        cache.put(1, "one")  # connected now
        polls = []
        real_poll = zmq.Socket.poll

        def poll(self, *args, **kwargs):
            if self.type == zmq.DEALER:  # the stub's (the fake broker polls too)
                polls.append(args)
            return real_poll(self, *args, **kwargs)

        monkeypatch.setattr(zmq.Socket, "poll", poll)
        assert [cache.get(1) for _ in range(20)] == ["one"] * 20
        assert polls == []
    finally:
        c.close()
        fake.stop()
