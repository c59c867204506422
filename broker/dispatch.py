"""Turns a worker's request into a thin-client request on a chosen node connection, and the
node's answer into the worker's reply.  One table row per IPC op."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import ErrorResponse, LocalProtocolError, OpCode, ProtocolError, cache_id, ops
from protocol.ipc import Request, Status, Typed, error_payload

from . import log
from .errors import BadRequest, BrokerError, ClusterUnavailable, UnknownOp
from .nodeconn import ConnectionLost, Outcome
from .pool import NodePool

ReplyFn = Callable[[int, int, Any], None]

_log = log.get("dispatch")


@dataclass(frozen=True, slots=True)
class OpSpec:
    """How one IPC op maps onto the thin-client protocol."""

    encode: Callable[[dict[str, Any]], tuple[OpCode, bytes]]
    decode: Callable[[Any], Any]
    idempotent: bool  # safe to repeat: a read, never a write


def _arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...] = object) -> Any:
    try:
        value = args[name]
    except KeyError:
        raise BadRequest(f"missing argument {name!r}") from None
    if not isinstance(value, kind):
        raise BadRequest(f"argument {name!r} has the wrong type ({type(value).__name__})")
    return value


def _value(args: dict[str, Any], name: str) -> tuple[Any, int | None]:
    """An Ignite value and its optional type hint (a Typed wrapper from the worker)."""
    value = _arg(args, name)
    if isinstance(value, Typed):
        return value.value, value.type_code
    return value, None


_cache_ids: dict[str, int] = {}


def _cache(args: dict[str, Any]) -> int:
    name = _arg(args, "cache", str)
    cid = _cache_ids.get(name)
    if cid is None:
        if len(_cache_ids) > 100_000:
            _cache_ids.clear()
        cid = _cache_ids[name] = cache_id(name)
    return cid


def _nothing(body: Any) -> None:
    return None


def _encode_get(args: dict[str, Any]) -> tuple[OpCode, bytes]:
    key, key_hint = _value(args, "key")
    return OpCode.CACHE_GET, ops.cache_get(_cache(args), key, key_hint=key_hint)


def _encode_put(args: dict[str, Any]) -> tuple[OpCode, bytes]:
    key, key_hint = _value(args, "key")
    value, value_hint = _value(args, "value")
    body = ops.cache_put(_cache(args), key, value, key_hint=key_hint, value_hint=value_hint)
    return OpCode.CACHE_PUT, body


OPS: dict[str, OpSpec] = {
    "cache_get_or_create": OpSpec(
        lambda a: (OpCode.CACHE_GET_OR_CREATE_WITH_NAME,
                   ops.cache_get_or_create_with_name(_arg(a, "name", str))),
        _nothing,
        idempotent=True,
    ),
    "cache_names": OpSpec(
        lambda a: (OpCode.CACHE_GET_NAMES, ops.cache_get_names()),
        ops.parse_cache_get_names,
        idempotent=True,
    ),
    "cache_get": OpSpec(_encode_get, ops.parse_cache_get, idempotent=True),
    "cache_put": OpSpec(_encode_put, _nothing, idempotent=False),
}


class Dispatcher:
    """Routes requests to nodes; answers every request exactly once through ``reply``."""

    def __init__(self, pool: NodePool, broker_info: Callable[[], dict[str, Any]]) -> None:
        self._pool = pool
        self._broker_info = broker_info

    def dispatch(self, request: Request, reply: ReplyFn) -> None:
        try:
            self._dispatch(request, reply)
        except BrokerError as exc:
            reply(request.request_id, exc.status, _error_of(exc))

    def _dispatch(self, request: Request, reply: ReplyFn) -> None:
        if request.op == "hello":
            reply(request.request_id, Status.OK, self._hello(request.args))
            return
        if request.op == "ping":
            reply(request.request_id, Status.OK, None)
            return
        spec = OPS.get(request.op)
        if spec is None:
            raise UnknownOp(f"unknown op {request.op!r}")
        try:
            op, body = spec.encode(request.args)
        except LocalProtocolError as exc:
            raise BadRequest(f"cannot encode the request: {exc}") from exc
        conn = self._pool.pick()
        request_id = request.request_id
        conn.send(op, body, lambda outcome: self._on_outcome(spec, request_id, outcome, reply))

    def _hello(self, args: dict[str, Any]) -> dict[str, Any]:
        """Broker facts for a new stub; refuse node addresses that are not this cluster's."""
        info = self._broker_info()
        nodes = args.get("nodes") or []
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise BadRequest("hello: nodes must be a list of 'host:port' strings")
        served = {_normalize(n) for n in info["nodes"]}
        foreign = [n for n in nodes if _normalize(n) not in served]
        if foreign:
            raise BadRequest(
                f"{', '.join(foreign)}: not a node of the cluster this broker serves "
                f"({', '.join(info['nodes'])})")
        return info

    def _on_outcome(self, spec: OpSpec, request_id: int, outcome: Outcome, reply: ReplyFn) -> None:
        if isinstance(outcome, ErrorResponse):
            error = error_payload("server_error", outcome.message or "",
                                  server_status=outcome.status)
            reply(request_id, Status.SERVER_ERROR, error)
            return
        if isinstance(outcome, BaseException):
            maybe_applied = isinstance(outcome, ConnectionLost) and not spec.idempotent
            error = ClusterUnavailable(str(outcome), maybe_applied=maybe_applied)
            reply(request_id, error.status, _error_of(error))
            return
        try:
            result = spec.decode(outcome.body)
        except ProtocolError as exc:
            _log.error("undecodable_response", error=str(exc))
            reply(request_id, Status.INTERNAL,
                  error_payload("internal", f"cannot decode the node's answer: {exc}"))
            return
        reply(request_id, Status.OK, result)


def _normalize(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('localhost', '::1', '[::1]') else host}:{port}"


def _error_of(exc: BrokerError) -> dict[str, Any]:
    return error_payload(
        exc.kind,
        str(exc),
        server_status=getattr(exc, "server_status", None),
        maybe_applied=getattr(exc, "maybe_applied", None),
    )
