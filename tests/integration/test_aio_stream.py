"""AioClient over the broker's Unix stream socket (``unix://``) against a real broker and a
real node: key-value, an SQL cursor read to the end, a transaction, 50 tasks sharing one
connection, reads riding out a broker restart and a kill -9 (every reply checked against its
key), writes saying whether they may have been applied, and a missing broker being a quick,
clear error."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid

import pytest

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import AioClient
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from libclient.exceptions import BrokerUnavailable

pytestmark = pytest.mark.integration


LIVENESS = 1.0  # limits.worker_liveness of the shared broker (seconds)


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("aio-stream"),
                        settings={"limits.worker_liveness": LIVENESS}) as proc:
        yield proc


@pytest.fixture
def restartable(ignite_node, tmp_path_factory):
    """A broker of the test's own, to be stopped and started again on the same workdir."""
    proc = BrokerProcess(ignite_node.addresses, workdir=tmp_path_factory.mktemp("aio-restart"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def _value(tag: str, i: int) -> str:
    return f"{tag} value {i} ✓"


def _connection(client: AioClient) -> object:
    """The stream connection the client's channel in this loop is on (None if none)."""
    return client._transport.channel().slot.protocol


class _Reads:
    """Tasks reading their own keys in a loop, every reply checked against its key."""

    def __init__(self, cache, tag: str, count: int) -> None:
        self.cache, self.tag, self.count = cache, tag, count
        self.ok = 0
        self.wrong: list = []
        self.failed: list[str] = []
        self.stop = asyncio.Event()

    async def loop(self, start: int) -> None:
        i = start
        while not self.stop.is_set():
            i = (i + 7) % self.count
            try:
                got = await self.cache.get(f"{self.tag}{i}")
            except Exception as exc:
                self.failed.append(repr(exc))
                continue
            if got == _value(self.tag, i):
                self.ok += 1
            else:
                self.wrong.append((i, got))


def test_key_value(broker):
    async def main() -> None:
        async with AioClient(broker=broker.stream_endpoint).connect() as conn:
            client = conn.client
            cache = await client.get_or_create_cache(f"askv-{uuid.uuid4().hex[:6]}")
            await cache.put("a", _value("a", 1))
            await cache.put(2, [1, 2, 3])
            assert await cache.get("a") == _value("a", 1)
            assert await cache.get(2) == [1, 2, 3]
            assert await cache.get("missing") is None
            await cache.put_all({f"k{i}": i for i in range(20)})
            assert await cache.get_all(["k1", "k19", "zz"]) == {"k1": 1, "k19": 19}
            assert await cache.get_size() == 22
            await cache.destroy()

    run(main())


def test_sql_cursor_read_to_the_end(broker):
    table = f"AStream_{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        client = AioClient(broker=broker.stream_endpoint)
        async with client.connect():
            await client.sql(f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR)")
            await asyncio.gather(*[client.sql(f"INSERT INTO {table} VALUES (?, ?)",
                                              query_args=[i, f"n{i}"]) for i in range(23)])
            async with client.sql(f"SELECT id, name FROM {table} ORDER BY id",
                                  page_size=4) as cursor:
                rows = [row async for row in cursor]
            assert rows == [[i, f"n{i}"] for i in range(23)]
            await client.sql(f"DROP TABLE {table}")

    run(main())


def test_transaction_commit(broker):
    async def main() -> None:
        client = AioClient(broker=broker.stream_endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache({
                p.PROP_NAME: f"astx-{uuid.uuid4().hex[:6]}",
                p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
            await asyncio.sleep(1)  # IGNITE-14868: a new transactional cache may lag
            async with client.tx_start() as tx:
                await cache.put("x", "committed")
                await cache.put("y", "too")
                await tx.commit()
            async with client.tx_start() as tx:
                await cache.put("x", "rolled back")
                await tx.rollback()
            assert await cache.get_all(["x", "y"]) == {"x": "committed", "y": "too"}
            await cache.destroy()

    run(main())


def test_50_tasks_share_one_connection(broker):
    async def main() -> None:
        client = AioClient(broker=broker.stream_endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache(f"as50-{uuid.uuid4().hex[:6]}")
            await cache.put_all({f"t{t}:{i}": _value(f"t{t}", i)
                                 for t in range(50) for i in range(20)})
            connection = _connection(client)
            assert connection is not None

            async def task(t: int) -> list[int]:
                wrong = []
                for i in range(20):
                    if await cache.get(f"t{t}:{i}") != _value(f"t{t}", i):
                        wrong.append(i)
                return wrong

            assert await asyncio.gather(*[task(t) for t in range(50)]) == [[]] * 50
            assert _connection(client) is connection
            assert len(client._transport._channels) == 1
            await cache.destroy()

    run(main())


def test_heartbeat_keeps_an_idle_cursor_past_the_liveness_bound(broker):
    async def main() -> None:
        client = AioClient(broker=broker.stream_endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache(f"ashb-{uuid.uuid4().hex[:6]}")
            await cache.put_all({i: i for i in range(20)})
            async with cache.scan(page_size=2) as cursor:
                first = await cursor.__anext__()
                await asyncio.sleep(LIVENESS * 3)  # a silent task; the channel's pinger pings
                rest = [pair async for pair in cursor]
            assert sorted([first, *rest]) == [[i, i] for i in range(20)]
            await cache.destroy()

    run(main())


def test_one_client_across_event_loops_and_fork(broker):
    """A connected client used from a second event loop, and from a forked child: each gets
    a connection of its own (the child never touches its parent's)."""
    client = AioClient(broker=broker.stream_endpoint)
    name = f"asfk-{uuid.uuid4().hex[:6]}"

    async def put_get(key: str) -> object:
        cache = await client.get_or_create_cache(name)
        await cache.put(key, _value(key, 1))
        return await cache.get(key)

    async def first() -> object:
        await client.connect()
        return await put_get("first")

    assert run(first()) == _value("first", 1)
    assert run(put_get("second")) == _value("second", 1)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if run(put_get("child")) == _value("child", 1) else 1
        finally:
            os._exit(code)
    assert run(put_get("parent")) == _value("parent", 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    async def check_and_close() -> None:
        cache = await client.get_cache(name)
        assert await cache.get("child") == _value("child", 1)
        await cache.destroy()
        await client.close()

    run(check_and_close())


async def _until(predicate, what: str, timeout: float = 60.0) -> None:
    """Wait for predicate (a bound for a loaded machine, never a speed claim)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_broker_restart(restartable):
    """SIGTERM the broker while tasks read, write while it is down, start it again on the same
    workdir: every read is answered with its own key's value, the write is "not sent"."""
    proc = restartable

    async def main() -> None:
        client = AioClient(broker=proc.stream_endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache(f"asrs-{uuid.uuid4().hex[:6]}")
            await cache.put_all({f"k{i}": _value("k", i) for i in range(100)})
            reads = _Reads(cache, "k", 100)
            readers = [asyncio.create_task(reads.loop(n)) for n in range(3)]
            await _until(lambda: reads.ok >= 50, "50 reads before the stop")
            await asyncio.to_thread(proc.stop)
            before = reads.ok
            with pytest.raises(BrokerUnavailable, match="was not sent") as exc:
                await cache.put("down", 1, timeout=0.5)
            assert exc.value.maybe_applied is False
            await asyncio.to_thread(proc.start)
            await _until(lambda: reads.ok > before + 50, "50 reads after the restart")
            reads.stop.set()
            await asyncio.gather(*readers)
            assert reads.wrong == []
            assert reads.failed == []
            assert reads.ok > before >= 50
            assert await cache.get("down") is None  # the write was indeed not applied
            assert await cache.get("k42") == _value("k", 42)

    run(main())


def test_broker_killed_under_load(restartable):
    """kill -9 while reads and writes are in flight: reads are re-sent on a new connection;
    a write caught by the broker's end fails at once saying it may have been applied."""
    proc = restartable

    async def main() -> None:
        client = AioClient(broker=proc.stream_endpoint)
        async with client.connect():
            cache = await client.get_or_create_cache(f"askl-{uuid.uuid4().hex[:6]}")
            await cache.put_all({f"k{i}": _value("k", i) for i in range(100)})
            reads = _Reads(cache, "k", 100)
            writes: dict[int, object] = {}
            lost_how: list[str] = []

            async def writer() -> None:
                n = 0
                while not reads.stop.is_set():
                    try:
                        await cache.put(f"w{n}", n)
                        writes[n] = "ok"
                    except BrokerUnavailable as exc:
                        writes[n] = exc.maybe_applied
                        lost_how.append(str(exc))
                    n += 1

            tasks = [asyncio.create_task(reads.loop(n)) for n in range(3)]
            tasks.append(asyncio.create_task(writer()))
            await _until(lambda: reads.ok >= 50, "50 reads before the kill")
            assert proc.proc is not None
            os.kill(proc.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.proc.wait)
            before = reads.ok
            await asyncio.to_thread(proc.start)
            await _until(lambda: reads.ok > before + 50, "50 reads after the restart")
            reads.stop.set()
            await asyncio.gather(*tasks)
            assert reads.wrong == []
            assert reads.failed == []
            assert set(writes.values()) <= {"ok", True}  # never "not sent" within the timeout
            assert all("went away" in how for how in lost_how), lost_how  # EOF, not a deadline
            for n, outcome in writes.items():
                if outcome == "ok":
                    assert await cache.get(f"w{n}") == n  # every acknowledged write is there

    run(main())


def test_no_broker_is_a_quick_clear_error(tmp_path):
    stale = tmp_path / "stale.stream"  # a socket file nobody listens on: connect is refused
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()

    async def main() -> None:
        for path in (tmp_path / "none.stream", stale):
            client = AioClient(broker=f"unix://{path}", handshake_timeout=0.5)
            with pytest.raises(BrokerUnavailable, match="no broker reachable") as exc:
                await client.connect()  # refused at once: not BrokerTimeout's "no reply within"
            assert exc.value.maybe_applied is False
            assert f"unix://{path}" in str(exc.value) and "not sent" in str(exc.value)
            await client.close()

    run(main())
