"""The bound on request bytes the broker holds for workers: one budget for the whole broker and
a share of it per worker, so that no worker, and no crowd of stalled ones, can grow the
daemon's memory without limit.

Counted: bytes of stream requests read but not yet served (partial and waiting frames), and
every request of at least ``TRACKED_BYTES`` from the moment it is parsed until it is answered.
Smaller requests are bounded by the in-flight request limits instead (counting each one would
cost the hot path a dict operation for a few hundred bytes).
"""

from __future__ import annotations

from collections.abc import Callable

from protocol import OpCode

#: Requests at least this large are counted one by one while in flight.
TRACKED_BYTES = 1024

#: Requests whose answers carry values: their size is learned (see ReplySizes).
VALUE_ANSWERS = frozenset({
    OpCode.CACHE_GET, OpCode.CACHE_GET_ALL, OpCode.CACHE_GET_AND_PUT,
    OpCode.CACHE_GET_AND_REMOVE, OpCode.CACHE_GET_AND_REPLACE,
    OpCode.CACHE_GET_AND_PUT_IF_ABSENT, OpCode.QUERY_SCAN, OpCode.QUERY_SCAN_CURSOR_GET_PAGE,
    OpCode.QUERY_SQL, OpCode.QUERY_SQL_CURSOR_GET_PAGE, OpCode.QUERY_SQL_FIELDS,
    OpCode.QUERY_SQL_FIELDS_CURSOR_GET_PAGE})


class MemoryBudget:
    """Bytes held, in total and per worker identity; paused readers are woken when bytes
    are freed."""

    __slots__ = ("_by_worker", "_requests", "_waiters", "held", "on_exhausted", "peak",
                 "per_worker", "total")

    def __init__(self, total: int, per_worker: int) -> None:
        self.total = total
        self.per_worker = per_worker
        self.held = 0
        self._by_worker: dict[bytes, int] = {}
        self._requests: dict[tuple[bytes, int], list[int]] = {}  # sizes of those in flight
        self._waiters: dict[object, Callable[[], None]] = {}
        self.peak = 0  # the most held since the last reset_peak (for memory give-back)
        #: Called when the budget becomes spent: readers that have not noticed yet stop.
        self.on_exhausted: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<MemoryBudget held={self.held} total={self.total} waiting={len(self._waiters)}>"

    def fits(self, size: int) -> bool:
        return self.held + size <= self.total

    def worker_held(self, identity: bytes) -> int:
        return self._by_worker.get(identity, 0)

    def take_request(self, identity: bytes, request_id: int, size: int) -> None:
        """Count a parsed request of ``size`` bytes until ``release_request``; every one, a
        worker reusing an id in flight included (each is answered, and held until then)."""
        self._requests.setdefault((identity, request_id), []).append(size)
        self._add(identity, size)

    def release_request(self, identity: bytes, request_id: int) -> None:
        if self._requests:
            key = (identity, request_id)
            sizes = self._requests.get(key)
            if sizes:
                size = sizes.pop()
                if not sizes:
                    del self._requests[key]
                self._add(identity, -size)
                self._wake()

    def buffered(self, identity: bytes, delta: int) -> None:
        """A stream worker's unserved bytes grew or shrank by ``delta``."""
        if delta:
            self._add(identity, delta)
            if delta < 0:
                self._wake()

    def forget(self, identity: bytes) -> None:
        """The worker is gone: what it still held is freed (its answers will find nobody)."""
        held = self._by_worker.pop(identity, 0)
        if held:
            self.held -= held
            for key in [k for k in self._requests if k[0] == identity]:
                del self._requests[key]
            self._wake()

    def wait(self, owner: object, wake: Callable[[], None]) -> None:
        """Call ``wake`` (once) the next time bytes are freed."""
        self._waiters[owner] = wake

    def stop_waiting(self, owner: object) -> None:
        self._waiters.pop(owner, None)

    def reset_peak(self) -> int:
        peak, self.peak = self.peak, self.held
        return peak

    def _add(self, identity: bytes, delta: int) -> None:
        was_spent = self.held >= self.total
        self.held += delta
        if self.held > self.peak:
            self.peak = self.held
        if not was_spent and self.held >= self.total and self.on_exhausted is not None:
            self.on_exhausted()
        held = self._by_worker.get(identity, 0) + delta
        if held:
            self._by_worker[identity] = held
        else:
            self._by_worker.pop(identity, None)

    def _wake(self) -> None:
        if self._waiters and self.held < self.total:
            waiters, self._waiters = self._waiters, {}
            for wake in waiters.values():
                wake()


class ReplySizes:
    """The size of answer to expect for a request, learned per (op, cache) as a slowly
    decaying maximum of the answers seen; a pessimistic guess until the first answer.
    Only ops whose answers carry values are estimated (others cost their body)."""

    __slots__ = ("_sizes", "cold_guess")

    #: Remember at most this many (op, cache) pairs.
    MAX_KEYS = 4096

    def __init__(self, cold_guess: int = 1024 * 1024) -> None:
        self.cold_guess = cold_guess
        self._sizes: dict[tuple[int, int | None], int] = {}

    def expect(self, op: int, cache_id: int | None) -> int:
        if op not in VALUE_ANSWERS:
            return 0
        return self._sizes.get((op, cache_id), self.cold_guess)

    def seen(self, op: int, cache_id: int | None, size: int) -> None:
        if op not in VALUE_ANSWERS:
            return
        key = (op, cache_id)
        known = self._sizes.get(key)
        if known is None:
            if len(self._sizes) >= self.MAX_KEYS:
                self._sizes.clear()
            self._sizes[key] = size
        elif size >= known:
            self._sizes[key] = size
        else:  # decay: a big answer stops counting after ~100 small ones
            self._sizes[key] = max(size, known - (known >> 5))
