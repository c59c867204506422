"""The byte-vector file format, shared by test_vectors.py (replays) and capture_vectors.py (writes).

A vector file is ``tests/protocol/vectors/<name>.json``::

    {
      "source": "where the bytes came from (captured from a node / hand-assembled)",
      "values": [                         # optional: single typed values
        {"name": "int-max", "hex": "03ffffff7f", "value": {"type": "INT", "value": 2147483647},
         "encode": true}                  # false: decode-only (non-canonical bytes)
      ],
      "sessions": [                       # optional: one connection each, replayed in order
        {"name": "...",
         "config": {"versions": [[1, 7, 0]], "features": [2, 3, 11],
                    "username": null, "password": null},
         "steps": [
           {"send": {"kind": "handshake"},
            "request_hex": "...", "response_hex": "...",
            "events": [{"event": "HandshakeAccepted", "version": [1, 7, 0],
                        "features": [2], "node_id": "…uuid…"}]},
           {"send": {"kind": "op", "op": "CACHE_PUT", "cache": "c",
                     "key": TYPED, "value": TYPED},
            "request_hex": "...", "response_hex": "...",
            "events": [{"event": "Response", "request_id": 2, "affinity_version": [1, 0],
                        "result": null}]}
         ]}
      ]
    }

TYPED is ``{"type": "<TypeCode name>", "value": ...}``: FLOAT/DOUBLE values may be
"nan", "inf", "-inf"; BYTE_ARRAY values are hex; NULL has no value. Ops: "CACHE_GET",
"CACHE_PUT" (take "cache": name, or "cache_id": int), "CACHE_GET_NAMES",
"CACHE_GET_OR_CREATE_WITH_NAME" (takes "name"). A Response's "result" is the parsed body:
TYPED for CACHE_GET, a list of names for CACHE_GET_NAMES, null for the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from protocol import (
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    HandshakeRejected,
    Notification,
    OpCode,
    Response,
    cache_id,
    ops,
)
from protocol.binary import TypeCode

VECTOR_DIR = Path(__file__).parent / "vectors"
Json = dict[str, Any]

_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def load_vector_files(directory: Path = VECTOR_DIR) -> list[tuple[str, Json]]:
    return [(p.name, json.loads(p.read_text("utf-8"))) for p in sorted(directory.glob("*.json"))]


# -- typed values -----------------------------------------------------------------------------


def typed_to_python(typed: Json) -> tuple[object, TypeCode]:
    """A TYPED dict -> (python value, type code hint)."""
    code = TypeCode[typed["type"]]
    raw = typed.get("value")
    if code is TypeCode.NULL:
        return None, code
    if code in (TypeCode.FLOAT, TypeCode.DOUBLE):
        return (_SPECIAL_FLOATS[raw] if isinstance(raw, str) else float(raw)), code
    if code is TypeCode.BYTE_ARRAY:
        return bytes.fromhex(raw), code
    return raw, code


def python_to_typed(value: object, code: TypeCode) -> Json:
    """The inverse of typed_to_python."""
    if value is None or code is TypeCode.NULL:
        return {"type": "NULL"}
    if isinstance(value, float) and not math.isfinite(value):
        return {"type": code.name, "value": "nan" if math.isnan(value) else str(value)}
    if isinstance(value, bytes | bytearray):
        return {"type": code.name, "value": bytes(value).hex()}
    return {"type": code.name, "value": value}


def same_value(a: object, b: object) -> bool:
    """Equal and of the same type; NaN equals NaN; the sign of zero matters."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


# -- requests ---------------------------------------------------------------------------------


def connection_for(config: Json) -> ClientConnection:
    kwargs = dict(config)
    kwargs["versions"] = [tuple(v) for v in config.get("versions", [[1, 7, 0]])]
    if "features" in kwargs:
        kwargs["features"] = frozenset(kwargs["features"])
    return ClientConnection(ConnectionConfig(**kwargs))


def build_request(conn: ClientConnection, send: Json) -> tuple[int | None, bytes]:
    """Produce the bytes for one step's "send" with our own encoder."""
    if send["kind"] == "handshake":
        return None, conn.initiate()
    op = OpCode[send["op"]]
    return conn.send_request(op, request_body(send))


def request_body(send: Json) -> bytes:
    op = send["op"]
    if op == "CACHE_GET_OR_CREATE_WITH_NAME":
        return ops.cache_get_or_create_with_name(send["name"])
    if op == "CACHE_GET_NAMES":
        return ops.cache_get_names()
    cid = send["cache_id"] if "cache_id" in send else cache_id(send["cache"])
    key, key_hint = typed_to_python(send["key"])
    if op == "CACHE_GET":
        return ops.cache_get(cid, key, key_hint)
    if op == "CACHE_PUT":
        value, value_hint = typed_to_python(send["value"])
        return ops.cache_put(cid, key, value, key_hint, value_hint)
    raise ValueError(f"vector op {op!r} is not supported yet")


# -- events -----------------------------------------------------------------------------------


def parse_result(send: Json, body: bytes | memoryview) -> object:
    """Parse a Response body with the parser for the op that was sent."""
    op = send.get("op")
    if op == "CACHE_GET":
        return ops.parse_cache_get(body)
    if op == "CACHE_GET_NAMES":
        return ops.parse_cache_get_names(body)
    if op == "CACHE_PUT":
        return ops.parse_cache_put(body)
    return ops.parse_empty(body)


def result_matches(send: Json, parsed: object, expected: object) -> bool:
    if send.get("op") == "CACHE_GET":
        assert isinstance(expected, dict)
        return same_value(parsed, typed_to_python(expected)[0])
    return parsed == expected


def event_to_json(event: object) -> Json:
    """An event as a JSON dict (a Response's "result" is handled separately)."""
    if isinstance(event, HandshakeAccepted):
        node = str(event.node_id) if event.node_id else None
        return {"event": "HandshakeAccepted", "version": list(event.version),
                "features": sorted(event.features), "node_id": node}
    if isinstance(event, HandshakeRejected):
        retry = list(event.retry_version) if event.retry_version else None
        return {"event": "HandshakeRejected", "server_version": list(event.server_version),
                "message": event.message, "status": event.status, "retry_version": retry}
    if isinstance(event, Response):
        return {"event": "Response", "request_id": event.request_id,
                "affinity_version": _pair(event.affinity_version)}
    if isinstance(event, ErrorResponse):
        return {"event": "ErrorResponse", "request_id": event.request_id,
                "status": event.status, "message": event.message,
                "affinity_version": _pair(event.affinity_version)}
    if isinstance(event, Notification):
        return {"event": "Notification", "resource_id": event.resource_id, "op": event.op,
                "body_hex": event.body.hex(), "status": event.status, "message": event.message}
    if isinstance(event, ConnectionClosed):
        return {"event": "ConnectionClosed"}
    raise TypeError(f"not an event: {event!r}")


def _pair(value: tuple[int, int] | None) -> list[int] | None:
    return list(value) if value is not None else None




def iter_sessions() -> Iterator[tuple[str, Json]]:
    for filename, data in load_vector_files():
        for session in data.get("sessions", []):
            yield f"{filename}:{session['name']}", session


def iter_values() -> Iterator[tuple[str, Json]]:
    for filename, data in load_vector_files():
        for case in data.get("values", []):
            yield f"{filename}:{case['name']}", case
