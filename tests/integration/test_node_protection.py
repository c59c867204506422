"""One worker cannot halt an Ignite node by asking for many big answers at once (issue 10,
item 2): the broker bounds the bytes in flight on each node connection, learning how big
each cache's answers are.  A node of its own, since without the bound it dies."""

from __future__ import annotations

import os
import struct

import pytest

from broker.devcluster.brokerproc import running_broker
from libclient import Client
from protocol import ipc
from tests.integration.rawipc import Stream

pytestmark = pytest.mark.integration

VALUE_BYTES = 900_000
GETS = 600  # ~540 MB of answers at once: more than the dev node's 512 MiB heap
KEYS = 8


@pytest.fixture(scope="module")
def broker(ignite_expendable, tmp_path_factory):
    with running_broker(ignite_expendable.addresses, tmp_path_factory.mktemp("protect"),
                        {"limits.max_request_bytes": 1024 * 1024}) as proc:
        yield proc


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_pipelined_big_gets_do_not_halt_the_node(broker, ignite_expendable):
    """Was: one worker pipelining 256 gets of 1 MiB values ran a node out of heap, and its
    failure handler halted the JVM."""
    with Client(broker=broker.stream_endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache("protect-big")
        for key in range(KEYS):
            cache.put(key, bytes([key]) * VALUE_BYTES)
    stream = Stream(broker.stream_endpoint, timeout=120)
    try:
        requests = (ipc.pack_request(n, "cache_get", {"cache": "protect-big", "key": n % KEYS})
                    for n in range(GETS))
        stream.send_bytes(b"".join(struct.pack(">I", len(r)) + r for r in requests))
        for _ in range(GETS):
            reply = stream.recv()
            assert reply.status == ipc.Status.OK, reply.payload
            assert reply.payload == bytes([reply.request_id % KEYS]) * VALUE_BYTES
    finally:
        stream.close()
    assert all(_alive(pid) for pid in ignite_expendable.pids)
    stats = broker.admin("show stats")
    assert stats["node_connections_lost"] == 0
    assert all(node["bytes_in_flight"] == 0 and node["queued"] == 0
               for node in broker.admin("show nodes"))
