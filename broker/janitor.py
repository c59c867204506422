"""Periodic housekeeping away from the request path: requests past their deadline, workers that
went silent (their transactions rolled back, their cursors closed on the server)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import time
from collections.abc import Callable

from protocol import OpCode, queries, tx

from . import log
from .budget import MemoryBudget
from .dispatch import Dispatcher
from .errors import DeadlineExceeded
from .frontend import Frontend
from .nodeconn import NodeConnection
from .pool import NodePool
from .workers import Worker, Workers

_log = log.get("janitor")

#: A burst of request bytes at least this big is followed by a heap trim once answered.
_TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _load_glibc(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _load_glibc("malloc_trim")
_mallopt = _load_glibc("mallopt")
_M_ARENA_MAX = -8  # glibc's mallopt parameter


_RSS_CHECK_INTERVAL = 10.0
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes() -> int:
    """This process's resident set (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def limit_malloc_arenas() -> bool:
    """One malloc arena for the whole process (glibc), unless MALLOC_ARENA_MAX says otherwise;
    True if set. ZeroMQ messages are allocated in libzmq's I/O thread and freed in the
    broker's: with an arena per thread the freed pages stayed (RSS +14% after a 120,000-input
    ipc:// fuzz run, +5% with one arena). Call before any thread starts."""
    if _mallopt is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_mallopt(_M_ARENA_MAX, 1))


def trim_heap() -> None:
    """Give freed heap pages back to the system where the C library can (glibc)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class Janitor:
    def __init__(self, pool: NodePool, workers: Workers, dispatcher: Dispatcher, *,
                 liveness: float,
                 heartbeat_timeout: float = 5.0, idle_forget: float = 300.0,
                 interval: float = 0.25) -> None:
        self._pool = pool
        self._workers = workers
        self._dispatcher = dispatcher
        self.liveness = liveness
        self._idle_forget = idle_forget
        self._interval = interval
        self.heartbeat_timeout = heartbeat_timeout
        self._task: asyncio.Task[None] | None = None
        self.released_transactions = 0
        self.released_cursors = 0
        self.frontend: Frontend | None = None  # set once the front end exists
        self.stalled_timeout = 10.0
        self._next_rss_check = 0.0
        self._rss_after_trim = resident_bytes()
        self._trimmed_quiet = False  # trimmed since the broker last had nothing in flight

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.sweep(time.monotonic())
            except Exception:  # housekeeping must never die
                _log.exception("sweep_failed")

    def sweep(self, now: float) -> None:
        self._dispatcher.expire_parked(now)
        self._dispatcher.cache_lifecycle.serial.expire(now)
        if self.frontend is not None:
            self.frontend.close_stalled(now, self.stalled_timeout)
            self._give_back_memory(self.frontend.budget, now)
        for conn in list(self._pool.ready):
            conn.expire(now)  # may close it: an unanswered heartbeat
            if conn.is_open and not conn.heartbeat_in_flight and _needs_heartbeat(conn, now):
                self._heartbeat(conn, now)
        for worker in self._workers.expired(now, self.liveness, self._idle_forget):
            if worker.holds_resources:
                self.release(worker, "worker went silent")

    def _give_back_memory(self, budget: MemoryBudget, now: float) -> None:
        """Return freed heap to the system (glibc keeps it otherwise, and RSS stays at its
        peak): after a burst of big requests has been answered, and when RSS has grown
        since the last look (many connections come and gone, e.g. ZeroMQ peers' pipes), and
        once whenever the broker is found quiet, after a full garbage collection (what a busy
        spell freed: without it, RSS after a load stayed near the level of the last trim
        during it)."""
        if budget.peak >= _TRIM_AFTER_BYTES and budget.held < budget.peak // 4:
            budget.reset_peak()
            trim_heap()
        if now < self._next_rss_check:
            return
        self._next_rss_check = now + _RSS_CHECK_INTERVAL
        quiet = self._dispatcher.in_flight == 0
        rss = resident_bytes()
        if quiet and not self._trimmed_quiet:
            gc.collect()  # cyclic garbage of the busy spell: a quiet broker allocates too
            # little for the collector's thresholds to run it, and what it frees can go back
        if rss > self._rss_after_trim + _TRIM_AFTER_BYTES or (quiet and not self._trimmed_quiet):
            trim_heap()
            self._rss_after_trim = resident_bytes()
        self._trimmed_quiet = quiet

    def _heartbeat(self, conn: NodeConnection, now: float) -> None:
        """Keep an idle connection open, and find a node that stopped answering: a
        heartbeat unanswered within heartbeat_timeout takes the connection out of routing."""

        def answered(outcome: object) -> None:
            conn.heartbeat_in_flight = False
            if isinstance(outcome, DeadlineExceeded):
                self._pool.metrics.node_error(conn.name, "heartbeat_timeout")
                conn.close(f"no heartbeat answer within {self.heartbeat_timeout}s")
            elif not isinstance(outcome, BaseException):
                self._pool.metrics.heartbeat_answered(conn.name, time.monotonic() - now)

        conn.heartbeat_in_flight = True
        conn.probe(answered, deadline=now + self.heartbeat_timeout)

    def release(self, worker: Worker, reason: str) -> None:
        """Roll back the worker's transactions and close its cursors on their connections."""
        for transaction in worker.transactions.values():
            if transaction.conn.is_open:
                transaction.conn.send(OpCode.TX_END, tx.tx_end(transaction.tx_id, False),
                                      _ignore)
                self.released_transactions += 1
        for cursor in worker.cursors.values():
            if cursor.conn.is_open:
                cursor.conn.send(OpCode.RESOURCE_CLOSE, queries.resource_close(cursor.cursor_id),
                                 _ignore)
                self.released_cursors += 1
        _log.info("worker_released", worker=worker.identity.hex(), reason=reason,
                  transactions=len(worker.transactions), cursors=len(worker.cursors))
        worker.transactions.clear()
        worker.cursors.clear()


def _needs_heartbeat(conn: NodeConnection, now: float) -> bool:
    """Idle: keep the connection alive.  Busy but silent: check that the node still answers
    (a stopped JVM keeps accepting our writes into its socket buffer)."""
    if conn.in_flight:
        return now - conn.last_received > conn.heartbeat_interval
    return now - conn.last_sent > conn.heartbeat_interval


def _ignore(outcome: object) -> None:
    """Release requests are best effort: a lost connection already released everything."""
