"""Apache Ignite 2.x thin-client protocol, sans-IO: bytes in, events out.

This package holds no networking code. ``ClientConnection`` turns received bytes into
events and requests into bytes; the caller owns the socket, the clock and the threads.

The names below are loaded on first use (PEP 562), so a light importer such as the worker
stub, which needs only ``protocol.ipc``, does not pay for the whole codec.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the submodule that defines it (None: the name is a submodule itself)
_EXPORTS: dict[str, str | None] = {
    "affinity": None,
    "binary": None,
    "limits": None,
    "ops": None,
    "DEFAULT_FEATURES": ".features",
    "Feature": ".features",
    "NEED_DATA": "._connection",
    "ClientConnection": "._connection",
    "ConnectionConfig": "._connection",
    "ConnectionClosed": "._events",
    "ErrorResponse": "._events",
    "Event": "._events",
    "HandshakeAccepted": "._events",
    "HandshakeRejected": "._events",
    "Notification": "._events",
    "Response": "._events",
    "DEFAULT_MAX_FRAME": "._framing",
    "ConnectionState": "._state",
    "KNOWN_VERSIONS": "._version",
    "ProtocolVersion": "._version",
    "BinaryType": ".binary.registry",
    "CodecContext": ".binary.registry",
    "Registry": ".binary.registry",
    "FrameTooLarge": ".errors",
    "LocalProtocolError": ".errors",
    "ProtocolError": ".errors",
    "RemoteProtocolError": ".errors",
    "UnknownSchema": ".errors",
    "cache_id": ".hashing",
    "java_string_hash": ".hashing",
    "OpCode": ".opcodes",
    "StatusCode": ".status",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    source = _EXPORTS.get(name, "")
    if source == "":
        raise AttributeError(f"module 'protocol' has no attribute {name!r}")
    if source is None:
        value: Any = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
