"""Test helpers: server-side byte builders (written with struct, independent of protocol/'s
encoders), feeding strategies, and a ready-made connection."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Iterator

from protocol import NEED_DATA, ClientConnection, ConnectionConfig, HandshakeAccepted

NODE_ID = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")


def frame(payload: bytes) -> bytes:
    return struct.pack("<i", len(payload)) + payload


def ignite_str(s: str | None) -> bytes:
    if s is None:
        return b"\x65"
    data = s.encode("utf-8")
    return b"\x09" + struct.pack("<i", len(data)) + data


def uuid_obj(u: uuid.UUID) -> bytes:
    return b"\x0a" + struct.pack("<QQ", u.int >> 64, u.int & (2**64 - 1))


def features_obj(mask: bytes) -> bytes:
    return b"\x0c" + struct.pack("<i", len(mask)) + mask


def handshake_ok(version: tuple[int, int, int], mask: bytes = b"\x0c\x08",
                 node_id: uuid.UUID = NODE_ID) -> bytes:
    payload = b"\x01"
    if version >= (1, 7, 0):
        payload += features_obj(mask)
    if version >= (1, 4, 0):
        payload += uuid_obj(node_id)
    return frame(payload)


def handshake_fail(server_version: tuple[int, int, int], message: str | None,
                   status: int | None) -> bytes:
    payload = b"\x00" + struct.pack("<hhh", *server_version) + ignite_str(message)
    if status is not None:
        payload += struct.pack("<i", status)
    return frame(payload)


def response(request_id: int, body: bytes = b"", *, topology: tuple[int, int] | None = None,
             notification: int | None = None, error: tuple[int, str | None] | None = None,
             extra_flags: int = 0) -> bytes:
    """A >= 1.4.0 response/notification frame."""
    flags = extra_flags
    tail = b""
    if topology is not None:
        flags |= 0x2
        tail += struct.pack("<qi", *topology)
    if notification is not None:
        flags |= 0x4
        tail += struct.pack("<h", notification)
    if error is not None:
        flags |= 0x1
        tail += struct.pack("<i", error[0]) + ignite_str(error[1])
    return frame(struct.pack("<qh", request_id, flags) + tail + body)


def legacy_response(request_id: int, body: bytes = b"", *, status: int = 0,
                    message: str | None = None) -> bytes:
    """A < 1.4.0 response frame."""
    tail = body if status == 0 else ignite_str(message)
    return frame(struct.pack("<qi", request_id, status) + tail)


def chunkings(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """The ways every decoder is fed: whole, one byte at a time, and in two halves."""
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    half = len(data) // 2
    yield "halves", [data[:half], data[half:]]


def drain(conn: ClientConnection) -> list[object]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if type(event).__name__ == "ConnectionClosed":
            break
    return events


def feed(conn: ClientConnection, chunks: Iterable[bytes]) -> list[object]:
    """receive_data each chunk, collecting every event produced along the way."""
    events: list[object] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events.extend(drain(conn))
    return events


def ready_connection(version: tuple[int, int, int] = (1, 7, 0), **config: object
                     ) -> ClientConnection:
    """A connection whose handshake for ``version`` has been accepted."""
    config.setdefault("versions", (version,))
    conn = ClientConnection(ConnectionConfig(**config))  # type: ignore[arg-type]
    conn.initiate()
    conn.receive_data(handshake_ok(version))
    event = conn.next_event()
    assert isinstance(event, HandshakeAccepted), event
    return conn
