"""pyignite's monitoring API: listener base classes, immutable event classes, and the dispatcher
the clients publish through.

Events describe the stub's link to the broker, not node connections: ``host`` is the broker
endpoint (e.g. ``ipc:///run/ignite-broker/broker.sock``), ``port`` is 0 and ``node_uuid`` is ''
because the broker, not the stub, picks the node.  Query events carry pyignite's op codes and
names (``OP_CACHE_GET`` ...), one start/success-or-fail pair per broker request.  As in
pyignite, listeners run synchronously and their exceptions are swallowed.
"""

from __future__ import annotations

import contextlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, ClassVar


__all__ = [
    "AuthenticationFailedEvent",
    "ConnectionClosedEvent",
    "ConnectionEventListener",
    "ConnectionLostEvent",
    "HandshakeFailedEvent",
    "HandshakeStartEvent",
    "HandshakeSuccessEvent",
    "QueryEventListener",
    "QueryFailEvent",
    "QueryStartEvent",
    "QuerySuccessEvent",
]


class _BaseEvent:
    __slots__: tuple[str, ...] = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{self.__class__.__name__} is immutable")

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f, None)}" for f in self._fields)
        return f"{self.__class__.__name__}({fields})"


class _ConnectionEvent(_BaseEvent):
    __slots__ = ("host", "port")


class _HandshakeEvent(_ConnectionEvent):
    __slots__ = ("protocol_context",)
    _fields: ClassVar[tuple[str, ...]] = ("host", "port", "protocol_context")

    def __init__(self, host: str, port: int, protocol_context: Any = None, **kwargs: Any) -> None:
        context = protocol_context.copy() if protocol_context is not None else None
        super().__init__(host=host, port=port, protocol_context=context, **kwargs)


class HandshakeStartEvent(_HandshakeEvent):
    """Published when the stub starts its ``hello`` with the broker."""

    __slots__ = ()


class HandshakeFailedEvent(_HandshakeEvent):
    """Published when ``hello`` failed (no broker, or it refused the node list)."""

    __slots__ = ("error_msg",)
    _fields = ("host", "port", "protocol_context", "error_msg")

    def __init__(self, host: str, port: int, protocol_context: Any = None, err: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(host, port, protocol_context, error_msg=repr(err) if err else "",
                         **kwargs)


class AuthenticationFailedEvent(HandshakeFailedEvent):
    """Never published by the stub: authentication is the broker's business."""

    __slots__ = ()


class HandshakeSuccessEvent(_HandshakeEvent):
    """Published when the broker answered ``hello`` (or answered again after being lost)."""

    __slots__ = ("node_uuid",)
    _fields = ("host", "port", "node_uuid", "protocol_context")

    def __init__(self, host: str, port: int, protocol_context: Any, node_uuid: Any,
                 **kwargs: Any) -> None:
        super().__init__(host, port, protocol_context,
                         node_uuid=str(node_uuid) if node_uuid else "", **kwargs)


class ConnectionClosedEvent(_ConnectionEvent):
    """Published when the client is closed."""

    __slots__ = ("node_uuid",)
    _fields: ClassVar[tuple[str, ...]] = ("host", "port", "node_uuid")

    def __init__(self, host: str, port: int, node_uuid: Any, **kwargs: Any) -> None:
        super().__init__(host=host, port=port, node_uuid=str(node_uuid) if node_uuid else "",
                         **kwargs)


class ConnectionLostEvent(ConnectionClosedEvent):
    """Published when the broker went away while the stub was using it."""

    __slots__ = ("error_msg",)
    _fields = ("host", "port", "node_uuid", "error_msg")

    def __init__(self, host: str, port: int, node_uuid: Any, err: Any, **kwargs: Any) -> None:
        super().__init__(host, port, node_uuid, error_msg=repr(err) if err else "", **kwargs)


class _EventListener:
    pass


class ConnectionEventListener(_EventListener):
    """Base class for connection event listeners."""

    def on_handshake_start(self, event: HandshakeStartEvent) -> None:
        pass

    def on_handshake_success(self, event: HandshakeSuccessEvent) -> None:
        pass

    def on_handshake_fail(self, event: HandshakeFailedEvent) -> None:
        pass

    def on_authentication_fail(self, event: AuthenticationFailedEvent) -> None:
        pass

    def on_connection_closed(self, event: ConnectionClosedEvent) -> None:
        pass

    def on_connection_lost(self, event: ConnectionLostEvent) -> None:
        pass


class _QueryEvent(_BaseEvent):
    __slots__ = ("host", "node_uuid", "op_code", "op_name", "port", "query_id")
    _fields: ClassVar[tuple[str, ...]] = (
        "host", "port", "node_uuid", "query_id", "op_code", "op_name",
    )

    def __init__(self, host: str, port: int, node_uuid: Any, query_id: int, op_code: int,
                 op_name: str, **kwargs: Any) -> None:
        super().__init__(host=host, port=port, node_uuid=str(node_uuid) if node_uuid else "",
                         query_id=query_id, op_code=op_code, op_name=op_name, **kwargs)


class QueryStartEvent(_QueryEvent):
    """Published when a request is sent to the broker."""

    __slots__ = ()


class QuerySuccessEvent(_QueryEvent):
    """Published when a request succeeded; ``duration`` in ms."""

    __slots__ = ("duration",)
    _fields = (*_QueryEvent._fields, "duration")

    def __init__(self, host: str, port: int, node_uuid: Any, query_id: int, op_code: int,
                 op_name: str, duration: int, **kwargs: Any) -> None:
        super().__init__(host, port, node_uuid, query_id, op_code, op_name, duration=duration,
                         **kwargs)


class QueryFailEvent(_QueryEvent):
    """Published when a request failed; ``duration`` in ms, ``err_msg`` as pyignite names it."""

    __slots__ = ("duration", "err_msg")
    _fields = (*_QueryEvent._fields, "duration", "err_msg")

    def __init__(self, host: str, port: int, node_uuid: Any, query_id: int, op_code: int,
                 op_name: str, duration: int, err: Any, **kwargs: Any) -> None:
        super().__init__(host, port, node_uuid, query_id, op_code, op_name, duration=duration,
                         err_msg=repr(err) if err else "", **kwargs)


class QueryEventListener(_EventListener):
    """Base class for query event listeners."""

    def on_query_start(self, event: QueryStartEvent) -> None:
        pass

    def on_query_success(self, event: QuerySuccessEvent) -> None:
        pass

    def on_query_fail(self, event: QueryFailEvent) -> None:
        pass


class _EventListeners:
    """The client's listeners, split by kind; publishing never raises."""

    def __init__(self, listeners: Sequence[Any] | None) -> None:
        self._connection = [x for x in listeners or () if isinstance(x, ConnectionEventListener)]
        self._query = [x for x in listeners or () if isinstance(x, QueryEventListener)]

    @property
    def enabled_connection_listener(self) -> bool:
        return bool(self._connection)

    @property
    def enabled_query_listener(self) -> bool:
        return bool(self._query)

    def publish_connection(self, method: str, event: _BaseEvent) -> None:
        _publish(self._connection, method, event)

    def publish_query(self, method: str, event: _BaseEvent) -> None:
        _publish(self._query, method, event)


def _publish(listeners: list[Any], method: str, event: _BaseEvent) -> None:
    for listener in listeners:
        callback: Callable[[Any], Any] = getattr(listener, method)
        with contextlib.suppress(Exception):  # pyignite swallows listener errors; so do we
            callback(event)
