"""Partition-aware routing and node discovery: the partition -> node map per cache, marked stale
when a node reports a newer affinity topology and refreshed one request at a time; and the
cluster's node list (op 5102), so the broker reaches every server from one configured address.

Theory of operation.  Any response may carry the AFFINITY_TOPOLOGY_CHANGED flag with the
node's current affinity version.  A version newer than the one our map was built for makes
the map stale; the next keyed request starts one refresh (CACHE_PARTITIONS for every cache
seen so far, and the node endpoints) and is itself sent to any node.  Until the fresh map
arrives requests keep flowing to any node: a wrong guess only costs a hop, never correctness.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from protocol import CodecContext, OpCode, ProtocolError, Response, affinity, cluster
from protocol.binary.codec import Buffer
from protocol.features import Feature

from . import log

if TYPE_CHECKING:
    from .nodeconn import NodeConnection

_log = log.get("topology")



class Topology:
    """Owns the affinity map; the pool asks it which node a key belongs to.

    It reaches the cluster through the callables it is given: ``pick()`` any ready
    connection, ``add_node(host, port)`` a discovered node, ``addresses`` the nodes known so
    far, and ``spawn(coroutine, name)`` runs its refresh (it creates no task itself)."""

    def __init__(
        self,
        *,
        pick: Callable[[], NodeConnection],
        add_node: Callable[[str, int], None],
        addresses: list[tuple[str, int]],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self._pick = pick
        self._add_node = add_node
        self._addresses = addresses
        self._spawn = spawn
        self.mapping: affinity.AffinityMapping | None = None
        self.latest: tuple[int, int] | None = None  # newest affinity version any node reported
        self._caches: set[int] = set()
        self._refreshing = False
        self.refreshes = 0
        self.codec: CodecContext | None = None  # set by the dispatcher: complex keys' schemas

    def __repr__(self) -> str:
        version = self.mapping.version if self.mapping else None
        return (f"<Topology map={version} latest={self.latest} caches={len(self._caches)} "
                f"refreshes={self.refreshes}>")

    @property
    def stale(self) -> bool:
        return self.mapping is None or affinity.is_newer(self.latest, self.mapping.version)

    def on_topology(self, conn: NodeConnection, version: tuple[int, int]) -> None:
        if affinity.is_newer(version, self.latest):
            self.latest = version

    def note_cache(self, cache_id: int) -> bool:
        """Remember a cache keyed requests use and keep the map (and the node list) fresh;
        False while this cache has no mapping yet."""
        if cache_id not in self._caches:
            self._caches.add(cache_id)
            self._schedule_refresh()
            return False
        mapping = self.mapping  # the map is seldom stale: compare versions before is_newer
        if mapping is None or (self.latest != mapping.version and self.stale):
            self._schedule_refresh()
        return True

    def node_for(self, cache_id: int, body: Buffer, key_pos: int) -> uuid.UUID | None:
        """The primary node of the key encoded at ``body[key_pos]``, or None (any node)."""
        if not self.note_cache(cache_id):
            return None
        mapping = self.mapping
        if mapping is None:
            return None
        return mapping.node_for_encoded(cache_id, body, self.codec, key_pos)

    # -- refresh ------------------------------------------------------------------------------

    def _schedule_refresh(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self._spawn(self._refresh(), "topology-refresh")

    async def _refresh(self) -> None:
        try:
            conn = self._pick()
            await self._refresh_partitions(conn)
            if Feature.CLUSTER_GROUP_GET_NODES_ENDPOINTS in conn.features:
                await self._discover_nodes(conn)
        except Exception as exc:  # routing falls back to any node; the next request retries
            _log.warning("topology_refresh_failed", reason=str(exc))
        finally:
            self._refreshing = False

    async def _refresh_partitions(self, conn: NodeConnection) -> None:
        caches = sorted(self._caches)
        response = await conn.request(OpCode.CACHE_PARTITIONS,
                                      affinity.cache_partitions(caches, conn.features))
        if not isinstance(response, Response):
            raise ProtocolError(f"CACHE_PARTITIONS failed: {response}")
        fresh = affinity.parse_cache_partitions(response.body, conn.features)
        self.mapping = fresh if self.mapping is None else self.mapping.merge(fresh)
        if affinity.is_newer(fresh.version, self.latest):
            self.latest = fresh.version
        self.refreshes += 1
        _log.info("partition_map_refreshed", version=list(fresh.version), caches=len(caches))

    async def _discover_nodes(self, conn: NodeConnection) -> None:
        response = await conn.request(OpCode.CLUSTER_GROUP_GET_NODE_ENDPOINTS,
                                      cluster.cluster_group_get_node_endpoints())
        if not isinstance(response, Response):
            return
        endpoints = cluster.parse_cluster_group_get_node_endpoints(response.body)
        for endpoint in endpoints.added:
            address = pick_address(endpoint.addresses, self._addresses)
            if address is not None:
                self._add_node(address, endpoint.port)


def pick_address(candidates: tuple[str, ...], configured: list[tuple[str, int]]) -> str | None:
    """The address to reach a discovered node by: one on the same kind of network as the
    configured nodes (loopback only when they are loopback), IPv4 first."""
    loopback = all(_is_loopback(host) for host, _ in configured)
    usable = [a for a in candidates if _is_ip(a) and _is_loopback(a) == loopback]
    usable.sort(key=lambda a: (":" in a, a))
    return usable[0] if usable else None


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
