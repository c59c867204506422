"""What the broker knows about each connected worker: its liveness, its in-flight count, and the
transactions and cursors it owns (pinned to the node connection that created them).

A *worker* is one stub socket: one ZeroMQ routing id, or one Unix stream connection (its own
session, released as soon as it closes).  ZeroMQ stubs that set their routing id to
``session (16 bytes) + suffix`` group their sockets into one *session*: traffic on any socket
of a session keeps all of them alive (so a stub's heartbeat thread vouches for its other
threads).  When a session goes quiet for longer than the liveness bound, the janitor releases
everything its workers own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import Overloaded
from .nodeconn import NodeConnection

SESSION_BYTES = 16


@dataclass(slots=True)
class Transaction:
    handle: int
    conn: NodeConnection
    tx_id: int
    label: str | None


@dataclass(slots=True)
class Cursor:
    handle: int
    conn: NodeConnection
    cursor_id: int
    kind: str  # "sql", "scan" or "sql_row"
    column_count: int = 0


@dataclass(slots=True)
class Worker:
    identity: bytes
    session: bytes
    in_flight: int = 0
    transactions: dict[int, Transaction] = field(default_factory=dict)
    cursors: dict[int, Cursor] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"<Worker {self.identity.hex()} in_flight={self.in_flight} "
                f"tx={len(self.transactions)} cursors={len(self.cursors)}>")

    @property
    def holds_resources(self) -> bool:
        return bool(self.transactions or self.cursors)


def session_of(identity: bytes) -> bytes:
    """The session a routing id belongs to (itself unless it carries a session prefix)."""
    if len(identity) > SESSION_BYTES and identity[0] != 0:
        return identity[:SESSION_BYTES]
    return identity


class Workers:
    """The registry of workers and sessions; no I/O here (the janitor and dispatcher act)."""

    def __init__(self, max_workers: int = 1 << 62) -> None:
        self.max_workers = max_workers
        self._workers: dict[bytes, Worker] = {}
        self._last_seen: dict[bytes, float] = {}  # session -> monotonic time
        self._handles = itertools.count(1)

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def seen(self, identity: bytes, now: float) -> Worker:
        """The worker for ``identity`` (created on first sight), marked alive at ``now``;
        Overloaded for a new one beyond ``max_workers``."""
        worker = self._workers.get(identity)
        if worker is None:
            if len(self._workers) >= self.max_workers:
                raise Overloaded(f"the broker serves {len(self._workers)} workers already "
                                 "(limits.max_workers)")
            worker = self._workers[identity] = Worker(identity, session_of(identity))
        self._last_seen[worker.session] = now
        return worker

    def disconnected(self, identity: bytes) -> None:
        """The worker's connection closed (stream workers): its session is over, so the next
        sweep releases what it owns, once its requests in flight are answered."""
        worker = self._workers.get(identity)
        if worker is not None:
            self._last_seen[worker.session] = float("-inf")

    def new_handle(self) -> int:
        return next(self._handles)

    def expired(self, now: float, liveness: float, idle_forget: float) -> list[Worker]:
        """Remove and return workers whose session has been silent too long: after
        ``liveness`` seconds when they hold resources, after ``idle_forget`` otherwise."""
        gone = []
        for worker in list(self._workers.values()):
            silent = now - self._last_seen.get(worker.session, now)
            limit = liveness if worker.holds_resources else idle_forget
            if silent > limit and worker.in_flight == 0:
                gone.append(self._workers.pop(worker.identity))
        live_sessions = {w.session for w in self._workers.values()}
        for session in list(self._last_seen):
            if session not in live_sessions:
                del self._last_seen[session]
        return gone

    def transactions(self) -> Iterator[Transaction]:
        for worker in self._workers.values():
            yield from worker.transactions.values()

    def cursors(self) -> Iterator[Cursor]:
        for worker in self._workers.values():
            yield from worker.cursors.values()
