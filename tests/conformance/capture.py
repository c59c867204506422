"""Records vectors.json: runs the cases (cases.py) through the Python stub against a real broker
serving real Ignite nodes, with a relay on the unix:// socket that keeps every frame, then marks
the parts that vary between runs (ids, deadlines, handles, node facts, error texts).

    python -m tests.conformance.capture               # a 1-node dev cluster + broker of its own
    python -m tests.conformance.capture --broker unix:///run/ignite-broker/broker.stream

Its own cluster uses base port $IGNITE_BROKER_TEST_BASE_PORT + 90 (default 10890).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from libclient import Client
from protocol.ipcstream import MessageReader, frame, stream_path
from tests.conformance import cases
from tests.conformance.wire import any_of, decode, family, var

VECTORS = Path(__file__).with_name("vectors.json")
#: The broker settings the vectors were recorded with (a stub learns them from hello).
BROKER_SETTINGS = {"limits.worker_liveness": 300.0}
_CURSOR_OPS = {"sql", "scan", "select_row"}
_EVENT = 12  # the status of a message the broker pushes (request id 0): not a reply
_NODE_FACTS = {"node_for", "hello"}


# -- the relay ---------------------------------------------------------------------------------


class Relay:
    """A unix:// socket in front of the broker's: forwards every message both ways and keeps
    each request with its reply, in the order requests were sent."""

    def __init__(self, upstream: str, path: str) -> None:
        self.upstream = stream_path(upstream)
        self.endpoint = f"unix://{path}"
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            number = next(self._numbers)
            threading.Thread(target=self._pump, args=(down, up, number, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, number, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, number: int, requests: bool) -> None:
        reader = MessageReader()
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                for message in reader.feed(data):
                    assert isinstance(message, bytes)
                    self._keep(number, message, requests)
                    dst.sendall(frame(message))
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _keep(self, number: int, message: bytes, request: bool) -> None:
        envelope = msgpack.unpackb(message, strict_map_key=False, ext_hook=lambda c, d: None)
        request_id = envelope[1]
        with self._lock:
            if not request and request_id == 0 and envelope[2] == _EVENT:
                self.records.append({"conn": number, "push": message})  # as it arrives
                return
            if request:
                self.records.append({"conn": number, "id": request_id, "request": message,
                                     "reply": None})
                return
            for record in self.records:
                if record["conn"] == number and record.get("id") == request_id \
                        and record["reply"] is None:
                    record["reply"] = message
                    return

    def take(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The records so far, once each request has its reply."""
        deadline = time.monotonic() + timeout
        while any("push" not in r and r["reply"] is None for r in self.records):
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not answer every request")
            time.sleep(0.01)
        with self._lock:
            records, self.records = self.records, []
        return records

    def close(self) -> None:
        self._listener.close()


# -- marking what varies -----------------------------------------------------------------------


class Marker:
    """Turns recorded frames into vectors, naming the broker's handles as they appear."""

    def __init__(self) -> None:
        self.handles: dict[int, str] = {}
        self.counts = {"tx": 0, "cursor": 0, "sub": 0}

    def _name(self, kind: str, value: int) -> dict[str, Any]:
        self.counts[kind] += 1
        self.handles[value] = name = f"{kind}{self.counts[kind]}"
        return var(name, value)

    def vector(self, request: bytes, reply: bytes, raw: bool = False) -> dict[str, Any]:
        try:
            req = decode(request)
        except Exception:
            req = None  # a raw frame that is not msgpack at all
        rep = decode(reply)
        op = req[2] if isinstance(req, list) and len(req) == 5 else None
        if not raw:
            req[1] = any_of("int", req[1], "request_id")
            req[3] = any_of("int", req[3], "deadline_ms")
            for key in ("tx", "cursor", "sub"):
                value = req[4].get(key)
                if type(value) is int and value in self.handles:
                    req[4][key] = var(self.handles[value], value)
            if op == "hello" and type(req[4].get("pid")) is int:  # the stub's own pid
                req[4]["pid"] = any_of("int", req[4]["pid"], "pid")
            rep[1] = any_of("int", rep[1], "request_id")
        rep[3] = self._payload(op, rep[2], rep[3])
        return {"op": op, "request_hex": request.hex(), "request": req,
                "reply_hex": reply.hex(), "reply": rep}

    def push(self, message: bytes) -> dict[str, Any]:
        """A message the broker pushed (EVENT): no request, its subscription's handle named."""
        rep = decode(message)
        sub = rep[3].get("sub")
        if type(sub) is int and sub in self.handles:
            rep[3]["sub"] = var(self.handles[sub], sub)
        ended = rep[3].get("ended")
        if isinstance(ended, dict) and isinstance(ended.get("message"), str):
            ended["message"] = any_of("str", ended["message"])
        return {"op": None, "push": True, "request_hex": None, "request": None,
                "reply_hex": message.hex(), "reply": rep}

    def _payload(self, op: str | None, status: int, payload: Any) -> Any:
        if status != 0:
            if isinstance(payload, dict) and isinstance(payload.get("message"), str):
                payload["message"] = any_of("str", payload["message"])
            return payload
        if op in _NODE_FACTS:  # this broker's and these nodes' facts
            return {k: v if k == "ipc_version" else any_of(family(v), v)
                    for k, v in payload.items()}
        if op == "cache_names":  # whatever else the cluster holds
            return any_of("array", payload)
        if op == "tx_start":
            return self._name("tx", payload)
        if op == "cq_subscribe":  # the handle, and the node connection its query runs on
            return {"sub": self._name("sub", payload["sub"]),
                    "node": any_of("str", payload["node"])}
        if op in _CURSOR_OPS and type(payload.get("cursor")) is int:
            payload["cursor"] = self._name("cursor", payload["cursor"])
        return payload


# -- running the cases -------------------------------------------------------------------------


def capture(broker_stream: str) -> dict[str, Any]:
    """Every case against the broker at ``broker_stream`` (a unix:// endpoint)."""
    marker = Marker()
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        relay = Relay(broker_stream, f"{tmp}/relay.stream")
        try:
            prepare(relay.endpoint)
            relay.take()
            for name, driver in cases.STUB_CASES.items():
                client = Client(broker=relay.endpoint, timeout=30)
                client.connect()
                try:
                    results = driver(client)
                finally:
                    client.close()
                out.append({"name": name, "kind": "stub", "doc": driver.__doc__,
                            "exchanges": _vectors(marker, relay.take()),
                            "python_results": repr(results)})
        finally:
            relay.close()
    for name, request in cases.RAW_CASES.items():
        reply = raw_exchange(broker_stream, request)
        out.append({"name": name, "kind": "raw", "doc": "a frame sent as it is",
                    "exchanges": [marker.vector(request, reply, raw=True)]})
    return {"ipc_version": 1, "caches": list(cases.CACHES), "cases": out}


def _vectors(marker: Marker, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A case's records as vectors, in the order they happened; ``conn`` numbers the case's
    connections in the order they were first used (1: the stub's first), and is left out
    for 1."""
    conns: dict[int, int] = {}
    vectors = []
    for record in records:
        conn = conns.setdefault(record["conn"], len(conns) + 1)
        if "push" in record:
            vector = marker.push(record["push"])
        else:
            vector = marker.vector(record["request"], record["reply"])
        if conn != 1:
            vector["conn"] = conn
        vectors.append(vector)
    return vectors


def prepare(endpoint: str) -> None:
    """Drop what an interrupted run left behind."""
    client = Client(broker=endpoint, timeout=30)
    client.connect()
    try:
        transport = client._transport
        assert transport is not None
        for name in cases.CACHES:
            with contextlib.suppress(Exception):
                transport.call("cache_destroy", {"cache": name}, idempotent=False)
    finally:
        client.close()


def raw_exchange(endpoint: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(stream_path(endpoint))
        sock.sendall(frame(request))
        reader = MessageReader()
        while True:
            data = sock.recv(1 << 16)
            if not data:
                raise RuntimeError("the broker closed the connection")
            if messages := reader.feed(data):
                message = messages[0]
                assert isinstance(message, bytes)
                return message


@contextlib.contextmanager
def own_broker() -> Iterator[str]:
    """A 1-node dev cluster and a broker for it; yields the broker's unix:// endpoint."""
    from broker.devcluster import DevCluster
    from broker.devcluster.brokerproc import running_broker

    base = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800")) + 90
    cluster = DevCluster(1, base)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="conformance-broker-") as workdir, \
                running_broker(cluster.addresses, workdir, BROKER_SETTINGS) as proc:
            yield proc.stream_endpoint
    finally:
        cluster.stop()


def write(vectors: dict[str, Any], path: Path = VECTORS) -> None:
    path.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", help="a running broker's unix:// endpoint (its cluster "
                        "must have no caches named conformance-* in use)")
    parser.add_argument("--out", type=Path, default=VECTORS)
    options = parser.parse_args()
    if options.broker:
        vectors = capture(options.broker)
    else:
        with own_broker() as endpoint:
            vectors = capture(endpoint)
    write(vectors, options.out)
    count = sum(len(c["exchanges"]) for c in vectors["cases"])
    print(f"{options.out}: {len(vectors['cases'])} cases, {count} exchanges")


if __name__ == "__main__":
    main()
