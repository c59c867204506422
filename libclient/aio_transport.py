"""The asyncio driver of the request lifecycle (core.py) for the asyncio client.

One connection (a *channel*) per process and event loop, shared by all tasks: requests are
multiplexed by request id, and each reply is handed to its waiter.  Two kinds, picked by the
endpoint as in transport.py: a zmq.asyncio DEALER socket for ``ipc://`` and ``tcp://`` (pyzmq is
imported on first use), a Unix stream connection (asyncio Protocol) for ``unix://``.

The rules are core.py's, and the events as in transport.py: "nothing was sent" is knowable
(a DEALER with ``IMMEDIATE=1`` is not writable without a connection; a stream is connected,
with retries, before anything is written); a broken connection is detected while waiting
(``POLLOUT`` gone, or end-of-file on the stream) and wakes every request in flight on it.  The
heartbeat is a task on the loop, so a blocked loop stops pinging (a hung worker is visible to
the broker).  A stopping broker's NOT_PROCESSED retires the connection for new requests (a
DEALER channel is replaced by a new one; a stream takes nothing more until it ends), and a
stream's GOING_AWAY ends it at once, waking every request without a reply on it: each is sent
again on a new connection.  While no connection can be made, ``core.Connecting`` says how long
to go on (to the request's deadline while the socket file exists, ``connect_timeout`` while it
does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
import weakref

from protocol.ipcstream import MessageReader, Oversized, is_stream_endpoint, stream_path
from protocol.ipcstream import frame as stream_frame

from . import core
from .access import check_socket_dir, connect_dealer, new_dealer, socket_file, zmq_module
from .calls import Call
from .core import (
    DEFAULT_CONNECT_TIMEOUT,
    TO_SEND,
    Exchange,
    closed_error,
    is_going_away,
    not_processed,
    pinned,
)
from .envelope import unpack_reply
from .exceptions import BrokerProtocolError
from .transport import TransportBase, _close_socket, zmq_events

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_LIVENESS_SLICE_MS = int(core.LIVENESS_SLICE * 1000)
#: The result of a channel's ``lost`` future when the broker said GOING_AWAY (else True).
GOING_AWAY = "going away"


def _zmq_asyncio() -> Any:
    """pyzmq's asyncio flavour, imported when the first ZeroMQ channel opens."""
    import zmq.asyncio

    return zmq.asyncio


class AioChannel(core.ChannelState):
    """One connection of one event loop and what rides on it (core.ChannelState: requests in
    flight, by request id, each with its waiter future; deferred frames; holds), plus the
    ``lost`` future and the pinger task.  Subclasses own the socket: ZeroMQ DEALER or Unix
    stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(os.getpid(), time.monotonic())
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.retired = False  # takes no new request: the transport opens another channel
        self.lost: asyncio.Future[bool | str] = loop.create_future()
        self.pinger: asyncio.Task[None] | None = None
        self.on_lost: Callable[[], None] | None = None
        #: A subscription's channel (continuous.py): who gets its EVENT messages.
        self.events: Callable[[bytes], None] | None = None
        # A finalizer (not __del__) so a forked child never closes its parent's socket.
        self._finalizer = weakref.finalize(self, _close_socket, sock, self.pid)

    # What the driver needs of a socket.

    async def wait_writable(self, exchange: Exchange) -> None:
        """Until ``exchange``'s request can be sent; raises (``exchange.not_sent``) if the
        broker was not reachable by its deadline or not there at all for ``connect_timeout``
        (then nothing was sent)."""
        raise NotImplementedError

    def try_send(self, frame: bytes) -> bool:
        """Send deferred frames, then ``frame``; False if it could not be sent just now."""
        raise NotImplementedError

    def deliver(self, message: bytes) -> bool:
        """Hand one reply to its waiter; replies nobody waits for (pings) are dropped.  True
        for a GOING_AWAY, which the caller acts on (it answers no request id)."""
        try:
            matched = self.reply_to(message)
            if not matched:
                reply = unpack_reply(message)
                if self.events is not None and reply.request_id == 0:
                    self.events(message)  # EVENT
                return is_going_away(reply)
        except BrokerProtocolError:
            return False  # not ours to fail: the waiter times out with a clear error
        for waiter, reply in matched:  # one, or those a refusal without id refuses
            if not waiter.done():
                waiter.set_result(reply)
        return False

    def take_news(self) -> None:
        """Before a send: read what arrived while nobody waited (ZeroMQ: a GOING_AWAY)."""

    def signal_lost(self, how: bool | str = True) -> None:
        """The broker went away (``how``: True, or GOING_AWAY when it said that nothing
        still without a reply was processed): wake every request waiting for a reply on this
        channel."""
        lost, self.lost = self.lost, self.loop.create_future()
        if not lost.done():
            lost.set_result(how)
        if self.on_lost is not None:
            self.on_lost()

    def retire(self) -> None:
        """The broker said NOT_PROCESSED (or, on ZeroMQ, GOING_AWAY): new requests go
        elsewhere (see the subclasses); those in flight here still get their replies."""
        self.retired = True

    def _tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self.pinger]

    def close(self) -> None:
        self.closed = True
        for task in self._tasks():
            if task is not None and not task.done():
                task.cancel()
        self._finalizer()


class AioZmqChannel(AioChannel):
    """An asyncio DEALER socket with IMMEDIATE=1, and its reader task (alive only while
    requests are in flight): "not writable" means "no broker connection"."""

    def __init__(self, endpoint: str, loop: asyncio.AbstractEventLoop,
                 curve: tuple[bytes, bytes, bytes] | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        zmq = zmq_module()
        sock = new_dealer(_zmq_asyncio().Context.instance())
        super().__init__(loop, sock, connect_timeout)
        self.endpoint = endpoint
        self.path = socket_file(endpoint)  # None: no file to look at (tcp://, ipc://@name)
        self.curve = curve
        self.connected = False  # on first use, once connect_dealer finds the endpoint safe
        self.sock = sock
        self.raw = zmq.Socket.shadow(sock.underlying)  # non-blocking send/recv, no futures
        self.reader: asyncio.Task[None] | None = None

    def writable(self) -> bool:
        zmq = zmq_module()
        return bool(self.raw.getsockopt(zmq.EVENTS) & zmq.POLLOUT)

    async def wait_writable(self, exchange: Exchange) -> None:
        connecting: core.Connecting | None = None  # while no broker connection is complete
        while not self.writable():
            if not self.connected:
                self.connected = connect_dealer(self.sock, self.endpoint, self.curve)
                self.connection += self.connected
                if self.connected:
                    continue
            now = time.monotonic()
            if connecting is None:
                connecting = core.Connecting(now, self.connect_timeout)
            present = self.path is not None and os.path.exists(self.path)
            if connecting.gives_up(now, exchange.deadline, present):
                exchange.not_sent(connecting.nobody_for)
            await asyncio.sleep(0.05)  # only while the broker is away

    def take_news(self) -> None:
        events, pollin = zmq_events()
        if self.connected and self.raw.getsockopt(events) & pollin:
            self._receive_ready()

    def _receive_ready(self) -> None:
        """Every message already received; a GOING_AWAY retires the channel (send nothing
        more on this socket)."""
        zmq = zmq_module()
        while True:
            try:
                frame = self.raw.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self.deliver(frame):
                self.retire()

    def try_send(self, frame: bytes) -> bool:
        zmq = zmq_module()
        while self.deferred:
            try:
                self.raw.send(self.deferred.pop(), zmq.NOBLOCK)
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
        zmq = zmq_module()
        while (self.in_flight or self.events is not None) and not self.closed:
            if await self.sock.poll(_LIVENESS_SLICE_MS, zmq.POLLIN):
                self._receive_ready()
            elif not self.writable():
                self.signal_lost()

    def _tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self.reader, *super()._tasks()]


class AioStreamChannel(AioChannel):
    """A Unix stream connection of one loop, opened on demand by one connector task shared by
    every request that needs it; its end (EOF, reset) is the broker's end, which fails over
    the requests awaiting replies at once.  A new connection is a new broker session."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.slot = _StreamSlot()
        super().__init__(loop, self.slot, connect_timeout)
        self.path = path
        # Its result: None, or the connect timeout when it gave up because nobody was there.
        self.connector: asyncio.Task[float | None] | None = None
        self.connect_until = 0.0  # the latest deadline of the requests waiting to connect
        self.paused = False  # the kernel buffer is full: the broker is not reading
        self.draining = False  # the broker said NOT_PROCESSED: no new request on this one
        self.refused: Exception | None = None  # the socket's directory failed the check
        self.wakeup: asyncio.Future[None] = loop.create_future()

    def _wake(self) -> None:
        wakeup, self.wakeup = self.wakeup, self.loop.create_future()
        if not wakeup.done():
            wakeup.set_result(None)

    def _ready(self) -> bool:
        return self.slot.transport is not None and not self.paused and not self.draining

    def linked(self) -> bool:
        return self.slot.transport is not None

    async def wait_writable(self, exchange: Exchange) -> None:
        connector = None  # the connect attempt this request waits for
        while not self._ready():
            if self.refused is not None:
                refused, self.refused = self.refused, None
                raise refused
            if (connector is not None and connector.done() and not connector.cancelled()
                    and connector.result() is not None):
                exchange.not_sent(connector.result())  # nobody there: raises
            remaining = exchange.deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                exchange.not_sent()
            if self.slot.transport is None:
                connector = self._start_connecting(exchange.deadline)
            await asyncio.wait((self.wakeup,), timeout=remaining)

    def _start_connecting(self, deadline: float) -> asyncio.Task[float | None]:
        self.connect_until = max(self.connect_until, deadline)
        if self.connector is None or self.connector.done():
            self.connector = self.loop.create_task(self._connect())
        return self.connector

    async def _connect(self) -> float | None:
        """Connect, retrying while the broker is not there (it may be restarting) until the
        latest deadline of the requests waiting, or for ``connect_timeout`` while there is
        no socket file (then the result is the connect timeout); wakes them either way."""
        connecting = core.Connecting(time.monotonic(), self.connect_timeout)
        try:
            while not self.closed:
                present = await self._try_connect()
                if present is None:
                    return None
                if self.refused is not None:
                    return None
                delay = connecting.next_delay(time.monotonic(), self.connect_until, present)
                if delay is None:
                    return connecting.nobody_for
                await asyncio.sleep(delay)
            return None
        finally:
            self._wake()

    async def _try_connect(self) -> bool | None:
        """None once connected; else whether the socket file is there (a refused or timed
        out connect: the broker restarting, or socket activation's backlog)."""
        try:
            check_socket_dir(self.path)
        except Exception as exc:  # handed to the requests waiting to connect
            self.refused = exc
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            budget = max(self.connect_until - time.monotonic(), 0.001)
            await asyncio.wait_for(self.loop.sock_connect(sock, self.path), budget)
            await self.loop.create_unix_connection(lambda: _StreamProtocol(self, sock),
                                                   sock=sock)
        except OSError as exc:  # no socket file, refused (no listener), or a connect timeout
            sock.close()
            return exc.errno not in (errno.ENOENT, errno.ENOTDIR)
        except BaseException:
            sock.close()
            raise
        return None if self.slot.transport is not None else True

    def connection_made(self, protocol: _StreamProtocol, transport: asyncio.Transport) -> None:
        if self.closed:
            transport.abort()
            return
        self.slot.attach(protocol, transport)
        self.paused = False
        self.connection += 1

    def connection_ended(self, protocol: _StreamProtocol) -> None:
        if self.slot.protocol is not protocol:
            return  # an earlier connection, already replaced
        self.slot.detach()
        self.paused = self.draining = False
        self.deferred.clear()  # closes of cursors that ended with this connection's session
        self._wake()  # requests waiting for a paused connection: connect anew
        if not self.closed:
            self.signal_lost()

    def retire(self) -> None:
        # The same channel, on a new connection once this one ends (the broker ends it after
        # answering what it started): until then it takes nothing (``_ready``).  One that
        # holds a transaction or cursor stays on this connection for them (the stopping
        # broker serves them until they end) and takes nothing else: the loop's other
        # requests go on a new channel.
        if self.holds:
            self.retired = True
        else:
            self.draining = True

    def going_away(self, protocol: _StreamProtocol) -> None:
        """GOING_AWAY: nothing still without a reply on this connection was processed; end
        it now and wake those requests (they are sent again on a new connection)."""
        if self.slot.protocol is not protocol:
            return
        transport = self.slot.transport
        self.slot.detach()
        self.paused = self.draining = False
        self.deferred.clear()
        if transport is not None:
            transport.abort()
        self._wake()
        self.signal_lost(GOING_AWAY)

    def writing_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self._wake()

    def try_send(self, frame: bytes) -> bool:
        transport = self.slot.transport
        if transport is None or transport.is_closing():
            return False
        if self.deferred:
            transport.write(b"".join(stream_frame(f) for f in self.deferred))
            self.deferred.clear()
        transport.write(stream_frame(frame))
        self.last_activity = time.monotonic()
        return True

    def _tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self.connector, *super()._tasks()]


class _StreamProtocol(asyncio.Protocol):
    """One stream connection: cuts its bytes into replies for its channel and reports its end.
    The channel is referenced weakly, so a dropped channel closes its connection."""

    def __init__(self, channel: AioStreamChannel, sock: socket.socket) -> None:
        self.channel = weakref.ref(channel)
        self.loop = channel.loop
        self.sock = sock
        self.reader = MessageReader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        chan = self.channel()
        if chan is None:
            transport.abort()  # type: ignore[attr-defined]
        else:
            chan.connection_made(self, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        chan = self.channel()
        if chan is None:
            return
        for message in self.reader.feed(data):
            if isinstance(message, Oversized):  # its waiter times out
                continue
            if chan.deliver(message):  # GOING_AWAY: this connection's last message
                chan.going_away(self)
                return

    def connection_lost(self, exc: Exception | None) -> None:
        chan = self.channel()
        if chan is not None:
            chan.connection_ended(self)

    def pause_writing(self) -> None:
        chan = self.channel()
        if chan is not None:
            chan.writing_paused(True)

    def resume_writing(self) -> None:
        chan = self.channel()
        if chan is not None:
            chan.writing_paused(False)


class _StreamSlot:
    """The stream channel's current connection (empty while disconnected), closable like a
    ZeroMQ socket by the channel's finalizer."""

    __slots__ = ("protocol", "transport")

    def __init__(self) -> None:
        self.protocol: _StreamProtocol | None = None
        self.transport: asyncio.Transport | None = None

    def attach(self, protocol: _StreamProtocol, transport: asyncio.Transport) -> None:
        self.protocol, self.transport = protocol, transport

    def detach(self) -> None:
        self.protocol = self.transport = None

    def close(self, linger: int = 0) -> None:
        protocol, transport = self.protocol, self.transport
        self.detach()
        if transport is None or protocol is None:
            return
        if not protocol.loop.is_closed():
            transport.abort()
            return
        # Its event loop is gone (a client kept across asyncio.run() calls): asyncio can no
        # longer close the transport, so close the socket here and tell the transport, which
        # would otherwise warn "unclosed transport" when collected.
        protocol.sock.close()
        with contextlib.suppress(AttributeError):
            transport._sock = None  # type: ignore[attr-defined]


class AioHold(core.Hold):
    """Pins an asyncio channel while a cursor or transaction lives on it; a task on its loop
    pings it while it is idle."""

    __slots__ = ()

    def __init__(self, transport: AioTransport, channel: AioChannel) -> None:
        super().__init__(channel)
        if channel.pinger is None or channel.pinger.done():
            channel.pinger = channel.loop.create_task(transport._ping_while_held(channel))


class AioTransport(TransportBase):
    """The asyncio counterpart of transport.Transport: one channel per process and loop."""

    _again = "connect() again"

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._channels: weakref.WeakKeyDictionary[Any, AioChannel] = weakref.WeakKeyDictionary()
        self._own_channels: weakref.WeakSet[AioChannel] = weakref.WeakSet()  # new_channel's

    def __repr__(self) -> str:
        return f"<AioTransport {self.endpoint} pid={self._pid} loops={len(self._channels)}>"

    def _forget_channels(self) -> None:
        self._channels = weakref.WeakKeyDictionary()
        self._own_channels = weakref.WeakSet()

    def channel(self) -> AioChannel:
        self._checkpid()
        loop = asyncio.get_running_loop()
        chan = self._channels.get(loop)
        if chan is None or chan.closed or chan.retired:
            if self._closed:
                raise closed_error(self._again)
            chan = self._open_channel(loop)
            chan.on_lost = lambda: self._set_up(False, "the broker went away")
            self._channels[loop] = chan
        return chan

    def _open_channel(self, loop: asyncio.AbstractEventLoop) -> AioChannel:
        if is_stream_endpoint(self.endpoint):
            return AioStreamChannel(stream_path(self.endpoint), loop, self.connect_timeout)
        return AioZmqChannel(self.endpoint, loop, self.curve, self.connect_timeout)

    def hold(self) -> AioHold:
        return AioHold(self, self.channel())

    def new_channel(self, loop: asyncio.AbstractEventLoop) -> AioChannel:
        """A channel of its own (a continuous-query subscription's), outside the per-loop
        ones: its calls are pinned to it by a hold, and the caller closes it."""
        self._checkpid()
        if self._closed:
            raise closed_error(self._again)
        chan = self._open_channel(loop)
        self._own_channels.add(chan)  # closed with the client, as the sync ones are
        return chan

    async def close(self) -> None:
        self._closed = True
        for chan in [*self._channels.values(), *self._own_channels]:
            chan.close()
        self._forget_channels()

    def _pinned_refusal(self, call: Call, chan: AioChannel) -> Exception | None:
        # A closed channel gets the closed-client error of ``request``.
        return core.pinned_refusal(call, chan, os.getpid(), refuse_closed=False,
                                   same_loop=chan.loop is asyncio.get_running_loop())

    async def request(self, call: Call, deadline: float | None = None) -> Any:
        chan = self.channel() if call.hold is None else self._pinned_channel(call)
        if chan.closed:
            raise closed_error(self._again)
        now = time.monotonic()
        exchange = Exchange(call, self.endpoint, now,
                            now + self.timeout if deadline is None else deadline, self.retries)
        while True:
            waiter = chan.loop.create_future()
            chan.track(exchange.request_id, waiter, len(exchange.frame))
            try:
                result = await self._drive(chan, exchange, waiter)
            finally:
                chan.untrack(exchange.request_id)
            if exchange.state is not TO_SEND:
                return result
            # Not processed by a stopping broker (a pinned call raised): to the next one.
            await asyncio.sleep(exchange.resend_delay(time.monotonic()))
            chan = self.channel()
            if call.hold is not None:  # the opening call of a cursor or transaction
                call.hold.move_to(chan)

    async def _drive(self, chan: AioChannel, exchange: Exchange,
                     waiter: asyncio.Future[Any]) -> Any:
        while True:
            if exchange.state is TO_SEND:
                exchange.check_hold(chan)  # raises if its cursor/transaction's connection ended
                await chan.wait_writable(exchange)  # raises if nothing could be sent
                chan.take_news()
                if chan.retired and not pinned(exchange.call):
                    return None  # told GOING_AWAY: to another channel
                if not chan.try_send(exchange.frame):
                    await asyncio.sleep(0.01)
                    continue
                exchange.sent()
            lost = chan.lost
            left = exchange.time_left(time.monotonic())
            if left > 0:
                await asyncio.wait((waiter, lost), timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                reply = waiter.result()
                if not_processed(reply):
                    chan.retire()
                    exchange.not_processed()  # raises for a call pinned to a cursor/tx
                    return None
                self._set_up(True)
                return exchange.reply_received(reply, chan.connection)
            if lost.done():
                if lost.result() is GOING_AWAY:
                    exchange.not_processed()
                    return None
                exchange.connection_lost()  # raises unless it may be re-sent
                continue
            exchange.timed_out()

    async def _ping_while_held(self, chan: AioChannel) -> None:
        interval = self.heartbeat_interval
        while chan.holds > 0 and not chan.closed:
            await asyncio.sleep(interval / 4)
            if chan.holds > 0 and chan.wants_ping(time.monotonic(), interval, os.getpid()):
                try:
                    await self.request(Call("ping", idempotent=True),
                                       time.monotonic() + interval)
                except Exception:
                    continue
