"""A bare IPC client for tests: one DEALER socket, sequential calls, no stub logic; and the
reading of one framed reply from a unix:// stream socket."""

from __future__ import annotations

import socket

import zmq

from protocol import ipc


class Raw:
    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 20000)
        self.sock.connect(endpoint)
        self.ids = iter(range(1, 10**9))

    def call(self, op: str, **args):
        rid = next(self.ids)
        self.sock.send(ipc.pack_request(rid, op, args))
        reply = ipc.unpack_reply(self.sock.recv())
        assert reply.request_id == rid
        if reply.status != ipc.Status.OK:
            raise RuntimeError(f"{ipc.Status(reply.status).name}: {reply.payload}")
        return reply.payload

    def close(self) -> None:
        self.sock.close()


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
