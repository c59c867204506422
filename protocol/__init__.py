"""Apache Ignite 2.x thin-client protocol, sans-IO: bytes in, events out.

This package holds no networking code. ``ClientConnection`` turns received bytes into
events and requests into bytes; the caller owns the socket, the clock and the threads.
"""

from . import affinity, binary, ops
from ._connection import DEFAULT_FEATURES, NEED_DATA, ClientConnection, ConnectionConfig
from ._events import (
    ConnectionClosed,
    ErrorResponse,
    Event,
    HandshakeAccepted,
    HandshakeRejected,
    Notification,
    Response,
)
from ._framing import DEFAULT_MAX_FRAME
from ._state import ConnectionState
from ._version import KNOWN_VERSIONS, ProtocolVersion
from .binary.registry import BinaryType, CodecContext, Registry
from .errors import (
    FrameTooLarge,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    UnknownSchema,
)
from .hashing import cache_id, java_string_hash
from .opcodes import OpCode
from .status import StatusCode

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_MAX_FRAME",
    "KNOWN_VERSIONS",
    "NEED_DATA",
    "BinaryType",
    "ClientConnection",
    "CodecContext",
    "ConnectionClosed",
    "ConnectionConfig",
    "ConnectionState",
    "ErrorResponse",
    "Event",
    "FrameTooLarge",
    "HandshakeAccepted",
    "HandshakeRejected",
    "LocalProtocolError",
    "Notification",
    "OpCode",
    "ProtocolError",
    "ProtocolVersion",
    "Registry",
    "RemoteProtocolError",
    "Response",
    "StatusCode",
    "UnknownSchema",
    "affinity",
    "binary",
    "cache_id",
    "java_string_hash",
    "ops",
]
