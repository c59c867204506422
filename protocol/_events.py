"""The events a ClientConnection hands out: small frozen dataclasses, one per server message kind.

Do not subclass them; the connection and its callers dispatch on the exact class.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ._version import ProtocolVersion
from .errors import LocalProtocolError

__all__ = [
    "ConnectionClosed",
    "ErrorResponse",
    "Event",
    "HandshakeAccepted",
    "HandshakeRejected",
    "Notification",
    "Response",
]


@dataclass(frozen=True, slots=True)
class HandshakeAccepted:
    """The server accepted our handshake; the connection is ready for requests."""

    version: ProtocolVersion
    features: frozenset[int]
    node_id: uuid.UUID | None  # None below protocol 1.4.0

    def __post_init__(self) -> None:
        if not isinstance(self.version, ProtocolVersion):
            raise LocalProtocolError(f"version must be a ProtocolVersion, got {self.version!r}")


@dataclass(frozen=True, slots=True)
class HandshakeRejected:
    """The server refused our handshake.

    ``retry_version`` is set when the server proposed a lower version that we also
    support; call ``initiate()`` again (same socket) to try it. Otherwise the connection
    is finished (e.g. an authentication failure: status 2000, server version 0.0.0).
    """

    server_version: ProtocolVersion
    message: str
    status: int | None  # None when the requested version was below 1.1.0
    retry_version: ProtocolVersion | None


@dataclass(slots=True)
class Response:
    """A successful response; ``body`` is what follows the header (may be a memoryview).
    Not frozen, for speed (one is built per answer on the broker's hot path): treat it as
    immutable all the same.

    ``affinity_version`` is ``(topVer, minorTopVer)`` when the server flagged an affinity
    topology change (protocol >= 1.4.0), else None. The body can pin the receive chunk it
    was cut from; copy it with ``bytes()`` if it is kept for long.
    """

    request_id: int
    body: bytes | memoryview
    affinity_version: tuple[int, int] | None = None


@dataclass(slots=True)
class ErrorResponse:
    """The server answered a request with an error status (an event, not an exception).
    Not frozen, like Response."""

    request_id: int
    status: int
    message: str
    affinity_version: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A server-initiated message (continuous-query event 2007, compute result 6001...)."""

    resource_id: int
    op: int
    body: bytes
    status: int = 0
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection cleanly (EOF on a frame boundary)."""


Event = (
    HandshakeAccepted
    | HandshakeRejected
    | Response
    | ErrorResponse
    | Notification
    | ConnectionClosed
)
