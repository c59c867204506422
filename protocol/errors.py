"""The exception hierarchy of the protocol package: one root, a local/remote split."""

from __future__ import annotations

__all__ = ["FrameTooLarge", "LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of every exception the protocol package raises on purpose.

    Anything else escaping from ``protocol`` (``IndexError``, ``struct.error``, ...) is a bug.
    """


class LocalProtocolError(ProtocolError):
    """We broke the protocol: a call in the wrong state, or a value that cannot be encoded."""


class RemoteProtocolError(ProtocolError):
    """The server broke the protocol: bytes that cannot be parsed or are not allowed here."""


class FrameTooLarge(RemoteProtocolError):
    """A frame's length prefix exceeds the configured ``max_frame`` limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the limit of {limit} bytes")
        self.length = length
        self.limit = limit
