"""The broker's connections to the cluster: a few per node, kept open, reconnected with backoff,
and handed out round-robin to the dispatcher."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from protocol import ConnectionConfig, OpCode, Response, cluster
from protocol.features import Feature

from . import log
from .budget import ReplySizes
from .errors import ClusterUnavailable, ConnectError
from .metrics import Metrics
from .nodeconn import NodeConnection, WriteBatch
from .stream import Connector, tcp_connector
from .topology import Topology

_log = log.get("pool")



class NodePool:
    """Owns every NodeConnection.  A connection is usable iff it sits in ``ready``."""

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        protocol_config: ConnectionConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect: Connector | None = None,
        connect_timeout: float,
        connections_per_node: int = 1,
        max_connections_per_node: int | None = None,
        max_backoff: float = 5.0,
        heartbeat_interval: float = 5.0,
        node_warmup: float = 2.0,
        node_byte_budget: int = 32 * 1024 * 1024,
        metrics: Metrics | None = None,
    ) -> None:
        self.addresses = addresses
        self.metrics = metrics or Metrics()
        self._protocol_config = protocol_config
        #: Opens the byte stream under each connection (broker/stream.py): TCP, with TLS when
        #: ``ssl_context`` is given, unless another connector is.
        self._connect = connect or tcp_connector(ssl_context)
        self._connect_timeout = connect_timeout
        self._per_node = connections_per_node
        self._max_per_node = max(max_connections_per_node or connections_per_node,
                                 connections_per_node)
        self._max_backoff = max_backoff
        self.heartbeat_interval = heartbeat_interval
        self.node_warmup = node_warmup
        self.node_byte_budget = node_byte_budget  # per connection, see NodeConnection.send
        # answer sizes learned on every connection; a cold guess lets 16 unknown ones at once
        self.reply_sizes = ReplySizes(cold_guess=max(node_byte_budget // 16, 1))
        self.ready: list[NodeConnection] = []
        self.by_node: dict[object, list[NodeConnection]] = {}  # node UUID -> ready connections
        self.topology = Topology(pick=self.pick, add_node=self.add_node,
                                 addresses=self.addresses, spawn=self.spawn)
        self.batch = WriteBatch()  # the front end opens and closes it around each read batch
        self.replies = WriteBatch()  # node connections open it around each read of answers
        self.on_ready: list[Callable[[], None]] = []  # called when a connection becomes ready
        self._lost_events: dict[NodeConnection, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._round_robin = itertools.count()
        self._first_ready = asyncio.Event()
        self.last_error: str | None = None
        self.connections_lost = 0  # ready connections that closed (node gone, or it hung up)

    def reconfigure(self, *, connect_timeout: float | None = None,
                    max_backoff: float | None = None, connect: Connector | None = None,
                    protocol_config: ConnectionConfig | None = None) -> None:
        """What the connections opened from now on use (a reload; None: unchanged); open
        ones keep theirs."""
        if connect_timeout is not None:
            self._connect_timeout = connect_timeout
        if max_backoff is not None:
            self._max_backoff = max_backoff
        if connect is not None:
            self._connect = connect
        if protocol_config is not None:
            self._protocol_config = protocol_config

    def requests_on(self, cache_id: int) -> int:
        """This broker's requests for ``cache_id`` on its node connections (sent or queued)."""
        return sum(conn.requests_on(cache_id) for conn in self.ready)

    def __repr__(self) -> str:
        return f"<NodePool nodes={len(self.addresses)} ready={len(self.ready)}>"

    async def start(self, wait: float) -> None:
        """Start a keeper task per connection slot; wait up to ``wait`` s for the first one."""
        for host, port in list(self.addresses):
            self._start_keepers(host, port)
        try:
            async with asyncio.timeout(wait):
                await self._first_ready.wait()
        except TimeoutError:
            _log.warning("no_node_reachable_yet", waited_s=wait, last_error=self.last_error)

    def _start_keepers(self, host: str, port: int, slots: range | None = None) -> None:
        for slot in slots or range(self._per_node):
            name = f"{host}:{port}/{slot}"
            self.spawn(self._keep(host, port, slot), name)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` as a task the pool owns (kept referenced, cancelled by close)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_connections(self) -> bool:
        """One more connection to every node (pinned transactions or cursors ran short);
        False when each node already has cluster.max_connections_per_node."""
        if self._per_node >= self._max_per_node:
            return False
        slot = self._per_node
        self._per_node += 1
        _log.info("adding_node_connections", per_node=self._per_node,
                  max_per_node=self._max_per_node)
        for host, port in list(self.addresses):
            self._start_keepers(host, port, range(slot, slot + 1))
        return True

    @property
    def connections_per_node(self) -> int:
        return self._per_node

    def add_node(self, host: str, port: int) -> None:
        """Start connecting to a node the cluster told us about (idempotent)."""
        if (host, port) in self.addresses:
            return
        self.addresses.append((host, port))
        _log.info("node_discovered", node=f"{host}:{port}")
        self._start_keepers(host, port)

    def pick(self) -> NodeConnection:
        """Any ready connection, round-robin; fail fast when the cluster is unreachable."""
        ready = self.ready
        if not ready:
            raise ClusterUnavailable(
                f"no Ignite node is reachable (last error: {self.last_error or 'none yet'})"
            )
        return ready[next(self._round_robin) % len(ready)]

    def pick_below(self, held: Mapping[NodeConnection, int], limit: int) -> NodeConnection | None:
        """A ready connection holding fewer than ``limit`` pinned resources (transactions or
        cursors, counted in ``held``), round-robin; None when every one holds that many."""
        ready = self.ready
        if not ready:
            return self.pick()  # raises ClusterUnavailable
        start = next(self._round_robin)
        for i in range(len(ready)):
            conn = ready[(start + i) % len(ready)]
            if held.get(conn, 0) < limit:
                return conn
        return None

    def route(self, cache_id: int | None, body: bytes | None, key_pos: int) -> NodeConnection:
        """The connection to the primary node of the key encoded at ``body[key_pos]``; any
        ready connection when that node is unknown or unreachable."""
        if cache_id is not None and body is not None:
            if len(self.by_node) < 2:  # one node: no hash to compute, only stay informed
                self.topology.note_cache(cache_id)
                return self.pick()
            node_id = self.topology.node_for(cache_id, body, key_pos)
            conns = self.by_node.get(node_id) if node_id is not None else None
            if conns:
                return conns[next(self._round_robin) % len(conns)]
        return self.pick()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self.ready):
            conn.close("broker shutting down")
        self.ready.clear()

    # -- keeping one slot connected -----------------------------------------------------------

    async def _keep(self, host: str, port: int, slot: int) -> None:
        backoff = 0.1
        was_down = False
        while True:
            conn = NodeConnection(host, port, self._protocol_config, on_lost=self._lost,
                                  on_topology=self.topology.on_topology, batch=self.batch,
                                  replies=self.replies, byte_budget=self.node_byte_budget,
                                  reply_sizes=self.reply_sizes, metrics=self.metrics)
            try:
                accepted = await conn.open(self._connect, self._connect_timeout)
            except ConnectError as exc:
                self.last_error = str(exc)
                self.metrics.node_error(conn.name, "connect_failed")
                _log.warning("node_connect_failed", node=f"{host}:{port}", reason=str(exc),
                             retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                was_down = True
                continue
            backoff = 0.1
            if was_down and not await self._warm_up(conn):
                continue
            returning, was_down = was_down, False
            await self._agree_heartbeat(conn)
            if not conn.is_open:  # lost while agreeing: its loss came before we listened
                was_down = True
                continue
            lost = asyncio.Event()
            self._lost_events[conn] = lost
            self.ready.append(conn)
            self.by_node.setdefault(conn.node_id, []).append(conn)
            self._first_ready.set()
            for callback in self.on_ready:
                callback()
            _log.info("node_readmitted" if returning else "node_connected",
                      node=f"{host}:{port}", slot=slot,
                      node_id=str(accepted.node_id), version=".".join(map(str, accepted.version)))
            await lost.wait()

    async def _warm_up(self, conn: NodeConnection) -> bool:
        """A node that was down answers handshakes before it has finished joining the cluster;
        Ignite 2.17 halts a node that is asked to start a cache in that window.  Hold a
        returning node out of routing for node_warmup seconds; False if it died meanwhile."""
        if self.node_warmup > 0:
            _log.info("node_warming_up", node=f"{conn.host}:{conn.port}", seconds=self.node_warmup)
            await asyncio.sleep(self.node_warmup)
        return conn.is_open

    async def _agree_heartbeat(self, conn: NodeConnection) -> None:
        """Heartbeat at our interval, or at a third of the server's idle timeout if shorter
        (never below 0.5 s), like the Java client."""
        interval = self.heartbeat_interval
        if Feature.HEARTBEAT in conn.features:
            try:
                answer = await conn.request(OpCode.GET_IDLE_TIMEOUT, cluster.get_idle_timeout())
            except ConnectError:
                return
            if isinstance(answer, Response):
                idle_ms = cluster.parse_get_idle_timeout(answer.body)
                if idle_ms > 0:
                    interval = max(0.5, min(interval, idle_ms / 3000))
        conn.heartbeat_interval = interval

    def _lost(self, conn: NodeConnection, reason: str) -> None:
        if conn in self.ready:
            self.ready.remove(conn)
            siblings = self.by_node.get(conn.node_id, [])
            if conn in siblings:
                siblings.remove(conn)
            if not siblings:
                self.by_node.pop(conn.node_id, None)
            self.last_error = f"{conn.host}:{conn.port}: {reason}"
            self.connections_lost += 1
            self.metrics.node_error(conn.name, "connection_lost")
            _log.warning("node_disconnected", node=f"{conn.host}:{conn.port}", reason=reason)
        event = self._lost_events.pop(conn, None)
        if event is not None:
            event.set()
