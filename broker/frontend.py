"""The worker-facing ZeroMQ ROUTER: binds the endpoints, reads and validates request frames,
hands them to the dispatcher and routes replies back to the worker that asked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import zmq

from protocol.ipc import IpcError, Request, Status, UnsupportedVersion, error_payload
from protocol.ipc import pack_reply as _pack_reply
from protocol.ipc import unpack_request as _unpack_request

from . import log
from .errors import ConfigError
from .nodeconn import WriteBatch

_log = log.get("frontend")

#: Messages handled per wake-up before yielding to node I/O (fairness between the two sides).
_READ_BATCH = 256
# Plain ints: pyzmq converts enum flags on every call, which shows in profiles.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)


class Frontend:
    """Owns the ROUTER socket and the ipc socket files."""

    def __init__(
        self,
        context: zmq.Context,
        endpoints: list[str],
        dispatch: Callable[[bytes, Request, Callable[[int, int, Any], None]], None],
        *,
        max_request_bytes: int,
        socket_mode: int,
        batch: WriteBatch | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._dispatch = dispatch
        self.max_request_bytes = max_request_bytes
        self._socket_mode = socket_mode
        self._batch = batch or WriteBatch()
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._sock.setsockopt(zmq.SNDHWM, 100_000)
        self._sock.setsockopt(zmq.RCVHWM, 100_000)
        # libzmq cuts a peer whose single frame exceeds this; below it we answer TOO_LARGE.
        self._sock.setsockopt(zmq.MAXMSGSIZE, max_request_bytes * 4)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_scheduled = False
        self.accepting = True
        self.replies_dropped = 0
        self.requests_rejected = 0
        self.requests = 0

    def bind(self) -> None:
        for endpoint in self._endpoints:
            if endpoint.startswith("ipc://"):
                _prepare_ipc_dir(endpoint[len("ipc://"):])
            try:
                self._sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ConfigError(f"cannot bind {endpoint}: {exc}") from exc
            if endpoint.startswith("ipc://"):
                os.chmod(endpoint[len("ipc://"):], self._socket_mode)
            _log.info("listening", endpoint=endpoint)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.getsockopt(zmq.FD), self._on_readable)
        self._schedule_read()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.getsockopt(zmq.FD))
        self._sock.close(linger=0)
        for endpoint in self._endpoints:
            if endpoint.startswith("ipc://"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(endpoint[len("ipc://"):])

    # -- reading ------------------------------------------------------------------------------

    def _schedule_read(self) -> None:
        # The ZMQ fd is edge-triggered: any send may consume the edge, so re-check after sends.
        if not self._read_scheduled and self._loop is not None:
            self._read_scheduled = True
            self._loop.call_soon(self._on_readable)

    def _on_readable(self) -> None:
        self._read_scheduled = False
        sock = self._sock
        self._batch.begin()
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
            self._batch.end()  # one write per node connection for the whole batch

    def _handle(self, frames: list[bytes]) -> None:
        self.requests += 1
        identity = frames[0]
        try:
            request = self._parse(frames)
        except IpcError as exc:
            self._reject(identity, exc)
            return
        if not self.accepting:
            self.reply(identity, request.request_id, Status.CLUSTER_UNAVAILABLE,
                       error_payload("shutting_down", "the broker is shutting down",
                                     maybe_applied=False))
            return
        if request.deadline_ms and request.deadline_ms < time.time() * 1000:
            self.reply(identity, request.request_id, Status.DEADLINE_EXCEEDED,
                       error_payload("deadline_exceeded", "the request's deadline passed before "
                                     "the broker could send it", maybe_applied=False))
            return
        try:
            self._dispatch(identity, request,
                           lambda rid, st, payload: self.reply(identity, rid, st, payload))
        except Exception as exc:  # a broker bug must not take the broker down
            _log.exception("dispatch_failed", op=request.op)
            self.reply(identity, request.request_id, Status.INTERNAL,
                       error_payload("internal", f"broker error: {type(exc).__name__}: {exc}"))

    def _parse(self, frames: list[bytes]) -> Request:
        if len(frames) != 2:
            raise IpcError(f"a request is exactly one frame, got {len(frames) - 1}")
        if len(frames[1]) > self.max_request_bytes:
            raise _TooLarge(f"request of {len(frames[1])} bytes exceeds the broker's limit of "
                            f"{self.max_request_bytes} bytes")
        return _unpack_request(frames[1])

    def _reject(self, identity: bytes, exc: IpcError) -> None:
        self.requests_rejected += 1
        status = Status.BAD_REQUEST
        request_id = 0
        if isinstance(exc, UnsupportedVersion):
            status, request_id = Status.UNSUPPORTED_VERSION, exc.request_id
        elif isinstance(exc, _TooLarge):
            status = Status.TOO_LARGE
        _log.warning("request_rejected", worker=identity.hex(), reason=str(exc))
        self.reply(identity, request_id, status, error_payload("bad_request", str(exc)))

    # -- replying -----------------------------------------------------------------------------

    def reply(self, identity: bytes, request_id: int, status: int, payload: Any) -> None:
        try:
            frame = _pack_reply(request_id, status, payload)
        except IpcError as exc:
            frame = _pack_reply(request_id, Status.INTERNAL,
                                error_payload("internal", f"cannot serialize the result: {exc}"))
        try:
            self._sock.send(identity, _SNDMORE_NOBLOCK)
            self._sock.send(frame, _NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: worker gone; EAGAIN: worker not reading
            self.replies_dropped += 1
            _log.debug("reply_dropped", worker=identity.hex(), reason=exc.strerror)
        # A send may consume the fd's edge for requests that arrived meanwhile.
        if not self._read_scheduled and self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._schedule_read()


class _TooLarge(IpcError):
    pass


def _prepare_ipc_dir(path: str) -> None:
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o750, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the socket directory {directory}: {exc.strerror}") from exc
