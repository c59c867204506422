"""The node pool and the topology over the in-memory network (no JVM): start-up and the
heartbeat interval agreed with the node, reconnect with backoff, warm-up of a returning node,
loss, more connections per node, and partition-aware routing with a partition map and key
holders captured from a real 3-node cluster."""

from __future__ import annotations

import asyncio
import json
import uuid

from broker.pool import NodePool
from broker.stream import MemoryNetwork
from broker.topology import Topology, pick_address
from protocol import ConnectionConfig, OpCode, cache_id
from protocol.binary import TypeCode, encode_value
from tests.broker.fakenode import (
    FEATURES,
    NODE_ENDPOINTS_ALL,
    VECTORS,
    FakeNode,
    Harness,
    run,
)

_AFFINITY = json.loads((VECTORS / "affinity_ignite_2.17.0.json").read_text())


def _pool(network: MemoryNetwork, ports: list[int], **options: object) -> NodePool:
    settings = {"connect_timeout": 1.0, "node_warmup": 0.0, "max_backoff": 0.02, **options}
    return NodePool([("127.0.0.1", p) for p in ports], ConnectionConfig(features=FEATURES),
                    connect=network.connect, **settings)  # type: ignore[arg-type]


@run
async def test_start_connects_every_slot_and_agrees_the_heartbeat_interval():
    network = MemoryNetwork()
    nodes = [FakeNode(network, 10800).start(), FakeNode(network, 10801).start()]
    nodes[1].overrides[OpCode.GET_IDLE_TIMEOUT] = lambda body: (3000).to_bytes(8, "little")
    pool = _pool(network, [10800, 10801], connections_per_node=2, heartbeat_interval=5.0)
    await pool.start(wait=1.0)
    await Harness.until(None, lambda: len(pool.ready) == 4)  # type: ignore[arg-type]
    by_port = {c.port: c.heartbeat_interval for c in pool.ready}
    assert by_port == {10800: 5.0, 10801: 1.0}  # a third of the node's idle timeout
    assert set(pool.by_node) == {n.node_id for n in nodes}
    assert repr(pool) == "<NodePool nodes=2 ready=4>"
    await pool.close()
    assert pool.ready == []


@run
async def test_an_unreachable_node_is_retried_with_backoff_then_warmed_up():
    network = MemoryNetwork()
    pool = _pool(network, [10800], node_warmup=0.05, max_backoff=0.02)
    await pool.start(wait=0.05)  # nothing listens: start gives up waiting, keeps trying
    assert pool.ready == [] and "connection refused" in (pool.last_error or "")
    tries = network.connects
    await asyncio.sleep(0.2)
    assert network.connects > tries + 2  # backoff capped at max_backoff
    node = FakeNode(network, 10800).start()
    await asyncio.sleep(0.02)
    assert node.streams and pool.ready == []  # connected, held out of routing: warm-up
    await Harness.until(None, lambda: len(pool.ready) == 1)  # type: ignore[arg-type]
    await pool.close()


@run
async def test_a_lost_node_leaves_routing_and_is_reconnected_when_it_returns():
    h = await Harness(2, node_warmup=0.0).start()
    ready: list[int] = []
    h.pool.on_ready.append(lambda: ready.append(len(h.pool.ready)))
    down = h.nodes[0]
    down.stop()
    await h.until(lambda: len(h.pool.ready) == 1)
    assert h.pool.connections_lost == 1
    assert down.node_id not in h.pool.by_node
    down.start()
    await h.until(lambda: len(h.pool.ready) == 2)
    assert ready == [2]
    await h.close()


@run
async def test_more_connections_per_node_up_to_the_maximum():
    h = await Harness(2, connections_per_node=1, max_connections_per_node=2).start()
    assert h.pool.add_connections() is True
    await h.until(lambda: len(h.pool.ready) == 4)
    assert h.pool.add_connections() is False and h.pool.connections_per_node == 2
    held = {conn: 1 for conn in h.pool.ready[:3]}
    assert h.pool.pick_below(held, 1) is h.pool.ready[3]
    assert h.pool.pick_below({c: 1 for c in h.pool.ready}, 1) is None
    await h.close()


def _routing_harness() -> Harness:
    """Three nodes with the captured cluster's ids; their CACHE_PARTITIONS answer is the
    captured map (whichever caches are asked for)."""
    h = Harness(3)
    for node, node_id in zip(h.nodes, _AFFINITY["nodes"], strict=True):
        node.node_id = uuid.UUID(node_id)
    return h


@run
async def test_keys_go_to_their_primary_node_once_the_captured_partition_map_arrived():
    h = await _routing_harness().start()
    probes = [p for p in _AFFINITY["probes"]
              if p["cache"] == "aff-live-default" and p["kind"] in ("int", "long")][:12]
    assert {p["holder"] for p in probes} == set(_AFFINITY["nodes"][1:]) | {
        p["holder"] for p in probes}
    cid = cache_id("aff-live-default")
    first = h.pool.route(cid, b"\x00" * 5 + bytes.fromhex(probes[0]["key_hex"]), 5)
    assert first in h.pool.ready  # no map yet: any node, and one refresh starts
    await h.until(lambda: h.pool.topology.refreshes == 1)
    assert not h.pool.topology.stale
    for probe in probes:
        body = b"\x00" * 5 + bytes.fromhex(probe["key_hex"])
        assert str(h.pool.route(cid, body, 5).node_id) == probe["holder"], probe
    await h.close()


@run
async def test_a_newer_affinity_version_makes_the_map_stale_and_refreshes_it_once():
    h = await _routing_harness().start()
    cid = cache_id("aff-live-default")
    key = b"\x00" * 5 + encode_value(1, TypeCode.INT)
    h.pool.route(cid, key, 5)
    await h.until(lambda: h.pool.topology.refreshes == 1)
    for node in h.nodes:
        node.topology = (14, 0)  # every answer now carries a newer affinity version
    await h.call("cache_get", {"cache": "aff-live-default", "key": 1})
    assert h.pool.topology.stale and h.pool.topology.latest == (14, 0)
    for _ in range(5):
        h.pool.route(cid, key, 5)  # stale: one refresh at a time
    await h.until(lambda: h.pool.topology.refreshes == 2)
    assert sum(n.ops().count(OpCode.CACHE_PARTITIONS) for n in h.nodes) == 2
    await h.close()


@run
async def test_the_topology_discovers_nodes_through_the_callables_it_is_given():
    spawned: list[object] = []
    added: list[tuple[str, int]] = []
    h = await Harness(1).start()
    h.nodes[0].overrides[OpCode.CLUSTER_GROUP_GET_NODE_ENDPOINTS] = lambda body: \
        NODE_ENDPOINTS_ALL
    conn = h.pool.ready[0]
    topology = Topology(pick=lambda: conn, add_node=lambda host, port: added.append((host, port)),
                        addresses=[("127.0.0.1", 10800)],
                        spawn=lambda coro, name: spawned.append((name, coro)))
    assert topology.note_cache(1) is False  # a new cache: a refresh is asked for, not run
    assert [name for name, _ in spawned] == ["topology-refresh"]
    await spawned[0][1]  # type: ignore[misc]  # the caller decides where it runs
    assert topology.refreshes == 1 and len(added) == 1 and added[0][0] == "127.0.0.1"
    await h.close()


def test_a_discovered_node_is_reached_on_the_configured_nodes_kind_of_network():
    loopback = [("127.0.0.1", 10800)]
    assert pick_address(("10.0.0.5", "127.0.0.1", "::1"), loopback) == "127.0.0.1"
    assert pick_address(("::1", "10.0.0.5", "fe80::1"), [("10.0.0.1", 10800)]) == "10.0.0.5"
    assert pick_address(("host.example",), loopback) is None


@run
async def test_a_connection_lost_while_agreeing_the_heartbeat_is_never_handed_out():
    """CI found a closed connection left in ``ready`` for good (every cursor pinned to it
    failed "connection is closed"): it had been lost while its keeper asked the node's idle
    timeout, before the keeper listened for its loss."""
    network = MemoryNetwork()
    node = FakeNode(network, 10800)
    node.hold.add(OpCode.GET_IDLE_TIMEOUT)
    node.start()
    pool = _pool(network, [10800])
    await pool.start(wait=0.05)
    await Harness.until(None, lambda: len(node.held) == 1)  # type: ignore[arg-type]
    node.hold.clear()
    node.held.clear()
    node.streams[0].eof()  # the node hangs up while the keeper awaits the idle timeout
    await Harness.until(None, lambda: len(node.streams) == 2 and len(pool.ready) == 1)  # type: ignore[arg-type]
    assert all(conn.is_open for conn in pool.ready)
    assert pool.ready[0].port == 10800
    await pool.close()
