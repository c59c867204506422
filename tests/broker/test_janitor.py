"""The janitor over fake nodes (no JVM): heartbeats on idle connections, a frozen node taken
out of routing, silent workers' transactions rolled back and cursors closed; and the C heap's
arena limit."""

from __future__ import annotations

import os
import subprocess
import sys

from broker import janitor as janitor_module
from broker.janitor import _needs_heartbeat
from broker.workers import Cursor
from protocol import OpCode
from protocol.ipc import Status
from tests.broker.fakenode import Harness, run


@run
async def test_an_idle_connection_gets_a_heartbeat_and_a_busy_one_does_not_need_one():
    h = await Harness(1, heartbeat_interval=0.5).start()
    conn = h.pool.ready[0]
    assert not _needs_heartbeat(conn, conn.last_sent + 0.1)
    h.janitor.sweep(conn.last_sent + 1.0)
    assert conn.heartbeat_in_flight
    h.janitor.sweep(conn.last_sent + 1.0)  # one at a time
    await h.until(lambda: not conn.heartbeat_in_flight)
    assert h.nodes[0].ops().count(OpCode.HEARTBEAT) == 1 and conn.is_open
    await h.close()


@run
async def test_a_frozen_node_is_taken_out_of_routing_by_an_unanswered_heartbeat():
    h = await Harness(2, heartbeat_interval=0.5).start()
    frozen = h.nodes[0]
    frozen.frozen = True
    conn = next(c for c in h.pool.ready if c.port == frozen.port)
    now = conn.last_sent + 1.0
    h.janitor.sweep(now)
    await h.settle()
    h.janitor.sweep(now + h.janitor.heartbeat_timeout + 0.1)
    assert not conn.is_open and "no heartbeat answer within 0.5s" in conn.closed_reason
    assert conn not in h.pool.ready and len(h.pool.ready) == 1
    await h.close()


@run
async def test_a_silent_workers_transactions_and_cursors_are_released():
    h = await Harness(1).start()
    status, handle = await h.call("tx_start", {}, worker=b"quiet")
    assert status == Status.OK
    worker = h.workers._workers[b"quiet"]
    conn = worker.transactions[handle].conn
    worker.cursors[99] = Cursor(99, conn, 7, "scan")
    h.janitor.liveness = 0.0
    h.janitor.sweep(worker_last_seen(h, b"quiet") + 1.0)
    await h.settle()
    assert h.nodes[0].ops()[-2:] == [OpCode.TX_END, OpCode.RESOURCE_CLOSE]
    assert (h.janitor.released_transactions, h.janitor.released_cursors) == (1, 1)
    assert not worker.transactions and not worker.cursors
    assert h.workers.tx_held.get(conn, 0) == 0
    await h.close()


def worker_last_seen(h: Harness, identity: bytes) -> float:
    return h.workers._last_seen[h.workers._workers[identity].session]


def test_the_heap_is_trimmed_once_each_time_the_broker_is_found_quiet(monkeypatch):
    import broker.janitor as janitor_module

    trims: list[int] = []
    monkeypatch.setattr(janitor_module, "trim_heap", lambda: trims.append(1))
    monkeypatch.setattr(janitor_module, "resident_bytes", lambda: 50 << 20)
    _trims_when_quiet(janitor_module, trims)


@run
async def _trims_when_quiet(janitor_module, trims):
    h = await Harness(1).start()
    h.janitor._rss_after_trim = 50 << 20  # RSS has not grown: only quietness trims
    budget = janitor_module.MemoryBudget(1 << 30, 1 << 28)
    check = janitor_module._RSS_CHECK_INTERVAL + 1
    h.janitor._give_back_memory(budget, 1 * check)  # quiet: trimmed
    h.janitor._give_back_memory(budget, 2 * check)  # still quiet: not again
    assert len(trims) == 1
    h.dispatcher.in_flight = 3
    h.janitor._give_back_memory(budget, 3 * check)  # busy
    h.dispatcher.in_flight = 0
    h.janitor._give_back_memory(budget, 4 * check)  # quiet again: trimmed
    assert len(trims) == 2
    await h.close()


def test_one_malloc_arena_unless_the_environment_says_otherwise(monkeypatch):
    calls = []
    monkeypatch.setattr(janitor_module, "_mallopt", lambda *args: calls.append(args) or 1)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert janitor_module.limit_malloc_arenas() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the operator's choice wins
    assert janitor_module.limit_malloc_arenas() is False
    assert calls == [(-8, 1)]  # M_ARENA_MAX, one arena


def test_glibc_takes_the_one_arena_limit():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", "from broker.janitor import limit_malloc_arenas as f; print(f())"],
        env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
