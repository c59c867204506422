#!/usr/bin/env python3
"""Capture op vectors (tests/protocol/vectors/ops_*.json) from real Ignite nodes, and the format.

Starts a plain one-node dev cluster and a persistent one with authentication (cluster state
and WAL need persistence), runs every op our codec builds (key/value, cache management and
configuration, SQL fields / scan / old SQL queries, cursors, continuous queries,
transactions, cluster state / WAL / groups / endpoints, heartbeat) through
``protocol.ClientConnection`` over plain sockets, and stores each request body, response
body (or error status) and decoded result. Where the right answer is known independently
(the value put, the flag an op must return) the capture compares our decoder with it and
exits with status 1 on a disagreement, so a codec bug becomes a failing vector instead of
recorded truth.

    .venv/bin/python tests/protocol/capture_ops.py            # ports 11150 and 11160

The first half of this file is the vector format, shared with the replay tests
(test_ops_kv.py, test_cacheconfig.py, test_queries.py, test_cluster_tx.py)::

    {"source": "...", "connections": [
      {"name": "...", "version": [1, 7, 0], "features": [...], "exchanges": [
        {"name": "...", "op": "CACHE_PUT_IF_ABSENT",
         "build": {"fn": "ops.cache_put_if_absent", "args": [...], "kwargs": {...}},
         "request_hex": "<body>", "response_hex": "<body>" | null,
         "error": null | {"status": 1001, "message": "..."},
         "parse": {"fn": "ops.parse_bool", "kwargs": {...}} | null,
         "result": <tagged JSON of the parsed result>}]}]}

A notification exchange has no "build" and no request; its "resource_id" is recorded.
Tagged JSON: {"$bytes": hex}, {"$uuid": str}, {"$dict": [[k, v], ...]}, {"$set": [...]},
{"$version": [1, 7, 0]}, {"$float": "nan"}, {"$type": "ClassName", "fields": {...}} for
dataclasses, {"$repr": "..."} for anything else; tuples become lists.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import decimal
import enum
import itertools
import json
import math
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    Notification,
    OpCode,
    ProtocolVersion,
    Response,
    cache_id,
    cacheconfig,
    cluster,
    ops,
    queries,
    tx,
)
from protocol.binary import TypeCode, values
from protocol.errors import RemoteProtocolError
from protocol.features import Feature
from tests.protocol.protocol_helpers import feed, legacy_response, ready_connection, response

VECTOR_DIR = Path(__file__).parent / "vectors"
Json = Any

MODULES = {"ops": ops, "queries": queries, "cluster": cluster, "tx": tx,
           "cacheconfig": cacheconfig}
_CLASSES = {
    name: obj
    for module in (*MODULES.values(), values)
    for name, obj in vars(module).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}

# =============================================================================================
# The vector format
# =============================================================================================


def resolve(name: str) -> Callable[..., Any]:
    """"ops.cache_get" -> the function."""
    module, _, attr = name.partition(".")
    return getattr(MODULES[module], attr)  # type: ignore[no-any-return]


def to_json(value: Any) -> Json:
    """A parsed result or builder argument as tagged JSON (see the module docstring)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, ProtocolVersion):
        return {"$version": list(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, set | frozenset):
        return {"$set": sorted((to_json(v) for v in value), key=json.dumps)}
    if isinstance(value, dict):
        return {"$dict": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$type": type(value).__name__, "fields": fields}
    if isinstance(value, decimal.Decimal | datetime.date | datetime.time | datetime.timedelta):
        return {"$repr": repr(value)}
    return {"$repr": repr(value)}


def from_json(data: Json) -> Any:
    """The inverse of to_json (for builder arguments; "$repr" cannot be rebuilt)."""
    if isinstance(data, list):
        return [from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = next(iter(data), None)
    if tag == "$bytes":
        return bytes.fromhex(data["$bytes"])
    if tag == "$uuid":
        return uuid.UUID(data["$uuid"])
    if tag == "$version":
        return ProtocolVersion(*data["$version"])
    if tag == "$float":
        return float(data["$float"])
    if tag == "$set":
        return frozenset(from_json(v) for v in data["$set"])
    if tag == "$dict":
        return {_hashable(from_json(k)): from_json(v) for k, v in data["$dict"]}
    if tag == "$type":
        cls = _CLASSES[data["$type"]]
        return cls(**{k: from_json(v) for k, v in data["fields"].items()})
    raise ValueError(f"cannot rebuild {data!r}")


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def load_ops_vectors(name: str) -> Json:
    """tests/protocol/vectors/<name>.json."""
    return json.loads((VECTOR_DIR / f"{name}.json").read_text("utf-8"))


def iter_exchanges(name: str) -> Iterator[tuple[str, Json, Json]]:
    """(test id, connection, exchange) for every exchange of a vector file."""
    for conn in load_ops_vectors(name)["connections"]:
        for exchange in conn["exchanges"]:
            yield f"{conn['name']}:{exchange['name']}", conn, exchange


def build_request(exchange: Json) -> bytes:
    """Rebuild an exchange's request body with our builder."""
    build = exchange["build"]
    args = [from_json(a) for a in build["args"]]
    kwargs = {k: from_json(v) for k, v in build["kwargs"].items()}
    return resolve(build["fn"])(*args, **kwargs)  # type: ignore[no-any-return]


def parse_response(exchange: Json, body: bytes | memoryview) -> Any:
    """Parse an exchange's response body with its recorded parser."""
    parse = exchange["parse"]
    kwargs = {k: from_json(v) for k, v in parse["kwargs"].items()}
    return resolve(parse["fn"])(body, **kwargs)


def replay_response(connection: Json, exchange: Json, bytewise: bool) -> Response | Notification:
    """Feed the recorded response (or notification) through a ClientConnection of the
    recorded version, whole or one byte at a time, and return the event it yields."""
    version = tuple(connection["version"])
    conn = ready_connection(version)  # type: ignore[arg-type]
    body = bytes.fromhex(exchange["response_hex"])
    if exchange["build"] is None:
        frame = response(exchange["resource_id"], body, notification=OpCode[exchange["op"]])
    else:
        request_id, _ = conn.send_request(OpCode[exchange["op"]],
                                          bytes.fromhex(exchange["request_hex"]))
        make = legacy_response if version < (1, 4, 0) else response
        frame = make(request_id, body)
    chunks = [frame[i : i + 1] for i in range(len(frame))] if bytewise else [frame]
    events = feed(conn, chunks)
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, Response | Notification), event
    return event


#: Parsers that read every item the body holds whatever its count says (Ignite counts a live
#: view, then writes what it iterates): a cut between items parses as the items before it.
_COUNT_ADVISORY = {"ops.parse_cache_get_names"}


def _truncations(body: bytes, limit: int = 160) -> list[int]:
    """Every cut of a short body; for long ones the first/last bytes and an even spread."""
    if len(body) <= limit:
        return list(range(len(body)))
    step = max(1, len(body) // limit)
    return sorted({*range(0, 40), *range(len(body) - 40, len(body)),
                   *range(0, len(body), step)})


_VECTOR_KINDS: dict[str, Callable[[Json], bool]] = {
    "request_vector": lambda e: e["build"] is not None,
    "answered_vector": lambda e: e["error"] is None,
    "body_vector": lambda e: e["error"] is None and bool(e["response_hex"]),
}


class ReplayChecks:
    """The replay tests every ops_*.json file gets; subclasses set ``vectors``.

    ``request_vector`` runs over exchanges we built a request for, ``answered_vector`` over
    the successful ones, ``body_vector`` over those with a non-empty response body.
    """

    vectors = ""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for kind, wanted in _VECTOR_KINDS.items():
            if kind in metafunc.fixturenames:
                items = [(i, c, e) for i, c, e in iter_exchanges(self.vectors) if wanted(e)]
                metafunc.parametrize(kind, [(c, e) for _, c, e in items],
                                     ids=[i for i, _, _ in items])

    def test_request_bytes_match_the_capture(self, request_vector: tuple[Json, Json]) -> None:
        _, exchange = request_vector
        assert build_request(exchange).hex() == exchange["request_hex"]

    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_response_parses_to_the_recorded_result(self, answered_vector: tuple[Json, Json],
                                                    bytewise: bool) -> None:
        connection, exchange = answered_vector
        event = replay_response(connection, exchange, bytewise)
        assert to_json(parse_response(exchange, event.body)) == exchange["result"]

    def test_trailing_byte_is_refused(self, answered_vector: tuple[Json, Json]) -> None:
        _, exchange = answered_vector
        body = bytes.fromhex(exchange["response_hex"])
        with pytest.raises(RemoteProtocolError):
            parse_response(exchange, body + b"\x00")

    def test_truncated_body_is_refused(self, body_vector: tuple[Json, Json]) -> None:
        _, exchange = body_vector
        body = bytes.fromhex(exchange["response_hex"])
        whole = to_json(parse_response(exchange, body))
        for cut in _truncations(body):
            if exchange["parse"]["fn"] in _COUNT_ADVISORY:
                try:
                    got = to_json(parse_response(exchange, body[:cut]))
                except RemoteProtocolError:
                    continue
                assert got == whole[:len(got)]  # a cut between items: the items before it
                continue
            with pytest.raises(RemoteProtocolError):
                parse_response(exchange, body[:cut])


# =============================================================================================
# Capturing
# =============================================================================================

_UNSET = object()


class Recorder:
    """One socket and one ClientConnection, recording every exchange."""

    def __init__(self, name: str, address: tuple[str, int], config: ConnectionConfig) -> None:
        self.sock = socket.create_connection(address, timeout=30)
        self.conn = ClientConnection(config)
        self.sock.sendall(self.conn.initiate())
        event = self._next()
        if not isinstance(event, HandshakeAccepted):
            raise RuntimeError(f"{name}: handshake failed: {event!r}")
        self.version = event.version
        self.features = event.features
        self.notifications: list[Notification] = []
        self.mismatches = 0
        self.record: Json = {"name": name, "version": list(self.version),
                             "features": sorted(self.features), "exchanges": []}

    def close(self) -> None:
        self.sock.close()

    def _next(self) -> object:
        while (event := self.conn.next_event()) is NEED_DATA:
            data = self.sock.recv(1 << 16)
            self.conn.receive_data(data)
        return event

    def _await(self, request_id: int) -> Response | ErrorResponse:
        while True:
            event = self._next()
            if isinstance(event, Notification):
                self.notifications.append(event)
            elif isinstance(event, Response | ErrorResponse) and event.request_id == request_id:
                return event
            else:
                raise RuntimeError(f"unexpected event {event!r}")

    def call(self, name: str, op: OpCode, build: str, *args: Any, parse: str | None = None,
             parse_kwargs: dict[str, Any] | None = None, expected: Any = _UNSET,
             unordered: bool = False, **kwargs: Any) -> Any:
        """Build, send, await, parse, check and record one exchange; return the result."""
        body = resolve(build)(*args, **kwargs)
        request_id, frame = self.conn.send_request(op, body)
        self.sock.sendall(frame)
        event = self._await(request_id)
        exchange: Json = {
            "name": name, "op": op.name,
            "build": {"fn": build, "args": [to_json(a) for a in args],
                      "kwargs": {k: to_json(v) for k, v in kwargs.items()}},
            "request_hex": body.hex(), "response_hex": None, "error": None, "parse": None,
            "result": None,
        }
        self.record["exchanges"].append(exchange)
        if isinstance(event, ErrorResponse):
            exchange["error"] = {"status": event.status, "message": event.message}
            if expected is not _UNSET:
                self._mismatch(name, f"error {event.status} {event.message}", expected)
            return event
        return self._parsed(exchange, bytes(event.body), parse, parse_kwargs or {}, expected,
                            unordered)

    def _parsed(self, exchange: Json, body: bytes, parse: str | None,
                parse_kwargs: dict[str, Any], expected: Any, unordered: bool) -> Any:
        parse = parse or "ops.parse_empty"
        exchange["response_hex"] = body.hex()
        exchange["parse"] = {"fn": parse,
                             "kwargs": {k: to_json(v) for k, v in parse_kwargs.items()}}
        result = resolve(parse)(body, **parse_kwargs)
        exchange["result"] = to_json(result)
        if expected is not _UNSET and not _same(result, expected, unordered):
            self._mismatch(exchange["name"], result, expected)
        return result

    def error(self, name: str, op: OpCode, build: str, *args: Any, status: int,
              **kwargs: Any) -> None:
        """An exchange that must fail with ``status``."""
        event = self.call(name, op, build, *args, **kwargs)
        if not isinstance(event, ErrorResponse) or event.status != status:
            self._mismatch(name, event, f"ErrorResponse status {status}")

    def events(self, name: str, resource_id: int, expected: list[queries.CacheEntryEvent],
               timeout: float = 10.0) -> None:
        """Record continuous-query notifications until they hold ``len(expected)`` events
        (the server may put several in one), then compare the events with ``expected``."""
        got: list[queries.CacheEntryEvent] = []
        deadline = time.monotonic() + timeout
        while len(got) < len(expected) and time.monotonic() < deadline:
            if not self.notifications:
                time.sleep(0.1)
                request_id, frame = self.conn.send_request(OpCode.HEARTBEAT, cluster.heartbeat())
                self.sock.sendall(frame)
                self._await(request_id)
                continue
            event = self.notifications.pop(0)
            exchange: Json = {"name": f"{name}-{len(got)}", "op": OpCode(event.op).name,
                              "build": None, "request_hex": None,
                              "resource_id": event.resource_id, "error": None}
            self.record["exchanges"].append(exchange)
            got += self._parsed(exchange, event.body, "queries.parse_continuous_query_event",
                                {}, _UNSET, False)
            if event.resource_id != resource_id:
                self._mismatch(exchange["name"], event.resource_id, resource_id)
        if not _same(got, expected, False):
            self._mismatch(name, got, expected)

    def _mismatch(self, name: str, got: Any, expected: Any) -> None:
        self.mismatches += 1
        print(f"MISMATCH {self.record['name']}:{name}: got {got!r}, expected {expected!r}",
              file=sys.stderr)


def _same(result: Any, expected: Any, unordered: bool) -> bool:
    if callable(expected) and not isinstance(expected, type):
        return bool(expected(result))
    got, want = to_json(result), to_json(expected)
    if unordered:
        return sorted(map(json.dumps, got)) == sorted(map(json.dumps, want))
    return bool(got == want)


# =============================================================================================
# What gets captured
# =============================================================================================

T = TypeCode
O = OpCode  # noqa: E741
P = cacheconfig.Prop
ALL_FEATURES = frozenset(range(1, 32))  # the node keeps the ones it supports


def capture_kv(rec: Recorder) -> None:
    """Every key/value op on a string-keyed cache, with the answers known up front."""
    name = "ops-kv"
    cid = cache_id(name)
    rec.call("get_or_create", O.CACHE_GET_OR_CREATE_WITH_NAME,
             "ops.cache_get_or_create_with_name", name, expected=None)
    rec.error("create-existing", O.CACHE_CREATE_WITH_NAME, "ops.cache_create_with_name", name,
              status=1001)
    rec.call("put", O.CACHE_PUT, "ops.cache_put", cid, "k1", "v1", expected=None)
    rec.call("get", O.CACHE_GET, "ops.cache_get", cid, "k1", parse="ops.parse_cache_get",
             expected="v1")
    rec.call("get-missing", O.CACHE_GET, "ops.cache_get", cid, "nope",
             parse="ops.parse_cache_get", expected=None)
    rec.call("put_if_absent-present", O.CACHE_PUT_IF_ABSENT, "ops.cache_put_if_absent", cid,
             "k1", "x", parse="ops.parse_cache_put_if_absent", expected=False)
    rec.call("put_if_absent-int", O.CACHE_PUT_IF_ABSENT, "ops.cache_put_if_absent", cid, "k2",
             2, value_hint=T.INT, parse="ops.parse_cache_put_if_absent", expected=True)
    rec.call("put_all", O.CACHE_PUT_ALL, "ops.cache_put_all", cid,
             [["k3", 3.5], ["k4", b"\x01\x02"], ["k5", True]], expected=None)
    rec.call("get_all", O.CACHE_GET_ALL, "ops.cache_get_all", cid, ["k1", "k2", "k4", "nope"],
             parse="ops.parse_cache_get_all", unordered=True,
             expected=[("k1", "v1"), ("k2", 2), ("k4", b"\x01\x02")])
    rec.call("get_all-none", O.CACHE_GET_ALL, "ops.cache_get_all", cid, ["nope"],
             parse="ops.parse_cache_get_all", expected=[])
    _kv_get_and(rec, cid)
    _kv_conditional(rec, cid)
    _kv_size_and_removal(rec, cid)
    _kv_typed_and_expiry(rec, cid)
    _cache_lifecycle(rec)


def _kv_get_and(rec: Recorder, cid: int) -> None:
    rec.call("get_and_put", O.CACHE_GET_AND_PUT, "ops.cache_get_and_put", cid, "k1", "v1b",
             parse="ops.parse_cache_get_and_put", expected="v1")
    rec.call("get_and_replace", O.CACHE_GET_AND_REPLACE, "ops.cache_get_and_replace", cid,
             "k1", "v1c", parse="ops.parse_cache_get_and_replace", expected="v1b")
    rec.call("get_and_replace-missing", O.CACHE_GET_AND_REPLACE, "ops.cache_get_and_replace",
             cid, "nope", "x", parse="ops.parse_cache_get_and_replace", expected=None)
    rec.call("get_and_remove", O.CACHE_GET_AND_REMOVE, "ops.cache_get_and_remove", cid, "k5",
             parse="ops.parse_cache_get_and_remove", expected=True)
    rec.call("get_and_remove-missing", O.CACHE_GET_AND_REMOVE, "ops.cache_get_and_remove",
             cid, "k5", parse="ops.parse_cache_get_and_remove", expected=None)
    rec.call("get_and_put_if_absent-present", O.CACHE_GET_AND_PUT_IF_ABSENT,
             "ops.cache_get_and_put_if_absent", cid, "k1", "x",
             parse="ops.parse_cache_get_and_put_if_absent", expected="v1c")
    rec.call("get_and_put_if_absent-absent", O.CACHE_GET_AND_PUT_IF_ABSENT,
             "ops.cache_get_and_put_if_absent", cid, "k6", "v6",
             parse="ops.parse_cache_get_and_put_if_absent", expected=None)


def _kv_conditional(rec: Recorder, cid: int) -> None:
    rec.call("replace", O.CACHE_REPLACE, "ops.cache_replace", cid, "k1", "v1d",
             parse="ops.parse_cache_replace", expected=True)
    rec.call("replace-missing", O.CACHE_REPLACE, "ops.cache_replace", cid, "nope", "x",
             parse="ops.parse_cache_replace", expected=False)
    rec.call("replace_if_equals", O.CACHE_REPLACE_IF_EQUALS, "ops.cache_replace_if_equals",
             cid, "k1", "v1d", "v1e", parse="ops.parse_cache_replace_if_equals", expected=True)
    rec.call("replace_if_equals-differs", O.CACHE_REPLACE_IF_EQUALS,
             "ops.cache_replace_if_equals", cid, "k1", "v1d", "x",
             parse="ops.parse_cache_replace_if_equals", expected=False)
    rec.call("contains_key", O.CACHE_CONTAINS_KEY, "ops.cache_contains_key", cid, "k1",
             parse="ops.parse_cache_contains_key", expected=True)
    rec.call("contains_key-missing", O.CACHE_CONTAINS_KEY, "ops.cache_contains_key", cid,
             "nope", parse="ops.parse_cache_contains_key", expected=False)
    rec.call("contains_keys", O.CACHE_CONTAINS_KEYS, "ops.cache_contains_keys", cid,
             ["k1", "k2"], parse="ops.parse_cache_contains_keys", expected=True)
    rec.call("contains_keys-one-missing", O.CACHE_CONTAINS_KEYS, "ops.cache_contains_keys",
             cid, ["k1", "nope"], parse="ops.parse_cache_contains_keys", expected=False)


def _kv_size_and_removal(rec: Recorder, cid: int) -> None:
    # k1, k2, k3, k4, k6
    rec.call("get_size", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             parse="ops.parse_cache_get_size", expected=5)
    rec.call("get_size-primary", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             [ops.PeekMode.PRIMARY], parse="ops.parse_cache_get_size", expected=5)
    rec.call("get_size-backup", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             [ops.PeekMode.BACKUP], parse="ops.parse_cache_get_size", expected=0)
    rec.call("get_size-all-onheap", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             [ops.PeekMode.ALL, ops.PeekMode.OFFHEAP], parse="ops.parse_cache_get_size",
             expected=5)
    rec.call("local_peek", O.CACHE_LOCAL_PEEK, "ops.cache_local_peek", cid, "k1",
             [ops.PeekMode.ALL], parse="ops.parse_cache_local_peek", expected="v1e")
    rec.call("local_peek-missing", O.CACHE_LOCAL_PEEK, "ops.cache_local_peek", cid, "nope",
             parse="ops.parse_cache_local_peek", expected=None)
    rec.call("clear_key", O.CACHE_CLEAR_KEY, "ops.cache_clear_key", cid, "k6", expected=None)
    rec.call("clear_keys", O.CACHE_CLEAR_KEYS, "ops.cache_clear_keys", cid, ["k3", "nope"],
             expected=None)
    rec.call("remove_key", O.CACHE_REMOVE_KEY, "ops.cache_remove_key", cid, "k2",
             parse="ops.parse_cache_remove_key", expected=True)
    rec.call("remove_key-missing", O.CACHE_REMOVE_KEY, "ops.cache_remove_key", cid, "k2",
             parse="ops.parse_cache_remove_key", expected=False)
    rec.call("remove_if_equals-differs", O.CACHE_REMOVE_IF_EQUALS,
             "ops.cache_remove_if_equals", cid, "k1", "x",
             parse="ops.parse_cache_remove_if_equals", expected=False)
    rec.call("remove_if_equals", O.CACHE_REMOVE_IF_EQUALS, "ops.cache_remove_if_equals", cid,
             "k1", "v1e", parse="ops.parse_cache_remove_if_equals", expected=True)
    rec.call("remove_keys", O.CACHE_REMOVE_KEYS, "ops.cache_remove_keys", cid, ["k4"],
             expected=None)
    rec.call("get_size-empty", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             parse="ops.parse_cache_get_size", expected=0)
    rec.call("put_all-again", O.CACHE_PUT_ALL, "ops.cache_put_all", cid, {"a": 1, "b": 2},
             expected=None)
    rec.call("remove_all", O.CACHE_REMOVE_ALL, "ops.cache_remove_all", cid, expected=None)
    rec.call("put-before-clear", O.CACHE_PUT, "ops.cache_put", cid, "c", "d", expected=None)
    rec.call("clear", O.CACHE_CLEAR, "ops.cache_clear", cid, expected=None)
    rec.call("get_size-cleared", O.CACHE_GET_SIZE, "ops.cache_get_size", cid,
             parse="ops.parse_cache_get_size", expected=0)


def _kv_typed_and_expiry(rec: Recorder, cid: int) -> None:
    rec.call("put-int-key-short-value", O.CACHE_PUT, "ops.cache_put", cid, 7, 300, T.INT,
             T.SHORT, expected=None)
    rec.call("get-int-key", O.CACHE_GET, "ops.cache_get", cid, 7, T.INT,
             parse="ops.parse_cache_get", expected=300)
    rec.call("get-long-key-is-another-key", O.CACHE_GET, "ops.cache_get", cid, 7,
             parse="ops.parse_cache_get", expected=None)
    rec.call("put-with-expiry", O.CACHE_PUT, "ops.cache_put", cid, "ttl", "gone-soon",
             expiry=(60_000, -2, -2), expected=None)
    rec.call("get_and_put-keep-binary-expiry", O.CACHE_GET_AND_PUT, "ops.cache_get_and_put",
             cid, "ttl", "still", flags=ops.FLAG_KEEP_BINARY, expiry=(-1, -1, -1),
             parse="ops.parse_cache_get_and_put", expected="gone-soon")


def _cache_lifecycle(rec: Recorder) -> None:
    tmp = "ops-kv-tmp"
    rec.call("create_with_name", O.CACHE_CREATE_WITH_NAME, "ops.cache_create_with_name", tmp,
             expected=None)
    names = rec.call("get_names", O.CACHE_GET_NAMES, "ops.cache_get_names",
                     parse="ops.parse_cache_get_names")
    if not {"ops-kv", tmp} <= set(names):
        rec._mismatch("get_names", names, ["ops-kv", tmp])
    rec.call("destroy", O.CACHE_DESTROY, "ops.cache_destroy", cache_id(tmp), expected=None)
    rec.error("get-destroyed-cache", O.CACHE_GET, "ops.cache_get", cache_id(tmp), 1,
              status=1000)
    rec.error("destroy-missing", O.CACHE_DESTROY, "ops.cache_destroy", cache_id(tmp),
              status=1000)


# -- cache configuration ----------------------------------------------------------------------

CFG_CACHE = "ops-cfg"


def full_config(name: str = CFG_CACHE, *, expiry: bool = True, suffix: str = "") -> dict[int, Any]:
    """A configuration touching every property kind."""
    entity = cacheconfig.QueryEntity(
        key_type_name="java.lang.Integer", value_type_name=f"OpsPerson{suffix}",
        table_name=f"PERSON{suffix.upper()}",
        key_field_name="id", value_field_name=None,
        query_fields=(
            cacheconfig.QueryField("id", "java.lang.Integer", True, True),
            cacheconfig.QueryField("name", "java.lang.String", False, True, "anon", 32),
            cacheconfig.QueryField("salary", "java.math.BigDecimal", precision=10, scale=2),
            cacheconfig.QueryField("age", "java.lang.Integer", default_value=None),
        ),
        field_name_aliases=(cacheconfig.QueryFieldAlias("name", "FULL_NAME"),),
        query_indexes=(
            cacheconfig.QueryIndex(f"PERSON{suffix.upper()}_NAME_IDX", cacheconfig.IndexType.SORTED,
                                   20,
                                   (cacheconfig.QueryIndexField("name", True),
                                    cacheconfig.QueryIndexField("age"))),
        ),
    )
    config: dict[int, Any] = {
        P.NAME: name,
        P.CACHE_MODE: cacheconfig.CacheMode.PARTITIONED,
        P.CACHE_ATOMICITY_MODE: cacheconfig.CacheAtomicityMode.ATOMIC,
        P.BACKUPS_NUMBER: 1,
        P.WRITE_SYNCHRONIZATION_MODE: cacheconfig.WriteSynchronizationMode.FULL_SYNC,
        P.COPY_ON_READ: False,
        P.READ_FROM_BACKUP: False,
        P.IS_ONHEAP_CACHE_ENABLED: True,
        P.QUERY_ENTITIES: [entity],
        P.QUERY_PARALLELISM: 2,
        P.QUERY_DETAIL_METRIC_SIZE: 10,
        P.SQL_SCHEMA: "OPS",
        P.SQL_INDEX_INLINE_MAX_SIZE: 40,
        P.SQL_ESCAPE_ALL: False,
        P.MAX_QUERY_ITERATORS: 256,
        P.REBALANCE_MODE: cacheconfig.RebalanceMode.ASYNC,
        P.REBALANCE_DELAY: 0,
        P.REBALANCE_TIMEOUT: 20_000,
        P.REBALANCE_BATCH_SIZE: 1 << 19,
        P.REBALANCE_BATCHES_PREFETCH_COUNT: 3,
        P.REBALANCE_ORDER: 1,
        P.REBALANCE_THROTTLE: 5,
        P.GROUP_NAME: None,
        P.CACHE_KEY_CONFIGURATION: [cacheconfig.CacheKeyConfiguration("OpsPersonKey", "id")],
        P.DEFAULT_LOCK_TIMEOUT: 1000,
        P.MAX_CONCURRENT_ASYNC_OPERATIONS: 100,
        P.PARTITION_LOSS_POLICY: cacheconfig.PartitionLossPolicy.READ_WRITE_SAFE,
        P.EAGER_TTL: True,
        P.STATISTICS_ENABLED: True,
    }
    if expiry:
        config[P.EXPIRY_POLICY] = cacheconfig.ExpiryPolicy(create=3_600_000, update=-2,
                                                            access=-1)
    return config


def capture_cacheconfig(rec: Recorder) -> None:
    """Create with a full configuration, read configurations back, including defaults."""
    version = rec.version
    config = full_config()
    rec.call("create_with_configuration", O.CACHE_CREATE_WITH_CONFIGURATION,
             "ops.cache_create_with_configuration", config, version=version, expected=None)
    rec.error("create_with_configuration-existing", O.CACHE_CREATE_WITH_CONFIGURATION,
              "ops.cache_create_with_configuration", config, version=version, status=1001)
    rec.call("get_or_create_with_configuration-existing",
             O.CACHE_GET_OR_CREATE_WITH_CONFIGURATION,
             "ops.cache_get_or_create_with_configuration", config, version=version,
             expected=None)
    got = rec.call("get_configuration", O.CACHE_GET_CONFIGURATION, "ops.cache_get_configuration",
                   cache_id(CFG_CACHE), parse="ops.parse_cache_get_configuration",
                   parse_kwargs={"version": version})
    _check_config_echo(rec, got, config)
    rec.call("get_or_create_with_configuration-minimal",
             O.CACHE_GET_OR_CREATE_WITH_CONFIGURATION,
             "ops.cache_get_or_create_with_configuration",
             {P.NAME: "ops-cfg-min", P.CACHE_ATOMICITY_MODE: 0}, version=version, expected=None)
    rec.call("get_configuration-minimal", O.CACHE_GET_CONFIGURATION,
             "ops.cache_get_configuration", cache_id("ops-cfg-min"),
             parse="ops.parse_cache_get_configuration", parse_kwargs={"version": version})
    rec.error("get_configuration-missing", O.CACHE_GET_CONFIGURATION,
              "ops.cache_get_configuration", cache_id("ops-no-such-cache"), status=1000)


def capture_cacheconfig_old(rec: Recorder, suffix: str) -> None:
    """On an older protocol version: no precision/scale (< 1.2.0), no expiry (< 1.6.0)."""
    version = rec.version
    name = f"ops-cfg-{suffix}"
    config = full_config(name, expiry=version >= (1, 6, 0), suffix=suffix)
    rec.call("create_with_configuration", O.CACHE_CREATE_WITH_CONFIGURATION,
             "ops.cache_create_with_configuration", config, version=version, expected=None)
    got = rec.call("get_configuration", O.CACHE_GET_CONFIGURATION, "ops.cache_get_configuration",
                   cache_id(name), parse="ops.parse_cache_get_configuration",
                   parse_kwargs={"version": version})
    _check_config_echo(rec, got, config)
    rec.call("get_configuration-of-v1.7-cache", O.CACHE_GET_CONFIGURATION,
             "ops.cache_get_configuration", cache_id(CFG_CACHE),
             parse="ops.parse_cache_get_configuration", parse_kwargs={"version": version})


def _check_config_echo(rec: Recorder, got: Any, sent: dict[int, Any]) -> None:
    """Every property we set comes back as set (entities modulo what the server adds)."""
    if not isinstance(got, dict):
        return
    for code, value in sent.items():
        if code == P.QUERY_ENTITIES:
            continue  # the server upper-cases names and reorders; compared in the tests
        if to_json(got.get(code)) != to_json(value):
            rec._mismatch(f"config echo {P(code).name}", got.get(code), value)


# -- queries ------------------------------------------------------------------------------------


def capture_queries(rec: Recorder) -> None:
    features = rec.features
    bit7 = Feature.QRY_PARTITIONS_BATCH_SIZE in features
    table = "OPS_T7" if bit7 else "OPS_T"

    def sql(name: str, query: str, expected: Any = _UNSET, names: bool = False,
            **kwargs: Any) -> Any:
        kwargs.setdefault("schema", "PUBLIC")
        return rec.call(name, O.QUERY_SQL_FIELDS, "queries.sql_fields", 0, query,
                        include_field_names=names, features=features,
                        parse="queries.parse_sql_fields",
                        parse_kwargs={"include_field_names": names}, expected=expected,
                        **kwargs)

    sql("create-table", f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR, v DOUBLE) "
        f"WITH \"CACHE_NAME={table}\"", _rows([[0]]))
    for i in range(5):
        sql(f"insert-{i}", f"INSERT INTO {table} (id, name, v) VALUES (?, ?, ?)", _rows([[1]]),
            args=[i, f"n{i}", i / 2])
    page = sql("select-page-1", f"SELECT id, name, v FROM {table} ORDER BY id", names=True,
               page_size=2, statement_type=queries.StatementType.SELECT)
    _sql_pages(rec, page)
    closing = sql("select-to-close", f"SELECT id FROM {table} ORDER BY id", page_size=1)
    rec.call("resource_close", O.RESOURCE_CLOSE, "queries.resource_close", closing.cursor_id,
             expected=None)
    rec.error("page-of-closed-cursor", O.QUERY_SQL_FIELDS_CURSOR_GET_PAGE,
              "queries.sql_fields_page", closing.cursor_id, status=1011)
    sql("select-all-flags", f"SELECT COUNT(*) FROM {table} WHERE id >= ?", args=[1],
        distributed_joins=True, replicated_only=False, enforce_join_order=True,
        collocated=True, lazy=True, timeout=30_000, max_rows=10,
        expected=_rows([[4]]))
    sql("update", f"UPDATE {table} SET v = v * 2 WHERE id > ?", args=[2],
        statement_type=queries.StatementType.UPDATE,
        expected=_rows([[2]]))
    sql("select-by-cache-id", "SELECT name FROM " + table + " WHERE id = 4",
        schema=None, expected=_rows([["n4"]]))
    if bit7:
        sql("select-partitions", f"SELECT COUNT(*) FROM {table}", partitions=list(range(1024)),
            update_batch_size=2, expected=_rows([[5]]))
    rec.error("bad-sql", O.QUERY_SQL_FIELDS, "queries.sql_fields", 0, "SELEC 1",
              schema="PUBLIC", features=features, status=1)
    _scan_and_old_sql(rec)


def _rows(rows: list[list[Any]]) -> Callable[[queries.SqlFieldsPage], bool]:
    """A single-page answer with these rows (the cursor id is the server's)."""
    return lambda page: page.rows == rows and not page.more and page.field_names == ()


def _sql_pages(rec: Recorder, page: queries.SqlFieldsPage) -> None:
    rows = list(page.rows)
    more = page.more
    n = 2
    while more:
        got, more = rec.call(f"select-page-{n}", O.QUERY_SQL_FIELDS_CURSOR_GET_PAGE,
                             "queries.sql_fields_page", page.cursor_id,
                             parse="queries.parse_sql_fields_page",
                             parse_kwargs={"column_count": page.column_count})
        rows += got
        n += 1
    expected = [[i, f"n{i}", i / 2] for i in range(5)]
    if rows != expected or page.field_names != ("ID", "NAME", "V"):
        rec._mismatch("select pages", (page.field_names, rows), expected)


def _scan_and_old_sql(rec: Recorder) -> None:
    """Scans over plain values (rows of SQL tables are binary objects: the codec's business)."""
    features = rec.features
    kv = cache_id("ops-scan")
    rec.call("scan-cache", O.CACHE_GET_OR_CREATE_WITH_NAME, "ops.cache_get_or_create_with_name",
             "ops-scan", expected=None)
    rec.call("scan-fill", O.CACHE_PUT_ALL, "ops.cache_put_all", kv,
             [[i, f"v{i}"] for i in range(5)], key_hint=T.INT, expected=None)
    first = rec.call("scan", O.QUERY_SCAN, "queries.scan", kv, page_size=2, features=features,
                     parse="queries.parse_scan")
    pairs, more = list(first.pairs), first.more
    for n in itertools.count(2):
        if not more:
            break
        got, more = rec.call(f"scan-page-{n}", O.QUERY_SCAN_CURSOR_GET_PAGE,
                             "queries.scan_page", first.cursor_id,
                             parse="queries.parse_scan_page")
        pairs += got
    if sorted(pairs) != [(i, f"v{i}") for i in range(5)]:
        rec._mismatch("scan pairs", pairs, "keys 0..4")
    rec.call("scan-one-page", O.QUERY_SCAN, "queries.scan", kv, page_size=10, features=features,
             parse="queries.parse_scan",
             expected=lambda page: sorted(page.pairs) == sorted(pairs) and not page.more)
    rec.call("scan-partition-local", O.QUERY_SCAN, "queries.scan", kv, partition=1, local=True,
             features=features, parse="queries.parse_scan")
    _old_sql(rec)


def _old_sql(rec: Recorder) -> None:
    """QUERY_SQL (2002) over a cache whose values are plain strings."""
    name = "ops-old-sql"
    entity = cacheconfig.QueryEntity("java.lang.Integer", "java.lang.String", "STRS")
    rec.call("old-sql-cache", O.CACHE_GET_OR_CREATE_WITH_CONFIGURATION,
             "ops.cache_get_or_create_with_configuration",
             {P.NAME: name, P.QUERY_ENTITIES: [entity]}, version=rec.version, expected=None)
    cid = cache_id(name)
    rec.call("old-sql-fill", O.CACHE_PUT_ALL, "ops.cache_put_all", cid,
             [[i, f"s{i}"] for i in range(4)], key_hint=T.INT, expected=None)
    first = rec.call("old-sql", O.QUERY_SQL, "queries.sql", cid, "String", "_key >= ?",
                     args=[1], page_size=2, parse="queries.parse_sql")
    pairs, more = list(first.pairs), first.more
    for n in itertools.count(2):
        if not more:
            break
        got, more = rec.call(f"old-sql-page-{n}", O.QUERY_SQL_CURSOR_GET_PAGE,
                             "queries.sql_page", first.cursor_id,
                             parse="queries.parse_sql_page")
        pairs += got
    if sorted(pairs) != [(i, f"s{i}") for i in range(1, 4)]:
        rec._mismatch("old sql rows", pairs, "keys 1..3")


def capture_continuous(rec: Recorder) -> None:
    name = "ops-cq"
    cid = cache_id(name)
    rec.call("cq-cache", O.CACHE_GET_OR_CREATE_WITH_NAME, "ops.cache_get_or_create_with_name",
             name, expected=None)
    qid = rec.call("continuous_query", O.QUERY_CONTINUOUS, "queries.continuous_query", cid,
                   parse="queries.parse_continuous_query")
    events = [("k", None, "v1", queries.EventType.CREATED),
              ("k", "v1", "v2", queries.EventType.UPDATED),
              ("k", "v2", None, queries.EventType.REMOVED)]
    rec.call("cq-put", O.CACHE_PUT, "ops.cache_put", cid, "k", "v1", expected=None)
    rec.call("cq-update", O.CACHE_PUT, "ops.cache_put", cid, "k", "v2", expected=None)
    rec.call("cq-remove", O.CACHE_REMOVE_KEY, "ops.cache_remove_key", cid, "k",
             parse="ops.parse_cache_remove_key", expected=True)
    rec.events("events", qid, [queries.CacheEntryEvent(*e) for e in events])
    rec.call("cq-close", O.RESOURCE_CLOSE, "queries.resource_close", qid, expected=None)
    qid = rec.call("continuous_query-options", O.QUERY_CONTINUOUS, "queries.continuous_query",
                   cid, page_size=10, time_interval=100, include_expired=True,
                   flags=ops.FLAG_KEEP_BINARY, parse="queries.parse_continuous_query")
    rec.call("cq-options-put", O.CACHE_PUT, "ops.cache_put", cid, 1, 2, expected=None)
    rec.events("events-buffered", qid,
               [queries.CacheEntryEvent(1, None, 2, queries.EventType.CREATED)])
    rec.call("cq-options-close", O.RESOURCE_CLOSE, "queries.resource_close", qid,
             expected=None)


# -- transactions and cluster ---------------------------------------------------------------


def capture_tx(rec: Recorder) -> None:
    name = "ops-tx"
    cid = cache_id(name)
    rec.call("tx-cache", O.CACHE_GET_OR_CREATE_WITH_CONFIGURATION,
             "ops.cache_get_or_create_with_configuration",
             {P.NAME: name, P.CACHE_ATOMICITY_MODE: cacheconfig.CacheAtomicityMode.TRANSACTIONAL},
             version=rec.version, expected=None)
    time.sleep(1)  # IGNITE-14868: a new transactional cache is not ready at once
    tx1 = rec.call("tx_start", O.TX_START, "tx.tx_start", tx.TxConcurrency.PESSIMISTIC,
                   tx.TxIsolation.REPEATABLE_READ, 5000, "ops-label", parse="tx.parse_tx_start")
    rec.call("tx-put", O.CACHE_PUT, "ops.cache_put", cid, "a", 1, tx_id=tx1, expected=None)
    rec.call("tx-get", O.CACHE_GET, "ops.cache_get", cid, "a", tx_id=tx1,
             parse="ops.parse_cache_get", expected=1)
    rec.call("tx-commit", O.TX_END, "tx.tx_end", tx1, True, expected=None)
    rec.call("get-committed", O.CACHE_GET, "ops.cache_get", cid, "a",
             parse="ops.parse_cache_get", expected=1)
    tx2 = rec.call("tx_start-optimistic", O.TX_START, "tx.tx_start",
                   tx.TxConcurrency.OPTIMISTIC, tx.TxIsolation.SERIALIZABLE,
                   parse="tx.parse_tx_start")
    rec.call("tx-put-2", O.CACHE_PUT, "ops.cache_put", cid, "b", 2, tx_id=tx2, expected=None)
    rec.call("tx-get_and_put-expiry", O.CACHE_GET_AND_PUT, "ops.cache_get_and_put", cid, "a",
             3, tx_id=tx2, expiry=(-1, -2, -2), parse="ops.parse_cache_get_and_put",
             expected=1)
    rec.call("tx-rollback", O.TX_END, "tx.tx_end", tx2, False, expected=None)
    rec.call("get-rolled-back", O.CACHE_GET_ALL, "ops.cache_get_all", cid, ["a", "b"],
             parse="ops.parse_cache_get_all", expected=[("a", 1)])
    rec.error("tx-commit-unknown", O.TX_END, "tx.tx_end", 99, True, status=1021)
    rec.call("tx-rollback-unknown", O.TX_END, "tx.tx_end", 99, False, expected=None)
    if Feature.TX_AWARE_QUERIES not in rec.features:
        print("note: the node did not negotiate bit 18 (TX_AWARE_QUERIES)", file=sys.stderr)


def capture_cluster_info(rec: Recorder) -> None:
    """Heartbeat, idle timeout, node ids / info / endpoints (any node)."""
    rec.call("heartbeat", O.HEARTBEAT, "cluster.heartbeat", expected=None)
    rec.call("get_idle_timeout", O.GET_IDLE_TIMEOUT, "cluster.get_idle_timeout",
             parse="cluster.parse_get_idle_timeout", expected=0)
    ids = rec.call("node_ids", O.CLUSTER_GROUP_GET_NODE_IDS, "cluster.cluster_group_get_node_ids",
                   parse="cluster.parse_cluster_group_get_node_ids")
    if ids is None or list(ids.node_ids) != [rec.conn.node_id]:
        rec._mismatch("node ids", ids, [rec.conn.node_id])
        return
    rec.call("node_ids-servers", O.CLUSTER_GROUP_GET_NODE_IDS,
             "cluster.cluster_group_get_node_ids", -1, [cluster.NodeTypeFilter(True)],
             parse="cluster.parse_cluster_group_get_node_ids", expected=ids)
    rec.call("node_ids-clients", O.CLUSTER_GROUP_GET_NODE_IDS,
             "cluster.cluster_group_get_node_ids", -1, [cluster.NodeTypeFilter(False)],
             parse="cluster.parse_cluster_group_get_node_ids",
             expected=cluster.NodeIds(ids.top_version, ()))
    rec.call("node_ids-attribute", O.CLUSTER_GROUP_GET_NODE_IDS,
             "cluster.cluster_group_get_node_ids", -1,
             [cluster.AttributeFilter("org.apache.ignite.build.ver", "2.17.0"),
              cluster.NodeTypeFilter(True)],
             parse="cluster.parse_cluster_group_get_node_ids", expected=ids)
    rec.call("node_ids-unchanged", O.CLUSTER_GROUP_GET_NODE_IDS,
             "cluster.cluster_group_get_node_ids", ids.top_version,
             parse="cluster.parse_cluster_group_get_node_ids", expected=None)
    info = rec.call("node_info", O.CLUSTER_GROUP_GET_NODE_INFO,
                    "cluster.cluster_group_get_node_info", list(ids.node_ids),
                    parse="cluster.parse_cluster_group_get_node_info")
    if [n.node_id for n in info] != list(ids.node_ids) or info[0].version.minor != 17:
        rec._mismatch("node info", info, ids)
    rec.call("node_info-unknown-id", O.CLUSTER_GROUP_GET_NODE_INFO,
             "cluster.cluster_group_get_node_info", [uuid.UUID(int=1)],
             parse="cluster.parse_cluster_group_get_node_info", expected=[])
    _capture_endpoints(rec, ids)


def _capture_endpoints(rec: Recorder, ids: cluster.NodeIds) -> None:
    host, port = rec.sock.getpeername()[:2]
    node = rec.conn.node_id
    assert node is not None
    expected = cluster.NodeEndpoints(ids.top_version,
                                     (cluster.NodeEndpoint(node, port, (host,)),), ())
    rec.call("node_endpoints", O.CLUSTER_GROUP_GET_NODE_ENDPOINTS,
             "cluster.cluster_group_get_node_endpoints",
             parse="cluster.parse_cluster_group_get_node_endpoints", expected=expected)
    rec.call("node_endpoints-since-current", O.CLUSTER_GROUP_GET_NODE_ENDPOINTS,
             "cluster.cluster_group_get_node_endpoints", ids.top_version, -1,
             parse="cluster.parse_cluster_group_get_node_endpoints",
             expected=cluster.NodeEndpoints(ids.top_version, (), ()))


def capture_cluster_state(rec: Recorder) -> None:
    """State changes and WAL switching: needs the persistent (auth) cluster."""
    features = rec.features
    state = "cluster.parse_cluster_get_state"
    s = cluster.ClusterState
    rec.call("get_state", O.CLUSTER_GET_STATE, "cluster.cluster_get_state", parse=state,
             expected=s.ACTIVE)
    rec.call("read-only", O.CLUSTER_CHANGE_STATE, "cluster.cluster_change_state",
             s.ACTIVE_READ_ONLY, features=features, expected=None)
    rec.call("get_state-read-only", O.CLUSTER_GET_STATE, "cluster.cluster_get_state",
             parse=state, expected=s.ACTIVE_READ_ONLY)
    rec.call("deactivate", O.CLUSTER_CHANGE_STATE, "cluster.cluster_change_state", s.INACTIVE,
             force=False, features=features, expected=None)
    rec.call("get_state-inactive", O.CLUSTER_GET_STATE, "cluster.cluster_get_state",
             parse=state, expected=s.INACTIVE)
    rec.call("activate", O.CLUSTER_CHANGE_STATE, "cluster.cluster_change_state", s.ACTIVE,
             features=features, expected=None)
    rec.call("get_state-active", O.CLUSTER_GET_STATE, "cluster.cluster_get_state", parse=state,
             expected=s.ACTIVE)
    name = "ops-wal"
    rec.call("wal-cache", O.CACHE_GET_OR_CREATE_WITH_NAME, "ops.cache_get_or_create_with_name",
             name, expected=None)
    wal = "cluster.parse_cluster_get_wal_state"
    change = "cluster.parse_cluster_change_wal_state"
    rec.call("get_wal_state", O.CLUSTER_GET_WAL_STATE, "cluster.cluster_get_wal_state", name,
             parse=wal, expected=True)
    rec.call("disable_wal", O.CLUSTER_CHANGE_WAL_STATE, "cluster.cluster_change_wal_state",
             name, False, parse=change, expected=True)
    rec.call("disable_wal-again", O.CLUSTER_CHANGE_WAL_STATE,
             "cluster.cluster_change_wal_state", name, False, parse=change, expected=False)
    rec.call("get_wal_state-disabled", O.CLUSTER_GET_WAL_STATE, "cluster.cluster_get_wal_state",
             name, parse=wal, expected=False)
    rec.call("enable_wal", O.CLUSTER_CHANGE_WAL_STATE, "cluster.cluster_change_wal_state",
             name, True, parse=change, expected=True)
    rec.error("get_wal_state-missing-cache", O.CLUSTER_GET_WAL_STATE,
              "cluster.cluster_get_wal_state", "ops-no-such-cache", status=1)


# -- running -----------------------------------------------------------------------------------

Plan = list[tuple[str, str, dict[str, Any], Callable[[Recorder], None]]]


def plan() -> dict[str, Plan]:
    """Per vector file: (connection name, cluster "plain"/"auth", config kwargs, capture)."""
    v = ProtocolVersion
    latest = {"features": ALL_FEATURES - {0}}
    return {
        "ops_kv": [("kv-v1.7.0", "plain", latest, capture_kv)],
        "ops_cacheconfig": [
            ("config-v1.7.0", "plain", latest, capture_cacheconfig),
            ("config-v1.5.0", "plain", {"versions": (v(1, 5, 0),)},
             lambda r: capture_cacheconfig_old(r, "v150")),
            ("config-v1.1.0", "plain", {"versions": (v(1, 1, 0),)},
             lambda r: capture_cacheconfig_old(r, "v110")),
        ],
        "ops_queries": [
            ("queries-bit7", "plain", latest, capture_queries),
            ("queries-no-bit7", "plain", {"features": frozenset({2, 3, 11})}, capture_queries),
            ("continuous", "plain", latest, capture_continuous),
        ],
        "ops_cluster_tx": [
            ("tx-v1.7.0", "plain", latest, capture_tx),
            ("cluster-info", "plain", latest, capture_cluster_info),
            ("cluster-state-auth", "auth", latest, capture_cluster_state),
        ],
    }


def run(addresses: dict[str, tuple[str, int]], credentials: dict[str, Any], out: Path,
        only: set[str]) -> int:
    mismatches = 0
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for filename, entries in plan().items():
        if only and filename not in only:
            continue
        connections = []
        for name, which, config, capture in entries:
            kwargs = dict(config, **(credentials if which == "auth" else {}))
            rec = Recorder(name, addresses[which], ConnectionConfig(**kwargs))
            try:
                capture(rec)
            finally:
                rec.close()
            connections.append(rec.record)
            mismatches += rec.mismatches
        document = {"source": f"captured from Ignite 2.17.0 dev-cluster nodes by "
                              f"tests/protocol/capture_ops.py at {now}",
                    "connections": connections}
        path = out / f"{filename}.json"
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
        count = sum(len(c["exchanges"]) for c in connections)
        print(f"wrote {path}: {len(connections)} connections, {count} exchanges")
    print(f"{mismatches} mismatches")
    return 1 if mismatches else 0


_KEEP_ENV = ("HOME", "JAVA_HOME", "LANG", "IGNITE_BROKER_CACHE", "IGNITE_BROKER_DEVCLUSTER_DIR",
             "IGNITE_BROKER_JVM_OPTS")


def _scrub_environment() -> None:
    """Nodes publish their environment as node attributes (5101): start them with a bare one."""
    java = shutil.which("java")
    path = ["/usr/local/bin", "/usr/bin", "/bin"]
    if java and "JAVA_HOME" not in os.environ:
        path.insert(0, str(Path(java).resolve().parent))
    kept = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
    os.environ.clear()
    os.environ.update(kept, PATH=":".join(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-port", type=int, default=11150, help="plain one-node cluster")
    parser.add_argument("--auth-base-port", type=int, default=11160,
                        help="persistent one-node cluster with authentication")
    parser.add_argument("--out", type=Path, default=VECTOR_DIR)
    parser.add_argument("--only", action="append", default=[], help="vector file name(s)")
    args = parser.parse_args(argv)

    from broker.devcluster import DevCluster

    _scrub_environment()

    with DevCluster(nodes=1, base_port=args.base_port) as plain, \
            DevCluster(nodes=1, base_port=args.auth_base_port, auth=True) as auth:
        plain.start()
        auth.start()
        user, password = auth.credentials or ("", "")
        return run({"plain": plain.addresses[0], "auth": auth.addresses[0]},
                   {"username": user, "password": password}, args.out, set(args.only))


if __name__ == "__main__":
    sys.exit(main())
