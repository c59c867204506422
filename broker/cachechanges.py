"""Cache starts and stops: one at a time for the whole broker, a rate per worker, and the caches
known to exist, whose get-or-create starts nothing and so waits for neither.

Each start or stop is a cluster-wide partition map exchange that holds every other worker's
cache operations until it ends: a worker creating and destroying caches in a loop made the
well-behaved worker's p99 4.5x its idle p99 in the fuzz run, against 1.8x without those ops
(docs/reliability.md). Many at once, among updates, have hung a 2-node cluster."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from .errors import DeadlineExceeded, Overloaded, error_of

ReplyFn = Callable[[int, Any], None]  # (status, payload), as dispatch.ReplyFn

_monotonic = time.monotonic

#: Cache ids remembered as existing (4 bytes of id each, plus the dict's own cost).
KNOWN_CACHES = 10_000
#: Workers whose rate state is kept beyond those with a spent bucket (a full bucket is the
#: state of every worker not seen, so full ones are dropped first).
_TRACKED_WORKERS = 4096


class Serial:
    """Requests that must not overlap: one in flight for the whole broker, the others waiting
    in order within their deadlines."""

    __slots__ = ("_busy", "_waiting")

    def __init__(self) -> None:
        self._busy = False
        self._waiting: deque[tuple[float, Callable[[ReplyFn], None], ReplyFn]] = deque()

    def __len__(self) -> int:
        return len(self._waiting) + self._busy

    def submit(self, deadline: float, send: Callable[[ReplyFn], None], reply: ReplyFn) -> None:
        """``send(done)`` issues the request; ``done`` is its reply, which lets the next go."""
        self._waiting.append((deadline, send, reply))
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while self._waiting:
            deadline, send, reply = self._waiting.popleft()
            if _monotonic() >= deadline:
                error = DeadlineExceeded("the request's deadline passed while it waited for "
                                         "another cache start or stop (it was not sent)")
                reply(error.status, error_of(error))
                continue
            self._busy = True

            def finished(status: int, payload: Any, reply: ReplyFn = reply) -> None:
                reply(status, payload)
                self._busy = False
                self._next()

            try:
                send(finished)
            except BaseException:
                self._busy = False
                raise
            return


class CacheChanges:
    """The gate every cache start or stop passes: ``reserve`` charges the worker's bucket
    (``rate`` per second after a ``burst``: beyond it the worker's starts wait their turn, a
    burst of them at most), ``serial`` runs them one at a time."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.serial = Serial()
        self.refused = 0
        self.paced = 0  # starts and stops that waited for their worker's turn
        self._known: OrderedDict[int, None] = OrderedDict()
        self._buckets: dict[bytes, tuple[float, float]] = {}  # worker -> (tokens, at)

    def __len__(self) -> int:
        return len(self.serial)

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
