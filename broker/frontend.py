"""The worker-facing sockets: the ZeroMQ ROUTER (ipc://, tcp://) and the Unix stream listener
(unix://); reads and validates requests, hands them to the dispatcher and routes each reply back
to the worker that asked."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import zmq

from protocol.ipc import (
    GOING_AWAY_REQUEST_ID,
    REFUSED_SIZE,
    TOO_LARGE_LIMIT,
    UNNAMED_REFUSAL_REQUEST_ID,
    IpcError,
    NestingTooDeep,
    Request,
    Status,
    UnsupportedVersion,
    error_payload,
    not_processed_payload,
)
from protocol.ipc import pack_reply as _pack_reply
from protocol.ipc import unpack_request as _unpack_request
from protocol.ipcstream import MessageReader, Oversized, frame, is_stream_endpoint, stream_path

from . import log, refusals
from .access import Access, PeerPolicy, parse_zap_peer, peer_credentials
from .budget import TRACKED_BYTES, MemoryBudget
from .errors import MAX_ERROR_MESSAGE, clip
from .metrics import NO_OP, Metrics
from .nodeconn import WriteBatch
from .sockets import Listeners
from .workers import STREAM_IDENTITY_PREFIX, Peer

_log = log.get("frontend")
_failure_log = log.Throttle()
_refused_log = log.Throttle()
_monotonic = time.monotonic

#: Messages handled per wake-up before yielding to node I/O (fairness between the two sides).
_READ_BATCH = 256
# Plain ints: pyzmq converts enum flags on every call, which shows in profiles.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
#: Stream workers: reading pauses while this many reply bytes wait for the worker to read them.
_STREAM_WRITE_HIGH = 4 * 1024 * 1024

ReplyTo = Callable[[int, int, Any], None]  # (request id, status, payload)


def _router_socket(context: zmq.Context[Any], stream_window: int, max_request_bytes: int) -> Any:
    """The ROUTER socket ipc:// and tcp:// workers talk to, with its limits set (typed as the
    context makes it: pyzmq's typed getsockopt would need a cast at every use)."""
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    # Per peer: replies held for a worker that does not read them (refusals included),
    # and requests libzmq holds before the broker reads them (beyond, the worker waits).
    hwm = max(2 * stream_window, 1000)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    # libzmq cuts a peer whose single frame exceeds this; below it we answer TOO_LARGE.
    sock.setsockopt(zmq.MAXMSGSIZE, max_request_bytes * 4)
    return sock


class Frontend:
    """Owns the ROUTER socket, the stream listeners and their socket files."""

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoints: list[str],
        dispatch: Callable[[bytes, Request, ReplyTo], None],
        *,
        max_request_bytes: int,
        socket_mode: int,
        batch: WriteBatch | None = None,
        on_disconnect: Callable[[bytes, str], None] | None = None,
        stream_window: int = 1024,
        reply_batch: WriteBatch | None = None,
        budget: MemoryBudget | None = None,
        max_workers: int = 4096,
        access: Access | None = None,
        metrics: Metrics | None = None,
        on_peer: Callable[[bytes, Peer], None] | None = None,
        knows: Callable[[bytes], bool] | None = None,
        belongs_to_open: Callable[[bytes, dict[str, Any]], bool] | None = None,
    ) -> None:
        self.access = access or Access(PeerPolicy())  # peer checks, CURVE, ZAP domains
        self.metrics = metrics or Metrics()
        # Who is behind a worker identity is told once (``on_peer``), before its first
        # request; ``knows`` says whether the worker registry has it already.
        self._on_peer = on_peer
        self._knows = knows
        # Stopping: whether a request belongs to its worker's open transaction or cursor
        # (served for the workers in ``lingering`` until they are let go).
        self._belongs_to_open = belongs_to_open
        self.lingering: set[bytes] = set()
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
        self._sock = _router_socket(context, stream_window, max_request_bytes)
        self._listeners: list[socket.socket] = []  # the unix:// ones, served by asyncio
        self.listeners = Listeners()
        self._servers: list[asyncio.AbstractServer] = []
        self._streams: set[StreamWorker] = set()
        self._stream_ids: dict[bytes, StreamWorker] = {}
        self._stream_numbers = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_scheduled = False
        self._events_check_scheduled = False
        self.accepting = True
        self.last_refused = 0.0  # when a request was last answered NOT_PROCESSED (monotonic)
        self.replies_dropped = 0
        self.requests_rejected = 0
        self.connections_refused = 0  # stream connections over max_workers
        self.stalled_closed = 0  # stream connections closed for sending half a request
        self.internal_errors = 0  # requests answered INTERNAL here (serve, encode_reply)
        self.requests = 0

    def bind(self, listeners: Listeners | None = None) -> None:
        """Listen on every endpoint through ``listeners`` (sockets made, or inherited from
        systemd or the broker this one replaces); ipc:// and tcp:// ones are handed to libzmq
        with ZMQ_USE_FD."""
        self.listeners = listeners or Listeners()
        # Local endpoints first: libzmq copies the security options into each listener at
        # bind time, and tcp:// turns CURVE on.
        for endpoint in sorted(self._endpoints, key=lambda e: e.startswith("tcp://")):
            self.access.prepare_bind(self._sock, endpoint)
            self.listeners.bind_zmq(self._sock, endpoint, self._socket_mode)
        for path in self._stream_paths:
            self._listeners.append(self.listeners.listen(f"unix://{path}", self._socket_mode))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.getsockopt(zmq.FD), self._on_readable)
        self._schedule_read()
        for listener in self._listeners:
            self._servers.append(
                await self._loop.create_unix_server(self._new_stream_worker, sock=listener))

    def close(self) -> None:
        if self._loop is not None:
            loop: Any = self._loop  # uvloop's remove_reader returns None, asyncio's a bool:
            loop.remove_reader(self._sock.getsockopt(zmq.FD))  # untyped, nothing checks it
        self._sock.close(linger=0)
        for server in self._servers:
            server.close()
        for worker in list(self._streams):
            worker.close("broker stopped")
        self.listeners.close()

    def stop_accepting(self, peers: Iterable[bytes] = (),
                       lingering: Iterable[bytes] = ()) -> None:
        """Shutdown, the GOAWAY way: no new work is started from now on.  ZeroMQ: the ipc://
        socket files go (a stub's new socket then waits for the next broker rather than reach
        this one), every known peer (``peers``: routing ids) is told GOING_AWAY (send
        nothing more on this socket), and requests are answered NOT_PROCESSED.  Streams: no
        new connection is accepted; each is read no further and gets GOING_AWAY once its
        started requests are answered (what it sent without a reply by then was not
        processed).  The workers in ``lingering`` (an open transaction) are the exception
        until ``let_go``: their requests that belong to an open transaction or cursor are
        served, the others answered NOT_PROCESSED, and they are told GOING_AWAY later."""
        self.accepting = False
        self.last_refused = _monotonic()  # ZeroMQ requests on their way are told too
        self.lingering = set(lingering)
        for server in self._servers:
            server.close()
        self._unlink_ipc_files()
        for identity in peers:
            if (not identity.startswith(STREAM_IDENTITY_PREFIX)
                    and identity not in self.lingering):
                self._send(identity, _going_away())
        for worker in list(self._streams):
            if worker.identity not in self.lingering:
                worker.go_away()

    def let_go(self, identity: bytes) -> None:
        """A lingering worker's transactions are over (or the drain's time is up): GOING_AWAY
        for it now, as ``stop_accepting`` told the others."""
        self.lingering.discard(identity)
        stream = self._stream_ids.get(identity)
        if stream is not None:
            stream.go_away()
        elif not identity.startswith(STREAM_IDENTITY_PREFIX):
            self._send(identity, _going_away())

    def _still_serves(self, identity: bytes, request: Request) -> bool:
        """Stopping: whether ``request`` is one of a lingering worker's open transaction."""
        return (identity in self.lingering and self._belongs_to_open is not None
                and self._belongs_to_open(identity, request.args))

    def _unlink_ipc_files(self) -> None:
        """The ipc:// files this broker made and keeps: not systemd's, nor those handed to a
        successor in an upgrade (it serves on them now)."""
        self.listeners.remove_files("ipc")

    @property
    def stream_workers(self) -> int:
        return len(self._streams)

    @property
    def streams_busy(self) -> int:
        """Stopping: stream workers not yet told GOING_AWAY (requests of theirs started, or
        an open transaction)."""
        return sum(1 for worker in self._streams if not worker.said_goodbye)

    # -- requests, whatever socket they came on -----------------------------------------------

    def serve(self, identity: bytes, message: bytes, reply: ReplyTo) -> None:
        """Validate one request message and dispatch it; every outcome answers via ``reply``."""
        self.requests += 1
        try:
            if len(message) > self.max_request_bytes:
                raise _too_large(len(message), self.max_request_bytes)
            request = _unpack_request(message)
        except IpcError as exc:
            self.reject(identity, exc, reply, len(message))
            return
        if len(message) >= TRACKED_BYTES:
            self.budget.take_request(identity, request.request_id, len(message))
        if not self.accepting and not self._still_serves(identity, request):
            self.last_refused = _monotonic()
            self._refused(identity, request.op, Status.NOT_PROCESSED, "not_processed",
                          not_processed_payload(), request.request_id, reply)
            return
        if request.deadline_ms and request.deadline_ms < time.time() * 1000:
            self._refused(identity, request.op, Status.DEADLINE_EXCEEDED,
                          "deadline_passed_on_arrival", error_payload(
                              "deadline_exceeded", "the request's deadline passed before "
                              "the broker could send it", maybe_applied=False),
                          request.request_id, reply)
            return
        try:
            self._dispatch(identity, request, reply)
        except Exception as exc:  # dispatch answers its own failures; this is the last resort
            self.internal_errors += 1
            if (held := _failure_log.allow()) is not None:
                _log.error("dispatch_failed", exc_info=exc, suppressed=held)
            reply(request.request_id, Status.INTERNAL,
                  error_payload("internal", "broker error: the broker logged it"))

    def reject(self, identity: bytes, exc: IpcError, reply: ReplyTo,
               size: int | None = None) -> None:
        """Refuse a frame whose envelope the broker cannot serve; ``size``: its length."""
        self.requests_rejected += 1
        status = Status.BAD_REQUEST
        request_id = 0
        if isinstance(exc, UnsupportedVersion):
            status, request_id = Status.UNSUPPORTED_VERSION, exc.request_id
        payload = error_payload("bad_request", clip(str(exc)))
        if isinstance(exc, _TooLarge):
            # The stub matches it by size to the request(s) it refuses (it cannot name one).
            status, payload[TOO_LARGE_LIMIT] = Status.TOO_LARGE, exc.limit
        if request_id == UNNAMED_REFUSAL_REQUEST_ID and size is not None:
            payload[REFUSED_SIZE] = size  # for the stub to tell which request it refuses
        self.metrics.answered(NO_OP, status, 0.0, None)
        refusals.answered(identity, NO_OP, status, payload)
        reply(request_id, status, payload)

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
                # A ROUTER adds the identity.  Frames, not bytes, for what follows: a frame
                # says whether more follow (getsockopt(RCVMORE) costs twice as much in pyzmq).
                frame = sock.recv(_NOBLOCK, copy=False)
                knows = self._knows
                if knows is None or knows(identity):
                    frames = [identity, frame.bytes]
                else:
                    frames = [identity, self._first_message(identity, frame)]
                while frame.more:
                    frame = sock.recv(_NOBLOCK, copy=False)
                    frames.append(frame.bytes)
                self._handle(frames)
            self._schedule_read()
        finally:
            self.batch.end()  # one write per node connection for the whole batch

    def _first_message(self, identity: bytes, frame: zmq.Frame) -> bytes:
        """A message of a worker not yet known: libzmq tells its peer with it (for ipc://
        ``localhost:<uid>:<gid>:<pid>``, from SO_PEERCRED)."""
        try:
            property_ = frame.get("Peer-Address")
        except zmq.ZMQError:
            property_ = ""
        address = property_ if isinstance(property_, str) else ""
        creds = parse_zap_peer(address.encode()) if address.startswith("localhost:") else None
        if creds is None:
            peer = Peer("ipc" if address.startswith("localhost") else "tcp")
        else:
            peer = Peer("ipc", creds[0], creds[1], process_name(creds[0]))
        self.peer_connected(identity, peer)
        data: bytes = frame.bytes
        return data

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
            self.refuse_over_budget(identity, reply, len(message))
            return
        self.serve(identity, message, reply)

    def _budget_allows(self, identity: bytes, size: int) -> bool:
        budget = self.budget
        return budget.fits(size) and budget.worker_held(identity) + size <= budget.per_worker

    def refuse_over_budget(self, identity: bytes, reply: ReplyTo, size: int) -> None:
        """A ZeroMQ request the memory budget cannot take (stream workers wait instead);
        ``size``: its length, which tells the stub which request it was (it has no id)."""
        self.requests_rejected += 1
        payload = error_payload(
            "overloaded", "the broker's memory budget for requests is spent "
            "(limits.memory_budget, limits.worker_memory): retry later", maybe_applied=False)
        payload[REFUSED_SIZE] = size
        self._refused(identity, NO_OP, Status.OVERLOADED, "memory_budget", payload,
                      UNNAMED_REFUSAL_REQUEST_ID, reply)

    def encode_reply(self, request_id: int, status: int, payload: Any) -> bytes:
        """Every reply passes here: an error's message is bounded once, whoever wrote it."""
        if (status and type(payload) is dict
                and len(payload.get("message") or "") > MAX_ERROR_MESSAGE):
            payload = {**payload, "message": clip(payload["message"])}
        try:
            return _pack_reply(request_id, status, payload)
        except NestingTooDeep as exc:  # a value from the cluster deeper than the IPC carries
            return _pack_reply(request_id, Status.BAD_REQUEST, error_payload(
                "unsupported_value", clip(f"the result cannot be sent to a worker: {exc}")))
        except IpcError as exc:  # a broker bug: answered, counted, logged
            self.internal_errors += 1
            if (held := _failure_log.allow()) is not None:
                _log.error("reply_unserializable", reason=clip(str(exc)), suppressed=held)
            return _pack_reply(request_id, Status.INTERNAL, error_payload(
                "internal", "broker error: the broker logged it"))

    def _refused(self, identity: bytes, op: str, status: int, reason: str, payload: Any,
                 request_id: int, reply: ReplyTo) -> None:
        """Answer a request the front end refuses: counted, logged (throttled), replied."""
        self.metrics.refused(reason)
        self.metrics.answered(op, status, 0.0, None)
        refusals.answered(identity, op, status, payload)
        reply(request_id, status, payload)

    def peer_connected(self, identity: bytes, peer: Peer) -> None:
        if self._on_peer is not None:
            self._on_peer(identity, peer)

    def reply(self, identity: bytes, request_id: int, status: int, payload: Any) -> None:
        """Send a reply to the ZeroMQ worker ``identity``."""
        self.budget.release_request(identity, request_id)
        if not self._send(identity, self.encode_reply(request_id, status, payload)):
            self.replies_dropped += 1

    def push(self, identity: bytes, status: int, payload: Any, max_unread: int) -> bool:
        """An unsolicited message (request id 0, e.g. EVENT) to a worker; False when it cannot
        take it now: gone, or (ZeroMQ) its queue at the socket's high-water mark, or
        (unix://) more than ``max_unread`` bytes of earlier messages still unread."""
        message = self.encode_reply(0, status, payload)
        stream = self._stream_ids.get(identity)
        if stream is not None:
            return stream.push(message, max_unread)
        if identity.startswith(STREAM_IDENTITY_PREFIX):
            return False  # a stream worker that disconnected
        return self._send(identity, message)

    def _send(self, identity: bytes, message: bytes) -> bool:
        try:
            self._sock.send(identity, _SNDMORE_NOBLOCK)
            self._sock.send(message, _NOBLOCK)
            sent = True
        except zmq.ZMQError as exc:  # EHOSTUNREACH: worker gone; EAGAIN: worker not reading
            sent = False
            _log.debug("reply_dropped", worker=identity.hex(), reason=exc.strerror)
        # A send may consume the fd's edge for requests that arrived meanwhile: checked once
        # per loop iteration, whatever the number of sends (each check is a poll(2) in libzmq).
        if not self._events_check_scheduled and self._loop is not None:
            self._events_check_scheduled = True
            self._loop.call_soon(self._check_events)
        return sent

    def _check_events(self) -> None:
        """After this iteration's sends, before the loop polls again: read what the fd's
        edge, consumed by a send, no longer announces."""
        self._events_check_scheduled = False
        if self._sock.closed or self._read_scheduled:
            return
        if self._sock.getsockopt(_EVENTS) & _POLLIN:
            self._on_readable()

    # -- Unix stream ----------------------------------------------------------------------------

    def _new_stream_worker(self) -> StreamWorker:
        number = next(self._stream_numbers)
        return StreamWorker(self, STREAM_IDENTITY_PREFIX + number.to_bytes(8, "big"))

    def hold_node_writes(self) -> None:
        """Hold node writes until every stream worker readable in this event-loop iteration
        has been read: their requests then go out in one write per node connection."""
        if not self.batch.active:
            self.batch.begin()
            (self._loop or asyncio.get_running_loop()).call_soon(self.batch.end)

    def stream_opened(self, worker: StreamWorker) -> bool:
        """Take a new connection, or refuse it (False) when max_workers are connected."""
        if len(self._streams) >= self.max_workers:
            self.connections_refused += 1
            self.metrics.refused("max_workers")
            if (held := _refused_log.allow()) is not None:
                _log.warning("connection_refused", reason="limits.max_workers",
                             connected=len(self._streams), suppressed=held)
            return False
        self._streams.add(worker)
        self._stream_ids[worker.identity] = worker
        return True

    def streams(self) -> dict[bytes, StreamWorker]:
        """The connected stream workers by identity (admin)."""
        return {worker.identity: worker for worker in self._streams}

    def stream_closed(self, worker: StreamWorker, reason: str) -> None:
        if worker not in self._streams:
            return
        self._streams.discard(worker)
        self._stream_ids.pop(worker.identity, None)
        self.budget.forget(worker.identity)
        if self._on_disconnect is not None:
            self._on_disconnect(worker.identity, reason)

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
            worker.close(f"stalled mid-request for over {timeout:g}s "
                         f"(limits.stalled_request_timeout), {worker.buffered} bytes held")
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
        self._going_away = False
        self.said_goodbye = False  # GOING_AWAY sent: what comes in now is read and dropped
        self._outbuf: list[bytes] = []
        self.buffered = 0  # bytes read but not yet served: a partial frame and waiting ones
        self._last_data = _monotonic()
        self.peer: tuple[int, int, int] | None = None
        self.close_reason: str | None = None  # the broker's, when the broker closes it

    def __repr__(self) -> str:
        return f"<StreamWorker {self.identity.hex()} in_flight={self._in_flight}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = peer_credentials(transport)  # (pid, uid, gid): admin show clients
        # broker.allow_uids/allow_gids first, then limits.max_workers
        if (not self.frontend.access.admit_stream(transport)
                or not self.frontend.stream_opened(self)):
            self._stopped = True
            self.transport.abort()
            return
        self.transport.set_write_buffer_limits(high=_STREAM_WRITE_HIGH)
        creds = peer_credentials(transport)
        pid, uid = (creds[0], creds[1]) if creds else (None, None)
        self.frontend.peer_connected(self.identity, Peer(
            "unix", pid, uid, process_name(pid) if pid is not None else None))

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting.clear()
        self._stopped = True  # nothing more to read: never waits for the budget again
        self.frontend.budget.stop_waiting(self)
        reason = self.close_reason or (f"connection error: {exc}" if exc is not None
                                       else "closed by the worker")
        self.frontend.stream_closed(self, reason)
        self.buffered = 0

    def close(self, reason: str) -> None:
        """Close the connection now (what it had sent and not been answered is dropped)."""
        self.close_reason = self.close_reason or reason
        self.transport.abort()

    def stalled_since(self, now: float) -> float:
        """Seconds since the last bytes, while part of a request is buffered and the broker
        reads the connection (else 0: while the broker itself does not read it, waiting for
        room in this worker's share or for its replies to drain, the worker is not stalling)."""
        return now - self._last_data if self._reading and self._reader.buffered else 0.0

    def pause_writing(self) -> None:
        self._writes_blocked = True
        self.update_reading()

    def resume_writing(self) -> None:
        self._writes_blocked = False
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        self._last_data = _monotonic()
        if self.said_goodbye:  # sent before the stub read GOING_AWAY: not processed
            self.frontend.last_refused = self._last_data
            return
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
                                    self.reply, message.size)
                else:
                    frontend.serve(self.identity, message, self.reply)
        finally:
            replies.end()
            self._serving = False
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

    def go_away(self) -> None:
        """The broker stops: read no further, drop what was read but not started (the
        stub re-sends it), and once the started requests are answered send GOING_AWAY and
        close."""
        self.stop_reading()
        self._going_away = True
        self.close_reason = "broker stopping (GOING_AWAY sent)"
        self._waiting.clear()
        if self._in_flight == 0:
            self._say_goodbye()

    def _say_goodbye(self) -> None:
        """GOING_AWAY after every reply already due, then the end of our side.  Reading goes
        on, dropping what comes (the stub may write before it reads GOING_AWAY: were the
        socket closed, that write could fail before the stub reads it), until the stub
        closes or the broker does (Frontend.close)."""
        transport = self.transport
        if transport.is_closing() or self.said_goodbye:
            return
        self.said_goodbye = True
        self.flush()
        transport.write(frame(_going_away()))
        transport.write_eof()
        self._reading = True
        transport.resume_reading()

    def update_reading(self) -> None:
        if self.said_goodbye:
            return
        want = (not self._writes_blocked and not self._waiting and not self._stopped
                and self._within_budget())
        if want != self._reading and not self.transport.is_closing():
            self._reading = want
            if want:
                self._last_data = _monotonic()  # the stall clock starts again from here
            (self.transport.resume_reading if want else self.transport.pause_reading)()

    def _within_budget(self) -> bool:
        """Whether more may be read: the broker's budget and this worker's share have room
        (else reading resumes when bytes are freed)."""
        budget = self.frontend.budget
        if budget.held < budget.total and budget.worker_held(self.identity) < budget.per_worker:
            return True
        budget.wait(self, self.update_reading)
        return False

    def push(self, message: bytes, max_unread: int) -> bool:
        """An unsolicited message after the replies already due; False (not sent) while more
        than ``max_unread`` bytes wait for the worker to read them, or once it is closing."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._going_away:
            return False
        if transport.get_write_buffer_size() + sum(map(len, self._outbuf)) > max_unread:
            return False
        self._write(frame(message))
        return True

    def _write(self, data: bytes) -> None:
        """Write now, or with the other answers of this loop iteration (one write each)."""
        batch = self.frontend.reply_batch
        if batch.active:
            if not self._outbuf:
                batch.dirty.append(self)
            self._outbuf.append(data)
        else:
            self.transport.write(data)

    def reply(self, request_id: int, status: int, payload: Any) -> None:
        self._in_flight -= 1
        self.frontend.budget.release_request(self.identity, request_id)
        if self.transport.is_closing():
            self.frontend.replies_dropped += 1
            return
        self._write(frame(self.frontend.encode_reply(request_id, status, payload)))
        if self._going_away and self._in_flight == 0:
            self._say_goodbye()
        elif self._waiting and not self._serving and not self._stopped:
            asyncio.get_running_loop().call_soon(self._serve_waiting)


def process_name(pid: int) -> str | None:
    """The process's name (``/proc/<pid>/comm``, at most 15 characters), if it can be read."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read(64).decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _going_away() -> bytes:
    return _pack_reply(GOING_AWAY_REQUEST_ID, Status.GOING_AWAY, not_processed_payload())


def _too_large(size: int, limit: int) -> IpcError:
    return _TooLarge(f"request of {size} bytes exceeds the broker's limit of {limit} bytes",
                     limit)


class _TooLarge(IpcError):
    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit
