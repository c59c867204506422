"""Hostile or broken workers get a clear error and harm nobody else (real broker, real node)."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from broker.devcluster.brokerproc import running_broker
from libclient import Client
from protocol import ipc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("bad"),
                        {"limits.max_request_bytes": 65536}) as proc:
        yield proc


@pytest.fixture
def raw(broker):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(broker.endpoint)
    yield sock
    sock.close()


def _ask(sock, *frames: bytes) -> ipc.Reply:
    sock.send_multipart(list(frames))
    return ipc.unpack_reply(sock.recv())


@pytest.mark.parametrize("frames, status, text", [
    ((b"\xc1\x00garbage",), ipc.Status.BAD_REQUEST, "malformed msgpack"),
    ((msgpack.packb({"not": "a list"}),), ipc.Status.BAD_REQUEST, "5-element"),
    ((ipc.pack_request(1, "cache_get", {"cache": 5.5, "key": 1}),), ipc.Status.BAD_REQUEST,
     "wrong type"),
    ((ipc.pack_request(1, "cache_get", {"cache": "c"}),), ipc.Status.BAD_REQUEST, "missing"),
    ((ipc.pack_request(1, "drop_everything", {}),), ipc.Status.UNKNOWN_OP, "unknown op"),
    ((msgpack.packb([99, 4, "ping", 0, {}]),), ipc.Status.UNSUPPORTED_VERSION, "version 99"),
    ((ipc.pack_request(1, "ping", {}), b"extra"), ipc.Status.BAD_REQUEST, "exactly one frame"),
    ((ipc.pack_request(1, "cache_put", {"cache": "c", "key": "k", "value": b"x" * 70000}),),
     ipc.Status.TOO_LARGE, "exceeds"),
    ((ipc.pack_request(1, "cache_put", {"cache": "c", "key": 2**64 - 1, "value": 1}),),
     ipc.Status.BAD_REQUEST, "encode"),
    ((ipc.pack_request(1, "cache_get", {"cache": "c", "key": ipc.Typed(3, 2**40)}),),
     ipc.Status.BAD_REQUEST, "encode"),
    ((ipc.pack_request(1, "ping", {}, deadline_ms=1),), ipc.Status.DEADLINE_EXCEEDED,
     "deadline"),
])
def test_bad_requests_get_clear_errors(raw, broker, frames, status, text):
    reply = _ask(raw, *frames)
    assert reply.status == status
    assert text in reply.payload["message"]
    # ... and the broker still serves everyone, including the offender.
    assert _ask(raw, ipc.pack_request(2, "ping", {})).status == ipc.Status.OK
    with Client(broker=broker.endpoint) as c:
        c.connect()
        cache = c.get_or_create_cache("bad-input-neighbour")
        cache.put("k", "still fine")
        assert cache.get("k") == "still fine"
