"""Transactions pinned to their connection, cursors owned by their worker, and the release of
both when a worker dies (real broker, real node, raw IPC so no stub logic hides anything)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid

import pytest

from broker.devcluster.brokerproc import running_broker
from tests.integration.rawipc import Raw

pytestmark = pytest.mark.integration

LIVENESS = 1.0
PESSIMISTIC, REPEATABLE_READ = 1, 1


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("sessions"),
                        {"limits.worker_liveness": LIVENESS}) as proc:
        yield proc


@pytest.fixture
def raw(broker):
    client = Raw(broker.endpoint)
    yield client
    client.close()


def _tx_cache(raw: Raw) -> str:
    name = f"tx-{uuid.uuid4().hex[:8]}"
    raw.call("cache_get_or_create", config={0: name, 2: 0})  # atomicity TRANSACTIONAL
    return name


def test_transaction_commit_and_rollback(raw):
    cache = _tx_cache(raw)
    tx = raw.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ)
    raw.call("cache_put", cache=cache, key="a", value=1, tx=tx)
    raw.call("tx_end", tx=tx, commit=False)
    assert raw.call("cache_get", cache=cache, key="a") is None
    tx = raw.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ, label="mine")
    raw.call("cache_put", cache=cache, key="a", value=2, tx=tx)
    raw.call("tx_end", tx=tx, commit=True)
    assert raw.call("cache_get", cache=cache, key="a") == 2


def test_transaction_handles_belong_to_their_worker(raw, broker):
    cache = _tx_cache(raw)
    tx = raw.call("tx_start")
    other = Raw(broker.endpoint)
    try:
        with pytest.raises(RuntimeError, match=r"BAD_REQUEST.*not open on this worker"):
            other.call("cache_put", cache=cache, key="x", value=1, tx=tx)
    finally:
        other.close()
    raw.call("tx_end", tx=tx, commit=False)


def test_sql_cursor_paging_and_close(raw):
    table = f"T{uuid.uuid4().hex[:8]}"
    raw.call("sql", query=f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR)",
             schema="PUBLIC")
    for i in range(25):
        raw.call("sql", query=f"INSERT INTO {table} VALUES (?, ?)", args=[i, f"v{i}"],
                 schema="PUBLIC")
    first = raw.call("sql", query=f"SELECT id, v FROM {table} ORDER BY id", schema="PUBLIC",
                     page_size=10, include_field_names=True)
    assert first["fields"] == ["ID", "V"] and first["more"] and len(first["rows"]) == 10
    rows = list(first["rows"])
    page = raw.call("cursor_next", cursor=first["cursor"])
    rows += page["rows"]
    page = raw.call("cursor_next", cursor=first["cursor"])
    rows += page["rows"]
    assert not page["more"]
    assert rows == [[i, f"v{i}"] for i in range(25)]
    with pytest.raises(RuntimeError, match="not open on this worker"):
        raw.call("cursor_next", cursor=first["cursor"])  # exhausted cursors are gone
    second = raw.call("sql", query=f"SELECT id FROM {table}", schema="PUBLIC", page_size=5)
    assert raw.call("cursor_close", cursor=second["cursor"]) is None


def test_scan_cursor(raw):
    cache = f"scan-{uuid.uuid4().hex[:8]}"
    raw.call("cache_get_or_create", name=cache)
    raw.call("cache_put_all", cache=cache, pairs=[[i, i * i] for i in range(30)])
    page = raw.call("scan", cache=cache, page_size=7)
    cursor, rows = page["cursor"], list(page["rows"])
    while page["more"]:
        page = raw.call("cursor_next", cursor=cursor)
        rows += page["rows"]
    assert sorted(map(tuple, rows)) == [(i, i * i) for i in range(30)]


def _hold_lock_then_hang(endpoint: str, cache: str, ready) -> None:
    client = Raw(endpoint)
    tx = client.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ)
    client.call("cache_put", cache=cache, key="locked", value="by the dead worker", tx=tx)
    ready.set()
    time.sleep(3600)


def test_killed_worker_releases_its_lock_within_the_liveness_bound(raw, broker):
    cache = _tx_cache(raw)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    victim = ctx.Process(target=_hold_lock_then_hang, args=(broker.endpoint, cache, ready))
    victim.start()
    assert ready.wait(60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    killed_at = time.monotonic()
    tx = raw.call("tx_start", concurrency=PESSIMISTIC, isolation=REPEATABLE_READ, timeout=15000)
    raw.call("cache_put", cache=cache, key="locked", value="by the survivor", tx=tx)
    waited = time.monotonic() - killed_at
    raw.call("tx_end", tx=tx, commit=True)
    assert raw.call("cache_get", cache=cache, key="locked") == "by the survivor"
    assert waited < LIVENESS + 2.0, f"the lock was released only after {waited:.1f}s"
    assert "worker_released" in broker.log()


def test_admin_socket_shows_state_without_secrets(raw, broker):
    raw.call("ping")
    assert broker.admin("show version")["pid"] == broker.proc.pid
    nodes = broker.admin("show nodes")
    assert [n["state"] for n in nodes] == ["ready"]
    stats = broker.admin("show stats")
    assert stats["requests"] >= 1 and stats["in_flight"] == 0
    assert any(c["in_flight"] == 0 for c in broker.admin("show clients"))
    config = broker.admin("show config")
    assert config["limits.worker_liveness"] == LIVENESS
    assert config["cluster.password"] == ""
    with pytest.raises(RuntimeError, match="unknown command"):
        broker.admin("drop table")
