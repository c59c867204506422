"""One node connection over the in-memory stream (no JVM), answered with captured node bytes:
the handshake and connect failures, one write per batch of requests, answers read in batches,
deadlines, the byte budget (queueing, learned answer sizes, NotSent), and loss."""

from __future__ import annotations

import asyncio

import pytest

from broker.budget import ReplySizes
from broker.errors import ConnectError, DeadlineExceeded
from broker.nodeconn import ClosedByNode, ConnectionLost, NodeConnection, NotSent, WriteBatch
from broker.stream import MemoryNetwork, MemoryStream, StreamError, tcp_connector
from protocol import ConnectionConfig, ErrorResponse, OpCode, Response, ops
from tests.broker.fakenode import FEATURES, FakeNode, run


async def _open(node: FakeNode, **options: object) -> NodeConnection:
    conn = NodeConnection(node.host, node.port, ConnectionConfig(features=FEATURES), **options)
    await conn.open(node.network.connect, timeout=1.0)
    return conn


def _get(key: int) -> bytes:
    return ops.cache_get(1, key)


@run
async def test_the_handshake_over_the_memory_stream_gives_the_nodes_id_and_features():
    node = FakeNode(MemoryNetwork(), 10800).start()
    conn = await _open(node)
    assert conn.is_open and conn.node_id == node.node_id
    assert tuple(conn.version) == (1, 7, 0) and {2, 3, 11} <= conn.features
    assert "open" in repr(conn) and "MemoryStream" in repr(node.streams[0])


@run
async def test_a_refused_connect_and_a_silent_node_are_connect_errors():
    network = MemoryNetwork()
    conn = NodeConnection("127.0.0.1", 1, ConnectionConfig())
    with pytest.raises(ConnectError, match=r"127\.0\.0\.1:1: Connect call failed"):
        await conn.open(network.connect, timeout=1.0)
    assert conn.closed_reason == "connect failed"

    network.listen("127.0.0.1", 2, lambda stream: None)  # accepts, never answers
    conn = NodeConnection("127.0.0.1", 2, ConnectionConfig())
    with pytest.raises(ConnectError, match=r"no handshake within 0\.05s"):
        await conn.open(network.connect, timeout=0.05)
    assert conn.closed_reason == "connect timeout"


@run
async def test_the_tcp_connector_translates_os_errors():
    connect = tcp_connector(None)
    with pytest.raises(StreamError) as caught:
        await connect("127.0.0.1", 1, asyncio.Protocol())  # nothing listens on port 1
    assert caught.value.reason == "connect failed"


@run
async def test_requests_of_one_batch_go_out_in_one_write_and_answers_are_matched_by_id():
    node = FakeNode(MemoryNetwork(), 10800).start()
    batch = WriteBatch()
    conn = await _open(node, batch=batch)
    writes = node.streams[0].writes
    outcomes: list[object] = []
    batch.begin()
    for key in range(10):
        conn.send(OpCode.CACHE_GET, _get(key), outcomes.append)
    batch.end()
    assert node.streams[0].writes == writes + 1  # ten requests, one write
    await asyncio.sleep(0.01)
    assert len(outcomes) == 10 and all(isinstance(o, Response) for o in outcomes)
    assert conn.in_flight == 0 and conn.bytes_in_flight == 0


@run
async def test_without_a_batch_requests_of_one_loop_iteration_still_share_a_write():
    node = FakeNode(MemoryNetwork(), 10800).start()
    conn = await _open(node)
    writes = node.streams[0].writes
    for key in range(5):
        conn.send(OpCode.CACHE_GET, _get(key), lambda outcome: None)
    await asyncio.sleep(0)
    assert node.streams[0].writes == writes + 1


@run
async def test_answers_read_together_reach_their_callers_inside_one_reply_batch():
    node = FakeNode(MemoryNetwork(), 10800).start()
    replies = WriteBatch()
    conn = await _open(node, replies=replies)
    node.hold.add(OpCode.CACHE_GET)
    seen: list[bool] = []
    for key in range(3):
        conn.send(OpCode.CACHE_GET, _get(key), lambda outcome: seen.append(replies.active))
    await asyncio.sleep(0.01)
    stream = node.streams[0]
    frames: list[bytes] = []
    stream.feed, feed = frames.append, stream.feed  # type: ignore[method-assign]
    node.release()
    feed(b"".join(frames))  # the node's three answers arrive in one read
    await asyncio.sleep(0.01)
    assert seen == [True, True, True] and not replies.active


@run
async def test_an_error_answer_is_an_event_and_a_failing_callback_harms_no_one():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.overrides[OpCode.CACHE_PUT] = lambda body: (1000, "boom")
    conn = await _open(node)
    outcomes: list[object] = []

    def bad(outcome: object) -> None:
        raise RuntimeError("a bug in a caller")

    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 1, 1), bad)
    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 1, 1), outcomes.append)
    await asyncio.sleep(0.01)
    assert isinstance(outcomes[0], ErrorResponse) and outcomes[0].status == 1000
    assert conn.is_open


@run
async def test_a_request_past_its_deadline_fails_and_its_late_answer_is_dropped():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.hold.add(OpCode.CACHE_GET)
    conn = await _open(node)
    outcomes: list[object] = []
    conn.send(OpCode.CACHE_GET, _get(1), outcomes.append, deadline=0.0)
    assert conn.expire(1.0) == 1
    assert isinstance(outcomes[0], DeadlineExceeded)
    node.release()
    await asyncio.sleep(0.01)
    assert len(outcomes) == 1 and conn.bytes_in_flight == 0


@run
async def test_requests_beyond_the_byte_budget_wait_in_order_until_answers_make_room():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.hold.add(OpCode.CACHE_GET)
    sizes = ReplySizes(cold_guess=1000)
    conn = await _open(node, byte_budget=1500, reply_sizes=sizes)
    order: list[int] = []
    for key in range(3):
        conn.send(OpCode.CACHE_GET, _get(key), lambda outcome, key=key: order.append(key),
                  cache_id=1)
    await asyncio.sleep(0.01)
    assert (conn.in_flight, conn.queued) == (1, 2)  # one always goes; the rest would not fit
    assert conn.bytes_in_flight == len(_get(0)) + 1000
    node.release()  # the answer teaches its real size: both waiting ones now fit at once
    await asyncio.sleep(0.01)
    assert sizes.expect(OpCode.CACHE_GET, 1) < 100
    assert (conn.in_flight, conn.queued) == (2, 0)
    node.release()
    await asyncio.sleep(0.01)
    assert order == [0, 1, 2] and conn.bytes_in_flight == 0


@run
async def test_urgent_requests_never_wait_for_room():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.hold.add(OpCode.CACHE_GET)
    conn = await _open(node, byte_budget=10, reply_sizes=ReplySizes(cold_guess=1000))
    conn.send(OpCode.CACHE_GET, _get(1), lambda outcome: None, cache_id=1)
    conn.send(OpCode.CACHE_GET, _get(2), lambda outcome: None, cache_id=1)
    conn.send(OpCode.HEARTBEAT, b"", lambda outcome: None, urgent=True)
    assert (conn.in_flight, conn.queued) == (2, 1)


@run
async def test_losing_the_connection_fails_sent_requests_and_says_queued_ones_were_not_sent():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.hold.add(OpCode.CACHE_PUT)
    lost: list[str] = []
    conn = await _open(node, byte_budget=1, on_lost=lambda c, reason: lost.append(reason))
    outcomes: list[object] = []
    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 1, 1), outcomes.append)
    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 2, 2), outcomes.append)
    assert conn.queued == 1
    node.stop()
    await asyncio.sleep(0.01)
    assert type(outcomes[0]) is ClosedByNode and type(outcomes[1]) is NotSent
    assert lost == ["node closed the connection"] and not conn.is_open
    with pytest.raises(ConnectionLost):
        conn.send(OpCode.CACHE_GET, _get(1), outcomes.append)


@run
async def test_a_reset_connection_and_a_deadline_while_queued():
    node = FakeNode(MemoryNetwork(), 10800).start()
    node.hold.add(OpCode.CACHE_PUT)
    conn = await _open(node, byte_budget=1)
    outcomes: list[object] = []
    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 1, 1), outcomes.append)
    conn.send(OpCode.CACHE_PUT, ops.cache_put(1, 2, 2), outcomes.append, deadline=0.5)
    conn.expire(1.0)  # the queued one's deadline passed: it never went out
    assert isinstance(outcomes[0], DeadlineExceeded) and "not sent" in str(outcomes[0])
    stream: MemoryStream = node.streams[0]
    stream.reset()
    await asyncio.sleep(0.01)
    assert isinstance(outcomes[1], ConnectionLost) and "reset by peer" in str(outcomes[1])


@run
async def test_request_awaits_the_answer():
    node = FakeNode(MemoryNetwork(), 10800).start()
    conn = await _open(node)
    answer = await conn.request(OpCode.HEARTBEAT, b"")
    assert isinstance(answer, Response)
    conn.close("test over")
    with pytest.raises(ConnectionLost):
        await conn.request(OpCode.HEARTBEAT, b"")
