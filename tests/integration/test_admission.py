"""Admission control and hostile peers against a real broker and node: the per-worker
in-flight limit answers 'overloaded' instead of queueing without bound, identical reads can be
coalesced, and a forged routing id gains nothing."""

from __future__ import annotations

import os
import uuid

import pytest
import zmq

from broker.devcluster.brokerproc import running_broker
from protocol import ipc
from tests.integration.rawipc import Raw

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    settings = {"limits.max_in_flight_per_worker": 4, "limits.coalesce_reads": True}
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("admission"),
                        settings) as proc:
        yield proc


def _dealer(endpoint: str, routing_id: bytes | None = None) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    sock.connect(endpoint)
    return sock


def _pipeline(sock: zmq.Socket, requests: list[bytes]) -> list[ipc.Reply]:
    for frame in requests:
        sock.send(frame)
    return [ipc.unpack_reply(sock.recv()) for _ in requests]


def test_a_flooding_worker_is_told_it_is_overloaded(broker):
    raw = Raw(broker.endpoint)
    raw.call("cache_get_or_create", name="flood")
    sock = _dealer(broker.endpoint)
    try:
        replies = _pipeline(sock, [ipc.pack_request(i, "cache_get", {"cache": "flood", "key": i})
                                   for i in range(1, 201)])
    finally:
        sock.close()
        raw.close()
    statuses = [r.status for r in replies]
    assert sorted(r.request_id for r in replies) == list(range(1, 201))  # all answered
    assert ipc.Status.OVERLOADED in statuses and ipc.Status.OK in statuses
    overloaded = next(r for r in replies if r.status == ipc.Status.OVERLOADED)
    assert "limit 4" in overloaded.payload["message"]


def test_identical_reads_from_many_workers_share_cluster_requests(broker):
    raw = Raw(broker.endpoint)
    raw.call("cache_get_or_create", name="hot")
    raw.call("cache_put", cache="hot", key="hot-key", value="hot value")
    before = broker.admin("show stats")["coalesced_reads"]
    socks = [_dealer(broker.endpoint) for _ in range(20)]
    try:
        for sock in socks:
            for i in range(4):
                sock.send(ipc.pack_request(i + 1, "cache_get", {"cache": "hot", "key": "hot-key"}))
        replies = [ipc.unpack_reply(sock.recv()) for sock in socks for _ in range(4)]
    finally:
        for sock in socks:
            sock.close()
        raw.close()
    assert all(r.status == ipc.Status.OK and r.payload == "hot value" for r in replies)
    assert broker.admin("show stats")["coalesced_reads"] > before


def test_a_forged_routing_id_gains_nothing(broker):
    session = b"\x01" + os.urandom(15)
    victim = _dealer(broker.endpoint, session + b"\x00\x00\x00\x01")
    sibling = _dealer(broker.endpoint, session + b"\x00\x00\x00\x02")
    try:
        name = f"forged-{uuid.uuid4().hex[:6]}"
        [reply] = _pipeline(victim, [ipc.pack_request(1, "cache_get_or_create",
                                                      {"config": {0: name, 2: 0}})])
        [reply] = _pipeline(victim, [ipc.pack_request(2, "tx_start", {})])
        tx = reply.payload
        # Another socket of the same session cannot use the victim's transaction...
        [reply] = _pipeline(sibling, [ipc.pack_request(1, "cache_put",
                                                       {"cache": name, "key": 1, "value": 1,
                                                        "tx": tx})])
        assert reply.status == ipc.Status.BAD_REQUEST
        assert "not open on this worker" in reply.payload["message"]
        # ... and a socket claiming the victim's exact id is ignored by ZeroMQ while the
        # victim is connected (ROUTER_HANDOVER=0): it never reaches the broker.
        impostor = _dealer(broker.endpoint, session + b"\x00\x00\x00\x01")
        impostor.setsockopt(zmq.RCVTIMEO, 1000)
        impostor.send(ipc.pack_request(9, "tx_end", {"tx": tx, "commit": True}))
        with pytest.raises(zmq.Again):
            impostor.recv()
        impostor.close()
        [reply] = _pipeline(victim, [ipc.pack_request(3, "tx_end", {"tx": tx, "commit": False})])
        assert reply.status == ipc.Status.OK
    finally:
        victim.close()
        sibling.close()
