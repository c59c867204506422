"""libclient's safety promises against a real broker and a real node: a client made before
fork() works in the parent and in every child, 32 threads share one client, reads ride out a
broker restart (every reply checked against its key), writes say whether they may have been
applied, a missing broker is a clear error, and the heartbeat keeps an idle cursor alive
past the broker's worker-liveness bound."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid

import pytest

from broker.devcluster.brokerproc import BrokerProcess
from libclient import AioClient, Client
from libclient.exceptions import BrokerTimeout, BrokerUnavailable

pytestmark = pytest.mark.integration

LIVENESS = 1.0  # limits.worker_liveness for these brokers (seconds)


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    proc = BrokerProcess(ignite_node.addresses, workdir=tmp_path_factory.mktemp("lc-safety"),
                         settings={"limits.worker_liveness": LIVENESS})
    proc.start()
    try:
        yield proc
    finally:
        code = proc.stop()
        print(proc.log())
        assert code == 0


@pytest.fixture(params=["zmq", "stream"])
def client(broker, request):
    """A client over each of the broker's transports (ipc:// and unix://)."""
    c = Client(broker=broker.endpoint if request.param == "zmq" else broker.stream_endpoint)
    c.connect()
    yield c
    c.close()


def _value(tag: str, i: int) -> str:
    return f"{tag} value {i} ✓"


def _own_keys_wrong(cache, tag: str, count: int) -> list[int]:
    for i in range(count):
        cache.put(f"{tag}:{i}", _value(tag, i))
    return [i for i in range(count) if cache.get(f"{tag}:{i}") != _value(tag, i)]


def test_fork_parent_and_8_children_interleaved(client):
    cache = client.get_or_create_cache(f"fork-{uuid.uuid4().hex[:6]}")
    cache.put("before", "fork")
    pids = []
    for n in range(8):
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                wrong = _own_keys_wrong(cache, f"child{n}", 200)
                code = 0 if not wrong and cache.get("before") == "fork" else 1
            finally:
                os._exit(code)
        pids.append(pid)
        assert _own_keys_wrong(cache, f"parent{n}", 25) == []
    assert [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids] == [0] * 8
    for n in range(8):
        assert cache.get(f"child{n}:199") == _value(f"child{n}", 199)
    cache.destroy()


def test_32_threads_share_one_client(client):
    cache = client.get_or_create_cache(f"threads-{uuid.uuid4().hex[:6]}")
    problems: list = []
    barrier = threading.Barrier(32)

    def work(n: int) -> None:
        try:
            barrier.wait()
            wrong = _own_keys_wrong(cache, f"t{n}", 150)
            if wrong:
                problems.append((n, wrong[:5]))
        except Exception as exc:  # reported below
            problems.append((n, repr(exc)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert problems == []
    cache.destroy()


def test_asyncio_many_tasks(broker):
    async def main() -> None:
        client = AioClient(broker=broker.endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache(f"aio-{uuid.uuid4().hex[:6]}")
            await asyncio.gather(*[cache.put(f"k{i}", _value("aio", i)) for i in range(500)])
            got = await asyncio.gather(*[cache.get(f"k{i}") for i in range(500)])
            assert got == [_value("aio", i) for i in range(500)]
            await cache.destroy()

    asyncio.run(main())


def test_no_broker_is_a_clear_error_not_a_hang(tmp_path):
    client = Client(broker=f"ipc://{tmp_path}/nobody.sock", handshake_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="no broker reachable") as exc:
        client.connect()
    assert time.monotonic() - started < 3
    assert exc.value.maybe_applied is False


def test_heartbeat_keeps_an_idle_cursor_past_the_liveness_bound(client):
    cache = client.get_or_create_cache(f"hb-{uuid.uuid4().hex[:6]}")
    cache.put_all({i: i for i in range(20)})
    cursor = cache.scan(page_size=2)
    first = next(cursor)
    time.sleep(LIVENESS * 3)  # silent application; the heartbeat thread pings
    rest = list(cursor)
    assert sorted([first, *rest]) == [(i, i) for i in range(20)]
    cache.destroy()


def test_broker_restart(ignite_node, tmp_path_factory):
    """kill -9 the broker under load and start it again: reads are re-sent and every reply
    matches its key; writes either succeed or say whether they may have been applied."""
    proc = BrokerProcess(ignite_node.addresses, workdir=tmp_path_factory.mktemp("lc-restart"))
    proc.start()
    client = Client(broker=proc.endpoint, timeout=30)
    client.connect()
    cache = client.get_or_create_cache(f"restart-{uuid.uuid4().hex[:6]}")
    cache.put_all({f"k{i}": _value("k", i) for i in range(200)})
    stop = threading.Event()
    reads = {"ok": 0, "wrong": [], "failed": []}
    writes: dict[int, object] = {}

    def reader() -> None:
        i = 0
        while not stop.is_set():
            i = (i + 7) % 200
            try:
                got = cache.get(f"k{i}")
            except Exception as exc:
                reads["failed"].append(repr(exc))
                continue
            if got == _value("k", i):
                reads["ok"] += 1
            else:
                reads["wrong"].append((i, got))

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                cache.put(f"w{n}", n)
                writes[n] = "ok"
            except BrokerUnavailable as exc:
                writes[n] = exc.maybe_applied
            n += 1

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        assert proc.proc is not None
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()
        time.sleep(0.5)
        proc.start()  # the same endpoint, a new broker process
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        assert reads["wrong"] == []
        assert reads["failed"] == []
        assert reads["ok"] > 100
        assert set(writes.values()) <= {"ok", True}  # never "not sent" within the timeout
        for n, outcome in writes.items():
            if outcome == "ok":
                assert cache.get(f"w{n}") == n  # every acknowledged write is there
    finally:
        client.close()
        proc.stop()
        print(proc.log())


def test_a_request_past_its_deadline_is_a_timeout(client):
    # 1 us: the deadline (whole ms since the epoch) has passed before the broker reads it; a
    # 1 ms budget let a fast unix:// round trip finish all 50 tries now and then.
    slow = Client(broker=client.broker, timeout=0.000001)
    slow.connect()
    with pytest.raises((BrokerTimeout, BrokerUnavailable)):
        for _ in range(50):
            slow.get_cache_names()
    slow.close()
