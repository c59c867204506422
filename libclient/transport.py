"""The blocking driver of the request lifecycle (core.py) for the sync Client.

One connection (a *channel*) per process and thread, created on first use: a ZeroMQ DEALER
socket for ``ipc://`` and ``tcp://`` endpoints, a Unix stream socket for ``unix://`` ones.
Every object holding a socket records its pid and checks it on entry (redis-py's fork rule):
a child never touches its parent's sockets and opens its own.  A channel is only ever used
under its lock, so a cursor or transaction opened on it can be driven from any thread, and the
heartbeat can ping it while it is idle.

How each transport tells the core what happened.  A DEALER has ``IMMEDIATE=1``: a request is
only queued once a connection to the broker is complete (not writable: not sent), and a
connection that breaks while a reply is awaited shows as ``POLLOUT`` gone (lost).  A stream
is blocking with kernel timeouts: a failed connect or write means nothing was processed (not
sent), end-of-file while a reply is awaited means the broker went away with the request
(lost), and a receive timeout is a slice of waiting passed.  A stopping broker's NOT_PROCESSED
(or, on a stream, GOING_AWAY) retires the connection (``Channel.retire``: a DEALER is replaced,
as the old one stays connected to the stopping broker; a stream is dropped) and the request is
sent again on a new one; a GOING_AWAY on an idle DEALER retires it before the next request.
Before connecting to a socket file, access.py checks its directory; tcp:// connects with CURVE
keys.  While no connection can be made, ``core.Connecting`` says how long to go on: to the
request's deadline while the socket file exists, ``connect_timeout`` while it does not (looked
at only then: a request on a working connection makes no extra system call).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import struct
import threading
import time
import weakref

from protocol.ipcstream import MessageReader, is_stream_endpoint, stream_path
from protocol.ipcstream import frame as stream_frame

from . import core
from .access import (
    check_socket_dir,
    connect_dealer,
    curve_keys,
    new_dealer,
    socket_dir_refusal,
    socket_file,
    zmq_module,
)
from .calls import Call
from .core import (
    GRACE,
    LIVENESS_SLICE,
    Exchange,
    closed_error,
    is_going_away,
    not_processed,
    pinned,
)
from .envelope import deadline_ms, next_request_id, pack_request, unpack_reply
from .exceptions import BrokerProtocolError, BrokerUnavailable, CacheError, ParameterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Bytes asked of the kernel per recv on a stream channel.
_RECV_BYTES = 1 << 18
#: A stream send blocked this long means the broker stopped reading: the connection is dropped.
_SEND_STALL = 5.0

_fork_lock = threading.Lock()
# Re-entrant: cursor finalizers release holds from whatever thread the GC runs in, possibly
# one that is inside this lock already.
_holds_lock = threading.RLock()


def _after_fork_in_child() -> None:
    # Locks copied while another thread held them would stay locked forever in the child.
    global _fork_lock, _holds_lock
    _fork_lock = threading.Lock()
    _holds_lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _MoveOn:
    """``Transport._drive``: the request goes on another channel."""


_MOVE_ON = _MoveOn()


class _Lost:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LOST"


#: What ``wait_reply`` returns when the connection ended with the request in flight.
LOST = _Lost()


class Channel(core.ChannelState):
    """One connection to the broker and what is pinned to it (cursors, transactions).
    Subclasses own the socket: ZeroMQ DEALER (ipc://, tcp://) or Unix stream (unix://)."""

    __slots__ = ("_finalizer", "connect_timeout", "lock", "nobody_for", "sock")

    def __init__(self, sock: Any, connect_timeout: float = core.DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(os.getpid(), time.monotonic())
        self.sock = sock
        self.connect_timeout = connect_timeout
        # Set when ``send`` gave up because nobody was there (``core.Connecting.nobody_for``).
        self.nobody_for: float | None = None
        self.lock = threading.Lock()
        # A thread's channel goes when its thread does (thread-local): its socket closes then.
        # A finalizer (not __del__) so it runs before pyzmq's own "unclosed socket" __del__.
        self._finalizer = weakref.finalize(self, _close_socket, sock, self.pid)

    def add_hold(self) -> bool:
        with _holds_lock:
            return super().add_hold()

    def drop_hold(self) -> bool:
        with _holds_lock:
            return super().drop_hold()

    # What the driver needs of a socket; call with the lock held.

    def flush(self) -> None:
        """Send deferred frames.  Their replies are dropped by id."""
        raise NotImplementedError

    def send(self, frame: bytes, deadline: float, same_connection: bool = False) -> bool:
        """Send one request; False if the broker could not be reached before ``deadline``,
        or was not there at all for ``connect_timeout`` (``nobody_for`` set; then nothing of
        it was processed), or (``same_connection``: a call pinned to a cursor or
        transaction) the connection ended (a stream; ZeroMQ cannot tell)."""
        raise NotImplementedError

    def wait_reply(self, exchange: Exchange) -> Any:
        """The reply to ``exchange`` (the one request in flight on this channel: a channel is
        used under its lock), or LOST; raises
        BrokerTimeout (``exchange.wait``) when none came in time."""
        raise NotImplementedError

    def drain(self) -> None:
        """Drop replies nobody waits for (earlier pings) without blocking."""
        raise NotImplementedError

    def receive(self, timeout: float) -> Any:
        """The next message whatever it answers (a subscription's channel: its events), None
        when nothing came within ``timeout``, or LOST when the connection ended."""
        raise NotImplementedError

    def retire(self) -> None:
        """The broker said it processes nothing more sent on this connection: the next
        request goes on a new one (to the next broker)."""
        raise NotImplementedError

    def told_to_go(self) -> bool:
        """Whether the broker said GOING_AWAY on this connection while it was idle (ZeroMQ:
        the next request goes on a new socket).  A stream's GOING_AWAY is its last message,
        read with the replies."""
        return False

    def ping_if_idle(self, interval: float) -> None:
        """Heartbeat: ping if nothing was sent for ``interval`` and nobody is using the socket."""
        now = time.monotonic()
        if now - self.last_activity < interval or not self.lock.acquire(blocking=False):
            return
        try:
            if not self.wants_ping(now, interval, os.getpid()):
                return
            self.drain()
            self.flush()
            frame = pack_request(next_request_id(), "ping", {}, deadline_ms(interval))
            try:
                self.send(frame, now)  # no waiting: if the broker is not reading, skip this one
            except (BrokerUnavailable, ParameterError):  # a refused socket directory
                return
            self.last_activity = now
        finally:
            self.lock.release()

    def close(self) -> None:
        self.closed = True
        self._finalizer()


class ZmqChannel(Channel):
    """A DEALER socket with IMMEDIATE=1: "not writable" means "no broker connection".  It
    connects on first send, once ``connect_dealer`` finds the endpoint safe."""

    __slots__ = ("connected", "curve", "endpoint", "going", "path")

    def __init__(self, sock: Any, endpoint: str,
                 curve: tuple[bytes, bytes, bytes] | None = None,
                 connect_timeout: float = core.DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(sock, connect_timeout)
        self.endpoint = endpoint
        self.path = socket_file(endpoint)  # None: no file to look at (tcp://, ipc://@name)
        self.curve = curve
        self.connected = False
        self.going = False  # the broker said GOING_AWAY: retire before the next request

    def flush(self) -> None:
        zmq = zmq_module()
        while self.deferred:
            try:
                self.sock.send(self.deferred[-1], zmq.NOBLOCK)
            except zmq.Again:
                return
            self.deferred.pop()

    def send(self, frame: bytes, deadline: float, same_connection: bool = False) -> bool:
        zmq = zmq_module()
        self.nobody_for = None
        if self.connected:  # the usual case: one send, no poll before it (see _zmq_flags)
            try:
                self.sock.send(frame, _zmq_flags().noblock)
            except zmq.Again:  # not writable: no broker connection (IMMEDIATE), see below
                pass
            else:
                self.last_activity = time.monotonic()
                return True
        connecting: core.Connecting | None = None  # while no broker connection is complete
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if not self.connected:
                self.connected = connect_dealer(self.sock, self.endpoint, self.curve)
                self.connection += self.connected
            if self.connected:
                wait = 0.0 if connecting is None else max(0.0, min(remaining, LIVENESS_SLICE))
                if self.sock.poll(int(wait * 1000), zmq.POLLOUT):
                    try:
                        self.sock.send(frame, zmq.NOBLOCK)
                    except zmq.Again:
                        continue
                    self.last_activity = time.monotonic()
                    return True
            # Not writable: no broker connection (IMMEDIATE).  Only now look at the file.
            if connecting is None:
                connecting = core.Connecting(now, self.connect_timeout)
            present = self.path is not None and os.path.exists(self.path)
            if connecting.gives_up(time.monotonic(), deadline, present):
                self.nobody_for = connecting.nobody_for
                return False
            if not self.connected:  # its directory does not exist yet: no broker
                time.sleep(max(0.0, min(remaining, LIVENESS_SLICE)))

    def wait_reply(self, exchange: Exchange) -> Any:
        """A blocking receive with RCVTIMEO (a slice at most) rather than a poll, then a
        receive: pyzmq's ``Socket.poll`` builds a Poller each time, and libzmq's zmq_poll
        makes more system calls than one blocking receive."""
        zmq = zmq_module()
        flags = _zmq_flags()
        sock = self.sock
        while True:
            wait = exchange.wait(time.monotonic())
            sock.setsockopt(flags.rcvtimeo, int(wait * 1000) + 1)
            try:
                message = sock.recv()
            except zmq.Again:  # the slice passed with nothing
                if not sock.getsockopt(flags.events) & flags.pollout:
                    return LOST
                continue
            reply = exchange.match(message)
            if reply is not None:
                return reply
            self._notice(message)

    def receive(self, timeout: float) -> Any:
        zmq = zmq_module()
        if self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            try:
                return self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return None
        if not self.sock.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
            return LOST
        return None

    def _notice(self, message: bytes) -> None:
        """A message nobody waits for: a GOING_AWAY marks the socket for retirement."""
        with contextlib.suppress(BrokerProtocolError):
            if is_going_away(unpack_reply(message)):
                self.going = True

    def drain(self) -> None:
        zmq = zmq_module()
        while True:
            try:
                message = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._notice(message)

    def told_to_go(self) -> bool:
        events, pollin = zmq_events()
        if self.connected and self.sock.getsockopt(events) & pollin:
            self.drain()
        return self.going

    def retire(self) -> None:
        # A new DEALER: the old one stays connected to the stopping broker (its socket file
        # is gone, so the new one connects to the next broker only).
        self._finalizer()
        self.sock = new_dealer(zmq_module().Context.instance())
        self.connected = self.going = False
        self._finalizer = weakref.finalize(self, _close_socket, self.sock, self.pid)


class StreamChannel(Channel):
    """A Unix stream connection, opened on demand; its end is the broker's end (no polling)."""

    __slots__ = ("path", "reader", "unread")

    def __init__(self, path: str, connect_timeout: float = core.DEFAULT_CONNECT_TIMEOUT) -> None:
        super().__init__(_SocketHolder(), connect_timeout)
        self.path = path
        self.reader = MessageReader()
        self.unread: list[bytes] = []  # replies received beyond the one awaited

    def _connect(self, deadline: float) -> bool:
        connecting = core.Connecting(time.monotonic(), self.connect_timeout)
        while True:
            check_socket_dir(self.path)  # raises if someone else could have put it there
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                # No file (or directory): nobody is there.  Refused or a full backlog: the
                # file is there, the broker restarting or socket activation holding it.
                present = exc.errno not in (errno.ENOENT, errno.ENOTDIR)
                delay = connecting.next_delay(time.monotonic(), deadline, present)
                if delay is None:
                    self.nobody_for = connecting.nobody_for
                    return False
                time.sleep(delay)  # the broker is not there (yet): it may be restarting
                continue
            # Blocking, with kernel timeouts: a send or receive is then one system call, and
            # a receive wakes every slice to check the request's deadline.
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(LIVENESS_SLICE))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(_SEND_STALL))
            self.sock.socket = sock
            self.reader = MessageReader()
            self.unread = []
            self.connection += 1
            return True

    def linked(self) -> bool:
        return self.sock.socket is not None

    def _drop(self) -> None:
        sock, self.sock.socket = self.sock.socket, None
        if sock is not None:
            sock.close()

    def flush(self) -> None:
        while self.deferred and self.sock.socket is not None:
            if not self.send(self.deferred[-1], time.monotonic()):
                return
            self.deferred.pop()

    def send(self, frame: bytes, deadline: float, same_connection: bool = False) -> bool:
        data = stream_frame(frame)
        self.nobody_for = None
        while True:
            if self.sock.socket is None and not self._connect(deadline):
                return False
            try:
                self.sock.socket.sendall(data)
            except OSError:
                # A broken or stalled stream holds at most part of this request, which the
                # broker drops with the connection: nothing of it was processed.
                self._drop()
                if same_connection or time.monotonic() >= deadline:
                    return False
                continue
            self.last_activity = time.monotonic()
            return True

    def wait_reply(self, exchange: Exchange) -> Any:
        while True:
            while self.unread:
                reply = exchange.match(self.unread.pop(0), going_away=True)
                if reply is not None:
                    return reply
            read = self._read()
            if read is LOST:
                return LOST
            if not read:  # a receive-timeout slice passed with nothing
                exchange.wait(time.monotonic())

    def receive(self, timeout: float) -> Any:
        end = time.monotonic() + timeout
        while not self.unread:
            read = self._read()
            if read is LOST:
                return LOST
            if not read and time.monotonic() >= end:
                return None
        return self.unread.pop(0)

    def _read(self) -> Any:
        """One receive (a receive-timeout slice at most): True when messages were read, False
        when the slice passed with nothing, LOST when the connection is gone."""
        sock = self.sock.socket
        if sock is None:
            return LOST
        try:
            data = sock.recv(_RECV_BYTES)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._drop()
            return LOST
        self.unread.extend(self.reader.feed(data))  # type: ignore[arg-type]
        return True

    def drain(self) -> None:
        sock = self.sock.socket
        while sock is not None:
            try:
                data = sock.recv(_RECV_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._drop()
                return
            self.reader.feed(data)
        self.unread = []

    def retire(self) -> None:
        self._drop()


@functools.cache
def zmq_events() -> tuple[int, int]:
    """(EVENTS, POLLIN) as plain ints: pyzmq converts its enums on every call (~6 us here),
    too much for a check before every request."""
    zmq = zmq_module()
    return int(zmq.EVENTS), int(zmq.POLLIN)


class _ZmqFlags:
    """pyzmq's flags and option names as plain ints (its enums are converted on every call)."""

    __slots__ = ("events", "noblock", "pollout", "rcvtimeo")

    def __init__(self, zmq: Any) -> None:
        self.noblock = int(zmq.NOBLOCK)
        self.events = int(zmq.EVENTS)
        self.pollout = int(zmq.POLLOUT)
        self.rcvtimeo = int(zmq.RCVTIMEO)


@functools.cache
def _zmq_flags() -> _ZmqFlags:
    return _ZmqFlags(zmq_module())


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


class _SocketHolder:
    """The stream channel's socket slot (None while disconnected), closable like a ZMQ socket."""

    __slots__ = ("socket",)

    def __init__(self) -> None:
        self.socket: socket.socket | None = None

    def close(self, linger: int = 0) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


def _close_socket(sock: Any, pid: int) -> None:
    if pid == os.getpid():  # a forked child never touches its parent's sockets
        sock.close(linger=0)


class Hold(core.Hold):
    """Pins a channel while a cursor or transaction lives on it; the heartbeat thread pings
    it while it is idle."""

    __slots__ = ("interval",)

    def __init__(self, channel: Channel, interval: float) -> None:
        self.interval = interval
        super().__init__(channel)

    def _first(self) -> None:
        from .heartbeat import heartbeat

        heartbeat().watch(self.channel, self.interval)

    def _last(self) -> None:
        from .heartbeat import heartbeat

        heartbeat().unwatch(self.channel)


class TransportBase:
    """What the blocking and the asyncio drivers share: settings, the owning process (and
    what to drop after a fork), and whether the broker is up (reported to the client's
    connection listeners on change)."""

    #: How the closed-client error tells to reopen it.
    _again = "call connect() again"

    def __init__(self, endpoint: str, *, timeout: float = 30.0, retries: int = 5,
                 connect_timeout: float = core.DEFAULT_CONNECT_TIMEOUT,
                 heartbeat_interval: float = 5.0,
                 on_lost: Callable[[str], None] | None = None,
                 on_restored: Callable[[], None] | None = None,
                 curve: dict[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        # tcp:// only: CURVE keys from the Client's kwargs or the environment, checked now.
        self.curve = curve_keys(curve) if endpoint.startswith("tcp://") else None
        self.timeout = timeout
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        # Weak: the client owns the transport; a strong reference back would make a cycle
        # that the garbage collector breaks in an order that leaks socket warnings.
        self._on_lost = _weak(on_lost)
        self._on_restored = _weak(on_restored)
        self._owner = core.Owner(os.getpid())
        self._closed = False
        self._link = core.Link()

    @property
    def _pid(self) -> int:
        return self._owner.pid

    def _checkpid(self) -> None:
        pid = os.getpid()
        if self._owner.pid != pid:
            with _fork_lock:
                if self._owner.forked(pid):
                    # The inherited sockets belong to the parent: drop them without closing
                    # (the child has no libzmq I/O threads) and start afresh.
                    self._forget_channels()
                    self._link.forget()

    def _forget_channels(self) -> None:
        raise NotImplementedError

    def _set_up(self, up: bool, reason: str = "") -> None:
        if not self._link.change(up):
            return
        callback = (self._on_restored if up else self._on_lost)()
        if callback is not None:
            callback() if up else callback(reason)

    def channel(self) -> Any:
        raise NotImplementedError

    def _pinned_channel(self, call: Call) -> Any:
        """The channel of the cursor or transaction ``call`` is pinned to, when the core's
        ownership rules allow (a call without one goes on this thread's or loop's)."""
        chan = call.hold.channel
        refusal = self._pinned_refusal(call, chan)
        if refusal is not None:
            raise refusal
        return chan

    def _pinned_refusal(self, call: Call, chan: Any) -> Exception | None:
        return core.pinned_refusal(call, chan, os.getpid())


class Transport(TransportBase):
    """Thread-safe and fork-safe request/reply: every (pid, thread) gets its own channel."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._local = threading.local()
        self._channels: weakref.WeakSet[Channel] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (f"<Transport {self.endpoint} pid={self._pid} channels={len(self._channels)} "
                f"{self._link.describe(self._closed)}>")

    # -- channels ---------------------------------------------------------------------------

    def _forget_channels(self) -> None:
        self._local = threading.local()
        self._channels = weakref.WeakSet()

    def channel(self) -> Channel:
        """This thread's channel in this process, opened on first use."""
        self._checkpid()
        chan = getattr(self._local, "chan", None)
        if chan is None or chan.closed:
            if self._closed:
                raise closed_error(self._again)
            chan = self._open_channel()
            self._local.chan = chan
            self._channels.add(chan)
        return chan

    def _open_channel(self) -> Channel:
        if is_stream_endpoint(self.endpoint):
            return StreamChannel(stream_path(self.endpoint), self.connect_timeout)
        sock = new_dealer(zmq_module().Context.instance())
        # Connects on first send.
        return ZmqChannel(sock, self.endpoint, self.curve, self.connect_timeout)

    def hold(self) -> Hold:
        return Hold(self.channel(), self.heartbeat_interval)

    def new_channel(self) -> Channel:
        """A channel of its own (a continuous-query subscription's), outside the per-thread
        ones: the caller drives it and closes it."""
        self._checkpid()
        if self._closed:
            raise closed_error(self._again)
        return self._open_channel()

    def request_on(self, chan: Channel, call: Call, deadline: float) -> Any:
        """``request`` on ``chan`` (from ``new_channel``)."""
        now = time.monotonic()
        exchange = Exchange(call, self.endpoint, now, deadline, self.retries)
        with chan.lock:
            return self._drive(chan, exchange)

    def close(self) -> None:
        self._checkpid()
        self._closed = True
        for chan in list(self._channels):
            # Wait (briefly) for a request in flight on another thread to finish with it.
            if chan.lock.acquire(timeout=1.0):
                try:
                    chan.close()
                finally:
                    chan.lock.release()
        self._forget_channels()

    # -- request/reply ----------------------------------------------------------------------

    def call(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None,
             idempotent: bool = True) -> Any:
        """One request by op name (a convenience for tools and tests)."""
        budget = self.timeout if timeout is None else timeout
        return self.request(Call(op, args, idempotent=idempotent),
                            time.monotonic() + budget)

    def request(self, call: Call, deadline: float | None = None) -> Any:
        """Send ``call`` and return its result, or raise the mapped exception."""
        # The hot path: keep it free of calls that are not needed.
        chan = self.channel() if call.hold is None else self._pinned_channel(call)
        now = time.monotonic()
        exchange = Exchange(call, self.endpoint, now,
                            now + self.timeout if deadline is None else deadline, self.retries)
        while True:
            with chan.lock:
                if chan.closed:
                    raise closed_error(self._again)
                if chan.deferred:
                    chan.flush()
                result = self._drive(chan, exchange)
            if result is not _MOVE_ON:
                return result
            chan = self._next_channel(chan)
            if call.hold is not None:  # the opening call of a cursor or transaction
                call.hold.move_to(chan)

    def _next_channel(self, chan: Channel) -> Channel:
        """A stopping broker serves ``chan`` only for its open transactions and cursors (its
        holds): this thread's other requests go on a new channel from now on, while those
        pinned to ``chan`` stay on it until they end."""
        if getattr(self._local, "chan", None) is chan:  # this thread's: open another
            self._local.chan = None
        return self.channel()

    def _retire(self, chan: Channel) -> bool:
        """The broker on ``chan`` processes no new request: False when ``chan`` can go on to
        the next broker itself; True when it holds what lives with that broker (the
        request moves to another channel: ``_next_channel``)."""
        with _holds_lock:
            if chan.holds:
                return True
        chan.retire()
        return False

    def _drive(self, chan: Channel, exchange: Exchange) -> Any:
        """One channel's part of a request: its result, or _MOVE_ON (the request goes on
        another channel: this one's broker is stopping and holds a transaction or cursor)."""
        while True:
            if not pinned(exchange.call) and chan.told_to_go() and self._retire(chan):
                return _MOVE_ON  # a stopping broker: send to the next one
            exchange.check_hold(chan)  # raises if its cursor/transaction's connection ended
            if not chan.send(exchange.frame, exchange.deadline, pinned(exchange.call)):
                exchange.check_hold(chan)  # its connection ended as it was sent: raises
                exchange.not_sent(chan.nobody_for)
            exchange.sent()
            reply = chan.wait_reply(exchange)
            if reply is LOST:
                self._set_up(False, f"the broker went away during {exchange.call.op}")
                exchange.connection_lost()  # raises unless it may be re-sent
                continue
            if not_processed(reply):  # the broker is stopping: to the next one
                exchange.not_processed()  # raises for a call pinned to a cursor/transaction
                moving = self._retire(chan)
                time.sleep(exchange.resend_delay(time.monotonic()))
                if moving:
                    return _MOVE_ON
                continue
            self._set_up(True)
            return exchange.reply_received(reply, chan.connection)


def _weak(method: Callable[..., None] | None) -> Callable[[], Callable[..., None] | None]:
    if method is None:
        return lambda: None
    if hasattr(method, "__self__"):
        return weakref.WeakMethod(method)
    return lambda: method


__all__ = ["GRACE", "LOST", "CacheError", "Channel", "Hold", "StreamChannel", "Transport",
           "ZmqChannel", "check_socket_dir", "curve_keys", "socket_dir_refusal", "zmq_module"]
