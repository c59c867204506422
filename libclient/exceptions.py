"""pyignite's exception names and hierarchy, plus the stub's own broker errors, under one mixin
root (``LibclientError``) so callers can catch everything the stub raises."""

from __future__ import annotations

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
    pass


class BinaryTypeError(CacheError):
    pass


class CacheCreationError(CacheError):
    pass


class SQLError(CacheError):
    pass


class ClusterError(LibclientError, Exception):
    pass


class NotSupportedByClusterError(LibclientError, Exception):
    pass


class NotSupportedError(LibclientError, Exception):
    pass


# -- errors that only exist because there is a broker ------------------------------------------


class BrokerError(LibclientError, Exception):
    """The broker refused or could not complete a request.

    ``maybe_applied`` is True when a write was sent to the cluster and its outcome is unknown,
    False when it certainly was not applied, None when the question does not arise.
    """

    def __init__(self, message: str, *, maybe_applied: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.maybe_applied = maybe_applied


class BrokerUnavailable(BrokerError, ReconnectError):
    """No broker answered within the timeout (not started, restarting, or wrong endpoint)."""


class ClusterUnavailable(BrokerError, ReconnectError):
    """The broker is up but no Ignite node could take the request."""


class BrokerOverloaded(BrokerError):
    """Admission control refused the request; nothing reached the cluster."""


class BrokerTimeout(BrokerError, TimeoutError):
    """The request's deadline passed."""


class BrokerProtocolError(BrokerError, ParseError):
    """The broker and the stub disagree on the IPC protocol (version or malformed frames)."""


connection_errors = (IOError, OSError, EOFError)
