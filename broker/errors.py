"""The broker's exception family: one root, a few flat branches, each carrying an IPC status."""

from __future__ import annotations

import re
from typing import Any

from protocol.ipc import Status, error_payload

#: The longest error message a worker gets; the rest is cut.  Long enough for a node's own
#: messages (a transaction's description runs to ~600 characters, and pyignite shows it whole);
#: the broker's own messages never echo a request (see ``brief``).
MAX_ERROR_MESSAGE = 2048


def clip(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def brief(value: Any) -> str:
    """A worker's value for an error message: short ones as repr, long ones by type and size
    (repr of a 4 MiB string would be a 4 MiB message)."""
    if isinstance(value, str | bytes | bytearray | list | dict | tuple) and len(value) > 40:
        return f"<{type(value).__name__} of length {len(value)}>"
    text = repr(value)
    return text if len(text) <= 60 else f"<{type(value).__name__}>"


class BrokerError(Exception):
    """Root of every error the broker raises on purpose."""

    status: Status = Status.INTERNAL
    kind = "internal"


class ConfigError(BrokerError):
    """The configuration file or the command line is wrong."""

    kind = "config"


class NativeBuildError(BrokerError):
    """mypyc (or the C compiler behind it) could not build the compiled hot path."""

    kind = "native_build"


class BadRequest(BrokerError):
    """A worker sent something the broker cannot act on."""

    status = Status.BAD_REQUEST
    kind = "bad_request"


class UnknownOp(BadRequest):
    status = Status.UNKNOWN_OP
    kind = "unknown_op"


class DeadlineExceeded(BrokerError):
    status = Status.DEADLINE_EXCEEDED
    kind = "deadline_exceeded"


class Overloaded(BrokerError):
    status = Status.OVERLOADED
    kind = "overloaded"


class ClusterUnavailable(BrokerError):
    """No node could take the request; ``maybe_applied`` says whether a write may have landed."""

    status = Status.CLUSTER_UNAVAILABLE
    kind = "cluster_unavailable"

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class EndedWithBroker(ClusterUnavailable):
    """A transaction or cursor handle of an earlier run of the broker: it ended with that run
    (nothing of the request reached a node)."""

    kind = "ended_with_broker"


class NodeError(BrokerError):
    """An Ignite node answered a request with an error status."""

    status = Status.SERVER_ERROR
    kind = "server_error"

    def __init__(self, message: str, server_status: int) -> None:
        super().__init__(message)
        self.server_status = server_status


class ConnectError(BrokerError):
    """A node could not be reached or refused the handshake."""

    kind = "connect"


_STACK_START = re.compile(r"\n\s*(at |Caused by:|Suppressed:)|\tat ")
_ADDRESS = re.compile(r"/?\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def public_node_message(message: str) -> str:
    """A node's error message as a worker may see it: the message, without a Java stack
    trace or network addresses, and bounded (the whole text goes to the debug log).  Ids
    (node, transaction) stay: pyignite shows them, and they are what one debugs with."""
    match = _STACK_START.search(message)
    if match is not None:
        message = message[:match.start()]
    return clip(_ADDRESS.sub("<address>", message.strip()))


def error_of(exc: BrokerError) -> dict[str, Any]:
    """The error map a worker gets for ``exc``."""
    return error_payload(
        exc.kind,
        str(exc),
        server_status=getattr(exc, "server_status", None),
        maybe_applied=getattr(exc, "maybe_applied", None),
    )
