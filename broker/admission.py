"""Admission: the in-flight limits a request must pass, and the parking of requests while no
node is reachable (up to limits.queue_wait) or while the broker is paused (admin pause)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from protocol.ipc import Request

from .calls import ReplyFn
from .errors import BrokerError, ClusterUnavailable, DeadlineExceeded, Overloaded
from .limits import Limits
from .metrics import Metrics
from .pool import NodePool
from .workers import Worker

#: Ops the broker answers itself, even with no node reachable.
LOCAL_OPS = frozenset({"hello", "ping"})


def admit(worker: Worker, in_flight: int, limits: Limits, metrics: Metrics) -> None:
    """Overloaded when the worker's or the broker's requests in flight (this one counted) are
    beyond their limit."""
    if worker.in_flight > limits.max_in_flight_per_worker:
        metrics.refused("in_flight_per_worker")
        raise Overloaded(f"this worker has {worker.in_flight - 1} requests in flight "
                         f"(limit {limits.max_in_flight_per_worker})")
    if in_flight > limits.max_in_flight_total:
        metrics.refused("in_flight_total")
        raise Overloaded(f"the broker has {in_flight - 1} requests in flight "
                         f"(limit {limits.max_in_flight_total})")


class Parking:
    """Requests that wait for a node or for ``resume``, oldest first, each until it expires:
    its deadline when paused, at most ``queue_wait`` seconds otherwise."""

    def __init__(self, pool: NodePool) -> None:
        self._pool = pool
        # (expires, worker, request, reply, parked at)
        self._parked: deque[tuple[float, Worker, Request, ReplyFn, float]] = deque()
        self.paused = False  # admin pause: every request is parked until resume

    def __len__(self) -> int:
        return len(self._parked)

    def holds(self, op: str) -> bool:
        """Whether a request for ``op`` must wait now."""
        return (not self._pool.ready or self.paused) and op not in LOCAL_OPS

    def park(self, worker: Worker, request: Request, reply: ReplyFn, now: float,
             deadline: float, queue_wait: float) -> None:
        expires = deadline if self.paused else min(now + queue_wait, deadline)
        self._parked.append((expires, worker, request, reply, now))

    def release(self) -> Iterator[tuple[Worker, Request, ReplyFn, float]]:
        """The requests that may go now (a node is reachable, the broker not paused), oldest
        first, with when each was parked; taken as they are iterated."""
        while self._parked and self._pool.ready and not self.paused:
            _, worker, request, reply, parked_at = self._parked.popleft()
            yield worker, request, reply, parked_at

    def expire(self, now: float) -> list[tuple[ReplyFn, float]]:
        """Take the requests whose time is up: their replies, with when each was parked."""
        if not self._parked or min(entry[0] for entry in self._parked) > now:
            return []
        waiting = self._parked
        self._parked = deque(entry for entry in waiting if entry[0] > now)
        return [(entry[3], entry[4]) for entry in waiting if entry[0] <= now]

    def expired_error(self, queue_wait: float) -> BrokerError:
        """What an expired request is answered."""
        if self.paused:
            return DeadlineExceeded(
                "the broker is paused for maintenance (ignite-broker admin pause) and the "
                "request's deadline passed while it waited (it was not sent)")
        return ClusterUnavailable(
            f"no Ignite node became reachable within {queue_wait:g}s "
            f"(last error: {self._pool.last_error or 'none'})", maybe_applied=False)
