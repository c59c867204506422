"""Checks a broker implementation against vectors.json: sends each case's requests, in order, to
the broker at an endpoint (unix:// or ipc:// / tcp://), one connection per case, and matches each
reply to the recorded one (placeholders for what varies; see README.md).

    python -m tests.conformance.check_broker unix:///path/broker.stream ipc:///path/broker.sock

The broker must serve Ignite nodes whose cluster has no caches named conformance-* in use (they
are destroyed first) and an SQL table CONFORMANCE_T in schema PUBLIC (it is dropped).
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from tests.conformance.wire import Mismatch, decode, encode, fill_bound, match

VECTORS = Path(__file__).with_name("vectors.json")
TIMEOUT_S = 30.0
EVENT = 12  # the status of a message the broker pushes (docs/ipc.md, Continuous queries)


def load(path: Path = VECTORS) -> dict[str, Any]:
    return json.loads(path.read_text())


class Connection:
    """One worker's connection: send a frame, get its reply; messages the broker pushed
    meanwhile (EVENT, request id 0) wait for ``pushed``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        if endpoint.startswith("unix://"):
            self.sock: Any = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(TIMEOUT_S)
            self.sock.connect(endpoint[len("unix://"):])
            self.buffer = b""
        else:
            self.sock = zmq.Context.instance().socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.RCVTIMEO, int(TIMEOUT_S * 1000))
            self.sock.connect(endpoint)
        self.pushes: list[bytes] = []

    def exchange(self, frame: bytes, request_id: int | None = None) -> bytes:
        """Send ``frame``; its reply (the first message that is not a push), or any next
        message for a frame without an id (``request_id`` None: a raw case)."""
        if isinstance(self.sock, socket.socket):
            self.sock.sendall(len(frame).to_bytes(4, "big") + frame)
        else:
            self.sock.send(frame)
        while True:
            message = self._receive()
            if request_id is None or not _is_push(message):
                return message
            self.pushes.append(message)

    def pushed(self) -> bytes:
        """The next message the broker pushed on this connection."""
        if self.pushes:
            return self.pushes.pop(0)
        message = self._receive()
        if not _is_push(message):
            raise ValueError(f"a reply where a push was expected: {message[:64].hex()}")
        return message

    def _receive(self) -> bytes:
        if isinstance(self.sock, socket.socket):
            return self._read_stream()
        message: bytes = self.sock.recv()
        return message

    def _read_stream(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[:4], "big")
                if len(self.buffer) >= 4 + size:
                    message, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
                    return message
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.buffer += data

    def close(self) -> None:
        self.sock.close()


def _is_push(message: bytes) -> bool:
    envelope = decode(message)
    return isinstance(envelope, list) and len(envelope) == 4 and envelope[1] == 0 \
        and envelope[2] == EVENT


def _filler(bindings: dict[str, Any], request_id: int) -> Any:
    """Fills a request's placeholders: a fresh id, a deadline 30 s away, bound handles."""
    bound = fill_bound(bindings)

    def fill(mark: dict[str, Any]) -> Any:
        role = mark.get("role")
        if role == "request_id":
            return request_id
        if role == "deadline_ms":
            return int((time.time() + TIMEOUT_S) * 1000)
        return bound(mark)

    return fill


def prepare(endpoint: str, vectors: dict[str, Any]) -> None:
    """Destroy the caches the cases create, whatever an interrupted run left (unchecked)."""
    conn = Connection(endpoint)
    try:
        for n, name in enumerate(vectors["caches"], 1):
            deadline = int((time.time() + TIMEOUT_S) * 1000)
            conn.exchange(encode([1, n, "cache_destroy", deadline, {"cache": name}]))
        deadline = int((time.time() + TIMEOUT_S) * 1000)
        conn.exchange(encode([1, 99, "sql", deadline, {
            "query": "DROP TABLE IF EXISTS conformance_t", "schema": "PUBLIC"}]))
    finally:
        conn.close()


def check_case(endpoint: str, case: dict[str, Any]) -> list[str]:
    """The failures of one case (empty when the broker answered every request as recorded).
    Its exchanges run in order, each on its connection (``conn``, default 1; a connection
    opens where first used); a push is awaited on its connection."""
    failures: list[str] = []
    bindings: dict[str, Any] = {}
    ids = itertools.count(1)
    conns: dict[int, Connection] = {}
    try:
        for i, ex in enumerate(case["exchanges"]):
            where = f"{endpoint} {case['name']}[{i}] {ex['op'] or 'push'}"
            number = ex.get("conn", 1)
            if number not in conns:
                conns[number] = Connection(endpoint)
            conn = conns[number]
            request_id = None
            try:
                if ex.get("push"):
                    actual = decode(conn.pushed())
                elif case["kind"] == "raw":
                    actual = decode(conn.exchange(bytes.fromhex(ex["request_hex"])))
                else:
                    request_id = next(ids)
                    frame = encode(ex["request"], _filler(bindings, request_id))
                    actual = decode(conn.exchange(frame, request_id))
            except (OSError, zmq.ZMQError, ValueError) as exc:
                failures.append(f"{where}: no reply ({exc})")
                break
            try:
                match(ex["reply"], actual, bindings)
                if request_id is not None and actual[1] != request_id:
                    raise Mismatch(f"/1: reply to request {request_id} has id {actual[1]}")
            except Mismatch as exc:
                failures.append(f"{where}: {exc}")
    finally:
        for conn in conns.values():
            conn.close()
    return failures


def check(endpoint: str, vectors: dict[str, Any] | None = None) -> list[str]:
    """Every case against the broker at ``endpoint``; the failures."""
    vectors = vectors or load()
    prepare(endpoint, vectors)
    failures: list[str] = []
    for case in vectors["cases"]:
        failures += check_case(endpoint, case)
    return failures


def main() -> int:
    endpoints = sys.argv[1:]
    if not endpoints:
        print(__doc__)
        return 2
    vectors = load()
    count = sum(len(c["exchanges"]) for c in vectors["cases"])
    bad = 0
    for endpoint in endpoints:
        failures = check(endpoint, vectors)
        for failure in failures:
            print(failure)
        print(f"{endpoint}: {count - len(failures)}/{count} exchanges as recorded")
        bad += len(failures)
    return 1 if bad else 0


__all__ = ["check", "check_case", "load", "prepare"]

if __name__ == "__main__":
    sys.exit(main())
