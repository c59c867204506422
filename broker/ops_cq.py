"""The continuous-query ops: a worker subscribes to a cache's changes (broker/continuous.py
shares one server query per cache, options and remote filter) and unsubscribes."""

from __future__ import annotations

from typing import Any

from protocol import ProtocolError, queries
from protocol.ipc import EVENT_SUB, Request, Status

from . import bounds
from .calls import ReplyFn
from .context import Context
from .continuous import QueryKey
from .errors import BadRequest
from .lookups import arg, ended_with_an_earlier_run
from .workers import Worker

#: The longest a node may hold events back before sending them (ms): an hour.
MAX_TIME_INTERVAL_MS = 3_600_000


def _time_interval(args: dict[str, Any]) -> int:
    value: int = arg(args, "time_interval", int, 0)
    if not 0 <= value <= MAX_TIME_INTERVAL_MS:
        raise BadRequest(f"argument 'time_interval' is {value}: allowed 0..{MAX_TIME_INTERVAL_MS}"
                         " ms (0: send when the buffer is full)")
    return value


def _remote_filter(args: dict[str, Any]) -> bytes | None:
    """The ``filter`` argument, ``{"class": name, "properties": {field: value}}``, as the
    filter object the node builds (protocol.queries.java_filter); None without one."""
    spec = arg(args, "filter", (dict, type(None)), None)
    if spec is None:
        return None
    unknown = set(spec) - {"class", "properties"}
    if unknown:
        raise BadRequest(f"argument 'filter' has unknown keys {sorted(map(str, unknown))}: "
                         "allowed 'class', 'properties'")
    class_name = bounds.text(arg(spec, "class", str), "filter.class")
    properties = arg(spec, "properties", dict, {})
    bounds.count(list(properties), "filter_properties", None)
    for name in properties:
        if not isinstance(name, str):
            raise BadRequest("argument 'filter.properties' must have str keys (field names)")
        bounds.text(name, "filter.properties")
    try:
        return queries.java_filter(class_name, properties)
    except ProtocolError as exc:
        raise BadRequest(f"argument 'filter': cannot encode: {exc} (properties take plain "
                         "values: no complex objects)") from exc


def _subscribe(context: Context, worker: Worker, request: Request,
               reply: ReplyFn) -> None:
    args = request.args
    key = QueryKey(context.cache_id(args),
                   bounds.number(args, "page_size", 1, context.limits),
                   _time_interval(args),
                   arg(args, "include_expired", bool, False),
                   _remote_filter(args))
    context.continuous.subscribe(worker.identity, key, reply)


def _unsubscribe(context: Context, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    handle = arg(request.args, EVENT_SUB, int)
    if not context.continuous.unsubscribe(worker.identity, handle):
        ended_with_an_earlier_run("continuous-query subscription", handle, "subscribe again")
        raise BadRequest(f"this worker has no continuous-query subscription {handle}")
    reply(Status.OK, None)


HANDLERS = {"cq_subscribe": _subscribe, "cq_unsubscribe": _unsubscribe}
