"""broker/continuous.py on fake nodes: one server query per cache shared by its subscribers,
events fanned out after the subscribe reply, unsubscribe and departed workers close it, a slow
subscriber is dropped alone, node loss starts it again elsewhere with a "missed" notice."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from broker import continuous
from broker.continuous import CqLimits
from broker.limits import Limits
from protocol import OpCode, queries
from protocol.binary.values import BinaryObject
from protocol.hashing import java_string_hash
from protocol.ipc import Status
from tests.broker.fakenode import FakeNode, Harness, run

RESOURCE = 77


def _int(value: int) -> bytes:
    return b"\x03" + struct.pack("<i", value)


NULL = b"\x65"


def notification(resource: int, *events: tuple[int, int | None, int | None, int]) -> bytes:
    """A 2007 notification frame: ``i64 resource | i16 flags 0x4 | i16 op | body``."""
    body = struct.pack("<i", len(events))
    for key, old, new, kind in events:
        body += _int(key) + (NULL if old is None else _int(old))
        body += (NULL if new is None else _int(new)) + struct.pack("<b", kind)
    payload = struct.pack("<qhh", resource, 0x4, 2007) + body
    return struct.pack("<i", len(payload)) + payload


class Pushed:
    """Stands in for Frontend.push: records what each worker got, refuses for ``full``."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, int, Any]] = []
        self.full: set[bytes] = set()

    def __call__(self, identity: bytes, status: int, payload: Any, max_unread: int) -> bool:
        if identity in self.full:
            return False
        self.messages.append((identity, status, payload))
        return True

    def to(self, identity: bytes) -> list[Any]:
        return [p for i, s, p in self.messages if i == identity and s == Status.EVENT]


async def _harness(nodes: int = 1, **limits: Any) -> tuple[Harness, Pushed]:
    h = await Harness(nodes, limits=Limits(**limits)).start()
    pushed = Pushed()
    h.dispatcher.continuous.push = pushed
    for node in h.nodes:
        node.overrides[OpCode.QUERY_CONTINUOUS] = lambda body: struct.pack("<q", RESOURCE)
    return h, pushed


def _query_node(h: Harness) -> FakeNode:
    return next(n for n in h.nodes if OpCode.QUERY_CONTINUOUS in n.ops())


def _notify(node: FakeNode, *events: tuple[int, int | None, int | None, int]) -> None:
    for stream in node.streams:
        stream.feed(notification(RESOURCE, *events))


@run
async def test_subscribers_share_one_query_and_each_gets_every_event() -> None:
    h, pushed = await _harness()
    first = await h.call("cq_subscribe", {"cache": "c"}, worker=b"w1")
    second = await h.call("cq_subscribe", {"cache": "c"}, worker=b"w2")
    assert first[0] == second[0] == Status.OK
    assert first[1]["node"] == second[1]["node"] == "127.0.0.1:10800"
    node = _query_node(h)
    assert node.ops().count(OpCode.QUERY_CONTINUOUS) == 1
    _notify(node, (1, None, 10, 0), (1, 10, 11, 1))
    await h.until(lambda: len(pushed.messages) == 2)
    for worker, reply in ((b"w1", first), (b"w2", second)):
        assert pushed.to(worker) == [{"sub": reply[1]["sub"],
                                      "events": [[1, None, 10, 0], [1, 10, 11, 1]]}]
    # Different options: a query of their own.
    await h.call("cq_subscribe", {"cache": "c", "page_size": 8}, worker=b"w1")
    assert node.ops().count(OpCode.QUERY_CONTINUOUS) + sum(
        n.ops().count(OpCode.QUERY_CONTINUOUS) for n in h.nodes if n is not node) == 2
    await h.close()


@run
async def test_the_subscribe_reply_waits_for_a_probe_answered_after_the_querys() -> None:
    """The node drops events until its request thread has seen its query answer written (CI
    missed first events): the reply to the worker goes only once a probe on that connection
    is answered, and NOTIFICATIONS_GRACE after that."""
    grace, continuous.NOTIFICATIONS_GRACE = continuous.NOTIFICATIONS_GRACE, 0.5
    try:
        h, _ = await _harness()
        for node in h.nodes:
            node.hold.add(OpCode.HEARTBEAT)
        rid = h.send("cq_subscribe", {"cache": "c"})
        await h.until(lambda: any(n.held for n in h.nodes))
        node = _query_node(h)
        assert node.ops()[-2:] == [OpCode.QUERY_CONTINUOUS, OpCode.HEARTBEAT]
        await h.settle()
        assert rid not in h.replies
        node.release()
        loop = asyncio.get_running_loop()
        released = loop.time()
        await h.until(lambda: rid in h.replies)
        assert loop.time() - released >= 0.5
        assert h.replies[rid][0] == Status.OK
        await h.close()
    finally:
        continuous.NOTIFICATIONS_GRACE = grace


@run
async def test_the_last_unsubscribe_closes_the_server_query() -> None:
    h, pushed = await _harness()
    subs = [(await h.call("cq_subscribe", {"cache": "c"}, worker=w))[1]["sub"]
            for w in (b"w1", b"w2")]
    node = _query_node(h)
    assert await h.call("cq_unsubscribe", {"sub": subs[0]}, worker=b"w1") == (Status.OK, None)
    _notify(node, (2, None, 20, 0))
    await h.until(lambda: len(pushed.messages) == 1)
    assert pushed.to(b"w1") == []
    assert OpCode.RESOURCE_CLOSE not in node.ops()
    status, _ = await h.call("cq_unsubscribe", {"sub": subs[1]}, worker=b"w1")
    assert status == Status.BAD_REQUEST  # not w1's
    await h.call("cq_unsubscribe", {"sub": subs[1]}, worker=b"w2")
    await h.until(lambda: OpCode.RESOURCE_CLOSE in node.ops())
    close = [body for op, _, body in node.requests if op == OpCode.RESOURCE_CLOSE]
    assert close == [struct.pack("<q", RESOURCE)]
    await h.close()


@run
async def test_a_slow_subscriber_is_dropped_alone_with_a_final_message() -> None:
    h, pushed = await _harness()
    await h.call("cq_subscribe", {"cache": "c"}, worker=b"fast")
    slow = (await h.call("cq_subscribe", {"cache": "c"}, worker=b"slow"))[1]["sub"]
    node = _query_node(h)
    pushed.full.add(b"slow")
    _notify(node, (1, None, 1, 0))
    await h.until(lambda: len(pushed.to(b"fast")) == 1)
    pushed.full.clear()  # it reads again: the final message gets through on a later sweep
    await h.until(lambda: pushed.to(b"slow") != [], timeout=5.0)
    [final] = pushed.to(b"slow")
    assert final["sub"] == slow and final["ended"]["kind"] == "slow_subscriber"
    _notify(node, (1, 1, 2, 1))
    await h.until(lambda: len(pushed.to(b"fast")) == 2)
    assert len(pushed.to(b"slow")) == 1  # nothing more for it
    assert h.dispatcher.continuous.subscribers_dropped == 1
    await h.close()


@run
async def test_subscriptions_per_worker_are_bounded() -> None:
    h, _ = await _harness()
    h.dispatcher.continuous.limits = CqLimits(max_subscriptions_per_worker=2)
    for _ in range(2):
        assert (await h.call("cq_subscribe", {"cache": "c"}))[0] == Status.OK
    status, error = await h.call("cq_subscribe", {"cache": "c"})
    assert status == Status.OVERLOADED and "max_subscriptions_per_worker" in error["message"]
    status, error = await h.call("cq_subscribe", {"cache": "c", "time_interval": -1},
                                 worker=b"w2")
    assert status == Status.BAD_REQUEST and "time_interval" in error["message"]
    await h.close()


@run
async def test_a_node_error_fails_the_subscribe() -> None:
    h, _ = await _harness()
    h.nodes[0].overrides[OpCode.QUERY_CONTINUOUS] = lambda body: (1000, "Cache does not exist")
    status, error = await h.call("cq_subscribe", {"cache": "missing"})
    assert status == Status.SERVER_ERROR and error["server_status"] == 1000
    # Nothing left behind: the next subscribe asks the node again.
    h.nodes[0].overrides[OpCode.QUERY_CONTINUOUS] = lambda body: struct.pack("<q", RESOURCE)
    assert (await h.call("cq_subscribe", {"cache": "missing"}))[0] == Status.OK
    await h.close()


@run
async def test_a_departed_worker_stops_receiving_and_its_query_closes() -> None:
    h, pushed = await _harness()
    await h.call("cq_subscribe", {"cache": "c"}, worker=b"gone")
    node = _query_node(h)
    h.workers.forget(b"gone")  # what the janitor does to a worker that went away
    await h.until(lambda: OpCode.RESOURCE_CLOSE in node.ops(), timeout=5.0)
    _notify(node, (1, None, 1, 0))
    await h.settle()
    assert pushed.to(b"gone") == []
    await h.close()


@run
async def test_node_loss_starts_the_query_elsewhere_and_says_events_may_be_missed() -> None:
    h, pushed = await _harness(nodes=2)
    sub = (await h.call("cq_subscribe", {"cache": "c"}))[1]["sub"]
    lost = _query_node(h)
    other = next(n for n in h.nodes if n is not lost)
    lost.stop()
    await h.until(lambda: OpCode.QUERY_CONTINUOUS in other.ops())
    await h.until(lambda: pushed.to(b"w1") != [])
    [missed] = pushed.to(b"w1")
    assert missed["sub"] == sub and "may be missed" in missed["missed"]
    _notify(other, (5, None, 50, 0))
    await h.until(lambda: len(pushed.to(b"w1")) == 2)
    assert pushed.to(b"w1")[1] == {"sub": sub, "events": [[5, None, 50, 0]]}
    assert h.dispatcher.continuous.restarts == 1
    await h.close()


@run
async def test_a_remote_filter_goes_to_the_node_and_keys_its_own_query() -> None:
    h, _ = await _harness()
    spec = {"class": "org.example.F", "properties": {"prefix": "a", "n": 2}}
    assert (await h.call("cq_subscribe", {"cache": "c", "filter": spec}, worker=b"w1"))[0] == 0
    same = {"class": "org.example.F", "properties": {"n": 2, "prefix": "a"}}  # any order
    assert (await h.call("cq_subscribe", {"cache": "c", "filter": same}, worker=b"w2"))[0] == 0
    assert (await h.call("cq_subscribe", {"cache": "c"}, worker=b"w3"))[0] == 0
    bodies = [body for n in h.nodes for op, _, body in n.requests
              if op == OpCode.QUERY_CONTINUOUS]
    assert len(bodies) == 2  # one query with the filter, shared; one without
    with_filter = [b for b in bodies if not b.endswith(b"\x65")]
    assert with_filter == [queries.continuous_query(
        java_string_hash("c"), remote_filter=queries.java_filter("org.example.F", spec[
            "properties"]))]
    await h.close()


@run
async def test_bad_remote_filters_are_refused_before_a_node_sees_them() -> None:
    h, _ = await _harness()
    for spec, text in [
        ("org.example.F", "wrong type"),
        ({"properties": {}}, "missing argument 'class'"),
        ({"class": "F", "extra": 1}, "unknown keys"),
        ({"class": "x" * 1025}, "'filter.class'"),
        ({"class": "F", "properties": {f"p{i}": i for i in range(257)}}, "filter_properties"),
        ({"class": "F", "properties": {1: 2}}, "str keys"),
        ({"class": "F", "properties": {"o": BinaryObject(5, {"a": 1})}}, "cannot encode"),
    ]:
        status, error = await h.call("cq_subscribe", {"cache": "c", "filter": spec})
        assert status == Status.BAD_REQUEST and text in error["message"], (spec, error)
    assert not [op for n in h.nodes for op, _, _ in n.requests
                if op == OpCode.QUERY_CONTINUOUS]
    await h.close()
