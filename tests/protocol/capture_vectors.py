#!/usr/bin/env python3
"""Capture request/response byte vectors from a real Ignite node into tests/protocol/vectors/.

Runs, each on a fresh socket: a 1.7.0 session (handshake, GET_OR_CREATE_WITH_NAME, PUT and
GET of every skeleton type as key and as value, GET of a missing key, GET_NAMES, GET on a
missing cache), the same on 1.0.0 (the old response header), a handshake fallback from
1.99.0 to 1.7.0 on one socket, and, when credentials are given, a failed login. Every
request/response pair is written as hex with the decoded expectation, in the format
test_vectors.py replays (see protocol_vectors.py). The expected value of each GET is the
value that was put, not what our decoder says; a disagreement is reported and the run
exits with status 1, so a codec bug shows up as a failing vector rather than being
recorded as truth.

    .venv/bin/python tests/protocol/capture_vectors.py --host 127.0.0.1 --port 10800
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from protocol import (
    ClientConnection,
    ErrorResponse,
    HandshakeAccepted,
    HandshakeRejected,
    Response,
)
from protocol.binary import TypeCode
from tests.protocol.protocol_helpers import drain
from tests.protocol.protocol_vectors import (
    VECTOR_DIR,
    Json,
    build_request,
    connection_for,
    event_to_json,
    parse_result,
    python_to_typed,
    result_matches,
)

T = TypeCode
SAMPLES: list[tuple[str, TypeCode, Any]] = [
    ("byte-min", T.BYTE, -128),
    ("byte-max", T.BYTE, 127),
    ("short-min", T.SHORT, -(2**15)),
    ("short-max", T.SHORT, 2**15 - 1),
    ("int-min", T.INT, -(2**31)),
    ("int-max", T.INT, 2**31 - 1),
    ("long-min", T.LONG, -(2**63)),
    ("long-max", T.LONG, 2**63 - 1),
    ("float", T.FLOAT, 1.5),
    ("float-neg-inf", T.FLOAT, -math.inf),
    ("double", T.DOUBLE, -2.25),
    ("double-nan", T.DOUBLE, math.nan),
    ("char", T.CHAR, "Ж"),
    ("bool-true", T.BOOL, True),
    ("bool-false", T.BOOL, False),
    ("string-empty", T.STRING, ""),
    ("string-ascii", T.STRING, "hello"),
    ("string-non-ascii", T.STRING, "héllo wörld ключ"),
    ("string-astral", T.STRING, "😀𝄞"),
    ("bytes-empty", T.BYTE_ARRAY, b""),
    ("bytes", T.BYTE_ARRAY, b"\x00\xff\x10"),
]
# Arrays make poor keys (identity hashing in Java), NaN is not a sensible key either.
NOT_A_KEY = {"bytes-empty", "bytes", "double-nan"}

_UNSET = object()


class Session:
    """One socket and one ClientConnection, recording every exchange as a vector step."""

    def __init__(self, args: argparse.Namespace, name: str, config: Json) -> None:
        self.args = args
        self.record: Json = {"name": name, "config": config, "steps": []}
        self.conn: ClientConnection = connection_for(config)
        self.sock = open_socket(args)
        self.mismatches = 0

    def close(self) -> None:
        self.sock.close()

    def handshake(self) -> bool:
        """Handshake, following retry proposals on the same socket; True if accepted."""
        while True:
            events = self.exchange({"kind": "handshake"})
            last = events[-1]
            if isinstance(last, HandshakeAccepted):
                return True
            if not (isinstance(last, HandshakeRejected) and last.retry_version):
                return False

    def op(self, send: Json, expected: object = _UNSET) -> None:
        self.exchange(send, expected)

    def exchange(self, send: Json, expected: object = _UNSET) -> list[object]:
        request_id, data = build_request(self.conn, send)
        self.sock.sendall(data)
        raw, events = b"", []
        while not answered(events, request_id):
            frame = recv_frame(self.sock)
            raw += frame
            self.conn.receive_data(frame)
            events += drain(self.conn)
        self.record["steps"].append({
            "send": send, "request_hex": data.hex(), "response_hex": raw.hex(),
            "events": [self.event_json(e, send, expected) for e in events],
        })
        return events

    def event_json(self, event: object, send: Json, expected: object) -> Json:
        result = event_to_json(event)
        if isinstance(event, Response):
            parsed = parse_result(send, event.body)
            if expected is _UNSET:  # nothing to compare with: record what the node said
                expected = parsed
            elif not result_matches(send, parsed, expected):
                self.mismatches += 1
                print(f"MISMATCH {send}: decoded {parsed!r}, expected {expected!r}",
                      file=sys.stderr)
            result["result"] = expected
        return result


def answered(events: list[object], request_id: int | None) -> bool:
    for e in events:
        if request_id is None and isinstance(e, HandshakeAccepted | HandshakeRejected):
            return True
        if isinstance(e, Response | ErrorResponse) and e.request_id == request_id:
            return True
    return False


def open_socket(args: argparse.Namespace) -> socket.socket:
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    if not args.tls:
        return sock
    context = ssl.create_default_context(cafile=args.cafile)
    if args.certfile:
        context.load_cert_chain(args.certfile, args.keyfile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=args.host)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    head = recv_exactly(sock, 4)
    return head + recv_exactly(sock, int.from_bytes(head, "little", signed=True))


def typed(code: TypeCode, value: object) -> Json:
    return python_to_typed(value, code)


def cache_ops(session: Session, cache: str) -> None:
    """The op steps of a full session, after an accepted handshake."""
    session.op({"kind": "op", "op": "CACHE_GET_OR_CREATE_WITH_NAME", "name": cache})
    for name, code, value in SAMPLES:
        if name not in NOT_A_KEY:
            key = typed(code, value)
            stored = typed(T.STRING, f"value-for-{name}")
            session.op({"kind": "op", "op": "CACHE_PUT", "cache": cache, "key": key,
                        "value": stored})
            session.op({"kind": "op", "op": "CACHE_GET", "cache": cache, "key": key}, stored)
        key = typed(T.STRING, f"key-{name}")
        session.op({"kind": "op", "op": "CACHE_PUT", "cache": cache, "key": key,
                    "value": typed(code, value)})
        session.op({"kind": "op", "op": "CACHE_GET", "cache": cache, "key": key},
                   typed(code, value))
    missing_key = typed(T.STRING, "no-such-key")
    session.op({"kind": "op", "op": "CACHE_GET", "cache": cache, "key": missing_key},
               {"type": "NULL"})
    session.op({"kind": "op", "op": "CACHE_GET_NAMES"})
    session.op({"kind": "op", "op": "CACHE_GET", "cache": f"{cache}-does-not-exist",
                "key": typed(T.INT, 1)})


def run_session(args: argparse.Namespace, name: str, config: Json, full: bool) -> Session:
    session = Session(args, name, config)
    try:
        if session.handshake() and full:
            cache_ops(session, args.cache)
    finally:
        session.close()
    return session


def plan(args: argparse.Namespace) -> list[tuple[str, Json, bool]]:
    creds = {"username": args.username, "password": args.password} if args.username else {}
    sessions = [
        ("captured-v1.7.0", {"versions": [[1, 7, 0]], "features": [2, 3, 11], **creds}, True),
        # 1.0.0 cannot carry credentials; with authentication on, this records the refusal.
        ("captured-v1.0.0", {"versions": [[1, 0, 0]]}, True),
        ("captured-fallback", {"versions": [[1, 99, 0], [1, 7, 0]], "features": [2], **creds},
         False),
    ]
    if args.username:
        bad = {"username": args.username, "password": args.password + "-wrong"}
        sessions.append(("captured-auth-failure", {"versions": [[1, 7, 0]], **bad}, False))
    return sessions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="captured", help="output file name, without .json")
    parser.add_argument("--cache", default="protocol-vectors")
    parser.add_argument("--username")
    parser.add_argument("--password", default="")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cafile")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=VECTOR_DIR)
    args = parser.parse_args(argv)

    sessions = [run_session(args, *entry) for entry in plan(args)]
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document = {
        "source": f"captured from {args.host}:{args.port} by tests/protocol/capture_vectors.py "
                  f"at {now}",
        "sessions": [s.record for s in sessions],
    }
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    steps = sum(len(s.record["steps"]) for s in sessions)
    mismatches = sum(s.mismatches for s in sessions)
    print(f"wrote {path}: {len(sessions)} sessions, {steps} steps, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
