"""The conformance cases: each drives the Python stub (libclient) through some ops and returns
what the stub gave back. The capture records the frames they exchange with a real broker; the
stub check replays them (vectors.json). Raw cases are frames no well-behaved stub sends."""

from __future__ import annotations

import datetime
import decimal
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgpack

from libclient import Client, GenericObjectMeta
from libclient.continuous import JavaFilter, ScanQuery
from libclient.datatypes import (
    BoolArrayObject,
    ByteObject,
    CharObject,
    DoubleObject,
    FloatObject,
    IntArrayObject,
    IntObject,
    ShortObject,
    String,
)
from libclient.datatypes.prop_codes import (
    PROP_BACKUPS_NUMBER,
    PROP_CACHE_ATOMICITY_MODE,
    PROP_CACHE_MODE,
    PROP_EXPIRY_POLICY,
    PROP_NAME,
    PROP_SQL_SCHEMA,
)

KV_CACHE = "conformance-kv"
ADMIN_CACHE = "conformance-admin"
TX_CACHE = "conformance-tx"
SCAN_CACHE = "conformance-scan"
CQ_CACHE = "conformance-cq"
TABLE_CACHE = "SQL_PUBLIC_CONFORMANCE_T"
#: Caches a checker destroys (results unchecked) before it runs the cases.
CACHES = (KV_CACHE, ADMIN_CACHE, TX_CACHE, SCAN_CACHE, CQ_CACHE, TABLE_CACHE)
TYPE_NAME = "conformance.Point"
ROW_TYPE = "ConformanceRow"


def outcome(run: Callable[[], Any]) -> Any:
    """What a call returned, or the name of the exception it raised (and its status code)."""
    try:
        return run()
    except Exception as exc:
        code = getattr(exc, "status", None) or getattr(exc, "status_code", None)
        return f"{type(exc).__name__}({code})" if code is not None else type(exc).__name__


def broker_case(client: Client) -> list[Any]:
    """hello (on connect), ping, cluster state, cache names."""
    transport = client._transport
    assert transport is not None
    cluster = client.get_cluster()
    return [transport.call("ping"), int(cluster.get_state()), cluster.set_state(1),
            type(client.get_cache_names()).__name__]


def key_value_case(client: Client) -> list[Any]:
    """Every key-value op, with values of each msgpack and ext form."""
    cache = client.get_or_create_cache(KV_CACHE)
    out: list[Any] = [cache.get_size(), cache.get("absent")]
    values: list[tuple[Any, Any]] = [
        ("str", "text ü"), ("int", 2**40), ("neg", -7), ("float", 1.5), ("bool", True),
        ("bytes", b"\x00\x01\xff"), ("list", [1, 2, 3]), ("strs", ["a", "b"]),
        ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("decimal", decimal.Decimal("-12.345")),
        ("datetime", datetime.datetime(2024, 1, 2, 3, 4, 5, 6000)),
        ("date", datetime.date(2024, 1, 2)), ("time", datetime.timedelta(seconds=3723)),
    ]
    for key, value in values:
        cache.put(key, value)
        out.append(repr(cache.get(key)))
    hinted = [(1, 7, IntObject), (2, 7, ShortObject), (3, 7, ByteObject), (4, 2.5, FloatObject),
              (5, 2.5, DoubleObject), (6, "c", CharObject), (7, [1, 2], IntArrayObject),
              (8, [True, False], BoolArrayObject)]
    for key, value, hint in hinted:
        cache.put(key, value, key_hint=IntObject, value_hint=hint)
        out.append(repr(cache.get(key, key_hint=IntObject)))
    cache.put_all({"a": 1, "b": 2, "c": 3})
    out += [sorted(cache.get_all(["a", "b", "zz"]).items()),
            cache.replace("a", 10), cache.replace("nope", 1),
            cache.contains_key("a"), cache.contains_keys(["a", "b"]),
            cache.contains_keys(["a", "nope"]),
            cache.get_and_put("a", 11), cache.get_and_put_if_absent("a", 12),
            cache.get_and_put_if_absent("new", 13), cache.put_if_absent("new", 14),
            cache.get_and_remove("new"), cache.get_and_replace("a", 15),
            cache.remove_key("a"), cache.remove_key("a"),
            cache.remove_if_equals("b", 99), cache.remove_if_equals("b", 2),
            cache.replace_if_equals("c", 3, 30), cache.get("c")]
    cache.remove_keys(["c", "str"])
    cache.clear_key("int")
    cache.clear_keys(["neg", "float"])
    out.append(cache.get_size([0]))
    cache.with_expire_policy(create=60_000, update=-2, access=-1).put("ttl", "x")
    cache.remove_all()
    out.append(cache.get_size())
    cache.put("z", 1)
    cache.clear()
    out.append(cache.get_size([2, 3]))
    cache.destroy()
    return out


def admin_case(client: Client) -> list[Any]:
    """Cache create by config (twice: the second is a node error), its config, WAL, destroy."""
    config = {PROP_NAME: ADMIN_CACHE, PROP_CACHE_MODE: 2, PROP_CACHE_ATOMICITY_MODE: 1,
              PROP_BACKUPS_NUMBER: 1, PROP_SQL_SCHEMA: "CONFORMANCE",
              PROP_EXPIRY_POLICY: None}
    cache = client.create_cache(config)
    out: list[Any] = [outcome(lambda: client.create_cache(config))]
    settings = cache.settings
    out.append({k: settings[k] for k in sorted(config)})
    cluster = client.get_cluster()
    out.append(outcome(lambda: cluster.is_wal_enabled(ADMIN_CACHE)))
    cache.destroy()
    out.append(outcome(lambda: client.get_cache(ADMIN_CACHE).get(1)))
    return out


def query_case(client: Client) -> list[Any]:
    """SQL DDL/DML/SELECT over pages (cursor_next), a cursor closed half read, select_row."""
    run = client.sql
    out: list[Any] = [list(run("DROP TABLE IF EXISTS conformance_t"))]
    out.append(list(run("CREATE TABLE conformance_t (id INT PRIMARY KEY, name VARCHAR, "
                        "score DOUBLE) WITH \"CACHE_NAME=" + TABLE_CACHE + ",VALUE_TYPE=" + ROW_TYPE
                        + "\"")))
    for i in range(5):
        out.append(list(run("INSERT INTO conformance_t (id, name, score) VALUES (?, ?, ?)",
                            query_args=[i, f"n{i}", i / 2])))
    out.append(list(run("SELECT id, name, score FROM conformance_t ORDER BY id", page_size=2,
                        include_field_names=True)))
    with run("SELECT id FROM conformance_t ORDER BY id", page_size=2, statement_type=1,
             max_rows=4, timeout=10_000, lazy=True) as cursor:
        out.append(next(cursor))
    out.append(list(run("SELECT COUNT(*) FROM conformance_t", cache=TABLE_CACHE)))
    cache = client.get_cache(TABLE_CACHE)
    with warnings.catch_warnings():  # pyignite deprecates select_row; it is still an op
        warnings.simplefilter("ignore", DeprecationWarning)
        rows = cache.select_row("id > ?", page_size=2, query_args=[2])
        out.append(sorted(repr(row) for row in rows))
    out.append(outcome(lambda: list(run("SELECT nope FROM nowhere"))))
    out.append(list(run("DROP TABLE conformance_t")))
    return out


def scan_case(client: Client) -> list[Any]:
    """A scan over pages, and one of a single partition."""
    cache = client.get_or_create_cache(SCAN_CACHE)
    cache.put_all({i: f"v{i}" for i in range(5)})
    out: list[Any] = [sorted(cache.scan(page_size=2))]
    out.append(sorted(cache.scan(page_size=10, partitions=0)))
    cache.destroy()
    return out


def continuous_case(client: Client) -> list[Any]:
    """A continuous query on a connection of its own: cq_subscribe, then its initial scan
    query (scan, cursor_next on the first connection); after each change (a create, an
    update, a remove) the EVENT the broker pushes to the subscription's connection; a remote
    filter the node cannot make (SERVER_ERROR, on a third connection); cq_unsubscribe."""
    cache = client.get_or_create_cache(CQ_CACHE)
    cache.put("before", 0)
    out: list[Any] = []
    with cache.query_continuous(initial_query=ScanQuery(page_size=1)) as events:
        assert events.initial is not None
        out.append([list(pair) for pair in events.initial])
        for change in (lambda: cache.put("k", 1), lambda: cache.put("k", 2),
                       lambda: cache.remove_key("k")):
            change()
            out.append(events.get(timeout=30))  # before the next change: a fixed order
    out.append(outcome(lambda: cache.query_continuous(
        remote_filter=JavaFilter("org.example.NoSuchFilter", {"prefix": "k"}))))
    cache.destroy()
    return out


def tx_case(client: Client) -> list[Any]:
    """Transactions: committed, rolled back; ops inside carry the tx handle."""
    cache = client.create_cache({PROP_NAME: TX_CACHE, PROP_CACHE_ATOMICITY_MODE: 0})
    with client.tx_start(concurrency=1, isolation=1, timeout=10_000, label="conformance") as tx:
        cache.put("k", 1)
        tx.commit()
    with client.tx_start(concurrency=0, isolation=2) as tx:
        cache.put("k", 2)
        tx.rollback()
    out = [cache.get("k")]
    cache.destroy()
    return out


def binary_case(client: Client) -> list[Any]:
    """Binary types: register, read back, an object as a value; where the broker routes a key."""

    class Point(metaclass=GenericObjectMeta, type_name=TYPE_NAME,
                schema=OrderedDict([("x", IntObject), ("label", String)])):
        pass

    client.put_binary_type(TYPE_NAME, schema=OrderedDict([("x", IntObject),
                                                          ("label", String)]))
    known = client.get_binary_type(TYPE_NAME)
    cache = client.get_or_create_cache(KV_CACHE)
    cache.put("point", Point(x=3, label="p"))
    point = cache.get("point")
    node = client.get_best_node(KV_CACHE, "point")
    out = [sorted(known.get("schemas", {}) or {}) != [], point.x, point.label,
           type(client.get_binary_type("conformance.Unknown")).__name__,
           type(node).__name__]
    cache.destroy()
    return out


def error_case(client: Client) -> list[Any]:
    """Replies the broker builds itself: an unknown op, a missing argument, a bad enum."""
    transport = client._transport
    assert transport is not None
    return [outcome(lambda: transport.call("no_such_op")),
            outcome(lambda: transport.call("cache_get", {"key": 1})),
            outcome(lambda: transport.call("tx_start", {"concurrency": 7})),
            outcome(lambda: transport.call("cache_get_size",
                                           {"cache": KV_CACHE, "peek_modes": [9]}))]


#: name -> driver; run in this order, each on a Client of its own.
STUB_CASES: dict[str, Callable[[Client], list[Any]]] = {
    "broker": broker_case,
    "key_value": key_value_case,
    "admin": admin_case,
    "query": query_case,
    "scan": scan_case,
    "continuous": continuous_case,
    "tx": tx_case,
    "binary": binary_case,
    "errors": error_case,
}


def _frame(*envelope: Any) -> bytes:
    return msgpack.packb(list(envelope), use_bin_type=True)


#: Frames no stub sends on purpose, sent as they are: name -> request frame.
RAW_CASES: dict[str, bytes] = {
    "unsupported_version": _frame(2, 7, "ping", 0, {}),
    "not_msgpack": b"\xc1",
    "trailing_bytes": _frame(1, 3, "ping", 0, {}) + b"\x00",
    "short_envelope": _frame(1, 5, "ping"),
    "args_not_map": _frame(1, 6, "ping", 0, []),
    "args_int_key": _frame(1, 6, "ping", 0, {1: 2}),
    "request_id_negative": _frame(1, -1, "ping", 0, {}),
    "deadline_passed": _frame(1, 8, "ping", 1, {}),
    "unknown_ext_code": _frame(1, 9, "cache_get", 0, {"cache": KV_CACHE,
                                                      "key": msgpack.ExtType(12, b"")}),
    "typed_unknown_code": _frame(1, 10, "cache_get", 0, {
        "cache": KV_CACHE, "key": msgpack.ExtType(1, msgpack.packb([27, 1]))}),
}
