"""Automatic batching (limits.batch_requests, on by default) against real nodes, over both
transports (ZeroMQ ipc:// DEALERs and unix:// streams): many workers pipelining gets and puts
each get exactly their own answers while the broker sends batches (show stats says so), on one
node and on three (batches grouped by the keys' primary node); a get after an acknowledged put sees
it; requests inside a transaction are never batched; and a broker with batching off answers
the same."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.devcluster.brokerproc import running_broker
from protocol import ipc
from tests.integration.rawipc import Raw, Stream

pytestmark = pytest.mark.integration

PESSIMISTIC, REPEATABLE_READ = 1, 1
SOCKETS = 8
PIPELINED = 40


Opener = Callable[[], Any]


def _openers(proc: Any) -> dict[str, Opener]:
    return {"ipc": lambda: Raw(proc.endpoint), "unix": lambda: Stream(proc.stream_endpoint)}


@pytest.fixture(scope="module")
def broker1(ignite_node, tmp_path_factory) -> Iterator[Any]:
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("batching1"), {}) as proc:
        yield proc


@pytest.fixture(scope="module")
def broker3(ignite_cluster3, tmp_path_factory) -> Iterator[Any]:
    with running_broker(ignite_cluster3.addresses, tmp_path_factory.mktemp("batching3"),
                        {}) as proc:
        yield proc


@pytest.fixture(scope="module")
def broker_off(ignite_node, tmp_path_factory) -> Iterator[Any]:
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("batching-off"),
                        {"limits.batch_requests": False}) as proc:
        yield proc


def _cache(proc: Any) -> str:
    name = f"batching-{uuid.uuid4().hex[:8]}"
    raw = Raw(proc.endpoint)
    try:
        raw.call("cache_get_or_create", name=name)
    finally:
        raw.close()
    return name


def _pipeline_all(clients: list[Any], requests: list[list[tuple[str, dict[str, Any]]]]
                  ) -> list[dict[int, ipc.Reply]]:
    """Each client sends all its requests at once, then reads every reply (by request id)."""
    for client, mine in zip(clients, requests, strict=True):
        for rid, (op, args) in enumerate(mine, 1):
            client.send(ipc.pack_request(rid, op, args))
    answers = []
    for client, mine in zip(clients, requests, strict=True):
        replies = {}
        for _ in mine:
            reply = client.recv()
            replies[reply.request_id] = reply
        answers.append(replies)
    return answers


def _many_workers_get_their_own(proc: Any, transport: str) -> None:
    cache = _cache(proc)
    clients = [_openers(proc)[transport]() for _ in range(SOCKETS)]
    try:
        puts = [[("cache_put", {"cache": cache, "key": f"{s}-{i}", "value": [s, i]})
                 for i in range(PIPELINED)] for s in range(SOCKETS)]
        for replies in _pipeline_all(clients, puts):
            assert [(r.status, r.payload) for r in replies.values()] == [
                (ipc.Status.OK, None)] * PIPELINED
        gets = [[("cache_get", {"cache": cache, "key": f"{s}-{i}"}) for i in range(PIPELINED)]
                + [("cache_get", {"cache": cache, "key": f"absent-{s}"})]
                for s in range(SOCKETS)]
        for s, replies in enumerate(_pipeline_all(clients, gets)):
            assert all(r.status == ipc.Status.OK for r in replies.values())
            assert [replies[i + 1].payload for i in range(PIPELINED)] == [
                [s, i] for i in range(PIPELINED)]
            assert replies[PIPELINED + 1].payload is None
    finally:
        for client in clients:
            client.close()


def _batched(proc: Any) -> int:
    stats: int = proc.admin("show stats")["batched_requests"]
    return stats


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_many_workers_pipelining_get_their_own_answers_in_batches(broker1, transport):
    before = _batched(broker1)
    _many_workers_get_their_own(broker1, transport)
    assert _batched(broker1) > before


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_on_three_nodes_batches_are_sent_and_answers_stay_exact(
        broker3, transport):
    before = _batched(broker3)
    _many_workers_get_their_own(broker3, transport)
    assert _batched(broker3) > before


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_the_same_answers_with_batching_off(broker_off, transport):
    _many_workers_get_their_own(broker_off, transport)
    assert _batched(broker_off) == 0


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_a_get_after_an_acknowledged_put_sees_it_while_others_batch(broker1, transport):
    """(Pipelined requests on one node connection may run in any order on the node, batching
    or not: a worker that needs its put seen waits for its answer, as the stub does.)"""
    cache = _cache(broker1)
    clients = [_openers(broker1)[transport]() for _ in range(4)]
    try:
        for i in range(10):
            noise = [[request for j in range(5) for request in (
                ("cache_put", {"cache": cache, "key": f"n{c}-{j}", "value": j}),
                ("cache_get", {"cache": cache, "key": "k"}))] for c in range(3)]
            mine = [("cache_put", {"cache": cache, "key": "k", "value": i})]
            _pipeline_all(clients, [mine, *noise])
            mine = [("cache_get", {"cache": cache, "key": "k"})]
            replies = _pipeline_all(clients, [mine, *noise])[0]
            assert (replies[1].status, replies[1].payload) == (ipc.Status.OK, i)
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("transport", ["ipc", "unix"])
def test_requests_inside_a_transaction_are_never_batched(broker1, transport):
    raw = Raw(broker1.endpoint)
    cache = f"batching-tx-{uuid.uuid4().hex[:8]}"
    raw.call("cache_get_or_create", config={0: cache, 2: 0})  # atomicity TRANSACTIONAL
    raw.close()
    client = _openers(broker1)[transport]()
    try:
        client.send(ipc.pack_request(1, "tx_start", {"concurrency": PESSIMISTIC,
                                                     "isolation": REPEATABLE_READ}))
        tx = client.recv().payload
        before = _batched(broker1)
        puts = [("cache_put", {"cache": cache, "key": i, "value": i, "tx": tx})
                for i in range(PIPELINED)]
        gets = [("cache_get", {"cache": cache, "key": i, "tx": tx}) for i in range(PIPELINED)]
        replies = _pipeline_all([client], [puts])[0]
        assert all(r.status == ipc.Status.OK for r in replies.values())
        replies = _pipeline_all([client], [gets])[0]
        assert [replies[i + 1].payload for i in range(PIPELINED)] == list(range(PIPELINED))
        assert _batched(broker1) == before
        client.send(ipc.pack_request(999, "tx_end", {"tx": tx, "commit": True}))
        assert client.recv().status == ipc.Status.OK
    finally:
        client.close()
