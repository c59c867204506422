"""The exception hierarchy of the protocol package: one root, a local/remote split."""

from __future__ import annotations

__all__ = [
    "FrameTooLarge",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "UnknownSchema",
]


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


class UnknownSchema(RemoteProtocolError):
    """A complex object refers to binary-type metadata the registry does not hold (yet).

    Raised by the decoder for a compact-footer object whose ``(type_id, schema_id)`` is not
    registered, for a full-footer object whose type or field ids are unknown (their names
    come from metadata), and for any complex object decoded without a ``CodecContext``.
    The bytes are not broken: fetch the type (BINARY_TYPE_GET, ``type_id``), add it with
    ``Registry.add()`` and decode again. Catch it before ``RemoteProtocolError``, whose
    other subclasses mean the peer really sent garbage.
    """

    def __init__(self, type_id: int, schema_id: int, detail: str = "") -> None:
        message = f"unknown binary schema: type id {type_id}, schema id {schema_id}"
        super().__init__(f"{message} ({detail})" if detail else message)
        self.type_id = type_id
        self.schema_id = schema_id
