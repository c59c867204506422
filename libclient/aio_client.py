"""``AioClient``: pyignite's asyncio client over the broker, for uvicorn/FastAPI workers.  The
methods are client_base.py's specs, driven by the asyncio transport (aio_transport.py);
``connect()`` is awaited (or used with ``async with``) as in pyignite."""

from __future__ import annotations

import time

from .aio_cache import AioCache
from .aio_transport import AioHold, AioTransport
from .calls import Call, bind_async, run_async
from .client_base import ClientSpecs, NodeDescription, connect_nodes
from .exceptions import ReconnectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

__all__ = ["AioClient"]


class _ConnectionContextManager:
    def __init__(self, client: AioClient, nodes: list[str]) -> None:
        self.client = client
        self.nodes = nodes

    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> _ConnectionContextManager:
        await self.client._connect(self.nodes)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


class AioClient(ClientSpecs):
    """The asyncio client.  As in pyignite, it takes no ``timeout`` keyword: every coroutine
    method takes its own ``timeout`` (seconds; 0 = the 30 s default)."""

    _cache_class = AioCache
    _sql_cursor_class = "libclient.cursors:AioSqlFieldsCursor"
    _tx_class = "libclient.transaction:AioTransaction"
    _cluster_class = "libclient.aio_cluster:AioCluster"
    _allowed_kwargs = frozenset({"handshake_timeout", "connect_timeout", "curve_serverkey",
                                 "curve_publickey", "curve_secretkey"})

    def __init__(self, compact_footer: bool | None = None, partition_aware: bool = True,
                 event_listeners: Any = None, *, broker: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(compact_footer, partition_aware, event_listeners, broker=broker,
                         **kwargs)
        self._transport: AioTransport | None = None

    def connect(self, *args: Any) -> _ConnectionContextManager:
        """``await client.connect(...)`` or ``async with client.connect(...)``."""
        return _ConnectionContextManager(self, connect_nodes(args))

    async def _connect(self, nodes: list[str]) -> None:
        if self._transport is None:
            self._transport = AioTransport(
                self._endpoint, timeout=self._timeout, connect_timeout=self._connect_timeout,
                heartbeat_interval=self._heartbeat,
                on_lost=self._publish_lost, on_restored=self._publish_restored,
                curve=self._connection_args)
        self._publish_handshake_start()
        deadline = time.monotonic() + self._handshake_timeout
        try:
            await run_async(self._hello(nodes), lambda call: self._aexecute(call, deadline))
        except Exception as exc:
            self._publish_handshake_fail(exc)
            raise
        self._transport.heartbeat_interval = self._heartbeat
        self._publish_handshake_success()

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()
            self._publish_closed()

    async def random_node(self) -> NodeDescription:
        """The node the broker would use for a request without a key (a coroutine, as in
        pyignite)."""
        node: NodeDescription = await self._arun(self._node())
        return node

    # -- the asyncio driver -----------------------------------------------------------------

    def _require(self) -> AioTransport:
        transport = self._transport
        if transport is None:
            raise ReconnectError("the client is not connected: await connect() first")
        return transport

    def _hold(self) -> AioHold:
        return self._require().hold()

    async def _arun(self, spec: Generator[Call, Any, Any], timeout: float = 0) -> Any:
        deadline = time.monotonic() + (timeout or self._timeout)
        return await run_async(spec, lambda call: self._aexecute(call, deadline))

    async def _aexecute(self, call: Call, deadline: float) -> Any:
        transport = self._require()
        query = self._query_start(call)
        if query is None:
            return await transport.request(call, deadline)
        try:
            result = await transport.request(call, deadline)
        except Exception as exc:
            self._query_end(query, exc)
            raise
        self._query_end(query, None)
        return result


bind_async(AioClient)
