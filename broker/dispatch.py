"""Turns each worker request into thin-client requests on a chosen node connection and the
node's answer into the worker's reply: admission control, worker bookkeeping, routing,
retries of idempotent requests, and the handler tables of broker/ops_*.py."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from protocol import ErrorResponse, LocalProtocolError, OpCode, ProtocolError, Response, cache_id
from protocol.binary.registry import BinaryType, CodecContext
from protocol.errors import UnknownSchema
from protocol.ipc import Request, Status, error_payload

from . import log, refusals
from .cachechanges import CacheChanges
from .errors import (
    BadRequest,
    BrokerError,
    ClusterUnavailable,
    DeadlineExceeded,
    NodeError,
    Overloaded,
    UnknownOp,
    brief,
    error_of,
    public_node_message,
)
from .metrics import Metrics
from .nodeconn import ClosedByNode, ConnectionLost, NodeConnection, NotSent, Outcome
from .pool import NodePool
from .registry import BinaryTypes
from .workers import Transaction, Worker, Workers

ReplyFn = Callable[[int, Any], None]  # (status, payload); the request id is already bound
Handler = Callable[["Dispatcher", Worker, Request, ReplyFn], None]

_log = log.get("dispatch")
_internal_log = log.Throttle()
_monotonic = time.monotonic
_OK = Status.OK  # an Enum class attribute lookup costs more than a module global


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight_per_worker: int = 1024
    max_in_flight_total: int = 65536
    default_timeout: float = 30.0
    queue_wait: float = 5.0  # how long a request waits for a node while none is reachable
    coalesce_reads: bool = False  # identical concurrent reads share one cluster request
    # bounds on what a worker may ask of a node (broker/bounds.py)
    max_page_size: int = 10_000
    max_keys_per_request: int = 100_000
    max_transactions_per_worker: int = 32
    max_cursors_per_worker: int = 100
    node_max_active_tx_per_connection: int = 100  # Ignite's ThinClientConfiguration default
    node_max_open_cursors_per_connection: int = 128  # Ignite's ClientConnectorConfiguration
    cache_changes_per_second: float = 1.0  # cache starts and stops per worker (cachechanges.py)
    cache_changes_burst: int = 50


#: A call sent again after a node closed its connection may be the request that made it close
#: (Ignite closes the connection on a request it cannot parse): after this many such closes it
#: fails instead of closing one more shared connection. One retry keeps failover for a read
#: that was on a node going down.
MAX_CLOSED_BY_NODE = 2

class Call:
    """One thin-client request on behalf of a worker, kept until it is answered so that an
    idempotent one can be sent again to another node.  ``succeed`` and ``fail`` settle it
    (once); here they hand over to ``on_result`` and ``on_error``."""

    __slots__ = ("attempts", "body", "closed_by_node", "deadline", "dispatcher", "idempotent",
                 "key_pos", "on_error", "on_result", "op", "pending_types", "pinned", "route_cache",
                 "schema_fetches")

    def __init__(
        self,
        op: OpCode,
        body: bytes,
        idempotent: bool,
        deadline: float,  # monotonic
        on_result: Callable[[Response], None] | None,
        on_error: Callable[[BrokerError], None] | None,
        pinned: NodeConnection | None = None,  # tx or cursor connection: no failover
        route_cache: int | None = None,  # with key_pos: route to the primary node of the key
        key_pos: int = -1,  # where the key starts in body (-1: not a keyed request)
        pending_types: list[BinaryType] | None = None,  # to register before the body is sent
    ) -> None:
        self.op = op
        self.body = body
        self.idempotent = idempotent
        self.deadline = deadline
        self.on_result = on_result
        self.on_error = on_error
        self.pinned = pinned
        self.route_cache = route_cache
        self.key_pos = key_pos
        self.pending_types = pending_types
        self.attempts = 0
        self.closed_by_node = 0  # connections a node closed while this call was on them
        self.schema_fetches = 0
        self.dispatcher: Dispatcher | None = None  # set when sent

    def __repr__(self) -> str:
        return (f"<Call {self.op.name} attempts={self.attempts} "
                f"pinned={self.pinned is not None} key_pos={self.key_pos}>")

    def succeed(self, response: Response) -> None:
        self.on_result(response)  # type: ignore[misc]

    def fail(self, exc: BrokerError) -> None:
        self.on_error(exc)  # type: ignore[misc]

    def settle(self, outcome: Outcome) -> None:
        """The node connection's callback."""
        self.dispatcher._on_outcome(self, outcome)  # type: ignore[union-attr]


class ReplyCall(Call):
    """simple_call's request: the parsed body of the answer, or the error, is the reply."""

    __slots__ = ("parse", "reply")

    def __init__(self, op: OpCode, body: bytes, idempotent: bool, deadline: float,
                 reply: ReplyFn, parse: Callable[[Any], Any], pinned: NodeConnection | None,
                 route_cache: int | None, key_pos: int,
                 pending_types: list[BinaryType] | None) -> None:
        super().__init__(op, body, idempotent, deadline, None, None, pinned, route_cache,
                         key_pos, pending_types)
        self.reply = reply
        self.parse = parse

    def succeed(self, response: Response) -> None:
        self.reply(_OK, self.parse(response.body))

    def fail(self, exc: BrokerError) -> None:
        self.reply(exc.status, error_of(exc))


class _Exchange:
    """One worker request until it is answered: its reply, the only one, releases the
    in-flight slots and is counted (a second answer to the same request is a bug, and
    dropped)."""

    __slots__ = ("answered", "dispatcher", "op", "request_id", "send_reply", "started", "worker")

    def __init__(self, dispatcher: Dispatcher, worker: Worker, request: Request,
                 send_reply: Callable[[int, int, Any], None], started: float) -> None:
        self.dispatcher = dispatcher
        self.worker = worker
        self.request_id = request.request_id
        self.op = request.op
        self.send_reply = send_reply
        self.answered = False
        self.started = started

    def reply(self, status: int, payload: Any) -> None:
        if self.answered:
            self.dispatcher.internal_error("answered_twice", None)
            return
        self.answered = True
        worker = self.worker
        if status != _OK:
            worker.errors += 1
            refusals.answered(worker.identity, self.op, status, payload)
        worker.in_flight -= 1
        dispatcher = self.dispatcher
        dispatcher.in_flight -= 1
        self.send_reply(self.request_id, status, payload)
        took = _monotonic() - self.started
        dispatcher.latencies.add(took)
        dispatcher.metrics.answered(self.op, status, took,
                                    worker.account or dispatcher.account_of(worker))


class Latencies:
    """The broker's time to answer each of the last ``SIZE`` requests, from the moment it
    took them (a ring): ``admin status`` shows their p99."""

    SIZE = 2048  # a power of two
    __slots__ = ("_count", "_ring")

    def __init__(self) -> None:
        self._ring = [0.0] * self.SIZE
        self._count = 0

    def add(self, seconds: float) -> None:
        self._ring[self._count & (self.SIZE - 1)] = seconds
        self._count += 1

    def quantile(self, q: float) -> float | None:
        if not self._count:
            return None
        ordered = sorted(self._ring[:min(self._count, self.SIZE)])
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


#: Reads that coalesce_reads may share between workers.
_COALESCABLE = frozenset({OpCode.CACHE_GET, OpCode.CACHE_GET_ALL, OpCode.CACHE_CONTAINS_KEY,
                          OpCode.CACHE_CONTAINS_KEYS})

#: The cache-id memo: names up to this long, this many at most.
_CACHED_NAME_CHARS = 256
_CACHED_NAMES = 10_000

#: Ops the broker answers itself, even with no node reachable.
_LOCAL_OPS = frozenset({"hello", "ping"})


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...] = object,
        default: Any = ...) -> Any:
    """A request argument, checked for type; BadRequest names what is wrong."""
    try:
        value = args[name]
    except KeyError:
        if default is not ...:
            return default
        raise BadRequest(f"missing argument {name!r}") from None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"argument {name!r} has the wrong type ({type(value).__name__})")
    return value


class Dispatcher:
    """Answers every request exactly once through its reply function."""

    def __init__(
        self,
        pool: NodePool,
        workers: Workers,
        broker_info: Callable[[], dict[str, Any]],
        limits: Limits | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        from .continuous import ContinuousQueries
        from .ops_admin import HANDLERS as ADMIN
        from .ops_cq import HANDLERS as CQ
        from .ops_kv import HANDLERS as KV
        from .ops_query import HANDLERS as QUERY

        self.pool = pool
        self.workers = workers
        self.broker_info = broker_info
        self.limits = limits or Limits()
        self.in_flight = 0
        self._handlers: dict[str, Handler] = {**KV, **QUERY, **ADMIN, **CQ}
        self.metrics = metrics or Metrics()
        self.metrics.known_ops = frozenset(self._handlers)
        self._cache_ids: dict[str, int] = {}
        self.types = BinaryTypes(pool)
        # (op, body) of a read in flight -> the replies waiting for it (coalesce_reads)
        self._reads_in_flight: dict[tuple[OpCode, bytes], list[ReplyFn]] = {}
        self.coalesced = 0
        self.internal_errors = 0  # requests answered INTERNAL: each one is a broker bug
        self.cache_lifecycle = CacheChanges(self.limits.cache_changes_per_second,
                                            self.limits.cache_changes_burst)
        #: The codec context for encoding request values and decoding answers.
        self.codec: CodecContext = self.types.codec
        pool.topology.codec = self.codec
        self._with_codec: dict[Callable[..., Any], Callable[[Any], Any]] = {}
        # Requests that arrived while no node was reachable, or while paused:
        # (expires, worker, request, reply, parked at).
        self._parked: deque[tuple[float, Worker, Request, ReplyFn, float]] = deque()
        self.paused = False  # admin pause: every request is parked until resume
        self.latencies = Latencies()
        pool.on_ready.append(self.resume_parked)
        self.continuous = ContinuousQueries(self)  # subscriptions (ops_cq.py)

    # -- entry --------------------------------------------------------------------------------

    def dispatch(self, identity: bytes, request: Request,
                 send_reply: Callable[[int, int, Any], None]) -> None:
        now = _monotonic()
        try:
            worker = self.workers.seen(identity, now)
        except Overloaded as exc:
            self.metrics.refused("max_workers")
            self.metrics.answered(request.op, exc.status, 0.0, None)
            refusals.answered(identity, request.op, exc.status, error_of(exc))
            send_reply(request.request_id, exc.status, error_of(exc))
            return
        if worker.account is None:
            self.account_of(worker)
        reply = _Exchange(self, worker, request, send_reply, now).reply
        worker.requests += 1
        worker.in_flight += 1
        self.in_flight += 1
        limits = self.limits
        if (worker.in_flight > limits.max_in_flight_per_worker
                or self.in_flight > limits.max_in_flight_total):
            try:
                self._admit(worker)
            except BrokerError as exc:
                reply(exc.status, error_of(exc))
                return
        if (not self.pool.ready or self.paused) and request.op not in _LOCAL_OPS:
            # paused (admin pause): held until resumed, within the request's own deadline
            expires = self.deadline(request)
            if not self.paused:
                expires = min(now + limits.queue_wait, expires)
            self._parked.append((expires, worker, request, reply, now))
            return
        self._run(worker, request, reply)

    def _run(self, worker: Worker, request: Request, reply: ReplyFn) -> None:
        pending = self.codec.pending
        if pending:
            pending.clear()  # whatever a failed encode left behind
        try:
            handler = self._handlers.get(request.op)
            if handler is None:
                raise UnknownOp(f"unknown op {brief(request.op)}")
            handler(self, worker, request, reply)
        except BrokerError as exc:
            reply(exc.status, error_of(exc))
        except LocalProtocolError as exc:
            reply(Status.BAD_REQUEST, error_payload("bad_request", f"cannot encode: {exc}"))
        except Exception as exc:  # a broker bug: answered (slots released), counted, logged
            self.internal_error("handler_failed", exc, op=brief(request.op))
            reply(Status.INTERNAL, _INTERNAL_PAYLOAD)

    def resume_parked(self) -> None:
        """A node became reachable, or the broker was resumed: run the requests that waited,
        oldest first."""
        while self._parked and self.pool.ready and not self.paused:
            _, worker, request, reply, parked_at = self._parked.popleft()
            self.metrics.waited("no_node", _monotonic() - parked_at)
            self._run(worker, request, reply)

    def pause(self) -> None:
        """``admin pause``: hold new requests (hello and ping aside) until ``resume``, each
        within its own deadline; those already sent go on."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.resume_parked()

    def expire_parked(self, now: float) -> None:
        if not self._parked or min(entry[0] for entry in self._parked) > now:
            return
        waiting = self._parked
        self._parked = deque(entry for entry in waiting if entry[0] > now)
        for _, _, _, reply, parked_at in (entry for entry in waiting if entry[0] <= now):
            self.metrics.waited("no_node", now - parked_at)
            self.metrics.refused("paused" if self.paused else "queue_wait")
            if self.paused:
                error: BrokerError = DeadlineExceeded(
                    "the broker is paused for maintenance (ignite-broker admin pause) and the "
                    "request's deadline passed while it waited (it was not sent)")
            else:
                error = ClusterUnavailable(
                    f"no Ignite node became reachable within {self.limits.queue_wait:g}s "
                    f"(last error: {self.pool.last_error or 'none'})", maybe_applied=False)
            reply(error.status, error_of(error))

    def internal_error(self, event: str, exc: BaseException | None, **context: Any) -> None:
        """Count a broker bug and log it (throttled: a worker that triggers one in a loop
        must not fill the disk)."""
        self.internal_errors += 1
        held = _internal_log.allow()
        if held is not None:
            _log.error(event, suppressed=held, exc_info=exc, **context)

    def account_of(self, worker: Worker) -> Any:
        """The metrics series the worker's requests count in (by uid and label)."""
        peer = worker.peer
        worker.account = self.metrics.account(peer.uid if peer else None, worker.label)
        return worker.account

    @property
    def parked(self) -> int:
        return len(self._parked)

    def _admit(self, worker: Worker) -> None:
        if worker.in_flight > self.limits.max_in_flight_per_worker:
            self.metrics.refused("in_flight_per_worker")
            raise Overloaded(f"this worker has {worker.in_flight - 1} requests in flight "
                             f"(limit {self.limits.max_in_flight_per_worker})")
        if self.in_flight > self.limits.max_in_flight_total:
            self.metrics.refused("in_flight_total")
            raise Overloaded(f"the broker has {self.in_flight - 1} requests in flight "
                             f"(limit {self.limits.max_in_flight_total})")

    # -- helpers for handlers -----------------------------------------------------------------

    def cache_id(self, args: dict[str, Any]) -> int:
        """The cache id from a cache name (or an int id, as pyignite allows)."""
        name = arg(args, "cache", (str, int))
        if isinstance(name, int):
            if not -(2**31) <= name < 2**31:
                raise BadRequest("a cache id is a signed 32-bit int")
            return name
        cid = self._cache_ids.get(name)
        if cid is None:
            cid = cache_id(name)
            if len(name) <= _CACHED_NAME_CHARS:  # the memo holds at most ~2.5 MB of names
                if len(self._cache_ids) >= _CACHED_NAMES:
                    self._cache_ids.clear()
                self._cache_ids[name] = cid
        return cid

    def transaction(self, worker: Worker, args: dict[str, Any]) -> Transaction | None:
        handle = args.get("tx")
        if handle is None:
            return None
        tx = worker.transactions.get(handle) if isinstance(handle, int) else None
        if tx is None:
            raise BadRequest(f"transaction {brief(handle)} is not open on this worker")
        if not tx.conn.is_open:
            del worker.transactions[handle]
            raise ClusterUnavailable(
                f"the connection of transaction {handle} was lost: the server rolled it back",
                maybe_applied=False)
        return tx

    def with_codec(self, parse: Callable[..., Any]) -> Callable[[Any], Any]:
        """``parse`` with ``ctx=`` the codec context (made once per parser, then reused)."""
        bound = self._with_codec.get(parse)
        if bound is None:
            bound = self._with_codec[parse] = partial(parse, ctx=self.codec)
        return bound

    def deadline(self, request: Request) -> float:
        """The request's deadline on the monotonic clock."""
        if request.deadline_ms:
            return _monotonic() + (request.deadline_ms / 1000 - time.time())
        return _monotonic() + self.limits.default_timeout

    def call(self, call: Call) -> None:
        """Send ``call`` to its pinned connection or a routed one; retry on another node when
        it is idempotent and the connection failed, until its deadline."""
        if call.pending_types:
            pending, call.pending_types = call.pending_types, None
            self.types.register(
                pending, lambda error: call.fail(error) if error else self.call(call))
            return
        try:
            if call.pinned is not None:
                conn = call.pinned
            elif call.key_pos >= 0 and call.attempts == 0:
                conn = self.pool.route(call.route_cache, call.body, call.key_pos)
            else:
                conn = self.pool.pick()
        except BrokerError as exc:
            call.fail(exc)
            return
        call.attempts += 1
        call.dispatcher = self
        try:
            conn.send(call.op, call.body, call.settle, call.deadline, cache_id=call.route_cache)
        except ConnectionLost as exc:  # nothing was written: safe to try elsewhere
            if call.pinned is None and call.attempts < 4 and _monotonic() < call.deadline:
                self.call(call)
            else:
                call.fail(ClusterUnavailable(str(exc), maybe_applied=False))

    def _on_outcome(self, call: Call, outcome: Outcome) -> None:
        if isinstance(outcome, Response):
            try:
                call.succeed(outcome)
            except UnknownSchema as exc:
                self._fetch_then_retry(call, outcome, exc)
            except ProtocolError as exc:
                _log.error("undecodable_response", op=call.op.name, error=str(exc))
                call.fail(BrokerError("cannot decode the node's answer (the broker logged it)"))
            except Exception as exc:  # a broker bug in a parser: answered, counted, logged
                self.internal_error("answer_handling_failed", exc, op=call.op.name)
                call.fail(BrokerError("broker error while reading the node's answer "
                                      "(the broker logged it)"))
            return
        if isinstance(outcome, ErrorResponse):
            _log.debug("node_error", op=call.op.name, status=outcome.status,
                       message=outcome.message)
            call.fail(NodeError(public_node_message(outcome.message or ""), outcome.status))
            return
        if isinstance(outcome, DeadlineExceeded):
            call.fail(outcome)
            return
        if isinstance(outcome, NotSent):  # it waited in the broker: safe to try elsewhere
            if call.pinned is None and call.attempts < 4 and _monotonic() < call.deadline:
                self.call(call)
            else:
                call.fail(ClusterUnavailable(str(outcome), maybe_applied=False))
            return
        if isinstance(outcome, ClosedByNode):
            call.closed_by_node += 1
        retry = (call.idempotent and call.pinned is None and call.attempts < 4
                 and call.closed_by_node < MAX_CLOSED_BY_NODE and _monotonic() < call.deadline)
        if retry:
            _log.info("retrying_on_another_node", op=call.op.name, reason=str(outcome))
            self.call(call)
            return
        maybe_applied = not call.idempotent
        what = "it may have been applied" if maybe_applied else "it was a read"
        if call.closed_by_node >= MAX_CLOSED_BY_NODE:
            what += (f"; {call.closed_by_node} node connections closed while it was on them, "
                     "so the broker does not send it again (a node closes the connection on a "
                     "request it cannot parse)")
        call.fail(ClusterUnavailable(f"{outcome} (the request was sent: {what})",
                                 maybe_applied=maybe_applied))


    def join_identical_read(self, op: OpCode, body: bytes, reply: ReplyFn) -> ReplyFn | None:
        """With coalesce_reads: wait for an identical read already in flight (None), or
        become the one that is sent (the returned reply answers every waiter).

        A joined read may miss a write acknowledged after the first identical read was sent;
        that is why it is off by default."""
        key = (op, body)
        waiters = self._reads_in_flight.get(key)
        if waiters is not None:
            waiters.append(reply)
            self.coalesced += 1
            return None
        waiters = self._reads_in_flight[key] = [reply]

        def answer_all(status: int, payload: Any) -> None:
            del self._reads_in_flight[key]
            for waiting in waiters:
                waiting(status, payload)

        return answer_all

    def _fetch_then_retry(self, call: Call, outcome: Response, exc: UnknownSchema) -> None:
        """The answer holds an object whose schema we lack: fetch it once, decode again."""
        call.schema_fetches += 1
        if call.schema_fetches > 8:
            call.fail(BrokerError(f"cannot decode the node's answer: {exc}"))
            return
        self.types.fetch(exc.type_id, lambda error: call.fail(error) if error
                         else self._on_outcome(call, outcome))


_INTERNAL_PAYLOAD = error_payload(
    "internal", "broker error: the broker logged it and counts it in 'show stats'")


def simple_call(
    dispatcher: Dispatcher,
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
    if (dispatcher.limits.coalesce_reads and idempotent and pinned is None
            and not pending_types and op in _COALESCABLE):
        joined = dispatcher.join_identical_read(op, body, reply)
        if joined is None:
            return
        reply = joined

    dispatcher.call(ReplyCall(op, body, idempotent, dispatcher.deadline(request), reply, parse,
                              pinned, route_cache, key_pos, pending_types))
