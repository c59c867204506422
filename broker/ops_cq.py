"""The continuous-query ops: a worker subscribes to a cache's changes (broker/continuous.py
shares one server query per cache and options) and unsubscribes."""

from __future__ import annotations

from typing import Any

from protocol.ipc import EVENT_SUB, Request, Status

from . import bounds
from .calls import ReplyFn
from .context import Context
from .continuous import QueryKey
from .errors import BadRequest
from .lookups import arg
from .workers import Worker

#: The longest a node may hold events back before sending them (ms): an hour.
MAX_TIME_INTERVAL_MS = 3_600_000


def _time_interval(args: dict[str, Any]) -> int:
    value: int = arg(args, "time_interval", int, 0)
    if not 0 <= value <= MAX_TIME_INTERVAL_MS:
        raise BadRequest(f"argument 'time_interval' is {value}: allowed 0..{MAX_TIME_INTERVAL_MS}"
                         " ms (0: send when the buffer is full)")
    return value


def _subscribe(context: Context, worker: Worker, request: Request,
               reply: ReplyFn) -> None:
    args = request.args
    key = QueryKey(context.cache_id(args),
                   bounds.number(args, "page_size", 1, context.limits),
                   _time_interval(args),
                   arg(args, "include_expired", bool, False))
    context.continuous.subscribe(worker.identity, key, reply)


def _unsubscribe(context: Context, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    handle = arg(request.args, EVENT_SUB, int)
    if not context.continuous.unsubscribe(worker.identity, handle):
        raise BadRequest(f"this worker has no continuous-query subscription {handle}")
    reply(Status.OK, None)


HANDLERS = {"cq_subscribe": _subscribe, "cq_unsubscribe": _unsubscribe}
