"""Continuous queries: a subscription to a cache's changes, on a broker connection of its own
(the broker shares one server query per cache among its subscribers and pushes their events,
docs/ipc.md "Continuous queries").  ``ContinuousQuery`` for the blocking Client (an iterator,
or a listener thread), ``AioContinuousQuery`` for the AioClient (an async iterator).

Events come in order per key.  When the broker lost the server query (its node went away) or
the stub lost the broker and subscribed again, an ``EventsMissed`` comes in the stream where
events may be missing; a subscription the broker ended (a subscriber too slow to read its
events) raises ``SubscriptionEnded``."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from . import core
from .calls import Call
from .envelope import ipc, unpack_reply
from .exceptions import CacheError, ReconnectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .aio_transport import AioChannel, AioTransport
    from .cursors import AioScanCursor, ScanCursor
    from .transport import Channel, Transport

__all__ = ["AioContinuousQuery", "CacheEntryEvent", "ContinuousQuery", "EventType",
           "EventsMissed", "JavaFilter", "ScanQuery", "SubscriptionEnded"]

#: How often an idle subscription pings the broker, which forgets silent ZeroMQ workers.
PING_INTERVAL = 5.0


class EventType(enum.IntEnum):
    """javax.cache.event.EventType, as Ignite numbers them."""

    CREATED = 0
    UPDATED = 1
    REMOVED = 2
    EXPIRED = 3


class CacheEntryEvent(NamedTuple):
    """One change of one entry; ``old_value`` is None for CREATED, ``value`` for REMOVED."""

    key: Any
    old_value: Any
    value: Any
    event_type: EventType


class EventsMissed(NamedTuple):
    """Events may be missing at this point of the stream (``reason`` says why)."""

    reason: str


class SubscriptionEnded(CacheError):
    """The broker ended the subscription (e.g. its worker read too slowly): no more events."""


class ScanQuery(NamedTuple):
    """An initial query (``query_continuous(initial_query=ScanQuery(...))``): the cache's
    entries, read once the subscription runs, as ``cache.scan`` with these arguments."""

    page_size: int = 1
    partitions: int = -1
    local: bool = False


class JavaFilter(NamedTuple):
    """A remote filter (``query_continuous(remote_filter=JavaFilter(...))``): the node makes
    an instance of ``class_name`` -- a class on the nodes' class path implementing
    ``org.apache.ignite.cache.CacheEntryEventSerializableFilter``, with a public no-arg
    constructor -- and sets its fields named in ``properties`` (plain values: str, bool,
    float, bytes, None; a Python int is a Java long, ``protocol.ipc.Typed(3, n)`` a Java int).
    Only the events it passes leave the cluster.  Like the .NET client's ``JavaObject``."""

    class_name: str
    properties: dict[str, Any] | None = None


def subscribe_args(cache: str, page_size: int, time_interval: int,
                   include_expired: bool, remote_filter: JavaFilter | None = None
                   ) -> dict[str, Any]:
    """The ``cq_subscribe`` arguments; ``time_interval`` in ms, as Ignite takes it."""
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive int, not {page_size!r}")
    if not isinstance(time_interval, int) or time_interval < 0:
        raise ValueError(f"time_interval must be a non-negative int (ms), not {time_interval!r}")
    args = {"cache": cache, "page_size": page_size, "time_interval": time_interval,
            "include_expired": bool(include_expired)}
    if remote_filter is not None:
        if not isinstance(remote_filter, JavaFilter):
            raise TypeError(f"remote_filter must be a JavaFilter, not {remote_filter!r}")
        args["filter"] = {"class": remote_filter.class_name,
                          "properties": dict(remote_filter.properties or {})}
    return args


def scan_args(cache: str, initial_query: ScanQuery) -> dict[str, Any]:
    """The ``scan`` arguments of an initial query."""
    if not isinstance(initial_query, ScanQuery):
        raise TypeError(f"initial_query must be a ScanQuery, not {initial_query!r}")
    page_size, partitions, local = initial_query
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"the initial query's page_size must be a positive int, not "
                         f"{page_size!r}")
    return {"cache": cache, "page_size": page_size, "partitions": partitions,
            "local": bool(local)}


class _Inbox:
    """What a subscription received and not yet handed out: its part of the state machine
    shared by both drivers.  ``take`` reads one EVENT message; the raw rows are decoded by the
    driver (which may need the cluster's binary types)."""

    __slots__ = ("ended", "handle", "items")

    def __init__(self) -> None:
        self.handle: int | None = None
        self.items: deque[Any] = deque()  # raw rows lists, or EventsMissed
        self.ended: Exception | None = None

    def take(self, message: bytes) -> None:
        m = ipc()
        reply = unpack_reply(message)
        if reply.status == m.Status.GOING_AWAY:
            raise _Reconnect("the broker is stopping")
        if reply.status != m.Status.EVENT or not isinstance(reply.payload, dict):
            return  # a ping's reply
        payload = reply.payload
        if payload.get(m.EVENT_SUB) != self.handle:
            return  # an earlier subscription's, on this connection
        if m.EVENT_EVENTS in payload:
            self.items.append(payload[m.EVENT_EVENTS])
        elif m.EVENT_MISSED in payload:
            self.items.append(EventsMissed(str(payload[m.EVENT_MISSED])))
        elif m.EVENT_ENDED in payload:
            error = payload[m.EVENT_ENDED]
            message_ = error.get("message") if isinstance(error, dict) else error
            self.ended = SubscriptionEnded(str(message_))


class _Reconnect(Exception):
    """The connection ended: subscribe again on a new one (and say events may be missed)."""


class _Decoded(NamedTuple):
    event: CacheEntryEvent


def _events(rows: list[Any]) -> list[CacheEntryEvent]:
    return [CacheEntryEvent(key, old, value, EventType(kind)) for key, old, value, kind in rows]


class ContinuousQuery:
    """A blocking subscription: ``with cache.query_continuous() as events: for e in events``.
    One thread uses it at a time (or give ``listener``: a thread of its own calls it)."""

    def __init__(self, client: Any, cache: str, *, page_size: int = 1, time_interval: int = 0,
                 include_expired: bool = False,
                 listener: Callable[[Any], None] | None = None,
                 initial_query: ScanQuery | None = None,
                 remote_filter: JavaFilter | None = None) -> None:
        self._client = client
        self._args = subscribe_args(cache, page_size, time_interval, include_expired,
                                    remote_filter)
        scan = None if initial_query is None else scan_args(cache, initial_query)
        self._inbox = _Inbox()
        self._chan: Channel | None = None
        self._pid = os.getpid()
        self._closed = False
        self._last_ping = time.monotonic()
        self._thread: threading.Thread | None = None
        #: The initial query's cursor (``[key, value]`` pairs, paged as any scan), opened
        #: once the subscription runs: every later change comes as an event.  None without.
        self.initial: ScanCursor | None = None
        self._subscribe()
        if scan is not None:
            self._open_initial(scan)
        if listener is not None:
            self._thread = threading.Thread(target=self._listen, args=(listener,),
                                            name=f"continuous-query-{cache}", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"<ContinuousQuery {self._args['cache']} sub={self._inbox.handle}>"

    def _transport(self) -> Transport:
        transport: Transport = self._client._require()
        return transport

    def _subscribe(self) -> None:
        transport = self._transport()
        chan = self._chan = transport.new_channel()
        try:
            result = transport.request_on(chan, Call("cq_subscribe", self._args,
                                                     idempotent=True),
                                          time.monotonic() + transport.timeout)
        except BaseException:
            self._drop_channel()  # a refused subscription leaves no connection behind
            raise
        self._inbox.handle = result[ipc().EVENT_SUB]
        #: The node ("host:port") the broker's server query runs on, when subscribed.
        self.node: str | None = result.get("node")

    def _open_initial(self, scan: dict[str, Any]) -> None:
        from .cursors import ScanCursor

        try:
            self.initial = ScanCursor(self._client, scan)
        except BaseException:
            self.close()  # as Java's thin client: no subscription without its initial query
            raise

    def __enter__(self) -> ContinuousQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> ContinuousQuery:
        return self

    def __next__(self) -> Any:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def get(self, timeout: float | None = None) -> Any:
        """The next event (a CacheEntryEvent or EventsMissed); None after ``timeout`` seconds
        without one, or once closed.  Raises SubscriptionEnded when the broker ended it."""
        end = None if timeout is None else time.monotonic() + timeout
        inbox = self._inbox
        while True:
            while not inbox.items:
                if inbox.ended is not None:
                    raise inbox.ended
                if self._closed:
                    return None
                now = time.monotonic()
                if end is not None and now >= end:
                    return None
                self._receive(0.5 if end is None else min(end - now, 0.5))
            item = inbox.items.popleft()
            if isinstance(item, EventsMissed):
                return item
            if isinstance(item, _Decoded):
                return item.event
            events = _events(self._client._run(self._client._decode(item)))
            for event in reversed(events[1:]):  # the rest of the batch, decoded, in order
                inbox.items.appendleft(_Decoded(event))
            if events:
                return events[0]

    def _receive(self, wait: float) -> None:
        if os.getpid() != self._pid:
            raise CacheError("this continuous query belongs to another process: it does not "
                             "survive fork()")
        chan = self._chan
        if chan is None:
            self._resubscribe("the broker connection was lost")
            return
        from .transport import LOST

        with chan.lock:
            message = chan.receive(wait)
            now = time.monotonic()
            if message is None and now - self._last_ping >= PING_INTERVAL:
                self._last_ping = now
                self._ping(chan)
        try:
            if message is LOST:
                raise _Reconnect("the broker connection was lost")
            if message is not None:
                self._inbox.take(message)
        except _Reconnect as exc:
            self._resubscribe(str(exc))

    def _ping(self, chan: Channel) -> None:
        from .envelope import deadline_ms, next_request_id, pack_request

        frame = pack_request(next_request_id(), "ping", {}, deadline_ms(PING_INTERVAL))
        chan.send(frame, time.monotonic())  # no waiting: its reply is dropped with the events

    def _resubscribe(self, reason: str) -> None:
        self._drop_channel()
        self._subscribe()
        self._inbox.items.append(EventsMissed(
            f"{reason}: subscribed again; events in between may be missed"))

    def _drop_channel(self) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            with chan.lock:
                chan.close()

    def _listen(self, listener: Callable[[Any], None]) -> None:
        while not self._closed:
            try:
                event = self.get(0.5)
            except Exception as exc:  # ended, or the broker unreachable: the listener hears it
                listener(exc)
                return
            if event is not None:
                listener(event)

    def close(self) -> None:
        """Unsubscribe (the broker closes the server query when its last subscriber goes)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.initial is not None and os.getpid() == self._pid:
            with contextlib.suppress(Exception):  # a cursor the broker dropped is closed
                self.initial.close()
        chan = self._chan
        if chan is not None and os.getpid() == self._pid and self._inbox.ended is None:
            transport = self._client._transport
            if transport is not None:
                # If it fails, closing the connection ends the subscription as well.
                with contextlib.suppress(Exception):
                    transport.request_on(chan, Call("cq_unsubscribe",
                                                    {"sub": self._inbox.handle}),
                                         time.monotonic() + 2.0)
        self._drop_channel()


class AioContinuousQuery:
    """An asyncio subscription: ``async with await cache.query_continuous() as events:
    async for e in events``."""

    def __init__(self, client: Any, cache: str, *, page_size: int = 1, time_interval: int = 0,
                 include_expired: bool = False, initial_query: ScanQuery | None = None,
                 remote_filter: JavaFilter | None = None) -> None:
        self._client = client
        self._args = subscribe_args(cache, page_size, time_interval, include_expired,
                                    remote_filter)
        self._scan = None if initial_query is None else scan_args(cache, initial_query)
        #: The initial query's cursor (``async for key, value in events.initial``), opened
        #: once the subscription runs (its first page read).  None without one.
        self.initial: AioScanCursor | None = None
        self._inbox = _Inbox()
        self._chan: AioChannel | None = None
        self._hold: core.Hold | None = None
        self._arrived: asyncio.Event | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._lost: str | None = None
        self._closed = False
        self.node: str | None = None

    def __repr__(self) -> str:
        return f"<AioContinuousQuery {self._args['cache']} sub={self._inbox.handle}>"

    async def start(self) -> AioContinuousQuery:
        transport: AioTransport = self._client._require()
        loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        chan = self._chan = transport.new_channel(loop)
        self._hold = core.Hold(chan)
        chan.events = self._on_message
        chan.on_lost = self._on_lost
        try:
            result = await transport.request(Call("cq_subscribe", self._args, idempotent=True,
                                                  hold=self._hold))
        except BaseException:
            self._drop_channel()  # a refused subscription leaves no connection behind
            raise
        self._inbox.handle = result[ipc().EVENT_SUB]
        self.node = result.get("node")
        if self._pinger is None:
            self._pinger = loop.create_task(self._ping())
        if self._scan is not None and self.initial is None:  # once, not after resubscribing
            await self._open_initial(self._scan)
        return self

    async def _open_initial(self, scan: dict[str, Any]) -> None:
        from .cursors import AioScanCursor

        cursor = AioScanCursor(self._client, scan)
        try:
            await cursor
        except BaseException:
            await self.close()  # no subscription without its initial query
            raise
        self.initial = cursor

    def _on_message(self, message: bytes) -> None:
        try:
            self._inbox.take(message)
        except _Reconnect as exc:
            self._lost = str(exc)
        assert self._arrived is not None
        self._arrived.set()

    def _on_lost(self) -> None:
        self._lost = self._lost or "the broker connection was lost"
        if self._arrived is not None:
            self._arrived.set()

    async def _ping(self) -> None:
        while not self._closed:
            await asyncio.sleep(PING_INTERVAL)
            try:
                transport: AioTransport = self._client._require()
            except ReconnectError:  # the client was closed: so is this subscription
                return
            try:
                await transport.request(Call("ping", idempotent=True, hold=self._hold),
                                        time.monotonic() + PING_INTERVAL)
            except Exception:
                continue

    async def __aenter__(self) -> AioContinuousQuery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __await__(self) -> Any:
        return self.start().__await__()

    def __aiter__(self) -> AioContinuousQuery:
        return self

    async def __anext__(self) -> Any:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def get(self, timeout: float | None = None) -> Any:
        """The next event (CacheEntryEvent or EventsMissed); None after ``timeout`` seconds
        without one, or once closed.  Raises SubscriptionEnded when the broker ended it."""
        inbox = self._inbox
        arrived = self._arrived
        assert arrived is not None, "await start() first"
        end = None if timeout is None else time.monotonic() + timeout
        while not inbox.items:
            if inbox.ended is not None:
                raise inbox.ended
            if self._closed:
                return None
            if self._lost is not None:
                await self._resubscribe()
                continue
            arrived.clear()
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                await asyncio.wait_for(arrived.wait(), left)
            except TimeoutError:
                return None
        item = inbox.items.popleft()
        if isinstance(item, EventsMissed):
            return item
        if isinstance(item, _Decoded):
            return item.event
        events = _events(await self._client._arun(self._client._decode(item)))
        for event in reversed(events[1:]):  # the rest of the batch, decoded, in order
            inbox.items.appendleft(_Decoded(event))
        return events[0] if events else await self.get(timeout)

    async def _resubscribe(self) -> None:
        reason, self._lost = self._lost, None
        self._drop_channel()
        await self.start()
        self._inbox.items.append(EventsMissed(
            f"{reason}: subscribed again; events in between may be missed"))

    def _drop_channel(self) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            chan.events = None
            chan.on_lost = None
            chan.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pinger is not None:
            self._pinger.cancel()
        if self.initial is not None:
            with contextlib.suppress(Exception):  # a cursor the broker dropped is closed
                await self.initial.close()
        transport = self._client._transport
        if self._chan is not None and transport is not None and self._inbox.ended is None:
            with contextlib.suppress(Exception):  # closing the connection ends it as well
                await transport.request(Call("cq_unsubscribe", {"sub": self._inbox.handle},
                                             hold=self._hold), time.monotonic() + 2.0)
        self._drop_channel()
        if self._arrived is not None:
            self._arrived.set()
