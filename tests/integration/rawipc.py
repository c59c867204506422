"""Bare IPC clients for tests, no stub logic: a DEALER socket with sequential calls, a unix://
stream client that pipelines framed requests, and the reading of one framed reply from a
unix:// stream socket."""

from __future__ import annotations

import itertools
import socket
from collections import deque
from collections.abc import Iterator
from typing import Any

import zmq

from protocol import ipc
from protocol.ipcstream import MessageReader, Oversized, frame, stream_path


class _Client:
    """What both bare clients share: ``ask`` (one request, its reply) makes ``call``."""

    sock: Any
    ids: Iterator[int]

    def send(self, message: bytes) -> None:
        raise NotImplementedError

    def recv(self) -> ipc.Reply:
        raise NotImplementedError

    def ask(self, message: bytes) -> ipc.Reply:
        self.send(message)
        return self.recv()

    def call(self, op: str, **args):
        rid = next(self.ids)
        reply = self.ask(ipc.pack_request(rid, op, args))
        assert reply.request_id == rid
        if reply.status != ipc.Status.OK:
            raise RuntimeError(f"{ipc.Status(reply.status).name}: {reply.payload}")
        return reply.payload

    def close(self) -> None:
        self.sock.close()


class Raw(_Client):
    """A bare ZeroMQ DEALER: requests may be pipelined (send, then recv)."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 20000)
        self.sock.connect(endpoint)
        self.ids = iter(range(1, 10**9))

    def send(self, message: bytes) -> None:
        self.sock.send(message)

    def recv(self) -> ipc.Reply:
        return ipc.unpack_reply(self.sock.recv())


class Stream(_Client):
    """A bare stream client: one Unix socket, frame() out, MessageReader in, no stub logic."""

    def __init__(self, endpoint: str, timeout: float = 20.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(stream_path(endpoint))
        self.reader = MessageReader()
        self.received: deque[bytes] = deque()
        self.ids = itertools.count(1000)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: bytes) -> None:
        self.sock.sendall(frame(message))

    def recv(self) -> ipc.Reply:
        while not self.received:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the broker closed the connection")
            for message in self.reader.feed(data):
                assert not isinstance(message, Oversized)
                self.received.append(message)
        return ipc.unpack_reply(self.received.popleft())


def ask_once(proc, transport: str, message: bytes) -> ipc.Reply:
    """Send one packed request on a new connection of `transport` ("unix" or "ipc") to the
    broker `proc` and return its reply."""
    client = Stream(proc.stream_endpoint) if transport == "unix" else Raw(proc.endpoint)
    try:
        return client.ask(message)
    finally:
        client.close()


def read_stream_reply(sock: socket.socket) -> ipc.Reply:
    """The next reply on a unix:// stream: a 4-byte big-endian length, then the reply."""
    size = int.from_bytes(_read_exactly(sock, 4), "big")
    return ipc.unpack_reply(_read_exactly(sock, size))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data
