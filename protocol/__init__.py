"""Apache Ignite 2.x thin-client protocol, sans-IO: bytes in, events out.

This package holds no networking code. ``ClientConnection`` turns received bytes into
events and requests into bytes; the caller owns the socket, the clock and the threads.

The names below are loaded on first use (PEP 562), so a light importer such as the worker
stub, which needs only ``protocol.ipc``, does not pay for the whole codec.
"""

from __future__ import annotations

import importlib

#: The version of this source tree: ignite-broker and ignite-broker-client are released together
#: (both pyproject.toml files, ``broker.__version__`` and ``libclient.__version__`` read it here).
__version__ = "0.1.0"

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


TYPE_CHECKING = False
if TYPE_CHECKING:  # the names above, as type checkers see them (a test checks they agree)
    from typing import Any

    from . import affinity as affinity
    from . import binary as binary
    from . import limits as limits
    from . import ops as ops
    from ._connection import NEED_DATA as NEED_DATA
    from ._connection import ClientConnection as ClientConnection
    from ._connection import ConnectionConfig as ConnectionConfig
    from ._events import ConnectionClosed as ConnectionClosed
    from ._events import ErrorResponse as ErrorResponse
    from ._events import Event as Event
    from ._events import HandshakeAccepted as HandshakeAccepted
    from ._events import HandshakeRejected as HandshakeRejected
    from ._events import Notification as Notification
    from ._events import Response as Response
    from ._framing import DEFAULT_MAX_FRAME as DEFAULT_MAX_FRAME
    from ._state import ConnectionState as ConnectionState
    from ._version import KNOWN_VERSIONS as KNOWN_VERSIONS
    from ._version import ProtocolVersion as ProtocolVersion
    from .binary.registry import BinaryType as BinaryType
    from .binary.registry import CodecContext as CodecContext
    from .binary.registry import Registry as Registry
    from .errors import FrameTooLarge as FrameTooLarge
    from .errors import LocalProtocolError as LocalProtocolError
    from .errors import ProtocolError as ProtocolError
    from .errors import RemoteProtocolError as RemoteProtocolError
    from .errors import UnknownSchema as UnknownSchema
    from .features import DEFAULT_FEATURES as DEFAULT_FEATURES
    from .features import Feature as Feature
    from .hashing import cache_id as cache_id
    from .hashing import java_string_hash as java_string_hash
    from .opcodes import OpCode as OpCode
    from .status import StatusCode as StatusCode
