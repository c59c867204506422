"""A bare IPC client for tests: one DEALER socket, sequential calls, no stub logic."""

from __future__ import annotations

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
