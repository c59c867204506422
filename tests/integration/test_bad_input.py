"""Hostile or broken workers get a clear error and harm nobody else (real broker, real node)."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
import zmq

from broker.devcluster.brokerproc import running_broker
from libclient import AioClient, Client
from libclient.exceptions import RequestTooLarge
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


# -- TOO_LARGE reaches the call that sent the frame, though its reply has request id 0 ------

BIG = b"x" * 70000  # above the module broker's limits.max_request_bytes (65536)


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_a_too_large_request_fails_its_blocking_call_with_request_too_large(broker, transport):
    endpoint = broker.endpoint if transport == "ipc" else broker.stream_endpoint
    # A timeout far above the test's run: a dropped id-0 refusal would end as BrokerTimeout.
    with Client(broker=endpoint, timeout=60) as c:
        c.connect()
        cache = c.get_or_create_cache("bad-input-too-large")
        with pytest.raises(RequestTooLarge, match="exceeds the broker's limit of 65536"):
            cache.put("k", BIG)
        cache.put("k", "small")  # the same connection goes on
        assert cache.get("k") == "small"


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_a_too_large_request_fails_only_its_own_asyncio_call(broker, transport):
    endpoint = broker.endpoint if transport == "ipc" else broker.stream_endpoint

    async def scenario() -> list[object]:
        c = AioClient(broker=endpoint)  # requests wait 30 s: a dropped refusal times out
        async with c.connect():
            cache = await c.get_or_create_cache("bad-input-too-large-aio")
            await cache.put("small", 1)
            # Many requests in flight on one connection; only the big one is refused.
            return await asyncio.gather(
                cache.get("small"), cache.put("big", BIG), cache.get("small"),
                cache.put("big2", BIG + b"y"), cache.get("small"), return_exceptions=True)

    got = asyncio.run(scenario())
    assert got[0] == got[2] == got[4] == 1
    for error in (got[1], got[3]):
        assert isinstance(error, RequestTooLarge), error
        assert "exceeds the broker's limit of 65536" in str(error)
