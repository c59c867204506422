"""Broker and cluster administration ops: hello/ping, cache create/configure/destroy, cluster
state and WAL."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Callable
from typing import Any

from protocol import OpCode, cluster, hashing, ops
from protocol.binary import metadata
from protocol.binary.registry import BinaryType
from protocol.ipc import Request, Status, label_problem

from . import bounds
from .calls import ReplyFn
from .context import Context, Handler, simple_call
from .errors import BadRequest, BrokerError, error_of
from .lookups import arg
from .registry import UnknownType
from .workers import Worker

_PROP_NAME = 0


def _hello(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    """Broker facts for a new stub; refuse node addresses that are not this cluster's."""
    info = context.broker_info()
    nodes = request.args.get("nodes") or []
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise BadRequest("hello: nodes must be a list of 'host:port' strings")
    served = {_normalize(n) for n in info["nodes"]}
    foreign = [n for n in nodes if _normalize(n) not in served]
    if foreign:
        raise BadRequest(
            f"{', '.join(foreign)}: not a node of the cluster this broker serves "
            f"({', '.join(info['nodes'])})")
    label = request.args.get("label")
    if label is not None:
        problem = label_problem(label)
        if problem is not None:
            raise BadRequest(f"hello: {problem}")
        context.workers.set_label(worker, label)
    pid = request.args.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31:
        worker.pid = pid  # what the stub says (shown by admin show clients)
    reply(Status.OK, info)


def _normalize(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('localhost', '::1', '[::1]') else host}:{port}"


def _ping(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    reply(Status.OK, None)


# -- caches -----------------------------------------------------------------------------------


def _cache_names(context: Context, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    simple_call(context, request, reply, OpCode.CACHE_GET_NAMES, ops.cache_get_names(),
                ops.parse_cache_get_names, idempotent=True)


def _create(context: Context, worker: Worker, request: Request, reply: ReplyFn, *,
            or_get: bool) -> None:
    """By name, or by a configuration map {property code: value} (pyignite's prop_codes)."""
    settings = request.args.get("name", request.args.get("config"))
    types: list[BinaryType] | None = None
    if isinstance(settings, str):
        bounds.text(settings, "name", "cache_name")
        name = settings
        op = OpCode.CACHE_GET_OR_CREATE_WITH_NAME if or_get else OpCode.CACHE_CREATE_WITH_NAME
        build = ops.cache_get_or_create_with_name if or_get else ops.cache_create_with_name
        body = build(settings)
    elif isinstance(settings, dict) and isinstance(settings.get(_PROP_NAME), str):
        bounds.cache_config(settings)
        name = settings[_PROP_NAME]
        op = (OpCode.CACHE_GET_OR_CREATE_WITH_CONFIGURATION if or_get
              else OpCode.CACHE_CREATE_WITH_CONFIGURATION)
        version = context.pool.pick().version
        build_configured = (ops.cache_get_or_create_with_configuration if or_get
                            else ops.cache_create_with_configuration)
        # (query fields' default values may be objects whose types go to the cluster first)
        body, types = context.codec.encode(build_configured, settings, version=tuple(version))
    else:
        raise BadRequest("a cache is created from a name or a config map with a name (code 0)")
    changes = context.cache_lifecycle
    cid = hashing.cache_id(name)

    def send(done: ReplyFn) -> None:
        simple_call(context, request, _then(done, changes.exists, cid), op, body,
                    ops.parse_empty, idempotent=or_get, pending_types=types)

    if or_get and changes.known(cid):  # starts nothing: neither charged nor serialized
        send(reply)
        return
    in_turn(context, worker, request, cid, send, reply)


def in_turn(context: Context, worker: Worker, request: Request, cid: int | None,
            send: Callable[[ReplyFn], None], reply: ReplyFn) -> None:
    """Run a start or stop of cache ``cid`` when the worker's rate allows it, alone on the
    cache (unless None: an SQL statement's), one at a time (broker/cachechanges.py)."""
    changes = context.cache_lifecycle
    deadline = context.deadline(request)
    wait = changes.reserve(worker.session, deadline)
    args = (cid, deadline, context.pool.requests_on, send, reply, worker.session)
    if wait:
        asyncio.get_running_loop().call_later(wait, changes.change, *args)
    else:
        changes.change(*args)


def _then(reply: ReplyFn, on_ok: Callable[[int], None], cid: int) -> ReplyFn:
    """``reply``, after ``on_ok(cid)`` when the node answered OK."""

    def answered(status: int, payload: Any) -> None:
        if status == Status.OK:
            on_ok(cid)
        reply(status, payload)

    return answered


def _cache_create(context: Context, worker: Worker, request: Request,
                  reply: ReplyFn) -> None:
    _create(context, worker, request, reply, or_get=False)


def _cache_get_or_create(context: Context, worker: Worker, request: Request,
                         reply: ReplyFn) -> None:
    _create(context, worker, request, reply, or_get=True)


def _plain(value: Any) -> Any:
    """Configuration values as msgpack-friendly builtins."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cache_config(context: Context, worker: Worker, request: Request,
                  reply: ReplyFn) -> None:
    conn = context.pool.pick()
    version = tuple(conn.version)

    def parse(body: Any) -> dict[int, Any]:
        settings: dict[int, Any] = _plain(ops.parse_cache_get_configuration(body,
                                                                            version=version))
        return settings

    simple_call(context, request, reply, OpCode.CACHE_GET_CONFIGURATION,
                ops.cache_get_configuration(context.cache_id(request.args)), parse,
                idempotent=True, pinned=conn)


def _cache_destroy(context: Context, worker: Worker, request: Request,
                   reply: ReplyFn) -> None:
    cid = context.cache_id(request.args)
    body = ops.cache_destroy(cid)
    context.cache_lifecycle.gone(cid)  # a get-or-create of it passes the gate again
    in_turn(context, worker, request, cid,
             lambda done: simple_call(context, request, done, OpCode.CACHE_DESTROY, body,
                                      ops.parse_empty, idempotent=False),
             reply)


# -- cluster ----------------------------------------------------------------------------------


def _cluster_get_state(context: Context, worker: Worker, request: Request,
                       reply: ReplyFn) -> None:
    simple_call(context, request, reply, OpCode.CLUSTER_GET_STATE, cluster.cluster_get_state(),
                lambda body: int(cluster.parse_cluster_get_state(body)), idempotent=True)


def _cluster_set_state(context: Context, worker: Worker, request: Request,
                       reply: ReplyFn) -> None:
    state = bounds.member(request.args, "state", cluster.ClusterState, None)
    conn = context.pool.pick()
    body = cluster.cluster_change_state(state, features=conn.features)
    simple_call(context, request, reply, OpCode.CLUSTER_CHANGE_STATE, body, ops.parse_empty,
                idempotent=True, pinned=conn)


def _cluster_wal(context: Context, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    name = bounds.text(arg(request.args, "cache", str), "cache", "cache_name")
    enable = arg(request.args, "enable", (bool, type(None)), None)
    if enable is None:
        simple_call(context, request, reply, OpCode.CLUSTER_GET_WAL_STATE,
                    cluster.cluster_get_wal_state(name), ops.parse_bool, idempotent=True)
    else:
        simple_call(context, request, reply, OpCode.CLUSTER_CHANGE_WAL_STATE,
                    cluster.cluster_change_wal_state(name, enable), ops.parse_bool,
                    idempotent=True)


# -- binary types and routing -----------------------------------------------------------------


def _binary_type_map(bt: BinaryType | None) -> dict[str, Any] | None:
    if bt is None:
        return None
    return {"type_id": bt.type_id, "type_name": bt.type_name,
            "affinity_key_field": bt.affinity_key_field, "is_enum": bt.is_enum,
            "fields": [list(f) for f in bt.fields],
            "enum_values": [list(v) for v in bt.enum_values],
            "schemas": {sid: list(ids) for sid, ids in bt.schemas.items()}}


def _binary_type_get(context: Context, worker: Worker, request: Request,
                     reply: ReplyFn) -> None:
    """The type by name or id, from the broker's registry or, once, from the cluster."""
    wanted = arg(request.args, "type", (str, int))
    if isinstance(wanted, str):
        tid = hashing.type_id(bounds.text(wanted, "type"))
    else:
        tid = bounds.check(wanted, "type_id", None, "type")
    registry = context.types.registry
    if registry.get(tid) is not None:
        reply(Status.OK, _binary_type_map(registry.get(tid)))
        return

    def fetched(error: BrokerError | None) -> None:
        if error is not None and not isinstance(error, UnknownType):
            reply(error.status, error_of(error))
        else:
            reply(Status.OK, _binary_type_map(registry.get(tid)))

    context.types.fetch(tid, fetched)


def _binary_type_put(context: Context, worker: Worker, request: Request,
                     reply: ReplyFn) -> None:
    """Register a type (pyignite's put_binary_type): fields [[name, type code]] or, for an
    enum, literals [[name, ordinal]]."""
    args = request.args
    name = bounds.text(arg(args, "type_name", str), "type_name")
    schema = bounds.count(arg(args, "schema", list, []), "schema", context.limits)
    if not all(isinstance(f, list) and len(f) == 2 and isinstance(f[0], str)
               and isinstance(f[1], int) and not isinstance(f[1], bool) for f in schema):
        raise BadRequest("schema must be a list of [name, int] pairs")
    for field_name, _ in schema:
        bounds.text(field_name, "schema")
    if arg(args, "is_enum", bool, False):
        for _, ordinal in schema:
            bounds.check(ordinal, "enum_ordinal", None, "schema")
        bt = metadata.enum_type(name, {literal: ordinal for literal, ordinal in schema})
    else:
        bounds.members((code for _, code in schema), "schema", bounds.FIELD_TYPE_CODES)
        affinity = bounds.optional_text(arg(args, "affinity_key_field", (str, type(None)), None),
                                        "affinity_key_field")
        bt = metadata.object_type(name, [(f, code) for f, code in schema],
                                  affinity_key_field=affinity)

    def registered(error: BrokerError | None) -> None:
        if error is not None:
            reply(error.status, error_of(error))
        else:
            reply(Status.OK, _binary_type_map(context.types.registry.get(bt.type_id)))

    context.types.register([bt], registered)


def _node_for(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    """Which node the broker would send a request to (pyignite's get_best_node)."""
    pool = context.pool
    if request.args.get("cache") is not None and "key" in request.args:
        cid = context.cache_id(request.args)
        body, _ = context.codec.encode(ops.cache_get, cid, request.args["key"])  # not sent
        conn = pool.route(cid, body, 5)
    else:
        conn = pool.pick()
    reply(Status.OK, {"host": conn.host, "port": conn.port, "node_id": conn.node_id,
                      "protocol_version": list(conn.version)})


HANDLERS: dict[str, Handler] = {
    "binary_type_get": _binary_type_get,
    "binary_type_put": _binary_type_put,
    "node_for": _node_for,
    "hello": _hello,
    "ping": _ping,
    "cache_names": _cache_names,
    "cache_create": _cache_create,
    "cache_get_or_create": _cache_get_or_create,
    "cache_config": _cache_config,
    "cache_destroy": _cache_destroy,
    "cluster_get_state": _cluster_get_state,
    "cluster_set_state": _cluster_set_state,
    "cluster_wal": _cluster_wal,
}
