"""The Dispatcher: takes each worker request (admission, parking), hands it to its handler
(broker/ops_*.py, through the table given by whoever builds it: broker/handlers.py) and
answers it exactly once, counted; the handlers' Context."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from protocol import LocalProtocolError, OpCode
from protocol.binary.registry import CodecContext
from protocol.ipc import Request, Status, error_payload

from . import log, lookups, refusals
from .admission import Parking, admit
from .batching import BATCHED_AS, Batcher
from .cachechanges import CacheChanges
from .calls import Call, ReplyCall, ReplyFn, Sender
from .coalesce import Reads
from .context import Handler
from .errors import BrokerError, Overloaded, UnknownOp, brief, error_of
from .latencies import Latencies
from .limits import Limits
from .metrics import Metrics
from .pool import NodePool
from .registry import BinaryTypes
from .workers import Transaction, Worker, Workers

_log = log.get("dispatch")
_internal_log = log.Throttle()
_monotonic = time.monotonic
_OK = Status.OK  # an Enum class attribute lookup costs more than a module global

_INTERNAL_PAYLOAD = error_payload(
    "internal", "broker error: the broker logged it and counts it in 'show stats'")


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


class Dispatcher:
    """Answers every request exactly once through its reply function; the handlers' Context
    (broker/context.py)."""

    def __init__(
        self,
        pool: NodePool,
        workers: Workers,
        broker_info: Callable[[], dict[str, Any]],
        limits: Limits | None = None,
        metrics: Metrics | None = None,
        *,
        handlers: Mapping[str, Handler],
    ) -> None:
        from .continuous import ContinuousQueries

        self.pool = pool
        self.workers = workers
        self.broker_info = broker_info
        self.limits = limits or Limits()
        self.in_flight = 0
        self._handlers = dict(handlers)
        self.metrics = metrics or Metrics()
        self.metrics.known_ops = frozenset(self._handlers)
        self.internal_errors = 0  # requests answered INTERNAL: each one is a broker bug
        self.types = BinaryTypes(pool)
        #: The codec context for encoding request values and decoding answers.
        self.codec: CodecContext = self.types.codec
        pool.topology.codec = self.codec
        self.cache_lifecycle = CacheChanges(self.limits.cache_changes_per_second,
                                            self.limits.cache_changes_burst,
                                            self.limits.cache_changes_duty,
                                            self.limits.cache_changes_hold_burst,
                                            on_failure=self._answer_change_failure)
        self.cache_id: Callable[[dict[str, Any]], int] = lookups.CacheIds().of
        self._reads = Reads()
        self.join_identical_read: Callable[[OpCode, bytes, ReplyFn], ReplyFn | None] = (
            self._reads.join)
        self.call: Callable[[Call], None] = Sender(pool, self.types, self.internal_error).send
        self.batcher: Batcher | None = None
        self.offer_to_batch: Callable[[ReplyCall], bool] | None = None
        if self.limits.batch_requests:
            self.batcher = Batcher(pool, self.call, self.codec, self.limits.batch_max_keys,
                                   self.limits.batch_max_bytes)
            self.call = self.batcher.send  # every other call sends the waiting batches first
            self.offer_to_batch = self.batcher.offer
            pool.batch.before_end.append(self.batcher.flush)
        self._with_codec: dict[Callable[..., Any], Callable[[Any], Any]] = {}
        self._parking = Parking(pool)
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
                admit(worker, self.in_flight, limits, self.metrics)
            except BrokerError as exc:
                reply(exc.status, error_of(exc))
                return
        if self._parking.holds(request.op):
            self._parking.park(worker, request, reply, now, self.deadline(request),
                               limits.queue_wait)
            return
        self.run(worker, request, reply)

    def run(self, worker: Worker, request: Request, reply: ReplyFn) -> None:
        """Run the request's handler; whatever it raises is answered here (a request held for
        later, e.g. while its cache starts or stops, is run again through this)."""
        try:
            handler = self._handlers.get(request.op)
            if handler is None:
                raise UnknownOp(f"unknown op {brief(request.op)}")
            handler(self, worker, request, reply)
        except Exception as exc:
            self.answer_failure(exc, reply, request.op)

    def _answer_change_failure(self, exc: Exception, reply: ReplyFn) -> None:
        self.answer_failure(exc, reply, "a cache start or stop, in its turn")

    def answer_failure(self, exc: Exception, reply: ReplyFn, op: object) -> None:
        """Answer a request whose handling raised ``exc`` (the one translation of handler
        failures into replies; a request run later, e.g. in its turn, comes here too)."""
        if isinstance(exc, BrokerError):
            reply(exc.status, error_of(exc))
        elif isinstance(exc, LocalProtocolError):
            reply(Status.BAD_REQUEST, error_payload("bad_request", f"cannot encode: {exc}"))
        else:  # a broker bug: answered (slots released), counted, logged
            self.internal_error("handler_failed", exc, op=brief(op))
            reply(Status.INTERNAL, _INTERNAL_PAYLOAD)

    # -- parking ------------------------------------------------------------------------------

    def resume_parked(self) -> None:
        """A node became reachable, or the broker was resumed: run the requests that waited,
        oldest first."""
        for worker, request, reply, parked_at in self._parking.release():
            self.metrics.waited("no_node", _monotonic() - parked_at)
            self.run(worker, request, reply)

    def pause(self) -> None:
        """``admin pause``: hold new requests (hello and ping aside) until ``resume``, each
        within its own deadline; those already sent go on."""
        self._parking.paused = True

    def resume(self) -> None:
        self._parking.paused = False
        self.resume_parked()

    @property
    def paused(self) -> bool:
        return self._parking.paused

    @property
    def parked(self) -> int:
        return len(self._parking)

    def expire_parked(self, now: float) -> None:
        for reply, parked_at in self._parking.expire(now):
            self.metrics.waited("no_node", now - parked_at)
            self.metrics.refused("paused" if self._parking.paused else "queue_wait")
            error = self._parking.expired_error(self.limits.queue_wait)
            reply(error.status, error_of(error))

    # -- accounting ---------------------------------------------------------------------------

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
    def coalesced(self) -> int:
        return self._reads.coalesced

    def batching_stats(self) -> dict[str, int]:
        """Automatic batching: requests sent inside batches, batches, requests sent again one
        by one after their batch was refused (all 0 when limits.batch_requests is off)."""
        batcher = self.batcher
        if batcher is None:
            return {"batched_requests": 0, "batches": 0, "unbatched_requests": 0}
        return {"batched_requests": batcher.batched, "batches": batcher.batches,
                "unbatched_requests": batcher.unbatched}

    def batched_by_op(self) -> dict[str, int]:
        """Requests sent inside automatic batches, by the node op they were (e.g. CACHE_GET)."""
        batcher = self.batcher
        counts = batcher.batched_by_op if batcher is not None else dict.fromkeys(BATCHED_AS, 0)
        return {op.name: count for op, count in counts.items()}

    # -- the rest of the handlers' Context ----------------------------------------------------

    def transaction(self, worker: Worker, args: dict[str, Any]) -> Transaction | None:
        return lookups.transaction(worker, args)

    def with_codec(self, parse: Callable[..., Any]) -> Callable[[Any], Any]:
        """``parse`` with ``ctx=`` the codec context (made once per parser, then reused)."""
        bound = self._with_codec.get(parse)
        if bound is None:
            bound = self._with_codec[parse] = partial(parse, ctx=self.codec)
        return bound

    def deadline(self, request: Request) -> float:
        """The request's deadline on the monotonic clock (limits.max_request_timeout from now
        at the latest: a worker's deadline in a year holds nothing that long)."""
        now = _monotonic()
        if request.deadline_ms:
            return now + min(request.deadline_ms / 1000 - time.time(),
                             self.limits.max_request_timeout)
        return now + self.limits.default_timeout
