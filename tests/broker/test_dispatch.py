"""The dispatcher over fake nodes on the in-memory network (no JVM), answered with captured
node bytes: requests and replies, admission and parking, retry after a lost connection (reads
elsewhere, writes reported maybe-applied, requests not yet sent retried), read coalescing,
schema refetch, transactions pinned to their connection, and the binary-type registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from broker.limits import Limits
from protocol import OpCode
from protocol.ipc import Status
from tests.broker.fakenode import CAPTURED, Harness, run

_GET = {"cache": "ops-kv", "key": 1}
_PUT = {"cache": "ops-kv", "key": 1, "value": "a"}


def _node_with(h: Harness, op: OpCode) -> int:
    """The index of the node that got the last ``op``."""
    return next(i for i, n in enumerate(h.nodes) if op in n.ops())


@run
async def test_a_put_and_a_get_are_answered_from_the_nodes_bytes():
    h = await Harness(1).start()
    assert await h.call("cache_put", _PUT) == (Status.OK, None)
    status, value = await h.call("cache_get", _GET)
    assert status == Status.OK and value is not None
    assert await h.call("cache_get_size", {"cache": "ops-kv", "peek_modes": []}) == (Status.OK, 5)
    assert h.dispatcher.in_flight == 0
    await h.close()


@run
async def test_a_node_error_reaches_the_worker_as_a_node_error():
    h = await Harness(1).start()
    h.nodes[0].overrides[OpCode.CACHE_PUT] = lambda body: (
        1000, "Failed at /10.1.2.3:47500\n\tat org.apache.ignite.Foo.bar(Foo.java:1)")
    status, payload = await h.call("cache_put", _PUT)
    assert status == Status.SERVER_ERROR and payload["server_status"] == 1000
    assert payload["message"] == "Failed at <address>"  # no stack trace, no address
    await h.close()


@run
async def test_admission_refuses_beyond_the_in_flight_limits():
    h = await Harness(1, limits=Limits(max_in_flight_per_worker=2,
                                       max_in_flight_total=3)).start()
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    first = [h.send("cache_get", _GET, worker=b"a") for _ in range(3)]
    assert h.replies[first[2]][0] == Status.OVERLOADED
    assert "this worker has 2 requests in flight" in h.replies[first[2]][1]["message"]
    second = [h.send("cache_get", _GET, worker=b"b") for _ in range(2)]
    assert h.replies[second[1]][0] == Status.OVERLOADED
    assert "the broker has 3 requests in flight" in h.replies[second[1]][1]["message"]
    await h.settle()
    h.nodes[0].release()
    await h.until(lambda: len(h.replies) == 5)
    assert h.dispatcher.in_flight == 0 and h.workers._workers[b"a"].in_flight == 0
    await h.close()


@run
async def test_requests_park_while_no_node_is_reachable_and_run_when_one_comes():
    h = Harness(1, limits=Limits(queue_wait=5.0))
    h.nodes[0].network.unlisten("127.0.0.1", 10800)
    await h.pool.start(wait=0.01)
    rid = h.send("cache_get", _GET)
    assert await h.call("ping") == (Status.OK, None)  # answered by the broker itself
    assert h.dispatcher.parked == 1 and rid not in h.replies
    h.nodes[0].start()
    await h.until(lambda: rid in h.replies)
    assert h.replies[rid][0] == Status.OK and h.dispatcher.parked == 0
    await h.close()


@run
async def test_a_parked_request_fails_unapplied_when_its_wait_is_over():
    h = Harness(1, limits=Limits(queue_wait=0.0))
    h.nodes[0].network.unlisten("127.0.0.1", 10800)
    await h.pool.start(wait=0.01)
    rid = h.send("cache_put", _PUT)
    h.janitor.sweep(h.dispatcher._parking._parked[0][0] + 1)
    status, payload = h.replies[rid]
    assert status == Status.CLUSTER_UNAVAILABLE and payload["maybe_applied"] is False
    assert "no Ignite node became reachable" in payload["message"]
    await h.close()


@run
async def test_a_read_whose_connection_is_lost_is_retried_on_another_node():
    h = await Harness(2).start()
    for node in h.nodes:
        node.hold.add(OpCode.CACHE_GET)
    rid = h.send("cache_get", _GET)
    await h.settle()
    first = _node_with(h, OpCode.CACHE_GET)
    other = h.nodes[1 - first]
    other.hold.clear()
    h.nodes[first].stop()
    await h.until(lambda: rid in h.replies)
    assert h.replies[rid][0] == Status.OK and OpCode.CACHE_GET in other.ops()
    await h.close()


def _closes_on_parse(node: Any) -> Callable[[bytes], None]:
    """What Ignite does with a request it cannot parse: close the connection, answer nothing."""
    def close(body: bytes) -> None:
        for stream in node.streams:
            stream.eof()
    return close


@run
async def test_a_read_that_closes_every_node_connection_is_sent_to_two_nodes_at_most():
    h = await Harness(3).start()
    for node in h.nodes:
        node.overrides[OpCode.CACHE_GET] = _closes_on_parse(node)
    status, payload = await h.call("cache_get", _GET)
    assert status == Status.CLUSTER_UNAVAILABLE and payload["maybe_applied"] is False
    assert "the broker does not send it again" in payload["message"]
    assert sum(OpCode.CACHE_GET in node.ops() for node in h.nodes) == 2
    await h.close()


@run
async def test_a_write_whose_connection_is_lost_is_reported_maybe_applied_not_repeated():
    h = await Harness(2).start()
    for node in h.nodes:
        node.hold.add(OpCode.CACHE_PUT)
    rid = h.send("cache_put", _PUT)
    await h.settle()
    first = _node_with(h, OpCode.CACHE_PUT)
    h.nodes[first].stop()
    await h.until(lambda: rid in h.replies)
    status, payload = h.replies[rid]
    assert status == Status.CLUSTER_UNAVAILABLE and payload["maybe_applied"] is True
    assert "it may have been applied" in payload["message"]
    assert OpCode.CACHE_PUT not in h.nodes[1 - first].ops()
    await h.close()


@run
async def test_a_write_that_waited_for_room_and_was_never_sent_goes_to_another_node():
    h = await Harness(2, node_byte_budget=1).start()
    for node in h.nodes:
        node.hold.add(OpCode.CACHE_PUT)
    conn = h.pool.ready[0]
    conn.send(OpCode.CACHE_PUT, b"\x00" * 8, lambda outcome: None)  # fills its budget
    h.pool.pick = lambda: conn  # type: ignore[method-assign]  # route the next one there
    rid = h.send("cache_put", {"cache": "ops-kv", "value": "a", "key": "not routed"})
    assert conn.queued == 1
    del h.pool.pick
    other = next(n for n in h.nodes if n.port != conn.port)
    other.hold.clear()
    next(n for n in h.nodes if n.port == conn.port).stop()
    await h.until(lambda: rid in h.replies)
    assert h.replies[rid] == (Status.OK, None) and OpCode.CACHE_PUT in other.ops()
    await h.close()


@run
async def test_identical_concurrent_reads_share_one_node_request_when_coalescing():
    h = await Harness(1, limits=Limits(coalesce_reads=True)).start()
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    rids = [h.send("cache_get", _GET, worker=w) for w in (b"a", b"b", b"c")]
    other = h.send("cache_get", {"cache": "ops-kv", "key": 2})
    await h.settle()
    assert h.nodes[0].ops().count(OpCode.CACHE_GET) == 2 and h.dispatcher.coalesced == 2
    h.nodes[0].release()
    await h.until(lambda: all(r in h.replies for r in [*rids, other]))
    assert len({repr(h.replies[r]) for r in rids}) == 1
    await h.close()


@run
async def test_an_answer_with_an_unknown_schema_fetches_the_type_once_then_decodes():
    h = await Harness(1).start()
    answer = bytes.fromhex(CAPTURED["sql-get-by-our-key-1"]["response_hex"])
    h.nodes[0].overrides[OpCode.CACHE_GET] = lambda body: answer
    status, value = await h.call("cache_get", _GET)
    assert status == Status.OK, value
    assert h.nodes[0].ops().count(OpCode.BINARY_TYPE_GET) == 1
    assert h.dispatcher.types.fetched == 1
    assert (await h.call("cache_get", _GET))[0] == Status.OK
    assert h.nodes[0].ops().count(OpCode.BINARY_TYPE_GET) == 1  # known from now on
    await h.close()


@run
async def test_binary_types_are_registered_once_and_unknown_ones_are_none():
    h = await Harness(1).start()
    status, payload = await h.call("binary_type_put", {"type_name": "types.Color",
                                                        "schema": [["RED", 0]], "is_enum": True})
    assert status == Status.OK and payload["type_name"] == "types.Color"
    assert h.dispatcher.types.registered == 1
    h.nodes[0].overrides[OpCode.BINARY_TYPE_GET] = lambda body: b"\x00"  # captured: unknown
    assert await h.call("binary_type_get", {"type": 12345}) == (Status.OK, None)
    await h.close()


@run
async def test_a_transaction_is_pinned_and_its_lost_connection_is_reported():
    h = await Harness(2).start()
    status, handle = await h.call("tx_start", {})
    assert status == Status.OK
    conn = h.workers._workers[b"w1"].transactions[handle].conn
    node = next(n for n in h.nodes if n.port == conn.port)
    assert (await h.call("cache_put", {**_PUT, "tx": handle}))[0] == Status.OK
    assert node.ops().count(OpCode.CACHE_PUT) == 1  # on the transaction's connection
    node.stop()
    await h.until(lambda: not conn.is_open)
    status, payload = await h.call("cache_get", {**_GET, "tx": handle})
    assert status == Status.CLUSTER_UNAVAILABLE and "rolled it back" in payload["message"]
    status, _ = await h.call("cache_get", {**_GET, "tx": handle})
    assert status == Status.BAD_REQUEST  # forgotten
    await h.close()


@run
async def test_a_request_past_its_deadline_is_answered_by_the_janitor_sweep():
    h = await Harness(1).start()
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    rid = h.send("cache_get", _GET, deadline_ms=1)  # long past
    await h.settle()
    h.janitor.sweep(h.pool.ready[0].last_sent + 1)
    assert h.replies[rid][0] == Status.DEADLINE_EXCEEDED
    await h.close()


@run
async def test_a_deadline_far_away_is_brought_forward_to_max_request_timeout():
    """Was: a request carrying a deadline a year away was served that long (fuzz: requests
    with mutated deadlines waiting on hostile transactions' locks, answered 18-24 s after
    they were sent)."""
    h = await Harness(1, limits=Limits(max_request_timeout=5.0)).start()
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    rid = h.send("cache_get", _GET, deadline_ms=int((time.time() + 365 * 86400) * 1000))
    await h.settle()
    sent = h.pool.ready[0].last_sent
    h.janitor.sweep(sent + 4.0)
    assert rid not in h.replies
    h.janitor.sweep(sent + 6.0)
    assert h.replies[rid][0] == Status.DEADLINE_EXCEEDED
    await h.close()


_SLOW_CHANGES = Limits(cache_changes_per_second=0.001, cache_changes_burst=3)


@run
async def test_a_worker_starting_caches_beyond_its_rate_waits_its_turn_and_others_do_not():
    h = await Harness(1, limits=Limits(cache_changes_per_second=4, cache_changes_burst=2)).start()
    paced = [h.send("cache_create", {"name": f"p{i}"}, worker=b"a") for i in range(4)]
    other = h.send("cache_create", {"name": "q"}, worker=b"b")
    await h.settle()
    assert {rid for rid in paced if rid in h.replies} == set(paced[:2]) and other in h.replies
    assert h.dispatcher.cache_lifecycle.paced == 2
    await h.until(lambda: all(rid in h.replies for rid in paced))
    assert all(h.replies[rid] == (Status.OK, None) for rid in paced)
    await h.close()


@run
async def test_a_worker_starting_caches_far_beyond_its_rate_is_refused_and_others_are_not():
    h = await Harness(1, limits=_SLOW_CHANGES).start()
    answers = [await h.call("cache_create", {"name": f"c{i}"}, worker=b"a") for i in range(4)]
    assert [status for status, _ in answers] == [Status.OK] * 3 + [Status.OVERLOADED]
    assert "limits.cache_changes_per_second" in answers[3][1]["message"]
    assert "after the request's deadline" in answers[3][1]["message"]
    assert (await h.call("cache_destroy", {"cache": "c0"}, worker=b"a"))[0] == Status.OVERLOADED
    assert (await h.call("cache_destroy", {"cache": "c0"}, worker=b"b"))[0] == Status.OK
    assert sum(op == OpCode.CACHE_CREATE_WITH_NAME for op in h.nodes[0].ops()) == 3
    await h.close()


@run
async def test_get_or_create_of_a_cache_known_to_exist_is_neither_charged_nor_serialized():
    h = await Harness(1, limits=_SLOW_CHANGES).start()
    for _ in range(50):
        assert await h.call("cache_get_or_create", {"name": "hot"}) == (Status.OK, None)
    h.nodes[0].hold.add(OpCode.CACHE_GET_OR_CREATE_WITH_NAME)
    first, second = (h.send("cache_get_or_create", {"name": "hot"}) for _ in range(2))
    await h.settle()
    # both sent at once: no start waits for the other
    assert sum(op == OpCode.CACHE_GET_OR_CREATE_WITH_NAME for op in h.nodes[0].ops()) == 52
    h.nodes[0].hold.clear()
    h.nodes[0].release()
    await h.until(lambda: first in h.replies and second in h.replies)
    assert (await h.call("cache_destroy", {"cache": "hot"}))[0] == Status.OK
    # gone: a get-or-create may start it again, so it is charged: the third charge of a burst
    # of 3 (the first get-or-create, the destroy, this one); the next start is refused
    assert await h.call("cache_get_or_create", {"name": "hot"}) == (Status.OK, None)
    assert (await h.call("cache_create", {"name": "new"}))[0] == Status.OVERLOADED
    await h.close()


@run
async def test_a_cache_stop_waits_for_requests_in_flight_on_it_and_holds_new_ones():
    h = await Harness(1).start()
    node = h.nodes[0]
    node.hold.add(OpCode.CACHE_GET)
    get = h.send("cache_get", _GET)
    await h.settle()
    destroy = h.send("cache_destroy", {"cache": "ops-kv"})
    put = h.send("cache_put", _PUT)
    other = await h.call("cache_put", {"cache": "elsewhere", "key": 1, "value": "a"})
    await h.settle()
    assert other[0] == Status.OK  # another cache: not held
    assert OpCode.CACHE_DESTROY not in node.ops() and node.ops().count(OpCode.CACHE_PUT) == 1
    node.hold.clear()
    node.release()  # the get answers: the destroy goes, then the held put
    await h.until(lambda: put in h.replies)
    assert h.replies[get][0] == Status.OK and h.replies[destroy][0] == Status.OK
    ops = node.ops()
    assert ops.index(OpCode.CACHE_GET) < ops.index(OpCode.CACHE_DESTROY) < len(ops) - 1
    assert ops[-1] == OpCode.CACHE_PUT and not h.dispatcher.cache_lifecycle.changing
    await h.close()


@run
async def test_every_request_held_by_a_cache_stop_is_answered_even_a_bad_one():
    """A held request runs again through the dispatcher: its errors are answered there, and
    the requests held after it still run (a BadRequest used to escape and strand them)."""
    h = await Harness(1).start()
    node = h.nodes[0]
    node.hold.add(OpCode.CACHE_GET)
    h.send("cache_get", _GET)
    await h.settle()
    h.send("cache_destroy", {"cache": "ops-kv"})
    bad = h.send("cache_get", {"cache": "ops-kv"})  # no key
    good = h.send("cache_put", _PUT)
    await h.settle()
    assert bad not in h.replies and good not in h.replies
    node.hold.clear()
    node.release()
    await h.until(lambda: bad in h.replies and good in h.replies)
    assert h.replies[bad][0] == Status.BAD_REQUEST and h.replies[good][0] == Status.OK
    assert h.dispatcher.internal_errors == 0
    await h.close()


@run
async def test_a_request_held_by_a_cache_stop_is_answered_at_its_own_deadline():
    """A change may hold its cache up to the change's deadline; a request it holds is
    answered DEADLINE_EXCEEDED at its own, not sent, and not run again when the change ends
    (the fuzz harness saw held requests outlive their deadlines)."""
    h = await Harness(1).start()
    node = h.nodes[0]
    node.hold.add(OpCode.CACHE_DESTROY)
    destroy = h.send("cache_destroy", {"cache": "ops-kv"})
    await h.until(lambda: OpCode.CACHE_DESTROY in node.ops())
    put = h.send("cache_put", _PUT, deadline_ms=int(time.time() * 1000) + 100)
    await h.until(lambda: put in h.replies)
    status, payload = h.replies[put]
    assert status == Status.DEADLINE_EXCEEDED and payload["maybe_applied"] is False
    assert destroy not in h.replies and OpCode.CACHE_PUT not in node.ops()
    node.hold.clear()
    node.release()
    await h.until(lambda: destroy in h.replies)
    await h.settle()
    assert OpCode.CACHE_PUT not in node.ops()  # not run again (nor answered twice)
    await h.close()
