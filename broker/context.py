"""The handlers' side of the dispatcher: ``Context``, what a handler of broker/ops_*.py may use
(the Dispatcher provides it), the ``Handler`` signature, and ``simple_call``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from protocol import OpCode
from protocol.binary.registry import BinaryType, CodecContext
from protocol.ipc import Request

from .batching import BATCHED_AS
from .cachechanges import CacheChanges
from .calls import Call, ReplyCall, ReplyFn
from .coalesce import COALESCABLE
from .limits import Limits
from .nodeconn import NodeConnection
from .pool import NodePool
from .registry import BinaryTypes
from .workers import Transaction, Worker, Workers

if TYPE_CHECKING:
    from .continuous import ContinuousQueries


class Context(Protocol):
    """What handlers get: the broker's shared state and the ways to send calls."""

    pool: NodePool
    workers: Workers
    limits: Limits
    #: The codec context for encoding request values (``codec.encode``) and decoding answers.
    codec: CodecContext
    types: BinaryTypes
    cache_lifecycle: CacheChanges
    continuous: ContinuousQueries  # continuous-query subscriptions (ops_cq.py)
    broker_info: Callable[[], dict[str, Any]]
    #: The cache id of a request's ``cache`` argument (a name or an int id).
    cache_id: Callable[[dict[str, Any]], int]
    #: Send a call: routed, its binary types registered first, retried when safe.
    call: Callable[[Call], None]
    #: Read coalescing: the reply to send with, or None when an identical read is in flight.
    join_identical_read: Callable[[OpCode, bytes, ReplyFn], ReplyFn | None]
    #: Automatic batching (broker/batching.py): True when it holds the call for a batch;
    #: None when limits.batch_requests is off.
    offer_to_batch: Callable[[ReplyCall], bool] | None

    def transaction(self, worker: Worker, args: dict[str, Any]) -> Transaction | None: ...

    def deadline(self, request: Request) -> float: ...

    def run(self, worker: Worker, request: Request, reply: ReplyFn) -> None:
        """Run a request (again): its handler, with every error answered."""

    def with_codec(self, parse: Callable[..., Any]) -> Callable[[Any], Any]: ...


Handler = Callable[[Context, Worker, Request, ReplyFn], None]


def simple_call(
    context: Context,
    request: Request,
    reply: ReplyFn,
    op: OpCode,
    body: bytes,
    parse: Callable[[Any], Any],
    *,
    idempotent: bool,
    pinned: NodeConnection | None = None,
    route_cache: int | None = None,
    key_pos: int = -1,
    pending_types: list[BinaryType] | None = None,
) -> None:
    """The common case: one request, its parsed body is the reply."""
    if (context.limits.coalesce_reads and idempotent and pinned is None
            and not pending_types and op in COALESCABLE):
        joined = context.join_identical_read(op, body, reply)
        if joined is None:
            return
        reply = joined

    call = ReplyCall(op, body, idempotent, context.deadline(request), reply, parse, pinned,
                     route_cache, key_pos, pending_types)
    offer = context.offer_to_batch
    if (offer is not None and key_pos >= 0 and pinned is None and not pending_types
            and op in BATCHED_AS and offer(call)):
        return
    context.call(call)
