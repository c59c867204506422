"""Request/reply with the broker for the asyncio client (zmq.asyncio).

One DEALER socket per process and event loop, shared by all tasks: requests are multiplexed by
request id, and a reader task (alive only while requests are pending) hands each reply to its
waiter.  The rules are transport.py's: pid checks for fork safety, ``IMMEDIATE=1`` so "nothing
was sent" is knowable, a broken connection detected while waiting (``POLLOUT`` gone), re-sends
for idempotent requests within their deadline, BrokerUnavailable saying whether a write may
have been applied.  The heartbeat is a task on the loop, so a blocked loop stops pinging (a
hung worker is visible to the broker).
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref

import zmq
import zmq.asyncio

from .calls import Call
from .envelope import (
    deadline_ms,
    next_request_id,
    pack_request,
    result_of,
    routing_id,
    unpack_reply,
)
from .exceptions import BrokerProtocolError, ReconnectError
from .transport import (
    GRACE,
    TransportBase,
    _close_socket,
    lost_error,
    not_sent_error,
    timeout_error,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_LIVENESS_SLICE_MS = 100


class AioChannel:
    """One asyncio DEALER socket of one loop, and the requests in flight on it."""

    def __init__(self, endpoint: str, loop: asyncio.AbstractEventLoop) -> None:
        sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.ROUTING_ID, routing_id())
        sock.connect(endpoint)
        self.sock = sock
        self.raw = zmq.Socket.shadow(sock.underlying)  # non-blocking send/recv, no futures
        self.loop = loop
        self.pid = os.getpid()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.lost: asyncio.Future[bool] = loop.create_future()
        self.reader: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.holds = 0
        self.last_activity = time.monotonic()
        self.frames: list[bytes] = []  # fire-and-forget (closes of abandoned cursors)
        self.closed = False
        self.on_lost: Callable[[], None] | None = None
        self._finalizer = weakref.finalize(self, _close_socket, sock, self.pid)

    def __repr__(self) -> str:
        return f"<AioChannel pid={self.pid} pending={len(self.pending)} holds={self.holds}>"

    def writable(self) -> bool:
        return bool(self.raw.getsockopt(zmq.EVENTS) & zmq.POLLOUT)

    async def wait_writable(self, deadline: float) -> bool:
        while not self.writable():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)  # only while the broker is away
        return True

    def send(self, frame: bytes) -> bool:
        while self.frames:
            try:
                self.raw.send(self.frames.pop(), zmq.NOBLOCK)
            except zmq.Again:
                break
        try:
            self.raw.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.last_activity = time.monotonic()
        if self.reader is None or self.reader.done():
            self.reader = self.loop.create_task(self._read())
        return True

    async def _read(self) -> None:
        while self.pending and not self.closed:
            if await self.sock.poll(_LIVENESS_SLICE_MS, zmq.POLLIN):
                while True:
                    try:
                        frame = self.raw.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    try:
                        reply = unpack_reply(frame)
                    except BrokerProtocolError:
                        continue  # not ours to fail: the waiter times out with a clear error
                    waiter = self.pending.get(reply.request_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(reply)
            elif not self.writable():
                self.signal_lost()

    def signal_lost(self) -> None:
        lost, self.lost = self.lost, self.loop.create_future()
        if not lost.done():
            lost.set_result(True)
        if self.on_lost is not None:
            self.on_lost()

    def close(self) -> None:
        self.closed = True
        for task in (self.reader, self.pinger):
            if task is not None and not task.done():
                task.cancel()
        self._finalizer()


class AioHold:
    """Pins an asyncio channel while a cursor or transaction lives on it; pings it when idle."""

    __slots__ = ("__weakref__", "channel", "released")

    def __init__(self, transport: AioTransport, channel: AioChannel) -> None:
        self.channel = channel
        self.released = False
        channel.holds += 1
        if channel.pinger is None or channel.pinger.done():
            channel.pinger = channel.loop.create_task(transport._ping_while_held(channel))

    def defer(self, op: str, args: dict[str, Any]) -> None:
        self.channel.frames.append(pack_request(next_request_id(), op, args, deadline_ms(30.0)))

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.channel.holds -= 1


class AioTransport(TransportBase):
    """The asyncio counterpart of transport.Transport."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._channels: weakref.WeakKeyDictionary[Any, AioChannel] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<AioTransport {self.endpoint} pid={self._pid} loops={len(self._channels)}>"

    def channel(self) -> AioChannel:
        if self._pid != os.getpid():
            self._channels = weakref.WeakKeyDictionary()
            self._pid = os.getpid()
            self._up = None
        loop = asyncio.get_running_loop()
        chan = self._channels.get(loop)
        if chan is None or chan.closed:
            if self._closed:
                raise ReconnectError("the client is closed: connect() again")
            chan = AioChannel(self.endpoint, loop)
            chan.on_lost = lambda: self._set_up(False, "the broker went away")
            self._channels[loop] = chan
        return chan

    def hold(self) -> AioHold:
        return AioHold(self, self.channel())

    async def close(self) -> None:
        self._closed = True
        for chan in list(self._channels.values()):
            chan.close()
        self._channels = weakref.WeakKeyDictionary()

    async def request(self, call: Call, deadline: float | None = None) -> Any:
        if call.hold is not None:
            chan = call.hold.channel
            if chan.pid != os.getpid():
                raise call.error(f"{call.op}: this cursor or transaction belongs to process "
                                 f"{chan.pid}; it does not survive fork()")
            if chan.loop is not asyncio.get_running_loop():
                raise call.error(f"{call.op}: this cursor or transaction belongs to another "
                                 "event loop")
        else:
            chan = self.channel()
        if chan.closed:
            raise ReconnectError("the client is closed: connect() again")
        start = time.monotonic()
        if deadline is None:
            deadline = start + self.timeout
        request_id = next_request_id()
        frame = pack_request(request_id, call.op, call.args, deadline_ms(deadline - start))
        waiter = chan.loop.create_future()
        chan.pending[request_id] = waiter
        try:
            return await self._exchange(chan, frame, waiter, call, start, deadline)
        finally:
            chan.pending.pop(request_id, None)

    async def _exchange(self, chan: AioChannel, frame: bytes, waiter: asyncio.Future[Any],
                        call: Call, start: float, deadline: float) -> Any:
        sent = False
        resends = 0
        while True:
            if not sent:
                if not await chan.wait_writable(deadline):
                    raise not_sent_error(self.endpoint, call, deadline - start)
                if not chan.send(frame):
                    await asyncio.sleep(0.01)
                    continue
                sent = True
            lost = chan.lost
            remaining = deadline + GRACE - time.monotonic()
            if remaining > 0:
                await asyncio.wait((waiter, lost), timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                self._set_up(True)
                return result_of(waiter.result(), call)
            if lost.done():
                if call.idempotent and resends < self.retries:
                    resends += 1
                    sent = False
                    continue
                raise lost_error(self.endpoint, call, resends)
            raise timeout_error(self.endpoint, call, deadline - start)

    async def _ping_while_held(self, chan: AioChannel) -> None:
        interval = self.heartbeat_interval
        while chan.holds > 0 and not chan.closed:
            await asyncio.sleep(interval / 4)
            if chan.holds > 0 and time.monotonic() - chan.last_activity >= interval:
                try:
                    await self.request(Call("ping", idempotent=True),
                                       time.monotonic() + interval)
                except Exception:
                    continue

