"""pyignite's exception names and hierarchy, the stub's own broker errors, and the one table that
turns a broker reply status into an exception (redis-py's EXCEPTION_CLASSES idea).

Everything the stub raises on purpose derives from ``LibclientError`` as well, so callers can
catch all of it at once; pyignite code keeps catching the pyignite names it knows.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any



class LibclientError(Exception):
    """Mixed into every exception the stub raises."""


class ParseError(LibclientError, Exception):
    pass


class AuthenticationError(LibclientError, Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HandshakeError(LibclientError, OSError):
    def __init__(self, expected_version: Any = None, message: str = "") -> None:
        super().__init__(message)
        self.expected_version = expected_version
        self.message = message


class ReconnectError(LibclientError, Exception):
    pass


class ParameterError(LibclientError, Exception):
    pass


class CacheError(LibclientError, Exception):
    """An Ignite node refused a cache operation; ``server_status`` is its status code."""

    server_status: int | None = None


class BinaryTypeError(CacheError):
    pass


class CacheCreationError(CacheError):
    pass


class SQLError(CacheError):
    pass


class ClusterError(LibclientError, Exception):
    server_status: int | None = None


class NotSupportedByClusterError(LibclientError, Exception):
    pass


class NotSupportedError(LibclientError, Exception):
    pass


# -- errors that only exist because there is a broker ------------------------------------------


class BrokerError(LibclientError, Exception):
    """The broker refused or could not complete a request.

    ``maybe_applied`` is True when a write was sent and its outcome is unknown, False when it
    certainly was not applied, None when the question does not arise (a read).
    """

    def __init__(self, message: str, *, maybe_applied: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_applied = maybe_applied


class BrokerUnavailable(BrokerError, ReconnectError):
    """No broker answered: not started, restarting, crashed, or a wrong endpoint."""


class ClusterUnavailable(BrokerError, ReconnectError):
    """The broker is up but no Ignite node could take the request."""


class BrokerOverloaded(BrokerError):
    """Admission control refused the request; nothing reached the cluster."""


class BrokerTimeout(BrokerError, TimeoutError):
    """The request's deadline passed (the broker said so, or it stayed silent past it)."""


class BrokerProtocolError(BrokerError, ParseError):
    """The broker and the stub disagree on the IPC protocol (version or malformed frames)."""


class RequestTooLarge(BrokerError, ParameterError):
    """The request is larger than the broker accepts (``limits.max_request_bytes``)."""


class NodeMismatchError(ParameterError, ReconnectError):
    """``connect(host, port)`` named a node the broker does not serve."""


connection_errors = (IOError, OSError, EOFError)

# IPC reply status -> exception class; SERVER_ERROR (4) uses the class the operation names
# (CacheError, SQLError, ClusterError, ...), as pyignite's ``status_to_exception`` does.
_BY_STATUS: dict[int, type[Exception]] = {
    1: ParameterError,  # BAD_REQUEST
    2: NotSupportedError,  # UNKNOWN_OP: this broker does not implement the operation
    3: BrokerProtocolError,  # UNSUPPORTED_VERSION
    5: BrokerOverloaded,
    6: ClusterUnavailable,
    7: BrokerTimeout,  # DEADLINE_EXCEEDED
    8: BrokerError,  # INTERNAL
    9: RequestTooLarge,
}
SERVER_ERROR = 4
# An error kind that names a more exact class than its status: a transaction or cursor handle
# of an earlier run of the broker (CLUSTER_UNAVAILABLE), which ended with that run as with a
# lost broker connection.
_BY_KIND: dict[str, type[Exception]] = {"ended_with_broker": BrokerUnavailable}


def error_from_reply(status: int, payload: Any, server_error: type[Exception],
                     op: str) -> Exception:
    """The exception for a non-OK reply; the message is the broker's (the node's for status 4)."""
    error = payload if isinstance(payload, dict) else {}
    message = str(error.get("message") or payload)
    if status == SERVER_ERROR:
        exc = server_error(message)
        exc.server_status = error.get("server_status")  # type: ignore[attr-defined]
        return exc
    cls = _BY_KIND.get(str(error.get("kind"))) or _BY_STATUS.get(status, BrokerError)
    if cls is NotSupportedError:
        return cls(f"the broker does not implement {op!r}: {message}")
    if issubclass(cls, BrokerError):
        return cls(message, maybe_applied=error.get("maybe_applied"))
    return cls(message)
