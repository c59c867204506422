"""Request/reply with the broker: one DEALER socket per process and thread, pid-checked so a
forked child never touches its parent's socket, with deadlines and Lazy-Pirate retries."""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

import zmq

from protocol.ipc import IpcError, Status, pack_request, unpack_reply

from .exceptions import (
    BrokerError,
    BrokerOverloaded,
    BrokerProtocolError,
    BrokerTimeout,
    BrokerUnavailable,
    CacheError,
    ClusterUnavailable,
    NotSupportedError,
    ParameterError,
)

#: Status -> exception class raised in the worker (redis-py's EXCEPTION_CLASSES idea).
_EXCEPTION_CLASSES: dict[int, type[Exception]] = {
    Status.BAD_REQUEST: ParameterError,
    Status.UNKNOWN_OP: NotSupportedError,
    Status.UNSUPPORTED_VERSION: BrokerProtocolError,
    Status.SERVER_ERROR: CacheError,
    Status.OVERLOADED: BrokerOverloaded,
    Status.CLUSTER_UNAVAILABLE: ClusterUnavailable,
    Status.DEADLINE_EXCEEDED: BrokerTimeout,
    Status.INTERNAL: BrokerError,
    Status.TOO_LARGE: ParameterError,
}

_request_ids = itertools.count(1)


class Transport:
    """Thread-safe and fork-safe: every (pid, thread) pair gets its own socket."""

    def __init__(self, endpoint: str, *, timeout: float = 30.0, retries: int = 2) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self._pid = os.getpid()
        self._local = threading.local()
        self._sockets: list[zmq.Socket] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Transport {self.endpoint} pid={self._pid} sockets={len(self._sockets)}>"

    # -- sockets ------------------------------------------------------------------------------

    def _checkpid(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # The inherited sockets belong to the parent: drop them without closing
                    # (libzmq has no I/O threads in the child) and start afresh.
                    self._local = threading.local()
                    self._sockets = []
                    self._pid = os.getpid()

    def _socket(self) -> zmq.Socket:
        self._checkpid()
        sock = getattr(self._local, "sock", None)
        if sock is None:
            if self._closed:
                raise BrokerUnavailable("the client is closed")
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.endpoint)
            self._local.sock = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def _discard_socket(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)
            sock.close(linger=0)

    def close(self) -> None:
        self._checkpid()
        with self._lock:
            sockets, self._sockets = self._sockets, []
            self._closed = True
        for sock in sockets:
            sock.close(linger=0)
        self._local = threading.local()

    # -- request/reply ------------------------------------------------------------------------

    def call(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send one request and return the broker's result, or raise the mapped exception.

        Idempotent requests are re-sent on a fresh socket when the broker does not answer in
        time (a restarting broker); others fail with BrokerUnavailable(maybe_applied=True).
        """
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        deadline_ms = int((time.time() + budget) * 1000)
        attempts = 1 + (self.retries if idempotent else 0)
        request_id = next(_request_ids)
        try:
            frame = pack_request(request_id, op, args or {}, deadline_ms)
        except IpcError as exc:
            raise ParameterError(f"cannot send this value to the broker: {exc}") from exc
        for attempt in range(attempts):
            slice_end = deadline if attempt == attempts - 1 else min(
                deadline, time.monotonic() + budget / attempts)
            reply = self._exchange(frame, request_id, slice_end)
            if reply is not None:
                return _result(reply.status, reply.payload)
            self._discard_socket()
        raise BrokerUnavailable(
            f"no reply from the broker at {self.endpoint} within {budget:g}s",
            maybe_applied=None if idempotent else True,
        )

    def _exchange(self, frame: bytes, request_id: int, deadline: float) -> Any:
        sock = self._socket()
        try:
            sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sock.poll(remaining * 1000, zmq.POLLIN):
                return None
            try:
                reply = unpack_reply(sock.recv())
            except IpcError as exc:
                raise BrokerProtocolError(f"malformed reply from the broker: {exc}") from exc
            if reply.request_id == request_id:
                return reply
            # A late reply to an earlier, abandoned request: drop it.


def _result(status: int, payload: Any) -> Any:
    if status == Status.OK:
        return payload
    cls = _EXCEPTION_CLASSES.get(status, BrokerError)
    message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
    if issubclass(cls, BrokerError):
        maybe_applied = payload.get("maybe_applied") if isinstance(payload, dict) else None
        raise cls(message, maybe_applied=maybe_applied)
    raise cls(message)
