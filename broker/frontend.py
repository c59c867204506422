"""The worker-facing sockets: the ZeroMQ ROUTER (ipc://, tcp://) and the Unix stream listener
(unix://); reads and validates requests, hands them to the dispatcher and routes each reply back
to the worker that asked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from protocol.ipc import (
    IpcError,
    NestingTooDeep,
    Request,
    Status,
    UnsupportedVersion,
    error_payload,
)
from protocol.ipc import pack_reply as _pack_reply
from protocol.ipc import unpack_request as _unpack_request
from protocol.ipcstream import MessageReader, Oversized, frame, is_stream_endpoint, stream_path

from . import log
from .access import Access, PeerPolicy, ensure_socket_dir, peer_credentials
from .budget import TRACKED_BYTES, MemoryBudget
from .errors import MAX_ERROR_MESSAGE, ConfigError, clip
from .nodeconn import WriteBatch

_log = log.get("frontend")
_rejected_log = log.Throttle()
_failure_log = log.Throttle()
_refused_log = log.Throttle()
_monotonic = time.monotonic

#: Messages handled per wake-up before yielding to node I/O (fairness between the two sides).
_READ_BATCH = 256
# Plain ints: pyzmq converts enum flags on every call, which shows in profiles.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
#: Stream workers: reading pauses while this many reply bytes wait for the worker to read them.
_STREAM_WRITE_HIGH = 4 * 1024 * 1024
#: Identities of stream workers start with a zero byte, so each connection is its own session.
_STREAM_IDENTITY_PREFIX = b"\x00stream"

ReplyTo = Callable[[int, int, Any], None]  # (request id, status, payload)


class Frontend:
    """Owns the ROUTER socket, the stream listeners and their socket files."""

    def __init__(
        self,
        context: zmq.Context,
        endpoints: list[str],
        dispatch: Callable[[bytes, Request, ReplyTo], None],
        *,
        max_request_bytes: int,
        socket_mode: int,
        batch: WriteBatch | None = None,
        on_disconnect: Callable[[bytes], None] | None = None,
        stream_window: int = 1024,
        reply_batch: WriteBatch | None = None,
        budget: MemoryBudget | None = None,
        max_workers: int = 4096,
        access: Access | None = None,
    ) -> None:
        self.access = access or Access(PeerPolicy())  # peer checks, CURVE, ZAP domains
        self._endpoints = [e for e in endpoints if not is_stream_endpoint(e)]
        self._stream_paths = [stream_path(e) for e in endpoints if is_stream_endpoint(e)]
        self._dispatch = dispatch
        self._on_disconnect = on_disconnect
        self.stream_window = stream_window  # requests of one stream worker in the broker
        self.max_request_bytes = max_request_bytes
        self._socket_mode = socket_mode
        self.batch = batch or WriteBatch()
        self.reply_batch = reply_batch or WriteBatch()  # stream replies, flushed per batch
        self.budget = budget or MemoryBudget(1 << 62, 1 << 62)
        self.budget.on_exhausted = self._pause_all_streams
        self.max_workers = max_workers  # stream connections at once
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Per peer: replies held for a worker that does not read them (refusals included),
        # and requests libzmq holds before the broker reads them (beyond, the worker waits).
        hwm = max(2 * stream_window, 1000)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        # libzmq cuts a peer whose single frame exceeds this; below it we answer TOO_LARGE.
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_request_bytes * 4)
        self._listeners: list[socket.socket] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._streams: set[StreamWorker] = set()
        self._stream_numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_scheduled = False
        self.accepting = True
        self.replies_dropped = 0
        self.requests_rejected = 0
        self.connections_refused = 0  # stream connections over max_workers
        self.stalled_closed = 0  # stream connections closed for sending half a request
        self.internal_errors = 0  # requests that reached the last-resort handler in serve
        self.requests = 0

    def bind(self) -> None:
        # Local endpoints first: libzmq copies the security options into each listener at
        # bind time, and tcp:// turns CURVE on.
        for endpoint in sorted(self._endpoints, key=lambda e: e.startswith("tcp://")):
            if endpoint.startswith("ipc://"):
                _prepare_ipc_dir(endpoint[len("ipc://"):])
            self.access.prepare_bind(self._sock, endpoint)
            try:
                self._sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ConfigError(f"cannot bind {endpoint}: {exc}") from exc
            if endpoint.startswith("ipc://"):
                os.chmod(endpoint[len("ipc://"):], self._socket_mode)
            _log.info("listening", endpoint=endpoint)
        for path in self._stream_paths:
            self._listeners.append(_listen_unix(path, self._socket_mode))
            _log.info("listening", endpoint=f"unix://{path}")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.getsockopt(zmq.FD), self._on_readable)
        self._schedule_read()
        for listener in self._listeners:
            self._servers.append(
                await self._loop.create_unix_server(self._new_stream_worker, sock=listener))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
        self._sock.close(linger=0)
        for server in self._servers:
            server.close()
        for worker in list(self._streams):
            worker.transport.abort()
        for endpoint in self._endpoints:
            if endpoint.startswith("ipc://"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(endpoint[len("ipc://"):])
        for path in self._stream_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def stop_accepting(self) -> None:
        """Shutdown: ZeroMQ requests are answered "shutting down"; stream workers are no
        longer read (their requests stay unread, and the end of the connection tells the stub
        to re-send reads to the next broker), and no new stream connection is accepted."""
        self.accepting = False
        for server in self._servers:
            server.close()
        for worker in self._streams:
            worker.stop_reading()

    @property
    def stream_workers(self) -> int:
        return len(self._streams)

    # -- requests, whatever socket they came on -----------------------------------------------

    def serve(self, identity: bytes, message: bytes, reply: ReplyTo) -> None:
        """Validate one request message and dispatch it; every outcome answers via ``reply``."""
        self.requests += 1
        try:
            if len(message) > self.max_request_bytes:
                raise _too_large(len(message), self.max_request_bytes)
            request = _unpack_request(message)
        except IpcError as exc:
            self.reject(identity, exc, reply)
            return
        if len(message) >= TRACKED_BYTES:
            self.budget.take_request(identity, request.request_id, len(message))
        if not self.accepting:
            reply(request.request_id, Status.CLUSTER_UNAVAILABLE,
                  error_payload("shutting_down", "the broker is shutting down",
                                maybe_applied=False))
            return
        if request.deadline_ms and request.deadline_ms < time.time() * 1000:
            reply(request.request_id, Status.DEADLINE_EXCEEDED,
                  error_payload("deadline_exceeded", "the request's deadline passed before "
                                "the broker could send it", maybe_applied=False))
            return
        try:
            self._dispatch(identity, request, reply)
        except Exception as exc:  # dispatch answers its own failures; this is the last resort
            self.internal_errors += 1
            if (held := _failure_log.allow()) is not None:
                _log.error("dispatch_failed", exc_info=exc, suppressed=held)
            reply(request.request_id, Status.INTERNAL,
                  error_payload("internal", "broker error: the broker logged it"))

    def reject(self, identity: bytes, exc: IpcError, reply: ReplyTo) -> None:
        self.requests_rejected += 1
        status = Status.BAD_REQUEST
        request_id = 0
        if isinstance(exc, UnsupportedVersion):
            status, request_id = Status.UNSUPPORTED_VERSION, exc.request_id
        elif isinstance(exc, _TooLarge):
            status = Status.TOO_LARGE
        message = clip(str(exc))
        if (held := _rejected_log.allow()) is not None:
            _log.info("request_rejected", worker=identity.hex(), reason=message, suppressed=held)
        reply(request_id, status, error_payload("bad_request", message))

    # -- ZeroMQ ---------------------------------------------------------------------------------

    def _schedule_read(self) -> None:
        # The ZMQ fd is edge-triggered: any send may consume the edge, so re-check after sends.
        if not self._read_scheduled and self._loop is not None:
            self._read_scheduled = True
            self._loop.call_soon(self._on_readable)

    def _on_readable(self) -> None:
        self._read_scheduled = False
        sock = self._sock
        self.batch.begin()
        try:
            for _ in range(_READ_BATCH):
                try:
                    identity = sock.recv(_NOBLOCK)
                except zmq.Again:
                    return
                frames = [identity, sock.recv(_NOBLOCK)]  # a ROUTER always adds the identity
                while sock.getsockopt(_RCVMORE):
                    frames.append(sock.recv(_NOBLOCK))
                self._handle(frames)
            self._schedule_read()
        finally:
            self.batch.end()  # one write per node connection for the whole batch

    def _handle(self, frames: list[bytes]) -> None:
        identity = frames[0]

        def reply(request_id: int, status: int, payload: Any) -> None:
            self.reply(identity, request_id, status, payload)

        if len(frames) != 2:
            self.requests += 1
            self.reject(identity, IpcError(
                f"a request is exactly one frame, got {len(frames) - 1}"), reply)
            return
        message = frames[1]
        if len(message) >= TRACKED_BYTES and not self._budget_allows(identity, len(message)):
            self.requests += 1
            self.refuse_over_budget(identity, reply)
            return
        self.serve(identity, message, reply)

    def _budget_allows(self, identity: bytes, size: int) -> bool:
        budget = self.budget
        return budget.fits(size) and budget.worker_held(identity) + size <= budget.per_worker

    def refuse_over_budget(self, identity: bytes, reply: ReplyTo) -> None:
        """A ZeroMQ request the memory budget cannot take (stream workers wait instead)."""
        self.requests_rejected += 1
        if (held := _refused_log.allow()) is not None:
            _log.info("request_refused", worker=identity.hex(), reason="memory budget",
                      held_bytes=self.budget.held, suppressed=held)
        reply(0, Status.OVERLOADED, error_payload(
            "overloaded", "the broker's memory budget for requests is spent "
            "(limits.memory_budget, limits.worker_memory): retry later", maybe_applied=False))

    def reply(self, identity: bytes, request_id: int, status: int, payload: Any) -> None:
        """Send a reply to the ZeroMQ worker ``identity``."""
        self.budget.release_request(identity, request_id)
        message = encode_reply(request_id, status, payload)
        try:
            self._sock.send(identity, _SNDMORE_NOBLOCK)
            self._sock.send(message, _NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: worker gone; EAGAIN: worker not reading
            self.replies_dropped += 1
            _log.debug("reply_dropped", worker=identity.hex(), reason=exc.strerror)
        # A send may consume the fd's edge for requests that arrived meanwhile.
        if not self._read_scheduled and self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._schedule_read()

    # -- Unix stream ----------------------------------------------------------------------------

    def _new_stream_worker(self) -> StreamWorker:
        number = next(self._stream_numbers)
        return StreamWorker(self, _STREAM_IDENTITY_PREFIX + number.to_bytes(8, "big"))

    def hold_node_writes(self) -> None:
        """Hold node writes until every stream worker readable in this event-loop iteration
        has been read: their requests then go out in one write per node connection."""
        if not self.batch.active:
            self.batch.begin()
            asyncio.get_running_loop().call_soon(self.batch.end)

    def release_node_writes_if_last(self) -> None:
        """Write now if no other callback is due in this iteration (a lone request does not
        wait for the next one).  asyncio's ready queue tells; other loops wait for call_soon."""
        ready = getattr(self._loop, "_ready", None)
        if ready is not None and not ready and self.batch.active:
            self.batch.end()

    def stream_opened(self, worker: StreamWorker) -> bool:
        """Take a new connection, or refuse it (False) when max_workers are connected."""
        if len(self._streams) >= self.max_workers:
            self.connections_refused += 1
            if (held := _refused_log.allow()) is not None:
                _log.warning("connection_refused", reason="limits.max_workers",
                             connected=len(self._streams), suppressed=held)
            return False
        self._streams.add(worker)
        return True

    def streams(self) -> dict[bytes, StreamWorker]:
        """The connected stream workers by identity (admin)."""
        return {worker.identity: worker for worker in self._streams}

    def stream_closed(self, worker: StreamWorker) -> None:
        if worker not in self._streams:
            return
        self._streams.discard(worker)
        self.budget.forget(worker.identity)
        if self._on_disconnect is not None:
            self._on_disconnect(worker.identity)

    def _pause_all_streams(self) -> None:
        """The memory budget is spent: no stream worker is read until bytes are freed (each
        would otherwise bring one more read's worth)."""
        for worker in self._streams:
            worker.update_reading()

    def close_stalled(self, now: float, timeout: float) -> int:
        """Close stream connections that sent part of a request and then nothing for
        ``timeout`` seconds: what they hold is freed for everyone else."""
        stalled = [w for w in self._streams if w.stalled_since(now) > timeout]
        for worker in stalled:
            self.stalled_closed += 1
            _log.info("connection_closed", worker=worker.identity.hex(),
                      reason="stalled mid-request", held_bytes=worker.buffered)
            worker.transport.abort()
        return len(stalled)


class StreamWorker(asyncio.Protocol):
    """One worker connection on the stream listener: length-prefixed requests in, replies out.
    Its identity is its own session; closing the connection releases what it owns.

    Flow control instead of refusals: at most ``frontend.stream_window`` of its requests are
    in the broker at once (the rest wait, read but unparsed), and reading stops while the
    window is full or its replies pile up unread."""

    def __init__(self, frontend: Frontend, identity: bytes) -> None:
        self.frontend = frontend
        self.identity = identity
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._reader = MessageReader(frontend.max_request_bytes)
        self._waiting: deque[bytes | Oversized] = deque()
        self._in_flight = 0
        self._serving = False
        self._writes_blocked = False
        self._reading = True
        self._stopped = False
        self._outbuf: list[bytes] = []
        self.buffered = 0  # bytes read but not yet served: a partial frame and waiting ones
        self._last_data = _monotonic()
        self.peer: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"<StreamWorker {self.identity.hex()} in_flight={self._in_flight}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = peer_credentials(transport)  # (pid, uid, gid): admin show clients
        # broker.allow_uids/allow_gids first, then limits.max_workers
        if (not self.frontend.access.admit_stream(transport)
                or not self.frontend.stream_opened(self)):
            self._stopped = True
            transport.abort()
            return
        self.transport.set_write_buffer_limits(high=_STREAM_WRITE_HIGH)

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting.clear()
        self._stopped = True  # nothing more to read: never waits for the budget again
        self.frontend.budget.stop_waiting(self)
        self.frontend.stream_closed(self)
        self.buffered = 0

    def stalled_since(self, now: float) -> float:
        """Seconds since the last bytes, while part of a request is buffered (else 0)."""
        return now - self._last_data if self._reader.buffered else 0.0

    def pause_writing(self) -> None:
        self._writes_blocked = True
        self.update_reading()

    def resume_writing(self) -> None:
        self._writes_blocked = False
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        self._last_data = _monotonic()
        reader = self._reader
        reader.max_message = self.frontend.max_request_bytes
        self._waiting.extend(reader.feed(data))
        self._serve_waiting()

    def _count_buffered(self) -> None:
        """Tell the budget what is left unserved once serving stopped (nothing, as a rule:
        a whole request served at once costs the budget no bookkeeping)."""
        if self.transport.is_closing():  # gone: the budget already forgot this worker
            return
        waiting = self._waiting
        held = self._reader.buffered
        if waiting:
            held += sum(len(m) for m in waiting if type(m) is bytes)
        delta = held - self.buffered
        if delta:
            self.buffered = held
            self.frontend.budget.buffered(self.identity, delta)

    def _serve_waiting(self) -> None:
        frontend = self.frontend
        waiting = self._waiting
        self._serving = True
        frontend.hold_node_writes()
        replies = frontend.reply_batch
        replies.begin()
        try:
            while waiting and self._in_flight < frontend.stream_window and not self._stopped:
                message = waiting.popleft()
                self._in_flight += 1
                if isinstance(message, Oversized):
                    frontend.requests += 1
                    frontend.reject(self.identity,
                                    _too_large(message.size, frontend.max_request_bytes),
                                    self.reply)
                else:
                    frontend.serve(self.identity, message, self.reply)
        finally:
            replies.end()
            self._serving = False
        frontend.release_node_writes_if_last()
        self._count_buffered()
        self.update_reading()

    def flush(self) -> None:
        """Write the replies held back during a batch, in one go."""
        if self._outbuf and not self.transport.is_closing():
            self.transport.write(b"".join(self._outbuf))
        self._outbuf.clear()

    def stop_reading(self) -> None:
        self._stopped = True
        self.update_reading()

    def update_reading(self) -> None:
        want = (not self._writes_blocked and not self._waiting and not self._stopped
                and self._within_budget())
        if want != self._reading and not self.transport.is_closing():
            self._reading = want
            (self.transport.resume_reading if want else self.transport.pause_reading)()

    def _within_budget(self) -> bool:
        """Whether more may be read: the broker's budget and this worker's share have room
        (else reading resumes when bytes are freed)."""
        budget = self.frontend.budget
        if budget.held < budget.total and budget.worker_held(self.identity) < budget.per_worker:
            return True
        budget.wait(self, self.update_reading)
        return False

    def reply(self, request_id: int, status: int, payload: Any) -> None:
        self._in_flight -= 1
        self.frontend.budget.release_request(self.identity, request_id)
        if self.transport.is_closing():
            self.frontend.replies_dropped += 1
            return
        data = frame(encode_reply(request_id, status, payload))
        batch = self.frontend.reply_batch
        if batch.active:
            if not self._outbuf:
                batch.dirty.append(self)
            self._outbuf.append(data)
        else:
            self.transport.write(data)
        if self._waiting and not self._serving and not self._stopped:
            asyncio.get_running_loop().call_soon(self._serve_waiting)


def encode_reply(request_id: int, status: int, payload: Any) -> bytes:
    """Every reply passes here: an error's message is bounded once, whoever wrote it."""
    if status and type(payload) is dict and len(payload.get("message") or "") > MAX_ERROR_MESSAGE:
        payload = {**payload, "message": clip(payload["message"])}
    try:
        return _pack_reply(request_id, status, payload)
    except NestingTooDeep as exc:  # a value from the cluster deeper than the IPC carries
        return _pack_reply(request_id, Status.BAD_REQUEST, error_payload(
            "unsupported_value", clip(f"the result cannot be sent to a worker: {exc}")))
    except IpcError as exc:
        return _pack_reply(request_id, Status.INTERNAL, error_payload(
            "internal", clip(f"cannot serialize the result: {exc}")))


def _too_large(size: int, limit: int) -> IpcError:
    return _TooLarge(f"request of {size} bytes exceeds the broker's limit of {limit} bytes")


class _TooLarge(IpcError):
    pass


def _someone_listens(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _prepare_ipc_dir(path: str) -> None:
    """Create the socket's directory, or refuse one someone else could write to."""
    ensure_socket_dir(os.path.dirname(path) or ".")


def _listen_unix(path: str, mode: int) -> socket.socket:
    """A listening Unix stream socket at ``path``.  A file left by a dead broker is replaced;
    one that a live process still accepts connections on is not (the lock file guards only
    the first socket path, and a second broker may be configured differently)."""
    _prepare_ipc_dir(path)
    if _someone_listens(path):
        raise ConfigError(f"another process accepts connections on unix://{path}; "
                          "refusing to steal its socket")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind unix://{path}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock
