"""Blocking request/reply with the broker for the sync Client.

One connection (a *channel*) per process and thread, created on first use: a ZeroMQ DEALER
socket for ``ipc://`` and ``tcp://`` endpoints, a Unix stream socket for ``unix://`` ones.
Every object holding a socket records its pid and checks it on entry (redis-py's fork rule):
a child never touches its parent's sockets and opens its own.  A channel is only ever used
under its lock, so a cursor or transaction opened on it can be driven from any thread, and the
heartbeat can ping it while it is idle.

Sockets use ``IMMEDIATE=1``: a request is only queued once a connection to the broker is
complete, so "the broker is not there" means "nothing was sent", and a connection that breaks
while a reply is awaited (``POLLOUT`` disappears) means the broker went away with the request.
Idempotent requests are then re-sent when it is back, within their deadline; anything else
fails with ``BrokerUnavailable`` saying whether a write may have been applied (zguide Lazy
Pirate, with disconnect detection instead of blind retries).  A stream channel needs no such
care: a failed connect or write means nothing was processed, and end-of-file while a reply is
awaited means the broker went away with the request.

Before connecting to a socket file (ipc://, unix://) the stub checks its directory
(``check_socket_dir``, docs/ipc.md "Access control"): one ``os.stat`` per connect, two when the
directory belongs to another user.  tcp:// connects with CURVE keys (``curve_keys``).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
import weakref

from protocol.ipcstream import MessageReader, is_stream_endpoint, stream_path
from protocol.ipcstream import frame as stream_frame

from .calls import Call
from .envelope import (
    deadline_ms,
    next_request_id,
    pack_request,
    result_of,
    routing_id,
    unpack_reply,
)
from .exceptions import (
    BrokerTimeout,
    BrokerUnavailable,
    CacheError,
    ParameterError,
    ReconnectError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: After its deadline, how long a request still waits for the broker's own DEADLINE_EXCEEDED.
GRACE = 0.5
#: How often a waiting request checks that the broker connection is still there.
_LIVENESS_SLICE = 0.1
#: Bytes asked of the kernel per recv on a stream channel.
_RECV_BYTES = 1 << 18
#: A stream send blocked this long means the broker stopped reading: the connection is dropped.
_SEND_STALL = 5.0

#: CURVE keys for tcp:// endpoints (40-char Z85 each), when not given to the Client.
ENV_CURVE_SERVERKEY = "IGNITE_BROKER_CURVE_SERVERKEY"
ENV_CURVE_PUBLICKEY = "IGNITE_BROKER_CURVE_PUBLICKEY"
ENV_CURVE_SECRETKEY = "IGNITE_BROKER_CURVE_SECRETKEY"
CURVE_KWARGS = ("curve_serverkey", "curve_publickey", "curve_secretkey")
_CURVE_ENV = dict(zip(CURVE_KWARGS, (ENV_CURVE_SERVERKEY, ENV_CURVE_PUBLICKEY,
                                     ENV_CURVE_SECRETKEY), strict=True))

_zmq: Any = None
_fork_lock = threading.Lock()
# Re-entrant: cursor finalizers release holds from whatever thread the GC runs in, possibly
# one that is inside this lock already.
_holds_lock = threading.RLock()


def zmq_module() -> Any:
    """pyzmq, imported on first use (it costs ~20 ms)."""
    global _zmq
    if _zmq is None:
        import zmq

        _zmq = zmq
    return _zmq


def _after_fork_in_child() -> None:
    # Locks copied while another thread held them would stay locked forever in the child.
    global _fork_lock, _holds_lock
    _fork_lock = threading.Lock()
    _holds_lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Outcome:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


LOST = _Outcome("lost")
TIMEOUT = _Outcome("timeout")


def endpoint_hint(endpoint: str) -> str:
    """Why an ipc:// or unix:// endpoint may be unreachable, when the filesystem can tell."""
    scheme = next((s for s in ("ipc://", "unix://") if endpoint.startswith(s)), None)
    if scheme is None or endpoint.startswith("ipc://@"):
        return ""
    path = endpoint[len(scheme):]
    if not os.path.exists(path):
        return f" (no socket file at {path}: is ignite-broker running?)"
    if not os.access(path, os.W_OK):
        return (f" (no permission on {path}: is this user in the broker's group?)")
    return ""


# -- access: the socket directory, CURVE ----------------------------------------------------

def socket_dir_refusal(directory: str, st_uid: int, st_mode: int, my_uid: int,
                       parent_mode: Callable[[], int | None]) -> str | None:
    """Why a socket in ``directory`` (owner ``st_uid``, mode ``st_mode``) may not be the
    broker's, or None.  Refused: a directory every user may write (anyone could have put the
    socket there), and one owned by a user other than root or ourselves that sits in a
    directory every user may write (/tmp): anyone could have created it.  Another user's
    directory elsewhere (systemd's /run/ignite-broker, owned by the service user in root's
    /run) is the normal case.  ``parent_mode()`` is asked only then; None means unknown."""
    mode = stat.S_IMODE(st_mode)
    if st_mode & stat.S_IWOTH:
        return (f"{directory} (mode {mode:04o}) is writable by every user: anyone could have "
                "put the socket there")
    if st_uid in (0, my_uid):
        return None
    pmode = parent_mode()
    if pmode is None or pmode & stat.S_IWOTH:
        parent = os.path.dirname(os.path.abspath(directory)) or "/"
        return (f"{directory} belongs to uid {st_uid}, another user, and {parent} lets every "
                "user create directories: anyone could have made it (use the broker's "
                "XDG_RUNTIME_DIR or /run/ignite-broker)")
    return None


def check_socket_dir(path: str) -> bool:
    """Refuse (BrokerUnavailable, nothing sent) to connect to socket file ``path`` when its
    directory fails ``socket_dir_refusal``; False when the directory does not exist (no
    broker there yet), True when it passed."""
    directory = os.path.dirname(path) or "."
    try:
        st = os.stat(directory)
    except OSError:
        return False

    def parent_mode() -> int | None:
        try:
            return os.stat(os.path.dirname(os.path.abspath(directory)) or "/").st_mode
        except OSError:
            return None

    why = socket_dir_refusal(directory, st.st_uid, st.st_mode, os.geteuid(), parent_mode)
    if why is not None:
        raise BrokerUnavailable(f"refusing to connect to {path}: {why}", maybe_applied=False)
    return True


def socket_file(endpoint: str) -> str | None:
    """The socket file of an ipc:// or unix:// endpoint (None for tcp:// and abstract names)."""
    for scheme in ("ipc://", "unix://"):
        if endpoint.startswith(scheme) and not endpoint.startswith(scheme + "@"):
            return endpoint[len(scheme):]
    return None


def curve_keys(given: dict[str, Any] | None = None,
               environ: Any = os.environ) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) for tcp://: Client kwargs
    ``curve_serverkey``/``curve_publickey``/``curve_secretkey``, else $IGNITE_BROKER_CURVE_*;
    None when none is set.  A secret key is never echoed."""
    given = given or {}
    values = [given.get(name) or environ.get(_CURVE_ENV[name]) for name in CURVE_KWARGS]
    if not any(values):
        return None
    keys = []
    for name, value in zip(CURVE_KWARGS, values, strict=True):
        if isinstance(value, str):
            value = value.encode("ascii", "replace")
        if not isinstance(value, bytes) or len(value) != 40:
            raise ParameterError(
                f"{name} (or ${_CURVE_ENV[name]}) must be a 40-character Z85 CURVE key "
                "(ignite-broker keygen prints a pair); all three are needed for tcp://")
        keys.append(value)
    return keys[0], keys[1], keys[2]


def connect_dealer(sock: Any, endpoint: str, curve: tuple[bytes, bytes, bytes] | None) -> bool:
    """Connect a DEALER to ``endpoint`` once it is safe: a socket file's directory must exist
    and pass ``check_socket_dir`` (False while it does not exist); tcp:// needs CURVE keys."""
    zmq = zmq_module()
    path = socket_file(endpoint)
    if path is not None and not check_socket_dir(path):
        return False
    if endpoint.startswith("tcp://"):
        if curve is None:
            raise ParameterError(
                f"{endpoint}: the broker serves tcp:// only to CURVE clients; set "
                f"${ENV_CURVE_SERVERKEY} (the broker's public key), ${ENV_CURVE_PUBLICKEY} and "
                f"${ENV_CURVE_SECRETKEY} (this worker's pair, its public key listed in the "
                "broker's broker.curve_client_keys), or the Client kwargs curve_serverkey, "
                "curve_publickey, curve_secretkey")
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve[0])
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve[1])
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve[2])
    sock.connect(endpoint)
    return True


def not_sent_error(endpoint: str, call: Call, budget: float) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no broker reachable at {endpoint} within {budget:.1f}s{endpoint_hint(endpoint)}; "
        f"{call.op} was not sent", maybe_applied=False)


def lost_error(endpoint: str, call: Call, resends: int) -> BrokerUnavailable:
    if call.idempotent:
        return BrokerUnavailable(
            f"the broker at {endpoint} went away during {call.op} (re-sent {resends} times); "
            "it is a read, nothing was changed", maybe_applied=None)
    return BrokerUnavailable(
        f"the broker at {endpoint} went away after {call.op} was sent: "
        "the write may have been applied", maybe_applied=True)


def timeout_error(endpoint: str, call: Call, budget: float) -> BrokerTimeout:
    tail = "" if call.idempotent else ": the write may have been applied"
    return BrokerTimeout(f"no reply from the broker at {endpoint} to {call.op} within "
                         f"{budget:.1f}s{tail}", maybe_applied=None if call.idempotent else True)


class Channel:
    """One connection to the broker and what is pinned to it (cursors, transactions).
    Subclasses own the socket: ZeroMQ DEALER (ipc://, tcp://) or Unix stream (unix://)."""

    __slots__ = ("__weakref__", "_finalizer", "closed", "holds", "last_activity", "lock",
                 "pending", "pid", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.pid = os.getpid()
        # A thread's channel goes when its thread does (thread-local): its socket closes then.
        # A finalizer (not __del__) so it runs before pyzmq's own "unclosed socket" __del__.
        self._finalizer = weakref.finalize(self, _close_socket, sock, self.pid)
        self.last_activity = time.monotonic()
        self.holds = 0
        self.pending: list[bytes] = []  # fire-and-forget frames (closes of abandoned cursors)
        self.closed = False

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} pid={self.pid} holds={self.holds} "
                f"closed={self.closed}>")

    # What a transport needs of a channel; call with the lock held.

    def flush(self) -> None:
        """Send deferred frames.  Their replies are dropped by id."""
        raise NotImplementedError

    def send(self, frame: bytes, deadline: float) -> bool:
        """Send one request; False if the broker could not be reached before ``deadline``
        (then nothing of it was processed)."""
        raise NotImplementedError

    def wait_reply(self, request_id: int, end: float) -> Any:
        """The reply to ``request_id``, or LOST (the broker went away), or TIMEOUT."""
        raise NotImplementedError

    def drain(self) -> None:
        """Drop replies nobody waits for (earlier pings) without blocking."""
        raise NotImplementedError

    def ping_if_idle(self, interval: float) -> None:
        """Heartbeat: ping if nothing was sent for ``interval`` and nobody is using the socket."""
        now = time.monotonic()
        if now - self.last_activity < interval or not self.lock.acquire(blocking=False):
            return
        try:
            if self.closed or self.pid != os.getpid():
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

    __slots__ = ("connected", "curve", "endpoint")

    def __init__(self, sock: Any, endpoint: str,
                 curve: tuple[bytes, bytes, bytes] | None = None) -> None:
        super().__init__(sock)
        self.endpoint = endpoint
        self.curve = curve
        self.connected = False

    def flush(self) -> None:
        zmq = zmq_module()
        while self.pending:
            try:
                self.sock.send(self.pending[-1], zmq.NOBLOCK)
            except zmq.Again:
                return
            self.pending.pop()

    def send(self, frame: bytes, deadline: float) -> bool:
        zmq = zmq_module()
        while True:
            remaining = deadline - time.monotonic()
            if not self.connected:
                self.connected = connect_dealer(self.sock, self.endpoint, self.curve)
                if not self.connected:  # its directory does not exist yet: no broker
                    if remaining <= 0:
                        return False
                    time.sleep(min(remaining, _LIVENESS_SLICE))
                    continue
            if self.sock.poll(int(max(0.0, min(remaining, 0.25)) * 1000), zmq.POLLOUT):
                try:
                    self.sock.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    continue
                self.last_activity = time.monotonic()
                return True
            if remaining <= 0:
                return False

    def wait_reply(self, request_id: int, end: float) -> Any:
        zmq = zmq_module()
        sock = self.sock
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return TIMEOUT
            if sock.poll(int(min(remaining, _LIVENESS_SLICE) * 1000) + 1, zmq.POLLIN):
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    reply = unpack_reply(frame)
                    if reply.request_id == request_id:
                        return reply
                    # else: a reply nobody waits for any more (a ping, an abandoned request)
            elif not sock.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
                return LOST

    def drain(self) -> None:
        zmq = zmq_module()
        while True:
            try:
                self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return


class StreamChannel(Channel):
    """A Unix stream connection, opened on demand; its end is the broker's end (no polling)."""

    __slots__ = ("path", "reader", "unread")

    def __init__(self, path: str) -> None:
        super().__init__(_SocketHolder())
        self.path = path
        self.reader = MessageReader()
        self.unread: list[bytes] = []  # replies received beyond the one awaited

    def _connect(self, deadline: float) -> bool:
        delay = 0.005
        while True:
            check_socket_dir(self.path)  # raises if someone else could have put it there
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(self.path)
            except OSError:
                sock.close()
                if time.monotonic() + delay >= deadline:
                    return False
                time.sleep(delay)  # the broker is not there (yet): it may be restarting
                delay = min(delay * 2, 0.25)
                continue
            # Blocking, with kernel timeouts: a send or receive is then one system call, and
            # a receive wakes every slice to check the request's deadline.
            sock.settimeout(None)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_LIVENESS_SLICE))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(_SEND_STALL))
            self.sock.socket = sock
            self.reader = MessageReader()
            self.unread = []
            return True

    def _drop(self) -> None:
        sock, self.sock.socket = self.sock.socket, None
        if sock is not None:
            sock.close()

    def flush(self) -> None:
        while self.pending and self.sock.socket is not None:
            if not self.send(self.pending[-1], time.monotonic()):
                return
            self.pending.pop()

    def send(self, frame: bytes, deadline: float) -> bool:
        data = stream_frame(frame)
        while True:
            if self.sock.socket is None and not self._connect(deadline):
                return False
            try:
                self.sock.socket.sendall(data)  # type: ignore[union-attr]
            except OSError:
                # A broken or stalled stream holds at most part of this request, which the
                # broker drops with the connection: nothing of it was processed.
                self._drop()
                if time.monotonic() >= deadline:
                    return False
                continue
            self.last_activity = time.monotonic()
            return True

    def wait_reply(self, request_id: int, end: float) -> Any:
        while True:
            while self.unread:
                reply = unpack_reply(self.unread.pop(0))
                if reply.request_id == request_id:
                    return reply
            sock = self.sock.socket
            if sock is None:
                return LOST
            try:
                data = sock.recv(_RECV_BYTES)
            except BlockingIOError:  # a receive-timeout slice passed with nothing
                if time.monotonic() >= end:
                    return TIMEOUT
                continue
            except OSError:
                data = b""
            if not data:
                self._drop()
                return LOST
            self.unread.extend(self.reader.feed(data))  # type: ignore[arg-type]

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


class Hold:
    """Pins a channel while a cursor or transaction lives on it, and keeps it pinged."""

    __slots__ = ("__weakref__", "channel", "interval", "released")

    def __init__(self, channel: Channel, interval: float) -> None:
        self.channel = channel
        self.interval = interval
        self.released = False
        with _holds_lock:
            channel.holds += 1
            first = channel.holds == 1
        if first:
            from .heartbeat import heartbeat

            heartbeat().watch(channel, interval)

    def defer(self, op: str, args: dict[str, Any]) -> None:
        """Queue a fire-and-forget request, sent with the channel's next traffic."""
        frame = pack_request(next_request_id(), op, args, deadline_ms(30.0))
        self.channel.pending.append(frame)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with _holds_lock:
            self.channel.holds -= 1
            last = self.channel.holds == 0
        if last:
            from .heartbeat import heartbeat

            heartbeat().unwatch(self.channel)


class TransportBase:
    """What the blocking and the asyncio transports share: settings, the owning pid, and
    whether the broker is up (reported to the client's connection listeners on change)."""

    def __init__(self, endpoint: str, *, timeout: float = 30.0, retries: int = 5,
                 heartbeat_interval: float = 5.0,
                 on_lost: Callable[[str], None] | None = None,
                 on_restored: Callable[[], None] | None = None,
                 curve: dict[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        # tcp:// only: CURVE keys from the Client's kwargs or the environment, checked now.
        self.curve = curve_keys(curve) if endpoint.startswith("tcp://") else None
        self.timeout = timeout
        self.retries = retries
        self.heartbeat_interval = heartbeat_interval
        # Weak: the client owns the transport; a strong reference back would make a cycle
        # that the garbage collector breaks in an order that leaks socket warnings.
        self._on_lost = _weak(on_lost)
        self._on_restored = _weak(on_restored)
        self._pid = os.getpid()
        self._closed = False
        self._up: bool | None = None

    def _set_up(self, up: bool, reason: str = "") -> None:
        was, self._up = self._up, up
        if was is None or was == up:
            return
        callback = (self._on_restored if up else self._on_lost)()
        if callback is not None:
            callback() if up else callback(reason)


class Transport(TransportBase):
    """Thread-safe and fork-safe request/reply: every (pid, thread) gets its own channel."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._local = threading.local()
        self._channels: weakref.WeakSet[Channel] = weakref.WeakSet()

    def __repr__(self) -> str:
        state = "closed" if self._closed else {None: "new", True: "up", False: "lost"}[self._up]
        return (f"<Transport {self.endpoint} pid={self._pid} channels={len(self._channels)} "
                f"{state}>")

    # -- channels ---------------------------------------------------------------------------

    def _checkpid(self) -> None:
        if self._pid != os.getpid():
            with _fork_lock:
                if self._pid != os.getpid():
                    # The inherited sockets belong to the parent: drop them without closing
                    # (the child has no libzmq I/O threads) and start afresh.
                    self._local = threading.local()
                    self._channels = weakref.WeakSet()
                    self._pid = os.getpid()
                    self._up = None

    def channel(self) -> Channel:
        """This thread's channel in this process, opened on first use."""
        self._checkpid()
        chan = getattr(self._local, "chan", None)
        if chan is None or chan.closed:
            if self._closed:
                raise ReconnectError("the client is closed: call connect() again")
            chan = self._open_channel()
            self._local.chan = chan
            self._channels.add(chan)
        return chan

    def _open_channel(self) -> Channel:
        if is_stream_endpoint(self.endpoint):
            return StreamChannel(stream_path(self.endpoint))
        zmq = zmq_module()
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.ROUTING_ID, routing_id())
        return ZmqChannel(sock, self.endpoint, self.curve)  # connects on first send

    def hold(self) -> Hold:
        return Hold(self.channel(), self.heartbeat_interval)

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
        self._channels = weakref.WeakSet()
        self._local = threading.local()

    # -- request/reply ----------------------------------------------------------------------

    def call(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None,
             idempotent: bool = True) -> Any:
        """One request by op name (a convenience for tools and tests)."""
        budget = self.timeout if timeout is None else timeout
        return self.request(Call(op, args, idempotent=idempotent),
                            time.monotonic() + budget)

    def request(self, call: Call, deadline: float | None = None) -> Any:
        """Send ``call`` and return its result, or raise the mapped exception."""
        if call.hold is not None:
            chan = call.hold.channel
            if chan.pid != os.getpid():
                raise call.error(f"{call.op}: this cursor or transaction belongs to process "
                                 f"{chan.pid}; it does not survive fork()")
            if chan.closed:
                raise call.error(f"{call.op}: the client that opened this cursor or "
                                 "transaction is closed")
        else:
            chan = self.channel()
        now = time.monotonic()
        if deadline is None:
            deadline = now + self.timeout
        request_id = next_request_id()
        frame = pack_request(request_id, call.op, call.args, deadline_ms(deadline - now))
        with chan.lock:
            if chan.closed:
                raise ReconnectError("the client is closed: call connect() again")
            chan.flush()
            return self._exchange(chan, frame, request_id, call, now, deadline)

    def _exchange(self, chan: Channel, frame: bytes, request_id: int, call: Call, start: float,
                  deadline: float) -> Any:
        resends = 0
        while True:
            if not chan.send(frame, deadline):
                raise not_sent_error(self.endpoint, call, deadline - start)
            outcome = chan.wait_reply(request_id, deadline + GRACE)
            if outcome is LOST:
                self._set_up(False, f"the broker went away during {call.op}")
                if call.idempotent and resends < self.retries:
                    resends += 1
                    continue
                raise lost_error(self.endpoint, call, resends)
            if outcome is TIMEOUT:
                raise timeout_error(self.endpoint, call, deadline - start)
            self._set_up(True)
            return result_of(outcome, call)


def _weak(method: Callable[..., None] | None) -> Callable[[], Callable[..., None] | None]:
    if method is None:
        return lambda: None
    if hasattr(method, "__self__"):
        return weakref.WeakMethod(method)  # type: ignore[arg-type]
    return lambda: method


__all__ = ["GRACE", "LOST", "TIMEOUT", "CacheError", "Channel", "Hold", "StreamChannel",
           "Transport", "ZmqChannel", "check_socket_dir", "curve_keys", "socket_dir_refusal"]
