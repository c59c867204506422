"""Cache starts and stops: one at a time for the whole broker, a rate per worker, each alone on
its cache (requests on the cache wait while it runs, and it waits for those in flight), and the
caches known to exist, whose get-or-create starts nothing and so waits for none of this.

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

from .calls import ReplyFn
from .errors import DeadlineExceeded, Overloaded, error_of

_monotonic = time.monotonic

#: Seconds between looks at a cache's requests in flight while a start or stop waits for them.
_IDLE_POLL = 0.005
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
        #: cache id -> what waits for its start or stop to end (requests on it, a next change)
        self.changing: dict[int, list[Callable[[], None]]] = {}
        self._buckets: dict[bytes, tuple[float, float]] = {}  # worker -> (tokens, at)

    def __len__(self) -> int:
        return len(self.serial)

    def hold(self, cache_id: int, retry: Callable[[], None]) -> bool:
        """While ``cache_id`` starts or stops: keep ``retry`` to run when it ends (True)."""
        held = self.changing.get(cache_id)
        if held is None:
            return False
        held.append(retry)
        return True

    def change(self, cache_id: int, deadline: float, in_flight: Callable[[int], int],
               send: Callable[[ReplyFn], None], reply: ReplyFn) -> None:
        """Start or stop ``cache_id``: requests on it wait from now on; once this broker has
        none in flight on it (``in_flight``), ``send(done)`` runs in the broker-wide order."""
        if cache_id in self.changing:  # a change of the same cache runs: this one after it
            self.changing[cache_id].append(
                lambda: self.change(cache_id, deadline, in_flight, send, reply))
            return
        self.changing[cache_id] = []

        def done(status: int, payload: Any) -> None:
            held = self.changing.pop(cache_id, [])
            reply(status, payload)
            for retry in held:
                retry()

        self._when_idle(cache_id, deadline, in_flight,
                        lambda: self.serial.submit(deadline, send, done), done)

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
