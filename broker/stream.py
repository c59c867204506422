"""The byte stream under a node connection: the small interface NodeConnection needs, the asyncio
implementation (TCP, optionally TLS), and an in-memory one for tests without a JVM.

Theory of operation.  A *connector* is an async callable ``connect(host, port, receiver)``
that opens a stream to ``host:port`` and returns it; from then on the stream calls the
receiver's ``connection_made(stream)``, ``data_received(bytes)``, ``eof_received()`` and
``connection_lost(exc)`` (the asyncio Protocol callbacks: an asyncio transport *is* a stream, so
the hot path pays for no wrapper), and the receiver calls the stream's ``write(bytes)`` and
``abort()``.  A failed connect raises StreamError, whatever the cause (OSError, TLS); it is
the one place where socket and TLS errors are translated.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol, cast


class Stream(Protocol):
    """What a node connection writes to.  Writes never block: they are buffered."""

    def write(self, data: bytes) -> None: ...

    def abort(self) -> None:
        """Close at once, dropping unsent bytes; the receiver gets connection_lost."""


class Receiver(Protocol):
    """What a stream delivers to (the asyncio.Protocol callbacks NodeConnection implements)."""

    def connection_made(self, transport: object) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


Connector = Callable[[str, int, Receiver], Awaitable[Stream]]


class StreamError(Exception):
    """Connecting failed; ``reason`` is the short form for the connection's close reason."""

    def __init__(self, message: str, reason: str = "connect failed") -> None:
        super().__init__(message)
        self.reason = reason


def tcp_connector(ssl_context: ssl.SSLContext | None = None) -> Connector:
    """Connect with ``loop.create_connection`` (TLS when ``ssl_context`` is given, checking
    the node's host name); the asyncio transport is the stream."""

    async def connect(host: str, port: int, receiver: Receiver) -> Stream:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(
                lambda: cast(asyncio.Protocol, receiver),  # NodeConnection is one
                host, port, ssl=ssl_context,
                server_hostname=host if ssl_context else None)
        except ssl.SSLError as exc:
            raise StreamError(f"TLS failed: {exc.reason or exc}", "tls error") from exc
        except OSError as exc:
            raise StreamError(f"{exc.strerror or exc}") from exc
        return transport

    return connect


# -- in memory ------------------------------------------------------------------------------------


class MemoryStream:
    """One end of an in-memory connection.  What the broker writes goes to ``peer_write``
    (the fake node's input); what the node sends is delivered to the receiver on a later
    loop iteration, as a socket's would be."""

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        #: The node's input, and what to tell it when the broker aborts: set by the listener.
        self.peer_write: Callable[[bytes], None] = lambda data: None
        self.on_abort: Callable[[], None] | None = None
        self.closed = False
        self.writes = 0  # write() calls: one per flush on the broker's hot path

    def __repr__(self) -> str:
        return f"<MemoryStream {'closed' if self.closed else 'open'} writes={self.writes}>"

    # the broker's side

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.writes += 1
            self.peer_write(bytes(data))

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_abort is not None:
            self.on_abort()
        asyncio.get_running_loop().call_soon(self._receiver.connection_lost, None)

    # the node's side

    def feed(self, data: bytes) -> None:
        """Bytes from the node (delivered on the next loop iteration)."""
        if not self.closed:
            asyncio.get_running_loop().call_soon(self._deliver, bytes(data))

    def _deliver(self, data: bytes) -> None:
        if not self.closed:
            self._receiver.data_received(data)

    def eof(self) -> None:
        """The node closed its side (as when its process exits)."""
        if not self.closed:
            asyncio.get_running_loop().call_soon(self._deliver_eof)

    def _deliver_eof(self) -> None:
        if not self.closed:
            self.closed = True
            self._receiver.eof_received()
            self._receiver.connection_lost(None)

    def reset(self, exc: Exception | None = None) -> None:
        """The connection broke (RST, network gone)."""
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(
                self._receiver.connection_lost, exc or ConnectionResetError("reset by peer"))


#: What listens on an in-memory address: called with each new stream (the node's end), it
#: sets the stream's ``peer_write`` (and ``on_abort``) to the node's handlers.
Accept = Callable[[MemoryStream], None]


class MemoryNetwork:
    """In-memory addresses: ``connect`` is a Connector; nodes ``listen`` and ``unlisten``."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], Accept] = {}
        self.connects = 0  # connect attempts, refused ones included

    def __repr__(self) -> str:
        return f"<MemoryNetwork listening={sorted(self._listeners)} connects={self.connects}>"

    def listen(self, host: str, port: int, accept: Accept) -> None:
        self._listeners[(host, port)] = accept

    def unlisten(self, host: str, port: int) -> None:
        self._listeners.pop((host, port), None)

    async def connect(self, host: str, port: int, receiver: Receiver) -> Stream:
        self.connects += 1
        accept = self._listeners.get((host, port))
        if accept is None:
            raise StreamError(f"Connect call failed ({host!r}, {port}): connection refused")
        stream = MemoryStream(receiver)
        accept(stream)
        receiver.connection_made(stream)
        return stream
