"""The sans-IO client connection: bytes in, events out; requests in, bytes out."""

from __future__ import annotations

import struct
import types
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from ._events import (
    ConnectionClosed,
    ErrorResponse,
    Event,
    HandshakeAccepted,
    Notification,
    Response,
)
from ._framing import DEFAULT_MAX_FRAME, FrameSplitter
from ._handshake import build_handshake, parse_handshake_response
from ._state import ConnectionState, Trigger, next_state
from ._version import KNOWN_VERSIONS, V1_1_0, V1_4_0, V1_7_0, ProtocolVersion
from .binary import read_value
from .binary.codec import Buffer
from .errors import LocalProtocolError, RemoteProtocolError
from .features import DEFAULT_FEATURES, Feature

__all__ = ["DEFAULT_FEATURES", "NEED_DATA", "ClientConnection", "ConnectionConfig"]

_MAX_FEATURE_BIT = 1023


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = _Sentinel.NEED_DATA
"""Returned by ``next_event()`` when more bytes must be received first."""

# Response header flags (>= 1.4.0).
FLAG_ERROR = 0x1
FLAG_AFFINITY_TOPOLOGY_CHANGED = 0x2
FLAG_NOTIFICATION = 0x4
_KNOWN_FLAGS = FLAG_ERROR | FLAG_AFFINITY_TOPOLOGY_CHANGED | FLAG_NOTIFICATION

_REQUEST_HEADER = struct.Struct("<ihq")  # frame length, op code, request id
_RESPONSE_HEADER = struct.Struct("<qh")  # request id, flags
_LEGACY_HEADER = struct.Struct("<qi")  # request id, status (< 1.4.0)
_TOPOLOGY = struct.Struct("<qi")  # topVer, minorTopVer
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Validated options for one ClientConnection.

    ``versions`` are tried newest first (they are sorted). Credentials drop versions below
    1.1.0 from the candidates, user attributes those below 1.7.0. Feature bit 0
    (USER_ATTRIBUTES) is set exactly when ``user_attributes`` is given.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    versions: tuple[ProtocolVersion, ...] = KNOWN_VERSIONS
    features: frozenset[int] = DEFAULT_FEATURES
    max_frame: int = DEFAULT_MAX_FRAME
    user_attributes: Mapping[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        _check_credentials(self.username, self.password)
        object.__setattr__(self, "versions", _normalise_versions(self.versions))
        object.__setattr__(self, "features", _check_features(self.features))
        if not isinstance(self.max_frame, int) or not 16 <= self.max_frame <= 2**31 - 1:
            raise LocalProtocolError(f"max_frame must be an int in 16..2**31-1: {self.max_frame!r}")
        if self.user_attributes is not None:
            attributes = _check_attributes(self.user_attributes)
            object.__setattr__(self, "user_attributes", attributes)
        if not self.candidate_versions:
            raise LocalProtocolError("no protocol version supports the requested options")

    @property
    def handshake_features(self) -> frozenset[int]:
        """The feature bits we advertise (bit 0 added when user attributes are given)."""
        if self.user_attributes is None:
            return self.features
        return self.features | {Feature.USER_ATTRIBUTES}

    @property
    def candidate_versions(self) -> tuple[ProtocolVersion, ...]:
        """The versions that can carry these options, newest first."""
        floor = ProtocolVersion(0, 0, 0)
        if self.username is not None:
            floor = V1_1_0
        if self.user_attributes is not None:
            floor = V1_7_0
        return tuple(v for v in self.versions if v >= floor)


def _check_credentials(username: object, password: object) -> None:
    if username is not None and not isinstance(username, str):
        raise LocalProtocolError("username must be a str or None")
    if password is not None and not isinstance(password, str):
        raise LocalProtocolError("password must be a str or None")
    if password is not None and username is None:
        raise LocalProtocolError("a password without a username would never be sent")


def _normalise_versions(versions: object) -> tuple[ProtocolVersion, ...]:
    try:
        result = {ProtocolVersion(*v) for v in versions}  # type: ignore[attr-defined]
    except TypeError as exc:
        raise LocalProtocolError(f"versions must be (major, minor, patch) tuples: {exc}") from exc
    for v in result:
        if not all(isinstance(x, int) and 0 <= x <= 0x7FFF for x in v) or v == (0, 0, 0):
            raise LocalProtocolError(f"invalid protocol version {v!r}")
    return tuple(sorted(result, reverse=True))


def _check_features(features: Iterable[object]) -> frozenset[int]:
    try:
        given = frozenset(features)
    except TypeError as exc:  # not iterable, or an unhashable item
        raise LocalProtocolError(f"features must be a set of bit numbers: {exc}") from exc
    bits = frozenset(_feature_bit(bit) for bit in given)
    if Feature.USER_ATTRIBUTES in bits:
        raise LocalProtocolError("feature bit 0 is set by passing user_attributes")
    return bits


def _feature_bit(bit: object) -> int:
    if not isinstance(bit, int) or not 0 <= bit <= _MAX_FEATURE_BIT:
        raise LocalProtocolError(f"invalid feature bit {bit!r}")
    return bit


def _check_attributes(attributes: Mapping[str, str]) -> Mapping[str, str]:
    copy = dict(attributes)
    for key, value in copy.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise LocalProtocolError(f"user attributes must map str to str: {key!r}={value!r}")
    return types.MappingProxyType(copy)


class ClientConnection:
    """One thin-client connection's protocol state, with no I/O.

    Call ``initiate()`` and send its bytes; feed everything received to
    ``receive_data()`` (``b""`` for EOF) and drain ``next_event()`` until it returns
    NEED_DATA. After HandshakeAccepted, ``send_request()`` frames request bodies.
    Only ProtocolError subclasses are raised on purpose; anything else is a bug.
    """

    def __init__(self, config: ConnectionConfig | None = None) -> None:
        self.config = config if config is not None else ConnectionConfig()
        self._frames = FrameSplitter(self.config.max_frame)
        self._candidates = self.config.candidate_versions
        self._attempt = self._candidates[0]
        self._state = ConnectionState.IDLE
        self._reader = self._read__unexpected
        self._version: ProtocolVersion | None = None
        self._features: frozenset[int] = frozenset()
        self._node_id: uuid.UUID | None = None
        self._next_id = 1
        self._pending: set[int] = set()

    def __repr__(self) -> str:
        version = self._version or self._attempt
        return (
            f"<ClientConnection state={self._state.value} version={version} "
            f"in_flight={len(self._pending)}>"
        )

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def version(self) -> ProtocolVersion | None:
        """The negotiated version; None until the handshake is accepted."""
        return self._version

    @property
    def features(self) -> frozenset[int]:
        """The negotiated feature bits (empty before acceptance and below 1.7.0)."""
        return self._features

    @property
    def node_id(self) -> uuid.UUID | None:
        """The server node's id from the handshake (>= 1.4.0)."""
        return self._node_id

    @property
    def in_flight(self) -> int:
        """Requests sent whose response has not been returned yet."""
        return len(self._pending)

    # -- sending ---------------------------------------------------------------------------

    def initiate(self) -> bytes:
        """Return the handshake request for the current candidate version.

        Allowed once at the start, and again after a HandshakeRejected that carried a
        ``retry_version`` (the retry goes out on the same socket).
        """
        new_state = next_state(self._state, Trigger.SEND_HANDSHAKE)
        cfg = self.config
        data = build_handshake(
            self._attempt,
            cfg.handshake_features,
            cfg.username,
            cfg.password,
            cfg.user_attributes,
        )
        self._enter(new_state)
        return data

    def send_request(self, op: int, body: Buffer = b"") -> tuple[int, bytes]:
        """Frame a request; return its id (counting up from 1) and the bytes to send."""
        if self._state is not ConnectionState.READY:
            self._change_state(Trigger.SEND_REQUEST)  # raises LocalProtocolError
        request_id = self._next_id
        try:
            data = b"".join((_REQUEST_HEADER.pack(10 + len(body), op, request_id), body))
        except (struct.error, TypeError) as exc:
            raise LocalProtocolError(f"cannot frame op {op!r} with this body: {exc}") from exc
        self._next_id = request_id + 1
        self._pending.add(request_id)
        return request_id, data

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> None:
        """Buffer bytes received from the server; empty ``data`` means EOF."""
        if self._frames.eof:
            if data:
                raise LocalProtocolError("received data after EOF")
            return
        if data:
            self._frames.feed(data)
        else:
            self._frames.eof = True

    def next_event(self) -> Event | Literal[_Sentinel.NEED_DATA]:
        """Return the next event, or NEED_DATA. Raises RemoteProtocolError on bad bytes."""
        if self._state is ConnectionState.ERROR:
            raise RemoteProtocolError("the connection is in the ERROR state")
        try:
            frame = self._frames.next_frame()
            if frame is None:
                return self._no_frame()
            return self._reader(frame)
        except RemoteProtocolError:
            self._change_state(Trigger.PROTOCOL_ERROR)
            raise
        except struct.error as exc:  # the one place struct errors become protocol errors
            self._change_state(Trigger.PROTOCOL_ERROR)
            raise RemoteProtocolError(f"truncated message from the server: {exc}") from exc

    def _no_frame(self) -> ConnectionClosed | Literal[_Sentinel.NEED_DATA]:
        if not self._frames.eof:
            return NEED_DATA
        if self._frames.buffered:
            raise RemoteProtocolError(
                f"connection closed in the middle of a frame ({self._frames.buffered} bytes)"
            )
        self._change_state(Trigger.EOF)
        return ConnectionClosed()

    # -- state -----------------------------------------------------------------------------

    def _change_state(self, trigger: Trigger) -> None:
        self._enter(next_state(self._state, trigger))

    def _enter(self, state: ConnectionState) -> None:
        self._state = state
        if state is ConnectionState.HANDSHAKING:
            self._reader = self._read__handshake
        elif state is ConnectionState.READY:
            legacy = self._version is not None and self._version < V1_4_0
            self._reader = self._read__legacy_response if legacy else self._read__response
        else:
            self._reader = self._read__unexpected

    # -- frame readers, one per state ------------------------------------------------------

    def _read__unexpected(self, frame: memoryview) -> Event:
        raise RemoteProtocolError(
            f"unexpected {len(frame)}-byte message in state {self._state.value}"
        )

    def _read__handshake(self, frame: memoryview) -> Event:
        event = parse_handshake_response(
            frame, self._attempt, self.config.handshake_features, self._candidates
        )
        if isinstance(event, HandshakeAccepted):
            self._version = event.version
            self._features = event.features
            self._node_id = event.node_id
            self._change_state(Trigger.ACCEPTED)
        elif event.retry_version is not None:
            self._attempt = event.retry_version
            self._change_state(Trigger.REJECTED_RETRY)
        else:
            self._change_state(Trigger.REJECTED)
        return event

    def _read__response(self, frame: memoryview) -> Event:
        """>= 1.4.0: i64 id | i16 flags | [topology] | [notification op] | [error] | body."""
        request_id, flags = _RESPONSE_HEADER.unpack_from(frame)
        if flags == 0:  # the common case, kept short
            self._complete(request_id)
            return Response(request_id, frame[10:], None)
        if flags & ~_KNOWN_FLAGS:
            raise RemoteProtocolError(f"unknown response flags 0x{flags:x}")
        pos = 10
        affinity = None
        if flags & FLAG_AFFINITY_TOPOLOGY_CHANGED:
            affinity = _TOPOLOGY.unpack_from(frame, pos)
            pos += _TOPOLOGY.size
        if flags & FLAG_NOTIFICATION:
            return self._read__notification(frame, request_id, flags, pos)
        self._complete(request_id)
        if flags & FLAG_ERROR:
            status, message, _ = _read_error(frame, pos)
            return ErrorResponse(request_id, status, message or "", affinity)
        return Response(request_id, frame[pos:], affinity)

    def _read__notification(
        self, frame: memoryview, resource_id: int, flags: int, pos: int
    ) -> Notification:
        (op,) = _I16.unpack_from(frame, pos)
        pos += 2
        status, message = 0, None
        if flags & FLAG_ERROR:
            status, message, pos = _read_error(frame, pos)
        return Notification(resource_id, op, bytes(frame[pos:]), status, message)

    def _read__legacy_response(self, frame: memoryview) -> Event:
        """< 1.4.0: i64 id | i32 status | body, or an error message instead of the body."""
        request_id, status = _LEGACY_HEADER.unpack_from(frame)
        self._complete(request_id)
        if status == 0:
            return Response(request_id, frame[12:], None)
        _, message, _ = _read_error(frame, 8)
        return ErrorResponse(request_id, status, message or "", None)

    def _complete(self, request_id: int) -> None:
        try:
            self._pending.remove(request_id)
        except KeyError:
            raise RemoteProtocolError(f"response to unknown request id {request_id}") from None


def _read_error(frame: memoryview, pos: int) -> tuple[int, str | None, int]:
    """Read ``i32 status | str message`` (message may be NULL).

    Bytes after the message are ignored: the frame length already delimits the message,
    and a server adding error details there should not break us.
    """
    (status,) = _I32.unpack_from(frame, pos)
    message, pos = read_value(frame, pos + 4)
    if message is not None and not isinstance(message, str):
        raise RemoteProtocolError(f"error message is {type(message).__name__}, not a string")
    return status, message, pos
