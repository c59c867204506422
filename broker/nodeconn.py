"""One connection to one Ignite node: drives a sans-IO ``protocol.ClientConnection`` over a
byte stream (broker/stream.py) and matches responses to callers by request id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    HandshakeRejected,
    Notification,
    OpCode,
    ProtocolError,
    Response,
    cluster,
)
from protocol.features import Feature

from . import log
from .budget import ReplySizes
from .errors import ConnectError, DeadlineExceeded
from .metrics import Metrics
from .stream import Connector, Stream, StreamError

#: What a caller gets back: the node's Response or ErrorResponse, or the exception that ended
#: the connection before an answer came.
Outcome = Response | ErrorResponse | BaseException
Callback = Callable[[Outcome], None]


class ResourceListener(Protocol):
    """Who gets the notifications of one server resource (a continuous query) on a connection,
    and hears when that connection is lost (the node released the resource then)."""

    def notified(self, event: Notification) -> None: ...

    def connection_lost(self, conn: NodeConnection, reason: str) -> None: ...

_log = log.get("nodeconn")
_callback_log = log.Throttle()
_monotonic = time.monotonic


class ConnectionLost(ConnectError):
    """The connection closed while the request was in flight: a write may have been applied."""


class ClosedByNode(ConnectionLost):
    """The node closed the connection while the request was in flight: a node going down does
    that, and so does Ignite when it cannot parse a request (it logs "Failed to parse client
    request" and answers nothing), so the request itself may be what closed it."""


class NotSent(ConnectionLost):
    """The connection closed while the request still waited in the broker for room on it:
    nothing of it reached the node."""


class WriteBatch:
    """Collects the connections written to during one batch of work, so each gets one write
    (one syscall) at the end of the batch: node connections while the front end handles a
    batch of worker requests, stream workers while a node's answers are handled."""

    __slots__ = ("active", "before_end", "dirty")

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[Any] = []  # each has flush()
        #: Run at the end of each batch, before the writes (broker/batching.py sends then).
        self.before_end: list[Callable[[], None]] = []

    def begin(self) -> None:
        self.active = True

    def end(self) -> None:
        for hook in self.before_end:
            hook()
        self.active = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class NodeConnection(asyncio.Protocol):
    """A pipelined thin-client connection; many requests in flight, answers matched by id."""

    def __init__(
        self,
        host: str,
        port: int,
        config: ConnectionConfig,
        *,
        on_lost: Callable[[NodeConnection, str], None] | None = None,
        on_topology: Callable[[NodeConnection, tuple[int, int]], None] | None = None,
        batch: WriteBatch | None = None,
        replies: WriteBatch | None = None,
        byte_budget: int = 1 << 62,
        reply_sizes: ReplySizes | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._proto = ClientConnection(config)
        # id -> (callback, deadline, cost in bytes, op, cache id, monotonic time sent)
        self._pending: dict[int, tuple[Callback, float, int, OpCode, int | None, float]] = {}
        # Requests waiting for room under byte_budget:
        # (op, body, callback, deadline, cache, monotonic time queued).
        self._queued: deque[tuple[OpCode, bytes, Callback, float, int | None, float]] = deque()
        self.metrics = metrics or Metrics()
        self.name = f"{host}:{port}"  # the node's label in metrics
        self.reply_sizes = reply_sizes or ReplySizes()
        #: Bytes a node may be asked to hold for us at once: request bodies plus the answers
        #: expected for them (a node that builds too many big answers at once runs out of heap).
        self.byte_budget = byte_budget
        self.bytes_in_flight = 0
        self._transport: Stream | None = None
        self._handshake: asyncio.Future[HandshakeAccepted] | None = None
        self._outbuf: list[bytes] = []
        self._on_lost = on_lost
        self._on_topology = on_topology
        self._batch = batch
        self._replies = replies
        self.closed_reason: str | None = None
        self.node_id: uuid.UUID | None = None
        self.last_sent = 0.0  # monotonic time of the last write
        self.last_received = time.monotonic()  # ... and of the last bytes from the node
        self.heartbeat_in_flight = False
        self.heartbeat_interval = float("inf")  # set by the pool after the handshake
        #: resource id -> who gets its notifications (broker/continuous.py)
        self.listeners: dict[int, ResourceListener] = {}

    def __repr__(self) -> str:
        state = "closed" if self.closed_reason else ("open" if self._transport else "new")
        return (
            f"<NodeConnection {self.host}:{self.port} {state} node_id={self.node_id} "
            f"in_flight={len(self._pending)}>"
        )

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self.closed_reason is None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def queued(self) -> int:
        return len(self._queued)

    @property
    def version(self) -> Any:
        return self._proto.version

    @property
    def features(self) -> frozenset[int]:
        return self._proto.features

    # -- opening ------------------------------------------------------------------------------

    async def open(self, connect: Connector, timeout: float) -> HandshakeAccepted:
        """Connect (``connect``: broker/stream.py) and make the thin-client handshake, falling
        back down protocol versions."""
        loop = asyncio.get_running_loop()
        self._handshake = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await connect(self.host, self.port, self)
                return await self._handshake
        except TimeoutError as exc:
            self._close_unopened("connect timeout")
            raise ConnectError(f"{self.host}:{self.port}: no handshake within {timeout}s") from exc
        except StreamError as exc:
            self._close_unopened(exc.reason)
            raise ConnectError(f"{self.host}:{self.port}: {exc}") from exc

    def connection_made(self, transport: object) -> None:
        stream = cast(Stream, transport)  # an asyncio transport (uvloop's is no subclass)
        self._transport = stream
        stream.write(self._proto.initiate())

    # -- requests -----------------------------------------------------------------------------

    def send(self, op: OpCode, body: bytes, callback: Callback,
             deadline: float = float("inf"), *, cache_id: int | None = None,
             urgent: bool = False) -> None:
        """Send a request; ``callback`` runs exactly once with the outcome (the answer, the
        connection's loss, or DeadlineExceeded once ``deadline`` (monotonic) has passed).

        A request costs its body plus the answer expected for (op, ``cache_id``); one that
        would take the bytes in flight over ``byte_budget`` waits in the broker, in order,
        until answers make room (one always goes when nothing is in flight).  ``urgent``
        ones (heartbeats) never wait."""
        if self._transport is None or self.closed_reason is not None:
            raise ConnectionLost(f"{self.host}:{self.port}: connection is closed")
        if not urgent and (self._queued or (self._pending and not self._fits(op, body, cache_id))):
            self._queued.append((op, body, callback, deadline, cache_id, _monotonic()))
            return
        self._write_request(op, body, callback, deadline, cache_id)

    def requests_on(self, cache_id: int) -> int:
        """Requests for ``cache_id`` sent and unanswered, or waiting here to be sent."""
        return (sum(1 for pending in self._pending.values() if pending[4] == cache_id)
                + sum(1 for queued in self._queued if queued[4] == cache_id))

    def _fits(self, op: OpCode, body: bytes, cache_id: int | None) -> bool:
        cost = len(body) + self.reply_sizes.expect(op, cache_id)
        return self.bytes_in_flight + cost <= self.byte_budget

    def _write_request(self, op: OpCode, body: bytes, callback: Callback, deadline: float,
                       cache_id: int | None) -> None:
        cost = len(body) + self.reply_sizes.expect(op, cache_id)
        request_id, data = self._proto.send_request(op, body)
        self._pending[request_id] = (callback, deadline, cost, op, cache_id, _monotonic())
        self.bytes_in_flight += cost
        outbuf = self._outbuf
        if not outbuf:
            batch = self._batch
            if batch is not None and batch.active:
                batch.dirty.append(self)
            else:
                asyncio.get_running_loop().call_soon(self.flush)
        outbuf.append(data)

    def _send_queued(self) -> None:
        """Answers made room: send what waited, in order, while it fits."""
        queued = self._queued
        while queued:
            op, body, _, _, cache_id, _ = queued[0]
            if self._pending and not self._fits(op, body, cache_id):
                return
            op, body, callback, deadline, cache_id, queued_at = queued.popleft()
            self.metrics.waited("node_bytes", _monotonic() - queued_at)
            self._write_request(op, body, callback, deadline, cache_id)

    def probe(self, callback: Callback, deadline: float = float("inf")) -> None:
        """The cheapest round trip the node answers (HEARTBEAT; CACHE_GET_NAMES before feature
        11), sent at once: a heartbeat, or a barrier behind the answers sent before it."""
        if Feature.HEARTBEAT in self.features:
            self.send(OpCode.HEARTBEAT, cluster.heartbeat(), callback, deadline, urgent=True)
        else:
            self.send(OpCode.CACHE_GET_NAMES, b"", callback, deadline, urgent=True)

    async def request(self, op: OpCode, body: bytes) -> Response | ErrorResponse:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        def settle(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        self.send(op, body, settle)
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def flush(self) -> None:
        """Write everything queued since the last flush in one go: many workers' requests
        cost one syscall."""
        if self._transport is not None and self._outbuf:
            self._transport.write(b"".join(self._outbuf))
            self.last_sent = time.monotonic()
        self._outbuf.clear()

    # -- receiving ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_received = received = _monotonic()
        node_answered = self.metrics.node_answered
        proto = self._proto
        replies = self._replies
        if replies is not None:
            replies.begin()
        try:
            proto.receive_data(data)
            while (event := proto.next_event()) is not NEED_DATA:
                if isinstance(event, Response | ErrorResponse):  # the common case, inline
                    if event.affinity_version is not None and self._on_topology is not None:
                        self._on_topology(self, event.affinity_version)
                    pending = self._pending.pop(event.request_id, None)
                    if pending is not None:  # None: the caller gave up (deadline) before
                        self.bytes_in_flight -= pending[2]
                        if isinstance(event, Response):
                            self.reply_sizes.seen(pending[3], pending[4], len(event.body))
                        else:
                            self.metrics.node_error(self.name, "server_error")
                        node_answered(pending[3], received - pending[5])
                        self._settle(pending[0], event)
                    continue
                self._handle(event)
                if isinstance(event, ConnectionClosed):  # repeats forever, like h11's
                    break
            if self._queued and self.closed_reason is None:
                self._send_queued()
        except ProtocolError as exc:
            self.close(f"protocol error from node: {exc}")
        finally:
            if replies is not None:
                replies.end()  # the answers read here reach each worker in one write

    def _settle(self, callback: Callback, outcome: Outcome) -> None:
        """Run one caller's callback; a bug in it must not end the connection that every
        other worker's requests share (asyncio closes a transport whose protocol raises)."""
        try:
            callback(outcome)
        except Exception as exc:
            if (held := _callback_log.allow()) is not None:
                _log.error("callback_failed", node=f"{self.host}:{self.port}", exc_info=exc,
                           suppressed=held)

    def _handle(self, event: Any) -> None:
        if isinstance(event, HandshakeAccepted):
            self.node_id = event.node_id
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(event)
        elif isinstance(event, HandshakeRejected):
            self._on_rejected(event)
        elif isinstance(event, Notification):
            listener = self.listeners.get(event.resource_id)
            if listener is None:
                _log.debug("notification_ignored", op=event.op, resource=event.resource_id)
            else:
                self._notify(listener, event)
        elif isinstance(event, ConnectionClosed):
            self.close("node closed the connection", ClosedByNode)

    def _notify(self, listener: ResourceListener, event: Notification) -> None:
        """Hand a notification over; a bug in the listener must not end the connection."""
        try:
            listener.notified(event)
        except Exception as exc:
            if (held := _callback_log.allow()) is not None:
                _log.error("listener_failed", node=self.name, exc_info=exc, suppressed=held)

    def _on_rejected(self, event: HandshakeRejected) -> None:
        if event.retry_version is not None and self._transport is not None:
            self._transport.write(self._proto.initiate())
            return
        if self._handshake is not None and not self._handshake.done():
            what = "authentication failed" if event.status == 2000 else "handshake refused"
            self._handshake.set_exception(
                ConnectError(f"{self.host}:{self.port}: {what}: {event.message}")
            )

    def eof_received(self) -> bool | None:
        self.data_received(b"")
        return None

    def expire(self, now: float) -> int:
        """Fail the requests whose deadline passed (a late answer is then dropped)."""
        late = [rid for rid, pending in self._pending.items() if pending[1] < now]
        for rid in late:
            callback, _, cost, _, _, _ = self._pending.pop(rid)
            self.bytes_in_flight -= cost
            self._settle(callback, DeadlineExceeded(
                f"{self.host}:{self.port} did not answer before the request's deadline"))
        if self._queued:
            self._expire_queued(now)
            if self.closed_reason is None:
                self._send_queued()
        return len(late)

    def _expire_queued(self, now: float) -> None:
        waiting = [q for q in self._queued if q[3] < now]
        if not waiting:
            return
        self._queued = deque(q for q in self._queued if q[3] >= now)
        for _, _, callback, _, _, _ in waiting:
            self._settle(callback, DeadlineExceeded(
                "the request's deadline passed while it waited for room on the node "
                "connection (it was not sent)"))

    # -- closing ------------------------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed"
        self._fail_all(reason)

    def _close_unopened(self, reason: str) -> None:
        """Close after a failed open; nobody awaits the handshake any more."""
        self.close(reason)
        handshake = self._handshake
        if handshake is not None and handshake.done() and not handshake.cancelled():
            handshake.exception()  # retrieved: no "exception was never retrieved" noise

    def close(self, reason: str, lost: type[ConnectionLost] = ConnectionLost) -> None:
        """Close with a reason; every pending request fails with ``lost``."""
        if self._transport is not None:
            self._transport.abort()
        self._fail_all(reason, lost)

    def _fail_all(self, reason: str, lost: type[ConnectionLost] = ConnectionLost) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        error = lost(f"{self.host}:{self.port}: {reason}")
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(error)
        pending, self._pending = self._pending, {}
        queued, self._queued = self._queued, deque()
        self.bytes_in_flight = 0
        for callback, *_ in pending.values():
            self._settle(callback, error)
        not_sent = NotSent(f"{self.host}:{self.port}: {reason} (the request was not sent)")
        for _, _, callback, _, _, _ in queued:
            self._settle(callback, not_sent)
        if self._on_lost is not None:
            self._on_lost(self, reason)
        listeners, self.listeners = self.listeners, {}
        for listener in listeners.values():
            try:
                listener.connection_lost(self, reason)
            except Exception as exc:
                _log.error("listener_failed", node=self.name, exc_info=exc)
