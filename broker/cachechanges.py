"""Cache starts and stops: one at a time for the whole broker, workers in turn, a rate per
worker, a share of the time for all of them together, each alone on its cache (requests on the
cache wait while it runs, and it waits for those in flight), and the caches known to exist,
whose get-or-create starts nothing and so waits for none of this.

Each start or stop is a cluster-wide partition map exchange that holds every other worker's
cache operations until it ends: a worker creating and destroying caches in a loop made the
well-behaved worker's p99 4.5x its idle p99 in the fuzz run, against 1.8x without those ops
(docs/reliability.md). And a cache destroyed and re-created while puts and remove_all run on
it hangs an Ignite 2.17 cluster, no broker involved (tests/integration/ignite_hang_repro.py):
the exchange waits for a partition release that an update on the stopping cache never gives."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from protocol.ipc import Status, error_payload

from .calls import ReplyFn
from .errors import DeadlineExceeded, Overloaded, error_of

_monotonic = time.monotonic

#: Seconds between looks at a cache's requests in flight while a start or stop waits for them.
_IDLE_POLL = 0.005
#: Seconds between looks at the waiting starts and stops (their deadlines) while they wait for
#: the credit of cluster holding time.
_CREDIT_POLL = 0.25
#: Owners whose use of the cluster's time is remembered beyond those waiting.
_TRACKED_OWNERS = 4096
#: Cache ids remembered as existing (4 bytes of id each, plus the dict's own cost).
KNOWN_CACHES = 10_000
#: Workers whose rate state is kept beyond those with a spent bucket (a full bucket is the
#: state of every worker not seen, so full ones are dropped first).
_TRACKED_WORKERS = 4096


class Serial:
    """Requests that must not overlap: one in flight for the whole broker; the waiting ones
    taken by owner, the owner whose requests held the cluster least so far first, owners in
    turn among equals (a worker's queue of them cannot hold another worker's one back), each
    within its deadline. Together they may hold the cluster ``duty`` of the time, after
    ``burst`` seconds of it at once: each runs when the credit (seconds of holding, refilled
    at ``duty`` per second up to ``burst``) is above 0 and is charged what it took."""

    __slots__ = ("_busy", "_credit", "_credit_at", "_on_failure", "_queues", "_timer", "_used",
                 "burst", "duty", "held_seconds", "waits")

    def __init__(self, duty: float = 1.0, burst: float = float("inf"),
                 on_failure: Callable[[Exception, ReplyFn], None] | None = None) -> None:
        self.duty = duty
        self.burst = burst
        # Answers a request whose send raised: it may run long after its submit (in its turn,
        # from another request's reply or a timer), where nothing else would answer it.
        self._on_failure = on_failure
        self._busy = False
        #: owner -> its requests waiting, (deadline, send, reply); in turn order
        self._queues: OrderedDict[bytes, deque[tuple[float, Callable[[ReplyFn], None],
                                                     ReplyFn]]] = OrderedDict()
        self._credit = burst
        self._credit_at = _monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self.held_seconds = 0.0  # what the changes sent took, in all
        self._used: dict[bytes, float] = {}  # owner -> what its changes took, in all
        self.waits = 0  # times the next one waited for credit

    def __len__(self) -> int:
        return sum(map(len, self._queues.values())) + self._busy

    def submit(self, deadline: float, send: Callable[[ReplyFn], None], reply: ReplyFn,
               owner: bytes = b"") -> None:
        """``send(done)`` issues the request; ``done`` is its reply, which lets the next go."""
        self._queues.setdefault(owner, deque()).append((deadline, send, reply))
        if not self._busy and self._timer is None:
            self._next()

    def _take(self) -> tuple[bytes, tuple[float, Callable[[ReplyFn], None], ReplyFn]]:
        """The oldest request of the waiting owner whose changes held the cluster least so
        far (the first in turn among equals); that owner goes to the back of the turn."""
        used = self._used
        owner = min(self._queues, key=lambda o: used.get(o, 0.0))
        queue = self._queues[owner]
        entry = queue.popleft()
        if queue:
            self._queues.move_to_end(owner)
        else:
            del self._queues[owner]
        return owner, entry

    def _charge(self, owner: bytes, took: float) -> None:
        self.held_seconds += took
        self._refill(_monotonic())
        self._credit -= took
        used = self._used
        used[owner] = used.get(owner, 0.0) + took
        if len(used) > _TRACKED_OWNERS:  # forget the owners that wait for nothing
            for idle in [o for o in used if o not in self._queues]:
                del used[idle]

    def _refill(self, now: float) -> float:
        self._credit = min(self.burst, self._credit + (now - self._credit_at) * self.duty)
        self._credit_at = now
        return self._credit

    def _next(self) -> None:
        self._timer = None
        while self._queues and not self._busy and self._timer is None:
            now = _monotonic()
            expired = self._take_expired(now)
            if expired:  # their replies may submit more: look at the state again
                error = DeadlineExceeded("the request's deadline passed while it waited for "
                                         "other cache starts and stops (it was not sent)")
                for reply in expired:
                    reply(error.status, error_of(error))
                continue
            if self._refill(now) <= 0:  # look again when credit is back (or deadlines pass)
                self.waits += 1
                self._timer = asyncio.get_running_loop().call_later(
                    min(_CREDIT_POLL, -self._credit / self.duty), self._next)
                return
            owner, (_, send, reply) = self._take()
            self._send(owner, send, reply)

    def _send(self, owner: bytes, send: Callable[[ReplyFn], None], reply: ReplyFn) -> None:
        self._busy = True
        began = _monotonic()

        def finished(status: int, payload: Any) -> None:
            self._charge(owner, _monotonic() - began)
            reply(status, payload)
            self._busy = False
            self._next()

        try:
            send(finished)
        except Exception as exc:
            self._busy = False
            if self._on_failure is None:
                raise
            self._on_failure(exc, reply)
        except BaseException:
            self._busy = False
            raise

    def expire(self, now: float) -> None:
        """Answer the waiting requests whose deadline has passed (the janitor's sweep: a
        change in flight to a node that does not answer holds the turn until its own
        deadline, and those waiting behind it must not outlive theirs)."""
        for reply in self._take_expired(now):
            error = DeadlineExceeded("the request's deadline passed while it waited for "
                                     "other cache starts and stops (it was not sent)")
            reply(error.status, error_of(error))

    def _take_expired(self, now: float) -> list[ReplyFn]:
        """Take the waiting requests whose deadline has passed: their replies."""
        expired: list[ReplyFn] = []
        for owner in [o for o, q in self._queues.items() if any(e[0] <= now for e in q)]:
            queue = self._queues[owner]
            expired += [reply for deadline, _, reply in queue if deadline <= now]
            kept = deque(e for e in queue if e[0] > now)
            if kept:
                self._queues[owner] = kept
            else:
                del self._queues[owner]
        return expired


class CacheChanges:
    """The gate every cache start or stop passes: ``reserve`` charges the worker's bucket
    (``rate`` per second after a ``burst``: beyond it the worker's starts wait their turn, a
    burst of them at most), ``serial`` runs them one at a time, workers in turn, holding the
    cluster ``duty`` of the time at most after ``hold_burst`` seconds at once."""

    def __init__(self, rate: float, burst: int, duty: float = 1.0,
                 hold_burst: float = float("inf"),
                 on_failure: Callable[[Exception, ReplyFn], None] | None = None) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.serial = Serial(duty, hold_burst, on_failure)
        self.refused = 0
        self.paced = 0  # starts and stops that waited for their worker's turn
        self._known: OrderedDict[int, None] = OrderedDict()
        #: cache id -> what waits for its start or stop to end (requests on it, a next change)
        self.changing: dict[int, list[Callable[[], None]]] = {}
        self._buckets: dict[bytes, tuple[float, float]] = {}  # worker -> (tokens, at)

    def __len__(self) -> int:
        return len(self.serial)

    def hold(self, cache_id: int, retry: Callable[[], None], deadline: float,
             reply: ReplyFn) -> bool:
        """While ``cache_id`` starts or stops: keep ``retry`` to run when it ends (True), or
        answer ``reply`` DEADLINE_EXCEEDED at ``deadline`` (monotonic) if that comes first:
        a change may hold the cache up to its own deadline, not its waiters'."""
        held = self.changing.get(cache_id)
        if held is None:
            return False
        held.append(_Held(retry, deadline, reply))
        return True

    def change(self, cache_id: int | None, deadline: float, in_flight: Callable[[int], int],
               send: Callable[[ReplyFn], None], reply: ReplyFn, owner: bytes = b"") -> None:
        """Start or stop ``cache_id`` for ``owner`` (a worker) in the broker-wide order
        (workers in turn, within the share of time): when its turn comes, requests on the
        cache wait from then on, and once this broker has none in flight on it
        (``in_flight``), ``send(done)`` runs. Requests on the cache go on while it waits for
        its turn. A cache id of None (an SQL statement's cache, unknown here) takes the turn
        and the share only."""

        def turn(finished: ReplyFn) -> None:
            if cache_id is None:
                send(finished)
                return
            self.changing[cache_id] = []  # one change at a time: no other one holds it

            def done(status: int, payload: Any) -> None:
                held = self.changing.pop(cache_id, [])
                finished(status, payload)
                for retry in held:
                    retry()

            self._when_idle(cache_id, deadline, in_flight, lambda: send(done), done)

        self.serial.submit(deadline, turn, reply, owner)

    def _when_idle(self, cache_id: int, deadline: float, in_flight: Callable[[int], int],
                   go: Callable[[], None], done: ReplyFn) -> None:
        if not in_flight(cache_id):
            go()
        elif _monotonic() >= deadline:
            error = DeadlineExceeded("the request's deadline passed while it waited for the "
                                     "requests on the cache to finish (it was not sent)")
            done(error.status, error_of(error))
        else:
            asyncio.get_running_loop().call_later(
                _IDLE_POLL, self._when_idle, cache_id, deadline, in_flight, go, done)

    def known(self, cache_id: int) -> bool:
        """Whether the cache was seen to exist (created or got through this broker)."""
        if cache_id in self._known:
            self._known.move_to_end(cache_id)
            return True
        return False

    def exists(self, cache_id: int) -> None:
        self._known[cache_id] = None
        self._known.move_to_end(cache_id)
        if len(self._known) > KNOWN_CACHES:
            self._known.popitem(last=False)

    def gone(self, cache_id: int) -> None:
        self._known.pop(cache_id, None)

    def reserve(self, worker: bytes, deadline: float) -> float:
        """Charge one start or stop to ``worker``: the seconds it must wait for its turn (0
        within its burst). Overloaded when more than a burst already waits, or when the turn
        would come after ``deadline`` (monotonic); nothing is charged then."""
        now = _monotonic()
        tokens, at = self._buckets.get(worker, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate) - 1
        wait = -tokens / self.rate if tokens < 0 else 0.0
        if tokens < -self.burst or now + wait >= deadline:
            self.refused += 1
            why = (f"{self.burst} of them already wait" if tokens < -self.burst
                   else f"its turn would come in {wait:.1f} s, after the request's deadline")
            raise Overloaded(
                f"this worker starts or stops caches faster than {self.rate:g} per second "
                f"after a burst of {self.burst} (limits.cache_changes_per_second, "
                f"limits.cache_changes_burst) and {why}; each one holds every cache "
                "operation of the cluster while it runs: retry later")
        if len(self._buckets) >= _TRACKED_WORKERS and worker not in self._buckets:
            self._forget_rested(now)
        self._buckets[worker] = (tokens, now)
        if wait:
            self.paced += 1
        return wait

    def _forget_rested(self, now: float) -> None:
        rested = [worker for worker, (tokens, at) in self._buckets.items()
                  if tokens + (now - at) * self.rate >= self.burst]
        for worker in rested:
            del self._buckets[worker]
        if len(self._buckets) >= _TRACKED_WORKERS:  # all busy: the oldest entry goes
            del self._buckets[next(iter(self._buckets))]


class _Held:
    """A request waiting for its cache's start or stop to end: run again then (called), or
    answered DEADLINE_EXCEEDED at its own deadline, whichever comes first; never both."""

    __slots__ = ("_reply", "_retry", "_timer")

    def __init__(self, retry: Callable[[], None], deadline: float, reply: ReplyFn) -> None:
        self._retry: Callable[[], None] | None = retry
        self._reply = reply
        self._timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - _monotonic()), self._expire)

    def __call__(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None:
            self._timer.cancel()
            retry()

    def _expire(self) -> None:
        if self._retry is not None:
            self._retry = None
            self._reply(Status.DEADLINE_EXCEEDED, error_payload(
                "deadline_exceeded", "the request's deadline passed while its cache started "
                "or stopped (it was not sent)", maybe_applied=False))
