"""``Client``: pyignite's synchronous client, served by the local broker instead of direct node
connections.  Thread-safe and fork-safe (see transport.py); its methods are the shared specs
of client_base.py, driven here by a blocking transport."""

from __future__ import annotations

import time

from .cache import Cache
from .calls import Call, bind_sync, run_sync
from .client_base import ClientSpecs, NodeDescription, connect_nodes
from .exceptions import ReconnectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

    from .transport import Hold, Transport

__all__ = ["Client"]


class _ConnectionContextManager:
    """What ``connect()`` returns, as in pyignite: the client is already connected; leaving
    the ``with`` block closes it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __enter__(self) -> _ConnectionContextManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()


class Client(ClientSpecs):
    """A pyignite-compatible client that talks to the ignite-broker daemon.

    ``Client(compact_footer=None, partition_aware=True, event_listeners=None, *, broker=None,
    **kwargs)``: ``broker`` is the endpoint (default ``$IGNITE_BROKER`` or the default socket);
    ``timeout`` (seconds per request, default 30) and ``handshake_timeout`` (connect, default
    10) are pyignite's; ``connect_timeout`` (seconds a request waits for a broker that is not
    there at all, default ``$IGNITE_BROKER_CONNECT_TIMEOUT`` or 5) is new, and so is ``label``
    (this worker's name in the broker's metrics, default ``$IGNITE_BROKER_LABEL``); TLS and
    credential arguments are refused (the broker owns them).
    """

    _cache_class = Cache
    _sql_cursor_class = "libclient.cursors:SqlFieldsCursor"
    _tx_class = "libclient.transaction:Transaction"
    _cluster_class = "libclient.cluster:Cluster"

    def __init__(self, compact_footer: bool | None = None, partition_aware: bool = True,
                 event_listeners: Any = None, *, broker: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(compact_footer, partition_aware, event_listeners, broker=broker,
                         **kwargs)
        self._transport: Transport | None = None

    def connect(self, *args: Any) -> _ConnectionContextManager:
        """Reach the broker (``hello``) and check it serves the nodes named, if any.

        Raises BrokerUnavailable (a ReconnectError) after ``handshake_timeout`` when no broker
        answers, NodeMismatchError (a ParameterError) for a node the broker does not serve.
        """
        from .transport import Transport

        nodes = connect_nodes(args)
        if self._transport is None:
            self._transport = Transport(
                self._endpoint, timeout=self._timeout, connect_timeout=self._connect_timeout,
                heartbeat_interval=self._heartbeat,
                on_lost=self._publish_lost, on_restored=self._publish_restored,
                curve=self._connection_args)
        self._publish_handshake_start()
        deadline = time.monotonic() + self._handshake_timeout
        try:
            run_sync(self._hello(nodes), lambda call: self._execute(call, deadline))
        except Exception as exc:
            self._publish_handshake_fail(exc)
            raise
        self._transport.heartbeat_interval = self._heartbeat
        self._publish_handshake_success()
        return _ConnectionContextManager(self)

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            self._publish_closed()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def random_node(self) -> NodeDescription:
        """The node the broker would use for a request without a key."""
        node: NodeDescription = self._run(self._node())
        return node

    # -- the blocking driver ----------------------------------------------------------------

    def _require(self) -> Transport:
        transport = self._transport
        if transport is None:
            raise ReconnectError("the client is not connected: call connect() first")
        return transport

    def _hold(self) -> Hold:
        return self._require().hold()

    def _run(self, spec: Generator[Call, Any, Any]) -> Any:
        return run_sync(spec, self._execute)

    def _execute(self, call: Call, deadline: float | None = None) -> Any:
        transport = self._require()
        query = self._query_start(call)
        if query is None:
            return transport.request(call, deadline)
        try:
            result = transport.request(call, deadline)
        except Exception as exc:
            self._query_end(query, exc)
            raise
        self._query_end(query, None)
        return result


bind_sync(Client)
